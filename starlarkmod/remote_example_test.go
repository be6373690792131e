package starlarkmod_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/semisync/semisync/starlarkmod"
)

// loopback is the smallest Remote: it runs each item on another
// Interpreter, in this process, one after the other. starlarkmod/cluster
// does the same through NATS JetStream, with workers elsewhere.
type loopback struct{ worker *starlarkmod.Interpreter }

func (l loopback) Run(ctx context.Context, b *starlarkmod.RemoteBatch, done func(int, []byte, error)) error {
	files := func(hash string) ([]byte, error) { return b.Files[hash], nil }
	for i, it := range b.Items {
		res, err := l.worker.ExecRemote(ctx, b.Fn, b.FnSum, files, it.Args, func(line string) { fmt.Println("worker:", line) })
		done(i, res, err)
	}
	return ctx.Err()
}

// With Options.Remote set, job items, @semisync calls and @future calls
// run through it: here on a second Interpreter, as a cluster's worker
// would. The script's output is what it would be locally, and lines the
// tasks print come back through the worker.
func ExampleRemote() {
	dir, _ := os.MkdirTemp("", "remote")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "square.star")
	os.WriteFile(path, []byte(`
FACTOR = 2

def square(x):
    if x == 3:
        print("three")
    return x * x * FACTOR

print(job(square, range(5)).run())
`), 0o644)

	worker := starlarkmod.New(starlarkmod.Options{})
	defer worker.Close()
	in := starlarkmod.New(starlarkmod.Options{Remote: loopback{worker}})
	defer in.Close()
	if _, err := in.ExecFile(context.Background(), path); err != nil {
		fmt.Println(starlarkmod.FormatError(err))
	}
	// Output:
	// worker: three
	// [0, 2, 8, 18, 32]
}
