package starlarkmod_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

// inProcess is a Remote that runs each item on a second Interpreter (the
// "worker"), on goroutines, as the cluster's workers do: it is the seam's
// end-to-end test without NATS.
type inProcess struct {
	worker *starlarkmod.Interpreter
	name   string
	out    func(line string)
	files  sync.Map // hash -> text

	batches, items atomic.Int64
	maxItems       atomic.Int64 // largest batch
}

func (p *inProcess) Run(ctx context.Context, b *starlarkmod.RemoteBatch, done func(int, []byte, error)) error {
	p.batches.Add(1)
	p.items.Add(int64(len(b.Items)))
	for {
		m := p.maxItems.Load()
		if int64(len(b.Items)) <= m || p.maxItems.CompareAndSwap(m, int64(len(b.Items))) {
			break
		}
	}
	for h, text := range b.Files {
		p.files.Store(h, text)
	}
	files := func(h string) ([]byte, error) {
		if t, ok := p.files.Load(h); ok {
			return t.([]byte), nil
		}
		return nil, errors.New("no such file")
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	defer wg.Wait()
	for i, it := range b.Items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ictx, cancel := starlarkmod.RemoteItemContext(ctx, b)
			defer cancel()
			res, err := p.worker.ExecRemote(ictx, b.Fn, b.FnSum, files, it.Args, func(line string) { p.out("[" + p.name + "] " + line) })
			var re *starlarkmod.RemoteError
			if errors.As(err, &re) {
				re.Worker = p.name
			}
			done(i, res, err)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// lines collects output lines.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *lines) line(s string) { l.Write([]byte(s + "\n")) } //nolint:errcheck

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// runBoth runs src as a file locally, then with a Remote, and returns
// both outputs and errors, and the remote.
func runRemote(t *testing.T, ctx context.Context, src string) (string, error, *inProcess) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "script.star")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	var out lines
	worker := starlarkmod.New(starlarkmod.Options{Stdout: &out, Stderr: &out})
	defer worker.Close()
	remote := &inProcess{worker: worker, name: "w1", out: out.line}
	in := starlarkmod.New(starlarkmod.Options{Stdout: &out, Stderr: &out, Remote: remote})
	defer in.Close()
	_, err := in.ExecFile(ctx, path)
	return out.String(), err, remote
}

func runLocal(t *testing.T, src string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "script.star")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	var out lines
	in := starlarkmod.New(starlarkmod.Options{Stdout: &out, Stderr: &out})
	defer in.Close()
	_, err := in.ExecFile(context.Background(), path)
	return out.String(), err
}

const remoteScript = `
load("json", json_encode = "encode")
load("math", "sqrt")

SCALE = 3
TABLE = {"a": [1, 2, 3]}

def square(x, k=1):
    return x * x * SCALE * k

def shape(x):
    return {"x": x, "root": int(sqrt(x * x)), "js": json_encode([x]), "t": (x, TABLE["a"])}

results = job(square, range(3000), args=[2]).run()
print(len(results), results[-1], results[:5])
print(job(shape, [1, 5, 9]).run())
print(sorted(job(square, range(10), ordered=False).run()))

@future
def fib(n):
    if n < 2:
        return n
    return fib(n - 1).result() + fib(n - 2).result()

print("fib", fib(12).result())

@semisync
def a(x):
    return x + 1

@semisync(dependencies=[a])
def b(x):
    return x * 10

def show(v):
    print("callback", v)

@semisync(callback=show, dependencies=[b])
def c():
    return "c done"

ha = a(1)
hb = b(2)
c()
semisync.begin()
print("semisync", ha.result(), hb.result())
`

func TestRemoteSameOutputAsLocal(t *testing.T) {
	want, err := runLocal(t, remoteScript)
	require.NoError(t, err)
	got, err, remote := runRemote(t, context.Background(), remoteScript)
	require.NoError(t, err, got)
	assert.Equal(t, want, got)
	// 3000 items in batches of at most 1024, plus the other jobs, one
	// future (the futures fib(12) starts run on the worker: it has no
	// Remote of its own) and the three semisync calls.
	assert.LessOrEqual(t, remote.maxItems.Load(), int64(1024))
	assert.Equal(t, int64(3000+3+10+1+3), remote.items.Load())
	assert.Equal(t, int64(3+1+1+1+3), remote.batches.Load())
}

func TestRemotePrintGoesBackPrefixed(t *testing.T) {
	got, err, _ := runRemote(t, context.Background(), `
def hello(x):
    print("hello", x)
    return x

job(hello, [1]).run()
`)
	require.NoError(t, err)
	assert.Equal(t, "[w1] hello 1\n", got)
}

func TestRemoteRefusesNonPortable(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"manager list in a global", `
counts = Manager().list()

def count(x):
    counts.append(x)

job(count, [1, 2]).run()
`, `job.run: cannot send count (called at $/script.star:7:23) to the cluster: $/script.star:5:5: global "counts" of function count: Manager.list cannot leave this process (it is not portable)`},
		{"lock in a future's argument", `
@future
def f(l):
    return 1

f(Lock())
`, `f: cannot send f (called at $/script.star:6:2) to the cluster: argument 1: Lock cannot leave this process (it is not portable)`},
		{"semisync function called in a task", `
@semisync
def a():
    return 1

def use(x):
    return a()

job(use, [1]).run()
`, `job.run: cannot send use (called at $/script.star:9:18) to the cluster: $/script.star:7:12: global "a" of function use: semisync_function cannot leave this process (it is not portable)`},
		{"dispatcher", `
@future
def f():
    dispatcher.send("me", "hi")

f()
`, `f: cannot send f (called at $/script.star:6:2) to the cluster: $/script.star:4:5: "dispatcher" of function f: Dispatcher cannot leave this process (it is not portable)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err, remote := runRemote(t, context.Background(), tc.src)
			require.Error(t, err)
			msg := err.Error()
			if i := strings.Index(msg, "/script.star"); i > 0 {
				dir := msg[strings.LastIndex(msg[:i], " ")+1 : i]
				dir = strings.TrimPrefix(dir, "(")
				msg = strings.ReplaceAll(msg, dir, "$")
			}
			assert.Equal(t, tc.want, msg)
			assert.Zero(t, remote.batches.Load(), "nothing was sent")
		})
	}
}

func TestRemoteErrorsKeepTheirTraceback(t *testing.T) {
	src := `
def inner(x):
    return 1 // x

def f(x):
    return inner(x) + 1

job(f, [1, 0, 2]).run()
`
	got, err, _ := runRemote(t, context.Background(), src)
	require.Error(t, err, got)
	text := starlarkmod.FormatError(err)
	assert.Contains(t, text, "job.run: item 1 (value 0) of the job run at")
	assert.Contains(t, text, "script.star:6:17: in f")
	assert.Contains(t, text, "script.star:3:14: in inner")
	assert.Contains(t, text, "Error: floored division by zero")
	assert.Contains(t, text, "(on worker w1)")
	var re *starlarkmod.RemoteError
	require.True(t, errors.As(err, &re))
	assert.Equal(t, "w1", re.Worker)
}

func TestRemoteSuppressTimeoutUnordered(t *testing.T) {
	src := `
def f(x):
    if x == 2:
        fail("two")
    if x == 3:
        while True:
            pass
    return x

print(job(f, range(5), suppress_worker_exceptions=True, timeout=0.2).run())
`
	got, err, _ := runRemote(t, context.Background(), src)
	require.NoError(t, err, got)
	assert.Contains(t, got, "job.run: item 2 (value 2) of the job run at")
	assert.Contains(t, got, "failed (suppressed; its result is None)")
	assert.Contains(t, got, "Error in fail: fail: two")
	assert.Contains(t, got, "timed out after 200ms")
	assert.Contains(t, got, "[0, 1, None, None, 4]\n")
}

func TestRemoteCancel(t *testing.T) {
	src := `
def spin(x):
    while True:
        pass

job(spin, range(100)).run()
`
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err, _ := runRemote(t, ctx, src)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "items running on the cluster")
	assert.Less(t, time.Since(start), 30*time.Second) // generous: the machine is shared
}
