package repl

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

func TestComplete(t *testing.T) {
	s := newSession(t, []string{
		`load("math", "floor")`,
		`xs = [1, 2]`,
		`m = Manager()`,
		`ns = m.Namespace()`,
		`def helper(): pass`,
		``,
		`_private = 1`,
	}, starlarkmod.Options{})
	out := s.run(t) // runs the lines, closes the interpreter; the globals stay
	require.NotContains(t, out, "Error", out)

	for _, tc := range []struct {
		line  string
		pos   int // -1: end of line
		head  string
		want  []string
		tail  string
		check func(t *testing.T, got []string)
	}{
		{line: "semisync.be", pos: -1, head: "semisync.", want: []string{"begin"}},
		{line: "x = semisync.", pos: -1, head: "x = semisync.", want: []string{"begin", "clear", "graph"}},
		{line: "sem", pos: -1, head: "", want: []string{"semisync"}},
		{line: "print(hel", pos: -1, head: "print(", want: []string{"helper"}},
		{line: "fl + 1", pos: 2, head: "", want: []string{"float", "floor"}, tail: " + 1"},
		{line: "xs.app", pos: -1, head: "xs.", want: []string{"append"}},
		{line: "m.Namespace().", pos: -1, head: "m.Namespace().", want: nil}, // calls are not evaluated
		{line: "_", pos: -1, head: "", check: func(t *testing.T, got []string) { assert.Contains(t, got, "_private") }},
		{line: "", pos: -1, head: "", want: []string{"    "}},
		{line: "    ", pos: -1, head: "    ", want: []string{"    "}},
		{line: "xs", pos: 0, head: "", want: []string{"    "}, tail: "xs"},
		{line: "x = ", pos: -1, head: "x = ", want: nil},
		{line: "nosuch.", pos: -1, head: "nosuch.", want: nil},
		{line: "1.", pos: -1, head: "1.", want: nil},
		{line: `"abc".up`, pos: -1, head: `"abc".up`, want: nil},
		{line: `load("ma`, pos: -1, head: `load("`, want: []string{"math"}},
		{line: `load('js`, pos: -1, head: `load('`, want: []string{"json"}},
		{line: `load("math", "fl`, pos: -1, head: `load("math", "`, want: []string{"floor"}},
		{line: `load("math", "floor", c = "ce`, pos: -1, head: `load("math", "floor", c = "`, want: []string{"ceil"}},
		{line: `load("./testdata/complete/al`, pos: -1, head: `load("`, want: []string{"./testdata/complete/alpha.star"}},
		{line: `load("./testdata/complete/`, pos: -1, head: `load("`,
			want: []string{"./testdata/complete/alpha.star", "./testdata/complete/beta.star", "./testdata/complete/sub/"}},
		{line: `load("./testdata/complete/alpha.star", "`, pos: -1, head: `load("./testdata/complete/alpha.star", "`, want: nil},
		{line: ":t", pos: -1, head: "", want: []string{":tasks"}},
		{line: "  :", pos: -1, head: "  ", want: []string{":help", ":load", ":tasks", ":graph", ":reset", ":quit"}},
		{line: ":load testdata/complete/al", pos: -1, head: ":load ",
			want: []string{"testdata/complete/alpha.star", "testdata/complete/alps.txt"}},
		{line: ":tasks x", pos: -1, head: ":tasks x", want: nil},
	} {
		t.Run(tc.line, func(t *testing.T) {
			pos := tc.pos
			if pos < 0 {
				pos = len(tc.line)
			}
			head, got, tail := s.Complete(tc.line, pos)
			assert.Equal(t, tc.head, head)
			assert.Equal(t, tc.tail, tail)
			if tc.check != nil {
				tc.check(t, got)
			} else {
				assert.Equal(t, tc.want, got)
			}
		})
	}
}
