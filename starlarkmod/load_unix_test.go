//go:build unix

package starlarkmod_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

// TestLoadNotRegularFile: load refuses a named pipe (reading it would block
// forever) and a device (/dev/zero never ends) instead of reading them.
func TestLoadNotRegularFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo.star"), 0o644))
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero.star")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "dir.star"), 0o755))
	tests := []struct {
		name   string
		module string
		root   string // "": the script's directory
		want   string
	}{
		{"named pipe", "./fifo.star", "", "fifo.star is not a regular file (it is a named pipe)"},
		{"directory", "./dir.star", "", "dir.star is not a regular file (it is a directory)"},
		{"link to a device outside the root", "./zero.star", "", "zero.star is a link to a file outside the script's root directory"},
		{"link to a device inside the root", "./zero.star", "/", "zero.star is not a regular file (it is a character device)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "main.star")
			require.NoError(t, writeFile(path, `load("`+tc.module+`", "x")`+"\n"))
			in := starlarkmod.New(starlarkmod.Options{})
			defer in.Close()
			if tc.root != "" {
				in.SetRoot(tc.root)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := in.ExecFile(ctx, path)
			require.Error(t, err)
			assert.Contains(t, backtrace(err), "cannot load "+tc.module+": ")
			assert.Contains(t, backtrace(err), tc.want)
		})
	}
}
