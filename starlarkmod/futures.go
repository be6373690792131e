package starlarkmod

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/builtin"
)

// Futures, after concert (@async, here @future since async is reserved in
// Starlark) and synchronicity:
//
//	@future                          calling the function returns a Future at once;
//	                                 the call runs on a worker (see [Future] for its methods)
//	is_async(f)                      whether f is a @future function
//	wait(futures, timeout=None)      waits for all; raises the first error in list order;
//	                                 returns the list of results
//	as_completed(futures, timeout=None)
//	                                 iterates over the futures in completion order
//	Synchronizer()                   has create_blocking(f): calls of the result block and
//	                                 return f's result; f(x, _future=True) returns a Future
//
// A future's function is background work: it may outlive the line that
// started it, so it may not read a global or captured variable that can
// still be re-bound (see crossing.go). Futures keep running while the
// script goes on; the interpreter waits for all of them before it exits and
// reports the errors nobody looked at. In sequential mode a call's
// function runs when the calling thread waits (for this future or anything
// else), one task at a time. Only a look at a resolved future counts as
// observing it: as_completed marks the futures it yields, and a result()
// whose timeout expires or a cancel() that comes too late do not look.

// asyncFunc is a @future function.
type asyncFunc struct{ wrapped }

var (
	_ starlark.Callable = (*asyncFunc)(nil)
	_ Crosser           = (*asyncFunc)(nil)
)

func (a *asyncFunc) String() string { return fmt.Sprintf("<future function %s>", a.fn.Name()) }
func (a *asyncFunc) Type() string   { return "future_function" }

func (a *asyncFunc) CallInternal(th *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return startFuture(th, a.fn, "future", args, kwargs)
}

// startFuture starts fn(*args, **kwargs) as background work and returns
// its Future.
func startFuture(th *starlark.Thread, fn starlark.Callable, op string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r, err := needRun(th, fn.Name())
	if err != nil {
		return nil, err
	}
	in := r.in
	if err := in.prepareArgs(th, fn.Name(), true, fn, args, kwargs); err != nil {
		return nil, err
	}
	call := &futureCall{fn: fn, args: args, kwargs: kwargs, pos: callerPosition(th)}
	key := stateOf(th).nextChild()
	rc, err := r.remoteCall(fn.Name(), fn, args, kwargs, key, call.pos) // nil without a cluster
	if err != nil {
		return nil, err
	}
	rec := r.recordOf(op, call)
	r.obs.startedAt(key, call.pos)
	f := engine.Go(r.bgContext(th), in.pool, func(ctx context.Context, w *engine.Worker) (starlark.Value, error) {
		if rc != nil {
			return r.runRemote(ctx, w, rc)
		}
		return r.runTask(ctx, w, key, fn, args, kwargs)
	})
	f.OnDone(func() {
		_, _, err := f.Peek()
		rec.finish(err)
	})
	fut := newFutureOf(f, fn.Name(), call)
	r.track(fut)
	return fut, nil
}

// futureCall describes a future's call for messages, formatted on demand.
type futureCall struct {
	fn     starlark.Callable
	args   starlark.Tuple
	kwargs []starlark.Tuple
	pos    syntax.Position
}

func (c *futureCall) String() string {
	return fmt.Sprintf("%s(%s) called %s", c.fn.Name(), shortArgs(c.args, c.kwargs), at(c.pos))
}

// at says where a call was made: "at file:line:col", or "from Go" if a host
// called it (there is no Starlark frame).
func at(pos syntax.Position) string {
	if !pos.IsValid() {
		return "from Go"
	}
	return "at " + pos.String()
}

func futureDecorator(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn starlark.Callable
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &fn); err != nil {
		return nil, err
	}
	return &asyncFunc{wrapped{fn: fn}}, nil
}

func isAsync(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &v); err != nil {
		return nil, err
	}
	_, ok := v.(*asyncFunc)
	return starlark.Bool(ok), nil
}

// futuresArg unpacks an iterable of futures.
func futuresArg(op string, v starlark.Iterable) ([]*Future, error) {
	var fs []*Future
	it := v.Iterate()
	defer it.Done()
	var x starlark.Value
	for i := 0; it.Next(&x); i++ {
		f, ok := x.(*Future)
		if !ok {
			return nil, fmt.Errorf("%s: element %d: got %s, want future", op, i, x.Type())
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// deadline returns a context for th's waits limited by timeout (if set).
func deadline(th *starlark.Thread, t timeoutArg) (context.Context, context.CancelFunc) {
	ctx := contextOf(th)
	if t.D > 0 {
		return context.WithTimeoutCause(ctx, t.D, engine.ErrTimeout)
	}
	return context.WithCancel(ctx)
}

func waitAll(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var list starlark.Iterable
	var t timeoutArg
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "futures", &list, "timeout?", &t); err != nil {
		return nil, err
	}
	fs, err := futuresArg(b.Name(), list)
	if err != nil {
		return nil, err
	}
	ctx, cancel := deadline(th, t)
	defer cancel()
	w := workerOf(th)
	results := make([]starlark.Value, len(fs))
	var first error
	for i, f := range fs {
		v, err := f.f.Result(ctx, w)
		f.lookedAt()
		if err != nil && ctx.Err() != nil && !f.f.IsDone() {
			if context.Cause(ctx) == engine.ErrTimeout {
				return nil, fmt.Errorf("%s: timed out after %s waiting for %s", b.Name(), t.D, f.desc())
			}
			return nil, fmt.Errorf("%s: %w", b.Name(), context.Cause(ctx))
		}
		if err != nil && first == nil {
			first = f.wrap(b.Name(), err)
		}
		results[i] = v
		if v == nil {
			results[i] = starlark.None
		}
	}
	if first != nil {
		return nil, first
	}
	return starlark.NewList(results), nil
}

func asCompleted(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var list starlark.Iterable
	var t timeoutArg
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "futures", &list, "timeout?", &t); err != nil {
		return nil, err
	}
	fs, err := futuresArg(b.Name(), list)
	if err != nil {
		return nil, err
	}
	// Each future once, as Python's as_completed does with a set.
	seen := make(map[*Future]bool, len(fs))
	uniq := fs[:0]
	for _, f := range fs {
		if !seen[f] {
			seen[f] = true
			uniq = append(uniq, f)
		}
	}
	fs = uniq
	ac := &completedIter{th: th, op: b.Name(), timeout: t.D, ch: make(chan *Future, len(fs)), n: len(fs)}
	for _, f := range fs {
		f.f.OnDone(func() { ac.ch <- f })
	}
	return ac, nil
}

// completedIter is the iterable returned by as_completed. It belongs to the
// thread that called as_completed: on timeout or cancellation it cancels
// that thread (an iterator cannot return an error), so the loop fails with
// the reason rather than ending as if every future were done.
type completedIter struct {
	th      *starlark.Thread
	op      string
	timeout time.Duration
	ch      chan *Future
	n       int
	used    atomic.Bool
}

func (c *completedIter) String() string        { return fmt.Sprintf("<as_completed of %d futures>", c.n) }
func (c *completedIter) Type() string          { return "as_completed" }
func (c *completedIter) Freeze()               {}
func (c *completedIter) Truth() starlark.Bool  { return true }
func (c *completedIter) Hash() (uint32, error) { return builtin.HashPointer(c), nil }

// Cross refuses: the iterable blocks and cancels the thread that called
// as_completed. (Iterate has no thread parameter to check its caller
// against: this refusal is the guard.)
func (c *completedIter) Cross(func(starlark.Value) error) error {
	return fmt.Errorf("the result of %s cannot be passed to another thread: iterate it on the thread that called %s, or pass the futures themselves", c.op, c.op)
}

var _ Crosser = (*completedIter)(nil)

func (c *completedIter) Iterate() starlark.Iterator {
	it := &completedIterator{c: c, left: c.n}
	if c.used.Swap(true) {
		it.left = 0
		c.th.Cancel(c.op + ": the result of as_completed can be iterated only once")
	}
	if c.timeout > 0 {
		it.deadline = time.Now().Add(c.timeout)
	}
	return it
}

type completedIterator struct {
	c        *completedIter
	left     int
	deadline time.Time
}

func (it *completedIterator) Next(p *starlark.Value) bool {
	if it.left == 0 {
		return false
	}
	c := it.c
	select {
	case f := <-c.ch:
		it.left--
		f.observed.Store(true) // the loop gets it: the script sees its outcome
		*p = f
		return true
	default:
	}
	var wait time.Duration
	if !it.deadline.IsZero() {
		if wait = time.Until(it.deadline); wait <= 0 {
			wait = 1 // the deadline has passed: look once more, then give up
		}
	}
	f, _, err := recvOn(c.th, c.ch, wait)
	switch {
	case err == nil:
		it.left--
		f.observed.Store(true)
		*p = f
		return true
	case err == engine.ErrTimeout:
		c.th.Cancel(fmt.Sprintf("%s: timed out after %s with %d of %d futures not done", c.op, c.timeout, it.left, c.n))
	default:
		c.th.Cancel(fmt.Sprintf("%s: %v", c.op, err))
	}
	return false
}

func (it *completedIterator) Done() {}

// synchronizer is synchronicity's Synchronizer().
type synchronizer struct{}

var synchronizerMethods = map[string]*starlark.Builtin{
	"create_blocking": starlark.NewBuiltin("Synchronizer.create_blocking", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var fn starlark.Callable
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &fn); err != nil {
			return nil, err
		}
		return &blockingFunc{wrapped{fn: fn}}, nil
	}),
}

func newSynchronizer(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return synchronizer{}, nil
}

func (synchronizer) String() string        { return "<Synchronizer>" }
func (synchronizer) Type() string          { return "Synchronizer" }
func (synchronizer) Freeze()               {}
func (synchronizer) Truth() starlark.Bool  { return true }
func (synchronizer) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: Synchronizer") }

// Cross lets a Synchronizer cross: it holds nothing.
func (synchronizer) Cross(func(starlark.Value) error) error { return nil }
func (s synchronizer) Attr(name string) (starlark.Value, error) {
	return builtin.MethodAttr(s, synchronizerMethods, name)
}
func (synchronizer) AttrNames() []string { return builtin.SortedKeys(synchronizerMethods) }

// blockingFunc is a function wrapped by Synchronizer.create_blocking: a
// plain call runs it on the calling thread and returns its result (the
// traceback stays whole); f(..., _future=True) starts it as a future.
type blockingFunc struct{ wrapped }

var (
	_ starlark.Callable = (*blockingFunc)(nil)
	_ Crosser           = (*blockingFunc)(nil)
)

func (s *blockingFunc) String() string { return fmt.Sprintf("<synchronized function %s>", s.fn.Name()) }
func (s *blockingFunc) Type() string   { return "synchronized_function" }

func (s *blockingFunc) CallInternal(th *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	future := false
	rest := kwargs[:0:0]
	for _, kv := range kwargs {
		if kv[0].(starlark.String) == "_future" {
			future = bool(kv[1].Truth())
			continue
		}
		rest = append(rest, kv)
	}
	if future {
		return startFuture(th, s.fn, "future", args, rest)
	}
	return starlark.Call(th, s.fn, args, rest)
}
