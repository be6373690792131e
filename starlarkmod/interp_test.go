package starlarkmod_test

import (
	"bytes"
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

// exec runs src as a script file in a fresh interpreter and returns its
// output and error.
func exec(t *testing.T, src string, opts starlarkmod.Options) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.star")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	var out bytes.Buffer
	opts.Stdout, opts.Stderr = &out, &out
	in := starlarkmod.New(opts)
	_, err := in.ExecFile(context.Background(), path)
	if cerr := in.Close(); err == nil {
		err = cerr
	}
	return out.String(), err
}

func backtrace(err error) string {
	if err == nil {
		return ""
	}
	return starlarkmod.FormatError(err)
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the backtrace, in order
	}{
		{
			name: "failing call shows both stacks",
			src: `
@semisync
def bad():
    return 1 // 0

bad()
semisync.begin()
`,
			want: []string{"test.star:7:15: in <toplevel>", "Error in semisync.begin: semisync.begin: 1 of 1 calls failed",
				"bad() queued at", "test.star:6:4", "test.star:4:14: in bad", "division by zero"},
		},
		{
			name: "decorator error at the decorator's position",
			src: `
@nosuch
def f():
    pass
`,
			want: []string{"test.star:2:2: undefined: nosuch"},
		},
		{
			name: "parse error keeps its column after a decorator",
			src: `
@semisync
def f():
    return 1 +
`,
			want: []string{"test.star:4:15: got newline, want primary expression"},
		},
		{
			name: "unknown module",
			src:  `load("nosuchmodule", "x")`,
			want: []string{`cannot load nosuchmodule: no module "nosuchmodule"`, "multiprocessing", "semisync"},
		},
		{
			name: "missing dependency is an error before anything runs",
			src: `
@semisync
def a():
    print("a ran")

@semisync(dependencies=[a])
def b():
    pass

b()
semisync.begin()
`,
			want: []string{"b() queued at", "depends on a, which has no queued or completed call"},
		},
		{
			name: "max steps",
			src: `
def spin():
    while True:
        pass
spin()
`,
			want: []string{"too many steps"},
		},
		{
			name: "max steps in a compiled task",
			src: `
def spin(x):
    n = 0
    while True:
        n += x
job(spin, [1]).run()
`,
			want: []string{"job.run", "in spin", "too many steps"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec(t, tt.src, starlarkmod.Options{MaxSteps: 100000})
			require.Error(t, err)
			assert.NotContains(t, out, "a ran")
			text := backtrace(err)
			rest := text
			for _, w := range tt.want {
				i := bytes.Index([]byte(rest), []byte(w))
				if !assert.GreaterOrEqual(t, i, 0, "missing %q in:\n%s", w, text) {
					return
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestCancel checks that cancelling the context stops busy loops and
// sleeps in tasks and on the main thread, promptly.
func TestCancel(t *testing.T) {
	srcs := map[string]string{
		"busy task": `
@semisync
def spin():
    while True:
        pass
spin()
semisync.begin()
`,
		"sleeping task": `
load("time", "sleep")
@semisync
def nap():
    sleep(3600)
nap()
semisync.begin()
`,
		"main loop": `
while True:
    pass
`,
		"future": `
load("time", "sleep")
@future
def nap():
    sleep(3600)
nap().result()
`,
	}
	for name, src := range srcs {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "test.star")
			require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
			in := starlarkmod.New(starlarkmod.Options{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
			ctx, cancel := context.WithCancelCause(context.Background())
			done := make(chan error)
			go func() {
				_, err := in.ExecFile(ctx, path)
				done <- err
			}()
			cancel(errors.New("stop now"))
			select {
			case err := <-done:
				require.Error(t, err)
				assert.Contains(t, backtrace(err), "stop now")
			case <-time.After(30 * time.Second): // generous: only a hang fails
				t.Fatal("script did not stop after cancellation")
			}
			in.Close()
		})
	}
}

func TestSequentialSameResults(t *testing.T) {
	src := `
load("random", "randint")
load("multiprocessing", "Manager")
out = Manager().list()

@semisync
def a(i):
    return randint(0, 1000) + i

@semisync(dependencies=[a])
def b():
    return "b"

hs = [a(i) for i in range(10)]
hb = b()
semisync.begin()
print([h.result() for h in hs], hb.result())
print(wait([future(lambda x: x * x)(i) for i in range(5)]))
`
	par, err := exec(t, src, starlarkmod.Options{Seed: 7, Seeded: true})
	require.NoError(t, err)
	seq, err := exec(t, src, starlarkmod.Options{Seed: 7, Seeded: true, Sequential: true})
	require.NoError(t, err)
	assert.Equal(t, par, seq)
}

func TestUnobservedBackgroundFailureIsReported(t *testing.T) {
	_, err := exec(t, `
@future
def boom():
    return 1 // 0
boom()
`, starlarkmod.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "boom() called at")
	assert.Contains(t, err.Error(), "division by zero")
}

// TestIteratorFailureInFuture: a generator that fails inside a future
// reports its error by cancelling the future's thread. The future fails; the
// script that started it goes on, also in sequential mode, where the future
// runs on the script's own thread.
func TestIteratorFailureInFuture(t *testing.T) {
	src := `
@generator
def bad(emit):
    emit(1)
    return 1 // 0

@future
def item():
    return [y for y in bad()]

f = item()
print("failed:", "division by zero" in f.exception())
print("after")
`
	for _, sequential := range []bool{false, true} {
		out, err := exec(t, src, starlarkmod.Options{Sequential: sequential})
		require.NoError(t, err, "sequential=%v", sequential)
		assert.Equal(t, "failed: True\nafter\n", out, "sequential=%v", sequential)
	}
}
