package decorator

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/syntax"
)

// testOpts are the file options used by the tests.
func testOpts() *syntax.FileOptions {
	return &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}
}

// normalize re-encodes src rune by rune, as the scanner reads it: every
// newline becomes "\n" and every invalid byte U+FFFD. Lines and columns
// are unchanged.
func normalize(src []byte) []byte {
	var b strings.Builder
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		if r == '\r' {
			r = '\n'
			if i+1 < len(src) && src[i+1] == '\n' {
				n = 2
			}
		}
		b.WriteRune(r)
		i += n
	}
	return []byte(b.String())
}

// offsetOf returns the byte offset of pos in normalized source, or -1.
func offsetOf(norm []byte, pos syntax.Position) int {
	line, col := int32(1), int32(1)
	for i := 0; i <= len(norm); {
		if line == pos.Line && col == pos.Col {
			return i
		}
		if i == len(norm) {
			break
		}
		r, n := utf8.DecodeRune(norm[i:])
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += n
	}
	return -1
}

// synthesized reports whether stmt is an assignment made by Parse: one
// whose operator position holds an '@' in the source.
func synthesized(norm []byte, stmt syntax.Stmt) bool {
	a, ok := stmt.(*syntax.AssignStmt)
	if !ok {
		return false
	}
	off := offsetOf(norm, a.OpPos)
	return off >= 0 && off < len(norm) && norm[off] == '@'
}

// exprString formats an expression compactly.
func exprString(e syntax.Expr) string {
	switch e := e.(type) {
	case *syntax.Ident:
		return e.Name
	case *syntax.Literal:
		return e.Raw
	case *syntax.DotExpr:
		return exprString(e.X) + "." + e.Name.Name
	case *syntax.CallExpr:
		var args []string
		for _, a := range e.Args {
			args = append(args, exprString(a))
		}
		return exprString(e.Fn) + "(" + strings.Join(args, ", ") + ")"
	case *syntax.BinaryExpr:
		if e.Op == syntax.EQ {
			return exprString(e.X) + "=" + exprString(e.Y)
		}
		return exprString(e.X) + " " + e.Op.String() + " " + exprString(e.Y)
	case *syntax.ListExpr:
		var elems []string
		for _, x := range e.List {
			elems = append(elems, exprString(x))
		}
		return "[" + strings.Join(elems, ", ") + "]"
	case *syntax.ParenExpr:
		return "(" + exprString(e.X) + ")"
	}
	return fmt.Sprintf("<%T>", e)
}

// describe lists the synthesized assignments of f in walk order, as "line:col name = expr".
func describe(norm []byte, f *syntax.File) []string {
	var out []string
	syntax.Walk(f, func(n syntax.Node) bool {
		if s, ok := n.(syntax.Stmt); ok && synthesized(norm, s) {
			a := s.(*syntax.AssignStmt)
			out = append(out, fmt.Sprintf("%d:%d %s = %s", a.OpPos.Line, a.OpPos.Col, exprString(a.LHS), exprString(a.RHS)))
		}
		return true
	})
	return out
}

// spans lists type and span of every node of f outside synthesized assignments.
func spans(norm []byte, f *syntax.File) []string {
	var out []string
	for _, stmt := range f.Stmts {
		syntax.Walk(stmt, func(n syntax.Node) bool {
			if n == nil {
				return false
			}
			if s, ok := n.(syntax.Stmt); ok && synthesized(norm, s) {
				return false
			}
			start, end := n.Span()
			out = append(out, fmt.Sprintf("%T %d:%d-%d:%d", n, start.Line, start.Col, end.Line, end.Col))
			return true
		})
	}
	return out
}

// exprEnd returns the end of e's text. It differs from the end of e's Span
// when e contains a TupleExpr, IndexExpr or SliceExpr, whose Span ends at
// the closing bracket, not after it.
func exprEnd(e syntax.Expr) syntax.Position {
	_, end := e.Span()
	syntax.Walk(e, func(n syntax.Node) bool {
		if n == nil {
			return false
		}
		_, e := n.Span()
		switch n := n.(type) {
		case *syntax.TupleExpr:
			if n.Rparen.IsValid() {
				e.Col++
			}
		case *syntax.IndexExpr, *syntax.SliceExpr:
			e.Col++
		}
		if e.Line > end.Line || e.Line == end.Line && e.Col > end.Col {
			end = e
		}
		return true
	})
	return end
}

// checkInvariants checks a successfully parsed file f against its source:
// every identifier and literal lies where its text is; each synthesized
// assignment follows its def and applies decorators that start at an '@';
// and all other nodes have the spans that opts.Parse gives when the
// decorators (located from the AST) are replaced by spaces. It returns
// the latter parse.
func checkInvariants(t *testing.T, opts *syntax.FileOptions, src []byte, f *syntax.File) *syntax.File {
	t.Helper()
	norm := normalize(src)
	textAt := func(pos syntax.Position) string {
		if off := offsetOf(norm, pos); off >= 0 {
			return string(norm[off:])
		}
		return ""
	}
	idents := make(map[*syntax.Ident]bool)
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Ident:
			assert.True(t, strings.HasPrefix(textAt(n.NamePos), n.Name), "ident %s at %s", n.Name, n.NamePos)
			assert.False(t, idents[n], "ident %s at %s is shared", n.Name, n.NamePos)
			idents[n] = true
		case *syntax.Literal:
			assert.True(t, strings.HasPrefix(textAt(n.TokenPos), n.Raw), "literal %s at %s", n.Raw, n.TokenPos)
		}
		return true
	})

	blanked := append([]byte(nil), norm...)
	var check func(list []syntax.Stmt)
	check = func(list []syntax.Stmt) {
		for i, stmt := range list {
			switch s := stmt.(type) {
			case *syntax.DefStmt:
				check(s.Body)
			case *syntax.IfStmt:
				check(s.True)
				check(s.False)
			case *syntax.ForStmt:
				check(s.Body)
			case *syntax.WhileStmt:
				check(s.Body)
			}
			if !synthesized(norm, stmt) {
				continue
			}
			a := stmt.(*syntax.AssignStmt)
			require.Greater(t, i, 0)
			def, ok := list[i-1].(*syntax.DefStmt)
			require.True(t, ok, "synthesized statement at %s does not follow a def", a.OpPos)
			lhs := a.LHS.(*syntax.Ident)
			assert.Equal(t, def.Name.Name, lhs.Name)
			assert.Equal(t, def.Name.NamePos, lhs.NamePos)
			x := a.RHS
			for first := true; ; first = false {
				call, ok := x.(*syntax.CallExpr)
				if !ok {
					break
				}
				if first {
					assert.Equal(t, a.OpPos, call.Lparen)
				}
				start, _ := call.Fn.Span()
				cstart, cend := call.Span()
				_, defEnd := def.Span()
				assert.Equal(t, start, cstart)
				assert.Equal(t, defEnd, cend)
				at, stop := offsetOf(norm, call.Lparen), offsetOf(norm, exprEnd(call.Fn))
				require.True(t, at >= 0 && at < stop && norm[at] == '@', "call at %s", call.Lparen)
				for j := at; j < stop; {
					r, n := utf8.DecodeRune(blanked[j:])
					if r != '\n' {
						copy(blanked[j:], strings.Repeat(" ", n))
					}
					j += n
				}
				require.Len(t, call.Args, 1)
				x = call.Args[0]
			}
			arg := x.(*syntax.Ident)
			assert.Equal(t, def.Name.Name, arg.Name)
			assert.Equal(t, def.Name.NamePos, arg.NamePos)
		}
	}
	check(f.Stmts)

	want, err := opts.Parse("manual.star", blanked, 0)
	require.NoError(t, err, "manually blanked source:\n%s", blanked)
	assert.Equal(t, spans(norm, want), spans(norm, f))
	return want
}
