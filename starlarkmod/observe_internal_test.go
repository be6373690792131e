package starlarkmod

import (
	"io"
	"testing"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/engine"
)

// BenchmarkObserveTask measures what observing adds to one task: the
// recording hooks ("record"), and writing the task's slice and flow to a
// trace ("write", per slice). Compare with BenchmarkSemisyncTrivial's
// ~1.1 us per call.
func BenchmarkObserveTask(b *testing.B) {
	fn := starlark.NewBuiltin("f", nil)
	main := newRootID()
	w := &engine.Worker{ID: 3}
	b.Run("off", func(b *testing.B) {
		ro := (*Observer)(nil).newRunObs()
		for i := 0; b.Loop(); i++ {
			t0 := ro.begin()
			ro.task(t0, w, taskRef{parent: main, n: i}, fn, nil)
		}
	})
	b.Run("record", func(b *testing.B) {
		ro := NewObserver().newRunObs()
		for i := 0; b.Loop(); i++ {
			t0 := ro.begin()
			ro.task(t0, w, taskRef{parent: main, n: i}, fn, nil)
		}
	})
	b.Run("write", func(b *testing.B) {
		const n = 100_000
		o := NewObserver()
		ro := o.newRunObs()
		for i := range n {
			t0 := ro.begin()
			ro.task(t0, w, taskRef{parent: main, n: i}, fn, nil)
		}
		for b.Loop() {
			if err := o.WriteTrace(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/slice")
	})
}

// TestJobItemSampling checks the bound on a job's item slices: every item
// below 1024, then 512 per doubling, so 10^7 items give about 7,800.
func TestJobItemSampling(t *testing.T) {
	count := func(n int) int {
		c := 0
		for i := range n {
			if sampled(i) {
				c++
			}
		}
		return c
	}
	if got := count(1024); got != 1024 {
		t.Errorf("first 1024 items: %d sampled, want all", got)
	}
	if got := count(2048); got != 1024+512 {
		t.Errorf("2048 items: %d sampled, want 1536", got)
	}
	if got := count(10_000_000); got < 7500 || got > 8000 {
		t.Errorf("10^7 items: %d sampled, want about 7,800", got)
	}
}

// TestSliceCap checks that a run keeps at most MaxTraceSlices slices and
// counts the rest as dropped, while the per-function counts stay exact.
func TestSliceCap(t *testing.T) {
	ro := NewObserver().newRunObs()
	fn := starlark.NewBuiltin("f", nil)
	w := &engine.Worker{ID: 1}
	main := newRootID()
	const n = MaxTraceSlices + 10
	for i := range n {
		ro.task(ro.begin(), w, taskRef{parent: main, n: i}, fn, nil)
	}
	spans, dropped := ro.snapshot()
	kept := 0
	for range spans.all {
		kept++
	}
	if kept != MaxTraceSlices || dropped != 10 {
		t.Errorf("kept %d, dropped %d; want %d and 10", kept, dropped, MaxTraceSlices)
	}
	if st := ro.stats(); len(st) != 1 || st[0].calls != n {
		t.Errorf("stats: %+v, want one function with %d calls", st, n)
	}
}
