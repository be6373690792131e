package engine_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/semisync/semisync/engine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// maxTracker records the highest value a counter reaches.
type maxTracker struct {
	cur, max atomic.Int64
}

func (m *maxTracker) enter() {
	n := m.cur.Add(1)
	for {
		old := m.max.Load()
		if n <= old || m.max.CompareAndSwap(old, n) {
			return
		}
	}
}

func (m *maxTracker) exit() { m.cur.Add(-1) }

func TestPoolReusesWorkers(t *testing.T) {
	tests := []struct {
		name      string
		limit     int
		wantLimit int
		tasks     int
	}{
		{"Limit1", 1, 1, 1000},
		{"Limit4", 4, 4, 10000},
		{"DefaultLimit", 0, 4 * runtime.GOMAXPROCS(0), 10000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var created atomic.Int64
			p := engine.NewPool(engine.PoolOptions{
				Limit: tt.limit,
				Init:  func(*engine.Worker) { created.Add(1) },
			})
			defer p.Close()

			var (
				wg  sync.WaitGroup
				mu  sync.Mutex
				ids = map[int]int{}
			)
			wg.Add(tt.tasks)
			for range tt.tasks {
				require.NoError(t, p.Go(bg, func(_ context.Context, w *engine.Worker) {
					defer wg.Done()
					mu.Lock()
					ids[w.ID]++
					mu.Unlock()
				}))
			}
			wg.Wait()

			workers, blocked := p.Stats()
			assert.LessOrEqual(t, workers, tt.wantLimit)
			assert.Zero(t, blocked)
			// A goroutine per task would have made tt.tasks workers.
			assert.LessOrEqual(t, int(created.Load()), tt.wantLimit)
			assert.LessOrEqual(t, len(ids), tt.wantLimit)
			total := 0
			for id, n := range ids {
				assert.Positive(t, id, "pool workers are numbered from 1")
				total += n
			}
			assert.Equal(t, tt.tasks, total)

			p.Close()
			workers, _ = p.Stats()
			assert.Zero(t, workers, "Close stops every worker")
		})
	}
}

func TestPoolLimitQueuesTasks(t *testing.T) {
	tests := []struct {
		name         string
		limit, tasks int
	}{
		{"Limit1", 1, 5},
		{"Limit2", 2, 6},
		{"Limit3", 3, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := engine.NewPool(engine.PoolOptions{Limit: tt.limit})
			defer p.Close()

			gate := make(chan struct{})
			started := make(chan struct{}, tt.tasks)
			var (
				running maxTracker
				done    sync.WaitGroup
				order   []int
				mu      sync.Mutex
			)
			done.Add(tt.tasks)
			for i := range tt.tasks {
				require.NoError(t, p.Go(bg, func(context.Context, *engine.Worker) {
					defer done.Done()
					running.enter()
					defer running.exit()
					mu.Lock()
					order = append(order, i)
					mu.Unlock()
					started <- struct{}{}
					<-gate
				}))
			}
			// The first tt.limit tasks hold every worker, so nothing else
			// can start and the rest must be queued.
			workers, _ := p.Stats()
			assert.Equal(t, tt.limit, workers)
			for range tt.limit {
				<-started
			}
			mu.Lock()
			assert.Len(t, order, tt.limit, "only Limit tasks may start")
			mu.Unlock()

			close(gate)
			done.Wait()
			assert.LessOrEqual(t, running.max.Load(), int64(tt.limit))
			// The queue is FIFO: tasks after the first Limit start in
			// submission order (only the first Limit race each other).
			require.Len(t, order, tt.tasks)
			if tt.limit == 1 {
				for i, v := range order {
					assert.Equal(t, i, v)
				}
			}
		})
	}
}

// TestPoolWaitNoStarvation: tasks that wait through Recv do not count
// against Limit, so far more tasks than Limit can all be waiting at once.
// Each task waits until every task has started; without that accounting
// only Limit of them would ever start and the test would deadlock.
func TestPoolWaitNoStarvation(t *testing.T) {
	tests := []struct {
		name         string
		limit, tasks int
	}{
		{"Limit1", 1, 100},
		{"Limit4", 4, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := engine.NewPool(engine.PoolOptions{Limit: tt.limit})
			defer p.Close()

			release := make(chan struct{})
			var allBlocked, done sync.WaitGroup
			allBlocked.Add(tt.tasks)
			done.Add(tt.tasks)
			for range tt.tasks {
				require.NoError(t, p.Go(bg, func(_ context.Context, w *engine.Worker) {
					defer done.Done()
					allBlocked.Done()
					_, _, err := engine.Recv(bg, w, release, 0)
					assert.NoError(t, err)
				}))
			}
			allBlocked.Wait() // every task is running at once
			var workers, blocked int
			for blocked < tt.tasks { // the last ones may still be on their way into Recv
				runtime.Gosched()
				workers, blocked = p.Stats()
			}
			assert.Equal(t, tt.tasks, workers)
			assert.Equal(t, tt.tasks, blocked)

			close(release)
			done.Wait()
			p.Close()
			workers, blocked = p.Stats()
			assert.Zero(t, workers)
			assert.Zero(t, blocked)
		})
	}
}

// TestPoolWaitStartsQueuedTask checks the other way waiting frees a slot: a
// task already queued behind a running one starts as soon as the running
// one waits.
func TestPoolWaitStartsQueuedTask(t *testing.T) {
	p := engine.NewPool(engine.PoolOptions{Limit: 1})
	defer p.Close()

	aRunning := make(chan struct{})
	aMayBlock := make(chan struct{})
	bDone := make(chan struct{})
	aDone := make(chan struct{})
	require.NoError(t, p.Go(bg, func(_ context.Context, w *engine.Worker) {
		defer close(aDone)
		close(aRunning)
		<-aMayBlock
		_, _, err := engine.Recv(bg, w, bDone, 0) // would deadlock if B could not start while A waits
		assert.NoError(t, err)
	}))
	<-aRunning
	require.NoError(t, p.Go(bg, func(context.Context, *engine.Worker) { close(bDone) }))
	workers, _ := p.Stats()
	assert.Equal(t, 1, workers, "B is queued behind A")
	close(aMayBlock)
	<-aDone
}

func TestPoolMaxCapsGoroutines(t *testing.T) {
	tests := []struct {
		name            string
		limit, max, run int
	}{
		{"Max1", 10, 1, 5},
		{"Max3", 100, 3, 10},
		{"MaxBelowLimit", 4, 2, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := engine.NewPool(engine.PoolOptions{Limit: tt.limit, Max: tt.max})
			defer p.Close()

			release := make(chan struct{})
			blockedCh := make(chan struct{}, tt.run)
			var (
				running maxTracker
				started atomic.Int64
				done    sync.WaitGroup
			)
			done.Add(tt.run)
			for range tt.run {
				require.NoError(t, p.Go(bg, func(_ context.Context, w *engine.Worker) {
					defer done.Done()
					running.enter()
					defer running.exit()
					started.Add(1)
					blockedCh <- struct{}{}
					_, _, err := engine.Recv(bg, w, release, 0)
					assert.NoError(t, err)
				}))
			}
			for range tt.max {
				<-blockedCh
			}
			// Every worker waits, which would let more start, but Max is a
			// hard cap on goroutines.
			var workers, blocked int
			for blocked < tt.max {
				runtime.Gosched()
				workers, blocked = p.Stats()
			}
			assert.Equal(t, tt.max, workers)
			assert.Equal(t, tt.max, blocked)
			assert.Equal(t, int64(tt.max), started.Load())

			close(release)
			done.Wait()
			assert.Equal(t, int64(tt.max), running.max.Load())
			assert.Equal(t, int64(tt.run), started.Load())
		})
	}
}

func TestPoolCloseWaitsAndRejects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := engine.NewPool(engine.PoolOptions{Limit: 1})
		gate := make(chan struct{})
		var ran atomic.Int64
		require.NoError(t, p.Go(bg, func(context.Context, *engine.Worker) {
			<-gate
			ran.Add(1)
		}))
		for range 5 {
			require.NoError(t, p.Go(bg, func(context.Context, *engine.Worker) { ran.Add(1) }))
		}

		closed := make(chan struct{})
		go func() {
			p.Close()
			close(closed)
		}()
		synctest.Wait() // Close is waiting for the worker, which waits for gate

		select {
		case <-closed:
			t.Fatal("Close returned while tasks were queued")
		default:
		}
		assert.Zero(t, ran.Load())
		rejected := false
		err := p.Go(bg, func(context.Context, *engine.Worker) { rejected = true })
		assert.ErrorIs(t, err, engine.ErrClosed)

		close(gate)
		<-closed
		assert.Equal(t, int64(6), ran.Load(), "Close runs every queued task")
		assert.False(t, rejected)
		workers, blocked := p.Stats()
		assert.Zero(t, workers)
		assert.Zero(t, blocked)

		p.Close() // idempotent
		assert.ErrorIs(t, p.Go(bg, func(context.Context, *engine.Worker) {}), engine.ErrClosed)
	})
}

func TestPoolCloseIdle(t *testing.T) {
	tests := []struct {
		name  string
		tasks int
	}{
		{"Unused", 0},
		{"OneTask", 1},
		{"ManyTasks", 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var inits, exits atomic.Int64
			p := engine.NewPool(engine.PoolOptions{
				Limit: 8,
				Init:  func(*engine.Worker) { inits.Add(1) },
				Exit:  func(*engine.Worker) { exits.Add(1) },
			})
			var wg sync.WaitGroup
			wg.Add(tt.tasks)
			for range tt.tasks {
				require.NoError(t, p.Go(bg, func(context.Context, *engine.Worker) { wg.Done() }))
			}
			wg.Wait()
			p.Close()
			// Every worker, idle ones included, has retired.
			assert.Equal(t, inits.Load(), exits.Load())
			assert.LessOrEqual(t, inits.Load(), int64(tt.tasks))
			workers, _ := p.Stats()
			assert.Zero(t, workers)
		})
	}
}

func TestPoolInitExit(t *testing.T) {
	tests := []struct {
		name   string
		limit  int
		tasks  int
		block  bool // tasks wait through Recv, so Limit does not cap the workers
		wantWk int
	}{
		{"ThreeWorkers", 3, 3, false, 3},
		{"BlockedWorkersRetire", 1, 6, true, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type worker struct {
				goroutine    uint64
				inits, exits int
				tasks        int
			}
			var (
				mu      sync.Mutex
				workers = map[int]*worker{}
				idLocal engine.Local[int]
			)
			p := engine.NewPool(engine.PoolOptions{
				Limit: tt.limit,
				Init: func(w *engine.Worker) {
					mu.Lock()
					defer mu.Unlock()
					wk := workers[w.ID]
					if wk == nil {
						wk = &worker{}
						workers[w.ID] = wk
					}
					wk.goroutine = goid()
					wk.inits++
					idLocal.Set(w, w.ID*100)
				},
				Exit: func(w *engine.Worker) {
					mu.Lock()
					defer mu.Unlock()
					wk := workers[w.ID]
					if wk == nil {
						t.Errorf("Exit before Init for worker %d", w.ID)
						return
					}
					assert.Equal(t, wk.goroutine, goid(), "Exit runs on the worker goroutine")
					assert.Equal(t, w.ID*100, idLocal.Get(w))
					wk.exits++
				},
			})

			release := make(chan struct{})
			var arrived, done sync.WaitGroup
			arrived.Add(tt.tasks)
			done.Add(tt.tasks)
			for range tt.tasks {
				require.NoError(t, p.Go(bg, func(_ context.Context, w *engine.Worker) {
					defer done.Done()
					mu.Lock()
					wk := workers[w.ID]
					if assert.NotNil(t, wk, "Init runs before the first task") {
						assert.Equal(t, wk.goroutine, goid(), "tasks run on the worker goroutine")
						wk.tasks++
					}
					assert.Equal(t, w.ID*100, idLocal.Get(w), "Local set by Init")
					mu.Unlock()
					arrived.Done()
					if tt.block {
						_, _, err := engine.Recv(bg, w, release, 0)
						assert.NoError(t, err)
						return
					}
					<-release
				}))
			}
			arrived.Wait()
			close(release)
			done.Wait()
			p.Close()

			mu.Lock()
			defer mu.Unlock()
			require.Len(t, workers, tt.wantWk)
			tasks := 0
			for id, wk := range workers {
				assert.Equal(t, 1, wk.inits, "worker %d: Init once", id)
				assert.Equal(t, 1, wk.exits, "worker %d: Exit once", id)
				tasks += wk.tasks
			}
			assert.Equal(t, tt.tasks, tasks)
		})
	}
}

func TestPoolGoAfterCloseDoesNotRun(t *testing.T) {
	p := engine.NewPool(engine.PoolOptions{})
	p.Close()
	ran := false
	err := p.Go(bg, func(context.Context, *engine.Worker) { ran = true })
	require.ErrorIs(t, err, engine.ErrClosed)
	assert.False(t, ran)
}

func TestPoolTaskGetsSubmitContext(t *testing.T) {
	p := newPool(t, engine.PoolOptions{})
	type key struct{}
	ctx := context.WithValue(bg, key{}, "v")
	got := make(chan any, 1)
	require.NoError(t, p.Go(ctx, func(ctx context.Context, _ *engine.Worker) { got <- ctx.Value(key{}) }))
	assert.Equal(t, "v", <-got)
}

// TestPoolUnblockedWorkerRespectsLimit: a worker that comes back from a wait
// while the pool is full (it was replaced when it blocked) must not take more
// queued work once its task ends; that would leave more than Limit tasks
// running. It retires instead and the queue waits for a slot.
func TestPoolUnblockedWorkerRespectsLimit(t *testing.T) {
	retired := make(chan int, 10)
	p := engine.NewPool(engine.PoolOptions{Limit: 1, Exit: func(w *engine.Worker) { retired <- w.ID }})
	defer p.Close()

	aBlocked, aGo := make(chan struct{}), make(chan struct{})
	aDone := make(chan struct{})
	require.NoError(t, p.Go(bg, func(_ context.Context, w *engine.Worker) {
		defer close(aDone)
		close(aBlocked)
		_, _, err := engine.Recv(bg, w, aGo, 0)
		assert.NoError(t, err)
	}))
	<-aBlocked
	for _, blocked := p.Stats(); blocked == 0; _, blocked = p.Stats() {
		runtime.Gosched() // A is on its way into Recv
	}

	// A waits, so B gets a new worker.
	bStarted, bGo := make(chan struct{}), make(chan struct{})
	require.NoError(t, p.Go(bg, func(context.Context, *engine.Worker) {
		close(bStarted)
		<-bGo
	}))
	<-bStarted

	// B fills the pool: C must queue.
	cStarted := make(chan struct{})
	require.NoError(t, p.Go(bg, func(context.Context, *engine.Worker) { close(cStarted) }))
	workers, blocked := p.Stats()
	require.Equal(t, 2, workers)
	require.Equal(t, 1, blocked)

	// A resumes and ends while B still runs: A's worker is one too many.
	close(aGo)
	<-aDone
	select {
	case <-cStarted:
		t.Error("C started while B was running: 2 tasks running with Limit 1")
	case id := <-retired:
		assert.Equal(t, 1, id, "A's worker retires")
	}
	close(bGo)
	<-cStarted
}
