package starlarkmod_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
	"github.com/semisync/semisync/starlarkmod/internal/portable"
)

// BenchmarkRemoteJob runs a job of b.N trivial items through an
// in-process Remote: the per-item cost of the seam (encoding the item,
// ExecRemote on the worker interpreter, encoding and decoding the result),
// without any transport.
func BenchmarkRemoteJob(b *testing.B) {
	for _, batch := range []bool{false, true} {
		b.Run(map[bool]string{false: "ExecRemote", true: "ExecRemoteBatch"}[batch], func(b *testing.B) {
			benchRemoteJob(b, batch)
		})
	}
}

func benchRemoteJob(b *testing.B, batch bool) {
	dir := b.TempDir()
	path := filepath.Join(dir, "bench.star")
	src := "def f(x):\n    return x + 1\n\nr = job(f, range(" + strconv.Itoa(b.N) + "), processes=2, progress=False).run()\n"
	require.NoError(b, os.WriteFile(path, []byte(src), 0o644))
	worker := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: os.Stderr})
	defer worker.Close()
	in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: os.Stderr,
		Remote: &inProcess{worker: worker, name: "w", out: func(string) {}, batch: batch}})
	defer in.Close()
	b.ResetTimer()
	_, err := in.ExecFile(context.Background(), path)
	require.NoError(b, err)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkExecRemote calls ExecRemote for one trivial item at a time on
// one goroutine: the worker side's fixed cost per task.
func BenchmarkExecRemote(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "bench.star")
	src := "def f(x):\n    return x + 1\n\nr = job(f, [1], progress=False).run()\n"
	require.NoError(b, os.WriteFile(path, []byte(src), 0o644))
	worker := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: os.Stderr})
	defer worker.Close()
	capture := &capturing{}
	in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: os.Stderr, Remote: capture})
	defer in.Close()
	_, err := in.ExecFile(context.Background(), path)
	require.NoError(b, err)
	batch := capture.batch
	files := func(h string) ([]byte, error) { return batch.Files[h], nil }
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := worker.ExecRemote(ctx, batch.Fn, batch.FnSum, files, batch.Items[0].Args, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// capturing is a Remote that keeps the batch it gets and answers None.
type capturing struct{ batch *starlarkmod.RemoteBatch }

func (c *capturing) Run(_ context.Context, b *starlarkmod.RemoteBatch, done func(int, []byte, error)) error {
	c.batch = b
	none, _ := portable.EncodeValue(starlark.None)
	for i := range b.Items {
		done(i, none, nil)
	}
	return nil
}
