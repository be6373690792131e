package engine

import (
	"context"
	"reflect"
	"time"
)

// Recv receives from ch, waiting if need be: it is the one way engine code
// waits, so that a serial [Pool] can hand on its baton wherever anything
// blocks. It returns the value and true, or the zero value and false if ch
// is closed; or err: ctx's cause if ctx ends first, [ErrTimeout] if timeout
// (when positive) elapses first. A value already in ch is returned without
// looking at ctx. A nil ch waits for ctx or the timeout only.
//
// w is the calling goroutine's [Worker], or nil for a goroutine that is no
// participant of any pool (then Recv is a plain select). In a parallel pool
// a pool worker counts as waiting, not runnable, while Recv waits, so the
// pool may start another worker meanwhile. In a serial pool the worker
// releases the baton while it waits and holds it again when Recv returns;
// the timeout is then a timer of the pool's virtual clock (see [Pool]).
func Recv[T any](ctx context.Context, w *Worker, ch <-chan T, timeout time.Duration) (v T, ok bool, err error) {
	select {
	case v, ok = <-ch:
		return v, ok, nil
	default:
	}
	if w != nil && w.pool != nil && w.pool.serial != nil {
		return recvSerial(ctx, w, ch, timeout)
	}
	if w.block() {
		defer w.unblock()
	}
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	select {
	case v, ok = <-ch:
		return v, ok, nil
	case <-ctx.Done():
		return v, false, context.Cause(ctx)
	case <-tc:
		return v, false, ErrTimeout
	}
}

func recvSerial[T any](ctx context.Context, w *Worker, ch <-chan T, timeout time.Duration) (v T, ok bool, err error) {
	wt := &waiter{w: w, ctx: ctx}
	if ch != nil {
		wt.poll = func() bool {
			select {
			case v, ok = <-ch:
				return true
			default:
				return false
			}
		}
		wt.rch = reflect.ValueOf(ch)
		wt.stash = func(x reflect.Value, rok bool) {
			ok = rok
			if rok {
				v, _ = x.Interface().(T) // a nil interface value stays zero
			}
		}
	}
	w.pool.waitSerial(wt, timeout, timeout > 0, ErrTimeout)
	return v, ok, wt.err
}

// Sleep waits for d, or until ctx ends (it then returns ctx's cause). w may
// be nil. In a parallel pool w counts as waiting meanwhile, as in [Recv].
// In a serial pool the sleep is a timer (see [Pool]): other participants
// run meanwhile, and a sleep of zero or less lets every participant that
// is ready, and every queued task, run first.
func (w *Worker) Sleep(ctx context.Context, d time.Duration) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if w != nil && w.pool != nil && w.pool.serial != nil {
		wt := &waiter{w: w, ctx: ctx}
		w.pool.waitSerial(wt, max(d, 0), true, nil)
		return wt.err
	}
	if d <= 0 {
		return nil
	}
	if _, _, err := Recv[struct{}](ctx, w, nil, d); err != ErrTimeout {
		return err
	}
	return nil
}

// A Local is a worker-local variable of type T: each [Worker] has its own
// value, the zero value of T until [Local.Set]. The zero Local is ready to
// use; a Local is identified by its address and must not be copied. Get
// and Set may be called only on the worker's own goroutine (typically by
// the task it runs, or by [PoolOptions.Init]). A worker holds a few locals
// in a small slice: Get is a short linear scan.
type Local[T any] struct {
	_ noCopy
	// A Local needs an address of its own: distinct zero-size variables
	// may share one.
	_ byte
}

type localSlot struct {
	key any // *Local[T]
	val any // T
}

// Get returns w's value of l, or the zero value if it was never set (or w
// is nil).
func (l *Local[T]) Get(w *Worker) T {
	if w != nil {
		for i := range w.locals {
			if w.locals[i].key == any(l) {
				return w.locals[i].val.(T)
			}
		}
	}
	var zero T
	return zero
}

// Set sets w's value of l to v. It panics if w is nil.
func (l *Local[T]) Set(w *Worker, v T) {
	if w == nil {
		panic("engine: Local.Set on a nil Worker")
	}
	for i := range w.locals {
		if w.locals[i].key == any(l) {
			w.locals[i].val = v
			return
		}
	}
	w.locals = append(w.locals, localSlot{l, v})
}

// noCopy makes go vet's copylocks check report copies of a [Local].
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
