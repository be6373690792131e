package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/semisync/semisync/starlarkmod"
)

// BenchmarkTransport measures the cluster's own cost: b.N trivial items
// (the worker's Exec upper-cases its argument, no Starlark) through an
// embedded server to two in-process workers and back, as one batch.
func BenchmarkTransport(b *testing.B) {
	s := startServer(b, b.TempDir())
	startWorker(b, s, WorkerOptions{Name: "w1", Concurrency: 1, Exec: echoExec(nil)})
	startWorker(b, s, WorkerOptions{Name: "w2", Concurrency: 1, Exec: echoExec(nil)})
	e := newExecutor(b, s, Options{})
	batch := batchOf("upper")
	for i := range b.N {
		batch.Items = append(batch.Items, starlarkmod.RemoteItem{ID: fmt.Sprintf("item-%d", i), Args: []byte("x")})
	}
	var c collected
	b.ResetTimer()
	start := time.Now()
	if err := e.Run(context.Background(), batch, c.done); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
	if len(c.vals) != b.N {
		b.Fatalf("%d results for %d items", len(c.vals), b.N)
	}
}
