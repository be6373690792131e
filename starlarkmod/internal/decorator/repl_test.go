package decorator

import (
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// lines returns a readline function that returns the given lines, then
// io.EOF, and counts its calls.
func lines(calls *int, input ...string) func() ([]byte, error) {
	return func() ([]byte, error) {
		*calls++
		if len(input) == 0 {
			return nil, io.EOF
		}
		line := input[0]
		input = input[1:]
		return []byte(line), nil
	}
}

func TestParseCompoundStmtDefers(t *testing.T) {
	for _, input := range [][]string{
		{"x = 1\n", "unread\n"},
		{"def f():\n", "    return 1\n", "\n", "unread\n"},
		{"\n"},
		{"x = 1 @ 2\n"},
		{},
	} {
		opts := testOpts()
		var n1, n2 int
		want, wantErr := opts.ParseCompoundStmt("<stdin>", lines(&n1, input...))
		got, err := ParseCompoundStmt(opts, "<stdin>", lines(&n2, input...))
		assert.Equal(t, wantErr, err, "%q", input)
		assert.Equal(t, want, got, "%q", input)
		assert.Equal(t, n1, n2, "%q", input)
	}
}

func TestParseCompoundStmt(t *testing.T) {
	var registered []string
	globals := builtins(&registered)
	thread := &starlark.Thread{Name: "repl"}
	opts := testOpts()
	chunks := [][]string{
		{"  @plus1  # comment\n", "\n"}, // not followed by a def
		{"@plus1\n", "@register(\n", "\n", "  )\n", "def f(x):\n", "    return x\n", "\n"}, // register() fails
		{"def twice(f):\n", "    return lambda x: f(f(x))\n", "\n"},
		{"@plus1\n", "# comment\n", "@twice\n", "def f(x):\n", "    '''doc\n", "\n", "    '''\n", "    return x * 2\n", "\n"},
		{"r = f(1)\n"},
	}
	var errs []string
	calls := 0
	for _, chunk := range chunks {
		n := 0
		f, err := ParseCompoundStmt(opts, "<stdin>", lines(&n, append(chunk, "unread\n")...))
		assert.Equal(t, len(chunk), n, "%q", chunk)
		calls += n
		if err == nil {
			err = starlark.ExecREPLChunk(f, thread, globals)
		}
		if evalErr := (*starlark.EvalError)(nil); errors.As(err, &evalErr) {
			errs = append(errs, evalErr.Backtrace())
		} else if err != nil {
			errs = append(errs, err.Error())
		}
	}
	assert.Equal(t, []string{
		"<stdin>:1:3: decorator must be followed by a def statement",
		"Traceback (most recent call last):\n  <stdin>:2:10: in <toplevel>\nError in register: register: got 0 arguments, want 1",
	}, errs)
	assert.Equal(t, "5", globals["r"].String()) // plus1(twice(f))(1)
}

func TestParseCompoundStmtErrors(t *testing.T) {
	for _, test := range []struct {
		input []string
		want  string
	}{
		{[]string{"@a\n", "def f(x) pass\n", "\n"}, "<stdin>:2:14: got pass, want ':'"},      // the parser reports the end of the unexpected token
		{[]string{"@a\n", "def f(:\n", "\n", ")\n", "\n"}, "<stdin>:2:8: got ':', want ')'"}, // reads until brackets close
		{[]string{"@a(\n", "\n"}, "<stdin>:3:1: EOF"},
		{[]string{"@a\n", "def f():\n", "  pass\n"}, "<stdin>:4:1: EOF"},
		{[]string{"\t@a b\n", "\n"}, "<stdin>:1:6: got identifier after expression, want EOF"},
	} {
		n := 0
		f, err := ParseCompoundStmt(testOpts(), "<stdin>", lines(&n, test.input...))
		assert.Nil(t, f)
		require.Error(t, err, "%q", test.input)
		assert.IsType(t, syntax.Error{}, err)
		assert.Equal(t, test.want, err.Error(), "%q", test.input)
	}
}

func TestIncomplete(t *testing.T) {
	for src, want := range map[string]bool{
		"":                           false,
		"@a\n":                       false,
		"@a(\n":                      true,
		"@a(\n\n  1)\n":              false,
		"x = '''\n\n":                true,
		"x = '''\n''' + '''\n'''\n":  false,
		"x = '(\n":                   false, // an error, not an incomplete line
		"x = 1 + \\\n":               true,
		"x = [1, # ]\n":              true,
		"x = [1, '''\n]''', \"]\"\n": true,
		"x = ]\n":                    false,
	} {
		assert.Equal(t, want, Incomplete([]byte(src)), "%q", src)
	}
}
