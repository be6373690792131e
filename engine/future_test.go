package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/semisync/semisync/engine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errBoom = errors.New("boom")

func TestPromiseResolvesOnce(t *testing.T) {
	tests := []struct {
		name    string
		v       int
		err     error
		later   []int // values of later resolve calls, all ignored
		laterEr error
	}{
		{"Value", 42, nil, []int{1, 2}, nil},
		{"Error", 0, errBoom, []int{7}, nil},
		{"ValueThenError", 3, nil, []int{4}, errBoom},
		{"ZeroValue", 0, nil, []int{9}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, resolve := engine.NewPromise[int]()
			assert.False(t, f.IsDone())
			_, ok, _ := f.Peek()
			assert.False(t, ok)
			select {
			case <-f.Done():
				t.Fatal("Done closed before resolve")
			default:
			}

			assert.True(t, resolve(tt.v, tt.err))
			for _, v := range tt.later {
				assert.False(t, resolve(v, tt.laterEr), "second resolve must be ignored")
			}
			assert.False(t, f.Cancel(), "Cancel after resolve does nothing")
			assert.False(t, f.Cancelled())

			<-f.Done()
			assert.True(t, f.IsDone())
			v, ok, err := f.Peek()
			assert.True(t, ok)
			assert.Equal(t, tt.v, v)
			assert.Equal(t, tt.err, err)
			v, err = f.Result(bg, nil)
			assert.Equal(t, tt.v, v)
			assert.Equal(t, tt.err, err)
		})
	}
}

func TestPromiseConcurrentResolve(t *testing.T) {
	const n = 50
	f, resolve := engine.NewPromise[int]()
	var (
		wg      sync.WaitGroup
		winners atomic.Int64
		winner  atomic.Int64
		waiters sync.WaitGroup
	)
	// Waiters already blocked in Result must all see the one value.
	results := make([]int, n)
	for i := range n {
		waiters.Go(func() {
			v, err := f.Result(bg, nil)
			assert.NoError(t, err)
			results[i] = v
		})
	}
	for i := range n {
		wg.Go(func() {
			if resolve(i, nil) {
				winners.Add(1)
				winner.Store(int64(i))
			}
		})
	}
	wg.Wait()
	waiters.Wait()
	require.Equal(t, int64(1), winners.Load(), "exactly one resolve wins")
	v, _, _ := f.Peek()
	assert.Equal(t, int(winner.Load()), v)
	for _, r := range results {
		assert.Equal(t, v, r)
	}
}

func TestResolved(t *testing.T) {
	tests := []struct {
		name string
		v    string
		err  error
	}{
		{"Value", "x", nil},
		{"Error", "", errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := engine.Resolved(tt.v, tt.err)
			assert.True(t, f.IsDone())
			<-f.Done()
			v, ok, err := f.Peek()
			assert.True(t, ok)
			assert.Equal(t, tt.v, v)
			assert.Equal(t, tt.err, err)
			assert.False(t, f.Cancel())
		})
	}
}

func TestOnDone(t *testing.T) {
	tests := []struct {
		name   string
		before int // callbacks registered before resolution
		after  int // callbacks registered after
	}{
		{"Before", 1, 0},
		{"After", 0, 1},
		{"ManyBeforeAndAfter", 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, resolve := engine.NewPromise[string]()
			calls := make([]int, tt.before+tt.after)
			goroutines := make([]uint64, tt.before+tt.after)
			for i := range tt.before {
				f.OnDone(func() {
					calls[i]++
					goroutines[i] = goid()
					// The future is resolved by the time callbacks run.
					v, ok, _ := f.Peek()
					assert.True(t, ok)
					assert.Equal(t, "v", v)
				})
			}
			for _, c := range calls {
				assert.Zero(t, c, "OnDone must wait for resolution")
			}

			// Resolve on another goroutine: callbacks registered before
			// run there, synchronously inside resolve.
			resolver := make(chan uint64)
			go func() {
				resolve("v", nil)
				resolver <- goid()
			}()
			rg := <-resolver
			for i := range tt.before {
				assert.Equal(t, 1, calls[i])
				assert.Equal(t, rg, goroutines[i], "callback runs on the resolving goroutine")
			}

			// Callbacks registered after run at once, on the caller.
			me := goid()
			for i := tt.before; i < tt.before+tt.after; i++ {
				f.OnDone(func() {
					calls[i]++
					goroutines[i] = goid()
				})
				assert.Equal(t, 1, calls[i], "OnDone on a resolved future calls at once")
				assert.Equal(t, me, goroutines[i])
			}
			resolve("again", nil)
			for i, c := range calls {
				assert.Equal(t, 1, c, "callback %d called once", i)
			}
		})
	}
}

// TestCancelledVisibleToCallbacks: whoever learns that a future was
// resolved by Cancel (an OnDone callback, a waiter in Result) must also see
// Cancelled() == true.
func TestCancelledVisibleToCallbacks(t *testing.T) {
	f, _ := engine.NewPromise[int]()
	var inCallback bool
	f.OnDone(func() { inCallback = f.Cancelled() })

	waiter := make(chan bool)
	go func() {
		_, err := f.Result(bg, nil)
		waiter <- errors.Is(err, engine.ErrCancelled) && f.Cancelled()
	}()

	require.True(t, f.Cancel())
	assert.True(t, inCallback)
	assert.True(t, <-waiter)
}

func TestGo(t *testing.T) {
	tests := []struct {
		name string
		v    int
		err  error
	}{
		{"Value", 7, nil},
		{"Error", 0, errBoom},
		{"ValueAndError", 3, errBoom},
	}
	for _, ec := range executors {
		for _, tt := range tests {
			t.Run(ec.name+"/"+tt.name, func(t *testing.T) {
				ex := ec.newEx(t)
				type key struct{}
				ctx := context.WithValue(bg, key{}, "k")
				var worker *engine.Worker
				f := engine.Go(ctx, ex, func(ctx context.Context, w *engine.Worker) (int, error) {
					assert.Equal(t, "k", ctx.Value(key{}), "task context derives from ctx")
					worker = w
					return tt.v, tt.err
				})
				v, err := f.Result(bg, nil)
				assert.Equal(t, tt.v, v)
				assert.Equal(t, tt.err, err)
				assert.False(t, f.Cancelled())
				if _, ok := ex.(*engine.Pool); ok {
					require.NotNil(t, worker)
					assert.Positive(t, worker.ID)
				} else {
					assert.Nil(t, worker)
				}
			})
		}
	}
}

// TestGoSerialRunsWhenCallerWaits: in a serial pool a task submitted by the
// baton holder runs on a worker goroutine once the holder waits.
func TestGoSerialRunsWhenCallerWaits(t *testing.T) {
	p := newPool(t, engine.PoolOptions{Serial: true})
	w := p.Enter()
	defer w.Leave()
	me := goid()
	var ran atomic.Bool
	f := engine.Go(bg, p, func(context.Context, *engine.Worker) (uint64, error) {
		ran.Store(true)
		return goid(), nil
	})
	assert.False(t, ran.Load(), "the caller holds the baton until it waits")
	v, err := f.Result(bg, w)
	require.NoError(t, err)
	assert.NotEqual(t, me, v, "the task runs on a worker goroutine")
}

func TestGoRefused(t *testing.T) {
	p := engine.NewPool(engine.PoolOptions{})
	p.Close()
	ran := false
	f := engine.Go(bg, p, func(context.Context, *engine.Worker) (int, error) {
		ran = true
		return 1, nil
	})
	require.True(t, f.IsDone())
	_, err := f.Result(bg, nil)
	assert.ErrorIs(t, err, engine.ErrClosed)
	assert.False(t, ran)
}

func TestGoContextAlreadyDone(t *testing.T) {
	cause := errors.New("caller gave up")
	for _, ec := range executors {
		t.Run(ec.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(bg)
			cancel(cause)
			ran := false
			f := engine.Go(ctx, ec.newEx(t), func(context.Context, *engine.Worker) (int, error) {
				ran = true
				return 1, nil
			})
			_, err := f.Result(bg, nil)
			assert.ErrorIs(t, err, cause)
			assert.False(t, ran, "a task whose context is done does not run")
			assert.False(t, f.Cancelled())
		})
	}
}

func TestCancel(t *testing.T) {
	t.Run("Promise", func(t *testing.T) {
		f, resolve := engine.NewPromise[int]()
		require.True(t, f.Cancel())
		assert.True(t, f.Cancelled())
		assert.False(t, f.Cancel(), "second Cancel does nothing")
		assert.False(t, resolve(1, nil), "resolve after Cancel does nothing")
		_, err := f.Result(bg, nil)
		assert.ErrorIs(t, err, engine.ErrCancelled)
	})

	t.Run("Resolved", func(t *testing.T) {
		f := engine.Resolved(5, nil)
		assert.False(t, f.Cancel())
		assert.False(t, f.Cancelled())
		v, err := f.Result(bg, nil)
		assert.NoError(t, err)
		assert.Equal(t, 5, v)
	})

	t.Run("QueuedTask", func(t *testing.T) {
		p := engine.NewPool(engine.PoolOptions{Limit: 1})
		defer p.Close()
		gate := make(chan struct{})
		blocker := engine.Go(bg, p, func(context.Context, *engine.Worker) (int, error) {
			<-gate
			return 0, nil
		})
		var ran atomic.Bool
		f := engine.Go(bg, p, func(context.Context, *engine.Worker) (int, error) {
			ran.Store(true)
			return 1, nil
		})
		require.True(t, f.Cancel())
		assert.True(t, f.Cancelled())
		_, err := f.Result(bg, nil)
		assert.ErrorIs(t, err, engine.ErrCancelled)

		close(gate)
		_, err = blocker.Result(bg, nil)
		require.NoError(t, err)
		p.Close() // the queued task has had its turn
		assert.False(t, ran.Load(), "a cancelled queued task never starts")
		_, err = f.Result(bg, nil)
		assert.ErrorIs(t, err, engine.ErrCancelled)
	})

	for _, ec := range concurrentExecutors {
		t.Run("RunningTask/"+ec.name, func(t *testing.T) {
			ex := ec.newEx(t)
			started := make(chan struct{})
			observed := make(chan error, 1)
			f := engine.Go(bg, ex, func(ctx context.Context, _ *engine.Worker) (int, error) {
				close(started)
				<-ctx.Done()
				observed <- context.Cause(ctx)
				return 99, ctx.Err()
			})
			<-started
			require.True(t, f.Cancel())
			assert.ErrorIs(t, <-observed, engine.ErrCancelled, "running task sees the cancellation cause")
			v, err := f.Result(bg, nil)
			assert.ErrorIs(t, err, engine.ErrCancelled)
			assert.Zero(t, v, "the task's late result is dropped")
			assert.True(t, f.Cancelled())
		})
	}

	t.Run("AfterCompletion", func(t *testing.T) {
		f := engine.Go(bg, newPool(t, engine.PoolOptions{}), func(context.Context, *engine.Worker) (int, error) { return 2, nil })
		_, err := f.Result(bg, nil)
		require.NoError(t, err)
		assert.False(t, f.Cancel())
		assert.False(t, f.Cancelled())
	})
}

func TestWait(t *testing.T) {
	cause := errors.New("parent cancelled")
	tests := []struct {
		name      string
		resolveAt time.Duration // 0: never (negative: before Wait)
		timeout   time.Duration
		ctxAfter  time.Duration // cancel the parent context then, with cause
		wantV     int
		wantErr   error
		wantTook  time.Duration
	}{
		{"TimesOut", 0, time.Second, 0, 0, engine.ErrTimeout, time.Second},
		{"ResolvedInTime", 500 * time.Millisecond, time.Second, 0, 7, nil, 500 * time.Millisecond},
		{"AlreadyResolved", -1, time.Nanosecond, 0, 7, nil, 0},
		{"ZeroTimeoutWaitsForResult", time.Hour, 0, 0, 7, nil, time.Hour},
		{"NegativeTimeoutWaitsForResult", time.Minute, -time.Second, 0, 7, nil, time.Minute},
		{"ParentCancelledFirst", 0, time.Minute, time.Second, 0, cause, time.Second},
		{"ZeroTimeoutParentCancelled", 0, 0, time.Second, 0, cause, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, resolve := engine.NewPromise[int]()
				switch {
				case tt.resolveAt < 0:
					resolve(7, nil)
				case tt.resolveAt > 0:
					timer := time.AfterFunc(tt.resolveAt, func() { resolve(7, nil) })
					defer timer.Stop()
				}
				ctx := t.Context()
				if tt.ctxAfter > 0 {
					var cancel context.CancelCauseFunc
					ctx, cancel = context.WithCancelCause(ctx)
					timer := time.AfterFunc(tt.ctxAfter, func() { cancel(cause) })
					defer timer.Stop()
				}

				start := time.Now()
				v, err := f.Wait(ctx, nil, tt.timeout)
				assert.Equal(t, tt.wantTook, time.Since(start))
				assert.Equal(t, tt.wantV, v)
				if tt.wantErr == nil {
					assert.NoError(t, err)
				} else {
					assert.ErrorIs(t, err, tt.wantErr)
				}
				if errors.Is(err, engine.ErrTimeout) {
					assert.False(t, f.IsDone(), "a timed-out wait does not resolve the future")
				}
			})
		})
	}
}

func TestResultContextDone(t *testing.T) {
	cause := errors.New("stop waiting")
	tests := []struct {
		name     string
		resolved bool
		cause    error // nil: plain cancel
		wantV    int
		wantErr  error
	}{
		{"PendingCause", false, cause, 0, cause},
		{"PendingPlainCancel", false, nil, 0, context.Canceled},
		{"ResolvedWins", true, cause, 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, resolve := engine.NewPromise[int]()
			if tt.resolved {
				resolve(5, nil)
			}
			ctx, cancel := context.WithCancelCause(bg)
			cancel(tt.cause)
			v, err := f.Result(ctx, nil)
			assert.Equal(t, tt.wantV, v)
			if tt.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			assert.False(t, f.Cancelled(), "giving up waiting does not cancel the future")
			assert.Equal(t, tt.resolved, f.IsDone())
		})
	}
}

// panickingTask is a named function so that its name shows in the stack
// carried by the PanicError.
func panickingTask(v any) func(context.Context, *engine.Worker) (int, error) {
	return func(context.Context, *engine.Worker) (int, error) {
		panicHere(v)
		return 0, nil
	}
}

//go:noinline
func panicHere(v any) { panic(v) }

func TestFuturePanic(t *testing.T) {
	tests := []struct {
		name    string
		value   any
		wrapped error
	}{
		{"String", "kaboom", nil},
		{"Error", errBoom, errBoom},
		{"Struct", struct{ N int }{3}, nil},
	}
	for _, ec := range executors {
		for _, tt := range tests {
			t.Run(ec.name+"/"+tt.name, func(t *testing.T) {
				f := engine.Go(bg, ec.newEx(t), panickingTask(tt.value))
				<-f.Done()

				// Peek never panics.
				_, ok, err := f.Peek()
				require.True(t, ok)
				var pe *engine.PanicError
				require.ErrorAs(t, err, &pe)

				r := recoverPanic(func() { _, _ = f.Result(bg, nil) })
				require.IsType(t, (*engine.PanicError)(nil), r, "Result re-raises the panic")
				pe = r.(*engine.PanicError)
				assert.Equal(t, tt.value, pe.Value)
				assert.Contains(t, string(pe.Stack), "panicHere", "stack of the task goroutine")
				assert.Contains(t, pe.Error(), fmt.Sprint(tt.value))
				assert.Contains(t, pe.Error(), "panicHere")
				if tt.wrapped != nil {
					assert.ErrorIs(t, pe, tt.wrapped)
				} else {
					assert.NoError(t, pe.Unwrap())
				}

				r = recoverPanic(func() { _, _ = f.Wait(bg, nil, time.Hour) })
				assert.Same(t, pe, r, "Wait re-raises the same panic")
			})
		}
	}
}
