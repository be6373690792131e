package starlarkmod_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarktest"

	"github.com/semisync/semisync/starlarkmod"
)

// TestRemoteScripts runs the examples and the acceptance scripts with an
// in-process Remote (every job item, @semisync call and @future call goes
// through the seam, the encoding and a second Interpreter) and checks
// their output against the same golden files as TestScripts, with the
// worker's prefix taken off printed lines. A script that reaches
// something not portable (a Manager container, the dispatcher) is refused
// before anything is sent: it is listed in refused, and checked to fail
// with that refusal.
func TestRemoteScripts(t *testing.T) {
	// What each script that cannot run on a cluster reaches.
	notPortable := map[string]string{
		"testdata/shared.star":             "Namespace cannot leave this process",
		"testdata/semisync.star":           "Manager.list cannot leave this process",
		"testdata/race.star":               "Manager.dict cannot leave this process",
		"testdata/job_race.star":           "Manager.list cannot leave this process",
		"testdata/pipeline_coroutine.star": "coroutine cannot leave this process",
		"../scripts/profit.star":           "Namespace cannot leave this process",
		"../testdata/profit_rounds.star":   "Namespace cannot leave this process",
		"../testdata/profit_fails.star":    "Namespace cannot leave this process",
		"testdata/futures.star":            "its result cannot be sent back: future cannot leave this process", // a task returns a future
	}
	for _, dir := range []string{"../testdata", "../scripts", "testdata"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.star"))
		require.NoError(t, err)
		for _, file := range files {
			t.Run(file, func(t *testing.T) {
				t.Parallel()
				got := runScriptRemote(t, file)
				if why, ok := notPortable[file]; ok {
					assert.Contains(t, got, why)
					return
				}
				want, err := os.ReadFile(strings.TrimSuffix(file, ".star") + ".golden")
				require.NoError(t, err)
				assert.Equal(t, string(want), got)
			})
		}
	}
}

var workerMark = regexp.MustCompile(`\n *\(on worker w1\)`)

func runScriptRemote(t *testing.T, file string) string {
	assertModule, err := starlarktest.LoadAssertModule()
	require.NoError(t, err)
	var stdout, stderr lines
	mods := map[string]starlark.StringDict{"assert.star": assertModule}
	worker := starlarkmod.New(starlarkmod.Options{Stdout: &stdout, Stderr: &stderr, Seed: 1, Seeded: true, Modules: mods,
		ThreadInit: func(th *starlark.Thread) { starlarktest.SetReporter(th, t) }})
	defer worker.Close()
	in := starlarkmod.New(starlarkmod.Options{
		Stdout: &stdout, Stderr: &stderr, Seed: 1, Seeded: true, Args: []string{file}, Modules: mods,
		ThreadInit: func(th *starlark.Thread) { starlarktest.SetReporter(th, t) },
		Remote:     &inProcess{worker: worker, name: "w1", out: stdout.line, batch: true},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = in.ExecFile(ctx, file)
	in.Close()
	got := strings.ReplaceAll(stdout.String(), "[w1] ", "")
	if s := stderr.String(); s != "" {
		got += "--- stderr ---\n" + s
	}
	if err != nil {
		got += "--- error ---\n" + starlarkmod.FormatError(err) + "\n"
	}
	return workerMark.ReplaceAllString(got, "")
}
