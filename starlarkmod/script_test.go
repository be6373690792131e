package starlarkmod_test

import (
	"bytes"
	"context"
	"errors"
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

// TestScripts runs every .star file in starlarkmod/testdata (package tests),
// testdata (acceptance tests) and scripts (the examples), each as a subtest.
// A script's printed output, then its stderr and its final error (if any),
// must match NAME.golden next to it; go test -run TestScripts -update
// rewrites the golden files. Scripts can load("assert.star", "assert").
func TestScripts(t *testing.T) {
	for _, dir := range []string{"testdata", "../testdata", "../scripts"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.star"))
		require.NoError(t, err)
		for _, file := range files {
			t.Run(file, func(t *testing.T) {
				t.Parallel()
				runScript(t, file, false)
			})
		}
	}
}

// TestScriptsSequential runs the same scripts in sequential mode: every
// result, and so every golden file, must be the same.
func TestScriptsSequential(t *testing.T) {
	if *update {
		t.Skip("golden files are written by TestScripts")
	}
	for _, dir := range []string{"testdata", "../testdata", "../scripts"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.star"))
		require.NoError(t, err)
		for _, file := range files {
			t.Run(file, func(t *testing.T) {
				t.Parallel()
				runScript(t, file, true)
			})
		}
	}
}

func runScript(t *testing.T, file string, sequential bool) {
	src, err := os.ReadFile(file)
	require.NoError(t, err)
	if sequential && bytes.Contains(src, []byte("# parallel-only")) {
		t.Skip("the script measures parallelism")
	}
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
		var ee *starlark.EvalError
		msg := err.Error()
		if errors.As(err, &ee) {
			msg = ee.Backtrace()
		}
		got += "--- error ---\n" + msg + "\n"
	}
	golden := strings.TrimSuffix(file, ".star") + ".golden"
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
		return
	}
	want, rerr := os.ReadFile(golden)
	if rerr != nil {
		t.Fatalf("%v\n(run go test ./starlarkmod -run TestScripts -update to create it)\ngot:\n%s", rerr, got)
	}
	assert.Equal(t, string(want), got, "output of %s differs from %s (sequential=%v)", file, golden, sequential)
}
