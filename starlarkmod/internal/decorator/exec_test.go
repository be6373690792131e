package decorator

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// builtins returns Go decorators: register records function names,
// plus1 wraps a function to add 1 to its result, and fail always fails.
func builtins(registered *[]string) starlark.StringDict {
	return starlark.StringDict{
		"register": starlark.NewBuiltin("register", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var fn starlark.Callable
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &fn); err != nil {
				return nil, err
			}
			*registered = append(*registered, fn.Name())
			return fn, nil
		}),
		"plus1": starlark.NewBuiltin("plus1", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var fn starlark.Callable
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &fn); err != nil {
				return nil, err
			}
			return starlark.NewBuiltin("plus1("+fn.Name()+")", func(thread *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				v, err := starlark.Call(thread, fn, args, kwargs)
				if err != nil {
					return nil, err
				}
				return starlark.Binary(syntax.PLUS, v, starlark.MakeInt(1))
			}), nil
		}),
		"fail": starlark.NewBuiltin("fail", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return nil, errors.New("boom")
		}),
	}
}

// run parses, compiles and executes src as file t.star.
func run(t *testing.T, src string) (starlark.StringDict, []string, error) {
	t.Helper()
	var registered []string
	predeclared := builtins(&registered)
	f, err := Parse(testOpts(), "t.star", []byte(src), 0)
	require.NoError(t, err)
	prog, err := starlark.FileProgram(f, predeclared.Has)
	if err != nil {
		return nil, nil, err
	}
	globals, err := prog.Init(&starlark.Thread{Name: "test"}, predeclared)
	return globals, registered, err
}

func TestExec(t *testing.T) {
	src := `
def twice(f):
    def twice_wrapper(*args):
        return f(f(*args))
    return twice_wrapper

def times(n):
    def decorate(f):
        def times_wrapper(x):
            for _ in range(n):
                x = f(x)
            return x
        return times_wrapper
    return decorate

lib = {"twice": twice}

@register
@plus1
@twice
def inc(x):
    return x + 1

@times(3)
@lib["twice"]
def double(x):  # applied 6 times
    return 2 * x

def make():
    @plus1
    def local(x):
        return -x
    return local

if True:
    @register
    def cond(): return "cond"

results = [inc(1), double(1), make()(5), cond(), str(inc)]
`
	globals, registered, err := run(t, src)
	require.NoError(t, err)
	assert.Equal(t, `[4, 64, -4, "cond", "<built-in function plus1(twice_wrapper)>"]`, globals["results"].String())
	assert.Equal(t, []string{"plus1(twice_wrapper)", "cond"}, registered)
}

func TestExecErrors(t *testing.T) {
	for _, test := range []struct {
		name, src, want string // want: the backtrace, or the compile error
	}{
		{
			name: "undefined decorator",
			src:  "x = 1\n\n  # comment\n@undefined_name\ndef f(): pass\n",
			want: "t.star:4:2: undefined: undefined_name",
		},
		{
			name: "undefined name in decorator arguments",
			src:  "def f():\n\t@register(\n\t\tñ=nope)\n\tdef g(): pass\n",
			want: "t.star:3:5: undefined: nope",
		},
		{
			name: "Starlark decorator fails",
			src:  "def bad(f):\n    return f // 0\n\n@register\n  # c\n@bad\ndef f(): pass\n",
			want: "Traceback (most recent call last):\n" +
				"  t.star:6:1: in <toplevel>\n" +
				"  t.star:2:14: in bad\n" +
				"Error: unknown binary op: function // int",
		},
		{
			name: "Go decorator fails",
			src:  "def outer():\n\t# é\n\t@register\n\t@fail\n\tdef f(): pass\nouter()\n",
			want: "Traceback (most recent call last):\n" +
				"  t.star:6:6: in <toplevel>\n" +
				"  t.star:4:2: in outer\n" +
				"Error in fail: boom",
		},
		{
			name: "decorator not callable",
			src:  "x = 'é'\n@register\n@x\ndef f(): pass\n",
			want: "Traceback (most recent call last):\n" +
				"  t.star:3:1: in <toplevel>\n" +
				"Error: invalid call of non-function (string)",
		},
		{
			name: "decorator factory fails",
			src:  "@register\n@plus1(1,\n       2 // 0)\ndef f(): pass\n",
			want: "Traceback (most recent call last):\n" +
				"  t.star:3:10: in <toplevel>\n" +
				"Error: floored division by zero",
		},
		{
			name: "decorated function fails",
			src: "def twice(f):\n    def wrapper(x):\n        return f(f(x))\n    return wrapper\n\n" +
				"@plus1\n@twice\ndef f(x):\n    return 10 // x\n\ny = f(0)\n",
			want: "Traceback (most recent call last):\n" +
				"  t.star:11:6: in <toplevel>\n" +
				"  <builtin>: in plus1(wrapper)\n" +
				"  t.star:3:19: in wrapper\n" +
				"  t.star:9:15: in f\n" +
				"Error: floored division by zero",
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			_, _, err := run(t, test.src)
			require.Error(t, err)
			var evalErr *starlark.EvalError
			if errors.As(err, &evalErr) {
				assert.Equal(t, test.want, evalErr.Backtrace())
			} else {
				assert.Equal(t, test.want, err.Error())
			}
		})
	}
}

// TestExecMatchesHandwritten checks that a decorated file behaves like
// the same file with the assignment written out by hand.
func TestExecMatchesHandwritten(t *testing.T) {
	decorated := "@plus1\n@register\ndef f(x):\n    return x * 10\nr = f(4)\n"
	handwritten := "def f(x):\n    return x * 10\nf = plus1(register(f))\nr = f(4)\n"
	g1, reg1, err1 := run(t, decorated)
	g2, reg2, err2 := run(t, handwritten)
	require.NoError(t, err1)
	require.NoError(t, err2)
	assert.Equal(t, fmt.Sprint(g2), fmt.Sprint(g1))
	assert.Equal(t, reg2, reg1)
}
