package cluster

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

const cachedGraph = `
@semisync(cache=True)
def square(i):
    s = 0
    for k in range(i):
        s += i
    return s

hs = [square(i) for i in range(50)]
semisync.begin()
print(sum([h.result() for h in hs]))
`

// Two callers of one deployment share the object-store cache: the second
// run (a new interpreter, as another process would be) computes nothing,
// and prints the same.
func TestObjectCacheSharedByCallers(t *testing.T) {
	s := startServer(t, t.TempDir())
	e := newExecutor(t, s, Options{})
	oc, err := e.Cache(context.Background(), 0)
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "graph.star")
	require.NoError(t, os.WriteFile(path, []byte(cachedGraph), 0o644))
	run := func() (string, starlarkmod.CacheStats) {
		var out bytes.Buffer
		in := starlarkmod.New(starlarkmod.Options{Stdout: &out, Stderr: &out, Cache: oc})
		r := in.NewRun(context.Background(), "")
		_, err := r.ExecFile(path)
		require.NoError(t, err, out.String())
		st := r.CacheStats()
		require.NoError(t, in.Close())
		return out.String(), st
	}
	out1, st1 := run()
	assert.Equal(t, "40425\n", out1)
	assert.Equal(t, int64(50), st1.Misses)
	assert.Equal(t, int64(50), st1.Stored)

	out2, st2 := run()
	assert.Equal(t, out1, out2)
	assert.Equal(t, int64(50), st2.Hits)
	assert.Equal(t, int64(0), st2.Misses)

	// A value that is not there is a miss, not an error.
	_, ok := oc.Get("no-such-key")
	assert.False(t, ok)
}
