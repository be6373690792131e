package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/engine"
)

// @coroutine: see the top of pipeline.go for the script API.

// coroutineDecorator is the predeclared coroutine: @coroutine, or
// @coroutine(buffer=N).
func coroutineDecorator(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return bufferedDecorator(b, args, kwargs, func(fn starlark.Callable, buffer int) starlark.Value {
		return &coroutineFunc{wrapped: wrapped{fn: fn}, buffer: buffer}
	})
}

// coroutineFunc is a function decorated with @coroutine. Calling it starts
// a consumer.
type coroutineFunc struct {
	wrapped
	buffer int
}

var (
	_ starlark.Callable = (*coroutineFunc)(nil)
	_ Crosser           = (*coroutineFunc)(nil)
)

func (cf *coroutineFunc) String() string {
	if cf.buffer > 0 {
		return fmt.Sprintf("<coroutine function %s (buffer %d)>", cf.fn.Name(), cf.buffer)
	}
	return fmt.Sprintf("<coroutine function %s>", cf.fn.Name())
}
func (cf *coroutineFunc) Type() string { return "coroutine_function" }

// CallInternal starts the consumer: fn(inbox, *args, **kwargs) on a worker
// (in sequential mode, later: see coroutine.runInline).
func (cf *coroutineFunc) CallInternal(th *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r, err := needRun(th, cf.fn.Name())
	if err != nil {
		return nil, err
	}
	in := r.in
	if err := in.prepareArgs(th, cf.fn.Name(), true, cf.fn, args, kwargs); err != nil {
		return nil, err
	}
	p := r.pipelines()
	c := &coroutine{
		in:     in,
		run:    r,
		desc:   fmt.Sprintf("%s(%s) called at %s", cf.fn.Name(), shortArgs(args, kwargs), callerPos(th)),
		fn:     cf.fn,
		args:   args,
		kwargs: kwargs,
		key:    stateOf(th).nextChild(),
	}
	c.methods = bindConsumerMethods(c)
	p.mu.Lock()
	p.seq++
	c.seq = p.seq
	p.mu.Unlock()
	c.rec = r.record("coroutine", c.desc)

	var ef *engine.Future[starlark.Value]
	if in.opts.Sequential {
		ef, c.resolve = engine.NewPromise[starlark.Value]()
	} else {
		c.inbox = engine.NewStream[starlark.Value](cf.buffer)
		ef = engine.Go(r.bgContext(th), in.pool, func(ctx context.Context, w *engine.Worker) (starlark.Value, error) {
			ib := &inbox{c: c, ctx: ctx, w: w, owner: w.Local.(*starlark.Thread)}
			c.running.Store(ib.owner)
			defer c.running.Store(nil)
			defer ib.dead.Store(true)
			return r.runTask(ctx, w, c.key, c.fn, append(starlark.Tuple{ib}, c.args...), c.kwargs)
		})
		ef.OnDone(func() {
			// On the consumer's goroutine (or, if the task never ran, on the
			// one that found out): nothing more will be received.
			_, err, _ := ef.Peek()
			if err == nil {
				c.inbox.Release(errFinished)
			} else {
				c.inbox.Release(err)
			}
			c.rec.finish(err)
		})
	}
	c.fut = newFuture(ef, "coroutine", c.desc)
	c.fut.consumer = c
	r.track(c.fut)
	p.addOpen(c)
	return c, nil
}

// coroutine is a started consumer: the value returned by calling a
// @coroutine function.
type coroutine struct {
	in      *Interpreter
	run     *Run
	desc    string // "consume() called at x.star:3:1"
	seq     uint64 // creation order, for closing at exit
	fut     *Future
	methods boundMethods
	rec     *taskRecord

	fn     starlark.Callable
	args   starlark.Tuple
	kwargs []starlark.Tuple
	key    taskRef

	inbox   *engine.Stream[starlark.Value]  // parallel mode
	running atomic.Pointer[starlark.Thread] // the thread running the function

	mu       sync.Mutex
	closed   bool   // guarded by mu; isClosed reads it without
	closedAt string // guarded by mu
	closing  atomic.Bool

	// Sequential mode: what was sent, and whether the function ran.
	resolve func(starlark.Value, error) bool
	buf     []starlark.Value
	ran     bool
}

var (
	_ consumer          = (*coroutine)(nil)
	_ Crosser           = (*coroutine)(nil)
	_ starlark.HasAttrs = (*coroutine)(nil)
)

func (c *coroutine) String() string        { return "<coroutine " + c.desc + ">" }
func (c *coroutine) Type() string          { return "coroutine" }
func (c *coroutine) Freeze()               {}
func (c *coroutine) Truth() starlark.Bool  { return true }
func (c *coroutine) Hash() (uint32, error) { return hashPointer(c), nil }

// Cross lets a consumer cross: any thread may send to it, close it or wait
// for it (its own thread sending to itself is refused by send), and its
// function and arguments were readied when it started.
func (c *coroutine) Cross(func(starlark.Value) error) error { return nil }
func (c *coroutine) Attr(name string) (starlark.Value, error) {
	if m, ok := c.methods[name]; ok {
		return m, nil
	}
	return nil, nil
}
func (c *coroutine) AttrNames() []string { return sortedKeys(consumerMethods) }

// workerOf returns the worker running th, or nil.
func workerOf(th *starlark.Thread) *engine.Worker {
	if ts := stateOf(th); ts != nil {
		return ts.worker
	}
	return nil
}

func (c *coroutine) put(th *starlark.Thread, op string, x starlark.Value) error {
	if c.inbox == nil {
		return c.putInline(op, x)
	}
	if c.running.Load() == th {
		return fmt.Errorf("%s: %s cannot send to itself: it would wait for itself forever", op, c.desc)
	}
	if err := c.refusal(op); err != nil {
		return err
	}
	return c.sendErr(th, op, c.inbox.Send(contextOf(th), workerOf(th), x))
}

func (c *coroutine) putBatch(th *starlark.Thread, op string, xs []starlark.Value) error {
	if c.inbox == nil {
		for _, x := range xs {
			if err := c.putInline(op, x); err != nil {
				return err
			}
		}
		return nil
	}
	if c.running.Load() == th {
		return fmt.Errorf("%s: %s cannot send to itself: it would wait for itself forever", op, c.desc)
	}
	if err := c.refusal(op); err != nil {
		return err
	}
	return c.sendErr(th, op, c.inbox.SendBatch(contextOf(th), workerOf(th), xs))
}

// refusal is the error of sending to a closed consumer: its failure, if it
// failed, else the fact that it is closed.
func (c *coroutine) refusal(op string) error {
	if !c.closing.Load() {
		return nil
	}
	c.mu.Lock()
	where := c.closedAt
	c.mu.Unlock()
	if _, err, done := c.fut.f.Peek(); done && err != nil {
		c.fut.observed.Store(true)
		return c.fut.wrap(op, err)
	}
	return fmt.Errorf("%s: %s was closed at %s; it takes no more items", op, c.desc, where)
}

// sendErr explains the error of a send to the inbox.
func (c *coroutine) sendErr(th *starlark.Thread, op string, err error) error {
	switch {
	case err == nil, err == errFinished:
		return err
	case errors.Is(err, engine.ErrStreamClosed):
		return c.refusal(op)
	}
	if ctx := contextOf(th); ctx.Err() != nil && err == context.Cause(ctx) {
		return fmt.Errorf("%s: %w", op, err)
	}
	// The consumer's function failed: err is its error.
	c.fut.observed.Store(true)
	return c.fut.wrap(op, err)
}

func (c *coroutine) close(th *starlark.Thread) {
	c.closeAt(th, callerPos(th))
}

// closeAt closes the consumer; where says where, for later errors. In
// sequential mode its function runs now, on th, unless it has run.
func (c *coroutine) closeAt(th *starlark.Thread, where string) {
	if !c.markClosed(where) {
		return
	}
	if c.inbox != nil {
		c.inbox.Close(nil)
		return
	}
	c.runInline(th, true)
}

// markClosed records that the consumer is closed; it reports whether it
// was open.
func (c *coroutine) markClosed(where string) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed, c.closedAt = true, where
	c.closing.Store(true)
	c.mu.Unlock()
	c.run.pipelines().removeOpen(c)
	return true
}

func (c *coroutine) abort(th *starlark.Thread, err error) {
	c.mu.Lock()
	wasClosed := c.closed
	c.closed, c.closedAt = true, "an abort ("+err.Error()+")"
	c.closing.Store(true)
	c.mu.Unlock()
	c.run.pipelines().removeOpen(c)
	c.fut.observed.Store(true)
	if c.inbox != nil {
		c.inbox.Close(err)
		return
	}
	if !c.ran && !wasClosed {
		c.ran = true
		c.buf = nil
		c.resolve(nil, err)
		c.rec.finish(err)
	}
}

func (c *coroutine) result(th *starlark.Thread, op string, t timeoutArg) (starlark.Value, error) {
	defer c.fut.lookedAt()
	if c.inbox == nil && !c.ran {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		c.runInline(th, closed)
	}
	v, err := c.fut.await(th, t.d)
	if err != nil {
		return nil, c.fut.wrap(op, err)
	}
	return v, nil
}

// putInline is put in sequential mode: the item waits in a buffer until
// the function runs.
func (c *coroutine) putInline(op string, x starlark.Value) error {
	if err := c.refusal(op); err != nil {
		return err
	}
	if c.ran {
		if _, err, _ := c.fut.f.Peek(); err != nil {
			c.fut.observed.Store(true)
			return c.fut.wrap(op, err)
		}
		return errFinished
	}
	c.buf = append(c.buf, x)
	return nil
}

// runInline runs the function in sequential mode, on th, over the items
// sent so far. If closed is false (result() before close()), an inbox
// that runs dry is an error: nothing could ever be sent to it.
func (c *coroutine) runInline(th *starlark.Thread, closed bool) {
	if c.ran {
		return
	}
	c.runWith(th, &inlineInbox{c: c, th: th, closed: closed})
}

func (c *coroutine) runWith(th *starlark.Thread, ib *inlineInbox) {
	c.ran = true
	depth := th.CallStackDepth()
	v, err := c.run.runTask(contextOf(th), &engine.Worker{Local: th}, c.key, c.fn, append(starlark.Tuple{ib}, c.args...), c.kwargs)
	ib.dead = true
	c.buf = nil
	uncancelInline(th)
	err = ownFrames(err, depth)
	c.resolve(v, err)
	c.rec.finish(err)
}

// pullFrom is inject in sequential mode, for a coroutine that has not run:
// its function runs now, on th, and its inbox takes the items sent so far,
// then pulls the source's items one at a time, as it asks for them. So a
// consumer that returns early ends the injection, even from an endless
// source, as in parallel mode. ok is false if the coroutine was closed.
func (c *coroutine) pullFrom(th *starlark.Thread, op string, src starlark.Iterable) (v starlark.Value, err error, ok bool) {
	if c.ran || c.refusal(op) != nil {
		return nil, nil, false
	}
	c.markClosed(callerPos(th))
	it := src.Iterate()
	ib := &inlineInbox{c: c, th: th, closed: true, src: it, op: op}
	c.runWith(th, ib)
	it.Done()
	if ib.srcErr != nil {
		c.fut.observed.Store(true)
		var te *TaskError
		if errors.As(ib.srcErr, &te) && te == ib.srcErr {
			return nil, ib.srcErr, true
		}
		return nil, fmt.Errorf("%s: %w", op, ib.srcErr), true
	}
	v, err = c.result(th, op, timeoutArg{})
	return v, err, true
}

// uncancelInline clears a cancellation that an iterator (which cannot
// return an error) left on th while running work inline whose error is
// kept as a value rather than returned, unless th's context is really
// done. A step limit still applies: it is checked before every step.
func uncancelInline(th *starlark.Thread) {
	if contextOf(th).Err() == nil {
		th.Uncancel()
	}
}

// inbox is the iterable a coroutine's function receives first, in
// parallel mode. It belongs to the function's thread.
type inbox struct {
	c     *coroutine
	ctx   context.Context
	w     *engine.Worker
	owner *starlark.Thread
	dead  atomic.Bool // the function has returned
}

var (
	_ starlark.Iterable = (*inbox)(nil)
	_ Crosser           = (*inbox)(nil)
)

func (ib *inbox) String() string        { return "<inbox of " + ib.c.desc + ">" }
func (ib *inbox) Type() string          { return "inbox" }
func (ib *inbox) Freeze()               {}
func (ib *inbox) Truth() starlark.Bool  { return true }
func (ib *inbox) Hash() (uint32, error) { return hashPointer(ib), nil }

func (ib *inbox) Cross(func(starlark.Value) error) error {
	return fmt.Errorf("the inbox of %s cannot be passed to another thread; iterate it in the coroutine's own function", ib.c.desc)
}

// Iterate has no thread parameter to check its caller against the owner:
// the crossing refusal (Cross) is the guard that keeps an inbox on its
// coroutine's thread.
func (ib *inbox) Iterate() starlark.Iterator {
	if ib.dead.Load() {
		return emptyIterator{}
	}
	return inboxIterator{ib}
}

type inboxIterator struct{ ib *inbox }

func (it inboxIterator) Next(p *starlark.Value) bool {
	ok, err := it.nextErr(p)
	if err != nil {
		// An iterator cannot fail: cancel the thread before saying "no
		// more", so that the loop fails instead of ending quietly.
		it.ib.owner.Cancel(err.Error())
	}
	return ok
}

func (it inboxIterator) nextErr(p *starlark.Value) (bool, error) {
	ib := it.ib
	v, ok, err := ib.c.inbox.Recv(ib.ctx, ib.w)
	if ok {
		*p = v
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("inbox of %s: %w", ib.c.desc, err)
	}
	return false, nil
}

func (it inboxIterator) Done() {}

// inlineInbox is the inbox in sequential mode: the buffered items.
type inlineInbox struct {
	c      *coroutine
	th     *starlark.Thread
	closed bool
	next   int
	dead   bool

	// inject in sequential mode: where more items come from (see pullFrom).
	src    starlark.Iterator
	op     string
	srcErr error
}

var (
	_ starlark.Iterable = (*inlineInbox)(nil)
	_ Crosser           = (*inlineInbox)(nil)
)

func (ib *inlineInbox) String() string        { return "<inbox of " + ib.c.desc + ">" }
func (ib *inlineInbox) Type() string          { return "inbox" }
func (ib *inlineInbox) Freeze()               {}
func (ib *inlineInbox) Truth() starlark.Bool  { return true }
func (ib *inlineInbox) Hash() (uint32, error) { return hashPointer(ib), nil }

func (ib *inlineInbox) Cross(func(starlark.Value) error) error {
	return fmt.Errorf("the inbox of %s cannot be passed to another thread; iterate it in the coroutine's own function", ib.c.desc)
}

func (ib *inlineInbox) Iterate() starlark.Iterator { return inlineInboxIterator{ib} }

type inlineInboxIterator struct{ ib *inlineInbox }

func (it inlineInboxIterator) Next(p *starlark.Value) bool {
	ok, err := it.nextErr(p)
	if err != nil {
		it.ib.th.Cancel(err.Error())
	}
	return ok
}

func (it inlineInboxIterator) nextErr(p *starlark.Value) (bool, error) {
	ib := it.ib
	if ib.dead {
		return false, nil
	}
	if ib.next < len(ib.c.buf) {
		*p = ib.c.buf[ib.next]
		ib.c.buf[ib.next] = nil
		ib.next++
		return true, nil
	}
	if ib.src != nil {
		var x starlark.Value
		var ok bool
		var err error
		if eit, is := ib.src.(errIterator); is {
			ok, err = eit.nextErr(&x)
		} else {
			ok = ib.src.Next(&x)
		}
		if err == nil && ok {
			err = prepareItem(ib.c.in, ib.op, x)
		}
		if err != nil {
			ib.srcErr, ib.src = err, nil
			return false, fmt.Errorf("%s: the source failed", ib.op)
		}
		if !ok {
			ib.src = nil
			return false, nil
		}
		*p = x
		return true, nil
	}
	if !ib.closed {
		return false, fmt.Errorf("inbox of %s: the function waits for more items, but in sequential mode a coroutine runs only when it is closed or asked for its result, so none can come; close it before asking for its result", ib.c.desc)
	}
	return false, nil
}

func (it inlineInboxIterator) Done() {}
