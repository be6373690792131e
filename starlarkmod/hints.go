package starlarkmod

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"go.starlark.net/syntax"

	"github.com/semisync/semisync/starlarkmod/internal/decorator"
)

// utf8BOM is the byte order mark some editors (Windows Notepad) put at the
// start of a UTF-8 file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// parseSource parses src in semisync's dialect (decorators included),
// after checking what go.starlark.net's scanner gets wrong for a script
// file: a UTF-8 byte order mark at the start is accepted (the scanner
// rejects it), and a NUL byte is an error at its position (the scanner
// takes it for the end of the file and silently ignores the rest). A parse
// error on a Python habit (import, class, try, **, f-strings, ...) gets a
// hint saying what to write instead (see [Hint]).
func parseSource(opts *syntax.FileOptions, filename string, src []byte, mode syntax.Mode) (*syntax.File, error) {
	src = bytes.TrimPrefix(src, utf8BOM)
	if i := bytes.IndexByte(src, 0); i >= 0 {
		line := 1 + bytes.Count(src[:i], []byte("\n"))
		col := 1 + utf8.RuneCount(src[bytes.LastIndexByte(src[:i], '\n')+1:i])
		return nil, syntax.Error{
			Pos: syntax.MakePosition(&filename, int32(line), int32(col)),
			Msg: "NUL byte in source: a script is text; is this a binary file, or UTF-16?",
		}
	}
	f, err := decorator.Parse(opts, filename, src, mode)
	if err != nil {
		return nil, Hint(err, src)
	}
	return f, nil
}

// Hint returns err, a parse error of src, with a hint appended when the
// line it points at is a Python habit that Starlark lacks: import and
// from-import (load), class, try/except, the ** operator, f-strings and
// multi-line lambdas. Other errors are returned unchanged. The REPL passes
// its entries' parse errors through it.
func Hint(err error, src []byte) error {
	var se syntax.Error
	if !errors.As(err, &se) {
		return err
	}
	lines := bytes.Split(src, []byte("\n"))
	n := int(se.Pos.Line)
	if n < 1 || n > len(lines) {
		return err
	}
	line := strings.TrimRight(string(lines[n-1]), "\r")
	h := hintFor(line, int(se.Pos.Col), se.Msg)
	if h == "" {
		return err
	}
	se.Msg += "\n  hint: " + h
	return se
}

var (
	reImport     = regexp.MustCompile(`^\s*import\s+([\w.]+)(?:\s+as\s+(\w+))?\s*$`)
	reImportAny  = regexp.MustCompile(`^\s*import\b`)
	reFromImport = regexp.MustCompile(`^\s*from\s+([\w.]+)\s+import\s+\(?\s*([^)]*?)\s*\)?\s*$`)
	reFromAny    = regexp.MustCompile(`^\s*from\b`)
	reImportName = regexp.MustCompile(`^(\w+)(?:\s+as\s+(\w+))?$`)
	reClass      = regexp.MustCompile(`^\s*class\b`)
	reTry        = regexp.MustCompile(`^\s*(try|except|finally)\b`)
	reRaise      = regexp.MustCompile(`^\s*raise\b`)
	reWith       = regexp.MustCompile(`^\s*with\b`)
	reFString    = regexp.MustCompile(`(^|[^\w])([fF][rR]?|[rR][fF])("""|'''|"|')`)
	reLambda     = regexp.MustCompile(`\blambda\b[^:]*:\s*$`)
)

// hintFor returns the hint for a parse error at col of line, or "".
func hintFor(line string, col int, msg string) string {
	switch {
	case reImport.MatchString(line):
		m := reImport.FindStringSubmatch(line)
		name, as := m[1], m[2]
		if as == "" {
			as = name[strings.LastIndexByte(name, '.')+1:]
		}
		return fmt.Sprintf("Starlark has no import statement; write load(%q, %q) (the module itself; built in: json, math, time, random, semisync, multiprocessing, ...)", name, as)
	case reImportAny.MatchString(line):
		return `Starlark has no import statement; write load("module", "module") for a whole module`
	case reFromImport.MatchString(line):
		m := reFromImport.FindStringSubmatch(line)
		args := []string{fmt.Sprintf("%q", m[1])}
		for _, part := range strings.Split(m[2], ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			nm := reImportName.FindStringSubmatch(part)
			switch {
			case nm == nil || nm[1] == "*":
				return fmt.Sprintf(`Starlark has no from-import; write load(%q, "name", alias = "other") for each name you use`, m[1])
			case nm[2] != "":
				args = append(args, fmt.Sprintf("%s = %q", nm[2], nm[1]))
			default:
				args = append(args, fmt.Sprintf("%q", nm[1]))
			}
		}
		return fmt.Sprintf("Starlark has no from-import; write load(%s)", strings.Join(args, ", "))
	case reFromAny.MatchString(line):
		return `Starlark has no from-import; write load("module", "name", alias = "other")`
	case reClass.MatchString(line):
		return "Starlark has no classes; use functions over a dict (or a Manager().Namespace() for state that tasks share)"
	case reTry.MatchString(line):
		return "Starlark has no try/except: an error ends the script with its traceback; test conditions first, or run the work as a @future and look at f.exception()"
	case reRaise.MatchString(line):
		return `Starlark has no raise; call fail("message") to stop with an error`
	case reWith.MatchString(line):
		return "Starlark has no with statement; for a Lock, write lock.call(fn, *args)"
	case strings.Contains(msg, "got '**'"):
		return `Starlark has no ** operator; write math.pow(x, y) after load("math", "math"), or x * x`
	case strings.Contains(msg, "string literal") && reFString.MatchString(line):
		return `Starlark has no f-strings; write "{} and {}".format(a, b), or "%s and %s" % (a, b)`
	case reLambda.MatchString(line) && strings.Contains(msg, "newline"):
		return "a Starlark lambda is one expression on one line; for more, write a def"
	}
	return ""
}
