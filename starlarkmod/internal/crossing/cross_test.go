package crossing

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

var testOptions = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}

// load runs src as a module whose analysis c knows, and returns its globals.
func load(t testing.TB, c *Checker, src string) starlark.StringDict {
	f, prog, err := starlark.SourceProgramOptions(testOptions, "test.star", src, starlark.Universe.Has)
	require.NoError(t, err)
	c.Add(prog, Analyze(f))
	th := &starlark.Thread{Name: "test"}
	g, err := prog.Init(th, nil)
	require.NoError(t, err)
	c.Finish(prog)
	return g
}

// opaque is a host value that does not say how it crosses.
type opaque struct{ frozen bool }

func (o *opaque) String() string        { return "<opaque>" }
func (o *opaque) Type() string          { return "opaque" }
func (o *opaque) Freeze()               { o.frozen = true }
func (o *opaque) Truth() starlark.Bool  { return true }
func (o *opaque) Hash() (uint32, error) { return 0, nil }

// holder is a host value that crosses with what it holds.
type holder struct {
	held   []starlark.Value
	refuse string
	frozen bool
}

func (h *holder) String() string        { return "<holder>" }
func (h *holder) Type() string          { return "holder" }
func (h *holder) Freeze()               { h.frozen = true }
func (h *holder) Truth() starlark.Bool  { return true }
func (h *holder) Hash() (uint32, error) { return 0, nil }
func (h *holder) Cross(yield func(starlark.Value) error) error {
	if h.refuse != "" {
		return fmt.Errorf("%s", h.refuse)
	}
	for _, v := range h.held {
		if err := yield(v); err != nil {
			return err
		}
	}
	return nil
}

func list(vs ...starlark.Value) *starlark.List { return starlark.NewList(vs) }

func dict(kvs ...starlark.Value) *starlark.Dict {
	d := starlark.NewDict(len(kvs) / 2)
	for i := 0; i < len(kvs); i += 2 {
		if err := d.SetKey(kvs[i], kvs[i+1]); err != nil {
			panic(err)
		}
	}
	return d
}

func TestRefusals(t *testing.T) {
	i := starlark.MakeInt
	tests := []struct {
		name string
		v    starlark.Value
		err  string
	}{
		{"host value", &opaque{}, `op: cannot pass a opaque to another thread: its Go type *crossing.opaque does not say how it crosses`},
		{"nested path", list(i(0), i(1), i(2), dict(starlark.String("r"), &opaque{})),
			`op: in list element 3: in dict value for key "r": cannot pass a opaque to another thread`},
		{"tuple and struct", starlark.Tuple{starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{"x": &opaque{}})},
			`op: in tuple element 0: in struct field x: cannot pass a opaque`},
		{"crosser refuses", list(&holder{refuse: "holder is bound to its thread; make another"}),
			`op: in list element 0: holder is bound to its thread; make another`},
		{"crosser holds a host value", &holder{held: []starlark.Value{&opaque{}}},
			`op: in <holder>: cannot pass a opaque`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Checker
			err := c.Cross(nil, "op", false, tt.v)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
		})
	}
}

func TestCrosserIsWalkedAndFrozen(t *testing.T) {
	var c Checker
	inner := list(starlark.MakeInt(1))
	h := &holder{held: []starlark.Value{inner}}
	require.NoError(t, c.Cross(nil, "op", false, list(h)))
	assert.True(t, h.frozen)
	assert.Error(t, inner.Append(starlark.None), "what a Crosser yields is frozen")
}

// TestDeep: a value nested three million deep crosses without recursion
// on the Go stack (which would end in a fatal stack overflow).
func TestDeep(t *testing.T) {
	const depth = 3_000_000
	var v starlark.Value = list()
	innermost := v.(*starlark.List)
	for range depth {
		v = list(v)
	}
	var c Checker
	require.NoError(t, c.Cross(nil, "op", true, v))
	assert.Error(t, innermost.Append(starlark.None))

	// Freeze alone, as at the end of a module, likewise (dicts are slower
	// to build: a tenth of the depth).
	v = list()
	innermost = v.(*starlark.List)
	for range depth / 10 {
		v = dict(starlark.MakeInt(1), v)
	}
	Freeze(v)
	assert.Error(t, innermost.Append(starlark.None))
}

func TestCycles(t *testing.T) {
	var c Checker
	// A list containing itself.
	l := list(starlark.MakeInt(1))
	require.NoError(t, l.Append(l))
	require.NoError(t, c.Cross(nil, "op", false, l))
	assert.Error(t, l.Append(starlark.None))

	// a = [x, deep] and x = [a]: the cycle is entered at a, and frozen only
	// once deep is: freezing x first would make a's Freeze recurse all
	// the way down deep.
	var deep starlark.Value = list()
	for range 200_000 {
		deep = list(deep)
	}
	a, x := list(), list()
	require.NoError(t, x.Append(a))
	require.NoError(t, a.Append(x))
	require.NoError(t, a.Append(deep))
	d := dict(starlark.String("a"), a)
	require.NoError(t, d.SetKey(starlark.String("d"), d))
	require.NoError(t, c.Cross(nil, "op", false, d))
	for _, v := range []*starlark.List{a, x} {
		assert.Error(t, v.Append(starlark.None))
	}
}

func TestFunctions(t *testing.T) {
	var c Checker
	g := load(t, &c, `
def outer():
    def f(n):
        return 0 if n == 0 else f(n - 1)
    return f

recursive = outer()
state = []

def appends(x):
    state.append(x)

def pass_through(fn):
    return fn
`)
	// A function that captures itself crosses on its own...
	require.NoError(t, c.Cross(nil, "op", true, g["recursive"]))
	// ...but a list holding it cannot be frozen.
	err := c.Cross(nil, "op", true, list(g["recursive"]))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "op: cannot freeze this list: it holds a function that refers to itself")

	require.NoError(t, c.Cross(nil, "op", true, g["appends"]))
	assert.Error(t, g["state"].(*starlark.List).Append(starlark.None), "a global a crossing function reads is frozen")

	// A global that holds a host value is refused, with the path.
	c2 := Checker{}
	g2 := starlark.StringDict{"host": &opaque{}}
	f, prog, err := starlark.SourceProgramOptions(testOptions, "h.star", "def reads():\n    return host\n", g2.Has)
	require.NoError(t, err)
	c2.Add(prog, Analyze(f))
	m, err := prog.Init(&starlark.Thread{}, g2)
	require.NoError(t, err)
	err = c2.Cross(nil, "op", false, m["reads"])
	require.Error(t, err)
	assert.Contains(t, err.Error(), "op: in host read by function reads (h.star:1:1): cannot pass a opaque")
}

func TestFreezeTerminatesOnSelfCapture(t *testing.T) {
	var c Checker
	g := load(t, &c, `
def outer():
    def f(n):
        return 0 if n == 0 else f(n - 1)
    return f
box = [outer()]
`)
	vs := make([]starlark.Value, 0, len(g))
	for _, v := range g {
		vs = append(vs, v)
	}
	Freeze(vs...) // returns; box stays unfrozen: it cannot be frozen
}
