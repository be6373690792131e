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
