package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	deps []int // indexes, possibly repeated, possibly forming cycles
	mode fuzzMode
}

type fuzzMode uint8

const (
	fuzzOK         fuzzMode = iota
	fuzzBlock               // succeeds after a Worker.Block/unblock
	fuzzFail                // the node's function returns an error
	fuzzOnDoneFail          // onDone returns an error for it
)

const maxFuzzNodes = 40

// decodeFuzzGraph turns data into a graph of at most maxFuzzNodes nodes.
// data[0] gives the node count, data[1] the pool's Limit; then each node
// takes a byte x (mode from x%8, dependency count from x>>3%4) and one byte
// per dependency y: with the high bit set, any node (cycles happen),
// otherwise an earlier node (acyclic). Missing bytes read as zero.
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
		case 5:
			g.nodes[i].mode = fuzzBlock
		case 6:
			g.nodes[i].mode = fuzzFail
		case 7:
			g.nodes[i].mode = fuzzOnDoneFail
		}
		for range (x >> 3) % 4 {
			y := next()
			switch {
			case y&0x80 != 0:
				g.nodes[i].deps = append(g.nodes[i].deps, int(y&0x7f)%n)
			case i > 0:
				g.nodes[i].deps = append(g.nodes[i].deps, int(y)%i)
			}
		}
	}
	return g
}

func fuzzName(i int) string { return fmt.Sprintf("n%02d", i) }

// hasCycle reports whether the graph has a dependency cycle.
func (g fuzzGraph) hasCycle() bool {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(g.nodes))
	var visit func(i int) bool
	visit = func(i int) bool {
		color[i] = grey
		for _, d := range g.nodes[i].deps {
			if color[d] == grey || color[d] == white && visit(d) {
				return true
			}
		}
		color[i] = black
		return false
	}
	for i := range g.nodes {
		if color[i] == white && visit(i) {
			return true
		}
	}
	return false
}

type fuzzOutcome uint8

const (
	outSucceeded fuzzOutcome = iota
	outFailed
	outSkipped
)

// expect returns what must happen to each node of an acyclic graph, and for
// each node the set of its transitive dependencies.
func (g fuzzGraph) expect() ([]fuzzOutcome, []map[int]bool) {
	out := make([]fuzzOutcome, len(g.nodes))
	ancestors := make([]map[int]bool, len(g.nodes))
	var visit func(i int)
	visit = func(i int) {
		if ancestors[i] != nil {
			return
		}
		anc := map[int]bool{}
		out[i] = outSucceeded
		for _, d := range g.nodes[i].deps {
			visit(d)
			anc[d] = true
			for a := range ancestors[d] {
				anc[a] = true
			}
			if out[d] != outSucceeded {
				out[i] = outSkipped
			}
		}
		if out[i] == outSucceeded && (g.nodes[i].mode == fuzzFail || g.nodes[i].mode == fuzzOnDoneFail) {
			out[i] = outFailed
		}
		ancestors[i] = anc
	}
	for i := range g.nodes {
		visit(i)
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
	var g engine.Graph
	for i, node := range fg.nodes {
		deps := make([]string, len(node.deps))
		for k, d := range node.deps {
			deps[k] = fuzzName(d)
		}
		err := g.Add(fuzzName(i), func(ctx context.Context, w *engine.Worker) (any, error) {
			r.mu.Lock()
			r.runs[i]++
			for _, d := range node.deps {
				if !r.finished[d] {
					r.problems = append(r.problems, fmt.Sprintf("%s started before its dependency %s finished", fuzzName(i), fuzzName(d)))
				}
			}
			r.mu.Unlock()
			switch node.mode {
			case fuzzBlock:
				w.Block()()
			case fuzzFail:
				return nil, errFuzzNode
			}
			r.mu.Lock()
			r.finished[i] = true
			r.mu.Unlock()
			return i, nil
		}, deps...)
		if err != nil {
			t.Fatalf("%s: Add(%s): %v", exName, fuzzName(i), err)
		}
	}

	var caller uint64 // the goroutine that calls Run
	onDone := func(name string, v any) error {
		if id := goid(); id != caller {
			r.problem("onDone(%s) on goroutine %d, not the caller's %d", name, id, caller)
		}
		i, ok := v.(int)
		if !ok || name != fuzzName(i) {
			r.problem("onDone(%s, %v): wrong value", name, v)
			return nil
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
		res.err = g.Run(context.Background(), ex, onDone)
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

	if fg.hasCycle() {
		if res.err == nil || !strings.Contains(res.err.Error(), "cycle") {
			t.Fatalf("%s: graph has a cycle, Run returned %v", exName, res.err)
		}
		checkCyclePath(t, exName, fg, res.err.Error())
		for i, c := range r.runs {
			if c != 0 {
				t.Errorf("%s: %s ran although the graph has a cycle", exName, fuzzName(i))
			}
		}
		if len(r.onDone) != 0 {
			t.Errorf("%s: onDone called although the graph has a cycle", exName)
		}
		return
	}

	want, ancestors := fg.expect()
	var wantFailed, wantSkipped []string
	for i, o := range want {
		ran := o != outSkipped // failed nodes ran, then failed
		switch {
		case ran && r.runs[i] != 1:
			t.Errorf("%s: %s ran %d times, want once", exName, fuzzName(i), r.runs[i])
		case !ran && r.runs[i] != 0:
			t.Errorf("%s: %s ran although a dependency failed", exName, fuzzName(i))
		}
		switch o {
		case outFailed:
			wantFailed = append(wantFailed, fuzzName(i))
		case outSkipped:
			wantSkipped = append(wantSkipped, fuzzName(i))
		}
	}

	// onDone: exactly the nodes whose function succeeded, each after all
	// of its dependencies.
	reported := map[int]bool{}
	for _, i := range r.onDone {
		if reported[i] {
			t.Errorf("%s: onDone(%s) called twice", exName, fuzzName(i))
		}
		for _, d := range fg.nodes[i].deps {
			if !reported[d] {
				t.Errorf("%s: onDone(%s) before onDone(%s), a dependency", exName, fuzzName(i), fuzzName(d))
			}
		}
		reported[i] = true
	}
	for i, o := range want {
		wantReported := o == outSucceeded || o == outFailed && fg.nodes[i].mode == fuzzOnDoneFail
		if reported[i] != wantReported {
			t.Errorf("%s: onDone(%s) called: %v, want %v", exName, fuzzName(i), reported[i], wantReported)
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
	var gotFailed, gotSkipped []string
	for _, f := range ge.Failed {
		gotFailed = append(gotFailed, f.Name)
		if !errors.Is(f.Err, errFuzzNode) && !errors.Is(f.Err, errFuzzOnDone) {
			t.Errorf("%s: %s failed with %v", exName, f.Name, f.Err)
		}
	}
	failedIdx := map[string]int{}
	for i := range fg.nodes {
		failedIdx[fuzzName(i)] = i
	}
	for _, s := range ge.Skipped {
		gotSkipped = append(gotSkipped, s.Name)
		// The node blamed must be a failed transitive dependency.
		b, ok := failedIdx[s.Because]
		if !ok || want[b] != outFailed || !ancestors[failedIdx[s.Name]][b] {
			t.Errorf("%s: %s skipped because of %q, which is not a failed dependency", exName, s.Name, s.Because)
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
	if ge.Total != n {
		t.Errorf("%s: Total = %d, want %d", exName, ge.Total, n)
	}
}

// checkCyclePath checks that the path in a cycle error is a real cycle:
// "a -> b -> ... -> a", each node depending on the next.
func checkCyclePath(t *testing.T, exName string, fg fuzzGraph, msg string) {
	t.Helper()
	_, path, ok := strings.Cut(msg, "cycle: ")
	if !ok {
		t.Errorf("%s: no path in cycle error %q", exName, msg)
		return
	}
	names := strings.Split(path, " -> ")
	if len(names) < 2 || names[0] != names[len(names)-1] {
		t.Errorf("%s: cycle path %q does not end where it starts", exName, path)
		return
	}
	idx := map[string]int{}
	for i := range fg.nodes {
		idx[fuzzName(i)] = i
	}
	for k := 0; k+1 < len(names); k++ {
		i, ok1 := idx[names[k]]
		j, ok2 := idx[names[k+1]]
		if !ok1 || !ok2 || !slices.Contains(fg.nodes[i].deps, j) {
			t.Errorf("%s: cycle path %q: %s does not depend on %s", exName, path, names[k], names[k+1])
		}
	}
}

func FuzzGraph(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0})                                            // one node
	f.Add([]byte{3, 1, 0, 8, 0, 8, 1})                                // chain n00 <- n01 <- n02
	f.Add([]byte{4, 3, 0, 8, 0, 8, 0, 16, 1, 2})                      // diamond
	f.Add([]byte{4, 0, 6, 8, 0, 8, 1, 0})                             // n00 fails: chain skipped, n03 runs
	f.Add([]byte{5, 2, 0, 15, 0, 13, 0, 8, 0, 16, 1, 2})              // onDone failure, blocking node
	f.Add([]byte{2, 0, 8, 0x81, 8, 0x80})                             // n00 <-> n01 cycle
	f.Add([]byte{3, 1, 0, 8, 0x82, 8, 1})                             // cycle n01 -> n02 -> n01
	f.Add([]byte{1, 0, 8, 0x80})                                      // self-cycle
	f.Add([]byte{40, 3, 5, 6, 7, 13, 14, 15, 21, 22, 23, 29, 30, 31}) // 40 nodes, mixed
	f.Add([]byte{40, 0, 24, 1, 2, 3, 24, 4, 5, 6, 24, 7, 8, 9, 30, 1, 2, 3, 29, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		fg := decodeFuzzGraph(data)

		p := engine.NewPool(engine.PoolOptions{Limit: fg.limit})
		defer p.Close()
		checkFuzzGraph(t, fg, fmt.Sprintf("Pool(Limit %d)", fg.limit), p)
		checkFuzzGraph(t, fg, "Inline", engine.Inline{})
	})
}
