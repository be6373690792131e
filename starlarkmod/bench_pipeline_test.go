package starlarkmod_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/semisync/semisync/starlarkmod"
)

// Pipelines and the dispatcher, no-op work per item: the cost of moving
// items between threads. Target (DESIGN.md section 6): >= 1M items/s.
//
//	go test ./starlarkmod/ -run '^$' -bench 'Pipeline|Dispatcher' -benchtime 1000000x
//
// Each benchmark runs one script over b.N items in a fresh interpreter and
// reports items/s (or msgs/s); the per-op time is the cost per item.

// benchPipeline runs src, with N replaced by b.N, once.
func benchPipeline(b *testing.B, src string, sequential bool) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.star")
	src = strings.ReplaceAll(src, "N_ITEMS", strconv.Itoa(b.N))
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: io.Discard, Sequential: sequential})
	b.ResetTimer()
	_, err := in.ExecFile(context.Background(), path)
	if cerr := in.Close(); err == nil {
		err = cerr
	}
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
}

const pipelineDefs = `
@coroutine
def noop(inbox):
    for x in inbox:
        pass

@coroutine(buffer = 64)
def noop64(inbox):
    for x in inbox:
        pass

@generator
def numbers(emit, n):
    for i in range(n):
        emit(i)

@generator(buffer = 64)
def numbers64(emit, n):
    for i in range(n):
        emit(i)
`

// BenchmarkPipeline measures items per second through the pipeline
// primitives into a consumer that does nothing.
func BenchmarkPipeline(b *testing.B) {
	cases := []struct{ name, body string }{
		// inject from a plain iterable: items move in batches of 64.
		{"inject/range/unbuffered", `inject(range(N_ITEMS), noop())`},
		{"inject/range/buffer64", `inject(range(N_ITEMS), noop64())`},
		// inject from a stream: the producer's thread, the injecting
		// thread and the consumer's thread, with a hand-off at each step.
		{"inject/generator/unbuffered", `inject(numbers(N_ITEMS), noop())`},
		{"inject/generator/buffer64", `inject(numbers64(N_ITEMS), noop64())`},
		// A for loop over a stream: one hand-off per item.
		{"for/generator/unbuffered", "for x in numbers(N_ITEMS):\n    pass"},
		{"for/generator/buffer64", "for x in numbers64(N_ITEMS):\n    pass"},
		// consumer.send from a Starlark loop, one item per call.
		{"send/unbuffered", "c = noop()\nfor i in range(N_ITEMS):\n    c.send(i)\nc.close()\nc.result()"},
		{"send/buffer64", "c = noop64()\nfor i in range(N_ITEMS):\n    c.send(i)\nc.close()\nc.result()"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			benchPipeline(b, pipelineDefs+c.body+"\n", false)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
	// The floor: the same loops on one thread, no pipeline.
	b.Run("floor/loop", func(b *testing.B) {
		benchPipeline(b, "def f():\n    for i in range(N_ITEMS):\n        pass\nf()\n", false)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
	})
	b.Run("sequential/inject/generator", func(b *testing.B) {
		benchPipeline(b, pipelineDefs+"inject(numbers(N_ITEMS), noop())\n", true)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
	})
}

// BenchmarkDispatcher measures messages per second through a dispatcher
// to a handler that does nothing: sent from a Starlark loop, handled on the
// delivery thread, then waited for.
func BenchmarkDispatcher(b *testing.B) {
	cases := []struct{ name, sender string }{
		{"string-sender", `"device"`},
		{"dict-sender", `{"name": "device"}`},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			benchPipeline(b, `
def handler(sender):
    pass

d = Dispatcher()
obj = `+c.sender+`
d.subscribe(obj, "moved", handler)
def run(n):
    for i in range(n):
        d.send(obj, "moved")
    d.wait()
run(N_ITEMS)
`, false)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
	b.Run("floor/call", func(b *testing.B) {
		benchPipeline(b, `
def handler(sender):
    pass

obj = "device"
def run(n):
    for i in range(n):
        handler(obj)
run(N_ITEMS)
`, false)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}
