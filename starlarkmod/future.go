package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/builtin"
)

// A Future is the Starlark value of pending work: a semisync call handle,
// the result of begin(_future=True), a @future call. Its methods follow
// concurrent.futures and concert:
//
//	f.result(timeout=None)     the value, or the task's error; waits
//	f.wait(timeout=None)       waits, raises the task's error, returns f
//	f.exception()              the error message or None; waits
//	f.done()                   whether it is resolved
//	f.cancel()                 cancels it (stopping running code); True if it was pending
//	f.cancelled()              whether cancel() cancelled it
//
// A Future is safe to share between threads; it is hashable by identity.
type Future struct {
	f        *engine.Future[starlark.Value]
	about    fmt.Stringer // what it is the future of, e.g. "revenue() queued at x.star:3:1"
	op       string       // the builtin that started it, for errors
	observed atomic.Bool
	seq      uint64 // set by Run.track

	// notStarted, if set, reports that the work has not been started and
	// will not be unless the script does something first (a semisync call
	// before semisync.begin): waiting would wait forever.
	notStarted func(op string) error

	// consumer is set on the future of a coroutine's function: it ends only
	// once the coroutine is closed (see Run.Wait).
	consumer *coroutine
}

var (
	_ starlark.HasAttrs = (*Future)(nil)
	_ Crosser           = (*Future)(nil)
)

func newFuture(f *engine.Future[starlark.Value], op, desc string) *Future {
	return &Future{f: f, op: op, about: text(desc)}
}

// newFutureOf is newFuture with a description formatted only when needed
// (most futures never print one).
func newFutureOf(f *engine.Future[starlark.Value], op string, about fmt.Stringer) *Future {
	return &Future{f: f, op: op, about: about}
}

type text string

func (t text) String() string { return string(t) }

// desc describes what f is the future of.
func (f *Future) desc() string { return f.about.String() }

func (f *Future) String() string {
	state := "pending"
	if _, ok, err := f.f.Peek(); ok {
		switch {
		case f.f.Cancelled():
			state = "cancelled"
		case err != nil:
			state = "failed"
		default:
			state = "done"
		}
	}
	return fmt.Sprintf("<future %s: %s>", f.desc(), state)
}
func (f *Future) Type() string          { return "future" }
func (f *Future) Freeze()               {}
func (f *Future) Truth() starlark.Bool  { return true }
func (f *Future) Hash() (uint32, error) { return builtin.HashPointer(f), nil }

// Cross lets a future cross: it is safe for concurrent use, and its
// result was readied to cross when the task produced it.
func (f *Future) Cross(func(starlark.Value) error) error { return nil }

var futureMethods = map[string]*starlark.Builtin{
	"result":    starlark.NewBuiltin("result", futureResult),
	"wait":      starlark.NewBuiltin("wait", futureWait),
	"exception": starlark.NewBuiltin("exception", futureException),
	"done":      starlark.NewBuiltin("done", futureDone),
	"cancel":    starlark.NewBuiltin("cancel", futureCancel),
	"cancelled": starlark.NewBuiltin("cancelled", futureCancelled),
}

func (f *Future) Attr(name string) (starlark.Value, error) {
	if b, ok := futureMethods[name]; ok {
		return b.BindReceiver(f), nil
	}
	return nil, nil
}

func (f *Future) AttrNames() []string { return builtin.SortedKeys(futureMethods) }

// await waits on th for f (see workerOf), watching th's context.
func (f *Future) await(th *starlark.Thread, timeout time.Duration) (starlark.Value, error) {
	if v, ok, err := f.f.Peek(); ok {
		return v, err
	}
	return f.f.Wait(contextOf(th), workerOf(th), timeout)
}

// outcome waits for f and returns its value or an error fit to be returned
// by the builtin b: the task's traceback wrapped with where it came from.
func (f *Future) outcome(th *starlark.Thread, b *starlark.Builtin, timeout time.Duration) (starlark.Value, error) {
	if f.notStarted != nil {
		if err := f.notStarted(b.Name()); err != nil {
			return nil, err
		}
	}
	v, err := f.await(th, timeout)
	f.lookedAt()
	if err != nil {
		return nil, f.wrap(b.Name(), err)
	}
	return v, nil
}

// lookedAt records that the script saw the future's outcome, if it is
// resolved: a wait that gave up (a timeout, an interruption) did not see
// it, and a failure nobody saw is reported at the end of the run.
func (f *Future) lookedAt() {
	if f.f.IsDone() {
		f.observed.Store(true)
	}
}

// wrap explains an error of f's for a builtin called op.
func (f *Future) wrap(op string, err error) error {
	switch {
	case errors.Is(err, engine.ErrTimeout):
		return fmt.Errorf("%s: timed out waiting for %s", op, f.desc())
	case f.f.Cancelled():
		return fmt.Errorf("%s: %s was cancelled", op, f.desc())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	}
	var te *TaskError
	if errors.As(err, &te) && te == err {
		return err // already says where it came from
	}
	return &TaskError{Op: op, Task: f.desc(), Err: err}
}

func futureResult(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var t timeoutArg
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "timeout?", &t); err != nil {
		return nil, err
	}
	return b.Receiver().(*Future).outcome(th, b, t.D)
}

func futureWait(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var t timeoutArg
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "timeout?", &t); err != nil {
		return nil, err
	}
	f := b.Receiver().(*Future)
	if _, err := f.outcome(th, b, t.D); err != nil {
		return nil, err
	}
	return f, nil
}

func futureException(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var t timeoutArg
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "timeout?", &t); err != nil {
		return nil, err
	}
	f := b.Receiver().(*Future)
	_, err := f.await(th, t.D)
	f.lookedAt()
	switch {
	case err == nil:
		return starlark.None, nil
	case errors.Is(err, engine.ErrTimeout) && !f.f.IsDone():
		return nil, f.wrap(b.Name(), err)
	}
	return starlark.String(errText(err)), nil
}

func futureDone(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	f := b.Receiver().(*Future)
	if !f.f.IsDone() {
		// A loop that polls done() must make progress in sequential mode
		// too: not done yet, let the tasks that are ready run first (in
		// parallel mode this returns at once).
		if err := workerOf(th).Sleep(contextOf(th), 0); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), scriptCause(err))
		}
	}
	return starlark.Bool(f.f.IsDone()), nil
}

func futureCancel(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	f := b.Receiver().(*Future)
	ok := f.f.Cancel()
	if ok {
		// Its outcome is the cancellation the script asked for. A cancel
		// that came too late (the future was resolved) saw nothing.
		f.observed.Store(true)
	}
	return starlark.Bool(ok), nil
}

func futureCancelled(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return starlark.Bool(b.Receiver().(*Future).f.Cancelled()), nil
}
