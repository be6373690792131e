package starlarkmod_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarktest"

	"github.com/semisync/semisync/starlarkmod"
)

// widget is a host value whose type says nothing about crossing.
type widget struct{ n int }

func (w *widget) String() string        { return "<widget>" }
func (w *widget) Type() string          { return "widget" }
func (w *widget) Freeze()               {}
func (w *widget) Truth() starlark.Bool  { return true }
func (w *widget) Hash() (uint32, error) { return uint32(w.n), nil }

// gadget is a host value that crosses, holding a Starlark list.
type gadget struct{ held *starlark.List }

func (g *gadget) String() string        { return "<gadget>" }
func (g *gadget) Type() string          { return "gadget" }
func (g *gadget) Freeze()               {}
func (g *gadget) Truth() starlark.Bool  { return true }
func (g *gadget) Hash() (uint32, error) { return 0, nil }
func (g *gadget) Cross(yield func(starlark.Value) error) error {
	return yield(g.held)
}

var _ starlarkmod.Crosser = (*gadget)(nil)

// TestHostValuesCross: a host value crosses only if its type implements
// Crosser; others are refused at every crossing point, with the path.
func TestHostValuesCross(t *testing.T) {
	held := starlark.NewList([]starlark.Value{starlark.MakeInt(1)})
	host := starlark.StringDict{"widget": &widget{}, "gadget": &gadget{held: held},
		"make_widget": starlark.NewBuiltin("make_widget", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			return &widget{}, nil
		})}
	src := `
load("assert.star", "assert")
load("host", "widget", "gadget", "make_widget")
load("multiprocessing", "Manager")

def uses_widget():
    return str(widget)

W = "cannot pass a widget to another thread: its Go type \\*starlarkmod_test.widget does not say how it crosses"
assert.fails(lambda: future(len)(widget), W)
assert.fails(lambda: future(len)([1, {"k": widget}]), 'len: in tuple element 0: in list element 1: in dict value for key "k": ' + W)
# (load binds file-local names, which functions capture like variables)
assert.fails(lambda: future(uses_widget)(), "in variable widget captured by function uses_widget .*" + W)
assert.fails(lambda: job(str, [widget]).run(), W)
assert.fails(lambda: Manager().list().append(widget), W)
assert.fails(lambda: future(make_widget)().result(), "return: " + W)
assert.fails(lambda: job(lambda x: make_widget(), [1]).run(), "return: " + W)

# A Crosser crosses, and what it holds is frozen.
assert.eq(future(lambda g: str(g))(gadget).result(), "<gadget>")
print("host ok")
`
	for _, sequential := range []bool{false, true} {
		assertModule, err := starlarktest.LoadAssertModule()
		require.NoError(t, err)
		out, err := exec(t, src, starlarkmod.Options{
			Sequential: sequential,
			Modules:    map[string]starlark.StringDict{"assert.star": assertModule, "host": host},
			ThreadInit: func(th *starlark.Thread) { starlarktest.SetReporter(th, t) },
		})
		require.NoError(t, err, backtrace(err))
		require.Equal(t, "host ok\n", out)
		require.Error(t, held.Append(starlark.None), "what a Crosser holds is frozen when it crosses")
	}
}
