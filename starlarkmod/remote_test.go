package starlarkmod_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
	"github.com/semisync/semisync/starlarkmod/internal/portable"
)

// inProcess is a Remote that runs each item on a second Interpreter (the
// "worker"), on goroutines, as the cluster's workers do: it is the seam's
// end-to-end test without NATS.
type inProcess struct {
	worker *starlarkmod.Interpreter
	name   string
	batch  bool // run batches with ExecRemoteBatch, else item by item with ExecRemote
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
	out := func(line string) { p.out("[" + p.name + "] " + line) }
	if p.batch {
		return p.worker.ExecRemoteBatch(ctx, b, files, 4, out, func(i int, res []byte, err error) {
			var re *starlarkmod.RemoteError
			if errors.As(err, &re) {
				re.Worker = p.name
			}
			done(i, res, err)
		})
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
			res, err := p.worker.ExecRemote(ictx, b.Fn, b.FnSum, files, it.Args, out)
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

// runRemote runs src as a file with an in-process Remote and returns
// the output, the remote and the error.
func runRemote(t *testing.T, ctx context.Context, src string) (string, *inProcess, error) {
	t.Helper()
	return runRemoteMode(t, ctx, src, false)
}

func runRemoteMode(t *testing.T, ctx context.Context, src string, batch bool) (string, *inProcess, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "script.star")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	var out lines
	worker := starlarkmod.New(starlarkmod.Options{Stdout: &out, Stderr: &out})
	defer worker.Close()
	remote := &inProcess{worker: worker, name: "w1", out: out.line, batch: batch}
	in := starlarkmod.New(starlarkmod.Options{Stdout: &out, Stderr: &out, Remote: remote})
	defer in.Close()
	_, err := in.ExecFile(ctx, path)
	return out.String(), remote, err
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
	for _, batch := range []bool{false, true} {
		t.Run(map[bool]string{false: "ExecRemote", true: "ExecRemoteBatch"}[batch], func(t *testing.T) {
			testRemoteSameOutputAsLocal(t, batch)
		})
	}
}

func testRemoteSameOutputAsLocal(t *testing.T, batch bool) {
	want, err := runLocal(t, remoteScript)
	require.NoError(t, err)
	got, remote, err := runRemoteMode(t, context.Background(), remoteScript, batch)
	require.NoError(t, err, got)
	assert.Equal(t, want, got)
	// 3000 items in batches of 1024 at first, growing up to 8192 while
	// they come back quickly (remote.go), plus the other jobs, one future
	// (the futures fib(12) starts run on the worker: it has no Remote of
	// its own) and the three semisync calls.
	assert.LessOrEqual(t, remote.maxItems.Load(), int64(8192))
	assert.Equal(t, int64(3000+3+10+1+3), remote.items.Load())
	// (The 3000 items take at least 2 batches, the first of 1024; a batch
	// also goes out early when pulling items is slow: on a loaded machine
	// they may take more.)
	assert.GreaterOrEqual(t, remote.batches.Load(), int64(2+1+1+1+3))
}

func TestRemotePrintGoesBackPrefixed(t *testing.T) {
	got, _, err := runRemote(t, context.Background(), `
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
		{"semisync call reaching a Manager dict", `
counts = Manager().dict()

@semisync
def a():
    counts["x"] = 1

a()
semisync.begin()
`, `semisync.begin: cannot send a (called at $/script.star:8:2) to the cluster: $/script.star:6:5: global "counts" of function a: Manager.dict cannot leave this process (it is not portable)`},
		{"dispatcher", `
@future
def f():
    dispatcher.send("me", "hi")

f()
`, `f: cannot send f (called at $/script.star:6:2) to the cluster: $/script.star:4:5: "dispatcher" of function f: Dispatcher cannot leave this process (it is not portable)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, remote, err := runRemote(t, context.Background(), tc.src)
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
	got, _, err := runRemote(t, context.Background(), src)
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
	for _, batch := range []bool{false, true} {
		t.Run(map[bool]string{false: "ExecRemote", true: "ExecRemoteBatch"}[batch], func(t *testing.T) {
			testRemoteSuppressTimeout(t, batch)
		})
	}
}

func testRemoteSuppressTimeout(t *testing.T, batch bool) {
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
	got, _, err := runRemoteMode(t, context.Background(), src, batch)
	require.NoError(t, err, got)
	assert.Contains(t, got, "job.run: item 2 (value 2) of the job run at")
	assert.Contains(t, got, "failed (suppressed; its result is None)")
	assert.Contains(t, got, "Error in fail: fail: two")
	assert.Contains(t, got, "timed out after 200ms")
	assert.Contains(t, got, "[0, 1, None, None, 4]\n")
}

func TestRemoteCancel(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(map[bool]string{false: "ExecRemote", true: "ExecRemoteBatch"}[batch], func(t *testing.T) {
			testRemoteCancel(t, batch)
		})
	}
}

func testRemoteCancel(t *testing.T, batch bool) {
	src := `
def spin(x):
    while True:
        pass

job(spin, range(100)).run()
`
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := runRemoteMode(t, ctx, src, batch)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "items running on the cluster")
	assert.Less(t, time.Since(start), 30*time.Second) // generous: the machine is shared
}

func TestRemoteClosuresLambdasAndFunctionValues(t *testing.T) {
	src := `
def make_adder(n):
    def add(x):
        return x + n
    return add

add5 = make_adder(5)
print(job(add5, [1, 2, 3]).run())
print(job(lambda x: x * 2, [1, 2]).run())

def apply(pair):
    f, x = pair
    return f(x)

# functions among the items and in results travel too
print(job(apply, [(add5, 1), (make_adder(10), 1)]).run())

@future
def maker(n):
    return make_adder(n)

print(maker(7).result()(1))
`
	want, err := runLocal(t, src)
	require.NoError(t, err)
	got, remote, err := runRemote(t, context.Background(), src)
	require.NoError(t, err, got)
	assert.Equal(t, want, got)
	assert.Equal(t, int64(4), remote.batches.Load())
}

func TestRemoteSequentialMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "script.star")
	require.NoError(t, os.WriteFile(path, []byte(remoteScript), 0o644))
	var out lines
	worker := starlarkmod.New(starlarkmod.Options{Stdout: &out, Stderr: &out, Sequential: true})
	defer worker.Close()
	in := starlarkmod.New(starlarkmod.Options{Stdout: &out, Stderr: &out, Sequential: true,
		Remote: &inProcess{worker: worker, name: "w1", out: out.line}})
	defer in.Close()
	_, err := in.ExecFile(context.Background(), path)
	require.NoError(t, err, out.String())
	want, err := runLocal(t, remoteScript)
	require.NoError(t, err)
	assert.Equal(t, want, out.String())
}

func TestRemoteCancelFutures(t *testing.T) {
	src := `
@future
def spin():
    while True:
        pass

fs = [spin() for _ in range(10)]
wait(fs)
`
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, _, err := runRemote(t, ctx, src)
	require.Error(t, err)
	// Either wait() sees its context end, or the main thread is cancelled
	// first ("Starlark computation cancelled: context canceled").
	assert.ErrorContains(t, err, "context canceled")
}

// Remote item ids are the hash of the function, the arguments, the run
// and the task's structural identity: distinct for every item of a run,
// even with equal arguments, and different in another run.
func TestRemoteItemIDs(t *testing.T) {
	src := `
def f(x):
    return x

job(f, [1, 1, 2]).run()
job(f, [1]).run()
`
	var mu sync.Mutex
	var ids []string
	rec := recordingRemote{fn: func(b *starlarkmod.RemoteBatch) {
		mu.Lock()
		defer mu.Unlock()
		for _, it := range b.Items {
			ids = append(ids, it.ID)
		}
	}}
	dir := t.TempDir()
	path := filepath.Join(dir, "script.star")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: io.Discard, Remote: &rec})
	defer in.Close()
	for range 2 {
		_, err := in.ExecFile(context.Background(), path)
		require.NoError(t, err)
	}
	require.Len(t, ids, 8)
	seen := map[string]bool{}
	for _, id := range ids {
		assert.Len(t, id, 64)
		assert.False(t, seen[id], "duplicate id %s", id)
		seen[id] = true
	}
}

// recordingRemote answers every item with its first argument, and
// shows each batch to fn.
type recordingRemote struct {
	fn func(b *starlarkmod.RemoteBatch)
}

func (r *recordingRemote) Run(_ context.Context, b *starlarkmod.RemoteBatch, done func(int, []byte, error)) error {
	r.fn(b)
	for i, it := range b.Items {
		x, err := firstArg(it)
		if err != nil {
			return err
		}
		if err := sendBack(i, x, done); err != nil {
			return err
		}
	}
	return nil
}

// firstArg decodes an item's first argument.
func firstArg(it starlarkmod.RemoteItem) (starlark.Value, error) {
	args, _, err := portable.DecodeArgs(it.Args)
	if err != nil {
		return nil, err
	}
	return args[0], nil
}

// sendBack answers item i with v.
func sendBack(i int, v starlark.Value, done func(int, []byte, error)) error {
	res, err := portable.EncodeValue(v)
	if err != nil {
		return err
	}
	done(i, res, nil)
	return nil
}

// The first failing item in input order is reported, whatever the order
// the cluster answers in, as locally.
func TestRemoteFirstFailureInOrder(t *testing.T) {
	src := `
def f(x):
    if x in (700, 2100, 2900):
        fail("bad %d" % x)
    return x

job(f, range(3000)).run()
`
	want, err := runLocal(t, src)
	require.Error(t, err)
	for _, batch := range []bool{false, true} {
		got, _, rerr := runRemoteMode(t, context.Background(), src, batch)
		require.Error(t, rerr)
		assert.Equal(t, want, got)
		assert.Contains(t, rerr.Error(), "item 700 (value 700)")
		assert.Contains(t, starlarkmod.FormatError(rerr), "Error in fail: fail: bad 700")
	}
}

// With --seed, tasks run by ExecRemoteBatch draw the same random numbers
// as locally: the caller's seed and the task's structural identity travel.
func TestRemoteSeededRandom(t *testing.T) {
	src := `
load("random", "randint")

def draw(x):
    return randint(0, 1000000)

@future
def later():
    return randint(0, 1000000)

print(job(draw, range(20)).run())
print(later().result())
`
	dir := t.TempDir()
	path := filepath.Join(dir, "script.star")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	run := func(remote bool) string {
		var out lines
		opts := starlarkmod.Options{Stdout: &out, Stderr: &out, Seed: 7, Seeded: true}
		if remote {
			worker := starlarkmod.New(starlarkmod.Options{Stdout: &out, Stderr: &out, Seed: 99, Seeded: true})
			defer worker.Close()
			opts.Remote = &inProcess{worker: worker, name: "w1", out: out.line, batch: true}
		}
		in := starlarkmod.New(opts)
		defer in.Close()
		_, err := in.ExecFile(context.Background(), path)
		require.NoError(t, err, out.String())
		return out.String()
	}
	assert.Equal(t, run(false), run(true))
}

// itemLines is a Remote that runs batches with ExecRemoteBatchLines and
// records, for each line printed, the item it was attributed to.
type itemLines struct {
	worker *starlarkmod.Interpreter
	mu     sync.Mutex
	got    []string // "<arg of the item>: <line>", or "-: <line>"
}

func (p *itemLines) Run(ctx context.Context, b *starlarkmod.RemoteBatch, done func(int, []byte, error)) error {
	files := func(h string) ([]byte, error) {
		if t, ok := b.Files[h]; ok {
			return t, nil
		}
		return nil, errors.New("no such file")
	}
	return p.worker.ExecRemoteBatchLines(ctx, b, files, 4, func(i int, line string) {
		who := "-"
		if i >= 0 {
			args, _, err := portable.DecodeArgs(b.Items[i].Args)
			if err != nil {
				who = err.Error()
			} else {
				who = args[0].String()
			}
		}
		p.mu.Lock()
		p.got = append(p.got, who+": "+line)
		p.mu.Unlock()
	}, done)
}

// ExecRemoteBatchLines names the item that printed each line (a cluster
// worker sends each item's lines with its result), also with items
// running at once; a @future an item starts prints as the batch's (-1)
// or as that item's.
func TestExecRemoteBatchLinesNamesItems(t *testing.T) {
	src := `
@future
def bg(x):
    print("bg", x)

def work(x):
    print("item", x)
    print("again", x)
    if x % 10 == 0:
        bg(x).result()
    return x

job(work, range(300), progress = False).run()
`
	dir := t.TempDir()
	path := filepath.Join(dir, "script.star")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	worker := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: io.Discard})
	defer worker.Close()
	remote := &itemLines{worker: worker}
	in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: io.Discard, Remote: remote})
	defer in.Close()
	_, err := in.ExecFile(context.Background(), path)
	require.NoError(t, err)
	require.Len(t, remote.got, 2*300+30)
	for _, g := range remote.got {
		who, line, _ := strings.Cut(g, ": ")
		f := strings.Fields(line)
		require.Len(t, f, 2, g)
		if f[0] == "bg" && who == "-" {
			continue
		}
		assert.Equal(t, f[1], who, "line %q attributed to item %s", line, who)
	}
}

// reversedRemote answers a batch's items last first: odd items fail, the
// others return their argument.
type reversedRemote struct{}

func (reversedRemote) Run(_ context.Context, b *starlarkmod.RemoteBatch, done func(int, []byte, error)) error {
	for i := len(b.Items) - 1; i >= 0; i-- {
		x, err := firstArg(b.Items[i])
		if err != nil {
			return err
		}
		if n, _ := starlark.AsInt32(x); n%2 == 1 {
			done(i, nil, &starlarkmod.RemoteError{Msg: fmt.Sprintf("odd %d", n), Trace: fmt.Sprintf("odd %d", n)})
			continue
		}
		if err := sendBack(i, x, done); err != nil {
			return err
		}
	}
	return nil
}

// Suppressed failures are reported in item order, as locally, whatever
// order the results come back in (with ordered=False, as they come).
func TestRemoteSuppressedReportsInOrder(t *testing.T) {
	for _, ordered := range []bool{true, false} {
		var stderr bytes.Buffer
		in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: &stderr, Remote: reversedRemote{}})
		src := fmt.Sprintf("def f(x):\n    return x\njob(f, range(6), suppress_worker_exceptions = True, ordered = %s, progress = False).run()\n",
			map[bool]string{true: "True", false: "False"}[ordered])
		_, err := in.Exec(context.Background(), "order.star", src, nil)
		in.Close()
		require.NoError(t, err)
		var items []string
		for _, m := range regexp.MustCompile(`item (\d) \(value`).FindAllStringSubmatch(stderr.String(), -1) {
			items = append(items, m[1])
		}
		if ordered {
			assert.Equal(t, []string{"1", "3", "5"}, items, stderr.String())
		} else {
			assert.Equal(t, []string{"5", "3", "1"}, items, stderr.String())
		}
	}
}
