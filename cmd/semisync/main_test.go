package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { removeBinary() }))
}

func script(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.star")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestExitCodes runs the command in-process (doMain) with table-driven
// arguments and checks exit codes and output.
func TestExitCodes(t *testing.T) {
	ok := script(t, `print("argv", argv[1:])`)
	bad := script(t, "x = 1 // 0\n")
	syntaxErr := script(t, "def f(:\n")
	spin := script(t, "while True:\n    pass\n")
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		noStdout bool
	}{
		{name: "ok with args", args: []string{ok, "a", "b"}, code: 0, stdout: `argv ["a", "b"]`},
		{name: "script error", args: []string{bad}, code: 1, stderr: "s.star:1:7: in <toplevel>\nError: floored division by zero"},
		{name: "syntax error", args: []string{syntaxErr}, code: 1, stderr: "s.star:1:8: got ':', want ')'"},
		{name: "missing file", args: []string{"/nonexistent/x.star"}, code: 2, stderr: "semisync: cannot open script /nonexistent/x.star: no such file"},
		{name: "bad flag", args: []string{"--nope", ok}, code: 2, stderr: "flag provided but not defined"},
		{name: "help", args: []string{"--help"}, code: 0, stderr: "usage: semisync"},
		{name: "version", args: []string{"--version"}, code: 0, stdout: "semisync " + version},
		{name: "timeout", args: []string{"--timeout", "50ms", spin}, code: 1, stderr: "timeout: the script ran longer than 50ms"},
		{name: "max steps", args: []string{"--max-steps", "1000", spin}, code: 1, stderr: "too many steps"},
		{name: "seed", args: []string{"--seed", "3", script(t, `load("random", "randint")
print(randint(0, 1000000) == randint(0, 1000000))`)}, code: 0, stdout: "False"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := doMain(tt.args, nil, &stdout, &stderr)
			assert.Equal(t, tt.code, code, "stderr: %s", stderr.String())
			assert.Contains(t, stdout.String(), tt.stdout)
			assert.Contains(t, stderr.String(), tt.stderr)
		})
	}
}

// TestSeedIsDeterministic: the same seed gives the same numbers, run after
// run, however the tasks are scheduled.
func TestSeedIsDeterministic(t *testing.T) {
	path := script(t, `
load("random", "randint")
@semisync
def draw(i):
    return randint(0, 1000000)
hs = [draw(i) for i in range(8)]
semisync.begin()
print([h.result() for h in hs], randint(0, 1000000))
`)
	var first string
	for i := 0; i < 3; i++ {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 0, doMain([]string{"--seed", "11", path}, nil, &stdout, &stderr), stderr.String())
		if i == 0 {
			first = stdout.String()
		}
		assert.Equal(t, first, stdout.String())
	}
}

// TestSequentialFromEnvironment: SEMISYNC_SEQUENTIAL=1 is --sequential.
// Futures then run as they are called, so the slow one completes first.
func TestSequentialFromEnvironment(t *testing.T) {
	// In sequential mode a task runs only when the main thread waits; in
	// parallel mode it runs while main computes.
	path := script(t, `
load("multiprocessing", "Manager")
log = Manager().list()

@future
def mark():
    log.append("task")

f = mark()
n = 0
while len(log) == 0 and n < 2000000:
    n += 1
log.append("main")
f.result()
print(list(log))
`)
	for _, tt := range []struct{ env, want string }{{"", `["task", "main"]`}, {"1", `["main", "task"]`}} {
		t.Setenv("SEMISYNC_SEQUENTIAL", tt.env)
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 0, doMain([]string{path}, nil, &stdout, &stderr), stderr.String())
		assert.Equal(t, tt.want+"\n", stdout.String(), "SEMISYNC_SEQUENTIAL=%q", tt.env)
	}
}
