package repl

import (
	"errors"
	"io"
	"strings"

	"github.com/semisync/semisync/starlarkmod"
)

// An entry is what the user entered at one primary prompt: Starlark source
// (possibly several lines), or a meta command.
type entry struct {
	src  string // source, lines ending in "\n"
	meta string // a :command line, trimmed
}

// entryReader reads entries line by line. A line that ends a block by
// starting at column 0 belongs to the next entry; it is kept in pending.
type entryReader struct {
	s       *Session
	pending *string
}

// next reads one entry. eof reports that the input ended: e, if not empty,
// is the text entered before the end, to be run before leaving. err is the
// line reader's error other than io.EOF and Ctrl-C.
//
// How an entry ends, as in Python's REPL:
//   - a line that opens a block (its first word is def, if, for or while,
//     or it starts with '@', a decorator) continues until a blank line, or
//     until a line at column 0 that is not a comment, not else/elif, and
//     not a decorator or def that follows the decorators opening the block;
//     such a line starts the next entry;
//   - any entry continues while it ends inside brackets, a string literal
//     or after a backslash (starlarkmod.Incomplete), blank lines
//     included;
//   - otherwise the entry is one line.
//
// Ctrl-C discards the entry and starts over at the primary prompt.
func (rd *entryReader) next() (e entry, eof bool, err error) {
	s := rd.s
	var first string
	for {
		if rd.pending != nil {
			first, rd.pending = *rd.pending, nil
		} else {
			first, err = s.prompt(PrimaryPrompt)
			if err != nil {
				if isAbort(err) {
					continue
				}
				if errors.Is(err, io.EOF) {
					return entry{}, true, nil
				}
				return entry{}, false, err
			}
			if strings.TrimSpace(first) != "" {
				s.r.AppendHistory(first)
			}
		}
		trimmed := strings.TrimSpace(first)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasPrefix(trimmed, ":") {
			return entry{meta: trimmed}, false, nil
		}
		break
	}

	var buf strings.Builder
	buf.WriteString(first)
	buf.WriteByte('\n')
	block := opensBlock(first)
	prelude := isDecorator(first) // decorators seen, their def not yet
	for {
		incomplete := starlarkmod.Incomplete([]byte(buf.String()))
		if !block && !incomplete {
			return entry{src: buf.String()}, false, nil
		}
		line, err := s.prompt(ContinuationPrompt)
		if err != nil {
			if isAbort(err) {
				return rd.next() // discard the entry
			}
			if errors.Is(err, io.EOF) {
				return entry{src: buf.String()}, true, nil
			}
			return entry{}, false, err
		}
		if strings.TrimSpace(line) != "" {
			s.r.AppendHistory(line)
		}
		if !incomplete {
			if strings.TrimSpace(line) == "" {
				return entry{src: buf.String()}, false, nil
			}
			if atColumn0(line) && !isComment(line) {
				switch {
				case prelude && isDecorator(line):
				case prelude && firstWord(line) == "def":
					prelude = false
				case !prelude && (firstWord(line) == "else" || firstWord(line) == "elif"):
				default:
					rd.pending = &line
					return entry{src: buf.String()}, false, nil
				}
			}
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
}

// opensBlock reports whether line starts a compound statement or a
// decorator, which continues until a blank line.
func opensBlock(line string) bool {
	if isDecorator(line) {
		return true
	}
	switch firstWord(line) {
	case "def", "if", "for", "while":
		return true
	}
	return false
}

func isDecorator(line string) bool {
	return strings.HasPrefix(strings.TrimLeft(line, " \t"), "@")
}

func isComment(line string) bool {
	return strings.HasPrefix(strings.TrimLeft(line, " \t"), "#")
}

func atColumn0(line string) bool {
	return line != "" && line[0] != ' ' && line[0] != '\t'
}

// firstWord returns the identifier that line starts with, after blanks.
func firstWord(line string) string {
	line = strings.TrimLeft(line, " \t")
	i := 0
	for i < len(line) && isIdentByte(line[i]) {
		i++
	}
	return line[:i]
}

func isIdentByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80
}
