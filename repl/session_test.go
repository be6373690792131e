package repl

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
)

// Ctrl-C while an entry runs: repltest.interrupt() plays the SIGINT at a
// known point, so no test waits on time.
func TestInterruptCancelsEntry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  []string // in order in the transcript
	}{
		{"busy loop", lines(`load("repltest", "interrupt")
def spin():
    interrupt()
    while True:
        pass

spin()
"after"
`), []string{">>> spin()\n", "Traceback", "in spin", "cancelled", "interrupted", ">>> \"after\"\n\"after\"\n"}},
		{"top-level busy loop", lines(`load("repltest", "interrupt")
if True:
    interrupt()
    while True: pass

"after"
`), []string{"while True: pass", "<stdin#2>:", "cancelled", "interrupted", "\"after\"\n"}},
		{"sleep", lines(`load("repltest", "interrupt")
def nap():
    interrupt()
    sleep(3600)

nap()
"after"
`), []string{">>> nap()\n", "Traceback", "in nap", "interrupted", ">>> \"after\"\n\"after\"\n"}},
		{"semisync batch", lines(`load("repltest", "interrupt")
@semisync
def slow():
    interrupt()
    sleep(3600)

@semisync(dependencies=[slow])
def never():
    print("never runs")

slow()
never()
semisync.begin()
:tasks
"after"
`), []string{">>> semisync.begin()\n", "Traceback", "interrupted", "semisync", "begin at", "\"after\"\n"}},
		{"sequential mode", lines(`load("repltest", "interrupt")
@future
def spin():
    interrupt()
    while True:
        pass

spin()
"after"
`), []string{"spin()", ": failed>", "\"after\"\n", "interrupted"}}, // the future runs as the entry ends, while Ctrl-C still applies
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts starlarkmod.Options
			opts.Sequential = tc.name == "sequential mode"
			s := newSession(t, tc.lines, opts)
			out := s.run(t)
			requireContainsInOrder(t, out, tc.want...)
			assert.NotContains(t, out, "\nnever runs\n")
			if !opts.Sequential { // there the future ran inline and failed unobserved
				assert.NotContains(t, out, "[Run:")
			}
		})
	}
}

// A Ctrl-C that arrives while no entry runs (at the prompt of a reader that
// does not catch it, or just after an entry ended) must not cancel the next
// entry.
func TestStaleInterruptIsIgnored(t *testing.T) {
	s := newSession(t, []string{
		`load("repltest", "interrupt")`,
		`interrupt()`, // arrives as the entry ends: stale for the next one
		`def nap():`,
		`    sleep(0.05)`,
		`    return "slept"`,
		``,
		"!interrupt", // arrives at the prompt
		`nap()`,
	}, starlarkmod.Options{})
	out := s.run(t)
	// interrupt() may or may not cancel its own entry (the SIGINT arrives
	// while it ends); the entries after it must not be cancelled.
	i := strings.Index(out, ">>> def nap():")
	require.GreaterOrEqual(t, i, 0, out)
	assert.Contains(t, out[i:], ">>> nap()\n\"slept\"\n")
	assert.NotContains(t, out[i:], "interrupted")
}

// Ctrl-C cancels the work an entry started, but not the background work
// earlier entries started, which keeps running while the user types.
func TestInterruptSparesEarlierWork(t *testing.T) {
	s := newSession(t, lines(`load("repltest", "interrupt", "wait_gate", "open_gate")
@future
def gated():
    return wait_gate()

early = gated()
started = []
def cancelled_with_me():
    f = gated()
    started.append(f)
    interrupt()
    return f.result()

cancelled_with_me()
early.done()
open_gate()
early.result()
started[0].wait()
`), starlarkmod.Options{})
	out := s.run(t)
	requireContainsInOrder(t, out,
		">>> cancelled_with_me()\n", "interrupted",
		">>> early.done()\nFalse\n",
		">>> early.result()\n\"gate opened\"\n",
		">>> started[0].wait()\n", "Traceback", "interrupted")
	assert.NotContains(t, out, "[Run:")
}

// Leaving waits for background work and reports the failures nobody saw;
// Ctrl-C while waiting cancels the work.
func TestExitWaitsForBackgroundWork(t *testing.T) {
	t.Run("reports failures", func(t *testing.T) {
		s := newSession(t, lines(`@future
def fails():
    return 1 // 0

f = fails()
`), starlarkmod.Options{})
		err := s.Run(context.Background())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "fails() called at <stdin#2>:1:10 failed")
		assert.Contains(t, err.Error(), "division by zero")
	})
	t.Run("Ctrl-C cancels the wait", func(t *testing.T) {
		s := newSession(t, lines(`load("repltest", "wait_gate")
@future
def gated():
    return wait_gate()

f = gated()
`), starlarkmod.Options{})
		// The interrupt arrives once the input has ended, while the session
		// waits for gated().
		s.Session.r = &exitInterrupter{scriptReader: s.reader}
		err := s.Run(context.Background())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "gated() called at")
		assert.Contains(t, s.transcript.String(), "waiting for 1 running task(s)")
	})
}

// exitInterrupter sends a SIGINT when the input ends, so that it reaches
// the session while it waits for background work.
type exitInterrupter struct{ *scriptReader }

func (r *exitInterrupter) Prompt(p string) (string, error) {
	line, err := r.scriptReader.Prompt(p)
	if errors.Is(err, io.EOF) {
		r.interrupts <- os.Interrupt // the buffer is empty: no entry left one
	}
	return line, err
}

func TestPanicAtTheEvalBoundary(t *testing.T) {
	s := newSession(t, []string{`boom()`, `"after"`}, starlarkmod.Options{})
	// A global that panics when called, as a broken builtin would.
	s.globals = starlark.StringDict{"boom": starlark.NewBuiltin("boom", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		panic("broken builtin")
	})}
	out := s.run(t)
	// starlarkmod turns the panic into an error with the Go stack (the
	// REPL's own recovery is the last resort behind it).
	requireContainsInOrder(t, out, "a Go builtin panicked (a bug: please report it): broken builtin", "Go stack:", ">>> \"after\"\n\"after\"\n")
}

func TestRunTwicePanics(t *testing.T) {
	s := newSession(t, nil, starlarkmod.Options{})
	s.run(t)
	assert.Panics(t, func() { s.Run(context.Background()) }) //nolint:errcheck
}

func TestArgv(t *testing.T) {
	s := newSession(t, []string{"argv"}, starlarkmod.Options{Args: []string{"", "a"}})
	assert.True(t, strings.HasSuffix(s.run(t), "[\"\", \"a\"]\n>>> \n"))
}

// With a step limit, each entry has the whole budget, and one that runs
// out does not spoil the next.
func TestMaxStepsPerEntry(t *testing.T) {
	in := []string{}
	for range 5 {
		in = append(in, "len([i for i in range(50)])")
	}
	in = append(in, "while True: pass", "", "len([i for i in range(50)])")
	s := newSession(t, in, starlarkmod.Options{MaxSteps: 1000})
	out := s.run(t)
	assert.Equal(t, 6, strings.Count(out, "\n50\n"), out)
	requireContainsInOrder(t, out, "while True: pass", "too many steps", "len([i for i in range(50)])\n50\n")
}
