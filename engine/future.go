package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrCancelled is the error of a future cancelled with [Future.Cancel]
// before it produced a result.
var ErrCancelled = errors.New("engine: cancelled")

// ErrTimeout is returned by waits that gave up after their timeout.
var ErrTimeout = errors.New("engine: timed out")

// A Future is the eventual result of a task: a value of type T or an error.
// It is resolved exactly once. All methods are safe for concurrent use.
type Future[T any] struct {
	done      chan struct{} // made on demand by Done, under mu; closed when resolved
	resolved  atomic.Bool
	cancelled atomic.Bool
	val       T
	err       error

	mu     sync.Mutex
	cbs    []func()
	cancel context.CancelCauseFunc // of the task's context; nil for promises
}

// NewPromise returns an unresolved future and the function that resolves it.
// resolve reports whether this call resolved the future; later calls (and
// calls after [Future.Cancel]) do nothing.
func NewPromise[T any]() (*Future[T], func(T, error) bool) {
	p := new(Promise[T])
	return &p.Future, p.Resolve
}

// A Promise is a [Future] resolved by its owner rather than by a task. The
// zero Promise is pending and ready to use; embed it to allocate a future
// together with the record it belongs to.
type Promise[T any] struct {
	Future[T]
}

// Resolve resolves the promise's future with v and err and reports whether
// this call did so; later calls (and calls after [Future.Cancel]) do
// nothing.
func (p *Promise[T]) Resolve(v T, err error) bool { return p.resolve(v, err, false) }

// Resolved returns a future that is already resolved with v and err.
func Resolved[T any](v T, err error) *Future[T] {
	f := new(Future[T])
	f.resolve(v, err, false)
	return f
}

// Go runs fn on ex with a context derived from ctx and returns its future.
// [Future.Cancel] cancels that context. If ex refuses the task, the future
// is resolved with the refusal. A panic in fn is re-raised by
// [Future.Result].
func Go[T any](ctx context.Context, ex Executor, fn func(ctx context.Context, w *Worker) (T, error)) *Future[T] {
	f := new(Future[T])
	ctx, cancel := context.WithCancelCause(ctx)
	f.cancel = cancel
	err := ex.Go(ctx, func(ctx context.Context, w *Worker) {
		defer cancel(nil)
		if err := context.Cause(ctx); err != nil {
			var zero T
			f.resolve(zero, err, false)
			return
		}
		v, err := catch(func() (T, error) { return fn(ctx, w) })
		f.resolve(v, err, false)
	})
	if err != nil {
		var zero T
		f.resolve(zero, err, false)
		cancel(nil)
	}
	return f
}

// resolve resolves f with v and err unless it is already resolved. cancelled
// is recorded before f is marked resolved, so that callbacks and waiters woken
// by Cancel already see Cancelled() == true.
func (f *Future[T]) resolve(v T, err error, cancelled bool) bool {
	f.mu.Lock()
	if f.resolved.Load() {
		f.mu.Unlock()
		return false
	}
	f.val, f.err = v, err
	if cancelled {
		f.cancelled.Store(true)
	}
	f.resolved.Store(true)
	if f.done != nil {
		close(f.done)
	}
	cbs := f.cbs
	f.cbs = nil
	f.mu.Unlock()
	for _, cb := range cbs {
		cb()
	}
	return true
}

// closed is the Done channel of every future resolved before anyone asked.
var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Done returns a channel that is closed when the future is resolved. Most
// futures are never waited on through a channel, so it is made on demand.
func (f *Future[T]) Done() <-chan struct{} {
	if f.resolved.Load() {
		return closed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resolved.Load() {
		return closed
	}
	if f.done == nil {
		f.done = make(chan struct{})
	}
	return f.done
}

// IsDone reports whether the future is resolved.
func (f *Future[T]) IsDone() bool { return f.resolved.Load() }

// Result waits until the future is resolved or ctx is done, and returns the
// value and error. w is the calling goroutine's [Worker] (nil if it has
// none); Result waits through [Recv]. If the task panicked, Result panics
// with its [*PanicError]. If ctx ends first, Result returns ctx's cause.
func (f *Future[T]) Result(ctx context.Context, w *Worker) (T, error) {
	return f.Wait(ctx, w, 0)
}

// Wait is like [Future.Result] but gives up after timeout (if positive) with
// [ErrTimeout] (in a serial pool, a timer of its virtual clock).
func (f *Future[T]) Wait(ctx context.Context, w *Worker, timeout time.Duration) (T, error) {
	if !f.resolved.Load() {
		if _, _, err := Recv(ctx, w, f.Done(), timeout); err != nil {
			var zero T
			return zero, err
		}
	}
	repanic(f.err)
	return f.val, f.err
}

// Peek returns the value and error of a resolved future and true, or false
// if it is not resolved yet. It never blocks or panics.
func (f *Future[T]) Peek() (v T, ok bool, err error) {
	if !f.resolved.Load() {
		return v, false, nil
	}
	return f.val, true, f.err
}

// OnDone arranges for cb to be called once the future is resolved: at once,
// on the calling goroutine, if it already is; otherwise on the goroutine
// that resolves it. cb must not block.
func (f *Future[T]) OnDone(cb func()) {
	f.mu.Lock()
	if !f.resolved.Load() {
		f.cbs = append(f.cbs, cb)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	cb()
}

// Cancel resolves an unresolved future with [ErrCancelled] and cancels the
// context of its task, so a running task stops promptly and a queued one
// never starts. It reports whether the future was cancelled (false if it was
// already resolved).
func (f *Future[T]) Cancel() bool {
	var zero T
	if !f.resolve(zero, ErrCancelled, true) {
		return false
	}
	if f.cancel != nil {
		f.cancel(ErrCancelled)
	}
	return true
}

// Cancelled reports whether [Future.Cancel] cancelled the future.
func (f *Future[T]) Cancelled() bool { return f.cancelled.Load() }
