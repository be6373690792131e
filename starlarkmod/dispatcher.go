package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/builtin"
)

// The dispatcher, after concert's messaging (concert.helpers):
//
//	Dispatcher()                            a new dispatcher
//	dispatcher                              the interpreter's global one
//	d.subscribe(sender, message, handler)   call handler(sender) for each message sent by sender
//	d.unsubscribe(sender, message, handler) stop that (an error if it was not subscribed)
//	d.send(sender, message)                 queue the message; returns at once
//	d.wait(timeout=None)                    wait until every message sent so far is handled
//
// Handlers run off the sender's thread, one at a time, on one delivery
// thread per dispatcher, in send order (for a message, in subscription
// order). The delivery thread is a worker taken from the pool when a
// message arrives and given back as soon as the queue is empty: an idle
// dispatcher holds no goroutine. The queue is unbounded, so send never
// waits.
//
// Senders match by equality if they are hashable (strings, numbers,
// tuples, functions, futures...) and by identity otherwise (lists, dicts,
// sets: the very object passed to subscribe). Messages must be hashable and
// match by equality. Subscribing a handler twice is one subscription.
// Handlers are looked up when a message is sent: one subscribed by then is
// called, even if it unsubscribes before the message is delivered; a
// message nobody listens to is dropped at once. The sender is frozen when
// a message is sent (it crosses to the delivery thread); handlers are
// background work, prepared at subscribe (see crossing.go): one that reads
// a global the script may assign again is refused there.
//
// A failing handler is reported on stderr with its traceback and the
// dispatcher goes on with the next. Messages still queued when the script
// ends are delivered before the interpreter exits. A handler must not wait
// for its own dispatcher (that is an error: it would wait for itself).
//
// In sequential mode the delivery thread runs when the sender waits (or
// ends): the same handlers, in the same order. A failing handler makes the
// run end with an error, like a failed future nobody looked at.

// dispatcherValue is a Dispatcher.
type dispatcherValue struct {
	in      *Interpreter
	run     *Run   // the run that made it: its handlers are that run's tasks
	name    string // "dispatcher", or "Dispatcher created at x.star:3:5"
	q       *engine.Dispatcher[delivery]
	methods map[string]*starlark.Builtin

	mu   sync.Mutex
	subs map[uint32][]*subscription // by combined hash of sender and message

	registered atomic.Bool // with the interpreter, for delivery at exit
	delivering atomic.Pointer[starlark.Thread]
}

// A subscription is the handlers of one (sender, message) pair.
type subscription struct {
	key      senderKey
	sender   starlark.Value
	message  starlark.Value
	handlers []starlark.Value // replaced, never modified: send keeps a snapshot
	prepared atomic.Bool      // an identity sender was prepared (frozen) once
}

// delivery is a message on its way: the handlers subscribed when it was
// sent.
type delivery struct {
	sender   starlark.Value
	message  starlark.Value
	handlers []starlark.Value
	task     taskRef // the send: its handler calls are its children
}

var (
	_ starlark.HasAttrs = (*dispatcherValue)(nil)
	_ Crosser           = (*dispatcherValue)(nil)
)

var dispatcherMethods map[string]*starlark.Builtin

// init fills dispatcherMethods; a var initializer would be an
// initialization cycle (send reaches Predeclared, which makes the global
// dispatcher).
func init() {
	dispatcherMethods = map[string]*starlark.Builtin{
		"subscribe":   starlark.NewBuiltin("dispatcher.subscribe", dispatcherSubscribe),
		"unsubscribe": starlark.NewBuiltin("dispatcher.unsubscribe", dispatcherUnsubscribe),
		"send":        starlark.NewBuiltin("dispatcher.send", dispatcherSend),
		"wait":        starlark.NewBuiltin("dispatcher.wait", dispatcherWait),
	}
}

func newDispatcher(r *Run, name string) *dispatcherValue {
	d := &dispatcherValue{in: r.in, run: r, name: name, subs: map[uint32][]*subscription{}}
	d.q = engine.NewDispatcher(d.deliver)
	d.methods = make(map[string]*starlark.Builtin, len(dispatcherMethods))
	for k, b := range dispatcherMethods {
		d.methods[k] = b.BindReceiver(d)
	}
	return d
}

func newDispatcherBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	r, err := needRun(th, b.Name())
	if err != nil {
		return nil, err
	}
	return newDispatcher(r, "Dispatcher created at "+callerPos(th)), nil
}

func (d *dispatcherValue) String() string {
	if d.name == "dispatcher" {
		return "<dispatcher>"
	}
	return "<" + d.name + ">"
}
func (d *dispatcherValue) Type() string          { return "Dispatcher" }
func (d *dispatcherValue) Freeze()               {}
func (d *dispatcherValue) Truth() starlark.Bool  { return true }
func (d *dispatcherValue) Hash() (uint32, error) { return builtin.HashPointer(d), nil }

// Cross lets a dispatcher cross: it is safe for concurrent use, and what
// it holds (handlers, senders) was readied when it was stored.
func (d *dispatcherValue) Cross(func(starlark.Value) error) error { return nil }
func (d *dispatcherValue) Attr(name string) (starlark.Value, error) {
	if m, ok := d.methods[name]; ok {
		return m, nil
	}
	return nil, nil
}
func (d *dispatcherValue) AttrNames() []string { return builtin.SortedKeys(dispatcherMethods) }

// senderKey identifies a sender (or a handler): by value if hashable, else
// by identity (its address, and its length for a slice such as a tuple).
type senderKey struct {
	hash    uint32
	byValue bool
	typ     reflect.Type
	ptr     uintptr
	n       int
}

// keyOf returns v's key. Lists, dicts and sets are keyed by identity
// without calling Hash, which would allocate an error each time.
func keyOf(op, what string, v starlark.Value) (senderKey, error) {
	switch v.(type) {
	case *starlark.List, *starlark.Dict, *starlark.Set:
		return identityKey(v), nil
	}
	if h, err := v.Hash(); err == nil {
		return senderKey{hash: h, byValue: true}, nil
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return identityKey(v), nil
	}
	return senderKey{}, fmt.Errorf("%s: %s: a %s is neither hashable nor an object with an identity", op, what, v.Type())
}

func identityKey(v starlark.Value) senderKey {
	rv := reflect.ValueOf(v)
	k := senderKey{typ: rv.Type(), ptr: rv.Pointer()}
	if rv.Kind() == reflect.Slice {
		k.n = rv.Len()
	}
	k.hash = uint32(k.ptr^k.ptr>>32) ^ uint32(k.n)
	return k
}

// same reports whether x (with key a) and y (with key b) are the same
// sender or handler.
func same(a senderKey, x starlark.Value, b senderKey, y starlark.Value) bool {
	if a.byValue != b.byValue || a.hash != b.hash {
		return false
	}
	if !a.byValue {
		return a.typ == b.typ && a.ptr == b.ptr && a.n == b.n
	}
	eq, err := starlark.Equal(x, y)
	return err == nil && eq
}

// find returns the subscription of (sender, message), or nil. Called with
// mu held.
func (d *dispatcherValue) find(k senderKey, sender, message starlark.Value, mh uint32) (*subscription, uint32) {
	h := k.hash*31 + mh
	for _, s := range d.subs[h] {
		if same(s.key, s.sender, k, sender) {
			if eq, err := starlark.Equal(s.message, message); err == nil && eq {
				return s, h
			}
		}
	}
	return nil, h
}

// pair unpacks and keys a (sender, message) pair.
func pairKey(op string, sender, message starlark.Value) (senderKey, uint32, error) {
	k, err := keyOf(op, "sender", sender)
	if err != nil {
		return k, 0, err
	}
	mh, err := message.Hash()
	if err != nil {
		return k, 0, fmt.Errorf("%s: message: %v", op, err)
	}
	return k, mh, nil
}

// subscriptionArgs are the arguments of subscribe and unsubscribe, with the
// keys they are matched by.
type subscriptionArgs struct {
	sender, message starlark.Value
	handler         starlark.Callable
	key, handlerKey senderKey
	messageHash     uint32
}

// unpackSubscription unpacks the arguments of subscribe or unsubscribe.
func unpackSubscription(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (a subscriptionArgs, err error) {
	if err = starlark.UnpackArgs(b.Name(), args, kwargs, "sender", &a.sender, "message", &a.message, "handler", &a.handler); err != nil {
		return a, err
	}
	if a.key, a.messageHash, err = pairKey(b.Name(), a.sender, a.message); err != nil {
		return a, err
	}
	a.handlerKey, err = keyOf(b.Name(), "handler", a.handler)
	return a, err
}

func dispatcherSubscribe(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	a, err := unpackSubscription(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	sender, message, handler, k, mh, hk := a.sender, a.message, a.handler, a.key, a.messageHash, a.handlerKey
	d := b.Receiver().(*dispatcherValue)
	if err := d.in.prepare(th, b.Name(), true, handler); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s, h := d.find(k, sender, message, mh)
	if s == nil {
		s = &subscription{key: k, sender: sender, message: message}
		d.subs[h] = append(d.subs[h], s)
	}
	for _, x := range s.handlers {
		if xk, _ := keyOf(b.Name(), "handler", x); same(xk, x, hk, handler) {
			return starlark.None, nil // already subscribed: one call per message
		}
	}
	hs := make([]starlark.Value, len(s.handlers), len(s.handlers)+1)
	copy(hs, s.handlers)
	s.handlers = append(hs, handler)
	return starlark.None, nil
}

func dispatcherUnsubscribe(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	a, err := unpackSubscription(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	sender, message, handler, k, mh, hk := a.sender, a.message, a.handler, a.key, a.messageHash, a.handlerKey
	d := b.Receiver().(*dispatcherValue)
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, _ := d.find(k, sender, message, mh); s != nil {
		for i, x := range s.handlers {
			if xk, _ := keyOf(b.Name(), "handler", x); same(xk, x, hk, handler) {
				hs := make([]starlark.Value, 0, len(s.handlers)-1)
				hs = append(hs, s.handlers[:i]...)
				s.handlers = append(hs, s.handlers[i+1:]...)
				return starlark.None, nil
			}
		}
	}
	return nil, fmt.Errorf("%s: %s is not subscribed to message %s of %s", b.Name(), handler.Name(), message, shortArgs(starlark.Tuple{sender}, nil))
}

func dispatcherSend(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 2 || len(kwargs) != 0 {
		var sender, message starlark.Value
		return nil, starlark.UnpackArgs(b.Name(), args, kwargs, "sender", &sender, "message", &message)
	}
	sender, message := args[0], args[1]
	d := b.Receiver().(*dispatcherValue)
	k, mh, err := pairKey(b.Name(), sender, message)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	s, _ := d.find(k, sender, message, mh)
	var handlers []starlark.Value
	if s != nil {
		handlers = s.handlers
	}
	d.mu.Unlock()
	if len(handlers) == 0 {
		return starlark.None, nil // nobody listens
	}
	in := d.in
	// The sender crosses to the delivery thread. An identity sender is the
	// subscription's own object: once prepared, it stays frozen and safe.
	if k.byValue || !s.prepared.Load() {
		if err := prepareItem(in, b.Name(), sender); err != nil {
			return nil, err
		}
		if !k.byValue {
			s.prepared.Store(true)
		}
	}
	if !d.registered.Load() && !d.registered.Swap(true) {
		d.run.pipelines().addDispatcher(d)
	}
	m := delivery{sender: sender, message: message, handlers: handlers, task: stateOf(th).nextChild()}
	if err := d.q.Post(d.run.bgContext(th), in.pool, m); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}

// deliver is the drain of d's queue: it calls the handlers of a batch of
// messages on w's thread. It returns how many messages it delivered: if
// ctx ends, it stops, and the messages it did not start stay queued (the
// one it was delivering when ctx ended counts as delivered: its handler was
// interrupted).
func (d *dispatcherValue) deliver(ctx context.Context, w *engine.Worker, batch []delivery) (n int) {
	th := workerThread.Get(w)
	rec := d.run.record("dispatcher", fmt.Sprintf("%s: delivering %d messages", d.name, len(batch)))
	obsEnd := d.run.obs.span(spanDelivery, th, nil, d.name+": delivering", "")
	prev := d.delivering.Swap(th)
	defer d.delivering.Store(prev)
	n, _ = withContext(ctx, th, func() (int, error) {
		return d.deliverAll(ctx, th, batch), nil
	})
	rec.finish(ctx.Err())
	obsEnd(ctx.Err())
	return n
}

func (d *dispatcherValue) deliverAll(ctx context.Context, th *starlark.Thread, batch []delivery) int {
	ts := stateOf(th)
	for i, m := range batch {
		if ctx.Err() != nil {
			return i // interrupted: the rest stays queued
		}
		for k, h := range m.handlers {
			if ctx.Err() != nil {
				return i + 1 // interrupted in the middle of this message
			}
			// Handler k of a message is task k+1 under the send that queued it.
			ts.setTask(d.run, taskRef{m.task.parent, m.task.n, k + 1})
			th.Steps = 0
			t0 := d.run.obs.begin()
			_, err := starlark.Call(th, d.run.in.comp.Callable(h), starlark.Tuple{m.sender}, nil)
			d.run.obs.task(t0, ts.worker, ts.task, h, err)
			if err != nil {
				err = d.run.explainFrozen(err) // frozen.go
				if ctx.Err() != nil {
					return i + 1
				}
				name := h.String()
				if c, ok := h.(starlark.Callable); ok {
					name = c.Name()
				}
				d.in.report(fmt.Sprintf("%s: handler %s(%s) for message %s failed:\n%s",
					d.name, name, shortArgs(starlark.Tuple{m.sender}, nil), m.message, indent(errText(err))))
				d.run.failed(fmt.Sprintf("%s: handler %s for message %s failed (reported above)", d.name, name, m.message))
				uncancelTask(th) // an iterator's failure must not fail the next handler
			}
		}
	}
	return len(batch)
}

func dispatcherWait(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var t timeoutArg
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "timeout?", &t); err != nil {
		return nil, err
	}
	d := b.Receiver().(*dispatcherValue)
	if d.delivering.Load() == th {
		return nil, fmt.Errorf("%s: called by a handler of %s, it would wait for itself", b.Name(), d)
	}
	if d.q.Pending() == 0 {
		return starlark.None, nil
	}
	ctx := contextOf(th)
	if t.D > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, t.D, engine.ErrTimeout)
		defer cancel()
	}
	if err := d.q.Wait(ctx, workerOf(th)); err != nil {
		if errors.Is(err, engine.ErrTimeout) {
			return nil, fmt.Errorf("%s: timed out after %s with %d messages not handled", b.Name(), t.D.Round(time.Millisecond), d.q.Pending())
		}
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}
