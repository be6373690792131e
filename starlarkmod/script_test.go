package starlarkmod_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarktest"

	"github.com/semisync/semisync/starlarkmod"
)

var update = flag.Bool("update", false, "rewrite the .golden files of script tests")

// noCompile runs the script tests (and the other tests that opt in) with
// every function on the VM: go test ./starlarkmod -no-compile checks the
// same golden files without the compiler (internal/compile).
var noCompile = flag.Bool("no-compile", false, "run script tests with Options.NoCompile")

// TestScripts runs every .star file in starlarkmod/testdata (package tests),
// starlarkmod/testdata/race (the adversarial corpus: each script is a way
// to make two threads touch one value, or to lose work, or to hang, and
// must end in a clear error or a correct answer; go test -race checks that
// none is a data race), testdata (acceptance tests) and scripts (the
// examples), testdata/python (Python habits: hints, sum, modules, frozen
// values explained), each as a subtest,
// twice: in parallel and in sequential mode. A script's printed output, then
// its stderr and its final error (if any), must match NAME.golden next to
// it; in sequential mode, NAME.sequential.golden if the output differs (only
// the order of lines may: results are the same). go test -run TestScripts
// -update rewrites the golden files. Scripts can load("assert.star",
// "assert"); a script containing "# parallel-only" skips sequential mode.
func TestScripts(t *testing.T) {
	for _, dir := range []string{"testdata", "testdata/race", "testdata/python", "../testdata", "../scripts"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.star"))
		require.NoError(t, err)
		for _, file := range files {
			t.Run(file, func(t *testing.T) {
				t.Parallel()
				golden := strings.TrimSuffix(file, ".star") + ".golden"
				seqGolden := strings.TrimSuffix(file, ".star") + ".sequential.golden"
				got := runScript(t, file, false)
				checkGolden(t, golden, got)
				src, err := os.ReadFile(file)
				require.NoError(t, err)
				if bytes.Contains(src, []byte("# parallel-only")) {
					return
				}
				seq := runScript(t, file, true)
				if *update {
					if seq != got {
						checkGolden(t, seqGolden, seq)
					} else {
						os.Remove(seqGolden)
					}
					return
				}
				if _, err := os.Stat(seqGolden); err == nil {
					checkGolden(t, seqGolden, seq)
				} else {
					checkGolden(t, golden, seq)
				}
			})
		}
	}
}

func checkGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v\n(run go test ./starlarkmod -run TestScripts -update to create it)\ngot:\n%s", err, got)
	}
	assert.Equal(t, string(want), got, "output differs from %s", golden)
}

// runScript runs file and returns its output, stderr and error as one text.
func runScript(t *testing.T, file string, sequential bool) string {
	assertModule, err := starlarktest.LoadAssertModule()
	require.NoError(t, err)
	var stdout, stderr bytes.Buffer
	in := starlarkmod.New(starlarkmod.Options{
		Stdout:     &stdout,
		Stderr:     &stderr,
		Sequential: sequential,
		Seed:       1,
		Seeded:     true,
		Args:       []string{file},
		Modules:    map[string]starlark.StringDict{"assert.star": assertModule},
		ThreadInit: func(th *starlark.Thread) { starlarktest.SetReporter(th, t) },
		NoCompile:  *noCompile,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = in.ExecFile(ctx, file)
	if cerr := in.Close(); err == nil {
		err = cerr
	}
	got := stdout.String()
	if stderr.Len() > 0 {
		got += "--- stderr ---\n" + stderr.String()
	}
	if err != nil {
		got += "--- error ---\n" + starlarkmod.FormatError(err) + "\n"
	}
	return got
}
