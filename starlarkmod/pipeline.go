package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/builtin"
)

// Pipelines, after concert's coroutines (concert.helpers):
//
//	@generator, @generator(buffer=0)   def g(emit, ...): calling g(...) returns a lazy stream;
//	                                   its items are what g passes to emit(x)
//	@coroutine, @coroutine(buffer=0)   def c(inbox, ...): calling c(...) returns a started
//	                                   consumer; inbox is a blocking iterable of what it is sent
//	consumer.send(x)                   gives x to the consumer (waits while it is busy, see below)
//	consumer.close()                   ends its inbox: its for loop over inbox finishes
//	consumer.result(timeout=None)      waits for the function to return; its return value
//	inject(source, consumer)           sends every item of any iterable, closes the consumer,
//	                                   waits, returns its result
//	broadcast(*consumers)              a consumer that forwards each item to all, in argument
//	                                   order; closing it closes them all; its result is the
//	                                   list of theirs
//
// # Threads and backpressure
//
// A stream's producer runs on a worker thread of its own; a coroutine's
// function runs on a worker thread of its own. Items cross between threads
// deep-frozen, like every value that crosses (crossing.go), and functions
// that cross pass the background rule: they may not read a global or a
// captured variable that can still be re-bound.
//
// Production waits for consumption: without a buffer, emit(x) and send(x)
// return only once the consumer has taken x (like a send on an unbuffered
// Go channel: the producer is then free to compute the next item while the
// consumer works on x). With buffer=N they return at once while fewer than
// N items wait. Items travel between goroutines in batches when several are
// queued (engine.Stream), but the consumer sees them one at a time and the
// bound above is exact. inject moves items in batches of up to 64 when its
// source is a list, tuple, range, dict or set: such sources do nothing when
// iterated, so the only difference a script could see is that up to 63
// items past the one a failing consumer stopped on are already frozen.
//
// # Generators
//
// A stream starts producing when it is first iterated (not when g() is
// called: a stream never iterated costs nothing), on a worker, and can be
// iterated once; a second iteration is an error. Breaking out of the loop
// (or any early end: an error in the loop, a builtin such as any() that
// stops early) releases the producer: its emit fails and its thread is
// cancelled, and the loop's end waits until it has stopped. An error in the
// producer ends the consumer's loop with that error and the producer's
// traceback. A stream belongs to the thread that called g(): it cannot be
// passed to another thread (as an argument of a future or job, an item, a
// message); pass g and call it there instead. emit likewise works only on
// the producer's own thread.
//
// # Coroutines
//
// The consumer's function starts at once on a worker and waits in its
// inbox. Iterating the inbox takes the next items (the inbox is a queue:
// a second loop goes on where the first stopped); the loop ends when the
// consumer is closed. The function's return value is the result. Sending to
// a closed consumer is an error; sending to a consumer whose function
// failed is an error that carries its traceback; items sent to a consumer
// whose function returned are dropped (it takes no more), and inject stops
// feeding it. A consumer nobody closed is closed when the script ends, and
// the interpreter waits for it (and reports its failure if nobody saw it).
//
// # inject
//
// inject(source, consumer) feeds the consumer from the calling thread; if
// the source is a stream, its producer's emit feeds the consumer directly
// (one hand-off per item instead of two) while inject waits. If the
// consumer fails, the source is released at once (a stream's producer
// stops, even in the middle of computing: its thread is cancelled) and
// inject fails with the consumer's traceback. If the source fails, the
// consumer's inbox ends with that error (its function fails) and inject
// fails with the source's error and traceback.
//
// # Sequential mode
//
// With Options.Sequential the same producers, consumers and handlers run
// on the same worker threads, one at a time (the engine's serial pool): a
// thread hands on its turn wherever it waits (emit waiting for the
// consumer, an inbox waiting for items, result()). So an endless generator
// works, a coroutine takes its items as they are sent, and the results are
// those of parallel mode, in a deterministic order.

// errFinished is how a consumer says it took nothing more because its
// function returned.
var errFinished = errors.New("the consumer's function has returned")

// pipelines is an interpreter's registry of what must be settled before
// it exits: consumers nobody closed and dispatchers with messages in
// flight.
type pipelines struct {
	once        sync.Once
	mu          sync.Mutex
	seq         uint64 // numbers coroutines in creation order
	open        map[*coroutine]struct{}
	dispatchers []*dispatcherValue // every dispatcher that ever sent a message
}

// pipelines returns the run's registry, registering its exit hook on
// first use.
func (r *Run) pipelines() *pipelines {
	p := &r.pipes
	p.once.Do(func() {
		r.onWait(func(ctx context.Context, w *engine.Worker) error { return p.settle(ctx, w, r) })
	})
	return p
}

func (p *pipelines) addOpen(c *coroutine) {
	p.mu.Lock()
	if p.open == nil {
		p.open = map[*coroutine]struct{}{}
	}
	p.open[c] = struct{}{}
	p.mu.Unlock()
}

// newestOpen returns the open consumer created last, or nil.
func (p *pipelines) newestOpen() *coroutine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var newest *coroutine
	for c := range p.open {
		if newest == nil || c.seq > newest.seq {
			newest = c
		}
	}
	return newest
}

// newestAwaited returns the open consumer created last whose result some
// thread waits for, or nil.
func (p *pipelines) newestAwaited() *coroutine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var newest *coroutine
	for c := range p.open {
		if c.awaited.Load() > 0 && (newest == nil || c.seq > newest.seq) {
			newest = c
		}
	}
	return newest
}

func (p *pipelines) removeOpen(c *coroutine) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
}

func (p *pipelines) addDispatcher(d *dispatcherValue) {
	p.mu.Lock()
	p.dispatchers = append(p.dispatchers, d)
	p.mu.Unlock()
}

// settle runs each time a run waits for its background work (the end of
// a script): it delivers pending messages until none is left. Consumers
// nobody closed are closed by Run.Wait, once nothing else can feed them.
func (p *pipelines) settle(ctx context.Context, w *engine.Worker, r *Run) error {
	for {
		// Once the run is interrupted, start nothing new (DESIGN.md,
		// section 2): undelivered messages are dropped.
		if context.Cause(r.ctx) != nil {
			return nil
		}
		busy := false
		p.mu.Lock()
		ds := append([]*dispatcherValue(nil), p.dispatchers...)
		p.mu.Unlock()
		for _, d := range ds {
			if d.q.Pending() == 0 {
				continue
			}
			busy = true
			// A drain stops when its context ends (an interrupted REPL
			// entry): deliver what it left under ours.
			if err := d.q.Resume(ctx, r.in.pool); err != nil {
				return err
			}
			if err := d.q.Wait(ctx, w); err != nil {
				return err
			}
		}
		if !busy {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
	}
}

// A consumer takes items: a coroutine, or a broadcast to several.
type consumer interface {
	starlark.Value
	// put gives x (already prepared) to the consumer, waiting as its
	// buffer requires. It returns errFinished if the consumer's function
	// has returned (x is dropped), or an error naming op.
	put(th *starlark.Thread, op string, x starlark.Value) error
	// putBatch is put for several items, transferred at once.
	putBatch(th *starlark.Thread, op string, xs []starlark.Value) error
	// close ends the consumer's inbox; only the first call counts.
	close(th *starlark.Thread)
	// abort ends the consumer's inbox with err: its function fails.
	abort(th *starlark.Thread, err error)
	// result waits for the function's return value.
	result(th *starlark.Thread, op string, t timeoutArg) (starlark.Value, error)
}

// consumerMethods are the Starlark methods shared by every consumer.
var consumerMethods = map[string]*starlark.Builtin{
	"send":   starlark.NewBuiltin("consumer.send", consumerSend),
	"close":  starlark.NewBuiltin("consumer.close", consumerClose),
	"result": starlark.NewBuiltin("consumer.result", consumerResult),
}

// boundMethods caches a value's bound consumer methods: c.send(x) in a
// loop then allocates nothing for the attribute.
type boundMethods map[string]*starlark.Builtin

func bindConsumerMethods(recv starlark.Value) boundMethods {
	m := make(boundMethods, len(consumerMethods))
	for name, b := range consumerMethods {
		m[name] = b.BindReceiver(recv)
	}
	return m
}

func consumerSend(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &x); err != nil {
		return nil, err
	}
	if err := prepareItem(interpOf(th), b.Name(), x); err != nil {
		return nil, err
	}
	err := b.Receiver().(consumer).put(th, b.Name(), x)
	if err != nil && err != errFinished {
		return nil, err
	}
	return starlark.None, nil
}

func consumerClose(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	b.Receiver().(consumer).close(th)
	return starlark.None, nil
}

func consumerResult(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var t timeoutArg
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "timeout?", &t); err != nil {
		return nil, err
	}
	return b.Receiver().(consumer).result(th, b.Name(), t)
}

// prepareItem readies an item (a sent value, an emitted one, a message's
// sender) to cross to another thread. Scalars need nothing; the rest pass
// the background rule, since the receiving thread runs while the sender's
// module may still execute.
func prepareItem(in *Interpreter, op string, x starlark.Value) error {
	switch x.(type) {
	case starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
		return nil
	}
	return in.checker().Cross(nil, op, true, x)
}

// broadcastValue is broadcast(*consumers): it forwards each item to every
// consumer, in argument order, on the sending thread.
type broadcastValue struct {
	consumers []consumer
	methods   boundMethods
}

var (
	_ consumer          = (*broadcastValue)(nil)
	_ Crosser           = (*broadcastValue)(nil)
	_ starlark.HasAttrs = (*broadcastValue)(nil)
)

func newBroadcast(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, fmt.Errorf("%s: unexpected keyword argument %s", b.Name(), kwargs[0][0])
	}
	bc := &broadcastValue{consumers: make([]consumer, len(args))}
	for i, a := range args {
		c, ok := a.(consumer)
		if !ok {
			return nil, fmt.Errorf("%s: argument %d: got %s, want a consumer (the result of calling a @coroutine function, or a broadcast)", b.Name(), i+1, a.Type())
		}
		bc.consumers[i] = c
	}
	bc.methods = bindConsumerMethods(bc)
	return bc, nil
}

func (bc *broadcastValue) String() string {
	parts := make([]string, len(bc.consumers))
	for i, c := range bc.consumers {
		parts[i] = c.String()
	}
	return "<broadcast to " + strings.Join(parts, ", ") + ">"
}
func (bc *broadcastValue) Type() string         { return "broadcast" }
func (bc *broadcastValue) Freeze()              {}
func (bc *broadcastValue) Truth() starlark.Bool { return true }

// Cross lets a broadcast cross with the consumers it forwards to.
func (bc *broadcastValue) Cross(yield func(starlark.Value) error) error {
	for _, c := range bc.consumers {
		if err := yield(c); err != nil {
			return err
		}
	}
	return nil
}

func (bc *broadcastValue) Hash() (uint32, error) { return builtin.HashPointer(bc), nil }
func (bc *broadcastValue) Attr(name string) (starlark.Value, error) {
	if m, ok := bc.methods[name]; ok {
		return m, nil
	}
	return nil, nil
}
func (bc *broadcastValue) AttrNames() []string { return builtin.SortedKeys(consumerMethods) }

// put gives x to every consumer in turn. The broadcast has finished when
// every consumer has.
func (bc *broadcastValue) put(th *starlark.Thread, op string, x starlark.Value) error {
	return bc.each(func(c consumer) error { return c.put(th, op, x) })
}

func (bc *broadcastValue) putBatch(th *starlark.Thread, op string, xs []starlark.Value) error {
	return bc.each(func(c consumer) error { return c.putBatch(th, op, xs) })
}

// each calls give for every consumer in argument order, stopping at the
// first error other than errFinished; it returns errFinished once every
// consumer has finished.
func (bc *broadcastValue) each(give func(consumer) error) error {
	finished := 0
	for _, c := range bc.consumers {
		switch err := give(c); err {
		case nil:
		case errFinished:
			finished++
		default:
			return err
		}
	}
	if finished == len(bc.consumers) && finished > 0 {
		return errFinished
	}
	return nil
}

func (bc *broadcastValue) close(th *starlark.Thread) {
	for _, c := range bc.consumers {
		c.close(th)
	}
}

func (bc *broadcastValue) abort(th *starlark.Thread, err error) {
	for _, c := range bc.consumers {
		c.abort(th, err)
	}
}

// result waits for every consumer and returns the list of their results;
// the first failure, in argument order, is the error.
func (bc *broadcastValue) result(th *starlark.Thread, op string, t timeoutArg) (starlark.Value, error) {
	results := make([]starlark.Value, len(bc.consumers))
	var first error
	for i, c := range bc.consumers {
		v, err := c.result(th, op, t)
		if err != nil && first == nil {
			first = err
		}
		if v == nil {
			v = starlark.None
		}
		results[i] = v
	}
	if first != nil {
		return nil, first
	}
	l := starlark.NewList(results)
	l.Freeze()
	return l, nil
}

// inject(source, consumer) feeds every item of source to consumer, closes
// it and returns its result (see the top of this file).
func inject(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var src starlark.Iterable
	var cv starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "source", &src, "consumer", &cv); err != nil {
		return nil, err
	}
	c, ok := cv.(consumer)
	if !ok {
		return nil, fmt.Errorf("%s: consumer: got %s, want a consumer (the result of calling a @coroutine function, or a broadcast)", b.Name(), cv.Type())
	}
	in := interpOf(th)
	if in == nil {
		return nil, fmt.Errorf("%s: needs a semisync interpreter", b.Name())
	}
	if st, ok := src.(*stream); ok {
		return st.spliceInto(th, b.Name(), c)
	}
	var err error
	if pureIterable(src) {
		err = feedBatched(th, in, b.Name(), src, c)
	} else {
		err = feed(th, in, b.Name(), src, c)
	}
	if err != nil {
		return nil, err
	}
	c.close(th)
	return c.result(th, b.Name(), timeoutArg{})
}

// feed sends the items of src one at a time.
func feed(th *starlark.Thread, in *Interpreter, op string, src starlark.Iterable, c consumer) error {
	it := src.Iterate()
	defer it.Done() // releases a stream's producer, however we leave
	eit, _ := it.(builtin.ErrIterator)
	var x starlark.Value
	for {
		var ok bool
		var err error
		if eit != nil {
			ok, err = eit.NextErr(&x)
		} else {
			ok = it.Next(&x)
		}
		if err != nil {
			return abortConsumer(th, op, c, err)
		}
		if !ok {
			return nil
		}
		if err := prepareItem(in, op, x); err != nil {
			return abortConsumer(th, op, c, err)
		}
		switch err := c.put(th, op, x); err {
		case nil:
		case errFinished:
			return nil
		default:
			return err
		}
	}
}

// injectBatch is how many items inject moves at once from a pure source.
const injectBatch = 64

// feedBatched sends the items of a source that does nothing when iterated,
// in batches.
func feedBatched(th *starlark.Thread, in *Interpreter, op string, src starlark.Iterable, c consumer) error {
	it := src.Iterate()
	defer it.Done()
	ctx := contextOf(th)
	batch := make([]starlark.Value, 0, injectBatch)
	var x starlark.Value
	for more := true; more; {
		more = it.Next(&x)
		if more {
			if err := prepareItem(in, op, x); err != nil {
				return abortConsumer(th, op, c, err)
			}
			batch = append(batch, x)
			if len(batch) < injectBatch {
				continue
			}
		}
		if len(batch) == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", op, context.Cause(ctx))
		}
		switch err := c.putBatch(th, op, batch); err {
		case nil:
		case errFinished:
			return nil
		default:
			return err
		}
		clear(batch)
		batch = batch[:0]
	}
	return nil
}

// abortConsumer ends c's inbox because the source failed with err, waits
// for c to stop, and returns err for inject to report.
func abortConsumer(th *starlark.Thread, op string, c consumer, err error) error {
	c.abort(th, fmt.Errorf("%s: the source failed", op))
	c.result(th, op, timeoutArg{}) //nolint:errcheck // its failure is the abort we caused
	var te *TaskError
	if errors.As(err, &te) && te == err {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// pureIterable reports whether iterating v runs no code and changes
// nothing: Starlark's own containers and ranges.
func pureIterable(v starlark.Value) bool {
	switch v.(type) {
	case *starlark.List, starlark.Tuple, *starlark.Dict, *starlark.Set:
		return true
	}
	return reflect.TypeOf(v) == rangeType
}

// rangeType is the Go type of range(...) values (not exported).
var rangeType = func() reflect.Type {
	v, err := starlark.Call(&starlark.Thread{}, starlark.Universe["range"], starlark.Tuple{starlark.MakeInt(1)}, nil)
	if err != nil {
		panic(err)
	}
	return reflect.TypeOf(v)
}()

// emptyIterator yields nothing.
type emptyIterator struct{}

func (emptyIterator) Next(*starlark.Value) bool { return false }
func (emptyIterator) Done()                     {}

// bufferedDecorator implements the two forms of @coroutine and @generator:
// a bare decorator (one callable argument), or a call with buffer=N that
// returns the decorator. make builds the decorated value.
func bufferedDecorator(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, make func(fn starlark.Callable, buffer int) starlark.Value) (starlark.Value, error) {
	name := b.Name()
	if len(args) == 1 && len(kwargs) == 0 {
		if fn, ok := args[0].(starlark.Callable); ok {
			if err := checkFirstParam(name, fn); err != nil {
				return nil, err
			}
			return make(fn, 0), nil
		}
	}
	buffer := 0
	if err := starlark.UnpackArgs(name, args, kwargs, "buffer?", &buffer); err != nil {
		return nil, err
	}
	if buffer < 0 {
		return nil, fmt.Errorf("%s: buffer must not be negative, got %d", name, buffer)
	}
	return starlark.NewBuiltin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var fn starlark.Callable
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &fn); err != nil {
			return nil, err
		}
		if err := checkFirstParam(b.Name(), fn); err != nil {
			return nil, err
		}
		return make(fn, buffer), nil
	}), nil
}

// checkFirstParam checks that a Starlark function can take the argument
// that @coroutine (its inbox) or @generator (emit) passes first.
func checkFirstParam(name string, fn starlark.Callable) error {
	f, ok := fn.(*starlark.Function)
	if !ok || f.NumParams() > 0 || f.HasVarargs() {
		return nil
	}
	what := "its inbox"
	if name == "generator" {
		what = "emit"
	}
	return fmt.Errorf("%s: function %s takes no parameters; its first parameter receives %s", name, f.Name(), what)
}
