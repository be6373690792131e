package decorator

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/syntax"
)

func TestParseWithoutDecorators(t *testing.T) {
	for _, src := range []string{
		"",
		"x = 1\n",
		"def f(a, b=2, *args, **kw):\n    return a\n",
		"s = \"@x\"\nt = '@y'\nu = r\"\"\"\n@z\n\"\"\"\nv = b'''\n  @w\n'''\n",
		"# @comment\nx = [\n    1,  # @c\n]\n",
		"x = 1 # trailing\n\n\ny = 2\r\nz = 3\r",
		"\tdef f():\n\t\treturn 'é'\n",
	} {
		opts := testOpts()
		want, wantErr := opts.Parse("t.star", src, syntax.RetainComments)
		got, err := Parse(opts, "t.star", []byte(src), syntax.RetainComments)
		assert.Equal(t, wantErr, err, "%q", src)
		assert.Equal(t, want, got, "%q", src)
	}
}

func TestParse(t *testing.T) {
	for _, test := range []struct {
		name, src string
		want      []string // synthesized assignments, see describe
	}{
		{
			name: "one",
			src:  "@dec\ndef f(x):\n    return x\n",
			want: []string{"1:1 f = dec(f)"},
		},
		{
			name: "multiple",
			src:  "x = 1\n@a\n@b\n@c\ndef f(): pass\ny = 2\n",
			want: []string{"2:1 f = a(b(c(f)))"},
		},
		{
			name: "called and dotted",
			src:  "@a.b.c(1, k='v')\n@ d()\n@e(f)(g)\ndef f(): pass\n",
			want: []string{"1:1 f = a.b.c(1, k='v')(d()(e(f)(g)(f)))"},
		},
		{
			name: "nested",
			src:  "@outer\ndef f():\n    @inner(1)\n    def g():\n        @innermost\n        def h(): pass\n    return g\n",
			want: []string{"5:9 h = innermost(h)", "3:5 g = inner(1)(g)", "1:1 f = outer(f)"},
		},
		{
			name: "blocks",
			src: "if x:\n    @a\n    def f(): pass\nelif y:\n    @b\n    def f(): pass\nelse:\n    @c\n    def f(): pass\n" +
				"for i in z:\n    @d\n    def g(): pass\nwhile w:\n    @e\n    def h(): pass\n",
			want: []string{"2:5 f = a(f)", "5:5 f = b(f)", "8:5 f = c(f)", "11:5 g = d(g)", "14:5 h = e(h)"},
		},
		{
			name: "multi-line arguments",
			src:  "@semisync(callback=output,\n           dependencies=[a, b])  # done\ndef f(a, b):\n    pass\n",
			want: []string{"1:1 f = semisync(callback=output, dependencies=[a, b])(f)"},
		},
		{
			name: "string arguments of all forms",
			src:  "@d('''x\n)''', \"\"\"\n@y\"\"\", r'\\'', b\"#(\", rb'[')\ndef f(): pass\n",
			want: []string{`1:1 f = d('''x
)''', """
@y""", r'\'', b"#(", rb'[')(f)`},
		},
		{
			name: "comments and blank lines",
			src:  "@a  # c1\n# c2\n\n  # c3\n@b # (\n\n# ]\ndef f(): pass\n",
			want: []string{"1:1 f = a(b(f))"},
		},
		{
			name: "comment inside brackets",
			src:  "@a(1, # )\n   2)\ndef f(): pass\n",
			want: []string{"1:1 f = a(1, 2)(f)"},
		},
		{
			name: "line continuation",
			src:  "@a.\\\n   b\ndef f(): pass\n",
			want: []string{"1:1 f = a.b(f)"},
		},
		{
			name: "tabs and non-ASCII",
			src:  "def outer():\n\tx = 'héllo'\n\t@dec('é', 'ü', ñ)  # ö\n\t@\tdec2\n\tdef f(): pass\n",
			want: []string{"3:2 f = dec('é', 'ü', ñ)(dec2(f))"},
		},
		{
			name: "tab and spaces indent alike",
			src:  "def outer():\n\t@a\n        @b\n\tdef g(): pass\n        return g\n",
			want: []string{"2:2 g = a(b(g))"},
		},
		{
			name: "windows and mac newlines",
			src:  "@a(1,\r\n   2)\r\n@b\rdef f(): pass\r\n",
			want: []string{"1:1 f = a(1, 2)(b(f))"},
		},
		{
			name: "one-line def and following code",
			src:  "@a\ndef f(): return 1\n@b\ndef g(): return 2\nh = f\n",
			want: []string{"1:1 f = a(f)", "3:1 g = b(g)"},
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			for _, mode := range []syntax.Mode{0, syntax.RetainComments} {
				opts := testOpts()
				f, err := Parse(opts, "t.star", []byte(test.src), mode)
				require.NoError(t, err)
				assert.Equal(t, test.want, describe(normalize([]byte(test.src)), f))
				checkInvariants(t, opts, []byte(test.src), f)
			}
		})
	}
}

// TestPositions spells out exact positions of a few nodes.
func TestPositions(t *testing.T) {
	src := "def outer():\n\tx = 'é'\n\t@dec('é', ü)  # ö\n\t@ d2\n\tdef f(): pass\n"
	f, err := Parse(testOpts(), "t.star", []byte(src), syntax.RetainComments)
	require.NoError(t, err)
	body := f.Stmts[0].(*syntax.DefStmt).Body
	require.Len(t, body, 3)
	def := body[1].(*syntax.DefStmt)
	assert.Equal(t, "t.star:5:2", def.Def.String())
	a := body[2].(*syntax.AssignStmt)
	assert.Equal(t, "t.star:3:2", a.OpPos.String())
	assert.Equal(t, "t.star:5:6", a.LHS.(*syntax.Ident).NamePos.String())
	outer := a.RHS.(*syntax.CallExpr)
	assert.Equal(t, "t.star:3:2", outer.Lparen.String())
	assert.Equal(t, "t.star:5:14", outer.Rparen.String()) // the last rune of the def
	inner := outer.Fn.(*syntax.CallExpr)
	assert.Equal(t, "t.star:3:3", inner.Fn.(*syntax.Ident).NamePos.String())
	assert.Equal(t, "t.star:3:7", inner.Args[0].(*syntax.Literal).TokenPos.String())
	assert.Equal(t, "t.star:3:12", inner.Args[1].(*syntax.Ident).NamePos.String())
	d2 := outer.Args[0].(*syntax.CallExpr)
	assert.Equal(t, "t.star:4:2", d2.Lparen.String())
	assert.Equal(t, "t.star:4:4", d2.Fn.(*syntax.Ident).NamePos.String())
	assert.Equal(t, "t.star:5:14", d2.Rparen.String())
	arg := d2.Args[0].(*syntax.Ident)
	assert.Equal(t, "t.star:5:6", arg.NamePos.String())
	assert.NotSame(t, a.LHS, arg)
	// The comment after the decorator keeps its position.
	var comments []string
	syntax.Walk(f, func(n syntax.Node) bool {
		if n == nil {
			return false
		}
		if c := n.Comments(); c != nil {
			for _, list := range [][]syntax.Comment{c.Before, c.Suffix, c.After} {
				for _, c := range list {
					comments = append(comments, c.Start.String()+" "+c.Text)
				}
			}
		}
		return true
	})
	assert.Equal(t, []string{"t.star:3:16 # ö"}, comments)
}

// TestParseErrors checks error messages and positions. (For "got X",
// the parser reports the position just after the unexpected token X.)
func TestParseErrors(t *testing.T) {
	for _, test := range []struct {
		name, src string
		opts      *syntax.FileOptions // default testOpts()
		want      string              // "" means: same error as opts.Parse
	}{
		{name: "not followed by def", src: "@a\nx = 1\n", want: "t.star:1:1: decorator must be followed by a def statement"},
		{name: "at EOF", src: "x = 1\n\n  # c\n@a(1)  # c\n\n", want: "t.star:4:1: decorator must be followed by a def statement"},
		{name: "second not followed by def", src: "@a\n@b\nif x:\n  pass\n", want: "t.star:2:1: decorator must be followed by a def statement"},
		{name: "followed by dedent", src: "def f():\n    @a\ndef g(): pass\n", want: "t.star:2:5: decorator must be followed by a def statement at the same indentation"},
		{name: "followed by indent", src: "@a\n    def g(): pass\n", want: "t.star:1:1: decorator must be followed by a def statement at the same indentation"},
		{name: "defx is not def", src: "@a\ndefx = 1\n", want: "t.star:1:1: decorator must be followed by a def statement"},
		{name: "no expression", src: "@  # c\ndef f(): pass\n", want: "t.star:1:1: @ must be followed by a decorator expression"},
		{name: "bad expression", src: "x = 1\n  \t@a b\ndef f(): pass\n", want: "t.star:2:8: got identifier after expression, want EOF"},
		{name: "def on same line", src: "@a def f(): pass\n", want: "t.star:1:7: got def after expression, want EOF"},
		{name: "unclosed bracket", src: "@a(1,\ndef f(): pass\n", want: "t.star:2:1: got def, want primary expression"},
		{name: "bad string in decorator", src: "@a('x\n)\ndef f(): pass\n", want: "t.star:1:4: unexpected newline in string"},
		{name: "error in def", src: "@a\ndef f(:\n  pass\n", want: "t.star:2:8: got ':', want ')'"},
		{name: "earlier error wins", src: "x = = 1\n@a\ndef f(): pass\n", want: "t.star:1:5: got '=', want primary expression"},
		{name: "earlier decorator error wins", src: "@a b\ndef f(:\n", want: "t.star:1:5: got identifier after expression, want EOF"},
		{name: "top level without GlobalReassign", src: "@a\ndef f(): pass\n", opts: &syntax.FileOptions{},
			want: "t.star:1:1: decorating a top-level def requires the GlobalReassign file option"},
		{name: "mid-line", src: "x = 1 @ 2\n"},
		{name: "after semicolon", src: "x = 1; @a\ndef f(): pass\n"},
		{name: "after continuation", src: "x = 1 + \\\n@a\ndef f(): pass\n"},
		{name: "inside brackets", src: "f(x,\n  @a)\n"},
		{name: "after unterminated string", src: "x = '''\n@a\ndef f(): pass\n"},
		{name: "after NUL", src: "x = 1\x00\n@a\n"},
	} {
		t.Run(test.name, func(t *testing.T) {
			opts := test.opts
			if opts == nil {
				opts = testOpts()
			}
			f, err := Parse(opts, "t.star", []byte(test.src), 0)
			if test.want == "" {
				want, wantErr := opts.Parse("t.star", test.src, 0)
				assert.Equal(t, want, f)
				assert.Equal(t, wantErr, err)
				return
			}
			assert.Nil(t, f)
			require.Error(t, err)
			assert.IsType(t, syntax.Error{}, err)
			assert.Equal(t, test.want, err.Error())
		})
	}
}

// TestNestedWithoutGlobalReassign checks that decorators inside a def
// need no special options.
func TestNestedWithoutGlobalReassign(t *testing.T) {
	src := "def f():\n    @a\n    def g(): pass\n    return g\n"
	file, err := Parse(&syntax.FileOptions{}, "t.star", []byte(src), 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"2:5 g = a(g)"}, describe([]byte(src), file))
}

func TestStartsDecorator(t *testing.T) {
	for line, want := range map[string]bool{
		"@dec\n":        true,
		"  \t@a.b(1,":   true,
		"@":             true,
		"":              false,
		"   \n":         false,
		"x = 1 @ 2":     false,
		"# @comment":    false,
		"'@string'":     false,
		"def f(): pass": false,
	} {
		assert.Equal(t, want, StartsDecorator(line), "%q", line)
	}
}
