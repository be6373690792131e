package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sigintScript runs a job whose items busy-loop or sleep forever; each
// prints a line when it starts, so the test knows when to press Ctrl-C.
const sigintScript = `
def forever(x):
    print("running", x)
    if x % 2 == 0:
        while True:
            pass
    sleep(100000)

job(forever, range(100), processes = 4).run()
print("not reached")
`

// TestSIGINTStopsJob builds the semisync binary, runs a job of busy loops
// and sleeps, sends SIGINT once all four workers are running, and checks
// that the process exits promptly with status 130 and an error naming the
// cancelled items. (The target is 100 ms; the bound checked here is a
// generous 2 s, for a slow shared machine.)
func TestSIGINTStopsJob(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := semisyncBinary(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "forever.star")
	require.NoError(t, os.WriteFile(script, []byte(sigintScript), 0o644))

	cmd := exec.Command(bin, script)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill() //nolint:errcheck
			cmd.Wait()         //nolint:errcheck
		}
	})

	// Wait until the four workers run their items (two busy loops, two
	// sleeps).
	lines := bufio.NewScanner(stdout)
	running := map[string]bool{}
	for len(running) < 4 && lines.Scan() {
		if f := strings.Fields(lines.Text()); len(f) == 2 && f[0] == "running" {
			running[f[1]] = true
		}
	}
	if len(running) < 4 {
		cmd.Process.Kill() //nolint:errcheck
		cmd.Wait()         //nolint:errcheck
		killed = true
		t.Fatalf("the four items never all started (%v); stderr:\n%s", running, stderr.String())
	}

	sent := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	for lines.Scan() { // read the rest, so the pipe never fills
		assert.NotEqual(t, "not reached", lines.Text())
	}
	err = cmd.Wait()
	elapsed := time.Since(sent)
	killed = true

	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "want an exit status, got %v; stderr:\n%s", err, stderr.String())
	assert.Equal(t, 130, exit.ExitCode(), "stderr:\n%s", stderr.String())
	msg := stderr.String()
	assert.Contains(t, msg, "job.run: interrupted; cancelled 4 running items:")
	for item := range running {
		assert.Contains(t, msg, " "+item+" (value "+item+")")
	}
	assert.Contains(t, msg, "not started")
	assert.Less(t, elapsed, 2*time.Second, "SIGINT took %v to stop the job", elapsed)
	t.Logf("exited %v after SIGINT", elapsed)
}
