package starlarkmod_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
)

// Embedding: run a script with a host module of your own, then read its
// globals.
func Example() {
	dir, _ := os.MkdirTemp("", "semisync-example")
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "report.star")
	os.WriteFile(script, []byte(`
load("host", "greeting")

def show(name, n):
    print(greeting + ", " + name + ": " + str(n))

@semisync(callback=show)
def count(name):
    return name, len(name)

count("revenue")
count("expenses")
semisync.begin()
total = 42
`), 0o644)

	in := starlarkmod.New(starlarkmod.Options{
		Stdout:     os.Stdout,
		Sequential: true, // deterministic output for this example
		Modules: map[string]starlark.StringDict{
			"host": {"greeting": starlark.String("hello")},
		},
	})
	defer in.Close()
	globals, err := in.ExecFile(context.Background(), script)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("total =", globals["total"])
	// Output:
	// hello, revenue: 7
	// hello, expenses: 8
	// total = 42
}

// A host builtin that blocks waits through starlarkmod.Recv: it stops when
// the script is cancelled, does not hold up other tasks, and works in
// sequential mode, where the task that opens the gate runs while the
// script waits.
func ExampleRecv() {
	gate := make(chan string, 1)
	host := starlark.StringDict{
		"wait_for_gate": starlark.NewBuiltin("host.wait_for_gate", func(th *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			msg, _, err := starlarkmod.Recv(th, gate, 0)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name(), err)
			}
			return starlark.String(msg), nil
		}),
		"open_gate": starlark.NewBuiltin("host.open_gate", func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			gate <- args[0].(starlark.String).GoString()
			return starlark.None, nil
		}),
	}
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "gate.star")
	os.WriteFile(path, []byte(`
load("host", "wait_for_gate", "open_gate")

@future
def opener():
    open_gate("opened by a task")

opener()
print(wait_for_gate())
`), 0o644)
	in := starlarkmod.New(starlarkmod.Options{
		Stdout:     os.Stdout,
		Sequential: true,
		Modules:    map[string]starlark.StringDict{"host": host},
	})
	defer in.Close()
	if _, err := in.ExecFile(context.Background(), path); err != nil {
		fmt.Println(err)
	}
	// Output: opened by a task
}
