package portable

import (
	"math/big"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/lib/json"
	"go.starlark.net/lib/math"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

var testModules = map[string]starlark.StringDict{
	"json": withSelf(json.Module),
	"math": math.Module.Members,
	"time": startime.Module.Members,
}

// withSelf returns m's members plus m itself under its name, as
// semisync's load("json", "json") binds the module.
func withSelf(m *starlarkstruct.Module) starlark.StringDict {
	d := starlark.StringDict{m.Name: m}
	for k, v := range m.Members {
		d[k] = v
	}
	return d
}

func testEnv(files map[string][]byte, pre starlark.StringDict) *Env {
	return &Env{
		Predeclared: pre,
		Load:        testLoad,
		Files: func(h string) ([]byte, error) {
			if t, ok := files[h]; ok {
				return t, nil
			}
			return nil, assert.AnError
		},
	}
}

func eval(t *testing.T, expr string) starlark.Value {
	t.Helper()
	g := run(t, "values.star", "x = "+expr+"\n", nil)
	return g["x"]
}

func TestValueRoundTrip(t *testing.T) {
	big1, _ := new(big.Int).SetString("-123456789012345678901234567890", 10)
	for _, tc := range []struct {
		name string
		v    starlark.Value
	}{
		{"none", starlark.None},
		{"true", starlark.True},
		{"false", starlark.False},
		{"int", starlark.MakeInt(-42)},
		{"int64max", starlark.MakeInt64(1<<63 - 1)},
		{"bigint", starlark.MakeBigInt(big1)},
		{"float", starlark.Float(3.25)},
		{"string", starlark.String("héllo\x00")},
		{"bytes", starlark.Bytes("\xff\x00b")},
		{"tuple", starlark.Tuple{starlark.MakeInt(1), starlark.String("a")}},
		{"list", eval(t, "[1, [2, 3], (4,)]")},
		{"dict", eval(t, `{"b": 1, "a": [2], 3: None}`)},
		{"set", eval(t, `set([3, 1, 2])`)},
		{"range", eval(t, `range(1, 10, 3)`)},
		{"range1", eval(t, `range(5)`)},
		{"struct", starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{"b": starlark.MakeInt(1), "a": starlark.String("x")})},
		{"time", startime.Time(mustTime(t))},
		{"duration", startime.Duration(1500000000)},
		{"universe builtin", starlark.Universe["len"]},
		{"module", &starlarkstruct.Module{Name: "m", Members: starlark.StringDict{"k": starlark.MakeInt(1), "f": starlark.Universe["str"]}}},
		{"cycle", eval(t, "[1]\nx.append(x)\nx = x")},
		{"shared", eval(t, "[1]\nx = [x, x, (x,)]")},
		{"method", eval(t, `",".join`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := EncodeValue(tc.v)
			require.NoError(t, err)
			got, err := DecodeValue(data)
			require.NoError(t, err)
			eq, err := starlark.Equal(tc.v, got)
			identity := false // compared by identity: compare their text
			switch tc.v.(type) {
			case *starlark.Builtin, *starlarkstruct.Module:
				identity = true
			}
			if !identity && err == nil {
				assert.True(t, eq, "got %s, want %s", got, tc.v)
			} else {
				assert.Equal(t, tc.v.String(), got.String())
			}
			assert.Equal(t, tc.v.Type(), got.Type())
			data2, err := EncodeValue(got)
			require.NoError(t, err)
			assert.Equal(t, data, data2, "re-encoding the decoded value gives the same bytes")
		})
	}
}

func mustTime(t *testing.T) startime.Time {
	v := eval(t, "1")
	_ = v
	th := &starlark.Thread{}
	tv, err := starlark.Call(th, startime.Module.Members["from_timestamp"], starlark.Tuple{starlark.MakeInt(1700000000), starlark.MakeInt(123)}, nil)
	require.NoError(t, err)
	return tv.(startime.Time)
}

func TestFuncRoundTrip(t *testing.T) {
	src := `
load("json", "json")
load("math", "sqrt")
K = 10
TABLE = {"a": [1, 2]}

def helper(x):
    return x * K

def f(x, y=2, *args, z=TABLE, **kw):
    return helper(x) + y + len(z["a"]) + int(sqrt(16)) + len(json.encode([x]))

def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)

def outer(a):
    b = a * 2
    def inner(c):
        return a + b + c + K
    return inner

inner = outer(1)
lam = lambda x: x + K
`
	g := run(t, "prog.star", src, nil)
	for _, tc := range []struct {
		name string
		fn   string
		args starlark.Tuple
		want string
	}{
		{"plain", "helper", starlark.Tuple{starlark.MakeInt(3)}, "30"},
		{"defaults, globals, loads", "f", starlark.Tuple{starlark.MakeInt(1)}, "21"},
		{"recursive", "fib", starlark.Tuple{starlark.MakeInt(10)}, "55"},
		{"closure", "inner", starlark.Tuple{starlark.MakeInt(5)}, "18"},
		{"lambda", "lam", starlark.Tuple{starlark.MakeInt(5)}, "15"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := EncodeFunc(g[tc.fn], ByFile)
			require.NoError(t, err)
			assert.Len(t, enc.Files, 1)
			fn, err := DecodeFuncEnv(enc.Data, testEnv(enc.Files, nil))
			require.NoError(t, err)
			th := &starlark.Thread{}
			v, err := starlark.Call(th, fn, tc.args, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, v.String())
			want, err := starlark.Call(th, g[tc.fn].(starlark.Callable), tc.args, nil)
			require.NoError(t, err)
			assert.Equal(t, want.String(), v.String())
		})
	}
}

func TestArgsRoundTrip(t *testing.T) {
	g := run(t, "args.star", "def f(x):\n    return x * 2\n\nL = [1, {\"k\": f}]\n", nil)
	args := starlark.Tuple{starlark.MakeInt(1), g["L"]}
	kwargs := []starlark.Tuple{{starlark.String("z"), starlark.String("s")}, {starlark.String("fn"), g["f"]}}
	data, err := EncodeArgs(args, kwargs, ByFile)
	require.NoError(t, err)
	// Function texts travel inline: nothing else is needed to decode.
	a, kw, err := DecodeArgs(data)
	require.NoError(t, err)
	assert.Equal(t, args.String(), a.String())
	require.Len(t, kw, 2)
	assert.Equal(t, `("z", "s")`, kw[0].String())
	v, err := starlark.Call(&starlark.Thread{}, kw[1][1].(starlark.Callable), starlark.Tuple{starlark.MakeInt(21)}, nil)
	require.NoError(t, err)
	assert.Equal(t, "42", v.String())
	assert.True(t, a[1].(*starlark.List).Index(1).(*starlark.Dict).Len() == 1)
	assert.Error(t, a[1].(*starlark.List).Append(starlark.None), "decoded values are frozen")
}

func TestBuiltinRootsAndBySourceDecode(t *testing.T) {
	enc, err := EncodeFunc(starlark.Universe["len"], ByFile)
	require.NoError(t, err)
	fn, err := DecodeFunc(enc.Data, nil, nil)
	require.NoError(t, err)
	assert.Same(t, starlark.Universe["len"], fn)
	assert.Equal(t, []Reached{{Kind: "builtin", Name: "len"}}, enc.Reached)

	g := run(t, "bs.star", "def f():\n    return 1\n", nil)
	key, err := EncodeFunc(g["f"], BySource)
	require.NoError(t, err)
	_, err = DecodeFunc(key.Data, nil, nil)
	assert.ErrorContains(t, err, "BySource is a key")

	_, err = EncodeFunc(starlark.NewBuiltin("host.thing", nil), ByFile)
	var npe *NotPortableError
	require.ErrorAs(t, err, &npe)
	assert.Contains(t, npe.What, "builtin host.thing")
}
