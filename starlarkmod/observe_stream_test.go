package starlarkmod_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

// streamed has enough tasks of every kind that a streamed trace formats
// most while the run goes and leaves some (job items, futures started by
// tasks) to WriteTrace.
const streamed = `
@semisync
def f(i):
    return i

for i in range(3000):
    f(i)
semisync.begin()

def double(x):
    return 2 * x
job(double, range(2000), keep_results = False).run()

@future
def h(x):
    return x

@future
def outer(n):
    return len(wait([h(i) for i in range(n)]))

print(len(wait([h(i) for i in range(600)])), wait([outer(700)]))
`

// traceShape is what a trace says, timestamps aside: the slices (by
// category, name and args) and the number of flows.
func traceShape(t *testing.T, data []byte) (slices map[string]int, flows int) {
	t.Helper()
	var file struct {
		TraceEvents []struct {
			Ph, Name, Cat string
			ID            *int
			Args          map[string]any
		} `json:"traceEvents"`
	}
	require.NoError(t, json.Unmarshal(data, &file), "not JSON")
	slices = map[string]int{}
	starts, ends := map[int]int{}, map[int]int{}
	for _, e := range file.TraceEvents {
		switch e.Ph {
		case "X":
			slices[fmt.Sprintf("%s %s %v %v %v %v", e.Cat, e.Name, e.Args["task"], e.Args["at"], e.Args["def"], e.Args["item"])]++
		case "s":
			require.NotNil(t, e.ID)
			starts[*e.ID]++
		case "f":
			require.NotNil(t, e.ID)
			ends[*e.ID]++
		}
	}
	assert.Equal(t, starts, ends, "flows pair up")
	for id, n := range starts {
		assert.Equal(t, 1, n, "flow id %d used %d times", id, n)
	}
	return slices, len(starts)
}

// TestStreamTrace checks that a streamed trace (StreamTrace, as --trace
// uses) says what a trace written after the run says: the same slices
// with the same args, and a flow to each task.
func TestStreamTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.star")
	require.NoError(t, os.WriteFile(path, []byte(streamed), 0o644))
	trace := func(stream bool) []byte {
		obs := starlarkmod.NewObserver()
		var out bytes.Buffer
		if stream {
			require.NoError(t, obs.StreamTrace(&out))
		}
		var stdout bytes.Buffer
		in := starlarkmod.New(starlarkmod.Options{Stdout: &stdout, Observer: obs})
		_, err := in.ExecFile(context.Background(), path)
		require.NoError(t, err)
		require.NoError(t, in.Close())
		assert.Equal(t, "600 [700]\n", stdout.String())
		require.NoError(t, obs.WriteTrace(&out))
		return out.Bytes()
	}
	wantSlices, wantFlows := traceShape(t, trace(false))
	gotSlices, gotFlows := traceShape(t, trace(true))
	assert.Equal(t, wantSlices, gotSlices)
	assert.Equal(t, wantFlows, gotFlows)
	assert.Equal(t, 3000+1024+(2000-1024)/2+600+701, gotFlows, "a flow to every task (job items sampled past 1024)")
}

type failWriter struct{ n int }

func (w *failWriter) Write(b []byte) (int, error) {
	if w.n++; w.n > 1 {
		return 0, errors.New("disk full")
	}
	return len(b), nil
}

// TestStreamTraceErrors: WriteTrace writes to the stream's writer only,
// and reports the stream's write errors.
func TestStreamTraceErrors(t *testing.T) {
	obs := starlarkmod.NewObserver()
	w := &failWriter{}
	require.NoError(t, obs.StreamTrace(w))
	assert.ErrorContains(t, obs.StreamTrace(w), "streamed already")
	in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Observer: obs})
	_, err := in.Exec(context.Background(), "s.star", []byte("@semisync\ndef f(i):\n    return i\nfor i in range(2000):\n    f(i)\nsemisync.begin()\n"), nil)
	require.NoError(t, err)
	require.NoError(t, in.Close())
	assert.ErrorContains(t, obs.WriteTrace(io.Discard), "streams to another writer")
	assert.ErrorContains(t, obs.WriteTrace(w), "disk full")
}
