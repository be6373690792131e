package starlarkmod_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

// openPTY opens a pseudo-terminal (Linux) and returns its controller and
// the terminal end.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("pseudo-terminals are opened the Linux way")
	}
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	var unlock, n int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ctl.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		ctl.Close()
		t.Skipf("unlockpt: %v", e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ctl.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		ctl.Close()
		t.Skipf("ptsname: %v", e)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ctl.Close()
		t.Skipf("open pts: %v", err)
	}
	return ctl, tty
}

const progressScript = `
def f(x):
    return x

job(f, range(50)).run()                      # total known: 50/50
job(f, iter_items(), progress = True).run()  # total unknown
job(f, range(7), progress = False).run()     # no bar
job(f, range(9)).run_single_processed()      # a bar too
`

// TestJobProgress checks the progress bar: drawn on stderr when it is a
// terminal (with the count and the rate), never when progress=False, and
// never when stderr is not a terminal.
func TestJobProgress(t *testing.T) {
	script := filepath.Join(t.TempDir(), "progress.star")
	src := "@generator\ndef iter_items(emit):\n    for i in range(30):\n        emit(i)\n" + progressScript
	require.NoError(t, os.WriteFile(script, []byte(src), 0o644))
	run := func(stderr io.Writer) {
		in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: stderr})
		_, err := in.ExecFile(context.Background(), script)
		require.NoError(t, err)
		require.NoError(t, in.Close())
	}

	t.Run("terminal", func(t *testing.T) {
		ctl, tty := openPTY(t)
		defer ctl.Close()
		var screen bytes.Buffer
		copied := make(chan struct{})
		go func() {
			defer close(copied)
			io.Copy(&screen, ctl) //nolint:errcheck // ends with EIO once tty closes
		}()
		run(tty)
		tty.Close()
		<-copied
		out := screen.String()
		assert.Contains(t, out, "job f")
		assert.Contains(t, out, "50/50")
		assert.Contains(t, out, "9/9")
		assert.Contains(t, out, "(30/-,", "a stream has no known total")
		assert.Contains(t, out, "items/s")
		assert.NotContains(t, out, "/7 ", "progress=False draws no bar")
	})

	t.Run("not a terminal", func(t *testing.T) {
		var buf bytes.Buffer
		run(&buf)
		assert.Empty(t, buf.String())
		f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
		require.NoError(t, err)
		defer f.Close()
		run(f)
		b, err := os.ReadFile(f.Name())
		require.NoError(t, err)
		assert.Empty(t, string(b))
	})
}
