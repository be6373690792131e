package starlarkmod_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

// BenchmarkSemisyncTrivialObserved is BenchmarkSemisyncTrivial with an
// Observer recording every call (what --trace, --graph and --summary
// need), and "trace" also writes the trace: the cost of observing is the
// difference from "off" (target: under 10%). Run it with
// -benchtime 100000x -count 5 to compare the 100k-call benchmark.
func BenchmarkSemisyncTrivialObserved(b *testing.B) {
	src := `
@semisync
def f(i):
    return i

for i in range(%d):
    f(i)
semisync.begin()
`
	// cpu-ns/op is the process's user+system CPU time per call (recording
	// and, for "trace", writing the trace included): on a shared machine it
	// compares better than ns/op.
	cpu := func(b *testing.B, opts starlarkmod.Options, after func()) {
		c0 := cpuTime()
		runBench(b, fmt.Sprintf(src, b.N), opts)
		if after != nil {
			after()
		}
		b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
	}
	b.Run("off", func(b *testing.B) {
		cpu(b, starlarkmod.Options{}, nil)
	})
	b.Run("observed", func(b *testing.B) {
		cpu(b, starlarkmod.Options{Observer: starlarkmod.NewObserver()}, nil)
	})
	b.Run("trace", func(b *testing.B) {
		obs := starlarkmod.NewObserver()
		if err := obs.StreamTrace(io.Discard); err != nil { // as --trace does
			b.Fatal(err)
		}
		cpu(b, starlarkmod.Options{Observer: obs}, func() {
			if err := obs.WriteTrace(io.Discard); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// TestTraceBoundedForLargeJob traces a job of 200,000 items: the trace
// holds a sample of the item slices (every one of the first 1024, then
// 512 per doubling), while --summary still counts every item.
func TestTraceBoundedForLargeJob(t *testing.T) {
	obs := starlarkmod.NewObserver()
	path := filepath.Join(t.TempDir(), "big.star")
	require.NoError(t, os.WriteFile(path, []byte("def f(x):\n    return x\njob(f, range(200000), keep_results = False).run()\n"), 0o644))
	in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Observer: obs})
	_, err := in.ExecFile(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, in.Close())
	var trace bytes.Buffer
	require.NoError(t, obs.WriteTrace(&trace))
	var file struct {
		TraceEvents []struct {
			Ph, Cat string
		} `json:"traceEvents"`
	}
	require.NoError(t, json.Unmarshal(trace.Bytes(), &file))
	items := 0
	for _, e := range file.TraceEvents {
		if e.Ph == "X" && e.Cat == "item" {
			items++
		}
	}
	assert.Equal(t, 1024+512*7+(200000-131072)/256+1, items, "1024, then 512 per doubling up to 2^17, then every 256th")
	var summary bytes.Buffer
	require.NoError(t, obs.WriteSummary(&summary))
	assert.Regexp(t, `\n  f +200000 `, summary.String())
}
