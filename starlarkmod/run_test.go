package starlarkmod_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarktest"

	"github.com/semisync/semisync/starlarkmod"
)

// Two runs on one Interpreter, at once, never see each other: each has its
// own semisync queue, background work, global dispatcher and loaded
// modules (DESIGN.md section 2, rule 12).
func TestConcurrentRunsAreIsolated(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lib.star"), []byte(`
counter = {"n": 0}
`), 0o644))
	src := `
load("./lib.star", "counter")
load("time", "sleep")

got = []
def note(sender):
    print("%s got %s" % (NAME, sender))

dispatcher.subscribe(NAME, "hello", note)

@semisync
def work(i):
    sleep(0.001)
    return i * 10

handles = [work(i) for i in range(20)]
dispatcher.send(NAME, "hello")
semisync.begin()
dispatcher.wait()

@future
def later():
    return NAME

f = later()
total = 0
for h in handles:
    total += h.result()
print("%s results %d %s" % (NAME, total, f.result()))
`
	var out bytes.Buffer // written one line at a time under the interpreter's lock
	in := starlarkmod.New(starlarkmod.Options{Stdout: &out, Stderr: &out})
	const runs = 8
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("run%d", i)
			path := filepath.Join(dir, name+".star")
			if err := os.WriteFile(path, []byte(fmt.Sprintf("NAME = %q\n%s", name, src)), 0o644); err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = in.NewRun(context.Background(), dir).ExecFile(path)
		}()
	}
	wg.Wait()
	require.NoError(t, in.Close())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	assert.Len(t, lines, 2*runs, out.String())
	for i := range runs {
		require.NoError(t, errs[i], "run %d", i)
		name := fmt.Sprintf("run%d", i)
		// Its own message, to its own global dispatcher's handler, once.
		assert.Contains(t, lines, name+" got "+name)
		// Its own 20 calls (0+10+...+190), not another run's.
		assert.Contains(t, lines, name+" results 1900 "+name)
	}
}

// The same identities in both modes: random numbers drawn by tasks,
// tasks started from tasks, callbacks and dispatcher handlers are the same
// with and without sequential mode, over repeated runs (rule 13).
func TestSeedSameInBothModes(t *testing.T) {
	src := `
load("random", "randint")
load("multiprocessing", "Manager")
out = Manager().dict()

def note(tag, v):
    out[tag] = v

@semisync(callback=lambda i, v: note("cb%d" % i, randint(0, 1000000)))
def a(i):
    @future
    def inner(j):
        return randint(0, 1000000) + j
    return i, wait([inner(j) for j in range(3)])

def handler(sender):
    out["h" + sender] = randint(0, 1000000)

dispatcher.subscribe("x", "m", handler)
dispatcher.subscribe("y", "m", handler)

hs = [a(i) for i in range(6)]
semisync.begin()
dispatcher.send("x", "m")
dispatcher.send("y", "m")
dispatcher.wait()
items = job(lambda i: randint(0, 1000000) * i, range(50)).run()
gen = [x for x in generator(lambda emit: [emit(randint(0, 9)) for _ in range(5)])()]
print([h.result() for h in hs])
print(sorted(out.items()))
print(items)
print(gen)
print(randint(0, 1000000))
`
	want := ""
	for round := range 4 {
		for _, sequential := range []bool{false, true} {
			got, err := exec(t, src, starlarkmod.Options{Seed: 42, Seeded: true, Sequential: sequential})
			require.NoError(t, err)
			if want == "" {
				want = got
				continue
			}
			assert.Equal(t, want, got, "round %d, sequential=%v", round, sequential)
		}
	}
}

func TestSemisyncHangsBecomeErrors(t *testing.T) {
	t.Run("result before begin", func(t *testing.T) {
		_, err := exec(t, `
@semisync
def f():
    return 1

h = f()
h.result()
`, starlarkmod.Options{})
		require.Error(t, err)
		assert.Contains(t, backtrace(err), "f() queued at")
		assert.Contains(t, backtrace(err), "call semisync.begin() first")
	})
	t.Run("queued calls never run", func(t *testing.T) {
		out, err := exec(t, `
@semisync
def f(x):
    print("ran", x)

f(1)
f(2)
`, starlarkmod.Options{})
		require.Error(t, err)
		assert.Empty(t, out)
		msg := err.Error()
		assert.Contains(t, msg, "semisync: 2 queued calls never ran")
		assert.Contains(t, msg, "f(1) queued at")
		assert.Contains(t, msg, "f(2) queued at")
	})
}

// A callback of a blocking begin runs on the thread that called begin: it
// may change script state. Run in the background it must not.
func TestCallbackOnCallingThreadIsNotFrozen(t *testing.T) {
	out, err := exec(t, `
seen = []

def keep(v):
    seen.append(v)

@semisync(callback=keep)
def f(i):
    return i

for i in range(3):
    f(i)
semisync.begin()
print(sorted(seen))
seen.append("still mutable")
print(len(seen))
`, starlarkmod.Options{})
	require.NoError(t, err)
	assert.Equal(t, "[0, 1, 2]\n4\n", out)

	_, err = exec(t, `
seen = []

def keep(v):
    seen.append(v)

@semisync(callback=keep)
def f(i):
    return i

f(1)
semisync.begin(_future=True).result()
`, starlarkmod.Options{})
	require.Error(t, err)
	assert.Contains(t, backtrace(err), "frozen list")
}

// A @future function called from Go (no calling Starlark frame) works.
func TestFutureCalledFromGo(t *testing.T) {
	for _, sequential := range []bool{false, true} {
		t.Run(fmt.Sprint("sequential=", sequential), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lib.star")
			require.NoError(t, os.WriteFile(path, []byte(`
@future
def square(x):
    return x * x
`), 0o644))
			in := starlarkmod.New(starlarkmod.Options{Sequential: sequential, Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
			defer in.Close()
			r := in.NewRun(context.Background(), filepath.Dir(path))
			g, err := r.ExecFile(path)
			require.NoError(t, err)
			th := r.NewThread("go")
			fut, err := starlark.Call(th, g["square"], starlark.Tuple{starlark.MakeInt(7)}, nil)
			require.NoError(t, err)
			assert.True(t, strings.Contains(fut.String(), "called from Go"), fut.String())
			res, err := starlark.Call(th, mustAttr(t, fut, "result"), nil, nil)
			require.NoError(t, err)
			assert.Equal(t, "49", res.String())
			r.Leave(th)
			require.NoError(t, r.Wait(context.Background()))
		})
	}
}

func mustAttr(t *testing.T, v starlark.Value, name string) starlark.Value {
	t.Helper()
	m, err := v.(starlark.HasAttrs).Attr(name)
	require.NoError(t, err)
	require.NotNil(t, m, "no attribute %s", name)
	return m
}

// A failure counts as seen only if the script actually looked at it: a
// loop over as_completed that breaks early, a result() whose timeout
// expires and a cancel() that comes too late do not look.
func TestObservation(t *testing.T) {
	tests := []struct {
		name, src string
		reported  []string // failures reported at the end ("" : none)
	}{
		{"as_completed broken out of", `
load("time", "sleep")
@future
def quick():
    return 1

@future
def slow_failure():
    sleep(0.05)
    return 1 // 0

for f in as_completed([quick(), slow_failure()]):
    break
`, []string{"slow_failure() called at"}},
		{"result timeout expires", `
load("assert.star", "assert")
load("time", "sleep")
@future
def slow_failure():
    sleep(0.2)
    fail("late")

f = slow_failure()
assert.fails(lambda: f.result(timeout=0.01), "timed out")
assert.fails(lambda: f.exception(timeout=0.01), "timed out")
assert.fails(lambda: wait([f], timeout=0.01), "timed out")
`, []string{"slow_failure() called at", "late"}},
		{"cancel too late", `
@future
def failure():
    fail("early")

f = failure()
while not f.done():
    pass
if f.cancel():
    fail("cancelled a resolved future")
`, []string{"failure() called at", "early"}},
		{"as_completed yields a future once", `
@future
def one():
    return 1

x = one()
n = 0
for f in as_completed([x, x, x]):
    n += 1
if n != 1:
    fail("as_completed yielded %d times" % n)
`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertModule, err := starlarktest.LoadAssertModule()
			require.NoError(t, err)
			_, err = exec(t, tt.src, starlarkmod.Options{
				Modules:    map[string]starlark.StringDict{"assert.star": assertModule},
				ThreadInit: func(th *starlark.Thread) { starlarktest.SetReporter(th, t) },
			})
			if tt.reported == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tt.reported {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

// At the end of a script, work that feeds a consumer nobody closed ends
// before the consumer is closed: nothing it sends is lost, also through a
// chain of stages (each created after the consumer it feeds).
func TestExitClosesConsumersAfterProducers(t *testing.T) {
	src := `
load("time", "sleep")

@coroutine
def sink(inbox):
    n = 0
    for x in inbox:
        n += 1
    print("sink got", n)

@coroutine
def stage(inbox, out):
    for x in inbox:
        out.send(x)
    print("stage done")

s = sink()
st = stage(s)

@future
def feed(c, n):
    for i in range(n):
        sleep(0.0005)
        c.send(i)
    print("fed", n)

feed(st, 50)
feed(s, 30)
`
	for _, sequential := range []bool{false} {
		out, err := exec(t, src, starlarkmod.Options{Sequential: sequential})
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		assert.ElementsMatch(t, []string{"fed 50", "fed 30", "stage done", "sink got 80"}, lines)
		assert.Equal(t, "sink got 80", lines[len(lines)-1])
	}
}
