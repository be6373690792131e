package compile_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/semisync/semisync/starlarkmod/internal/compile"
)

// dialect is semisync's (starlarkmod.FileOptions), which this package
// cannot import.
var dialect = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}

// outcome runs src's top level, then calls its function f with args, on
// the VM or compiled, and returns what a user sees: printed lines, the
// result or the error's backtrace, and whether f ran compiled.
func outcome(t testing.TB, src string, compiled bool, maxSteps uint64, args ...starlark.Value) (out string, ranCompiled bool) {
	t.Helper()
	f, err := dialect.Parse("test.star", src, 0)
	require.NoError(t, err, "%s", src)
	prog, err := starlark.FileProgram(f, starlark.StringDict{}.Has)
	require.NoError(t, err, "%s", src)
	comp := compile.New()
	require.NotNil(t, comp, "go.starlark.net layout not recognised")
	comp.AddFile(prog, f)
	var b strings.Builder
	th := &starlark.Thread{Print: func(_ *starlark.Thread, msg string) { b.WriteString(msg + "\n") }}
	g, err := prog.Init(th, nil)
	require.NoError(t, err, "%s", src)
	var fn starlark.Value = g["f"]
	if compiled {
		fn = comp.Callable(fn)
		_, isFunc := fn.(*starlark.Function)
		ranCompiled = !isFunc
	}
	if maxSteps > 0 {
		th.SetMaxExecutionSteps(maxSteps)
	}
	v, err := starlark.Call(th, fn, args, nil)
	if err != nil {
		if ee, ok := err.(*starlark.EvalError); ok {
			fmt.Fprintf(&b, "error: %s", ee.Backtrace())
		} else {
			fmt.Fprintf(&b, "error: %v", err)
		}
	} else {
		fmt.Fprintf(&b, "= %s", v)
	}
	return b.String(), ranCompiled
}

// same checks that f gives the same outcome compiled as on the VM, and
// reports whether it ran compiled.
func same(t testing.TB, src string, args ...starlark.Value) bool {
	t.Helper()
	want, _ := outcome(t, src, false, 0, args...)
	got, compiled := outcome(t, src, true, 0, args...)
	assert.Equal(t, want, got, "program:\n%s", src)
	return compiled
}

func TestDifferential(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		args      []starlark.Value
		vm        bool // expected to fall back to the VM
	}{
		{name: "is_prime", src: `
def f(n):
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True
`, args: []starlark.Value{starlark.MakeInt(7919)}},
		{name: "fib", src: `
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def f():
    return [fib(i) for i in range(15)]
`},
		{name: "overflow to big ints", src: `
def f():
    x = 1
    for i in range(100):
        x = x * 3 + i
        x += 1
    return x, -x, x // 7, x % 7, (-x) % 7, x - x * 2, 8 if False else x >> 3
`},
		{name: "float and mixed", src: `
def f():
    a = 1.5
    b = a * 2 + 1 - 0.25
    return a, b, b / 2, 7 // 2.0, 7 % 2.5, 1 / 3, a < b, a == 1.5, int(b)
`},
		{name: "strings", src: `
def f():
    s = ""
    for i in range(10):
        s += str(i) + "-"
    return s, s[1:5], s[::-1], s[-3:], len(s), "%d and %s" % (3, "x"), s.upper()[:4], "a" in s, "-" in s
`},
		{name: "lists and dicts", src: `
def f():
    l = []
    d = {}
    for i in range(20):
        l.append(i * i)
        d[i % 5] = d.get(i % 5, 0) + i
    l += [1, 2]
    l[0] = "x"
    l[-1] += 5
    d[3] += 100
    return l, d, len(l), len(d), l[2:8:2], sorted(d.items()), {k: v for k, v in d.items() if v > 30}
`},
		{name: "comprehensions", src: `
def f():
    m = [[i * j for j in range(5) if j % 2 == 0] for i in range(4)]
    flat = [x for row in m for x in row if x]
    return m, flat, {x: x * x for x in flat}, [a + b for a, b in [(1, 2), (3, 4)]]
`},
		{name: "unpacking", src: `
def f():
    a, b = 1, 2
    (c, [d, e]) = (3, [4, 5])
    for k, v in {"x": 1, "y": 2}.items():
        a += v
    return a, b, c, d, e
`},
		{name: "keyword arguments and defaults", src: `
def g(a, b=2, *args, c, d=4, **kw):
    return (a, b, args, c, d, sorted(kw.items()))
def f():
    return [g(1, c=3), g(1, 2, 3, 4, c=5, e=6), g(*[1, 2], **{"c": 0, "z": 9})]
`},
		{name: "break continue return in loops", src: `
def f():
    out = []
    for i in range(10):
        if i == 2:
            continue
        if i == 7:
            break
        j = 0
        while True:
            j += 1
            if j > i:
                break
        out.append((i, j))
    for x in out:
        if x[0] == 5:
            return out, x
    return None
`},
		{name: "division by zero", src: `
def f():
    x = 1
    y = 0
    return x // y
`},
		{name: "error in callee", src: `
def g(l, i):
    return l[i]
def f():
    l = [1, 2, 3]
    return g(l, 1) + g(l, 5)
`},
		{name: "unbound local", src: `
def f():
    if False:
        x = 1
    return x
`},
		{name: "missing argument", src: `
def g(a, b, c=1):
    return a
def f():
    return g(1)
`},
		{name: "too many arguments", src: `
def g(a, b=1):
    return a
def f():
    return g(1, 2, 3)
`},
		{name: "unexpected keyword", src: `
def g(a):
    return a
def f():
    return g(a=1, b=2)
`},
		{name: "frozen list", src: `
L = [1, 2]
def f():
    L.append(3)
`},
		{name: "frozen list +=", src: `
L = [1, 2]
def f():
    L += [3]
`},
		{name: "mutation during iteration", src: `
def f():
    l = [1, 2, 3]
    for x in l:
        l.append(x)
`},
		{name: "mutation during iteration +=", src: `
def f():
    l = [1, 2, 3]
    for x in l:
        l += [x]
`},
		{name: "dict mutation during iteration", src: `
def f():
    d = {1: 2}
    for k in d:
        d[k + 1] = 0
`},
		{name: "bad types", src: `
def f():
    return 1 + "a"
`},
		{name: "bad compare", src: `
def f():
    return [] < {}
`},
		{name: "not iterable", src: `
def f():
    for x in 3:
        pass
`},
		{name: "unpack errors", src: `
def f():
    a, b = [1, 2, 3]
`},
		{name: "unpack too few", src: `
def f():
    a, b, c = (1, 2)
`},
		{name: "attribute error with hint", src: `
def f():
    l = []
    l.apend(1)
`},
		{name: "slice error", src: `
def f():
    l = [1, 2]
    n = "x"
    return l[1:n]
`},
		{name: "duplicate key", src: `
def f():
    k = 1
    return {k: 1, 1: 2}
`},
		{name: "index errors", src: `
def f():
    return [1][1]
`},
		{name: "dict key error", src: `
def f():
    d = {"a": 1}
    return d["b"]
`},
		{name: "builtin error traceback", src: `
def f():
    x = int("zz")
`},
		{name: "print", src: `
def f():
    for i in range(3):
        print("line", i)
`},
		{name: "global read before assignment", src: `
def f():
    return G
x = f() if False else 0
G = 1
`},
		{name: "not in and conditions", src: `
def f():
    r = []
    for i in range(6):
        if not (i in [1, 2]) and i not in (4,) or i == 5:
            r.append(i)
    return r, 3 if r else 4, r and 1, [] or 2, not r
`},
		{name: "nested def falls back", src: `
def f():
    def g():
        return 1
    return g()
`, vm: true},
		{name: "lambda falls back", src: `
def f():
    return (lambda: 2)()
`, vm: true},
		{name: "dict |=", src: `
def f():
    d = {}
    d |= {1: 2}
    e = d
    e |= {3: 4, 1: 0}
    s = set([1])
    s |= set([2])
    return d, e, s
`},
		{name: "frozen dict |=", src: `
D = {1: 2}
def f():
    D |= {}
`},
		{name: "dict |= during iteration", src: `
def f():
    d = {1: 2}
    for k in d:
        d |= {5: 6}
`},
		{name: "closure called compiled", src: `
def mk():
    n = 3
    return lambda x: x * n
F = mk()
def f():
    return F(4)
`},
		{name: "deep recursion", src: `
def r(n):
    return 0 if n == 0 else 1 + r(n - 1)
def f():
    return r(5000)
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compiled := same(t, tc.src, tc.args...)
			assert.Equal(t, !tc.vm, compiled, "compiled")
		})
	}
}

func TestMaxSteps(t *testing.T) {
	src := `
def f():
    i = 0
    while True:
        i += 1
`
	for _, compiled := range []bool{false, true} {
		out, _ := outcome(t, src, compiled, 100000)
		assert.Contains(t, out, "Starlark computation cancelled: too many steps", "compiled=%v", compiled)
		assert.Contains(t, out, "test.star:", "compiled=%v", compiled)
	}
}

// TestCancel: a compiled busy loop stops when its thread is cancelled
// from another goroutine, with the VM's message and a position in the loop.
func TestCancel(t *testing.T) {
	for _, src := range []string{`
def f():
    i = 0
    while True:
        i += 1
`, `
def f():
    n = 0
    for i in range(1 << 40):
        n += i
`, `
def g(x):
    return x + 1
def f():
    n = 0
    while True:
        n = g(n)
`, `
def f():
    return [x for x in range(1 << 40)]
`} {
		f, err := dialect.Parse("test.star", src, 0)
		require.NoError(t, err)
		prog, err := starlark.FileProgram(f, starlark.StringDict{}.Has)
		require.NoError(t, err)
		comp := compile.New()
		comp.AddFile(prog, f)
		th := &starlark.Thread{}
		g, err := prog.Init(th, nil)
		require.NoError(t, err)
		fn := comp.Callable(g["f"])
		_, isFunc := fn.(*starlark.Function)
		require.False(t, isFunc)
		done := make(chan error)
		go func() {
			_, err := starlark.Call(th, fn, nil, nil)
			done <- err
		}()
		th.Cancel("stop")
		err = <-done
		require.Error(t, err)
		assert.Contains(t, err.Error(), "Starlark computation cancelled: stop")
		var ee *starlark.EvalError
		require.ErrorAs(t, err, &ee)
		assert.Contains(t, ee.Backtrace(), "test.star:")
	}
}

func TestInlineBuiltins(t *testing.T) {
	for _, src := range []string{`
def f():
    d = {1: 2}
    return d.get(1), d.get(3), d.get(3, "x"), str(1), str("s"), str(1.5), len("abc"), len({}), len((1,))
`, `
def f():
    return {}.get([])
`, `
def f():
    return {}.get()
`, `
def f():
    return str(1, 2)
`, `
def f():
    return len(1)
`, `
def f():
    l = [1]
    for x in l:
        l.append(2)
`} {
		assert.True(t, same(t, src))
	}
}

// TestStackOverflow: unbounded recursion fails as on the VM, and the
// frames reused by the failed calls hold no stale arguments afterwards.
func TestStackOverflow(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 frames")
	}
	src := `
def r(n):
    return r(n + 1)
def g(a, b=None):
    if b == None:
        return a
    return b
def f():
    x = None
    for i in range(2):
        if i == 1:
            x = g(7)
        else:
            r(0)
    return x
`
	for _, compiled := range []bool{false, true} {
		out, _ := outcome(t, src, compiled, 0)
		assert.Contains(t, out, "Starlark stack overflow", "compiled=%v", compiled)
	}
}
