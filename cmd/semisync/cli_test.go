package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files (TestCLI, the --summary test)")

// TestCLI runs the command in-process on each case and compares its exit
// status, stdout and stderr with testdata/cli/NAME.golden. Durations
// are replaced by D where they vary. go test ./cmd/semisync -run TestCLI -update rewrites
// the files.
func TestCLI(t *testing.T) {
	const dir = "testdata/cli"
	tests := []struct {
		name  string
		args  []string
		env   string // SEMISYNC_SEQUENTIAL
		stdin string
		times bool // replace durations in stderr by D
	}{
		{name: "code", args: []string{"-c", `print("hi", argv)`, "a", "b"}},
		{name: "code_error", args: []string{"-c", "x = 1\ny = x // 0"}},
		{name: "stdin", args: []string{"-", "x"}, stdin: `print("from stdin", argv)`},
		{name: "root_refused", args: []string{dir + "/sub/loads_up.star"}},
		{name: "root_widened", args: []string{"--root", dir, dir + "/sub/loads_up.star"}},
		{name: "missing_script", args: []string{dir + "/nope.star"}},
		{name: "directory_script", args: []string{dir}},
		{name: "timeout_needs_unit", args: []string{"--timeout", "1", dir + "/argv.star"}},
		{name: "timeout_negative", args: []string{"--timeout", "-1s", dir + "/argv.star"}},
		{name: "timeout_waiting", args: []string{"--timeout", "300ms", dir + "/background.star"}, times: true},
		{name: "sequential_yes", args: []string{"-c", "print('ok')"}, env: "yes"},
		{name: "sequential_true", args: []string{"-c", "print('ok')"}, env: "TRUE"},
		{name: "sequential_bad", args: []string{"-c", "print('ok')"}, env: "maybe"},
		{name: "version", args: []string{"version"}},
		{name: "bad_flag", args: []string{"--nope", dir + "/argv.star"}},
		{name: "version_flag", args: []string{"--version"}},
		{name: "bom", args: []string{dir + "/bom.star"}},
		{name: "nul", args: []string{dir + "/nul.star"}},
		{name: "hint_import", args: []string{"-c", "import json"}},
		{name: "seed_bad", args: []string{"--seed", "x", dir + "/argv.star"}},
	}
	durations := regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|ms|s|m)\b`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SEMISYNC_SEQUENTIAL", tt.env)
			var stdout, stderr bytes.Buffer
			code := doMain(tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			errText := stderr.String()
			if tt.times {
				errText = durations.ReplaceAllString(errText, "D")
			}
			env := ""
			if tt.env != "" {
				env = "SEMISYNC_SEQUENTIAL=" + tt.env + " "
			}
			got := fmt.Sprintf("$ %ssemisync %q\nexit %d\n-- stdout --\n%s-- stderr --\n%s",
				env, tt.args, code, stdout.String(), errText)
			golden := filepath.Join(dir, tt.name+".golden")
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run with -update to create it")
			assert.Equal(t, string(want), got)
		})
	}
}

// TestWaitingAtExit runs the binary on a script whose future sleeps after
// its last line: after a second, semisync says on stderr that it waits
// for that task; Ctrl-C then exits 130 naming the cancelled task.
func TestWaitingAtExit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := semisyncBinary(t)
	cmd := exec.Command(bin, "testdata/cli/background.star")
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	require.NoError(t, cmd.Start())
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), "waiting for 1 running task") {
		if time.Now().After(deadline) {
			cmd.Process.Kill() //nolint:errcheck
			cmd.Wait()         //nolint:errcheck
			t.Fatalf("no notice of the waiting; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err := cmd.Wait()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "want an exit status, got %v", err)
	assert.Equal(t, 130, exit.ExitCode())
	assert.Equal(t, "the script's last line\n", stdout.String())
	msg := stderr.String()
	assert.Contains(t, msg, "semisync: the script has ended; waiting for 1 running task (Ctrl-C cancels them):\n  future slow() called at testdata/cli/background.star:5:5")
	assert.Contains(t, msg, "semisync: interrupted while waiting for background work; cancelled 1 running task:\n  future slow() called at testdata/cli/background.star:5:5")
}

// syncBuffer is a bytes.Buffer that a test may read while a command
// writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestREADMEMatchesHelp: the README's "Command line" section shows the
// usage lines and the flags exactly as --help prints them. (A flag added
// to the command must be added to the README too.)
func TestREADMEMatchesHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, doMain([]string{"--help"}, nil, &stdout, &stderr))
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "## Command line\n")
	require.True(t, ok, "README has no Command line section")
	section, _, _ = strings.Cut(section, "\n## ")
	help, _, _ := strings.Cut(stderr.String(), "\ncommands:")
	for _, line := range strings.Split(help, "\n") {
		if strings.HasPrefix(line, "usage:") || strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "       semisync") {
			assert.Contains(t, section, line+"\n", "README's Command line section lacks a line of --help")
		}
	}
}
