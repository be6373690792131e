package engine_test

import (
	"context"
	"errors"
	"fmt"
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

func buildGraph(t *testing.T, tr *tracker, specs []spec, bodies map[string]func(context.Context, *engine.Worker) error) *engine.Graph {
	t.Helper()
	g := new(engine.Graph)
	for _, s := range specs {
		require.NoError(t, g.Add(s.name, tr.fn(s.name, s.deps, bodies[s.name]), s.deps...))
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
	{"DepsAddedLater", []spec{{"z", []string{"y"}}, {"y", []string{"x"}}, {"x", nil}}},
	{"RepeatedDep", []spec{{"a", nil}, {"b", []string{"a", "a"}}, {"c", []string{"b", "a", "b"}}}},
	{"README", []spec{{"revenue", nil}, {"expenses", nil}, {"profit", []string{"revenue", "expenses"}}}},
}

func TestGraphDependenciesRespected(t *testing.T) {
	for _, ec := range executors {
		for _, gc := range dependencyGraphs {
			t.Run(ec.name+"/"+gc.name, func(t *testing.T) {
				tr := newTracker(t)
				g := buildGraph(t, tr, gc.specs, nil)
				require.NoError(t, g.Validate())

				var reported []string
				values := map[string]any{}
				err := g.Run(bg, ec.newEx(t), func(name string, v any) error {
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
// they all run at once.
func TestGraphReadyNodesRunConcurrently(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		opts  engine.PoolOptions
		block bool // nodes Block while at the barrier
	}{
		{"Three", 3, engine.PoolOptions{}, false},
		{"ThreeLimit3", 3, engine.PoolOptions{Limit: 3}, false},
		{"ThreeLimit1Blocking", 3, engine.PoolOptions{Limit: 1}, true},
		{"FiftyLimit2Blocking", 50, engine.PoolOptions{Limit: 2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, tt.opts)
			tr := newTracker(t)
			var barrier sync.WaitGroup
			barrier.Add(tt.n)
			body := func(_ context.Context, w *engine.Worker) error {
				if tt.block {
					defer w.Block()()
				}
				barrier.Done()
				barrier.Wait()
				return nil
			}
			var specs []spec
			bodies := map[string]func(context.Context, *engine.Worker) error{}
			var all []string
			for i := range tt.n {
				name := fmt.Sprintf("n%d", i)
				specs = append(specs, spec{name, nil})
				bodies[name] = body
				all = append(all, name)
			}
			specs = append(specs, spec{"after", all})
			g := buildGraph(t, tr, specs, bodies)
			require.NoError(t, g.Run(bg, p, nil))
			for _, s := range specs {
				assert.Equal(t, 1, tr.runs[s.name])
			}
			assert.Equal(t, "after", tr.order[len(tr.order)-1])
		})
	}
}

func TestGraphValidationErrors(t *testing.T) {
	tests := []struct {
		name    string
		specs   []spec
		wantErr string
	}{
		{
			"UnknownDependency",
			[]spec{{"a", nil}, {"b", []string{"a", "x"}}},
			`engine: node "b" depends on unknown node "x"`,
		},
		{
			"SelfCycle",
			[]spec{{"ok", nil}, {"a", []string{"a"}}},
			"engine: dependency cycle: a -> a",
		},
		{
			"TwoCycle",
			[]spec{{"a", []string{"b"}}, {"b", []string{"a"}}},
			"engine: dependency cycle: a -> b -> a",
		},
		{
			"CycleBehindTail",
			[]spec{{"free", nil}, {"x", []string{"a", "free"}}, {"a", []string{"b"}}, {"b", []string{"c"}}, {"c", []string{"free", "a"}}},
			"engine: dependency cycle: a -> b -> c -> a",
		},
		{
			"CycleWithDependents",
			[]spec{{"root", nil}, {"p", []string{"root", "q"}}, {"q", []string{"p"}}, {"leaf", []string{"q"}}},
			"engine: dependency cycle: p -> q -> p",
		},
	}
	for _, ec := range executors {
		for _, tt := range tests {
			t.Run(ec.name+"/"+tt.name, func(t *testing.T) {
				tr := newTracker(t)
				g := buildGraph(t, tr, tt.specs, nil)
				assert.EqualError(t, g.Validate(), tt.wantErr)

				called := false
				err := g.Run(bg, ec.newEx(t), func(string, any) error {
					called = true
					return nil
				})
				assert.EqualError(t, err, tt.wantErr, "Run validates first")
				var ge *engine.GraphError
				assert.False(t, errors.As(err, &ge), "not a GraphError")
				assert.Empty(t, tr.ran(), "an invalid graph runs nothing")
				assert.False(t, called)
			})
		}
	}
}

func TestGraphDuplicateName(t *testing.T) {
	var g engine.Graph
	require.NoError(t, g.Add("a", nil))
	require.NoError(t, g.Add("b", nil, "a"))
	err := g.Add("a", func(context.Context, *engine.Worker) (any, error) { return nil, nil })
	assert.EqualError(t, err, `engine: duplicate node "a"`)
	err = g.Add("b", nil)
	assert.EqualError(t, err, `engine: duplicate node "b"`)
	assert.Equal(t, 2, g.Len(), "a rejected node is not added")
	assert.NoError(t, g.Run(bg, engine.Inline{}, nil))
}

func TestGraphEmpty(t *testing.T) {
	for _, ec := range executors {
		t.Run(ec.name, func(t *testing.T) {
			var g engine.Graph
			assert.Zero(t, g.Len())
			assert.NoError(t, g.Validate())
			assert.NoError(t, g.Run(bg, ec.newEx(t), func(string, any) error {
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
				err := g.Run(bg, ec.newEx(t), func(name string, _ any) error {
					if name == "a" {
						return tt.onDoneErr
					}
					reported = append(reported, name)
					return nil
				})

				var ge *engine.GraphError
				require.ErrorAs(t, err, &ge)
				assert.Equal(t, []engine.NodeError{{Name: "a", Err: tt.wantErr}}, ge.Failed)
				// Insertion order, not completion order.
				assert.Equal(t, []engine.NodeSkip{{"b", "a"}, {"c", "a"}, {"f", "a"}}, ge.Skipped)
				assert.Empty(t, ge.Cancelled)
				assert.NoError(t, ge.Cause)
				assert.Equal(t, 6, ge.Total)
				assert.ErrorIs(t, err, tt.wantErr)
				assert.Equal(t, fmt.Sprintf("1 of 6 failed, 3 skipped\na: %v\nb: skipped: a failed\nc: skipped: a failed\nf: skipped: a failed", tt.wantErr), err.Error())

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
		{"y", []string{"x"}},
		{"a", nil},
		{"x", nil},
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
			err := g.Run(bg, ec.newEx(t), nil)
			var ge *engine.GraphError
			require.ErrorAs(t, err, &ge)
			assert.Equal(t, []engine.NodeError{{"a", errBoom}, {"x", errX}}, ge.Failed)
			require.Len(t, ge.Skipped, 3)
			assert.Equal(t, engine.NodeSkip{"y", "x"}, ge.Skipped[0])
			// both and deep were skipped by whichever of a and x failed first.
			assert.Equal(t, "both", ge.Skipped[1].Name)
			assert.Contains(t, []string{"a", "x"}, ge.Skipped[1].Because)
			assert.Equal(t, engine.NodeSkip{"deep", ge.Skipped[1].Because}, ge.Skipped[2])
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
	err := g.Run(bg, p, nil)
	var ge *engine.GraphError
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, []engine.NodeError{{"a", engine.ErrClosed}, {"d", engine.ErrClosed}}, ge.Failed)
	assert.Len(t, ge.Skipped, 4)
	assert.Empty(t, tr.ran())
}

// TestGraphOnDoneCompletionOrder: each node waits for a gate; the test opens
// only the last node's gate, and each onDone opens the gate of the node
// before. The run can only finish if onDone is called as each node
// completes, in completion order, not in insertion order or at the end.
func TestGraphOnDoneCompletionOrder(t *testing.T) {
	for _, ec := range concurrentExecutors {
		for _, n := range []int{2, 3, 10} {
			t.Run(fmt.Sprintf("%s/%d", ec.name, n), func(t *testing.T) {
				gates := make([]chan struct{}, n)
				var g engine.Graph
				for i := range n {
					gates[i] = make(chan struct{})
					require.NoError(t, g.Add(fmt.Sprint(i), func(_ context.Context, w *engine.Worker) (any, error) {
						// Waiting nodes Block, so more nodes than Limit can wait.
						defer w.Block()()
						<-gates[i]
						return i, nil
					}))
				}
				close(gates[n-1])

				caller := goid()
				var order []int // touched only by onDone: no lock
				err := g.Run(bg, ec.newEx(t), func(name string, v any) error {
					assert.Equal(t, caller, goid(), "onDone runs on Run's goroutine")
					i := v.(int)
					assert.Equal(t, fmt.Sprint(i), name)
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
				require.NoError(t, g.Add(fmt.Sprint(i), func(context.Context, *engine.Worker) (any, error) { return i, nil }))
			}
			caller := goid()
			seen := map[int]bool{}
			sum := 0
			err := g.Run(bg, ec.newEx(t), func(_ string, v any) error {
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
		wantSkipped []engine.NodeSkip
	}{
		{
			"FanInThroughJoin",
			[]spec{{"a", nil}, {"b", nil}, {"join", []string{"a", "b"}}, {"c", []string{"join"}}},
			"",
			[]string{"a", "b", "c"},
			nil,
		},
		{
			"JoinWithoutDeps",
			[]spec{{"join", nil}, {"c", []string{"join"}}},
			"",
			[]string{"c"},
			nil,
		},
		{
			"JoinOfJoins",
			[]spec{{"a", nil}, {"join1", []string{"a"}}, {"b", nil}, {"join2", []string{"join1", "b"}}, {"c", []string{"join2"}}},
			"",
			[]string{"a", "b", "c"},
			nil,
		},
		{
			"FailureThroughJoin",
			[]spec{{"a", nil}, {"b", nil}, {"join", []string{"a", "b"}}, {"c", []string{"join"}}, {"d", []string{"b"}}},
			"a",
			[]string{"a", "b", "d"},
			[]engine.NodeSkip{{"join", "a"}, {"c", "a"}},
		},
	}
	for _, ec := range executors {
		for _, tt := range tests {
			t.Run(ec.name+"/"+tt.name, func(t *testing.T) {
				tr := newTracker(t)
				var g engine.Graph
				// Real dependencies of each node, with joins expanded, for
				// the tracker's check.
				expand := map[string][]string{}
				for _, s := range tt.specs {
					var real []string
					for _, d := range s.deps {
						if e, ok := expand[d]; ok && len(d) >= 4 && d[:4] == "join" {
							real = append(real, e...)
						} else {
							real = append(real, d)
						}
					}
					if len(s.name) >= 4 && s.name[:4] == "join" {
						expand[s.name] = real
						require.NoError(t, g.Add(s.name, nil, s.deps...))
						continue
					}
					var body func(context.Context, *engine.Worker) error
					if s.name == tt.fail {
						body = func(context.Context, *engine.Worker) error { return errBoom }
					}
					require.NoError(t, g.Add(s.name, tr.fn(s.name, real, body), s.deps...))
				}

				var reported []string
				err := g.Run(bg, ec.newEx(t), func(name string, v any) error {
					assert.NotEqual(t, "join", name[:min(4, len(name))], "join nodes are not reported")
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
				assert.Equal(t, []engine.NodeError{{tt.fail, errBoom}}, ge.Failed)
				assert.Equal(t, tt.wantSkipped, ge.Skipped)
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
			err := g.Run(ctx, ec.newEx(t), func(string, any) error {
				t.Error("onDone called although nothing ran")
				return nil
			})
			var ge *engine.GraphError
			require.ErrorAs(t, err, &ge)
			assert.Equal(t, names(failureGraph), ge.Cancelled)
			assert.Empty(t, ge.Failed)
			assert.Empty(t, ge.Skipped)
			assert.Equal(t, cause, ge.Cause)
			assert.ErrorIs(t, err, cause)
			assert.Equal(t, "0 of 6 failed, 6 cancelled", err.Error())
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
		err := g.Run(ctx, p, func(name string, _ any) error {
			reported = append(reported, name)
			return nil
		})
		assert.ErrorIs(t, <-seen, cause, "a running node sees the cancellation cause")

		var ge *engine.GraphError
		require.ErrorAs(t, err, &ge)
		assert.Equal(t, []engine.NodeError{{"watcher", cause}}, ge.Failed)
		assert.Equal(t, []string{"b", "d"}, ge.Cancelled)
		// c depends on the failed watcher as well as the cancelled b.
		assert.Equal(t, []engine.NodeSkip{{"c", "watcher"}}, ge.Skipped)
		assert.Equal(t, cause, ge.Cause)
		assert.ErrorIs(t, err, cause)
		assert.Equal(t, map[string]int{"watcher": 1, "canceller": 1}, tr.ran())
		assert.Equal(t, []string{"canceller"}, reported)
	})

	t.Run("Inline", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(bg)
		defer cancel(nil)
		tr := newTracker(t)
		g := buildGraph(t, tr, []spec{
			{"first", nil},
			{"canceller", nil},
			{"b", []string{"canceller"}},
			{"later", nil},
		}, map[string]func(context.Context, *engine.Worker) error{
			"canceller": func(ctx context.Context, _ *engine.Worker) error {
				cancel(cause)
				assert.ErrorIs(t, context.Cause(ctx), cause)
				return nil
			},
		})
		err := g.Run(ctx, engine.Inline{}, nil)
		var ge *engine.GraphError
		require.ErrorAs(t, err, &ge)
		assert.Empty(t, ge.Failed)
		assert.Equal(t, []string{"b", "later"}, ge.Cancelled, "nothing starts after the cancel")
		assert.Equal(t, cause, ge.Cause)
		assert.Equal(t, []string{"first", "canceller"}, tr.order)
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
			_ = g.Run(bg, p, func(string, any) error { onDoneCalls++; return nil })
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

	t.Run("Inline", func(t *testing.T) {
		tr := newTracker(t)
		g := buildGraph(t, tr, []spec{
			{"before", nil},
			{"bad", nil},
			{"later", nil},
			{"after", []string{"bad"}},
		}, map[string]func(context.Context, *engine.Worker) error{
			"bad": func(context.Context, *engine.Worker) error { nodePanics(); return nil },
		})
		r := recoverPanic(func() { _ = g.Run(bg, engine.Inline{}, nil) })
		require.IsType(t, (*engine.PanicError)(nil), r)
		assert.Equal(t, "node exploded", r.(*engine.PanicError).Value)
		assert.Equal(t, []string{"before", "bad", "later"}, tr.order,
			"Inline submits the whole ready wave before looking at results")
	})
}

// TestGraphInlineOrder: with Inline everything runs on the caller's
// goroutine, one node at a time, in an order fixed by the graph alone: each
// wave of ready nodes in insertion order, then the nodes they made ready.
func TestGraphInlineOrder(t *testing.T) {
	tests := []struct {
		name  string
		specs []spec
		want  []string
	}{
		{"Independent", []spec{{"c", nil}, {"a", nil}, {"b", nil}}, []string{"c", "a", "b"}},
		{"Chain", []spec{{"a", nil}, {"b", []string{"a"}}, {"c", []string{"b"}}}, []string{"a", "b", "c"}},
		{"Waves", []spec{{"a", nil}, {"b", []string{"a"}}, {"c", nil}}, []string{"a", "c", "b"}},
		{"README", []spec{{"revenue", nil}, {"expenses", nil}, {"profit", []string{"revenue", "expenses"}}}, []string{"revenue", "expenses", "profit"}},
		{"DepsAddedLater", []spec{{"z", []string{"y"}}, {"y", []string{"x"}}, {"x", nil}, {"w", nil}}, []string{"x", "w", "y", "z"}},
		{"Diamond", []spec{{"top", nil}, {"right", []string{"top"}}, {"left", []string{"top"}}, {"bottom", []string{"left", "right"}}}, []string{"top", "right", "left", "bottom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller := goid()
			for range 3 { // same order every time
				var order, reported []string // no locks: one goroutine
				var g engine.Graph
				for _, s := range tt.specs {
					require.NoError(t, g.Add(s.name, func(context.Context, *engine.Worker) (any, error) {
						assert.Equal(t, caller, goid())
						order = append(order, s.name)
						return nil, nil
					}, s.deps...))
				}
				require.NoError(t, g.Run(bg, engine.Inline{}, func(name string, _ any) error {
					reported = append(reported, name)
					return nil
				}))
				assert.Equal(t, tt.want, order)
				assert.Equal(t, tt.want, reported)
			}
		})
	}
}

func TestGraphInlineWorker(t *testing.T) {
	w := &engine.Worker{Local: "thread"}
	var g engine.Graph
	var got []any
	for _, n := range []string{"a", "b"} {
		require.NoError(t, g.Add(n, func(_ context.Context, w *engine.Worker) (any, error) {
			got = append(got, w.Local)
			return nil, nil
		}))
	}
	require.NoError(t, g.Run(bg, engine.Inline{Worker: w}, nil))
	assert.Equal(t, []any{"thread", "thread"}, got)
}

func TestGraphErrorFormatting(t *testing.T) {
	cause := errors.New("stop")
	tests := []struct {
		name string
		err  *engine.GraphError
		want string
		is   []error
	}{
		{"FailedOnly", &engine.GraphError{Failed: []engine.NodeError{{"a", errBoom}}, Total: 2}, "1 of 2 failed\na: boom", []error{errBoom}},
		{"Everything", &engine.GraphError{
			Failed:    []engine.NodeError{{"a", errBoom}},
			Skipped:   []engine.NodeSkip{{"b", "a"}},
			Cancelled: []string{"c", "d"},
			Total:     5,
			Cause:     cause,
		}, "1 of 5 failed, 1 skipped, 2 cancelled\na: boom\nb: skipped: a failed", []error{errBoom, cause}},
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
