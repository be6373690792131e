package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/semisync/semisync/engine"
)

// BenchmarkPoolTrivial submits b.N tasks that do nothing but count down; it
// measures the cost of handing a task to a worker: on a parallel pool, and
// on a serial pool, the tasks submitted by a goroutine that takes no part,
// where each one is a hand-off of the baton.
func BenchmarkPoolTrivial(b *testing.B) {
	for _, serial := range []bool{false, true} {
		name := "parallel"
		if serial {
			name = "serial"
		}
		b.Run(name, func(b *testing.B) {
			p := engine.NewPool(engine.PoolOptions{Serial: serial})
			defer p.Close()
			ctx := context.Background()
			var wg sync.WaitGroup
			task := func(context.Context, *engine.Worker) { wg.Done() }

			b.ReportAllocs()
			b.ResetTimer()
			wg.Add(b.N)
			for range b.N {
				if err := p.Go(ctx, task); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
		})
	}
}

// BenchmarkGoStatementTrivial is the baseline for BenchmarkPoolTrivial: a
// new goroutine per task.
func BenchmarkGoStatementTrivial(b *testing.B) {
	var wg sync.WaitGroup
	b.ReportAllocs()
	wg.Add(b.N)
	for range b.N {
		go wg.Done()
	}
	wg.Wait()
}

// BenchmarkGraphIndependent runs one Graph of b.N independent trivial
// nodes; ns/op is the cost per node.
func BenchmarkGraphIndependent(b *testing.B) {
	for _, bc := range []struct {
		name  string
		newEx func() (engine.Executor, func())
	}{
		{"Pool", func() (engine.Executor, func()) {
			p := engine.NewPool(engine.PoolOptions{})
			return p, p.Close
		}},
		{"Serial", func() (engine.Executor, func()) {
			p := engine.NewPool(engine.PoolOptions{Serial: true})
			return p, p.Close
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ex, stop := bc.newEx()
			defer stop()
			fn := func(context.Context, *engine.Worker) (any, error) { return nil, nil }
			var g engine.Graph
			for range b.N {
				g.Add(fn)
			}
			done := 0
			b.ReportAllocs()
			b.ResetTimer()
			err := g.Run(context.Background(), ex, nil, func(engine.NodeID, any) error {
				done++
				return nil
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if done != b.N {
				b.Fatalf("%d nodes reported, want %d", done, b.N)
			}
		})
	}
}

// BenchmarkFutureGo starts a task with Go and waits for its Result, b.N
// times in a row.
func BenchmarkFutureGo(b *testing.B) {
	for _, bc := range []struct {
		name  string
		newEx func() (engine.Executor, func())
	}{
		{"Pool", func() (engine.Executor, func()) {
			p := engine.NewPool(engine.PoolOptions{})
			return p, p.Close
		}},
		{"Serial", func() (engine.Executor, func()) {
			p := engine.NewPool(engine.PoolOptions{Serial: true})
			return p, p.Close
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ex, stop := bc.newEx()
			defer stop()
			ctx := context.Background()
			fn := func(_ context.Context, w *engine.Worker) (int, error) { return 1, nil }
			b.ReportAllocs()
			b.ResetTimer()
			sum := 0
			for range b.N {
				v, err := engine.Go(ctx, ex, fn).Result(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				sum += v
			}
			b.StopTimer()
			if sum != b.N {
				b.Fatalf("sum %d, want %d", sum, b.N)
			}
		})
	}
}

// BenchmarkFutureGoParallel is BenchmarkFutureGo from GOMAXPROCS
// goroutines at once, on one Pool.
func BenchmarkFutureGoParallel(b *testing.B) {
	p := engine.NewPool(engine.PoolOptions{})
	defer p.Close()
	ctx := context.Background()
	fn := func(_ context.Context, w *engine.Worker) (int, error) { return 1, nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := engine.Go(ctx, p, fn).Result(ctx, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkStreamSerial is BenchmarkStream's unbuffered, one-at-a-time
// case on a serial pool: a producer task and an entered consumer hand the
// baton to each other for every item.
func BenchmarkStreamSerial(b *testing.B) {
	for _, capacity := range []int{0, 64} {
		b.Run(fmt.Sprintf("cap%d", capacity), func(b *testing.B) {
			p := engine.NewPool(engine.PoolOptions{Serial: true})
			defer p.Close()
			w := p.Enter()
			defer w.Leave()
			s := engine.NewStream[int](capacity)
			engine.Go(bg, p, func(ctx context.Context, w *engine.Worker) (int, error) {
				for i := range b.N {
					_ = s.Send(ctx, w, i)
				}
				s.Close(nil)
				return 0, nil
			})
			for {
				if _, ok, _ := s.Recv(bg, w); !ok {
					break
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
