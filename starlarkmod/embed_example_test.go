package starlarkmod_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing/fstest"
	"time"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
)

// Run a source string with a host function, call one of its functions
// from Go, and convert the result to Go values.
func ExampleInterpreter_Exec() {
	in := starlarkmod.New(starlarkmod.Options{Stdout: os.Stdout})
	defer in.Close()

	price := starlark.NewBuiltin("price", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var item string
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &item); err != nil {
			return nil, err
		}
		return starlark.MakeInt(len(item) * 10), nil
	})
	globals, err := in.Exec(context.Background(), "shop.star", `
def total(items):
    # each price() call runs as a job item, in parallel
    return sum(job(price, items).run())

def report(items):
    return {"items": items, "total": total(items)}
`, starlark.StringDict{"price": price})
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := in.Call(context.Background(), globals["report"], starlark.Tuple{starlark.NewList([]starlark.Value{starlark.String("tea"), starlark.String("scones")})}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	g, _ := starlarkmod.ToGo(v)
	r := g.(map[string]any)
	fmt.Println(r["items"], r["total"].(int64))
	// Output: [tea scones] 90
}

// Cancel a script that runs too long: the error says where it stopped,
// and errors.Is tells a timeout from a script's own error.
func ExampleInterpreter_Exec_timeout() {
	in := starlarkmod.New(starlarkmod.Options{})
	defer in.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := in.Exec(ctx, "spin.star", "while True:\n    pass\n", nil)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output: true
}

// Run a script from an fs.FS (embed.FS, a zip file, a map in a test):
// its load() calls read from the same FS.
func ExampleInterpreter_ExecFS() {
	fsys := fstest.MapFS{
		"jobs/main.star": {Data: []byte(`load("./lib.star", "double")
print(job(double, [1, 2, 3]).run())
`)},
		"jobs/lib.star": {Data: []byte("def double(x):\n    return 2 * x\n")},
	}
	in := starlarkmod.New(starlarkmod.Options{Stdout: os.Stdout})
	defer in.Close()
	if _, err := in.ExecFS(context.Background(), fsys, "jobs/main.star", nil); err != nil {
		fmt.Println(err)
	}
	// Output: [2, 4, 6]
}

// Convert Go values to Starlark and back.
func ExampleToGo() {
	v, _ := starlarkmod.FromGo(map[string]any{
		"name":  "semisync",
		"tags":  []string{"go", "starlark"},
		"score": 9.5,
		"none":  nil,
	})
	fmt.Println(v)
	g, _ := starlarkmod.ToGo(starlark.Tuple{starlark.MakeInt(1), starlark.Bytes("b"), starlark.True})
	fmt.Printf("%#v\n", g)
	// Output:
	// {"name": "semisync", "none": None, "score": 9.5, "tags": ["go", "starlark"]}
	// []interface {}{1, []uint8{0x62}, true}
}

// A host builtin that blocks (a request, a query) runs its call through
// starlarkmod.Block: it gets the task's context, counts as waiting (other
// tasks go on), and returns when the script is cancelled.
func ExampleBlock() {
	fetch := starlark.NewBuiltin("fetch", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var url string
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &url); err != nil {
			return nil, err
		}
		body, err := starlarkmod.Block(th, func(ctx context.Context) (string, error) {
			select { // a stand-in for an HTTP request made with ctx
			case <-time.After(10 * time.Millisecond):
				return "<page " + url + ">", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		return starlark.String(body), nil
	})
	in := starlarkmod.New(starlarkmod.Options{Stdout: os.Stdout})
	defer in.Close()
	_, err := in.Exec(context.Background(), "fetch.star", `
@future
def get(url):
    return fetch(url)

print(wait([get("a"), get("b")]))
`, starlark.StringDict{"fetch": fetch})
	if err != nil {
		fmt.Println(err)
	}
	// Output: ["<page a>", "<page b>"]
}

// A host can withhold builtins (here sleep and the dispatcher) and cap
// the number of tasks that compute at once (tasks waiting in sleep, a
// result or a Block do not count, so tasks that wait for tasks cannot
// deadlock; see Options.Limit for what that allows).
func ExampleOptions_withhold() {
	var running, most atomic.Int64
	work := starlark.NewBuiltin("work", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		for end := time.Now().Add(2 * time.Millisecond); time.Now().Before(end); {
			// computing
		}
		return starlark.None, nil
	})
	in := starlarkmod.New(starlarkmod.Options{
		Stdout:   os.Stdout,
		Withhold: []string{"sleep", "Dispatcher", "dispatcher"},
		Limit:    2, // at most two tasks compute at once
	})
	defer in.Close()
	_, err := in.Exec(context.Background(), "host.star", `
@future
def task(i):
    work()

futures = [task(i) for i in range(20)]
[f.result() for f in futures]
sleep(1)
`, starlark.StringDict{"work": work})
	fmt.Println(starlarkmod.FormatError(err))
	fmt.Println("at most 2 at once:", most.Load() <= 2)
	// Output:
	// Traceback (most recent call last):
	//   host.star:8:6: in <toplevel>
	// Error in sleep: sleep: not available here: the program running this script withheld it
	// at most 2 at once: true
}
