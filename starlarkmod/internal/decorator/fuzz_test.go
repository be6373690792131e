package decorator

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"x = 1\n",
		"@dec\ndef f(x):\n    return x\n",
		"@a.b.c(1, k='v')\n@ d()\n@e(f)(g)\ndef f(): pass\n",
		"@outer\ndef f():\n    @inner(1)\n    def g():\n        @innermost\n        def h(): pass\n    return g\n",
		"if x:\n    @a\n    def f(): pass\nelse:\n    @c\n    def f(): pass\nfor i in z:\n    @d\n    def g(): pass\nwhile w:\n    @e\n    def h(): pass\n",
		"@semisync(callback=output,\n           dependencies=[a, b])  # done\ndef f(a, b):\n    pass\n",
		"@d('''x\n)''', \"\"\"\n@y\"\"\", r'\\'', b\"#(\", rb'[')\ndef f(): pass\n",
		"@a  # c1\n# c2\n\n  # c3\n@b # (\n\n# ]\ndef f(): pass\n",
		"@a.\\\n   b\ndef f(): pass\n",
		"def outer():\n\tx = 'héllo'\n\t@dec('é', 'ü', ñ)  # ö\n\t@\tdec2\n\tdef f(): pass\n",
		"@a(1,\r\n   2)\r\n@b\rdef f(): pass\r\n",
		"s = \"@x\"\nt = '@y'\nu = r\"\"\"\n@z\n\"\"\"\n",
		"x = 1 @ 2\n",
		"f(x,\n  @a)\n",
		"@a\nx = 1\n",
		"def f():\n    @a\ndef g(): pass\n",
		"@a b\ndef f(:\n",
		"x = 1\x00\n@a\n",
		"@a('\xff')\ndef f(): return '\xfe'\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(checkParse)
}

// checkParse checks the properties of Parse(src) that FuzzParse fuzzes.
func checkParse(t *testing.T, src []byte) {
	opts := testOpts()
	file, err := Parse(opts, "fuzz.star", src, 0)
	want, wantErr := opts.Parse("fuzz.star", src, 0)
	if wantErr == nil || !bytes.ContainsRune(src, '@') {
		// No decorator can be involved: the result must be exactly opts.Parse's.
		require.Equal(t, wantErr, err)
		require.Equal(t, want, file)
		return
	}
	if err != nil {
		require.Nil(t, file)
		var e syntax.Error
		require.True(t, errors.As(err, &e), "%T: %v", err, err)
		assert.Equal(t, "fuzz.star", e.Pos.Filename())
		assert.True(t, e.Pos.Line >= 1 && e.Pos.Col >= 1, "%v", err)
		return
	}
	blanked := checkInvariants(t, opts, src, file)

	withComments, err := Parse(opts, "fuzz.star", src, syntax.RetainComments)
	require.NoError(t, err)
	norm := normalize(src)
	assert.Equal(t, describe(norm, file), describe(norm, withComments))

	// If the resolver and compiler accept the tree without decorators, the
	// only errors in the rewritten tree are within decorator expressions.
	all := func(string) bool { return true }
	if _, err := starlark.FileProgram(blanked, all); err == nil {
		ranges := decoratorRanges(file)
		if _, err = starlark.FileProgram(file, all); err != nil {
			var list resolve.ErrorList
			require.True(t, errors.As(err, &list), "%T: %v", err, err)
			for _, e := range list {
				assert.True(t, slices.ContainsFunc(ranges, func(r [2]syntax.Position) bool {
					return !before(e.Pos, r[0]) && before(e.Pos, r[1])
				}), "%v is not within a decorator", e)
			}
		}
	}
}

// decoratorRanges returns the start and end of each decorator expression in
// the synthesized statements of f.
func decoratorRanges(f *syntax.File) [][2]syntax.Position {
	var ranges [][2]syntax.Position
	syntax.Walk(f, func(n syntax.Node) bool {
		if call, ok := n.(*syntax.CallExpr); ok && before(call.Lparen, syntax.Start(call.Fn)) {
			ranges = append(ranges, [2]syntax.Position{call.Lparen, exprEnd(call.Fn)})
		}
		return true
	})
	return ranges
}
