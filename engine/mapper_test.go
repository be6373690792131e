package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/engine"
)

// counter returns a source of the ints 0..n-1 and a function reporting how
// many were pulled.
func counter(n int) (next func() (int, bool, error), pulled func() int) {
	i := 0
	return func() (int, bool, error) {
			if i >= n {
				return 0, false, nil
			}
			i++
			return i - 1, true, nil
		}, func() int {
			return i
		}
}

// mapper returns a Mapper whose items run fn.
func mapper(workers int, fn func(ctx context.Context, i, item int) (int, error)) *engine.Mapper[int, int] {
	return &engine.Mapper[int, int]{
		Workers: workers,
		Ordered: true,
		Start: func(context.Context, *engine.Worker) (engine.MapFunc[int, int], func()) {
			return func(ctx context.Context, i, item int) (int, error) { return fn(ctx, i, item) }, nil
		},
	}
}

func square(_ context.Context, _, x int) (int, error) { return x * x, nil }

// collect runs m over 0..n-1 and returns what was emitted, in emit order.
func collect(t *testing.T, m *engine.Mapper[int, int], ex engine.Executor, n int) ([]int, error) {
	t.Helper()
	next, _ := counter(n)
	out := []int{}
	err := m.Run(bg, ex, nil, next, func(i, item, v int, err error) error {
		if err != nil {
			out = append(out, -1-i)
			return nil
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

func TestMapperResults(t *testing.T) {
	for _, ec := range executors {
		for _, n := range []int{0, 1, 7, 1000, 100_000} {
			for _, ordered := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/n=%d/ordered=%v", ec.name, n, ordered), func(t *testing.T) {
					m := mapper(4, square)
					m.Ordered = ordered
					got, err := collect(t, m, ec.newEx(t), n)
					require.NoError(t, err)
					want := make([]int, n)
					for i := range want {
						want[i] = i * i
					}
					if !ordered {
						slices.Sort(got)
					}
					assert.Equal(t, want, got)
				})
			}
		}
	}
}

func TestMapperPullsOnCallingGoroutine(t *testing.T) {
	p := newPool(t, engine.PoolOptions{})
	me := goid()
	n := 0
	next := func() (int, bool, error) {
		assert.Equal(t, me, goid(), "next must run on the goroutine that calls Run")
		n++
		return n, n <= 5000, nil
	}
	var emitted int
	err := mapper(3, square).Run(bg, p, nil, next, func(i, item, v int, err error) error {
		assert.Equal(t, me, goid(), "emit must run on the goroutine that calls Run")
		assert.Equal(t, emitted, i)
		assert.Equal(t, item*item, v)
		emitted++
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 5000, emitted)
}

// TestMapperBoundedWindow checks that a long source is never read far ahead
// of what has been emitted: memory stays flat whatever the item count.
func TestMapperBoundedWindow(t *testing.T) {
	p := newPool(t, engine.PoolOptions{})
	m := mapper(4, square)
	m.Chunk, m.Window = 32, 8
	var pulled, emitted, ahead int
	next := func() (int, bool, error) {
		if pulled == 200_000 {
			return 0, false, nil
		}
		pulled++
		ahead = max(ahead, pulled-emitted)
		return pulled, true, nil
	}
	err := m.Run(bg, p, nil, next, func(int, int, int, error) error { emitted++; return nil })
	require.NoError(t, err)
	assert.Equal(t, 200_000, emitted)
	assert.LessOrEqual(t, ahead, m.Chunk*m.Window)
}

func TestMapperWorkerLoops(t *testing.T) {
	// Each worker loop calls Start once and stop once, and runs many items
	// with the function Start returned.
	p := newPool(t, engine.PoolOptions{})
	var starts, stops, items atomic.Int64
	m := &engine.Mapper[int, int]{
		Workers: 3,
		Ordered: true,
		Start: func(ctx context.Context, w *engine.Worker) (engine.MapFunc[int, int], func()) {
			starts.Add(1)
			return func(ictx context.Context, i, x int) (int, error) {
				assert.Equal(t, ctx, ictx, "without a timeout, items run under the loop's context")
				items.Add(1)
				return x, nil
			}, func() { stops.Add(1) }
		},
	}
	next, _ := counter(10_000)
	require.NoError(t, m.Run(bg, p, nil, next, func(int, int, int, error) error { return nil }))
	assert.Equal(t, int64(10_000), items.Load())
	assert.Equal(t, starts.Load(), stops.Load())
	assert.LessOrEqual(t, starts.Load(), int64(3))
}

// TestMapperFirstErrorInInputOrder: item 10 fails first, then item 5 (which
// waits for it). The reported failure is item 5, every time, and nothing
// after it is emitted.
func TestMapperFirstErrorInInputOrder(t *testing.T) {
	for _, ec := range concurrentExecutors {
		t.Run(ec.name, func(t *testing.T) {
			failed10 := make(chan struct{})
			m := mapper(4, func(ctx context.Context, i, x int) (int, error) {
				switch i {
				case 10:
					close(failed10)
					return 0, errors.New("ten")
				case 5:
					select {
					case <-failed10:
					case <-ctx.Done():
						return 0, ctx.Err()
					}
					return 0, errors.New("five")
				}
				return x, nil
			})
			m.Chunk = 1
			next, _ := counter(1000)
			var emitted []int
			err := m.Run(bg, ec.newEx(t), nil, next, func(i, _, _ int, _ error) error {
				emitted = append(emitted, i)
				return nil
			})
			var me *engine.MapError[int]
			require.ErrorAs(t, err, &me)
			require.NotNil(t, me.Failed)
			assert.Equal(t, 5, me.Failed.Index)
			assert.EqualError(t, me.Failed.Err, "five")
			assert.Equal(t, []int{0, 1, 2, 3, 4}, emitted)
			assert.Equal(t, 5, me.Done)
		})
	}
}

// TestMapperStopCancelsRunning: items after the failing one are cancelled
// while they run, and never-started items stay unstarted.
func TestMapperStopCancelsRunning(t *testing.T) {
	for _, ordered := range []bool{true, false} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
			p := newPool(t, engine.PoolOptions{})
			var running sync.WaitGroup
			running.Add(3)
			m := mapper(4, func(ctx context.Context, i, x int) (int, error) {
				if i == 0 {
					running.Wait() // items 1..3 are running
					return 0, errors.New("boom")
				}
				running.Done()
				<-ctx.Done()
				return 0, context.Cause(ctx)
			})
			m.Ordered = ordered
			m.Chunk = 1
			next, _ := counter(4)
			err := m.Run(bg, p, nil, next, func(int, int, int, error) error { return nil })
			var me *engine.MapError[int]
			require.ErrorAs(t, err, &me)
			require.NotNil(t, me.Failed)
			assert.Equal(t, 0, me.Failed.Index)
			var idx []int
			for _, c := range me.Cancelled {
				idx = append(idx, c.Index)
			}
			assert.Equal(t, []int{1, 2, 3}, idx)
		})
	}
}

func TestMapperKeepGoing(t *testing.T) {
	for _, ec := range executors {
		t.Run(ec.name, func(t *testing.T) {
			m := mapper(4, func(_ context.Context, i, x int) (int, error) {
				if x%3 == 0 {
					return 0, fmt.Errorf("bad %d", x)
				}
				return x, nil
			})
			m.KeepGoing = true
			got, err := collect(t, m, ec.newEx(t), 10)
			require.NoError(t, err)
			assert.Equal(t, []int{-1, 1, 2, -4, 4, 5, -7, 7, 8, -10}, got)
		})
	}
}

func TestMapperTimeout(t *testing.T) {
	for _, serial := range []bool{false, true} {
		t.Run(fmt.Sprintf("serial=%v", serial), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := engine.NewPool(engine.PoolOptions{Serial: serial})
				defer p.Close()
				ex := p
				m := mapper(2, func(ctx context.Context, i, x int) (int, error) {
					if x == 1 {
						<-ctx.Done() // only the deadline ends it
						return 0, context.Cause(ctx)
					}
					time.Sleep(time.Second) // well within the timeout
					return x, nil
				})
				m.Timeout = 5 * time.Second
				m.KeepGoing = true
				var errs []error
				var vals []int
				next, _ := counter(3)
				err := m.Run(bg, ex, nil, next, func(i, _, v int, err error) error {
					vals = append(vals, v)
					errs = append(errs, err)
					return nil
				})
				require.NoError(t, err)
				assert.Equal(t, []int{0, 0, 2}, vals)
				assert.NoError(t, errs[0])
				var te *engine.TimeoutError
				require.ErrorAs(t, errs[1], &te)
				assert.Equal(t, 5*time.Second, te.Timeout)
				assert.ErrorIs(t, errs[1], engine.ErrTimeout)
				assert.EqualError(t, errs[1], "engine: timed out after 5s")
				assert.NoError(t, errs[2])
			})
		})
	}
}

// TestMapperCancel: when ctx ends, running items see it, nothing else
// starts, and the error lists the running items.
func TestMapperCancel(t *testing.T) {
	p := newPool(t, engine.PoolOptions{})
	ctx, cancel := context.WithCancelCause(bg)
	defer cancel(nil)
	var running sync.WaitGroup
	running.Add(2)
	var started atomic.Int64
	m := mapper(2, func(ctx context.Context, i, x int) (int, error) {
		started.Add(1)
		running.Done()
		<-ctx.Done()
		return 0, context.Cause(ctx)
	})
	m.Chunk = 1
	interrupted := errors.New("interrupted")
	go func() {
		running.Wait()
		cancel(interrupted)
	}()
	next, pulled := counter(1_000_000)
	err := m.Run(ctx, p, nil, next, func(int, int, int, error) error { return nil })
	var me *engine.MapError[int]
	require.ErrorAs(t, err, &me)
	assert.Nil(t, me.Failed)
	assert.ErrorIs(t, err, interrupted)
	assert.Len(t, me.Cancelled, 2)
	assert.Equal(t, int64(2), started.Load(), "nothing starts after the context ends")
	assert.Equal(t, pulled()-2, me.NotStarted)
	assert.Less(t, pulled(), 1000, "the source is read lazily")
	assert.Contains(t, err.Error(), "engine: cancelled: interrupted; running items cancelled: ")
}

func TestMapperSerialCancel(t *testing.T) {
	p := newPool(t, engine.PoolOptions{Serial: true})
	ctx, cancel := context.WithCancelCause(bg)
	m := mapper(1, func(ctx context.Context, i, x int) (int, error) {
		if i == 3 {
			cancel(errors.New("stop"))
			return 0, context.Cause(ctx)
		}
		return x, nil
	})
	next, pulled := counter(10)
	w := p.Enter()
	defer w.Leave()
	err := m.Run(ctx, p, w, next, func(int, int, int, error) error { return nil })
	var me *engine.MapError[int]
	require.ErrorAs(t, err, &me)
	// The caller fills the window before it waits; the loop then runs items
	// 0-3 before the caller holds the baton again, and by then the run is
	// cancelled: nothing is emitted. The same every time.
	assert.Equal(t, 0, me.Done)
	require.Len(t, me.Cancelled, 1)
	assert.Equal(t, 3, me.Cancelled[0].Index)
	assert.Equal(t, 10, pulled())
	assert.Equal(t, 6, me.NotStarted)
}

func TestMapperSourceAndEmitErrors(t *testing.T) {
	for _, ec := range executors {
		t.Run(ec.name, func(t *testing.T) {
			bad := errors.New("bad source")
			n := 0
			next := func() (int, bool, error) {
				if n == 500 {
					return 0, false, bad
				}
				n++
				return n, true, nil
			}
			err := mapper(2, square).Run(bg, ec.newEx(t), nil, next, func(int, int, int, error) error { return nil })
			assert.ErrorIs(t, err, bad)

			full := errors.New("full")
			next2, _ := counter(10_000)
			emits := 0
			err = mapper(2, square).Run(bg, ec.newEx(t), nil, next2, func(int, int, int, error) error {
				if emits++; emits == 100 {
					return full
				}
				return nil
			})
			assert.ErrorIs(t, err, full)
			assert.Equal(t, 100, emits, "nothing is emitted after emit fails")
		})
	}
}

func TestMapperPanic(t *testing.T) {
	for _, ec := range executors {
		t.Run(ec.name, func(t *testing.T) {
			m := mapper(2, func(_ context.Context, i, x int) (int, error) {
				if i == 7 {
					panic("seven")
				}
				return x, nil
			})
			next, _ := counter(100)
			r := recoverPanic(func() {
				m.Run(bg, ec.newEx(t), nil, next, func(int, int, int, error) error { return nil }) //nolint:errcheck
			})
			require.NotNil(t, r)
			require.IsType(t, (*engine.PanicError)(nil), r)
			pe := r.(*engine.PanicError)
			assert.Equal(t, "seven", pe.Value)
			assert.Contains(t, string(pe.Stack), "mapper_test.go")
		})
	}
}

// TestMapperNestedCappedPool: every worker of a pool capped at two
// goroutines runs an outer item that maps over inner items on the same
// pool. No inner worker loop can ever start; the waiting callers run the
// inner items themselves. In both modes, and whether the test goroutine
// takes part or not.
func TestMapperNestedCappedPool(t *testing.T) {
	for _, tt := range []struct {
		name  string
		opts  engine.PoolOptions
		enter bool
	}{
		{"Parallel", engine.PoolOptions{Limit: 2, Max: 2}, false},
		{"ParallelEntered", engine.PoolOptions{Limit: 2, Max: 2}, true},
		{"Serial", engine.PoolOptions{Serial: true, Max: 2}, false},
		{"SerialEntered", engine.PoolOptions{Serial: true, Max: 2}, true},
		{"SerialMax1", engine.PoolOptions{Serial: true, Max: 1}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, tt.opts)
			var w *engine.Worker
			if tt.enter {
				w = p.Enter()
				defer w.Leave()
			}
			outer := &engine.Mapper[int, int]{
				Workers: 2,
				Ordered: true,
				Start: func(_ context.Context, w *engine.Worker) (engine.MapFunc[int, int], func()) {
					return func(ctx context.Context, i, x int) (int, error) {
						inner := mapper(2, square)
						next, _ := counter(x)
						sum := 0
						err := inner.Run(ctx, p, w, next, func(_, _, v int, _ error) error { sum += v; return nil })
						return sum, err
					}, nil
				},
			}
			next, _ := counter(6)
			var got []int
			err := outer.Run(bg, p, w, next, func(_, _, v int, err error) error {
				got = append(got, v)
				return err
			})
			require.NoError(t, err)
			assert.Equal(t, []int{0, 0, 1, 5, 14, 30}, got)
		})
	}
}

func TestMapError(t *testing.T) {
	e := &engine.MapError[string]{
		Failed: &engine.MapItem[string]{Index: 2, Value: "c", Err: errors.New("boom")},
		Done:   2,
	}
	assert.EqualError(t, e, "engine: item 2 failed: boom; 2 done, 0 not started")
	assert.True(t, strings.HasPrefix((&engine.MapError[int]{Cause: context.Canceled}).Error(), "engine: cancelled: context canceled"))
}

func ExampleMapper() {
	p := engine.NewPool(engine.PoolOptions{})
	defer p.Close()

	words := strings.Fields("the quick brown fox jumps over the lazy dog")
	i := 0
	next := func() (string, bool, error) { // called on this goroutine only
		if i == len(words) {
			return "", false, nil
		}
		i++
		return words[i-1], true, nil
	}
	m := engine.Mapper[string, int]{
		Workers: 4,
		Ordered: true,
		Start: func(ctx context.Context, w *engine.Worker) (engine.MapFunc[string, int], func()) {
			// Per-worker setup goes here; the function runs each item.
			return func(ctx context.Context, i int, word string) (int, error) {
				return len(word), nil
			}, nil
		},
	}
	err := m.Run(context.Background(), p, nil, next, func(i int, word string, n int, err error) error {
		fmt.Print(n, " ")
		return nil
	})
	fmt.Println(err)
	// Output: 3 5 5 3 5 4 3 4 3 <nil>
}
