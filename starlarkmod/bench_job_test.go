package starlarkmod_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
)

// Job benchmarks. Re-measure with
//
//	go test ./starlarkmod -run '^$' -bench 'Job' -benchtime 5x
//
// BenchmarkJobTrivial reports ns/item for a million trivial items (target:
// <= 500 ns/item on a 2-core machine); BenchmarkJobFloor the same work
// hand-written in Go (one goroutine and thread per core, no freezing, no
// ordering), the floor we measure against; BenchmarkJobCPU the speedup of
// 2 workers over run_single_processed on CPU-bound Starlark (target >=
// 1.9x). TestJobMemoryFlat checks that memory does not grow with the item
// count when results are not kept.

const jobBenchScript = `
def nothing(x):
    return None

def work(n):
    s = 0
    for i in range(3000):
        s += (i * n) % 7
    return s

trivial = job(nothing, range(1000000))
trivial2 = job(nothing, range(1000000), processes=2)
dropped = job(nothing, range(1000000), keep_results=False)
cpu = job(work, range(2000), processes=2)
`

// benchInterp runs src and returns the interpreter's globals and a main
// thread to call them on.
func benchInterp(tb testing.TB, src string, opts starlarkmod.Options) (starlark.StringDict, *starlark.Thread) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "bench.star")
	require.NoError(tb, os.WriteFile(path, []byte(src), 0o644))
	if opts.Stdout == nil {
		opts.Stdout, opts.Stderr = io.Discard, io.Discard
	}
	in := starlarkmod.New(opts)
	tb.Cleanup(func() { in.Close() })
	r := in.NewRun(context.Background(), "")
	g, err := r.ExecFile(path)
	require.NoError(tb, err)
	return g, r.NewThread("bench")
}

// call calls method name of value v with args.
func call(tb testing.TB, th *starlark.Thread, v starlark.Value, name string, kwargs ...starlark.Tuple) starlark.Value {
	tb.Helper()
	m, err := v.(starlark.HasAttrs).Attr(name)
	require.NoError(tb, err)
	res, err := starlark.Call(th, m, nil, kwargs)
	require.NoError(tb, err)
	return res
}

func BenchmarkJobTrivial(b *testing.B) {
	g, th := benchInterp(b, jobBenchScript, starlarkmod.Options{})
	for _, name := range []string{"trivial", "trivial2", "dropped"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				call(b, th, g[name], "run")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1_000_000), "ns/item")
		})
	}
}

// BenchmarkJobFloor is the hand-written Go version of BenchmarkJobTrivial:
// GOMAXPROCS goroutines, each with its own thread, calling the function on
// its share of the items and storing the results in one list (no freezing,
// no cancellation, no laziness: the items are known ints).
func BenchmarkJobFloor(b *testing.B) {
	g, _ := benchInterp(b, jobBenchScript, starlarkmod.Options{})
	fn := g["nothing"]
	const n = 1_000_000
	workers := runtime.GOMAXPROCS(0)
	for b.Loop() {
		results := make([]starlark.Value, n)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				th := &starlark.Thread{}
				for i := w; i < n; i += workers {
					v, err := starlark.Call(th, fn, starlark.Tuple{starlark.MakeInt(i)}, nil)
					if err != nil {
						panic(err)
					}
					results[i] = v
				}
			})
		}
		wg.Wait()
		_ = starlark.NewList(results)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/item")
}

func BenchmarkJobCPU(b *testing.B) {
	g, th := benchInterp(b, jobBenchScript, starlarkmod.Options{})
	var single, multi time.Duration
	for b.Loop() {
		t0 := time.Now()
		s := call(b, th, g["cpu"], "run_single_processed")
		t1 := time.Now()
		m := call(b, th, g["cpu"], "run")
		t2 := time.Now()
		single += t1.Sub(t0)
		multi += t2.Sub(t1)
		if eq, err := starlark.Equal(s, m); err != nil || !eq {
			b.Fatalf("results differ")
		}
	}
	b.ReportMetric(single.Seconds()*1000/float64(b.N), "single-ms")
	b.ReportMetric(multi.Seconds()*1000/float64(b.N), "multi-ms")
	b.ReportMetric(single.Seconds()/multi.Seconds(), "speedup")
}

// TestJobMemoryFlat runs a job whose function returns None over 10**6 and
// then 10**7 items with keep_results=False, sampling the heap from inside
// the items (runtime.ReadMemStats every 100000 items), and checks that the
// peak does not grow with the item count: materialising 10**7 items or
// their results would take 160 MB more.
func TestJobMemoryFlat(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("10**7 items: too slow in -short or -race mode")
	}
	var mu sync.Mutex
	var peak uint64
	probe := starlark.NewBuiltin("probe", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		peak = max(peak, ms.HeapInuse)
		mu.Unlock()
		return starlark.None, nil
	})
	g, th := benchInterp(t, `
load("probe", "probe")
def f(x):
    if x % 100000 == 0:
        probe()
small = job(f, range(1000000), keep_results=False)
large = job(f, range(10000000), keep_results=False)
`, starlarkmod.Options{Modules: map[string]starlark.StringDict{"probe": {"probe": probe}}})
	measure := func(name string) uint64 {
		runtime.GC()
		mu.Lock()
		peak = 0
		mu.Unlock()
		require.Equal(t, starlark.None, call(t, th, g[name], "run"))
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
	small, large := measure("small"), measure("large")
	t.Logf("peak HeapInuse: 10**6 items %.1f MB, 10**7 items %.1f MB", float64(small)/1e6, float64(large)/1e6)
	require.Less(t, large, small+32<<20, "memory grows with the number of items")
}
