// Package decorator adds Python decorator syntax to Starlark as a
// source-to-AST rewrite that keeps every position exact.
//
// Starlark has no decorators: '@' is not a token. Parse accepts
//
//	@dec1
//	@dec2(args)
//	def f(...): ...
//
// above any def statement (at top level or in any block) and returns the
// def followed, in the same statement list, by the synthesized assignment
//
//	f = dec1(dec2(args)(f))
//
// so the decorator closest to the def applies first, as in Python.
//
// Technique: a small lexer that mirrors the scanner's logical lines finds
// each decorator (an '@' that is the first non-blank rune of a logical line
// outside brackets and strings) and the end of its expression (the newline,
// comment or EOF that ends the logical line at bracket depth 0). Each rune
// from the '@' to that end is replaced by one space, keeping newlines, so
// every other rune keeps its line and column (the scanner counts columns in
// runes; a tab is one column). The blanked source is parsed with
// opts.Parse; each decorator expression is parsed with opts.ParseExpr from
// a syntax.FilePortion that starts at its real line and column, so its
// nodes carry real positions too.
//
// Positions of the synthesized nodes, for decorators d1 (topmost) ... dn:
//
//   - AssignStmt.OpPos is the '@' of d1, so the statement as a whole
//     points at the start of the decorator list.
//   - The LHS Ident and the innermost argument Ident are fresh nodes (the
//     resolver mutates Idents) at the def's name position: they denote
//     the name bound by the def, and neither a store nor a load of a name
//     the def has just bound can fail.
//   - Each CallExpr's Fn is the decorator expression as parsed, so
//     resolver errors ("undefined: x") and runtime errors while evaluating
//     it point into it exactly.
//   - Each CallExpr's Lparen is the '@' of its decorator: the compiler
//     attributes a call to its Lparen, so an error raised while calling
//     the decorator, and the caller frame in the backtrace of an error
//     raised inside the decorator, report the '@' line:col, much as
//     Python reports the decorator line.
//   - Each CallExpr's Rparen is one column before the end of the def's
//     Span, so each call spans from its decorator expression to the end
//     of the def it applies to, the calls nest properly, and the
//     AssignStmt's Span ends where the def's does. (Calls that ended at
//     their decorator would make a block whose last statement is a
//     decorated def end, by Span, before that def.)
//
// The synthesized AssignStmt's Span starts at the def name, after its RHS
// starts; apart from that, every node has a sensible Span, and every node
// not synthesized has the Span that opts.Parse gives for the blanked
// source.
//
// At top level (outside any def), the assignment rebinds a global, which
// the resolver forbids unless opts.GlobalReassign is set; Parse reports
// that case as an error at the '@' rather than leaving the resolver to
// report a confusing "cannot reassign global" at the def name.
package decorator // import "github.com/semisync/semisync/starlarkmod/internal/decorator"

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"

	"go.starlark.net/syntax"
)

// A decorator is one '@' line found in the source.
type decorator struct {
	at    syntax.Position // position of the '@'
	start int             // byte offset of the '@'
	text  int             // byte offset of the expression text
	end   int             // byte offset of the end of the expression text
	expr  syntax.Expr     // parsed expression
}

// A group is a run of decorators applied to one def.
type group struct {
	decs []*decorator
	used bool
}

type defKey struct{ line, col int32 }

// Parse parses a Starlark file like opts.Parse(filename, src, mode),
// additionally accepting Python decorator syntax above any def statement,
// which it rewrites as described in the package documentation.
// Syntax errors are syntax.Error values with exact positions; a decorator
// not followed by a def at the same indentation is reported at its '@'.
func Parse(opts *syntax.FileOptions, filename string, src []byte, mode syntax.Mode) (*syntax.File, error) {
	if bytes.IndexByte(src, '@') < 0 {
		return opts.Parse(filename, src, mode)
	}
	lines, _ := lex(src)
	if !hasDecorator(lines) {
		return opts.Parse(filename, src, mode)
	}

	fname := filename
	pos := func(line, col int32) syntax.Position { return syntax.MakePosition(&fname, line, col) }
	var first *syntax.Error // earliest error so far
	report := func(err error) {
		var e syntax.Error
		if !errors.As(err, &e) {
			e = syntax.Error{Pos: pos(1, 1), Msg: err.Error()}
		}
		if first == nil || before(e.Pos, first.Pos) {
			first = &e
		}
	}

	// Find the decorators, parse their expressions, and group them by def.
	var decs []*decorator
	groups := make(map[defKey]*group)
	var g *group
	for i, l := range lines {
		if l.kind != lineDecorator {
			continue
		}
		d := &decorator{at: pos(l.line, l.col), start: l.start, text: l.start + 1, end: l.end}
		for d.text < d.end && (src[d.text] == ' ' || src[d.text] == '\t') {
			d.text++
		}
		for d.end > d.text && (src[d.end-1] == ' ' || src[d.end-1] == '\t') {
			d.end--
		}
		decs = append(decs, d)
		if g == nil {
			g = new(group)
		}
		g.decs = append(g.decs, d)

		if d.text == d.end {
			report(syntax.Error{Pos: d.at, Msg: "@ must be followed by a decorator expression"})
			continue
		}
		expr, err := opts.ParseExpr(filename, syntax.FilePortion{
			Content:   src[d.text:d.end],
			FirstLine: l.line,
			FirstCol:  l.col + int32(d.text-l.start), // only blanks, one column each, lie between
		}, mode)
		if err != nil {
			report(err)
			continue
		}
		d.expr = expr

		// The next non-blank logical line must be a decorator or a def at the same indentation.
		if i+1 < len(lines) && lines[i+1].kind != lineOther && lines[i+1].indent == l.indent {
			if next := lines[i+1]; next.kind == lineDef {
				groups[defKey{next.line, next.col}] = g
				g = nil
			}
			continue
		}
		msg := "decorator must be followed by a def statement"
		if i+1 < len(lines) && lines[i+1].kind != lineOther {
			msg += " at the same indentation"
		}
		report(syntax.Error{Pos: d.at, Msg: msg})
		g = nil
	}

	// Blank out the decorators, keeping line breaks, and parse.
	blanked := make([]byte, 0, len(src))
	prev := 0
	for _, d := range decs {
		blanked = append(blanked, src[prev:d.start]...)
		for s := src[d.start:d.end]; len(s) > 0; {
			r, n := utf8.DecodeRune(s)
			if r == '\n' || r == '\r' {
				blanked = append(blanked, byte(r))
			} else {
				blanked = append(blanked, ' ')
			}
			s = s[n:]
		}
		prev = d.end
	}
	blanked = append(blanked, src[prev:]...)

	f, err := opts.Parse(filename, blanked, mode)
	if err != nil {
		report(err)
	}
	if first != nil {
		return nil, *first
	}

	rw := &rewriter{opts: opts, groups: groups, report: report}
	f.Stmts = rw.stmts(f.Stmts, false)
	for _, g := range groups {
		if !g.used { // unreachable if the lexer mirrors the scanner; kept as a safeguard
			report(syntax.Error{Pos: g.decs[0].at, Msg: "decorator must be followed by a def statement"})
		}
	}
	if first != nil {
		return nil, *first
	}
	return f, nil
}

type rewriter struct {
	opts   *syntax.FileOptions
	groups map[defKey]*group
	report func(error)
}

// stmts rewrites a statement list and the lists nested within it.
func (rw *rewriter) stmts(list []syntax.Stmt, inDef bool) []syntax.Stmt {
	if len(list) == 0 {
		return list
	}
	out := make([]syntax.Stmt, 0, len(list))
	for _, stmt := range list {
		out = append(out, stmt)
		switch s := stmt.(type) {
		case *syntax.IfStmt:
			s.True = rw.stmts(s.True, inDef)
			s.False = rw.stmts(s.False, inDef)
		case *syntax.ForStmt:
			s.Body = rw.stmts(s.Body, inDef)
		case *syntax.WhileStmt:
			s.Body = rw.stmts(s.Body, inDef)
		case *syntax.DefStmt:
			s.Body = rw.stmts(s.Body, true)
			g := rw.groups[defKey{s.Def.Line, s.Def.Col}]
			if g == nil || g.used {
				continue
			}
			g.used = true
			if !inDef && (rw.opts == nil || !rw.opts.GlobalReassign) {
				rw.report(syntax.Error{Pos: g.decs[0].at,
					Msg: "decorating a top-level def requires the GlobalReassign file option"})
				continue
			}
			out = append(out, synthesize(s, g.decs))
		}
	}
	return out
}

// synthesize returns the statement name = d1(d2(...dn(name))) for def.
func synthesize(def *syntax.DefStmt, decs []*decorator) *syntax.AssignStmt {
	// Use positions derived from the def's, so they share its file name.
	at := func(p syntax.Position) syntax.Position {
		q := def.Def
		q.Line, q.Col = p.Line, p.Col
		return q
	}
	_, rparen := def.Span()
	if rparen.Col > 1 {
		rparen.Col-- // the last rune of the def
	}
	name := def.Name
	var x syntax.Expr = &syntax.Ident{NamePos: name.NamePos, Name: name.Name}
	for i := len(decs) - 1; i >= 0; i-- {
		d := decs[i]
		x = &syntax.CallExpr{Fn: d.expr, Lparen: at(d.at), Args: []syntax.Expr{x}, Rparen: rparen}
	}
	return &syntax.AssignStmt{
		OpPos: at(decs[0].at),
		Op:    syntax.EQ,
		LHS:   &syntax.Ident{NamePos: name.NamePos, Name: name.Name},
		RHS:   x,
	}
}

func hasDecorator(lines []logicalLine) bool {
	for _, l := range lines {
		if l.kind == lineDecorator {
			return true
		}
	}
	return false
}

func before(p, q syntax.Position) bool {
	return p.Line < q.Line || p.Line == q.Line && p.Col < q.Col
}

// StartsDecorator reports whether line, possibly indented with spaces and
// tabs, begins a decorator, so a REPL knows that more input must follow.
func StartsDecorator(line string) bool {
	return strings.HasPrefix(strings.TrimLeft(line, " \t"), "@")
}

// Incomplete reports whether src, the input of a REPL chunk so far, ends
// inside brackets, inside a string literal, or after a backslash line
// continuation, so the chunk cannot end at the next blank line.
func Incomplete(src []byte) bool {
	_, open := lex(src)
	return open
}

// ParseCompoundStmt is like opts.ParseCompoundStmt, for a REPL, but also
// accepts a def statement preceded by decorators. If the first line
// starts a decorator, it reads lines until a blank line that is not
// Incomplete, as Python's REPL does, and parses them with Parse,
// so the result may hold the def, its synthesized assignment, and any
// statements entered before the blank line. Otherwise it defers to
// opts.ParseCompoundStmt.
func ParseCompoundStmt(opts *syntax.FileOptions, filename string, readline func() ([]byte, error)) (*syntax.File, error) {
	first, err := readline()
	if err != nil || !StartsDecorator(string(first)) {
		replayed := false
		return opts.ParseCompoundStmt(filename, func() ([]byte, error) {
			if !replayed {
				replayed = true
				return first, err
			}
			return readline()
		})
	}
	buf := append([]byte(nil), first...)
	for line := first; ; {
		if !Incomplete(buf) && strings.TrimLeft(string(line), " \t\r\n") == "" {
			break
		}
		line, err = readline()
		if err != nil {
			lx := &lexer{src: buf, line: 1, col: 1}
			for lx.off < len(buf) {
				lx.next()
			}
			return nil, syntax.Error{Pos: syntax.MakePosition(&filename, lx.line, lx.col), Msg: err.Error()}
		}
		buf = append(buf, line...)
	}
	return Parse(opts, filename, buf, 0)
}
