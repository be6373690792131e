package starlarkmod_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

// openPTY opens a pseudo-terminal with github.com/creack/pty and returns
// its controller and the terminal end.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	t.Helper()
	ctl, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	return ctl, tty
}

// screen replays what a terminal shows for out: carriage returns, line
// feeds and the erase-line sequences (other escape sequences are
// ignored). It returns the lines left on the screen.
func screen(out string) []string {
	lines := []string{""}
	col := 0
	put := func(r rune) {
		l := []rune(lines[len(lines)-1])
		for len(l) < col {
			l = append(l, ' ')
		}
		if col < len(l) {
			l[col] = r
		} else {
			l = append(l, r)
		}
		lines[len(lines)-1] = string(l)
		col++
	}
	rs := []rune(out)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; r {
		case '\r':
			col = 0
		case '\n':
			lines = append(lines, "")
			col = 0
		case 0x1b:
			if i+1 < len(rs) && rs[i+1] == '[' {
				j := i + 2
				for j < len(rs) && (rs[j] < 0x40 || rs[j] > 0x7e) {
					j++
				}
				if j < len(rs) && rs[j] == 'K' {
					l := []rune(lines[len(lines)-1])
					switch string(rs[i+2 : j]) {
					case "", "0":
						if col < len(l) {
							lines[len(lines)-1] = string(l[:col])
						}
					case "2":
						lines[len(lines)-1] = ""
					}
				}
				i = j
			}
		default:
			put(r)
		}
	}
	return lines
}

// onTerminal runs the script src with stdout and stderr on one
// pseudo-terminal and returns everything written to it.
func onTerminal(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "progress.star")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	ctl, tty := openPTY(t)
	defer ctl.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(&out, ctl) //nolint:errcheck // ends with EIO once tty closes
	}()
	in := starlarkmod.New(starlarkmod.Options{Stdout: tty, Stderr: tty})
	_, err := in.ExecFile(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, in.Close())
	tty.Close()
	<-copied
	return out.String()
}

// TestProgressPrintsAboveBar runs, on a pseudo-terminal, a job whose
// items print while its bar is shown: every printed line lands on a line
// of its own above the bar, never glued to it, and when the job ends the
// bar is gone from the screen.
func TestProgressPrintsAboveBar(t *testing.T) {
	out := onTerminal(t, `
load("time", "sleep")

def f(x):
    sleep(0.15)
    print("item", x)
    return x

job(f, range(10), processes = 2).run()   # about 0.75 s: the bar shows after 0.5 s
print("after")
`)
	assert.Contains(t, out, "job f", "the bar was drawn")
	lines := screen(out)
	var printed []string
	for _, l := range lines {
		assert.NotContains(t, l, "job f", "the bar is gone at the end: %q", lines)
		if strings.Contains(l, "item") || strings.Contains(l, "after") {
			printed = append(printed, l)
		}
	}
	want := []string{"after"}
	for i := range 10 {
		want = append(want, fmt.Sprintf("item %d", i))
	}
	assert.ElementsMatch(t, want, printed, "each printed line on its own, nothing glued to it")
	assert.Equal(t, "after", printed[len(printed)-1])
}

const progressScript = `
def f(x):
    return x

job(f, range(50)).run()                      # total known: 50/50
job(f, iter_items(), progress = True).run()  # total unknown
job(f, range(7), progress = False).run()     # no bar
job(f, range(9)).run_single_processed()      # a bar too
`

const slowProgressScript = `
load("time", "sleep")

def quick(x):
    return x

def slow(x):
    sleep(0.25)
    return x

def hidden(x):
    sleep(0.25)
    return x

@generator
def stream(emit):
    for i in range(12):
        emit(i)

job(quick, range(50)).run()
job(slow, range(6), processes = 2).run()
job(slow, stream()).run()
job(hidden, range(6), processes = 2, progress = False).run()
job(slow, range(3)).run_single_processed()
`

// TestJobProgress checks the progress bar: drawn on stderr when it is a
// terminal (with the count and the rate) once a job has run 0.5 s, never
// when progress=False, and never when stderr is not a terminal.
func TestJobProgress(t *testing.T) {
	script := filepath.Join(t.TempDir(), "progress.star")
	src := "@generator\ndef iter_items(emit):\n    for i in range(30):\n        emit(i)\n" + progressScript
	require.NoError(t, os.WriteFile(script, []byte(src), 0o644))
	run := func(stderr io.Writer) {
		in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: stderr})
		_, err := in.ExecFile(context.Background(), script)
		require.NoError(t, err)
		require.NoError(t, in.Close())
	}

	t.Run("terminal", func(t *testing.T) {
		out := onTerminal(t, slowProgressScript)
		assert.Contains(t, out, "job slow")
		assert.Contains(t, out, "/6, ", "a count with its total")
		assert.Contains(t, out, "items/s")
		assert.Regexp(t, `\([0-9]+/-, `, out, "a stream has no known total")
		assert.NotContains(t, out, "job quick", "a job that ends within 0.5 s draws no bar")
		assert.NotContains(t, out, "job hidden", "progress=False draws no bar")
		assert.NotContains(t, out, "0 items/hr", "no nonsense first rate")
		for _, l := range screen(out) {
			assert.NotContains(t, l, "job ", "no bar left on the screen")
		}
	})

	t.Run("not a terminal", func(t *testing.T) {
		var buf bytes.Buffer
		run(&buf)
		assert.Empty(t, buf.String())
		f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
		require.NoError(t, err)
		defer f.Close()
		run(f)
		b, err := os.ReadFile(f.Name())
		require.NoError(t, err)
		assert.Empty(t, string(b))
	})
}
