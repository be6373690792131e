package starlarkmod_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

// TestDurationErrors: sleep and every timeout refuse nan, infinities,
// negative numbers and durations too large for a time.Duration, instead of
// returning at once.
func TestDurationErrors(t *testing.T) {
	nan, inf := `float("nan")`, `float("inf")`
	tests := []struct {
		call string
		want string // the error, after "Error in ...: "
	}{
		{"sleep(" + nan + ")", `sleep: invalid duration nan (want a finite number of seconds)`},
		{"sleep(" + inf + ")", `sleep: duration +inf is too long (at most 9223372036 seconds)`},
		{"sleep(-" + inf + ")", `sleep: negative duration -inf (want a number of seconds >= 0)`},
		{"sleep(1e10)", `sleep: duration 1e+10 is too long (at most 9223372036 seconds)`},
		{"sleep(-1)", `sleep: negative duration -1 (want a number of seconds >= 0)`},
		{`sleep("1")`, `sleep: got string, want a number of seconds`},
		{"Lock().acquire(timeout=" + nan + ")", `Lock.acquire: for parameter "timeout": invalid timeout nan (want a number of seconds, or None to wait forever)`},
		{"Lock().acquire(timeout=" + inf + ")", `Lock.acquire: for parameter "timeout": timeout +inf is too long (at most 9223372036 seconds; use None to wait forever)`},
		{"Lock().acquire(timeout=-" + inf + ")", `Lock.acquire: for parameter "timeout": negative timeout -inf (want a number of seconds >= 0, or None to wait forever)`},
		{"Lock().acquire(timeout=1e10)", `Lock.acquire: for parameter "timeout": timeout 1e+10 is too long`},
		{"Lock().acquire(timeout=-1)", `Lock.acquire: for parameter "timeout": negative timeout -1`},
		{"job(str, [1], timeout=" + nan + ")", `job: for parameter "timeout": invalid timeout nan`},
		{"future(str)(1).result(timeout=" + inf + ")", `result: for parameter "timeout": timeout +inf is too long`},
		{"future(str)(1).wait(timeout=" + nan + ")", `wait: for parameter "timeout": invalid timeout nan`},
		{"wait([], timeout=-1)", `wait: for parameter "timeout": negative timeout -1`},
		{"dispatcher.wait(timeout=1e10)", `wait: for parameter "timeout": timeout 1e+10 is too long`},
	}
	for _, tc := range tests {
		t.Run(tc.call, func(t *testing.T) {
			start := time.Now()
			_, err := exec(t, tc.call+"\n", starlarkmod.Options{})
			require.Error(t, err)
			assert.Contains(t, backtrace(err), tc.want)
			assert.Less(t, time.Since(start), 10*time.Second)
		})
	}
	t.Run("the largest duration is accepted", func(t *testing.T) {
		out, err := exec(t, "print(Lock().acquire(timeout=9223372036))\n", starlarkmod.Options{})
		require.NoError(t, err)
		assert.Equal(t, "True\n", out)
	})
}

// TestLockWaitCancelled: a task waiting for a Lock that main holds ends
// promptly when the run's context is cancelled, in both modes, and leaves
// no goroutine behind (goleak, in TestMain).
func TestLockWaitCancelled(t *testing.T) {
	const src = `
lock = Lock()
lock.acquire()

@future
def waiter():
    print("waiting")
    lock.acquire()
    return "got it"

waiter().result()
`
	for _, sequential := range []bool{false, true} {
		t.Run(map[bool]string{false: "parallel", true: "sequential"}[sequential], func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lock.star")
			require.NoError(t, writeFile(path, src))
			out := &signalWriter{line: "waiting\n", seen: make(chan struct{})}
			in := starlarkmod.New(starlarkmod.Options{Stdout: out, Stderr: out, Sequential: sequential})
			defer in.Close()
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			done := make(chan error, 1)
			go func() {
				_, err := in.ExecFile(ctx, path)
				done <- err
			}()
			select {
			case <-out.seen:
			case <-time.After(30 * time.Second):
				t.Fatal("the waiter never started")
			}
			cancel(errors.New("stop the wait"))
			start := time.Now()
			select {
			case err := <-done:
				require.Error(t, err)
				assert.Contains(t, backtrace(err), "stop the wait")
				assert.Less(t, time.Since(start), 5*time.Second)
			case <-time.After(30 * time.Second):
				t.Fatal("Lock.acquire ignored the cancelled context")
			}
		})
	}
}

func writeFile(path, src string) error { return os.WriteFile(path, []byte(src), 0o644) }
