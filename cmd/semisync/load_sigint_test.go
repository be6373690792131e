package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSIGINTUnderLoad presses Ctrl-C while every core is busy with more
// spinning Starlark code than there are cores: a job of a million busy
// items on 64 worker loops, and 100 spinning futures. The process must
// exit with status 130 promptly (the target is 100 ms; the bound checked is
// a generous 2 s for a slow shared machine, and the time is logged):
// cancellation must reach every running thread, so the pool does not keep
// more computing workers than the Go scheduler cycles through quickly.
func TestSIGINTUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := semisyncBinary(t)
	tests := []struct {
		name, src string
		started   int // "running" lines to see before pressing Ctrl-C: as many as the pool runs at once (engine.PoolOptions.Limit), so every core is busy
	}{
		{"job, 64 loops", `
def spin(x):
    if x < 64:
        print("running", x)
    while True:
        pass

job(spin, range(1000000), processes=64).run()
`, 2 * runtime.GOMAXPROCS(0)},
		{"100 futures", `
@future
def spin(x):
    print("running", x)
    while True:
        pass

fs = [spin(i) for i in range(100)]
wait(fs)
`, 2 * runtime.GOMAXPROCS(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "load.star")
			require.NoError(t, os.WriteFile(path, []byte(tt.src), 0o644))
			cmd := exec.Command(bin, path)
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			lines := bufio.NewScanner(stdout)
			seen := 0
			for seen < tt.started && lines.Scan() {
				if strings.HasPrefix(lines.Text(), "running ") {
					seen++
				}
			}
			if seen < tt.started {
				cmd.Process.Kill() //nolint:errcheck
				cmd.Wait()         //nolint:errcheck
				t.Fatalf("only %d items started; stderr:\n%s", seen, stderr.String())
			}
			sent := time.Now()
			require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
			for lines.Scan() {
			}
			err = cmd.Wait()
			elapsed := time.Since(sent)
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "want an exit status, got %v; stderr:\n%s", err, stderr.String())
			assert.Equal(t, 130, exit.ExitCode(), "stderr:\n%s", stderr.String())
			assert.Less(t, elapsed, 2*time.Second, "SIGINT took %v", elapsed)
			t.Logf("exited %v after SIGINT", elapsed)
		})
	}
}
