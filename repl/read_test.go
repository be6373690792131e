package repl

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readAll reads every entry from lines with an entryReader and returns
// them as strings (source, or the :command), with the prompts shown.
func readAll(t *testing.T, lines []string) (entries []string, transcript string) {
	t.Helper()
	out := &syncBuffer{}
	s := &Session{r: &scriptReader{lines: lines, out: out}, con: &console{}}
	rd := &entryReader{s: s}
	for {
		e, eof, err := rd.next()
		require.NoError(t, err)
		if e.meta != "" {
			entries = append(entries, e.meta)
		} else if e.src != "" {
			entries = append(entries, e.src)
		}
		if eof {
			return entries, out.String()
		}
		require.Less(t, len(entries), 100, "runaway reader")
	}
}

func TestEntries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  []string
	}{
		{"one line each", []string{"x = 1", "x"}, []string{"x = 1\n", "x\n"}},
		{"blank and comment lines are skipped", []string{"", "  ", "# note", "x"}, []string{"x\n"}},
		{"meta command", []string{"  :tasks  ", "1"}, []string{":tasks", "1\n"}},
		{"block ends at a blank line", []string{"def f():", "    return 1", "", "f()"},
			[]string{"def f():\n    return 1\n", "f()\n"}},
		{"block ends at a dedent, which starts the next entry", []string{"def f():", "    return 1", "f()"},
			[]string{"def f():\n    return 1\n", "f()\n"}},
		{"dedented block opener starts a block", []string{"if True:", "  a = 1", "for x in []:", "  pass", ""},
			[]string{"if True:\n  a = 1\n", "for x in []:\n  pass\n"}},
		{"else and elif continue", []string{"if x:", "  a", "elif y:", "  b", "else:", "  c", "", "z"},
			[]string{"if x:\n  a\nelif y:\n  b\nelse:\n  c\n", "z\n"}},
		{"comments at column 0 continue a block", []string{"while x:", "# why", "  x -= 1", ""},
			[]string{"while x:\n# why\n  x -= 1\n"}},
		{"decorators and their def", []string{"@a", "@b(", "1)", "def f():", "  pass", "@c", "def g():", "  pass", ""},
			[]string{"@a\n@b(\n1)\ndef f():\n  pass\n", "@c\ndef g():\n  pass\n"}},
		{"blank line ends a decorator prelude", []string{"@a", "", "x"}, []string{"@a\n", "x\n"}},
		{"open bracket continues, blank lines included", []string{"x = [1,", "", "2]", "y"},
			[]string{"x = [1,\n\n2]\n", "y\n"}},
		{"open string continues", []string{`s = """a`, "", `b"""`}, []string{"s = \"\"\"a\n\nb\"\"\"\n"}},
		{"backslash continues", []string{`x = 1 + \`, "2"}, []string{"x = 1 + \\\n2\n"}},
		{"bracket inside a block at column 0", []string{"def f(a,", "b):", "  return a", ""},
			[]string{"def f(a,\nb):\n  return a\n"}},
		{"Ctrl-C discards the line", []string{"^C", "y"}, []string{"y\n"}},
		{"Ctrl-C discards the entry", []string{"def f():", "  return 1", "^C", "g"}, []string{"g\n"}},
		{"Ctrl-D runs the unfinished entry", []string{"def f():", "  return 1", "^D", "unread"},
			[]string{"def f():\n  return 1\n"}},
		{"one-line compound statement waits for a blank line", []string{"if True: x = 1", "", "x"},
			[]string{"if True: x = 1\n", "x\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := readAll(t, tc.lines)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestEntryPromptsAndHistory(t *testing.T) {
	out := &syncBuffer{}
	r := &scriptReader{lines: []string{"def f():", "  return 1", "", "", "f()", "^C"}, out: out}
	s := &Session{r: r, con: &console{}}
	rd := &entryReader{s: s}
	for {
		_, eof, err := rd.next()
		require.NoError(t, err)
		if eof {
			break
		}
	}
	assert.Equal(t, ">>> def f():\n...   return 1\n... \n>>> \n>>> f()\n>>> ^C\n>>> ", out.String())
	assert.Equal(t, []string{"def f():", "  return 1", "f()"}, r.history)
}

// failingReader fails with err at once.
type failingReader struct{ err error }

func (r failingReader) Prompt(string) (string, error) { return "", r.err }
func (r failingReader) AppendHistory(string)          {}

func TestEntryReaderError(t *testing.T) {
	s := &Session{r: failingReader{io.ErrUnexpectedEOF}, con: &console{}}
	_, eof, err := (&entryReader{s: s}).next()
	assert.False(t, eof)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}
