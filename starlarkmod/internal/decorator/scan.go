package decorator

import (
	"unicode"
	"unicode/utf8"
)

// This file contains a minimal lexer that mirrors the logical-line
// structure of go.starlark.net/syntax's scanner (scan.go): newlines in
// Unix, DOS or Mac format, string literals of all forms, comments,
// bracket depth, backslash continuations, and NUL treated as EOF
// outside string literals. Columns count runes, as in the scanner.

type lineKind uint8

const (
	lineOther     lineKind = iota
	lineDecorator          // first rune is '@'
	lineDef                // first token is the keyword def
)

// A logicalLine is a non-blank logical line of source text.
type logicalLine struct {
	kind      lineKind
	indent    int   // indentation as the scanner computes it (tab stops every 8 columns)
	start     int   // byte offset of the first non-blank rune
	end       int   // byte offset of the newline, comment or EOF at bracket depth 0 ending the line
	line, col int32 // position of start
}

type lexer struct {
	src       []byte
	off       int
	line, col int32 // position of src[off]
}

// peek returns the rune at the current offset and its size in bytes.
// A newline in any format is returned as '\n'; EOF is (0, 0).
func (lx *lexer) peek() (rune, int) {
	if lx.off >= len(lx.src) {
		return 0, 0
	}
	if b := lx.src[lx.off]; b < utf8.RuneSelf {
		if b == '\r' {
			if lx.off+1 < len(lx.src) && lx.src[lx.off+1] == '\n' {
				return '\n', 2
			}
			return '\n', 1
		}
		return rune(b), 1
	}
	return utf8.DecodeRune(lx.src[lx.off:])
}

// next consumes one rune, keeping line and column up to date.
func (lx *lexer) next() rune {
	r, n := lx.peek()
	lx.off += n
	if r == '\n' {
		lx.line++
		lx.col = 1
	} else if n > 0 {
		lx.col++
	}
	return r
}

// lex splits src into its non-blank logical lines. open reports whether
// src ends inside brackets, a string literal, or after a backslash
// continuation, that is, whether a REPL needs more input.
func lex(src []byte) (lines []logicalLine, open bool) {
	lx := &lexer{src: src, line: 1, col: 1}
	cur := -1 // index in lines of the current logical line, if its end is unknown
	endLine := func() {
		if cur >= 0 {
			lines[cur].end = lx.off
			cur = -1
		}
	}
	depth, contEnd := 0, -1
	atLineStart := true
	for {
		if atLineStart {
			atLineStart = false
			indent := 0
			for {
				r, _ := lx.peek()
				if r == ' ' {
					indent++
				} else if r == '\t' {
					indent += 8 - int(lx.col-1)%8
				} else {
					break
				}
				lx.next()
			}
			if r, _ := lx.peek(); r != '#' && r != '\n' && r != 0 {
				lines = append(lines, logicalLine{
					kind:   kindOf(src[lx.off:]),
					indent: indent,
					start:  lx.off,
					line:   lx.line,
					col:    lx.col,
				})
				cur = len(lines) - 1
			}
		}
		switch r, n := lx.peek(); r {
		case 0: // EOF, or NUL, which the scanner also treats as EOF outside strings
			endLine()
			return lines, n == 0 && (depth > 0 || contEnd == lx.off)
		case '\n':
			if depth == 0 {
				endLine()
				atLineStart = true
			}
			lx.next()
		case '#':
			if depth == 0 {
				endLine()
			}
			for r != 0 && r != '\n' {
				lx.next()
				r, _ = lx.peek()
			}
		case '"', '\'':
			if !lx.scanString(r) {
				endLine()
				return lines, true
			}
		case '\\':
			lx.next()
			if r, _ := lx.peek(); r == '\n' {
				lx.next()
				contEnd = lx.off
			}
		case '(', '[', '{':
			depth++
			lx.next()
		case ')', ']', '}':
			if depth > 0 {
				depth--
			}
			lx.next()
		default:
			lx.next()
		}
	}
}

// scanString consumes a string literal starting at the quote, exactly as
// the scanner's scanString does (string prefixes such as r, b and rb do
// not affect where a literal ends). An unterminated single-quoted literal
// stops before the newline. scanString reports false at EOF.
func (lx *lexer) scanString(quote rune) bool {
	s, q := lx.src[lx.off:], byte(quote)
	triple := len(s) >= 3 && s[1] == q && s[2] == q
	lx.next()
	if triple {
		lx.next()
		lx.next()
	}
	quotes := 0
	for {
		r, n := lx.peek()
		if n == 0 {
			return false
		}
		if r == '\n' && !triple {
			return true // the scanner reports "unexpected newline in string"
		}
		lx.next()
		if r == quote {
			quotes++
			if !triple || quotes == 3 {
				return true
			}
		} else {
			quotes = 0
		}
		if r == '\\' {
			if _, n := lx.peek(); n == 0 {
				return false
			}
			lx.next()
		}
	}
}

// kindOf classifies a logical line from its first non-blank byte.
func kindOf(s []byte) lineKind {
	if len(s) > 0 && s[0] == '@' {
		return lineDecorator
	}
	if len(s) >= 3 && string(s[:3]) == "def" {
		if r, n := utf8.DecodeRune(s[3:]); n == 0 || !isIdent(r) {
			return lineDef
		}
	}
	return lineOther
}

// isIdent is the scanner's isIdent.
func isIdent(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || unicode.IsLetter(c)
}
