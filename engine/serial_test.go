package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/engine"
)

// serialScenario runs 50 tasks on a serial pool that wait on each other in
// interleaved ways (sleeps, futures, an unbuffered stream, a channel) and
// returns the log they write.
func serialScenario(t *testing.T) []string {
	p := engine.NewPool(engine.PoolOptions{Serial: true})
	defer p.Close()
	w := p.Enter()
	defer w.Leave()

	var (
		mu  sync.Mutex
		log []string
	)
	logf := func(format string, args ...any) {
		mu.Lock()
		log = append(log, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	ctx := context.Background()
	s := engine.NewStream[int](0)
	ch := make(chan int, 50)
	futures := make([]*engine.Future[int], 50)
	for i := range futures {
		futures[i] = engine.Go(ctx, p, func(ctx context.Context, w *engine.Worker) (int, error) {
			logf("start %d", i)
			switch i % 5 {
			case 0:
				if err := w.Sleep(ctx, time.Duration(i%7)*time.Millisecond); err != nil {
					return 0, err
				}
			case 1:
				v, err := futures[i-1].Result(ctx, w)
				logf("%d got future %d", i, v)
				if err != nil {
					return 0, err
				}
			case 2:
				if err := s.Send(ctx, w, i); err != nil {
					return 0, err
				}
			case 3:
				v, _, err := engine.Recv(ctx, w, ch, 0)
				logf("%d got %d from the channel", i, v)
				if err != nil {
					return 0, err
				}
			case 4:
				ch <- i // buffered: never blocks
				if err := w.Sleep(ctx, 0); err != nil {
					return 0, err
				}
			}
			logf("end %d", i)
			return i, nil
		})
	}
	consumer := engine.Go(ctx, p, func(ctx context.Context, w *engine.Worker) (int, error) {
		for range 10 {
			v, _, err := s.Recv(ctx, w)
			if err != nil {
				return 0, err
			}
			logf("stream gave %d", v)
		}
		return 0, nil
	})
	logf("submitted")
	for _, f := range append(futures, consumer) {
		_, err := f.Result(ctx, w)
		require.NoError(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return log
}

func TestSerialDeterminism(t *testing.T) {
	first := serialScenario(t)
	require.Len(t, first, 50*2+10+10+10+1)
	assert.Equal(t, "submitted", first[0], "the caller holds the baton until it waits")
	for run := range 19 {
		require.Equal(t, first, serialScenario(t), "run %d differs", run+2)
	}
}

// TestSerialTimersOrder: sleeps wake in the order of their virtual
// deadlines, then of their creation; virtual time advances only when a
// timer fires, and sleeps still take real time.
func TestSerialTimersOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := engine.NewPool(engine.PoolOptions{Serial: true})
		defer p.Close()
		var (
			mu    sync.Mutex
			order []string
		)
		note := func(s string) {
			mu.Lock()
			order = append(order, s)
			mu.Unlock()
		}
		ms := time.Millisecond
		sleeps := []struct {
			name string
			ds   []time.Duration
		}{
			{"a30", []time.Duration{30 * ms}},
			{"b10", []time.Duration{10 * ms}},
			{"c20", []time.Duration{20 * ms}},
			{"d10", []time.Duration{10 * ms}},
			{"e0", []time.Duration{0}},
			{"f10+10", []time.Duration{10 * ms, 10 * ms}}, // second deadline 20, made after c20's
			{"g5+25", []time.Duration{5 * ms, 25 * ms}},   // second deadline 30, made after a30's
		}
		start := time.Now()
		var fs []*engine.Future[int]
		for _, sl := range sleeps {
			fs = append(fs, engine.Go(bg, p, func(ctx context.Context, w *engine.Worker) (int, error) {
				for k, d := range sl.ds {
					if err := w.Sleep(ctx, d); err != nil {
						return 0, err
					}
					note(fmt.Sprintf("%s#%d", sl.name, k))
				}
				return 0, nil
			}))
		}
		for _, f := range fs {
			_, err := f.Result(bg, nil)
			require.NoError(t, err)
		}
		assert.Equal(t, []string{
			"e0#0", "g5+25#0", "b10#0", "d10#0", "f10+10#0", "c20#0", "f10+10#1", "a30#0", "g5+25#1",
		}, order)
		assert.Equal(t, 30*ms, time.Since(start), "sleeps take real time, concurrently")
	})
}

// TestStreamEndlessProducer: a consumer that stops after 10 items of an
// endless producer over an unbuffered stream releases it, and the producer
// ends.
func TestStreamEndlessProducer(t *testing.T) {
	for _, opts := range []engine.PoolOptions{{}, {Serial: true}, {Serial: true, Max: 1}} {
		t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
			p := newPool(t, opts)
			w := p.Enter()
			s := engine.NewStream[int](0)
			producer := engine.Go(bg, p, func(ctx context.Context, w *engine.Worker) (int, error) {
				for i := 0; ; i++ {
					if err := s.Send(ctx, w, i); err != nil {
						return i, err
					}
				}
			})
			var got []int
			for range 10 {
				v, ok, err := s.Recv(bg, w)
				require.NoError(t, err)
				require.True(t, ok)
				got = append(got, v)
			}
			s.Release(nil)
			_, err := producer.Result(bg, w)
			w.Leave()
			assert.ErrorIs(t, err, engine.ErrReleased)
			assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, got)
		})
	}
}

// TestTokenLock: a chan struct{} of capacity 1 used as a lock (receive to
// take, send to give back). The caller holds it while a task waits for it;
// nothing deadlocks, and the task gets it once the caller gives it back.
func TestTokenLock(t *testing.T) {
	for _, opts := range []engine.PoolOptions{{}, {Serial: true}, {Serial: true, Max: 1}} {
		t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
			p := newPool(t, opts)
			w := p.Enter()
			defer w.Leave()
			var (
				mu  sync.Mutex
				log []string
			)
			note := func(s string) {
				mu.Lock()
				log = append(log, s)
				mu.Unlock()
			}
			token := make(chan struct{}, 1)
			token <- struct{}{}
			_, _, err := engine.Recv(bg, w, token, 0)
			require.NoError(t, err)
			note("caller locked")
			waiting := make(chan struct{})
			f := engine.Go(bg, p, func(ctx context.Context, w *engine.Worker) (int, error) {
				close(waiting)
				if _, _, err := engine.Recv(ctx, w, token, 0); err != nil {
					return 0, err
				}
				note("task locked")
				token <- struct{}{}
				return 0, nil
			})
			_, _, err = engine.Recv(bg, w, waiting, 0) // the task runs and waits for the token
			require.NoError(t, err)
			require.NoError(t, w.Sleep(bg, time.Millisecond))
			note("caller unlocks")
			token <- struct{}{}
			_, err = f.Result(bg, w)
			require.NoError(t, err)
			assert.Equal(t, []string{"caller locked", "caller unlocks", "task locked"}, log)
		})
	}
}

// TestSerialCancelWakesEveryWaiter: cancelling a context from outside the
// pool (as Ctrl-C does) wakes every sleeper and waiter at once.
func TestSerialCancelWakesEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := engine.NewPool(engine.PoolOptions{Serial: true})
		defer p.Close()
		ctx, cancel := context.WithCancelCause(bg)
		interrupted := errors.New("interrupted")
		never := make(chan int)
		var fs []*engine.Future[int]
		for i := range 100 {
			fs = append(fs, engine.Go(ctx, p, func(ctx context.Context, w *engine.Worker) (int, error) {
				switch i % 3 {
				case 0:
					return 0, w.Sleep(ctx, time.Hour)
				case 1:
					_, _, err := engine.Recv(ctx, w, never, 0)
					return 0, err
				default:
					_, _, err := engine.Recv(ctx, w, never, time.Hour)
					return 0, err
				}
			}))
		}
		synctest.Wait() // every task waits
		start := time.Now()
		cancel(interrupted)
		for _, f := range fs {
			_, err := f.Result(bg, nil)
			assert.ErrorIs(t, err, interrupted)
		}
		assert.Zero(t, time.Since(start), "no timer had to fire")
	})
}

func TestRecv(t *testing.T) {
	cause := errors.New("cause")
	tests := []struct {
		name    string
		setup   func(ch chan int, cancel context.CancelCauseFunc)
		timeout time.Duration
		wantV   int
		wantOK  bool
		wantErr error
		took    time.Duration
	}{
		{"Value", func(ch chan int, _ context.CancelCauseFunc) { ch <- 7 }, 0, 7, true, nil, 0},
		{"ValueLater", func(ch chan int, _ context.CancelCauseFunc) {
			time.AfterFunc(time.Second, func() { ch <- 8 })
		}, time.Minute, 8, true, nil, time.Second},
		{"Closed", func(ch chan int, _ context.CancelCauseFunc) { close(ch) }, 0, 0, false, nil, 0},
		{"ValueBeatsDoneContext", func(ch chan int, cancel context.CancelCauseFunc) { ch <- 9; cancel(cause) }, 0, 9, true, nil, 0},
		{"Cancelled", func(_ chan int, cancel context.CancelCauseFunc) { cancel(cause) }, 0, 0, false, cause, 0},
		{"CancelledLater", func(_ chan int, cancel context.CancelCauseFunc) {
			time.AfterFunc(time.Second, func() { cancel(cause) })
		}, time.Minute, 0, false, cause, time.Second},
		{"TimesOut", func(chan int, context.CancelCauseFunc) {}, time.Second, 0, false, engine.ErrTimeout, time.Second},
	}
	for _, serial := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("serial=%v/%s", serial, tt.name), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					p := engine.NewPool(engine.PoolOptions{Serial: serial})
					defer p.Close()
					ch := make(chan int, 1)
					ctx, cancel := context.WithCancelCause(bg)
					defer cancel(nil)
					tt.setup(ch, cancel)
					f := engine.Go(bg, p, func(_ context.Context, w *engine.Worker) (int, error) {
						start := time.Now()
						v, ok, err := engine.Recv(ctx, w, ch, tt.timeout)
						assert.Equal(t, tt.took, time.Since(start))
						assert.Equal(t, tt.wantOK, ok)
						return v, err
					})
					v, err := f.Result(bg, nil)
					assert.Equal(t, tt.wantV, v)
					assert.ErrorIs(t, err, tt.wantErr)
					if tt.wantErr == nil {
						assert.NoError(t, err)
					}
				})
			})
		}
	}
}

func TestLocal(t *testing.T) {
	var (
		name  engine.Local[string]
		count engine.Local[int]
		other engine.Local[int] // same type, different variable
	)
	tests := []struct {
		name string
		do   func(w *engine.Worker) []any
		want []any
	}{
		{"Unset", func(w *engine.Worker) []any { return []any{name.Get(w), count.Get(w)} }, []any{"", 0}},
		{"Set", func(w *engine.Worker) []any {
			name.Set(w, "w")
			count.Set(w, 3)
			return []any{name.Get(w), count.Get(w), other.Get(w)}
		}, []any{"w", 3, 0}},
		{"Overwrite", func(w *engine.Worker) []any {
			count.Set(w, 1)
			other.Set(w, 2)
			count.Set(w, 5)
			return []any{count.Get(w), other.Get(w)}
		}, []any{5, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, engine.PoolOptions{})
			f := engine.Go(bg, p, func(_ context.Context, w *engine.Worker) ([]any, error) { return tt.do(w), nil })
			got, err := f.Result(bg, nil)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	t.Run("PerWorker", func(t *testing.T) {
		p := newPool(t, engine.PoolOptions{Init: func(w *engine.Worker) { count.Set(w, w.ID*10) }})
		a, b := p.Enter(), p.Enter()
		count.Set(a, 1)
		assert.Equal(t, 1, count.Get(a))
		assert.Equal(t, 0, count.Get(b), "entered workers do not run Init")
		f := engine.Go(bg, p, func(_ context.Context, w *engine.Worker) (int, error) { return count.Get(w) - w.ID*10, nil })
		v, err := f.Result(bg, a)
		require.NoError(t, err)
		assert.Zero(t, v, "Init set the pool worker's own value")
		a.Leave()
		b.Leave()
	})
	t.Run("NilWorker", func(t *testing.T) {
		assert.Equal(t, "", name.Get(nil))
		assert.Equal(t, "engine: Local.Set on a nil Worker", recoverPanic(func() { name.Set(nil, "x") }))
	})
}

// TestSerialEnterLeave: entered goroutines take turns with the pool's
// workers; Leave hands on the baton and Rejoin takes it back, keeping the
// worker's ID and locals.
func TestSerialEnterLeave(t *testing.T) {
	p := newPool(t, engine.PoolOptions{Serial: true})
	var tag engine.Local[string]
	w := p.Enter()
	tag.Set(w, "main")
	id := w.ID
	var (
		mu     sync.Mutex
		inside int
		most   int
	)
	enterExit := func() {
		mu.Lock()
		inside++
		most = max(most, inside)
		mu.Unlock()
		mu.Lock()
		inside--
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				o := p.Enter()
				enterExit()
				require.NoError(t, o.Sleep(bg, 0))
				enterExit()
				o.Leave()
			}
		})
	}
	// The main goroutine holds the baton: nobody else runs.
	enterExit()
	w.Leave()
	wg.Wait()
	w.Rejoin()
	assert.Equal(t, id, w.ID)
	assert.Equal(t, "main", tag.Get(w))
	w.Leave()
	assert.Equal(t, 1, most, "one participant at a time")
	assert.Equal(t, "engine: Worker.Leave on a worker that did not Enter", recoverPanic(func() { (&engine.Worker{}).Leave() }))
}

// TestParallelEnteredWaitsDoNotCount: an entered goroutine's waits do not
// change a parallel pool's accounting.
func TestParallelEnteredWaitsDoNotCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := engine.NewPool(engine.PoolOptions{Limit: 1})
		defer p.Close()
		done := make(chan error)
		go func() {
			w := p.Enter()
			defer w.Leave()
			assert.Positive(t, w.ID)
			done <- w.Sleep(bg, time.Second)
		}()
		synctest.Wait()
		workers, blocked := p.Stats()
		assert.Zero(t, workers)
		assert.Zero(t, blocked)
		require.NoError(t, <-done)
	})
}
