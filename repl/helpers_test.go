package repl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/peterh/liner"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes: the transcript
// that the fake reader and every writer of a session share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// scriptReader is a LineReader that replays lines and echoes each prompt
// and line to a transcript, as a terminal would show them. Special lines:
//
//	^C          Ctrl-C at the prompt (liner prints "^C")
//	^D          Ctrl-D: end of input (also when the lines run out)
//	!interrupt  not a line: a SIGINT arrives while the prompt shows (a
//	            stale interrupt); the next line is read at the same prompt
type scriptReader struct {
	lines      []string
	out        io.Writer
	interrupts chan os.Signal
	history    []string
}

func (r *scriptReader) Prompt(p string) (string, error) {
	io.WriteString(r.out, p)
	for len(r.lines) > 0 {
		line := r.lines[0]
		r.lines = r.lines[1:]
		switch line {
		case "^C":
			io.WriteString(r.out, "^C\n")
			return "", liner.ErrPromptAborted
		case "^D":
			return "", io.EOF
		case "!interrupt":
			select { // as signal.Notify does, drop it if one is pending
			case r.interrupts <- os.Interrupt:
			default:
			}
			continue
		}
		io.WriteString(r.out, line+"\n")
		return line, nil
	}
	return "", io.EOF
}

func (r *scriptReader) AppendHistory(item string) { r.history = append(r.history, item) }

// testModule is loadable as "repltest" in test sessions:
//
//	interrupt()    a Ctrl-C arrives now (while the entry runs)
//	wait_gate()    blocks until open_gate() is called, or the caller's
//	               context ends (then fails with its cause); returns "gate opened"
//	open_gate()    opens the gate
func testModule(interrupts chan<- os.Signal) starlark.StringDict {
	gate := make(chan struct{})
	var once sync.Once
	return starlark.StringDict{
		"interrupt": starlark.NewBuiltin("repltest.interrupt", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			select {
			case interrupts <- os.Interrupt:
			default: // one is pending already
			}
			return starlark.None, nil
		}),
		"wait_gate": starlark.NewBuiltin("repltest.wait_gate", func(th *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			ctx, _ := th.Local("context").(context.Context)
			if ctx == nil {
				ctx = context.Background()
			}
			// A cancelled caller fails even if the gate is open too (a
			// select would pick either at random).
			if ctx.Err() == nil {
				select {
				case <-gate:
					return starlark.String("gate opened"), nil
				case <-ctx.Done():
				}
			}
			return nil, errors.Join(errors.New(b.Name()+": cancelled"), context.Cause(ctx))
		}),
		"open_gate": starlark.NewBuiltin("repltest.open_gate", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			once.Do(func() { close(gate) })
			return starlark.None, nil
		}),
	}
}

// session is a test session over lines, with its transcript.
type session struct {
	*Session
	reader     *scriptReader
	transcript *syncBuffer
}

// newSession returns a session reading lines; opts adjusts the
// interpreter's options (seeded with 1 unless set).
func newSession(t *testing.T, lines []string, opts starlarkmod.Options) *session {
	t.Helper()
	out := &syncBuffer{}
	interrupts := make(chan os.Signal, 1)
	r := &scriptReader{lines: lines, out: out, interrupts: interrupts}
	if !opts.Seeded {
		opts.Seed, opts.Seeded = 1, true
	}
	if opts.Modules == nil {
		opts.Modules = map[string]starlark.StringDict{}
	}
	opts.Modules["repltest"] = testModule(interrupts)
	s := New(r, Options{Stdout: out, Stderr: out, Interp: opts, Interrupts: interrupts})
	return &session{Session: s, reader: r, transcript: out}
}

// run runs the session to its end and returns the transcript, with the
// error Run returned (if any) appended as "[Run: ...]".
func (s *session) run(t *testing.T) string {
	t.Helper()
	err := s.Run(context.Background())
	out := s.transcript.String()
	if err != nil {
		out += "[Run: " + err.Error() + "]\n"
	}
	return out
}

// lines splits text into lines, without a final empty one.
func lines(text string) []string {
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}

func requireContainsInOrder(t *testing.T, s string, parts ...string) {
	t.Helper()
	rest := s
	for _, p := range parts {
		i := strings.Index(rest, p)
		require.GreaterOrEqual(t, i, 0, "want %q (in order) in:\n%s", p, s)
		rest = rest[i+len(p):]
	}
}
