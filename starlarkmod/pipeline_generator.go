package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/builtin"
)

// @generator: see the top of pipeline.go for the script API.

// errStreamStopped cancels a producer whose consumer stopped iterating.
var errStreamStopped = errors.New("the consumer stopped iterating")

// generatorDecorator is the predeclared generator: @generator, or
// @generator(buffer=N).
func generatorDecorator(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return bufferedDecorator(b, args, kwargs, func(fn starlark.Callable, buffer int) starlark.Value {
		return &generatorFunc{wrapped: wrapped{fn: fn}, buffer: buffer}
	})
}

// generatorFunc is a function decorated with @generator. Calling it
// returns a stream.
type generatorFunc struct {
	wrapped
	buffer int
}

var (
	_ starlark.Callable = (*generatorFunc)(nil)
	_ Crosser           = (*generatorFunc)(nil)
)

func (g *generatorFunc) String() string {
	if g.buffer > 0 {
		return fmt.Sprintf("<generator function %s (buffer %d)>", g.fn.Name(), g.buffer)
	}
	return fmt.Sprintf("<generator function %s>", g.fn.Name())
}
func (g *generatorFunc) Type() string { return "generator_function" }

// CallInternal returns a stream of what fn(emit, *args, **kwargs) emits.
// Nothing runs until the stream is iterated; the arguments are prepared
// now, so that errors point at the call.
func (g *generatorFunc) CallInternal(th *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r, err := needRun(th, g.fn.Name())
	if err != nil {
		return nil, err
	}
	in := r.in
	if err := in.prepareArgs(th, g.fn.Name(), true, g.fn, args, kwargs); err != nil {
		return nil, err
	}
	return &stream{
		g:      g,
		in:     in,
		run:    r,
		args:   args,
		kwargs: kwargs,
		owner:  th,
		desc:   fmt.Sprintf("%s(%s) called at %s", g.fn.Name(), shortArgs(args, kwargs), callerPos(th)),
		key:    stateOf(th).nextChild(),
	}, nil
}

// stream is the lazy iterable returned by calling a @generator function.
// It belongs to the thread that created it (owner): iteration blocks that
// thread, and failures cancel it (an iterator cannot return an error).
// Crossing refuses to let a stream reach another thread (Cross), a task's
// result included, so only its owner can iterate it (a stream that is a
// global of a loaded module was made by the same thread: load runs on the
// loading thread).
type stream struct {
	g      *generatorFunc
	in     *Interpreter
	run    *Run
	args   starlark.Tuple
	kwargs []starlark.Tuple
	owner  *starlark.Thread
	desc   string
	key    taskRef
	used   atomic.Bool
}

var (
	_ starlark.Iterable = (*stream)(nil)
	_ Crosser           = (*stream)(nil)
)

func (s *stream) String() string        { return "<stream " + s.desc + ">" }
func (s *stream) Type() string          { return "stream" }
func (s *stream) Freeze()               {}
func (s *stream) Truth() starlark.Bool  { return true }
func (s *stream) Hash() (uint32, error) { return builtin.HashPointer(s), nil }

func (s *stream) Cross(func(starlark.Value) error) error {
	return fmt.Errorf("stream %s cannot be passed to another thread: iterate it on the thread that called %s, or pass %s itself and call it there",
		s.desc, s.g.fn.Name(), s.g.fn.Name())
}

// fail reports err to the consumer, the owner, by cancelling its thread
// (an iterator cannot return an error; see PITFALLS.md).
func (s *stream) fail(err error) { s.owner.Cancel(err.Error()) }

// Iterate has no thread parameter to check its caller against the owner:
// the crossing refusal (Cross) is the guard that keeps a stream on the
// thread that made it.
func (s *stream) Iterate() starlark.Iterator {
	if s.used.Swap(true) {
		s.fail(fmt.Errorf("stream %s was already iterated; a stream can be iterated only once (call %s again for a new one)", s.desc, s.g.fn.Name()))
		return emptyIterator{}
	}
	return s.start(contextOf(s.owner), workerOf(s.owner))
}

// start runs the producer on a worker, feeding an engine.Stream.
func (s *stream) start(ctx context.Context, w *engine.Worker) starlark.Iterator {
	in := s.in
	pctx, cancel := context.WithCancelCause(ctx)
	st := engine.NewStream[starlark.Value](s.g.buffer)
	rec := s.run.record("generator", s.desc)
	em := &emitter{s: s, st: st}
	emit := starlark.NewBuiltin("emit", emitBuiltin).BindReceiver(em)
	ef := engine.Go(pctx, in.pool, func(ctx context.Context, w *engine.Worker) (starlark.Value, error) {
		em.ctx, em.w = ctx, w
		em.owner.Store(workerThread.Get(w))
		defer em.done.Store(true)
		return s.run.runTask(ctx, w, s.key, s.g.fn, append(starlark.Tuple{emit}, s.args...), s.kwargs)
	})
	ef.OnDone(func() {
		_, _, err := ef.Peek()
		if released, _ := st.Released(); released {
			err = nil // stopped by its consumer: not a failure
		}
		if err != nil {
			st.Close(&TaskError{Op: "generator", Task: s.desc, Err: err})
		} else {
			st.Close(nil)
		}
		rec.finish(err)
	})
	return &streamIterator{s: s, st: st, ctx: ctx, w: w, cancel: cancel, fut: ef}
}

// streamIterator iterates a running stream.
type streamIterator struct {
	s      *stream
	st     *engine.Stream[starlark.Value]
	ctx    context.Context
	w      *engine.Worker
	cancel context.CancelCauseFunc
	fut    *engine.Future[starlark.Value]
	done   bool
}

func (it *streamIterator) Next(p *starlark.Value) bool {
	ok, err := it.NextErr(p)
	if err != nil {
		// Cancel the consuming thread before saying "no more", so that the
		// loop fails rather than ends as if the stream were complete.
		it.s.fail(err)
	}
	return ok
}

func (it *streamIterator) NextErr(p *starlark.Value) (bool, error) {
	v, ok, err := it.st.Recv(it.ctx, it.w)
	if ok {
		*p = v
		return true, nil
	}
	var te *TaskError
	if err == nil || errors.As(err, &te) {
		return false, err
	}
	return false, fmt.Errorf("stream %s: %w", it.s.desc, err)
}

// Done releases the producer (if it is still producing, its emit fails
// and its thread is cancelled) and waits until it has stopped, so that no
// code of the generator runs after the loop.
func (it *streamIterator) Done() {
	if it.done {
		return
	}
	it.done = true
	it.st.Release(nil)
	it.cancel(errStreamStopped)
	// Prompt: the producer's context is cancelled. Not under the
	// consumer's context, which may be done too: the wait must not end
	// before the producer has.
	it.fut.Result(context.Background(), it.w) //nolint:errcheck // its end is what we wait for
}

// spliceInto is inject(s, c): rather than pass each item
// through the injecting thread (two hand-offs), the producer's emit gives
// it straight to c, on the producer's thread, and inject only waits. The
// semantics are those of feeding c from a loop over s, with one bound less
// on how far the producer runs ahead: emit returns when c has the item.
// The producer stops as soon as c's function returns or fails (its thread
// is cancelled); if the producer fails, c's inbox ends with the failure.
func (s *stream) spliceInto(th *starlark.Thread, op string, c consumer) (starlark.Value, error) {
	if s.used.Swap(true) {
		return nil, fmt.Errorf("%s: stream %s was already iterated; a stream can be iterated only once (call %s again for a new one)", op, s.desc, s.g.fn.Name())
	}
	in := s.in
	ctx := contextOf(th)
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rec := s.run.record("generator", s.desc)
	em := &emitter{s: s, sink: c, op: op}
	if co, ok := c.(*coroutine); ok && co.inbox != nil {
		em.co, em.st = co, co.inbox // straight into its inbox
	}
	emit := starlark.NewBuiltin("emit", emitBuiltin).BindReceiver(em)
	ef := engine.Go(pctx, in.pool, func(ctx context.Context, w *engine.Worker) (starlark.Value, error) {
		em.ctx, em.w = ctx, w
		em.owner.Store(workerThread.Get(w))
		defer em.done.Store(true)
		return s.run.runTask(ctx, w, s.key, s.g.fn, append(starlark.Tuple{emit}, s.args...), s.kwargs)
	})
	if co, ok := c.(*coroutine); ok && co.inbox != nil {
		co.fut.f.OnDone(func() { cancel(errStreamStopped) }) // it takes nothing more
	}
	w := workerOf(th)
	if _, err := ef.Result(ctx, w); err != nil && ctx.Err() != nil {
		cancel(context.Cause(ctx))
		ef.Result(context.Background(), w) //nolint:errcheck // prompt: its context is done
	}
	_, _, perr := ef.Peek()
	if err := ctx.Err(); err != nil {
		rec.finish(err)
		return nil, fmt.Errorf("%s: %w", op, context.Cause(ctx))
	}
	switch {
	case em.sinkErr == errFinished, em.sinkErr == nil && stopped(c):
		// The consumer returned: the producer's end (its emit failing, or
		// its thread cancelled) is not a failure.
		rec.finish(nil)
	case em.sinkErr != nil:
		rec.finish(nil)
		return nil, em.sinkErr // the consumer's failure, with its traceback
	case perr != nil:
		rec.finish(perr)
		return nil, abortConsumer(th, op, c, &TaskError{Op: "generator", Task: s.desc, Err: perr})
	default:
		rec.finish(nil)
	}
	c.close(th)
	return c.result(th, op, timeoutArg{})
}

// stopped reports whether a consumer's function has returned (for a
// broadcast, whether every consumer's has).
func stopped(c consumer) bool {
	switch c := c.(type) {
	case *coroutine:
		return c.fut.f.IsDone()
	case *broadcastValue:
		for _, x := range c.consumers {
			if !stopped(x) {
				return false
			}
		}
		return len(c.consumers) > 0
	}
	return false
}

// emitter is the receiver of a producer's emit builtin. It belongs to the
// producer's thread.
type emitter struct {
	s     *stream
	st    *engine.Stream[starlark.Value] // parallel mode
	ctx   context.Context
	w     *engine.Worker
	done  atomic.Bool                     // the producer has returned
	owner atomic.Pointer[starlark.Thread] // the producer's thread

	// inject, spliced: emit puts items straight into sink (see spliceInto);
	// if it is a coroutine, into its inbox (st).
	sink    consumer
	co      *coroutine
	op      string
	sinkErr error
}

var _ Crosser = (*emitter)(nil)

func (em *emitter) String() string        { return "<emit of " + em.s.desc + ">" }
func (em *emitter) Type() string          { return "emit" }
func (em *emitter) Freeze()               {}
func (em *emitter) Truth() starlark.Bool  { return true }
func (em *emitter) Hash() (uint32, error) { return builtin.HashPointer(em), nil }

func (em *emitter) Cross(func(starlark.Value) error) error {
	return fmt.Errorf("emit of %s cannot be passed to another thread; call it in the generator's own function", em.s.desc)
}

// emitBuiltin is emit(x): it hands x to the stream's consumer, waiting
// while the stream is full (without a buffer: until the consumer takes x).
func emitBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 1 || len(kwargs) != 0 {
		var x starlark.Value
		return nil, starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &x)
	}
	em := b.Receiver().(*emitter)
	x := args[0]
	if em.done.Load() {
		return nil, fmt.Errorf("%s: %s has returned; emit works only while the generator runs", b.Name(), em.s.desc)
	}
	// emit cannot cross (Cross refuses it); should it reach another thread
	// anyway, it still refuses to run there.
	if o := em.owner.Load(); o != nil && o != th {
		return nil, fmt.Errorf("%s: called on thread %s, but the emit of %s belongs to the generator's thread %s; call it in the generator's own function", b.Name(), th.Name, em.s.desc, o.Name)
	}
	if err := prepareItem(em.s.in, b.Name(), x); err != nil {
		return nil, err
	}
	if em.sink != nil {
		var err error
		if em.co != nil {
			err = em.co.sendErr(th, em.op, em.st.Send(em.ctx, em.w, x))
		} else {
			err = em.sink.put(th, em.op, x)
		}
		if err != nil {
			em.sinkErr = err
			if err == errFinished {
				err = errStreamStopped
			}
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		return starlark.None, nil
	}
	if err := em.st.Send(em.ctx, em.w, x); err != nil {
		if errors.Is(err, engine.ErrReleased) {
			err = errStreamStopped
		}
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}
