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
