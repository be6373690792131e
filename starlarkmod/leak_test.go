package starlarkmod_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"weak"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

// TestInterpreterCollected checks that a closed interpreter, its runs and
// its Observer become garbage, compiled or not: a process that runs many
// scripts (a benchmark, an embedder) must not keep every run's graphs.
func TestInterpreterCollected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.star")
	require.NoError(t, os.WriteFile(path, []byte("@semisync\ndef f(i):\n    return i\n\nfor i in range(100):\n    f(i)\nsemisync.begin()\n"), 0o644))
	for _, noCompile := range []bool{false, true} {
		var wo weak.Pointer[starlarkmod.Observer]
		var wi weak.Pointer[starlarkmod.Interpreter]
		func() {
			obs := starlarkmod.NewObserver()
			in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Observer: obs, NoCompile: noCompile})
			_, err := in.ExecFile(context.Background(), path)
			require.NoError(t, err)
			require.NoError(t, in.Close())
			wo, wi = weak.Make(obs), weak.Make(in)
		}()
		for i := 0; i < 10 && (wo.Value() != nil || wi.Value() != nil); i++ {
			runtime.GC()
		}
		assert.Nil(t, wi.Value(), "interpreter still reachable (NoCompile %v)", noCompile)
		assert.Nil(t, wo.Value(), "observer still reachable (NoCompile %v)", noCompile)
	}
}
