package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
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

// BenchmarkJobInProcess: a script's job of b.N trivial items through an
// embedded server to two in-process workers running Starlark with
// Interpreter.ExecRemoteBatchLines (the whole path but the processes; profile it
// with -cpuprofile).
func BenchmarkJobInProcess(b *testing.B) {
	s := startServer(b, b.TempDir())
	for _, name := range []string{"w1", "w2"} {
		win := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: io.Discard})
		b.Cleanup(func() { win.Close() })
		startWorker(b, s, WorkerOptions{Name: name, Concurrency: 1, ExecBatch: win.ExecRemoteBatchLines})
	}
	e := newExecutor(b, s, Options{})
	in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: os.Stderr, Remote: e})
	defer in.Close()
	path := filepath.Join(b.TempDir(), "job.star")
	if err := os.WriteFile(path, fmt.Appendf(nil, "def f(x):\n    return x\nr = job(f, range(%d), progress = False).run()\n", b.N), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	if _, err := in.ExecFile(context.Background(), path); err != nil {
		b.Fatal(starlarkmod.FormatError(err))
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}

// BenchmarkTransportRoundTrip: one-item batches, one after the other,
// through an in-process worker whose Exec upper-cases its argument: the
// cluster's latency without Starlark.
func BenchmarkTransportRoundTrip(b *testing.B) {
	s := startServer(b, b.TempDir())
	startWorker(b, s, WorkerOptions{Name: "w1", Concurrency: 1, Exec: echoExec(nil)})
	e := newExecutor(b, s, Options{})
	var c collected
	for i := range b.N {
		if err := e.Run(context.Background(), batchOf("upper", strconv.Itoa(i)), c.done); err != nil {
			b.Fatal(err)
		}
	}
}
