package starlarkmod_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/semisync/semisync/starlarkmod"
)

// BenchmarkCacheRerun runs a graph of 100,000 semisync calls three ways,
// each in a fresh interpreter as a new process would: without a cache,
// with an empty cache directory (the first run: every call runs and its
// result is stored), and again with the now warm directory (nothing
// runs). It reports each run's seconds and the warm rerun as a percentage
// of the first run (target: <= 10%). "work" calls each do about 20 us of
// Starlark arithmetic; "trivial" calls return their argument, the worst
// case for a cache (a lookup costs more than the call).
func BenchmarkCacheRerun(b *testing.B) {
	const calls = 100_000
	for _, bc := range []struct{ name, body string }{
		{"work", "    s = 0\n    for k in range(100):\n        s += (k * i) % 7\n    return s\n"},
		{"trivial", "    return i\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			src := fmt.Sprintf("@semisync\ndef node(i):\n%s\nfor i in range(%d):\n    node(i)\nsemisync.begin()\n", bc.body, calls)
			path := filepath.Join(b.TempDir(), "graph.star")
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				b.Fatal(err)
			}
			var plain, first, warm time.Duration
			for i := 0; i < b.N; i++ {
				plain += timeRun(b, path, "")
				dir := b.TempDir()
				first += timeRun(b, path, dir)
				warm += timeRun(b, path, dir)
			}
			n := float64(b.N)
			b.ReportMetric(plain.Seconds()/n, "nocache-s")
			b.ReportMetric(first.Seconds()/n, "first-s")
			b.ReportMetric(warm.Seconds()/n, "warm-s")
			b.ReportMetric(100*warm.Seconds()/first.Seconds(), "warm/first-%")
			b.ReportMetric(float64(warm.Nanoseconds())/n/calls, "warm-ns/call")
		})
	}
}

// timeRun runs the script at path once, with the cache directory dir
// ("": no cache) under Options.CacheAll, and returns how long it took,
// opening and closing the cache included.
func timeRun(b *testing.B, path, dir string) time.Duration {
	b.Helper()
	start := time.Now()
	opts := starlarkmod.Options{Stdout: io.Discard}
	var store *starlarkmod.DirCache
	if dir != "" {
		var err error
		if store, err = starlarkmod.OpenDirCache(dir, 0); err != nil {
			b.Fatal(err)
		}
		opts.Cache, opts.CacheAll = store, true
	}
	in := starlarkmod.New(opts)
	if _, err := in.ExecFile(context.Background(), path); err != nil {
		b.Fatal(err)
	}
	in.Close()
	if store != nil {
		if err := store.Close(); err != nil {
			b.Fatal(err)
		}
		if st := in.CacheStats(); st.Hits+st.Misses != 100_000 {
			b.Fatalf("cache: %v, want 100000 lookups", st)
		}
	}
	return time.Since(start)
}
