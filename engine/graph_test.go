package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/semisync/semisync/engine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type spec struct {
	name string
	deps []string
}

// tracker records what the nodes of a graph do. Its node functions check,
// when they start, that every dependency has already finished.
type tracker struct {
	t        *testing.T
	mu       sync.Mutex
	order    []string // start order
	finished map[string]bool
	runs     map[string]int
}

func newTracker(t *testing.T) *tracker {
	return &tracker{t: t, finished: map[string]bool{}, runs: map[string]int{}}
}

// fn returns a node function for name that checks deps, runs body (if any)
// and returns name+"!" and body's error.
func (tr *tracker) fn(name string, deps []string, body func(ctx context.Context, w *engine.Worker) error) engine.Func {
	return func(ctx context.Context, w *engine.Worker) (any, error) {
		tr.mu.Lock()
		for _, d := range deps {
			assert.True(tr.t, tr.finished[d], "%s started before its dependency %s finished", name, d)
		}
		tr.runs[name]++
		tr.order = append(tr.order, name)
		tr.mu.Unlock()

		var err error
		if body != nil {
			err = body(ctx, w)
		}
		if err == nil {
			tr.mu.Lock()
			tr.finished[name] = true
			tr.mu.Unlock()
		}
		return name + "!", err
	}
}

func (tr *tracker) ran() map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	m := make(map[string]int, len(tr.runs))
	for k, v := range tr.runs {
		m[k] = v
	}
	return m
}

// A namedGraph is an engine.Graph whose nodes the tests name.
type namedGraph struct {
	engine.Graph
	ids   map[string]engine.NodeID
	names map[engine.NodeID]string
}

func newNamedGraph() *namedGraph {
	return &namedGraph{ids: map[string]engine.NodeID{}, names: map[engine.NodeID]string{}}
}

// add adds a node (a join if fn is nil) depending on the named nodes.
func (g *namedGraph) add(name string, fn engine.Func, deps ...string) {
	ids := make([]engine.NodeID, len(deps))
	for k, d := range deps {
		id, ok := g.ids[d]
		if !ok {
			panic("test graph: unknown dependency " + d)
		}
		ids[k] = id
	}
	var id engine.NodeID
	if fn == nil {
		id = g.Join(ids...)
	} else {
		id = g.Add(fn, ids...)
	}
	g.ids[name], g.names[id] = id, name
}

// run runs the graph, reporting completions by name.
func (g *namedGraph) run(ctx context.Context, ex engine.Executor, w *engine.Worker, onDone func(name string, v any) error) error {
	var cb func(engine.NodeID, any) error
	if onDone != nil {
		cb = func(id engine.NodeID, v any) error { return onDone(g.names[id], v) }
	}
	return g.Run(ctx, ex, w, cb)
}

type namedErr struct {
	name string
	err  error
}

// report returns a GraphError's lists by name.
func (g *namedGraph) report(ge *engine.GraphError) (failed []namedErr, skipped [][2]string, cancelled []string) {
	for _, f := range ge.Failed {
		failed = append(failed, namedErr{g.names[f.ID], f.Err})
	}
	for _, s := range ge.Skipped {
		skipped = append(skipped, [2]string{g.names[s.ID], g.names[s.Because]})
	}
	for _, c := range ge.Cancelled {
		cancelled = append(cancelled, g.names[c])
	}
	return failed, skipped, cancelled
}

func buildGraph(t *testing.T, tr *tracker, specs []spec, bodies map[string]func(context.Context, *engine.Worker) error) *namedGraph {
	t.Helper()
	g := newNamedGraph()
	for _, s := range specs {
		g.add(s.name, tr.fn(s.name, s.deps, bodies[s.name]), s.deps...)
	}
	require.Equal(t, len(specs), g.Len())
	return g
}

func names(specs []spec) []string {
	var ns []string
	for _, s := range specs {
		ns = append(ns, s.name)
	}
	return ns
}

var dependencyGraphs = []struct {
	name  string
	specs []spec
}{
	{"Single", []spec{{"a", nil}}},
	{"Chain", []spec{{"a", nil}, {"b", []string{"a"}}, {"c", []string{"b"}}, {"d", []string{"c"}}}},
	{"Diamond", []spec{{"top", nil}, {"left", []string{"top"}}, {"right", []string{"top"}}, {"bottom", []string{"left", "right"}}}},
	{"FanIn", []spec{{"x1", nil}, {"x2", nil}, {"x3", nil}, {"x4", nil}, {"sink", []string{"x1", "x2", "x3", "x4"}}}},
	{"FanOut", []spec{{"root", nil}, {"c1", []string{"root"}}, {"c2", []string{"root"}}, {"c3", []string{"root"}}}},
	{"RepeatedDep", []spec{{"a", nil}, {"b", []string{"a", "a"}}, {"c", []string{"b", "a", "b"}}}},
	{"README", []spec{{"revenue", nil}, {"expenses", nil}, {"profit", []string{"revenue", "expenses"}}}},
}

func TestGraphDependenciesRespected(t *testing.T) {
	for _, ec := range executors {
		for _, gc := range dependencyGraphs {
			t.Run(ec.name+"/"+gc.name, func(t *testing.T) {
				tr := newTracker(t)
				g := buildGraph(t, tr, gc.specs, nil)

				var reported []string
				values := map[string]any{}
				err := g.run(bg, ec.newEx(t), nil, func(name string, v any) error {
					// Completion is reported after all dependencies'.
					for _, s := range gc.specs {
						if s.name != name {
							continue
						}
						for _, d := range s.deps {
							assert.Contains(t, values, d, "%s reported before its dependency %s", name, d)
						}
					}
					reported = append(reported, name)
					values[name] = v
					return nil
				})
				require.NoError(t, err)

				for _, n := range names(gc.specs) {
					assert.Equal(t, 1, tr.runs[n], "%s runs exactly once", n)
					assert.Equal(t, n+"!", values[n], "onDone gets the node's value")
				}
				assert.ElementsMatch(t, names(gc.specs), reported)
			})
		}
	}
}

// TestGraphReadyNodesRunConcurrently: independent nodes meet at a barrier
// that opens only when all of them have arrived, so the run deadlocks unless
// they all run at once (or, in a serial pool, all wait at once).
func TestGraphReadyNodesRunConcurrently(t *testing.T) {
	tests := []struct {
		name string
		n    int
		opts engine.PoolOptions
		recv bool // nodes wait through engine.Recv, not a plain receive
	}{
		{"Three", 3, engine.PoolOptions{}, false},
		{"ThreeLimit3", 3, engine.PoolOptions{Limit: 3}, false},
		{"ThreeLimit1Waiting", 3, engine.PoolOptions{Limit: 1}, true},
		{"FiftyLimit2Waiting", 50, engine.PoolOptions{Limit: 2}, true},
		{"FiftySerial", 50, engine.PoolOptions{Serial: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, tt.opts)
			tr := newTracker(t)
			var (
				mu      sync.Mutex
				arrived int
				all     = make(chan struct{})
			)
			body := func(ctx context.Context, w *engine.Worker) error {
				mu.Lock()
				if arrived++; arrived == tt.n {
					close(all)
				}
				mu.Unlock()
				if tt.recv {
					_, _, err := engine.Recv(ctx, w, all, 0)
					return err
				}
				<-all
				return nil
			}
			var specs []spec
			bodies := map[string]func(context.Context, *engine.Worker) error{}
			var names []string
			for i := range tt.n {
				name := fmt.Sprintf("n%d", i)
				specs = append(specs, spec{name, nil})
				bodies[name] = body
				names = append(names, name)
			}
			specs = append(specs, spec{"after", names})
			g := buildGraph(t, tr, specs, bodies)
			require.NoError(t, g.run(bg, p, nil, nil))
			for _, s := range specs {
				assert.Equal(t, 1, tr.runs[s.name])
			}
			assert.Equal(t, "after", tr.order[len(tr.order)-1])
		})
	}
}

func TestGraphInvalidDependencyPanics(t *testing.T) {
	fn := func(context.Context, *engine.Worker) (any, error) { return nil, nil }
	tests := []struct {
		name string
		add  func(g *engine.Graph)
		want string
	}{
		{"Self", func(g *engine.Graph) { g.Add(fn, 0) }, "engine: Graph node 0 depends on 0, which is not a node added before it"},
		{"Later", func(g *engine.Graph) { g.Add(fn); g.Add(fn, 5) }, "engine: Graph node 1 depends on 5, which is not a node added before it"},
		{"Negative", func(g *engine.Graph) { g.Join(-1) }, "engine: Graph node 0 depends on -1, which is not a node added before it"},
		{"NilFunc", func(g *engine.Graph) { g.Add(nil) }, "engine: Graph.Add with a nil Func (use Graph.Join)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g engine.Graph
			assert.Equal(t, tt.want, recoverPanic(func() { tt.add(&g) }))
		})
	}
}

func TestGraphEmpty(t *testing.T) {
	for _, ec := range executors {
		t.Run(ec.name, func(t *testing.T) {
			var g engine.Graph
			assert.Zero(t, g.Len())
			assert.NoError(t, g.Run(bg, ec.newEx(t), nil, func(engine.NodeID, any) error {
				t.Error("onDone called for an empty graph")
				return nil
			}))
		})
	}
}

// failureGraph has a, which fails, its dependents b, c (through b), f (also
// on d), and the independent d, e.
var failureGraph = []spec{
	{"a", nil},
	{"b", []string{"a"}},
	{"d", nil},
	{"c", []string{"b"}},
	{"e", []string{"d"}},
	{"f", []string{"d", "a"}},
}

func TestGraphFailureSkipsDependents(t *testing.T) {
	errOnDone := errors.New("onDone refused")
	tests := []struct {
		name       string
		fnErr      error // returned by a itself
		onDoneErr  error // returned by onDone for a
		wantErr    error
		wantRan    []string
		wantReport []string
	}{
		{"NodeError", errBoom, nil, errBoom, []string{"a", "d", "e"}, []string{"d", "e"}},
		{"OnDoneError", nil, errOnDone, errOnDone, []string{"a", "d", "e"}, []string{"d", "e"}},
	}
	for _, ec := range executors {
		for _, tt := range tests {
			t.Run(ec.name+"/"+tt.name, func(t *testing.T) {
				tr := newTracker(t)
				g := buildGraph(t, tr, failureGraph, map[string]func(context.Context, *engine.Worker) error{
					"a": func(context.Context, *engine.Worker) error { return tt.fnErr },
				})
				var reported []string
				err := g.run(bg, ec.newEx(t), nil, func(name string, _ any) error {
					if name == "a" {
						return tt.onDoneErr
					}
					reported = append(reported, name)
					return nil
				})

				var ge *engine.GraphError
				require.ErrorAs(t, err, &ge)
				assert.Equal(t, []engine.NodeError{{ID: 0, Err: tt.wantErr}}, ge.Failed)
				// Insertion order, not completion order.
				assert.Equal(t, []engine.NodeSkip{{ID: 1, Because: 0}, {ID: 3, Because: 0}, {ID: 5, Because: 0}}, ge.Skipped)
				assert.Empty(t, ge.Cancelled)
				assert.NoError(t, ge.Cause)
				assert.Equal(t, 6, ge.Total)
				assert.ErrorIs(t, err, tt.wantErr)
				assert.Equal(t, fmt.Sprintf("engine: 1 of 6 nodes failed, 3 skipped\nnode 0: %v\nnode 1: skipped: node 0 failed\nnode 3: skipped: node 0 failed\nnode 5: skipped: node 0 failed", tt.wantErr), err.Error())

				ran := tr.ran()
				assert.Len(t, ran, len(tt.wantRan))
				for _, n := range tt.wantRan {
					assert.Equal(t, 1, ran[n], n)
				}
				assert.ElementsMatch(t, tt.wantReport, reported)
			})
		}
	}
}

func TestGraphSeveralFailures(t *testing.T) {
	errX := errors.New("x failed")
	specs := []spec{
		{"a", nil},
		{"x", nil},
		{"y", []string{"x"}},
		{"both", []string{"a", "x"}},
		{"ok", nil},
		{"deep", []string{"both", "ok"}},
	}
	for _, ec := range executors {
		t.Run(ec.name, func(t *testing.T) {
			tr := newTracker(t)
			g := buildGraph(t, tr, specs, map[string]func(context.Context, *engine.Worker) error{
				"a": func(context.Context, *engine.Worker) error { return errBoom },
				"x": func(context.Context, *engine.Worker) error { return errX },
			})
			err := g.run(bg, ec.newEx(t), nil, nil)
			var ge *engine.GraphError
			require.ErrorAs(t, err, &ge)
			failed, skipped, _ := g.report(ge)
			assert.Equal(t, []namedErr{{"a", errBoom}, {"x", errX}}, failed)
			require.Len(t, skipped, 3)
			assert.Equal(t, [2]string{"y", "x"}, skipped[0])
			// both and deep were skipped by whichever of a and x failed first.
			assert.Equal(t, "both", skipped[1][0])
			assert.Contains(t, []string{"a", "x"}, skipped[1][1])
			assert.Equal(t, [2]string{"deep", skipped[1][1]}, skipped[2])
			assert.ErrorIs(t, err, errBoom)
			assert.ErrorIs(t, err, errX)
			assert.Equal(t, map[string]int{"a": 1, "x": 1, "ok": 1}, tr.ran())
		})
	}
}

func TestGraphExecutorRefuses(t *testing.T) {
	p := engine.NewPool(engine.PoolOptions{})
	p.Close()
	tr := newTracker(t)
	g := buildGraph(t, tr, failureGraph, nil)
	err := g.run(bg, p, nil, nil)
	var ge *engine.GraphError
	require.ErrorAs(t, err, &ge)
	failed, skipped, _ := g.report(ge)
	assert.Equal(t, []namedErr{{"a", engine.ErrClosed}, {"d", engine.ErrClosed}}, failed)
	assert.Len(t, skipped, 4)
	assert.Empty(t, tr.ran())
}

// TestGraphOnDoneCompletionOrder: each node waits for a gate; the test opens
// only the last node's gate, and each onDone opens the gate of the node
// before. The run can only finish if onDone is called as each node
// completes, in completion order, not in insertion order or at the end.
func TestGraphOnDoneCompletionOrder(t *testing.T) {
	for _, ec := range append(concurrentExecutors, serialExecutors[0]) { // Max 2 would leave the open gate's node without a worker
		for _, n := range []int{2, 3, 10} {
			t.Run(fmt.Sprintf("%s/%d", ec.name, n), func(t *testing.T) {
				gates := make([]chan struct{}, n)
				var g engine.Graph
				for i := range n {
					gates[i] = make(chan struct{})
					g.Add(func(ctx context.Context, w *engine.Worker) (any, error) {
						// Waiting through Recv, so more nodes than Limit can wait.
						_, _, err := engine.Recv(ctx, w, gates[i], 0)
						return i, err
					})
				}
				close(gates[n-1])

				caller := goid()
				var order []int // touched only by onDone: no lock
				err := g.Run(bg, ec.newEx(t), nil, func(id engine.NodeID, v any) error {
					assert.Equal(t, caller, goid(), "onDone runs on Run's goroutine")
					i := v.(int)
					assert.Equal(t, engine.NodeID(i), id)
					order = append(order, i)
					if i > 0 {
						close(gates[i-1])
					}
					return nil
				})
				require.NoError(t, err)
				want := make([]int, n)
				for i := range want {
					want[i] = n - 1 - i
				}
				assert.Equal(t, want, order)
			})
		}
	}
}

// TestGraphOnDoneSerialised: many nodes complete at once; onDone mutates
// plain state without a lock, which the race detector would flag if calls
// came from several goroutines.
func TestGraphOnDoneSerialised(t *testing.T) {
	for _, ec := range executors {
		t.Run(ec.name, func(t *testing.T) {
			const n = 200
			var g engine.Graph
			for i := range n {
				g.Add(func(context.Context, *engine.Worker) (any, error) { return i, nil })
			}
			caller := goid()
			seen := map[int]bool{}
			sum := 0
			err := g.Run(bg, ec.newEx(t), nil, func(_ engine.NodeID, v any) error {
				assert.Equal(t, caller, goid())
				seen[v.(int)] = true
				sum += v.(int)
				return nil
			})
			require.NoError(t, err)
			assert.Len(t, seen, n)
			assert.Equal(t, n*(n-1)/2, sum)
		})
	}
}

func TestGraphJoinNodes(t *testing.T) {
	tests := []struct {
		name        string
		specs       []spec // join nodes have names starting with "join"
		fail        string
		wantRan     []string
		wantSkipped [][2]string
		wantTotal   int
	}{
		{
			"FanInThroughJoin",
			[]spec{{"a", nil}, {"b", nil}, {"join", []string{"a", "b"}}, {"c", []string{"join"}}},
			"",
			[]string{"a", "b", "c"},
			nil, 3,
		},
		{
			"JoinWithoutDeps",
			[]spec{{"join", nil}, {"c", []string{"join"}}},
			"",
			[]string{"c"},
			nil, 1,
		},
		{
			"JoinOfJoins",
			[]spec{{"a", nil}, {"join1", []string{"a"}}, {"b", nil}, {"join2", []string{"join1", "b"}}, {"c", []string{"join2"}}},
			"",
			[]string{"a", "b", "c"},
			nil, 3,
		},
		{
			"FailureThroughJoin",
			[]spec{{"a", nil}, {"b", nil}, {"join", []string{"a", "b"}}, {"c", []string{"join"}}, {"d", []string{"b"}}},
			"a",
			[]string{"a", "b", "d"},
			[][2]string{{"c", "a"}}, 4, // the join is not listed; c blames a, not the join
		},
		{
			"FailureThroughJoinOfJoins",
			[]spec{{"a", nil}, {"join1", []string{"a"}}, {"join2", []string{"join1"}}, {"c", []string{"join2"}}, {"e", []string{"c"}}},
			"a",
			[]string{"a"},
			[][2]string{{"c", "a"}, {"e", "a"}}, 3,
		},
	}
	for _, ec := range executors {
		for _, tt := range tests {
			t.Run(ec.name+"/"+tt.name, func(t *testing.T) {
				tr := newTracker(t)
				g := newNamedGraph()
				// Real dependencies of each node, with joins expanded, for
				// the tracker's check.
				expand := map[string][]string{}
				for _, s := range tt.specs {
					var real []string
					for _, d := range s.deps {
						if e, ok := expand[d]; ok {
							real = append(real, e...)
						} else {
							real = append(real, d)
						}
					}
					if strings.HasPrefix(s.name, "join") {
						expand[s.name] = real
						g.add(s.name, nil, s.deps...)
						continue
					}
					var body func(context.Context, *engine.Worker) error
					if s.name == tt.fail {
						body = func(context.Context, *engine.Worker) error { return errBoom }
					}
					g.add(s.name, tr.fn(s.name, real, body), s.deps...)
				}

				var reported []string
				err := g.run(bg, ec.newEx(t), nil, func(name string, v any) error {
					assert.False(t, strings.HasPrefix(name, "join"), "join nodes are not reported")
					assert.Equal(t, name+"!", v)
					reported = append(reported, name)
					return nil
				})
				ran := tr.ran()
				assert.Len(t, ran, len(tt.wantRan))
				for _, n := range tt.wantRan {
					assert.Equal(t, 1, ran[n], n)
				}
				if tt.fail == "" {
					require.NoError(t, err)
					assert.ElementsMatch(t, tt.wantRan, reported)
					return
				}
				var ge *engine.GraphError
				require.ErrorAs(t, err, &ge)
				failed, skipped, cancelled := g.report(ge)
				assert.Equal(t, []namedErr{{tt.fail, errBoom}}, failed)
				assert.Equal(t, tt.wantSkipped, skipped)
				assert.Empty(t, cancelled)
				assert.Equal(t, tt.wantTotal, ge.Total, "joins are not counted")
			})
		}
	}
}

func TestGraphContextCancelledBeforeRun(t *testing.T) {
	cause := errors.New("shutting down")
	for _, ec := range executors {
		t.Run(ec.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(bg)
			cancel(cause)
			tr := newTracker(t)
			g := buildGraph(t, tr, failureGraph, nil)
			g.add("join", nil, "a", "b")
			err := g.run(ctx, ec.newEx(t), nil, func(string, any) error {
				t.Error("onDone called although nothing ran")
				return nil
			})
			var ge *engine.GraphError
			require.ErrorAs(t, err, &ge)
			_, _, cancelled := g.report(ge)
			assert.Equal(t, names(failureGraph), cancelled, "joins are not listed")
			assert.Empty(t, ge.Failed)
			assert.Empty(t, ge.Skipped)
			assert.Equal(t, cause, ge.Cause)
			assert.ErrorIs(t, err, cause)
			assert.Equal(t, "engine: 0 of 6 nodes failed, 6 cancelled", err.Error())
			assert.Empty(t, tr.ran())
		})
	}
}

func TestGraphContextCancelledDuringRun(t *testing.T) {
	cause := errors.New("user pressed ^C")

	t.Run("Pool", func(t *testing.T) {
		p := newPool(t, engine.PoolOptions{})
		ctx, cancel := context.WithCancelCause(bg)
		defer cancel(nil)
		tr := newTracker(t)
		watcherStarted := make(chan struct{})
		seen := make(chan error, 1)
		g := buildGraph(t, tr, []spec{
			{"watcher", nil},
			{"canceller", nil},
			{"b", []string{"canceller"}},
			{"c", []string{"b", "watcher"}},
			{"d", []string{"canceller"}},
		}, map[string]func(context.Context, *engine.Worker) error{
			// watcher is running when the context is cancelled and sees it.
			"watcher": func(ctx context.Context, _ *engine.Worker) error {
				close(watcherStarted)
				<-ctx.Done()
				seen <- context.Cause(ctx)
				return context.Cause(ctx)
			},
			// canceller succeeds, but only after cancelling the run, so
			// its dependents never start.
			"canceller": func(ctx context.Context, _ *engine.Worker) error {
				<-watcherStarted
				cancel(cause)
				<-ctx.Done()
				return nil
			},
		})
		var reported []string
		err := g.run(ctx, p, nil, func(name string, _ any) error {
			reported = append(reported, name)
			return nil
		})
		assert.ErrorIs(t, <-seen, cause, "a running node sees the cancellation cause")

		var ge *engine.GraphError
		require.ErrorAs(t, err, &ge)
		failed, skipped, cancelled := g.report(ge)
		assert.Equal(t, []namedErr{{"watcher", cause}}, failed)
		assert.Equal(t, []string{"b", "d"}, cancelled)
		// c depends on the failed watcher as well as the cancelled b.
		assert.Equal(t, [][2]string{{"c", "watcher"}}, skipped)
		assert.Equal(t, cause, ge.Cause)
		assert.ErrorIs(t, err, cause)
		assert.Equal(t, map[string]int{"watcher": 1, "canceller": 1}, tr.ran())
		assert.Equal(t, []string{"canceller"}, reported)
	})

	t.Run("Serial", func(t *testing.T) {
		p := newPool(t, engine.PoolOptions{Serial: true})
		w := p.Enter()
		defer w.Leave()
		ctx, cancel := context.WithCancelCause(bg)
		defer cancel(nil)
		tr := newTracker(t)
		g := buildGraph(t, tr, []spec{
			{"first", nil},
			{"canceller", nil},
			{"b", []string{"canceller"}},
			{"later", nil},
			{"c", []string{"later"}},
		}, map[string]func(context.Context, *engine.Worker) error{
			"canceller": func(ctx context.Context, _ *engine.Worker) error {
				cancel(cause)
				assert.ErrorIs(t, context.Cause(ctx), cause)
				return nil
			},
		})
		err := g.run(ctx, p, w, nil)
		var ge *engine.GraphError
		require.ErrorAs(t, err, &ge)
		assert.Empty(t, ge.Failed)
		_, _, cancelled := g.report(ge)
		assert.Equal(t, []string{"b", "c"}, cancelled, "nothing starts after the cancel")
		assert.Equal(t, cause, ge.Cause)
		assert.Equal(t, []string{"first", "canceller", "later"}, tr.order,
			"the ready wave was submitted before the cancel")
	})
}

//go:noinline
func nodePanics() { panic("node exploded") }

func TestGraphPanic(t *testing.T) {
	t.Run("Pool", func(t *testing.T) {
		p := newPool(t, engine.PoolOptions{})
		tr := newTracker(t)
		otherStarted := make(chan struct{})
		otherSaw := make(chan error, 1)
		g := buildGraph(t, tr, []spec{
			{"other", nil},
			{"bad", nil},
			{"after", []string{"bad"}},
		}, map[string]func(context.Context, *engine.Worker) error{
			// other is running when bad panics; Run waits for it.
			"other": func(ctx context.Context, _ *engine.Worker) error {
				close(otherStarted)
				<-ctx.Done()
				otherSaw <- context.Cause(ctx)
				return nil
			},
			"bad": func(context.Context, *engine.Worker) error {
				<-otherStarted
				nodePanics()
				return nil
			},
		})
		onDoneCalls := 0
		r := recoverPanic(func() {
			_ = g.run(bg, p, nil, func(string, any) error { onDoneCalls++; return nil })
		})
		require.IsType(t, (*engine.PanicError)(nil), r, "Run re-raises the node's panic")
		pe := r.(*engine.PanicError)
		assert.Equal(t, "node exploded", pe.Value)
		assert.Contains(t, string(pe.Stack), "nodePanics")
		// Run returned (by panicking) only after other finished.
		select {
		case cause := <-otherSaw:
			assert.Same(t, pe, cause, "the run's context is cancelled with the panic")
		default:
			t.Fatal("Run panicked before the running node finished")
		}
		assert.Equal(t, map[string]int{"other": 1, "bad": 1}, tr.ran())
		assert.Zero(t, onDoneCalls, "no callbacks once a node has panicked")
	})

	t.Run("Serial", func(t *testing.T) {
		p := newPool(t, engine.PoolOptions{Serial: true})
		w := p.Enter()
		defer w.Leave()
		tr := newTracker(t)
		g := buildGraph(t, tr, []spec{
			{"before", nil},
			{"bad", nil},
			{"later", nil},
			{"after", []string{"bad"}},
		}, map[string]func(context.Context, *engine.Worker) error{
			"bad": func(context.Context, *engine.Worker) error { nodePanics(); return nil },
		})
		r := recoverPanic(func() { _ = g.run(bg, p, w, nil) })
		require.IsType(t, (*engine.PanicError)(nil), r)
		assert.Equal(t, "node exploded", r.(*engine.PanicError).Value)
		assert.Equal(t, []string{"before", "bad", "later"}, tr.order,
			"the whole ready wave is submitted before any result is seen")
	})
}

// TestGraphSerialOrder: in a serial pool nodes run one at a time, in an
// order fixed by the graph alone: each wave of ready nodes in insertion
// order, then the nodes they made ready.
func TestGraphSerialOrder(t *testing.T) {
	tests := []struct {
		name  string
		specs []spec
		want  []string
	}{
		{"Independent", []spec{{"c", nil}, {"a", nil}, {"b", nil}}, []string{"c", "a", "b"}},
		{"Chain", []spec{{"a", nil}, {"b", []string{"a"}}, {"c", []string{"b"}}}, []string{"a", "b", "c"}},
		{"Waves", []spec{{"a", nil}, {"b", []string{"a"}}, {"c", nil}}, []string{"a", "c", "b"}},
		{"README", []spec{{"revenue", nil}, {"expenses", nil}, {"profit", []string{"revenue", "expenses"}}}, []string{"revenue", "expenses", "profit"}},
		{"Diamond", []spec{{"top", nil}, {"right", []string{"top"}}, {"left", []string{"top"}}, {"bottom", []string{"left", "right"}}}, []string{"top", "right", "left", "bottom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 3 { // same order every time
				p := engine.NewPool(engine.PoolOptions{Serial: true})
				w := p.Enter()
				var order, reported []string // no locks: one participant at a time
				g := newNamedGraph()
				for _, s := range tt.specs {
					g.add(s.name, func(context.Context, *engine.Worker) (any, error) {
						order = append(order, s.name)
						return nil, nil
					}, s.deps...)
				}
				require.NoError(t, g.run(bg, p, w, func(name string, _ any) error {
					reported = append(reported, name)
					return nil
				}))
				w.Leave()
				p.Close()
				assert.Equal(t, tt.want, order)
				assert.Equal(t, tt.want, reported)
			}
		})
	}
}

func TestGraphErrorFormatting(t *testing.T) {
	cause := errors.New("stop")
	tests := []struct {
		name string
		err  *engine.GraphError
		want string
		is   []error
	}{
		{"FailedOnly", &engine.GraphError{Failed: []engine.NodeError{{ID: 0, Err: errBoom}}, Total: 2}, "engine: 1 of 2 nodes failed\nnode 0: boom", []error{errBoom}},
		{"Everything", &engine.GraphError{
			Failed:    []engine.NodeError{{ID: 0, Err: errBoom}},
			Skipped:   []engine.NodeSkip{{ID: 1, Because: 0}},
			Cancelled: []engine.NodeID{2, 3},
			Total:     5,
			Cause:     cause,
		}, "engine: 1 of 5 nodes failed, 1 skipped, 2 cancelled\nnode 0: boom\nnode 1: skipped: node 0 failed", []error{errBoom, cause}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.EqualError(t, tt.err, tt.want)
			for _, e := range tt.is {
				assert.ErrorIs(t, tt.err, e)
			}
		})
	}
}
