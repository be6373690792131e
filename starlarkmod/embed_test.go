package starlarkmod_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
)

func TestConvertRoundTrip(t *testing.T) {
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	tests := []struct {
		name string
		src  string // a Starlark expression
		want any
	}{
		{"none", "None", nil},
		{"bool", "True", true},
		{"int", "-42", int64(-42)},
		{"big int", "123456789012345678901234567890", huge},
		{"float", "2.5", 2.5},
		{"string", `"héllo"`, "héllo"},
		{"bytes", `b"\x00\xff"`, []byte{0, 0xff}},
		{"list", `[1, "a", [None]]`, []any{int64(1), "a", []any{nil}}},
		{"tuple", `(1, 2)`, []any{int64(1), int64(2)}},
		{"dict of strings", `{"a": 1, "b": [2]}`, map[string]any{"a": int64(1), "b": []any{int64(2)}}},
		{"dict of ints", `{1: "x", 2: "y"}`, map[any]any{int64(1): "x", int64(2): "y"}},
		{"set", `set([3, 1, 2])`, []any{int64(3), int64(1), int64(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := starlark.EvalOptions(starlarkmod.FileOptions(), &starlark.Thread{}, "expr", tt.src, nil)
			require.NoError(t, err)
			got, err := starlarkmod.ToGo(v)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			back, err := starlarkmod.FromGo(got)
			require.NoError(t, err)
			if _, isTuple := v.(starlark.Tuple); !isTuple {
				if _, isSet := v.(*starlark.Set); !isSet {
					eq, err := starlark.Equal(v, back)
					require.NoError(t, err)
					assert.True(t, eq, "%s came back as %s", v, back)
				}
			}
		})
	}
}

func TestConvertErrors(t *testing.T) {
	thread := &starlark.Thread{}
	v, err := starlark.EvalOptions(starlarkmod.FileOptions(), thread, "expr", `{(1, 2): "t"}`, nil)
	require.NoError(t, err)
	_, err = starlarkmod.ToGo(v)
	assert.EqualError(t, err, "in dict key (1, 2): a tuple key has no Go map key form")

	v, err = starlark.EvalOptions(starlarkmod.FileOptions(), thread, "expr", `[1, len]`, nil)
	require.NoError(t, err)
	_, err = starlarkmod.ToGo(v)
	assert.EqualError(t, err, "in list element 1: cannot convert a builtin_function_or_method to a Go value")

	l := starlark.NewList(nil)
	l.Append(l) //nolint:errcheck
	_, err = starlarkmod.ToGo(l)
	assert.EqualError(t, err, "in list element 0: a list that contains itself")

	_, err = starlarkmod.FromGo(struct{ X int }{1})
	assert.EqualError(t, err, "cannot convert a Go struct { X int } to a Starlark value")
	_, err = starlarkmod.FromGo(map[string]any{"f": func() {}})
	assert.EqualError(t, err, `in map value for key f: cannot convert a Go func() to a Starlark value`)

	s, err := starlarkmod.FromGo(map[int]struct{}{2: {}, 1: {}})
	require.NoError(t, err)
	assert.Equal(t, "set([1, 2])", s.String())
	n, err := starlarkmod.FromGo([]uint8{1})
	require.NoError(t, err)
	assert.Equal(t, `b"\x01"`, n.String())
}

// TestExecSources: a source may be a string, bytes or a reader; anything
// else is a runner error.
func TestExecSources(t *testing.T) {
	var out bytes.Buffer
	in := starlarkmod.New(starlarkmod.Options{Stdout: &out})
	defer in.Close()
	ctx := context.Background()
	for _, src := range []any{"print(1)", []byte("print(2)"), strings.NewReader("print(3)")} {
		_, err := in.Exec(ctx, "x.star", src, nil)
		require.NoError(t, err)
	}
	assert.Equal(t, "1\n2\n3\n", out.String())
	_, err := in.Exec(ctx, "x.star", 42, nil)
	assert.EqualError(t, err, "semisync: invalid source of x.star: got int, want string, []byte, io.Reader or nil")
}

// TestHostPanic: a Go builtin of the host that panics fails the script
// with a Starlark error naming it, in a task and on the main thread; the
// program goes on.
func TestHostPanic(t *testing.T) {
	boom := starlark.NewBuiltin("host.boom", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		var s []int
		return starlark.MakeInt(s[len(s)]), nil // out of range: panics
	})
	for _, tt := range []struct{ name, src string }{
		{"main thread", "boom()\n"},
		{"task", "def f(x):\n    boom()\njob(f, [1]).run()\n"},
		{"module", "load(\"host\", \"boom\")\nboom()\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := starlarkmod.New(starlarkmod.Options{Stderr: io.Discard, Modules: map[string]starlark.StringDict{"host": {"boom": boom}}})
			defer in.Close()
			_, err := in.Exec(context.Background(), "p.star", tt.src, starlark.StringDict{"boom": boom})
			require.Error(t, err)
			msg := starlarkmod.FormatError(err)
			assert.Contains(t, msg, "Error in host.boom: host.boom: the Go function panicked: runtime error: index out of range [0] with length 0 (a bug in the host program)")
			assert.Contains(t, msg, "Go stack:")
		})
	}
}

// TestWithhold: withheld builtins fail when called, also through load;
// a withheld module cannot be loaded.
func TestWithhold(t *testing.T) {
	in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Withhold: []string{"sleep", "json", "dispatcher"}})
	defer in.Close()
	ctx := context.Background()
	for _, tt := range []struct{ src, err string }{
		{"sleep(0)", "sleep: not available here"},
		{`load("time", "sleep")` + "\nsleep(0)", "sleep: not available here"},
		{`load("json", "encode")`, `cannot load json: module json is not available here: the program running this script withheld it`},
		{"dispatcher.send(1, 'm')", "dispatcher: not available here"},
		{"def f(x):\n    sleep(x)\njob(f, [0]).run()", "sleep: not available here"},
		{`load("concert.helpers", "dispatcher")` + "\ndispatcher()", "dispatcher: not available here"},
	} {
		_, err := in.Exec(ctx, "w.star", tt.src, nil)
		require.Error(t, err, tt.src)
		assert.Contains(t, err.Error(), tt.err, tt.src)
	}
	_, err := in.Exec(ctx, "ok.star", `load("time", "now")`+"\nprint(sum([1]))", nil)
	assert.NoError(t, err)
}

// TestCancellationErrors: whatever the script is doing when its context
// ends (a busy loop, a sleep, waiting for a task, background work at the
// end), errors.Is finds the context's error.
func TestCancellationErrors(t *testing.T) {
	scripts := map[string]string{
		"busy loop":  "while True:\n    pass\n",
		"sleep":      "sleep(3600)\n",
		"future":     "@future\ndef f():\n    sleep(3600)\nf().result()\n",
		"job":        "def f(x):\n    while True:\n        pass\njob(f, range(4)).run()\n",
		"background": "@future\ndef f():\n    sleep(3600)\nf()\n",
	}
	for name, src := range scripts {
		for _, seq := range []bool{false, true} {
			t.Run(name, func(t *testing.T) {
				in := starlarkmod.New(starlarkmod.Options{Sequential: seq, Stderr: io.Discard})
				defer in.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				_, err := in.Exec(ctx, "c.star", src, nil)
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				assert.NotErrorIs(t, err, context.Canceled)

				ctx, cancel = context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
				_, err = in.Exec(ctx, "c.star", src, nil)
				assert.ErrorIs(t, err, context.Canceled)
			})
		}
	}
	// A script's own error is not a cancellation.
	in := starlarkmod.New(starlarkmod.Options{})
	defer in.Close()
	_, err := in.Exec(context.Background(), "e.star", "1 // 0", nil)
	require.Error(t, err)
	assert.False(t, errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// TestCallCancelled: Interpreter.Call of a function that spins stops
// with the context.
func TestCallCancelled(t *testing.T) {
	in := starlarkmod.New(starlarkmod.Options{})
	defer in.Close()
	g, err := in.Exec(context.Background(), "f.star", "def spin(n):\n    while n > 0:\n        pass\n", nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = in.Call(ctx, g["spin"], starlark.Tuple{starlark.MakeInt(1)}, nil)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestExecFSRoot: loads from an FS stay under the main script's directory.
func TestExecFSRoot(t *testing.T) {
	fsys := fstest.MapFS{
		"app/main.star":    {Data: []byte(`load("../secret.star", "x")`)},
		"secret.star":      {Data: []byte("x = 1")},
		"app/nested.star":  {Data: []byte(`load("./sub/lib.star", "y")` + "\nprint(y)")},
		"app/sub/lib.star": {Data: []byte(`load("../other.star", "z")` + "\ny = z + 1")},
		"app/other.star":   {Data: []byte("z = 41")},
	}
	var out bytes.Buffer
	in := starlarkmod.New(starlarkmod.Options{Stdout: &out})
	defer in.Close()
	_, err := in.ExecFS(context.Background(), fsys, "app/main.star", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "secret.star is outside the script's root directory app")
	_, err = in.ExecFS(context.Background(), fsys, "app/nested.star", nil)
	require.NoError(t, err)
	assert.Equal(t, "42\n", out.String())
}

// bomb is a host value whose String method panics.
type bomb struct{}

func (bomb) String() string                         { panic("bomb.String") }
func (bomb) Type() string                           { return "bomb" }
func (bomb) Freeze()                                {}
func (bomb) Truth() starlark.Bool                   { return true }
func (bomb) Hash() (uint32, error)                  { return 0, nil }
func (bomb) Cross(func(starlark.Value) error) error { return nil }

// TestGoPanicAnywhere: a panic in Go code that is not a host builtin (a
// host value's method, called by a Starlark builtin), on the main thread,
// in a job item or in a future nobody waits for, is an error, not a crash.
func TestGoPanicAnywhere(t *testing.T) {
	for name, src := range map[string]string{
		"main thread": "print(b)\n",
		"job item":    "def f(x):\n    print(x)\njob(f, [b]).run()\n",
		"future":      "@future\ndef f(x):\n    print(x)\nf(b)\n",
	} {
		t.Run(name, func(t *testing.T) {
			in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: io.Discard})
			defer in.Close()
			_, err := in.Exec(context.Background(), "b.star", src, starlark.StringDict{"b": bomb{}})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "bomb.String")
		})
	}
}
