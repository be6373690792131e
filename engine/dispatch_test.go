package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/engine"
)

// recorder is a dispatcher handler that records what it handled and on
// which goroutine.
type recorder struct {
	mu       sync.Mutex
	got      []int
	batches  int
	gids     map[uint64]bool
	inFlight int
	overlap  bool
}

func (r *recorder) handle(_ context.Context, _ *engine.Worker, batch []int) int {
	r.mu.Lock()
	r.inFlight++
	r.overlap = r.overlap || r.inFlight > 1
	if r.gids == nil {
		r.gids = map[uint64]bool{}
	}
	r.gids[goid()] = true
	r.mu.Unlock()

	r.mu.Lock()
	r.got = append(r.got, batch...)
	r.batches++
	r.inFlight--
	r.mu.Unlock()
	return len(batch)
}

func TestDispatcherDeliversInPostOrder(t *testing.T) {
	for _, ex := range executors {
		t.Run(ex.name, func(t *testing.T) {
			e := ex.newEx(t)
			var r recorder
			d := engine.NewDispatcher(r.handle)
			const n = 5000
			var wg sync.WaitGroup
			// Several posters: each one's values must keep their order,
			// and handling never overlaps.
			for p := range 4 {
				wg.Go(func() {
					for i := range n {
						require.NoError(t, d.Post(bg, e, p*n+i))
					}
				})
			}
			wg.Wait()
			require.NoError(t, d.Wait(bg, nil))
			assert.Equal(t, 0, d.Pending())
			r.mu.Lock()
			defer r.mu.Unlock()
			require.Len(t, r.got, 4*n)
			next := []int{0, n, 2 * n, 3 * n}
			for _, v := range r.got {
				p := v / n
				require.Equal(t, next[p], v, "poster %d out of order", p)
				next[p]++
			}
			assert.False(t, r.overlap, "batches must not be handled concurrently")
		})
	}
}

func TestDispatcherRunsOffThePostersGoroutine(t *testing.T) {
	p := newPool(t, engine.PoolOptions{})
	var r recorder
	d := engine.NewDispatcher(r.handle)
	require.NoError(t, d.Post(bg, p, 1))
	require.NoError(t, d.Wait(bg, nil))
	r.mu.Lock()
	defer r.mu.Unlock()
	assert.False(t, r.gids[goid()])
}

// TestDispatcherDrainIsLazyAndExits: no task runs while the queue is
// empty; a post after an idle period starts a new drain.
func TestDispatcherDrainIsLazyAndExits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var started int
		ex := countingExecutor{Executor: engine.NewPool(engine.PoolOptions{}), n: &started}
		defer ex.Executor.(*engine.Pool).Close()
		var r recorder
		d := engine.NewDispatcher(r.handle)
		assert.Equal(t, 0, started)
		require.NoError(t, d.Wait(bg, nil), "nothing posted: returns at once")
		require.NoError(t, d.Post(bg, ex, 1))
		require.NoError(t, d.Wait(bg, nil))
		synctest.Wait() // the drain finds the queue empty and returns
		require.NoError(t, d.Post(bg, ex, 2))
		require.NoError(t, d.Wait(bg, nil))
		assert.Equal(t, 2, started)
		assert.Equal(t, []int{1, 2}, r.got)
	})
}

type countingExecutor struct {
	engine.Executor
	n *int
}

func (c countingExecutor) Go(ctx context.Context, task engine.Task) error {
	*c.n++
	return c.Executor.Go(ctx, task)
}

func TestDispatcherBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := engine.NewPool(engine.PoolOptions{})
		defer p.Close()
		gate := make(chan struct{})
		var batches [][]int
		d := engine.NewDispatcher(func(_ context.Context, _ *engine.Worker, batch []int) int {
			batches = append(batches, append([]int(nil), batch...))
			if batch[0] == 0 {
				<-gate
			}
			return len(batch)
		})
		require.NoError(t, d.Post(bg, p, 0))
		synctest.Wait() // the drain holds batch [0]
		for i := 1; i <= 3; i++ {
			require.NoError(t, d.Post(bg, p, i))
		}
		assert.Equal(t, 4, d.Pending())
		close(gate)
		require.NoError(t, d.Wait(bg, nil))
		assert.Equal(t, [][]int{{0}, {1, 2, 3}}, batches)
	})
}

func TestDispatcherWaitCoversOnlyEarlierPosts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := engine.NewPool(engine.PoolOptions{})
		defer p.Close()
		release := map[int]chan struct{}{1: make(chan struct{}), 2: make(chan struct{})}
		d := engine.NewDispatcher(func(_ context.Context, _ *engine.Worker, batch []int) int {
			for _, v := range batch {
				<-release[v]
			}
			return len(batch)
		})
		require.NoError(t, d.Post(bg, p, 1))
		waited := make(chan error)
		go func() { waited <- d.Wait(bg, nil) }()
		synctest.Wait()
		require.NoError(t, d.Post(bg, p, 2)) // after Wait began: not waited for
		close(release[1])
		require.NoError(t, <-waited)
		assert.Equal(t, 1, d.Pending())
		close(release[2])
		require.NoError(t, d.Wait(bg, nil))
	})
}

func TestDispatcherWaitContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := engine.NewPool(engine.PoolOptions{})
		defer p.Close()
		gate := make(chan struct{})
		d := engine.NewDispatcher(func(_ context.Context, _ *engine.Worker, batch []int) int { <-gate; return len(batch) })
		require.NoError(t, d.Post(bg, p, 1))
		cause := errors.New("gave up")
		ctx, cancel := context.WithCancelCause(bg)
		waited := make(chan error)
		go func() { waited <- d.Wait(ctx, nil) }()
		synctest.Wait()
		cancel(cause)
		assert.ErrorIs(t, <-waited, cause)
		close(gate)
		require.NoError(t, d.Wait(bg, nil))
	})
}

// TestDispatcherStopsWhenDrainContextEnds: a drain whose context is done
// delivers nothing more; Resume (or the next Post) starts a drain that
// delivers the rest.
func TestDispatcherStopsWhenDrainContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := engine.NewPool(engine.PoolOptions{})
		defer p.Close()
		ctx, cancel := context.WithCancel(bg)
		gate := make(chan struct{})
		var got []int
		d := engine.NewDispatcher(func(_ context.Context, _ *engine.Worker, batch []int) int {
			got = append(got, batch...)
			if batch[0] == 1 {
				<-gate
			}
			return len(batch)
		})
		require.NoError(t, d.Post(ctx, p, 1))
		synctest.Wait()
		require.NoError(t, d.Post(ctx, p, 2))
		cancel()
		close(gate)
		synctest.Wait()
		assert.Equal(t, []int{1}, got)
		assert.Equal(t, 1, d.Pending())
		require.NoError(t, d.Resume(bg, p))
		require.NoError(t, d.Wait(bg, nil))
		assert.Equal(t, []int{1, 2}, got)
		require.NoError(t, d.Resume(bg, p), "nothing queued: nothing to do")
		require.NoError(t, d.Post(bg, p, 3))
		require.NoError(t, d.Wait(bg, nil))
		assert.Equal(t, []int{1, 2, 3}, got)
	})
}

// TestDispatcherPartialBatch: values a handler did not get to (it stopped
// early, its context being done) stay queued, in order, ahead of later
// ones, and are delivered by the next drain.
func TestDispatcherPartialBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := engine.NewPool(engine.PoolOptions{})
		defer p.Close()
		ctx, cancel := context.WithCancel(bg)
		gate := make(chan struct{})
		var got []int
		d := engine.NewDispatcher(func(ctx context.Context, _ *engine.Worker, batch []int) int {
			for i, v := range batch {
				if ctx.Err() != nil {
					return i
				}
				if v == 1 {
					<-gate
				}
				got = append(got, v)
			}
			return len(batch)
		})
		require.NoError(t, d.Post(ctx, p, 0))
		require.NoError(t, d.Post(ctx, p, 1))
		synctest.Wait() // 1 is being handled
		require.NoError(t, d.Post(ctx, p, 2))
		require.NoError(t, d.Post(ctx, p, 3))
		synctest.Wait() // 2 and 3 queued while the drain holds batch [1]
		cancel()
		close(gate)
		synctest.Wait()
		assert.Equal(t, 2, d.Pending())
		require.NoError(t, d.Post(bg, p, 4))
		require.NoError(t, d.Wait(bg, nil))
		assert.Equal(t, []int{0, 1, 2, 3, 4}, got)
	})
}

// TestDispatcherHandsOverToLiveContext: a Post (or Resume) that finds a
// drain running whose context then ends is not stranded: the stopping
// drain hands over to the newer context.
func TestDispatcherHandsOverToLiveContext(t *testing.T) {
	for _, resume := range []bool{false, true} {
		t.Run(fmt.Sprint("resume=", resume), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := engine.NewPool(engine.PoolOptions{})
				defer p.Close()
				old, cancel := context.WithCancel(bg)
				gate := make(chan struct{})
				var got []int
				d := engine.NewDispatcher(func(ctx context.Context, _ *engine.Worker, batch []int) int {
					for i, v := range batch {
						if ctx.Err() != nil {
							return i
						}
						if v == 1 {
							<-gate
						}
						got = append(got, v)
					}
					return len(batch)
				})
				require.NoError(t, d.Post(old, p, 1))
				synctest.Wait() // the drain holds 1
				if resume {
					require.NoError(t, d.Post(old, p, 2))
					require.NoError(t, d.Resume(bg, p))
				} else {
					require.NoError(t, d.Post(bg, p, 2))
				}
				cancel() // the running drain's context ends...
				close(gate)
				require.NoError(t, d.Wait(bg, nil)) // ...and 2 is still delivered
				assert.Equal(t, []int{1, 2}, got)
			})
		})
	}
}

func TestDispatcherPanicIsReraisedInWait(t *testing.T) {
	p := newPool(t, engine.PoolOptions{})
	var got []int
	d := engine.NewDispatcher(func(_ context.Context, _ *engine.Worker, batch []int) int {
		if batch[0] == 1 {
			panic("handler bug")
		}
		got = append(got, batch...)
		return len(batch)
	})
	require.NoError(t, d.Post(bg, p, 1))
	r := recoverPanic(func() { d.Wait(bg, nil) }) //nolint:errcheck // panics
	pe, ok := r.(*engine.PanicError)
	require.True(t, ok, "want *PanicError, got %T %v", r, r)
	assert.Equal(t, "handler bug", pe.Value)
	assert.Contains(t, string(pe.Stack), "dispatch_test.go")
	// The dispatcher goes on.
	require.NoError(t, d.Post(bg, p, 2))
	require.NoError(t, d.Wait(bg, nil))
	assert.Equal(t, []int{2}, got)
}

func TestDispatcherClose(t *testing.T) {
	p := newPool(t, engine.PoolOptions{})
	var r recorder
	d := engine.NewDispatcher(r.handle)
	for i := range 100 {
		require.NoError(t, d.Post(bg, p, i))
	}
	require.NoError(t, d.Close(bg, nil), "Close waits for posted values")
	assert.Len(t, r.got, 100)
	assert.ErrorIs(t, d.Post(bg, p, 1), engine.ErrClosed)
}

func TestDispatcherExecutorRefuses(t *testing.T) {
	p := engine.NewPool(engine.PoolOptions{})
	p.Close()
	var r recorder
	d := engine.NewDispatcher(r.handle)
	assert.ErrorIs(t, d.Post(bg, p, 1), engine.ErrClosed)
	assert.Equal(t, 0, d.Pending(), "refused values are dropped")
	require.NoError(t, d.Wait(bg, nil))
	// A working executor later delivers new values.
	p2 := newPool(t, engine.PoolOptions{})
	assert.NoError(t, d.Post(bg, p2, 2))
	require.NoError(t, d.Wait(bg, nil))
	assert.Equal(t, []int{2}, r.got)
}

// BenchmarkDispatcher posts b.N values and waits for them, on a parallel
// pool and on a serial one (posted by an entered goroutine, which hands on
// the baton when it waits).
func BenchmarkDispatcher(b *testing.B) {
	for _, serial := range []bool{false, true} {
		name := "parallel"
		if serial {
			name = "serial"
		}
		b.Run(name, func(b *testing.B) {
			p := engine.NewPool(engine.PoolOptions{Serial: serial})
			defer p.Close()
			w := p.Enter()
			defer w.Leave()
			var n int
			d := engine.NewDispatcher(func(_ context.Context, _ *engine.Worker, batch []int) int {
				n += len(batch)
				return len(batch)
			})
			for i := range b.N {
				_ = d.Post(bg, p, i)
			}
			if err := d.Wait(bg, w); err != nil {
				b.Fatal(err)
			}
			if n != b.N {
				b.Fatal(fmt.Sprint("handled ", n))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
