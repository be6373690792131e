package starlarkmod_test

import (
	"fmt"
	"io"
	"testing"

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
	b.Run("off", func(b *testing.B) {
		runBench(b, fmt.Sprintf(src, b.N), starlarkmod.Options{})
	})
	b.Run("observed", func(b *testing.B) {
		runBench(b, fmt.Sprintf(src, b.N), starlarkmod.Options{Observer: starlarkmod.NewObserver()})
	})
	b.Run("trace", func(b *testing.B) {
		obs := starlarkmod.NewObserver()
		runBench(b, fmt.Sprintf(src, b.N), starlarkmod.Options{Observer: obs})
		if err := obs.WriteTrace(io.Discard); err != nil {
			b.Fatal(err)
		}
	})
}
