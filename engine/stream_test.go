package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/engine"
)

// drain receives everything from s until its end.
func drain[T any](t *testing.T, s *engine.Stream[T]) ([]T, error) {
	t.Helper()
	var got []T
	for {
		v, ok, err := s.Recv(bg, nil)
		if !ok {
			return got, err
		}
		got = append(got, v)
	}
}

func TestStreamDeliversInOrder(t *testing.T) {
	for _, capacity := range []int{0, 1, 3, 64} {
		for _, batch := range []int{0, 1, 7} {
			t.Run(fmt.Sprintf("cap%d/batch%d", capacity, batch), func(t *testing.T) {
				s := engine.NewStream[int](capacity)
				assert.Equal(t, capacity, s.Capacity())
				const n = 1000
				go func() {
					var buf []int
					for i := range n {
						if batch == 0 {
							if err := s.Send(bg, nil, i); err != nil {
								panic(err)
							}
							continue
						}
						buf = append(buf, i)
						if len(buf) == batch {
							if err := s.SendBatch(bg, nil, buf); err != nil {
								panic(err)
							}
							buf = buf[:0]
						}
					}
					if err := s.SendBatch(bg, nil, buf); err != nil {
						panic(err)
					}
					s.Close(nil)
				}()
				got, err := drain(t, s)
				require.NoError(t, err)
				require.Len(t, got, n)
				for i, v := range got {
					require.Equal(t, i, v)
				}
			})
		}
	}
}

func TestStreamManyProducersKeepTheirOrder(t *testing.T) {
	for _, capacity := range []int{0, 2, 100} {
		t.Run(fmt.Sprint("cap", capacity), func(t *testing.T) {
			s := engine.NewStream[[2]int](capacity)
			const producers, n = 4, 500
			var wg sync.WaitGroup
			for p := range producers {
				wg.Go(func() {
					for i := range n {
						require.NoError(t, s.Send(bg, nil, [2]int{p, i}))
					}
				})
			}
			go func() { wg.Wait(); s.Close(nil) }()
			got, err := drain(t, s)
			require.NoError(t, err)
			require.Len(t, got, producers*n)
			next := make([]int, producers)
			for _, v := range got {
				require.Equal(t, next[v[0]], v[1], "producer %d out of order", v[0])
				next[v[0]]++
			}
		})
	}
}

func TestStreamCloseWithError(t *testing.T) {
	s := engine.NewStream[string](2)
	require.NoError(t, s.Send(bg, nil, "a"))
	require.NoError(t, s.Send(bg, nil, "b"))
	s.Close(errBoom)
	s.Close(nil) // only the first counts
	assert.ErrorIs(t, s.Send(bg, nil, "c"), engine.ErrStreamClosed)
	got, err := drain(t, s)
	assert.Equal(t, []string{"a", "b"}, got)
	assert.ErrorIs(t, err, errBoom)
	_, ok, err := s.Recv(bg, nil)
	assert.False(t, ok, "the end is sticky")
	assert.ErrorIs(t, err, errBoom)
}

// TestStreamCapacity checks how far producers may run ahead: exactly
// capacity items beyond those received. synctest.Wait returns when every
// goroutine of the test is blocked, so counting completed Sends then shows
// where the producer stopped.
func TestStreamCapacity(t *testing.T) {
	for _, capacity := range []int{0, 1, 5} {
		t.Run(fmt.Sprint("cap", capacity), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := engine.NewStream[int](capacity)
				var sent atomic.Int64
				go func() {
					for i := range 100 {
						if s.Send(bg, nil, i) != nil {
							return
						}
						sent.Add(1)
					}
				}()
				synctest.Wait()
				assert.EqualValues(t, capacity, sent.Load(), "sends completed with no consumer")
				for r := 1; r <= 3; r++ {
					v, ok, err := s.Recv(bg, nil)
					require.True(t, ok)
					require.NoError(t, err)
					require.Equal(t, r-1, v)
					synctest.Wait()
					assert.EqualValues(t, capacity+r, sent.Load(), "after %d received", r)
				}
				s.Release(nil)
				synctest.Wait()
			})
		})
	}
}

// TestStreamHandOff: a Send to an unbuffered stream whose consumer is
// already waiting returns without waiting for the consumer to run again,
// as with an unbuffered channel.
func TestStreamHandOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := engine.NewStream[int](0)
		got := make(chan int)
		go func() {
			v, _, _ := s.Recv(bg, nil)
			got <- v
		}()
		synctest.Wait() // the consumer waits in Recv
		require.NoError(t, s.Send(bg, nil, 7))
		assert.Equal(t, 7, <-got)
		s.Close(nil)
	})
}

func TestStreamSendBatchWaitsForItsLastItem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := engine.NewStream[int](1)
		done := make(chan error, 1)
		go func() { done <- s.SendBatch(bg, nil, []int{1, 2, 3}) }()
		synctest.Wait()
		for _, want := range []int{1, 2} {
			select {
			case <-done:
				t.Fatalf("SendBatch returned before item %d was received", want)
			default:
			}
			v, _, _ := s.Recv(bg, nil)
			assert.Equal(t, want, v)
			synctest.Wait()
		}
		// Items 1 and 2 received, 3 waits: within capacity 1.
		require.NoError(t, <-done)
		v, _, _ := s.Recv(bg, nil)
		assert.Equal(t, 3, v)
		assert.NoError(t, s.SendBatch(bg, nil, nil))
	})
}

func TestStreamReleaseStopsProducers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stop := errors.New("consumer stopped")
		s := engine.NewStream[int](0)
		errs := make(chan error, 3)
		for range 3 {
			go func() { errs <- s.Send(bg, nil, 1) }()
		}
		synctest.Wait()
		v, ok, _ := s.Recv(bg, nil) // takes all three queued items privately
		require.True(t, ok)
		assert.Equal(t, 1, v)
		s.Release(stop)
		s.Release(nil) // only the first counts
		n := 0
		for range 3 {
			if err := <-errs; err != nil {
				assert.ErrorIs(t, err, stop)
				n++
			}
		}
		assert.Equal(t, 2, n, "the received item's Send succeeds, the others fail")
		assert.ErrorIs(t, s.Send(bg, nil, 2), stop)
		assert.ErrorIs(t, s.SendBatch(bg, nil, []int{3}), stop)
		released, err := s.Released()
		assert.True(t, released)
		assert.ErrorIs(t, err, stop)
		_, ok, err = s.Recv(bg, nil)
		assert.False(t, ok)
		assert.ErrorIs(t, err, stop)
	})
	s := engine.NewStream[int](0)
	s.Release(nil)
	assert.ErrorIs(t, s.Send(bg, nil, 1), engine.ErrReleased)
}

func TestStreamContextEndsWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("stop now")
		s := engine.NewStream[int](0)
		ctx, cancel := context.WithCancelCause(bg)
		sendErr := make(chan error)
		go func() { sendErr <- s.Send(ctx, nil, 1) }()
		synctest.Wait()
		cancel(cause)
		assert.ErrorIs(t, <-sendErr, cause)

		// The item was queued before the Send gave up: it may still arrive.
		v, ok, err := s.Recv(ctx, nil)
		assert.True(t, ok)
		assert.NoError(t, err)
		assert.Equal(t, 1, v)
		_, ok, err = s.Recv(ctx, nil)
		assert.False(t, ok)
		assert.ErrorIs(t, err, cause)

		ctx2, cancel2 := context.WithCancelCause(bg)
		recvErr := make(chan error)
		go func() {
			_, _, err := s.Recv(ctx2, nil)
			recvErr <- err
		}()
		synctest.Wait()
		cancel2(cause)
		assert.ErrorIs(t, <-recvErr, cause)
	})
}

// TestStreamMarksWorkerBlocked: a pool worker waiting in Send or Recv is
// counted as blocked, so the pool can run other tasks meanwhile.
func TestStreamMarksWorkerBlocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := engine.NewPool(engine.PoolOptions{Limit: 1})
		defer p.Close()
		s := engine.NewStream[int](0)
		got := make(chan int, 1)
		require.NoError(t, p.Go(bg, func(ctx context.Context, w *engine.Worker) {
			v, _, _ := s.Recv(ctx, w)
			got <- v
		}))
		synctest.Wait()
		workers, blocked := p.Stats()
		assert.Equal(t, 1, workers)
		assert.Equal(t, 1, blocked)
		// With Limit 1, this task runs only because the first worker is blocked.
		require.NoError(t, p.Go(bg, func(ctx context.Context, w *engine.Worker) {
			if err := s.Send(ctx, w, 5); err != nil {
				panic(err)
			}
		}))
		assert.Equal(t, 5, <-got)
	})
}

func TestStreamNegativeCapacityPanics(t *testing.T) {
	assert.NotNil(t, recoverPanic(func() { engine.NewStream[int](-1) }))
}

// TestStreamRace hammers a stream from several producers while the
// consumer releases it half way; run with -race.
func TestStreamRace(t *testing.T) {
	for _, capacity := range []int{0, 8} {
		s := engine.NewStream[int](capacity)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					var err error
					if i%3 == 0 {
						err = s.SendBatch(bg, nil, []int{i, i})
					} else {
						err = s.Send(bg, nil, i)
					}
					if err != nil {
						return
					}
				}
			})
		}
		for range 2000 {
			_, ok, _ := s.Recv(bg, nil)
			require.True(t, ok)
		}
		s.Release(nil)
		wg.Wait()
	}
}

func BenchmarkStream(b *testing.B) {
	for _, capacity := range []int{0, 64} {
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("cap%d/batch%d", capacity, batch), func(b *testing.B) {
				s := engine.NewStream[int](capacity)
				go func() {
					buf := make([]int, 0, batch)
					for i := range b.N {
						if batch == 1 {
							_ = s.Send(bg, nil, i)
							continue
						}
						buf = append(buf, i)
						if len(buf) == batch {
							_ = s.SendBatch(bg, nil, buf)
							buf = buf[:0]
						}
					}
					_ = s.SendBatch(bg, nil, buf)
					s.Close(nil)
				}()
				for {
					if _, ok, _ := s.Recv(bg, nil); !ok {
						break
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
			})
		}
	}
}
