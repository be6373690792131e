package portable

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
)

// opaque is a host value that is not portable.
type opaque struct{}

func (opaque) String() string        { return "<opaque>" }
func (opaque) Type() string          { return "Manager list" }
func (opaque) Freeze()               {}
func (opaque) Truth() starlark.Bool  { return true }
func (opaque) Hash() (uint32, error) { return 0, nil }

// wrapper is a Portable host value, rebuilt by the predeclared "wrap".
type wrapper struct{ fn starlark.Callable }

func (w *wrapper) String() string        { return "<wrapper>" }
func (w *wrapper) Type() string          { return "wrapper" }
func (w *wrapper) Freeze()               {}
func (w *wrapper) Truth() starlark.Bool  { return true }
func (w *wrapper) Hash() (uint32, error) { return 0, nil }
func (w *wrapper) Name() string          { return w.fn.Name() }
func (w *wrapper) CallInternal(th *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	v, err := starlark.Call(th, w.fn, args, kwargs)
	if err != nil {
		return nil, err
	}
	return starlark.Tuple{starlark.String("wrapped"), v}, nil
}
func (w *wrapper) Portable() (string, starlark.Tuple, error) {
	return "wrap", starlark.Tuple{w.fn}, nil
}

var wrapBuiltin = starlark.NewBuiltin("wrap", func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	return &wrapper{args[0].(starlark.Callable)}, nil
})

func TestDecodedErrorsNameOriginalPositions(t *testing.T) {
	src := `
K = 0

def g(x):
    return x // K

def f(x):
    return g(x) + 1
`
	g := run(t, "dir/orig.star", src, nil)
	enc, err := EncodeFunc(g["f"], ByFile)
	require.NoError(t, err)
	fn, err := DecodeFuncEnv(enc.Data, testEnv(enc.Files, nil))
	require.NoError(t, err)
	_, err = starlark.Call(&starlark.Thread{}, fn, starlark.Tuple{starlark.MakeInt(1)}, nil)
	var ee *starlark.EvalError
	require.True(t, errors.As(err, &ee), "%v", err)
	_, want := starlark.Call(&starlark.Thread{}, g["f"].(starlark.Callable), starlark.Tuple{starlark.MakeInt(1)}, nil)
	assert.Equal(t, want.(*starlark.EvalError).Backtrace(), ee.Backtrace())
	assert.Contains(t, ee.Backtrace(), "dir/orig.star:8:13: in f")
	assert.Contains(t, ee.Backtrace(), "dir/orig.star:5:14: in g")
}

func TestUnboundGlobal(t *testing.T) {
	src := `
def f():
    return LATER

res = f
LATER = 1 if False else None
`
	// LATER is bound after f is encoded: encode in the middle by
	// removing it from the globals is not possible, so compile a file
	// where it is never bound at run time.
	src = strings.Replace(src, "LATER = 1 if False else None", "if False:\n    LATER = 1", 1)
	g := run(t, "u.star", src, nil)
	enc, err := EncodeFunc(g["f"], ByFile)
	require.NoError(t, err)
	fn, err := DecodeFuncEnv(enc.Data, testEnv(enc.Files, nil))
	require.NoError(t, err)
	_, err = starlark.Call(&starlark.Thread{}, fn, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "global variable LATER referenced before assignment")
}

func TestNotPortable(t *testing.T) {
	pre := starlark.StringDict{"counts": opaque{}}
	src := `
def uses(x):
    return [1, counts][x]

NESTED = [1, {"k": counts}]

def nested():
    return NESTED

def outer():
    c = counts
    def inner():
        return c
    return inner

def deflt(x=counts):
    return x

inner = outer()
`
	g := run(t, "np.star", src, pre)
	for _, tc := range []struct {
		fn, path, pos string
	}{
		{"uses", `"counts" of function uses`, "np.star:3:16"},
		{"nested", `global "NESTED" of function nested: in list element 1: in dict value for key "k"`, "np.star:8:12"},
		{"inner", `variable "c" captured by function inner`, "np.star:13:16"},
		{"deflt", `the default of parameter x of function deflt`, "np.star:16:11"},
	} {
		t.Run(tc.fn, func(t *testing.T) {
			for _, mode := range []Mode{ByFile, BySource} {
				_, err := EncodeFunc(g[tc.fn], mode)
				var npe *NotPortableError
				require.True(t, errors.As(err, &npe), "%v", err)
				assert.Equal(t, "Manager list", npe.What)
				assert.Equal(t, tc.path, npe.Path)
				assert.Equal(t, tc.pos, npe.Pos.String())
				assert.Equal(t, tc.pos+": "+tc.path+": Manager list cannot leave this process (it is not portable)", err.Error())
			}
		})
	}
	_, err := EncodeArgs(starlark.Tuple{starlark.MakeInt(1), starlark.NewList([]starlark.Value{opaque{}})}, nil, ByFile)
	assert.EqualError(t, err, "argument 2: in list element 0: Manager list cannot leave this process (it is not portable)")
}

func TestPortableHostValue(t *testing.T) {
	pre := starlark.StringDict{"wrap": wrapBuiltin}
	src := `
def fib(n):
    if n < 2:
        return n
    return fib(n - 1)[1] + fib(n - 2)[1]

fib = wrap(fib)

def f(n):
    return fib(n)
`
	g := run(t, "w.star", src, pre)
	want, err := starlark.Call(&starlark.Thread{}, g["f"].(starlark.Callable), starlark.Tuple{starlark.MakeInt(7)}, nil)
	require.NoError(t, err)
	for _, name := range []string{"f", "fib"} {
		enc, err := EncodeFunc(g[name], ByFile)
		require.NoError(t, err)
		fn, err := DecodeFuncEnv(enc.Data, testEnv(enc.Files, pre))
		require.NoError(t, err)
		got, err := starlark.Call(&starlark.Thread{}, fn, starlark.Tuple{starlark.MakeInt(7)}, nil)
		require.NoError(t, err)
		assert.Equal(t, want.String(), got.String())
		var kinds []string
		for _, r := range enc.Reached {
			kinds = append(kinds, r.Kind+":"+r.Name)
		}
		assert.Contains(t, kinds, "value:wrapper")
	}
}

func TestMutualRecursionAndSharing(t *testing.T) {
	src := `
SHARED = [1, 2]
CYCLE = [0]
CYCLE.append(CYCLE)

def even(n):
    return True if n == 0 else odd(n - 1)

def odd(n):
    return False if n == 0 else even(n - 1)

def f(n):
    return even(n), SHARED, BOTH, len(CYCLE[1][1])

BOTH = [SHARED, SHARED]
`
	g := run(t, "m.star", src, nil)
	enc, err := EncodeFunc(g["f"], ByFile)
	require.NoError(t, err)
	fn, err := DecodeFuncEnv(enc.Data, testEnv(enc.Files, nil))
	require.NoError(t, err)
	v, err := starlark.Call(&starlark.Thread{}, fn, starlark.Tuple{starlark.MakeInt(7)}, nil)
	require.NoError(t, err)
	assert.Equal(t, "(False, [1, 2], [[1, 2], [1, 2]], 2)", v.String())
	both := v.(starlark.Tuple)[2].(*starlark.List)
	assert.Same(t, both.Index(0), both.Index(1), "sharing survives")
	assert.Same(t, both.Index(0), v.(starlark.Tuple)[1])
}

func TestDeterministic(t *testing.T) {
	src := `
D = {"z": 1, "a": 2, "m": [3, set([5, 4])]}
S = set(["q", "b", "x"])

def h(x):
    return x

def f():
    return D, S, h, len, sorted
`
	var first *Func
	for i := range 20 {
		g := run(t, "det.star", src, nil)
		enc, err := EncodeFunc(g["f"], ByFile)
		require.NoError(t, err)
		if i == 0 {
			first = enc
			continue
		}
		assert.Equal(t, first.Data, enc.Data)
		assert.Equal(t, first.Sum, enc.Sum)
	}
}

// key returns the BySource key of the function name in src.
func key(t *testing.T, src, name string) [32]byte {
	t.Helper()
	g := run(t, "key.star", src, nil)
	enc, err := EncodeFunc(g[name], BySource)
	require.NoError(t, err)
	assert.Empty(t, enc.Files)
	return enc.Sum
}

func TestBySourceKeys(t *testing.T) {
	base := `
RATE = 3

def helper(x):
    return x * RATE

def other(y):
    return y - 1

def f(x):
    return helper(x) + 1
`
	k := key(t, base, "f")
	same := map[string]string{
		"other function edited": strings.Replace(base, "y - 1", "y - 2", 1),
		"lines inserted above":  "\n\n# a comment\nZ = 1\n" + base,
		"moved to the end":      strings.Replace(base, "def f(x):\n    return helper(x) + 1\n", "", 1) + "\ndef f(x):\n    return helper(x) + 1\n",
		"nested in an if":       strings.Replace(base, "def f(x):\n    return helper(x) + 1\n", "if True:\n    def f(x):\n        return helper(x) + 1\n", 1),
		"file renamed":          base,
	}
	for name, src := range same {
		t.Run("same/"+name, func(t *testing.T) { assert.Equal(t, k, key(t, src, "f")) })
	}
	changed := map[string]string{
		"function edited":      strings.Replace(base, "helper(x) + 1", "helper(x) + 2", 1),
		"callee edited":        strings.Replace(base, "x * RATE", "x * RATE * 1", 1),
		"global value changed": strings.Replace(base, "RATE = 3", "RATE = 4", 1),
		"callee renamed":       strings.Replace(strings.Replace(base, "def helper", "def helper2", 1), "return helper(x)", "return helper2(x)", 1),
		"parameter renamed":    strings.Replace(base, "def f(x):\n    return helper(x) + 1", "def f(z):\n    return helper(z) + 1", 1),
	}
	for name, src := range changed {
		t.Run("changed/"+name, func(t *testing.T) { assert.NotEqual(t, k, key(t, src, "f")) })
	}
}

func TestReached(t *testing.T) {
	src := `
load("json", "json")
load("time", "now")

def helper(x):
    print(x)
    return json.encode(x)

def f(x):
    return helper(x), now(), len(x)
`
	g := run(t, "r.star", src, nil)
	enc, err := EncodeFunc(g["f"], BySource)
	require.NoError(t, err)
	var names []string
	for _, r := range enc.Reached {
		names = append(names, r.Kind+":"+r.Name+"@"+r.Pos.String())
	}
	assert.Equal(t, []string{
		"function:f@r.star:9:1",
		"function:helper@r.star:10:12",
		"builtin:json.encode@r.star:7:16",
		"builtin:print@r.star:6:5",
		"builtin:time.now@r.star:10:23",
		"builtin:len@r.star:10:30",
	}, names)
}

// A decoded function encodes as the original did, in both modes: a
// worker computes the same cache keys, and can send the task on.
func TestDecodedReencodesTheSame(t *testing.T) {
	pre := starlark.StringDict{"wrap": wrapBuiltin}
	src := `
load("json", "json")
load("math", "sqrt")
K = [1, 2]

def outer(a):
    def inner(b=K):
        return a + len(b) + int(sqrt(4)) + len(json.encode(K))
    return inner

inner = outer(3)
lam = lambda x: x + K[0]

def fib(n):
    if n < 2:
        return (0, n)
    return (0, fib(n - 1)[1] + fib(n - 2)[1])

fib = wrap(fib)

def uses(x):
    return fib(x), inner(), lam(x), ",".join
`
	g := run(t, "re.star", src, pre)
	for _, name := range []string{"inner", "lam", "fib", "uses"} {
		t.Run(name, func(t *testing.T) {
			enc, err := EncodeFunc(g[name], ByFile)
			require.NoError(t, err)
			src, err := EncodeFunc(g[name], BySource)
			require.NoError(t, err)
			fn, err := DecodeFuncEnv(enc.Data, testEnv(enc.Files, pre))
			require.NoError(t, err)
			again, err := EncodeFunc(fn, ByFile)
			require.NoError(t, err)
			assert.Equal(t, enc.Data, again.Data)
			assert.Equal(t, enc.Files, again.Files)
			againSrc, err := EncodeFunc(fn, BySource)
			require.NoError(t, err)
			assert.Equal(t, src.Sum, againSrc.Sum)
		})
	}
}

// Decoding calls only the constructors it is given to rebuild host values.
func TestConstructorsAllowList(t *testing.T) {
	pre := starlark.StringDict{"wrap": wrapBuiltin}
	g := run(t, "ctor.star", "def f(x):\n    return x\n\nw = wrap(f)\n", pre)
	enc, err := EncodeFunc(g["w"], ByFile)
	require.NoError(t, err)
	env := testEnv(enc.Files, pre)
	env.Constructors = starlark.StringDict{}
	_, err = DecodeFuncEnv(enc.Data, env)
	assert.ErrorContains(t, err, "no predeclared wrap here to rebuild a host value")
	env.Constructors = pre
	_, err = DecodeFuncEnv(enc.Data, env)
	assert.NoError(t, err)
}
