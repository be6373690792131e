package compile_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod/internal/compile"
)

// BenchmarkCompiled runs scripts/bench/compile/bench.star's functions
// compiled and on the VM (bench.py there prints CPython's times). On a
// loaded machine compare cpu-ms/op (process CPU time, GC included) rather
// than ns/op:
//
//	go test -run XXX -bench . ./starlarkmod/internal/compile
func BenchmarkCompiled(b *testing.B) {
	const file = "../../../scripts/bench/compile/bench.star"
	src, err := os.ReadFile(file)
	require.NoError(b, err)
	f, err := dialect.Parse(file, src, 0)
	require.NoError(b, err)
	prog, err := starlark.FileProgram(f, starlark.StringDict{}.Has)
	require.NoError(b, err)
	comp := compile.New()
	comp.AddFile(prog, f)
	g, err := prog.Init(&starlark.Thread{}, nil)
	require.NoError(b, err)
	for _, bc := range []struct {
		name, fn string
		arg      int
	}{
		{"IsPrime", "count_primes", 200000},
		{"Fib", "fib", 25},
		{"StringBuild", "build_string", 200000},
		{"ListDictChurn", "churn", 200000},
		{"Comprehensions", "comprehensions", 200000},
	} {
		for _, mode := range []string{"VM", "Compiled"} {
			b.Run(bc.name+"/"+mode, func(b *testing.B) {
				th := &starlark.Thread{}
				args := starlark.Tuple{starlark.MakeInt(bc.arg)}
				cpu := cpuTime()
				defer func() {
					b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
				}()
				for b.Loop() {
					var fn starlark.Value = g[bc.fn]
					if mode == "Compiled" {
						fn = comp.Callable(fn)
					}
					if _, err := starlark.Call(th, fn, args, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
