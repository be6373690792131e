package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/semisync/semisync/engine"
)

// A fuzzGraph is a random graph decoded from bytes.
type fuzzGraph struct {
	limit int // pool Limit
	nodes []fuzzNode
}

type fuzzNode struct {
	deps []int // indexes of earlier nodes, possibly repeated
	mode fuzzMode
}

type fuzzMode uint8

const (
	fuzzOK         fuzzMode = iota
	fuzzSleep               // succeeds after a short Worker.Sleep
	fuzzFail                // the node's function returns an error
	fuzzOnDoneFail          // onDone returns an error for it
	fuzzJoin                // a join node
)

const maxFuzzNodes = 40

// decodeFuzzGraph turns data into a graph of at most maxFuzzNodes nodes.
// data[0] gives the node count, data[1] the pool's Limit; then each node
// takes a byte x (mode from x%8, dependency count from x>>3%4) and one byte
// per dependency y, an earlier node. Missing bytes read as zero.
func decodeFuzzGraph(data []byte) fuzzGraph {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	n := int(next()) % (maxFuzzNodes + 1)
	g := fuzzGraph{limit: 1 + int(next())%4, nodes: make([]fuzzNode, n)}
	for i := range g.nodes {
		x := next()
		switch x % 8 {
		case 4:
			g.nodes[i].mode = fuzzJoin
		case 5:
			g.nodes[i].mode = fuzzSleep
		case 6:
			g.nodes[i].mode = fuzzFail
		case 7:
			g.nodes[i].mode = fuzzOnDoneFail
		}
		for range (x >> 3) % 4 {
			if y := next(); i > 0 {
				g.nodes[i].deps = append(g.nodes[i].deps, int(y&0x7f)%i)
			}
		}
	}
	return g
}

type fuzzOutcome uint8

const (
	outSucceeded fuzzOutcome = iota
	outFailed
	outSkipped
)

// expect returns what must happen to each node, and for each node the set
// of its transitive dependencies.
func (g fuzzGraph) expect() ([]fuzzOutcome, []map[int]bool) {
	out := make([]fuzzOutcome, len(g.nodes))
	ancestors := make([]map[int]bool, len(g.nodes))
	for i, node := range g.nodes { // dependencies come first
		anc := map[int]bool{}
		for _, d := range node.deps {
			anc[d] = true
			for a := range ancestors[d] {
				anc[a] = true
			}
			if out[d] != outSucceeded {
				out[i] = outSkipped
			}
		}
		if out[i] == outSucceeded && (node.mode == fuzzFail || node.mode == fuzzOnDoneFail) {
			out[i] = outFailed
		}
		ancestors[i] = anc
	}
	return out, ancestors
}

var (
	errFuzzNode   = errors.New("node failed")
	errFuzzOnDone = errors.New("onDone failed")
)

// fuzzRun records one run of a fuzzGraph.
type fuzzRun struct {
	mu       sync.Mutex
	runs     []int
	finished []bool
	problems []string

	onDone []int // only touched by onDone, on the caller's goroutine
}

func (r *fuzzRun) problem(format string, args ...any) {
	r.mu.Lock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// checkFuzzGraph runs fg on ex and checks the outcome.
func checkFuzzGraph(t *testing.T, fg fuzzGraph, exName string, ex engine.Executor) {
	t.Helper()
	n := len(fg.nodes)
	r := &fuzzRun{runs: make([]int, n), finished: make([]bool, n)}
	want, ancestors := fg.expect()
	var g engine.Graph
	real := 0
	for i, node := range fg.nodes {
		deps := make([]engine.NodeID, len(node.deps))
		for k, d := range node.deps {
			deps[k] = engine.NodeID(d)
		}
		var id engine.NodeID
		if node.mode == fuzzJoin {
			id = g.Join(deps...)
		} else {
			real++
			id = g.Add(func(ctx context.Context, w *engine.Worker) (any, error) {
				r.mu.Lock()
				r.runs[i]++
				for d := range ancestors[i] { // through joins too
					if fg.nodes[d].mode != fuzzJoin && !r.finished[d] {
						r.problems = append(r.problems, fmt.Sprintf("node %d started before its dependency %d finished", i, d))
					}
				}
				r.mu.Unlock()
				switch node.mode {
				case fuzzSleep:
					if err := w.Sleep(ctx, time.Microsecond); err != nil {
						return nil, err
					}
				case fuzzFail:
					return nil, errFuzzNode
				}
				r.mu.Lock()
				r.finished[i] = true
				r.mu.Unlock()
				return i, nil
			}, deps...)
		}
		if id != engine.NodeID(i) {
			t.Fatalf("%s: node %d got id %d", exName, i, id)
		}
	}

	var caller uint64 // the goroutine that calls Run
	onDone := func(id engine.NodeID, v any) error {
		if g := goid(); g != caller {
			r.problem("onDone(%d) on goroutine %d, not the caller's %d", id, g, caller)
		}
		i, ok := v.(int)
		if !ok || int(id) != i {
			r.problem("onDone(%d, %v): wrong value", id, v)
			return nil
		}
		if fg.nodes[i].mode == fuzzJoin {
			r.problem("onDone(%d) for a join", id)
		}
		r.onDone = append(r.onDone, i)
		if fg.nodes[i].mode == fuzzOnDoneFail {
			return errFuzzOnDone
		}
		return nil
	}

	// The guard is only for reporting a hang: Run itself gets a context
	// that never ends, so a slow machine cannot change the outcome.
	guard, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type result struct {
		err      error
		panicked any
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() {
			res.panicked = recover()
			done <- res
		}()
		caller = goid()
		res.err = g.Run(context.Background(), ex, nil, onDone)
	}()
	var res result
	select {
	case res = <-done:
	case <-guard.Done():
		panic(fmt.Sprintf("%s: hang: Graph.Run did not return (graph %+v)", exName, fg))
	}
	if res.panicked != nil {
		t.Fatalf("%s: Run panicked: %v", exName, res.panicked)
	}
	for _, p := range r.problems {
		t.Errorf("%s: %s", exName, p)
	}

	var wantFailed, wantSkipped []engine.NodeID
	for i, o := range want {
		if fg.nodes[i].mode == fuzzJoin {
			continue
		}
		ran := o != outSkipped // failed nodes ran, then failed
		switch {
		case ran && r.runs[i] != 1:
			t.Errorf("%s: node %d ran %d times, want once", exName, i, r.runs[i])
		case !ran && r.runs[i] != 0:
			t.Errorf("%s: node %d ran although a dependency failed", exName, i)
		}
		switch o {
		case outFailed:
			wantFailed = append(wantFailed, engine.NodeID(i))
		case outSkipped:
			wantSkipped = append(wantSkipped, engine.NodeID(i))
		}
	}

	// onDone: exactly the real nodes whose function succeeded, each after
	// all of its real transitive dependencies.
	reported := map[int]bool{}
	for _, i := range r.onDone {
		if reported[i] {
			t.Errorf("%s: onDone(%d) called twice", exName, i)
		}
		for d := range ancestors[i] {
			if fg.nodes[d].mode != fuzzJoin && !reported[d] {
				t.Errorf("%s: onDone(%d) before onDone(%d), a dependency", exName, i, d)
			}
		}
		reported[i] = true
	}
	for i, o := range want {
		wantReported := fg.nodes[i].mode != fuzzJoin &&
			(o == outSucceeded || o == outFailed && fg.nodes[i].mode == fuzzOnDoneFail)
		if reported[i] != wantReported {
			t.Errorf("%s: onDone(%d) called: %v, want %v", exName, i, reported[i], wantReported)
		}
	}

	if len(wantFailed) == 0 {
		if res.err != nil {
			t.Fatalf("%s: Run: %v, want nil", exName, res.err)
		}
		return
	}
	var ge *engine.GraphError
	if !errors.As(res.err, &ge) {
		t.Fatalf("%s: Run returned %v, want a *GraphError", exName, res.err)
	}
	var gotFailed, gotSkipped []engine.NodeID
	for _, f := range ge.Failed {
		gotFailed = append(gotFailed, f.ID)
		if !errors.Is(f.Err, errFuzzNode) && !errors.Is(f.Err, errFuzzOnDone) {
			t.Errorf("%s: node %d failed with %v", exName, f.ID, f.Err)
		}
	}
	for _, s := range ge.Skipped {
		gotSkipped = append(gotSkipped, s.ID)
		// The node blamed must be a failed (real) transitive dependency.
		b := int(s.Because)
		if b < 0 || b >= n || want[b] != outFailed || fg.nodes[b].mode == fuzzJoin || !ancestors[s.ID][b] {
			t.Errorf("%s: node %d skipped because of %d, which is not a failed dependency", exName, s.ID, s.Because)
		}
	}
	if !slices.Equal(gotFailed, wantFailed) {
		t.Errorf("%s: Failed = %v, want %v", exName, gotFailed, wantFailed)
	}
	if !slices.Equal(gotSkipped, wantSkipped) {
		t.Errorf("%s: Skipped = %v, want %v", exName, gotSkipped, wantSkipped)
	}
	if len(ge.Cancelled) != 0 || ge.Cause != nil {
		t.Errorf("%s: Cancelled = %v, Cause = %v; nothing was cancelled", exName, ge.Cancelled, ge.Cause)
	}
	if ge.Total != real {
		t.Errorf("%s: Total = %d, want %d", exName, ge.Total, real)
	}
}

func FuzzGraph(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0})                                            // one node
	f.Add([]byte{3, 1, 0, 8, 0, 8, 1})                                // chain 0 <- 1 <- 2
	f.Add([]byte{4, 3, 0, 8, 0, 8, 0, 16, 1, 2})                      // diamond
	f.Add([]byte{4, 0, 6, 8, 0, 8, 1, 0})                             // 0 fails: chain skipped, 3 runs
	f.Add([]byte{5, 2, 0, 15, 0, 13, 0, 8, 0, 16, 1, 2})              // onDone failure, sleeping node
	f.Add([]byte{4, 0, 6, 0, 20, 0, 1, 8, 2})                         // a join after a failure
	f.Add([]byte{5, 1, 0, 0, 20, 0, 1, 12, 2, 8, 3})                  // joins of joins
	f.Add([]byte{40, 3, 5, 6, 7, 13, 14, 15, 21, 22, 23, 29, 30, 31}) // 40 nodes, mixed
	f.Add([]byte{40, 0, 24, 1, 2, 3, 24, 4, 5, 6, 24, 7, 8, 9, 30, 1, 2, 3, 29, 0, 0, 0, 28, 5, 6, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		fg := decodeFuzzGraph(data)
		for _, opts := range []engine.PoolOptions{
			{Limit: fg.limit},
			{Serial: true},
			{Serial: true, Max: fg.limit},
		} {
			p := engine.NewPool(opts)
			checkFuzzGraph(t, fg, fmt.Sprintf("%+v", opts), p)
			p.Close()
		}
	})
}
