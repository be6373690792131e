package starlarkmod_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

// slowFirst is a script whose handler sleeps (until interrupted) on the
// first message, so the second one is still queued when that happens.
const slowFirst = `
def handler(sender):
    if sender == 1:
        print("sleeping")
        sleep(3600)
    print("handled", sender)

dispatcher.subscribe(1, "m", handler)
dispatcher.subscribe(2, "m", handler)
dispatcher.send(1, "m")
dispatcher.send(2, "m")
dispatcher.wait()
`

// TestDispatcherInterruptedRun: once the script is interrupted, queued
// messages are not delivered (nothing new starts) and Close returns.
func TestDispatcherInterruptedRun(t *testing.T) {
	for _, m := range modes {
		if m.sequential {
			continue // the first handler runs inside send: nothing is queued
		}
		ctx, cancel := context.WithCancel(context.Background())
		out := &signalWriter{line: "sleeping\n", seen: make(chan struct{})}
		go func() {
			<-out.seen
			cancel()
		}()
		r := runPipeline(t, ctx, slowFirst, starlarkmod.Options{Stdout: out, Sequential: m.sequential})
		require.Error(t, r.err)
		assert.Contains(t, r.errText(), "context canceled")
		assert.Equal(t, "sleeping\n", out.buf.String(), "the queued message is dropped")
	}
}

// TestDispatcherResumesAfterInterruptedEntry: in a session (the REPL),
// interrupting one entry stops its deliveries; what it left is delivered
// when the interpreter closes.
func TestDispatcherResumesAfterInterruptedEntry(t *testing.T) {
	src := `
load("multiprocessing", "Manager")
state = Manager().Namespace(slept = False)

def handler(sender):
    if sender == 1 and not state.slept:
        state.slept = True
        print("sleeping")
        sleep(3600)
    print("handled", sender)

dispatcher.subscribe(1, "m", handler)
dispatcher.subscribe(2, "m", handler)
dispatcher.send(1, "m")
dispatcher.send(2, "m")
print("sent")
dispatcher.wait()
`
	// Interrupt once both messages are sent and the first handler sleeps.
	out := &signalWriter{line: "sleeping\n", seen: make(chan struct{})}
	sent := &signalWriter{line: "sent\n", seen: make(chan struct{})}
	both := &teeWriter{out, sent}
	var errOut syncBuffer
	in := starlarkmod.New(starlarkmod.Options{Stdout: both, Stderr: &errOut})
	session := context.Background()
	r := in.NewRun(session, "")
	th := r.NewThread("repl")
	entry, cancel := context.WithCancel(session)
	go func() {
		<-out.seen
		<-sent.seen
		cancel()
	}()
	f, err := starlarkmod.Parse(starlarkmod.FileOptions(), "entry.star", []byte(src))
	require.NoError(t, err)
	_, err = r.ExecSyntax(entry, th, f, r.Predeclared())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "context canceled")
	require.NoError(t, r.Wait(session))
	require.NoError(t, in.Close())
	assert.ElementsMatch(t, []string{"sleeping", "sent", "handled 2", ""}, strings.Split(out.buf.String(), "\n"))
	assert.Empty(t, errOut.String(), "an interrupted handler is not a failure to report")
}

// teeWriter writes to both writers.
type teeWriter struct{ a, b io.Writer }

func (t *teeWriter) Write(p []byte) (int, error) {
	t.a.Write(p) //nolint:errcheck // test writers do not fail
	return t.b.Write(p)
}
