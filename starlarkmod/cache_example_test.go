package starlarkmod_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
)

// The result cache: the second run of a script finds every result of its
// pure calls in the cache directory and runs none of them. A host builtin
// declared pure (Options.PureBuiltins) may be called from cached
// functions.
func ExampleOpenDirCache() {
	dir, _ := os.MkdirTemp("", "semisync-cache-example")
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "squares.star")
	os.WriteFile(script, []byte(`
load("host", "scale")

@semisync(cache=True)
def square(i):
    return scale(i * i)

hs = [square(i) for i in range(100)]
semisync.begin()
print(hs[9].result())
`), 0o644)
	host := starlark.StringDict{"scale": starlark.NewBuiltin("scale", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var n int
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &n); err != nil {
			return nil, err
		}
		return starlark.MakeInt(10 * n), nil
	})}

	for run := 1; run <= 2; run++ {
		cache, err := starlarkmod.OpenDirCache(filepath.Join(dir, "cache"), 0)
		if err != nil {
			fmt.Println(err)
			return
		}
		in := starlarkmod.New(starlarkmod.Options{
			Stdout:       os.Stdout,
			Modules:      map[string]starlark.StringDict{"host": host},
			PureBuiltins: []string{"host.scale"},
			Cache:        cache,
		})
		if _, err := in.ExecFile(context.Background(), script); err != nil {
			fmt.Println(err)
		}
		in.Close()
		cache.Close()
		fmt.Printf("run %d: %v\n", run, in.CacheStats())
	}
	// Output:
	// 810
	// run 1: cache: 0 hits, 100 misses, 100 stored
	// 810
	// run 2: cache: 100 hits, 0 misses, 0 stored
}
