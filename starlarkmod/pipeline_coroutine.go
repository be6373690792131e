package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/builtin"
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

// CallInternal starts the consumer: fn(inbox, *args, **kwargs) on a worker.
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

	c.inbox = engine.NewStream[starlark.Value](cf.buffer)
	ef := engine.Go(r.bgContext(th), in.pool, func(ctx context.Context, w *engine.Worker) (starlark.Value, error) {
		ib := &inbox{c: c, ctx: ctx, w: w, owner: workerThread.Get(w)}
		c.running.Store(ib.owner)
		defer c.running.Store(nil)
		defer ib.dead.Store(true)
		return r.runTask(ctx, w, c.key, c.fn, append(starlark.Tuple{ib}, c.args...), c.kwargs)
	})
	ef.OnDone(func() {
		// On the consumer's goroutine (or, if the task never ran, on the
		// one that found out): nothing more will be received.
		_, _, err := ef.Peek()
		if err == nil {
			c.inbox.Release(errFinished)
		} else {
			c.inbox.Release(err)
		}
		c.rec.finish(err)
	})
	c.fut = newFuture(ef, "coroutine", c.desc)
	c.fut.consumer = c
	r.track(c.fut)
	p.addOpen(c)
	return c, nil
}

// coroutine is a started consumer: the value returned by calling a
// @coroutine function.
type coroutine struct {
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

	inbox   *engine.Stream[starlark.Value]
	running atomic.Pointer[starlark.Thread] // the thread running the function

	mu       sync.Mutex
	closed   bool   // guarded by mu; isClosed reads it without
	closedAt string // guarded by mu
	closing  atomic.Bool
	awaited  atomic.Int32 // threads waiting in result() while it is open
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
func (c *coroutine) Hash() (uint32, error) { return builtin.HashPointer(c), nil }

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
func (c *coroutine) AttrNames() []string { return builtin.SortedKeys(consumerMethods) }

func (c *coroutine) put(th *starlark.Thread, op string, x starlark.Value) error {
	if c.running.Load() == th {
		return fmt.Errorf("%s: %s cannot send to itself: it would wait for itself forever", op, c.desc)
	}
	if err := c.refusal(op); err != nil {
		return err
	}
	return c.sendErr(th, op, c.inbox.Send(contextOf(th), workerOf(th), x))
}

func (c *coroutine) putBatch(th *starlark.Thread, op string, xs []starlark.Value) error {
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
	if _, done, err := c.fut.f.Peek(); done && err != nil {
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

// closeAt closes the consumer; where says where, for later errors.
func (c *coroutine) closeAt(th *starlark.Thread, where string) {
	if c.markClosed(where) {
		c.inbox.Close(nil)
	}
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
	c.closed, c.closedAt = true, "an abort ("+err.Error()+")"
	c.closing.Store(true)
	c.mu.Unlock()
	c.run.pipelines().removeOpen(c)
	c.fut.observed.Store(true)
	c.inbox.Close(err)
}

func (c *coroutine) result(th *starlark.Thread, op string, t timeoutArg) (starlark.Value, error) {
	defer c.fut.lookedAt()
	if !c.fut.f.IsDone() && !c.closing.Load() {
		// Waiting for a consumer nobody closed: at the end of the run, Wait
		// closes it rather than wait for this wait (see Run.Wait).
		c.awaited.Add(1)
		defer c.awaited.Add(-1)
		c.run.kickWait()
	}
	v, err := c.fut.await(th, t.D)
	if err != nil {
		return nil, c.fut.wrap(op, err)
	}
	return v, nil
}

// uncancelTask clears a cancellation that an iterator (which cannot return
// an error) left on th, a worker's thread, while it ran a task whose error
// was reported (a dispatcher handler), so that it does not fail the next
// one, unless th's context is really done. A step limit still applies: it
// is checked before every step.
func uncancelTask(th *starlark.Thread) {
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
func (ib *inbox) Hash() (uint32, error) { return builtin.HashPointer(ib), nil }

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
	ok, err := it.NextErr(p)
	if err != nil {
		// An iterator cannot fail: cancel the thread before saying "no
		// more", so that the loop fails instead of ending quietly.
		it.ib.owner.Cancel(err.Error())
	}
	return ok
}

func (it inboxIterator) NextErr(p *starlark.Value) (bool, error) {
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
