package starlarkmod_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
)

// ticker is a host module with one builtin, tick(name), declared pure:
// it counts the calls that really ran, by name, so a test can see which
// functions the cache skipped.
type ticker struct {
	mu    sync.Mutex
	calls map[string]int
}

func (tk *ticker) module() starlark.StringDict {
	return starlark.StringDict{"tick": starlark.NewBuiltin("tick", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var name string
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &name); err != nil {
			return nil, err
		}
		tk.mu.Lock()
		tk.calls[name]++
		tk.mu.Unlock()
		return starlark.None, nil
	})}
}

// take returns the counts so far and resets them.
func (tk *ticker) take() map[string]int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	c := tk.calls
	tk.calls = map[string]int{}
	return c
}

// cacheRun is the outcome of one run of a script with a cache directory.
type cacheRun struct {
	out   string
	stats starlarkmod.CacheStats
	ran   map[string]int // tick calls by name: the calls that ran
}

// runCached runs src (written to dir/script.star) once in a fresh
// interpreter with the cache directory cacheDir and Options.CacheAll as
// given, as a new process would.
func runCached(t *testing.T, dir, cacheDir, src string, all bool, more ...func(*starlarkmod.Options)) cacheRun {
	t.Helper()
	path := filepath.Join(dir, "script.star")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	store, err := starlarkmod.OpenDirCache(cacheDir, 0)
	require.NoError(t, err)
	tk := &ticker{calls: map[string]int{}}
	var out bytes.Buffer
	opts := starlarkmod.Options{
		Stdout:       &out,
		Stderr:       &out,
		Cache:        store,
		CacheAll:     all,
		Modules:      map[string]starlark.StringDict{"host": tk.module()},
		PureBuiltins: []string{"host.tick"},
	}
	for _, f := range more {
		f(&opts)
	}
	in := starlarkmod.New(opts)
	_, err = in.ExecFile(context.Background(), path)
	require.NoError(t, err, out.String())
	require.NoError(t, in.Close())
	require.NoError(t, store.Close())
	return cacheRun{out: out.String(), stats: in.CacheStats(), ran: tk.take()}
}

const graphScript = `
def sum_of(xs):
    s = 0
    for x in xs:
        s += x
    return s
load("host", "tick")

def work(i):
    tick("work")
    s = 0
    for k in range(50):
        s += k * i
    return s

@semisync(cache=True)
def node(i):
    return work(i)

@semisync(cache=True, dependencies=[node])
def total(n):
    tick("total")
    return n

hs = [node(i) for i in range(1000)]
t = total(1000)
semisync.begin()
print(sum_of([h.result() for h in hs]), t.result())
`

// The second run of a 1,000-call graph with nothing changed runs no call:
// every result comes from the cache, and it is the same.
func TestCacheGraphRerunRunsNothing(t *testing.T) {
	dir, cacheDir := t.TempDir(), t.TempDir()
	first := runCached(t, dir, cacheDir, graphScript, false)
	assert.Equal(t, map[string]int{"work": 1000, "total": 1}, first.ran)
	assert.Equal(t, starlarkmod.CacheStats{Misses: 1001, Stored: 1001}, first.stats)

	second := runCached(t, dir, cacheDir, graphScript, false)
	assert.Empty(t, second.ran, "no call ran")
	assert.Equal(t, starlarkmod.CacheStats{Hits: 1001}, second.stats)
	assert.Equal(t, first.out, second.out)
	assert.Equal(t, "611887500 1000\n", second.out)
}

const editScript = `
def sum_of(xs):
    s = 0
    for x in xs:
        s += x
    return s
load("host", "tick")

def helper(x):
    return x * 2

@semisync(cache=True)
def a(i):
    tick("a")
    return i + 1

@semisync(cache=True)
def b(i):
    tick("b")
    return helper(i)

@semisync(cache=True, dependencies=[b])
def after_b():
    tick("after_b")
    return "done"

@semisync(cache=True, dependencies=[a])
def after_a():
    tick("after_a")
    return "done"

ha = [a(i) for i in range(100)]
hb = [b(i) for i in range(100)]
after_a()
after_b()
semisync.begin()
print(sum_of([h.result() for h in ha]), sum_of([h.result() for h in hb]))
`

// Editing one function reruns only the calls that reach it (and, in a
// graph, their dependents); moving the lines of the others does not
// change their keys.
func TestCacheEditRerunsOnlyWhatReachesIt(t *testing.T) {
	dir, cacheDir := t.TempDir(), t.TempDir()
	first := runCached(t, dir, cacheDir, editScript, false)
	assert.Equal(t, map[string]int{"a": 100, "b": 100, "after_a": 1, "after_b": 1}, first.ran)
	assert.Equal(t, "5050 9900\n", first.out)

	// helper changes, and gains lines that move every def below it.
	edited := strings.Replace(editScript, "    return x * 2\n", "    # doubled, then one more\n    y = x * 2\n    return y + 1\n", 1)
	require.NotEqual(t, editScript, edited)
	second := runCached(t, dir, cacheDir, edited, false)
	assert.Equal(t, map[string]int{"b": 100, "after_b": 1}, second.ran)
	assert.Equal(t, starlarkmod.CacheStats{Hits: 101, Misses: 101, Stored: 101}, second.stats)
	assert.Equal(t, "5050 10000\n", second.out)

	// A comment and blank lines above everything change nothing.
	moved := "# a comment\n\n\n" + edited
	third := runCached(t, dir, cacheDir, moved, false)
	assert.Empty(t, third.ran)
	assert.Equal(t, "5050 10000\n", third.out)

	// Back to the first version: its results are still there.
	fourth := runCached(t, dir, cacheDir, editScript, false)
	assert.Empty(t, fourth.ran)
	assert.Equal(t, "5050 9900\n", fourth.out)

	// The same script elsewhere (another directory): the same keys.
	fifth := runCached(t, t.TempDir(), cacheDir, editScript, false)
	assert.Empty(t, fifth.ran)
}

// Futures and job items are cached too; with CacheAll, so is every pure
// call without cache=True, and never one with cache=False.
func TestCacheFuturesJobsAndCacheAll(t *testing.T) {
	src := `
load("host", "tick")
def sum_of(xs):
    s = 0
    for x in xs:
        s += x
    return s

@future(cache=True)
def f(x, k=1):
    tick("f")
    return [x, k]

def item(i, scale):
    tick("item")
    return i * scale

@future
def plain(x):
    tick("plain")
    return x

@future(cache=False)
def never(x):
    tick("never")
    return x

@future
def impure(x):
    print("impure ran")
    return x

fs = [f(i, k=2) for i in range(10)]
r = job(item, range(20), args=[3], cache=True).run()
j2 = job(item, range(5), args=[7]).run()
print([x.result() for x in fs][3], sum_of(r), sum_of(j2), plain(1).result(), never(2).result(), impure(3).result())
`
	dir, cacheDir := t.TempDir(), t.TempDir()
	first := runCached(t, dir, cacheDir, src, false)
	assert.Equal(t, map[string]int{"f": 10, "item": 25, "plain": 1, "never": 1}, first.ran)
	second := runCached(t, dir, cacheDir, src, false)
	assert.Equal(t, map[string]int{"item": 5, "plain": 1, "never": 1}, second.ran, "cache=True calls are cached")
	assert.Equal(t, first.out, second.out)

	// CacheAll: the pure ones without cache=True too.
	third := runCached(t, dir, cacheDir, src, true)
	assert.Equal(t, map[string]int{"item": 5, "plain": 1, "never": 1}, third.ran)
	fourth := runCached(t, dir, cacheDir, src, true)
	assert.Equal(t, map[string]int{"never": 1}, fourth.ran)
	assert.Equal(t, first.out, fourth.out)
	assert.Contains(t, fourth.out, "impure ran", "an impure function runs under CacheAll")
	assert.Contains(t, fourth.out, "[3, 2] 570 70 1 2 3")
}

// A corrupted or truncated entry is detected, removed and recomputed.
func TestCacheCorruptEntryRecomputed(t *testing.T) {
	dir, cacheDir := t.TempDir(), t.TempDir()
	first := runCached(t, dir, cacheDir, graphScript, false)
	var entries []string
	require.NoError(t, filepath.WalkDir(cacheDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && len(d.Name()) == 64 {
			entries = append(entries, p)
		}
		return err
	}))
	require.Len(t, entries, 1001)
	sort.Strings(entries)
	// Flip a byte in one entry, truncate another, empty a third.
	b, err := os.ReadFile(entries[0])
	require.NoError(t, err)
	b[len(b)-1] ^= 0x40
	require.NoError(t, os.WriteFile(entries[0], b, 0o644))
	require.NoError(t, os.Truncate(entries[1], 30))
	require.NoError(t, os.WriteFile(entries[2], nil, 0o644))

	// The pack the first run wrote (a copy of its small results, read in
	// one go by later runs) would still answer: corrupt it too, all of it.
	packs, err := filepath.Glob(filepath.Join(cacheDir, "v1", "packs", "*.pack"))
	require.NoError(t, err)
	require.Len(t, packs, 1)
	for _, p := range packs {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		for i := range b {
			b[i] ^= 0x55
		}
		require.NoError(t, os.WriteFile(p, b, 0o644))
	}

	second := runCached(t, dir, cacheDir, graphScript, false)
	assert.Equal(t, first.out, second.out)
	assert.Equal(t, starlarkmod.CacheStats{Hits: 998, Misses: 3, Stored: 3}, second.stats)
	third := runCached(t, dir, cacheDir, graphScript, false)
	assert.Equal(t, starlarkmod.CacheStats{Hits: 1001}, third.stats)
	assert.Equal(t, first.out, third.out)
}

// cache=True without a store checks purity and runs the calls.
func TestCacheWithoutStore(t *testing.T) {
	var out bytes.Buffer
	path := filepath.Join(t.TempDir(), "s.star")
	require.NoError(t, os.WriteFile(path, []byte(`
@semisync(cache=True)
def f(i):
    return i * 2
h = f(21)
semisync.begin()
print(h.result())
`), 0o644))
	in := starlarkmod.New(starlarkmod.Options{Stdout: &out})
	_, err := in.ExecFile(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, in.Close())
	assert.Equal(t, "42\n", out.String())
	assert.Equal(t, starlarkmod.CacheStats{}, in.CacheStats())
}

// With a cluster (Options.Remote), a cached call is looked up before it
// is sent: a warm rerun sends nothing.
func TestCacheWithRemote(t *testing.T) {
	src := `
@semisync(cache=True)
def node(i):
    return i * i

@future(cache=True)
def f(x):
    return [x]

hs = [node(i) for i in range(50)]
semisync.begin()
t = 0
for h in hs:
    t += h.result()
print(t, f(3).result())
`
	path := filepath.Join(t.TempDir(), "remote.star")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	cacheDir := t.TempDir()
	run := func() (string, int64, starlarkmod.CacheStats) {
		var out bytes.Buffer
		worker := starlarkmod.New(starlarkmod.Options{Stdout: &out})
		defer worker.Close()
		remote := &inProcess{worker: worker, name: "w1", out: func(string) {}}
		store, err := starlarkmod.OpenDirCache(cacheDir, 0)
		require.NoError(t, err)
		in := starlarkmod.New(starlarkmod.Options{Stdout: &out, Stderr: &out, Remote: remote, Cache: store})
		_, err = in.ExecFile(context.Background(), path)
		require.NoError(t, err, out.String())
		require.NoError(t, in.Close())
		require.NoError(t, store.Close())
		return out.String(), remote.items.Load(), in.CacheStats()
	}
	out1, sent1, st1 := run()
	assert.Equal(t, "40425 [3]\n", out1)
	assert.Equal(t, int64(51), sent1)
	assert.Equal(t, starlarkmod.CacheStats{Misses: 51, Stored: 51}, st1)
	out2, sent2, st2 := run()
	assert.Equal(t, out1, out2)
	assert.Zero(t, sent2, "nothing sent to the cluster")
	assert.Equal(t, starlarkmod.CacheStats{Hits: 51}, st2)
}

// A hit still runs the call's callback, with the stored result (a tuple
// unpacked as on a miss), and a sequential run hits the same entries.
func TestCacheCallbackOnHit(t *testing.T) {
	src := `
load("host", "tick")

def show(name, n):
    print(name, n)

@semisync(cache=True, callback=show)
def count(name):
    tick("count")
    return name, len(name)

count("abc")
count("hello")
semisync.begin()
`
	dir, cacheDir := t.TempDir(), t.TempDir()
	first := runCached(t, dir, cacheDir, src, false)
	assert.Equal(t, map[string]int{"count": 2}, first.ran)
	second := runCached(t, dir, cacheDir, src, false, func(o *starlarkmod.Options) { o.Sequential = true })
	assert.Empty(t, second.ran)
	for _, out := range []string{first.out, second.out} {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		sort.Strings(lines)
		assert.Equal(t, []string{"abc 3", "hello 5"}, lines)
	}
}

// A result that holds a function (which names builtins) is stored and
// found like any other.
func TestCacheFunctionResult(t *testing.T) {
	src := `
load("host", "tick")
load("json", "encode")

def make(n):
    def f(x):
        return len(encode([x])) + n
    return f

@future(cache=True)
def maker(n):
    tick("maker")
    return make(n)

print(maker(3).result()(12345))
`
	dir, cacheDir := t.TempDir(), t.TempDir()
	first := runCached(t, dir, cacheDir, src, false)
	assert.Equal(t, "10\n", first.out)
	second := runCached(t, dir, cacheDir, src, false)
	assert.Equal(t, "10\n", second.out)
	assert.Empty(t, second.ran)
	assert.Equal(t, starlarkmod.CacheStats{Hits: 1}, second.stats)
}

// A cached call whose dependency is not cached reruns, as in make, when
// that dependency's code changes.
func TestCacheDependentOfUncachedCall(t *testing.T) {
	src := `
load("host", "tick")

@semisync
def source(i):
    tick("source")
    return i * 2

@semisync(cache=True, dependencies=[source])
def sink():
    tick("sink")
    return 1

source(1)
source(2)
sink()
semisync.begin()
`
	dir, cacheDir := t.TempDir(), t.TempDir()
	assert.Equal(t, map[string]int{"source": 2, "sink": 1}, runCached(t, dir, cacheDir, src, false).ran)
	assert.Equal(t, map[string]int{"source": 2}, runCached(t, dir, cacheDir, src, false).ran)
	edited := strings.Replace(src, "i * 2", "i * 3", 1)
	assert.Equal(t, map[string]int{"source": 2, "sink": 1}, runCached(t, dir, cacheDir, edited, false).ran)
	// Another argument to the dependency: the dependent reruns too.
	more := strings.Replace(edited, "source(2)", "source(5)", 1)
	assert.Equal(t, map[string]int{"source": 2, "sink": 1}, runCached(t, dir, cacheDir, more, false).ran)
}
