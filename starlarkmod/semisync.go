package starlarkmod

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/builtin"
)

// The semisync builtin, after the semisync Python package:
//
//	@semisync                                  decorate a function: calling it queues a call
//	@semisync(callback=None, dependencies=[])  the same, with a callback and dependencies
//	semisync.begin(_future=False)              run every queued call; a call starts once every
//	                                           queued call of each dependency has completed
//	semisync.clear()                           forget queued and completed calls
//
// Calling a decorated function returns a future of the call's result,
// resolved when begin runs it. Callbacks run one at a time, in completion
// order, on the thread that called begin: a tuple result is passed as
// callback(*result), anything else as callback(result). A failed call makes
// its dependents skip; the others still run; then begin fails naming every
// failed and skipped call. A dependency with neither a queued nor a
// completed call is an error before anything runs.

// semisyncState is the interpreter's queue of calls and record of
// completions (kept until clear).
type semisyncState struct {
	mu        sync.Mutex
	queue     []*semiCall
	completed map[*semisyncFunc]int
}

func newSemisyncState() *semisyncState {
	return &semisyncState{completed: map[*semisyncFunc]int{}}
}

type semiCall struct {
	promise engine.Promise[starlark.Value] // resolved when the call completes
	handle  Future                         // its Starlark value, returned to the script
	fn      *semisyncFunc
	args    starlark.Tuple
	kwargs  []starlark.Tuple
	where   syntax.Position // of the call that queued it
	key     taskRef         // its identity: a child of the task that queued it
	begun   atomic.Bool     // semisync.begin took it
}

func (c *semiCall) resolve(v starlark.Value, err error) bool { return c.promise.Resolve(v, err) }

func (c *semiCall) String() string {
	return fmt.Sprintf("%s(%s) queued %s", c.fn.name, shortArgs(c.args, c.kwargs), at(c.where))
}

// notBegun is the error of asking for the result of a call that
// semisync.begin has not taken: waiting would wait forever.
func (c *semiCall) notBegun(op string) error {
	if c.begun.Load() {
		return nil
	}
	return fmt.Errorf("%s: %s has not run: queued calls run when semisync.begin() is called; call semisync.begin() first", op, c)
}

// shortArgs renders call arguments for messages, abbreviated.
func shortArgs(args starlark.Tuple, kwargs []starlark.Tuple) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	for i, kv := range kwargs {
		if i > 0 || len(args) > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%s", kv[0].(starlark.String).GoString(), kv[1])
	}
	if s := b.String(); len(s) > 40 {
		return s[:37] + "..."
	}
	return b.String()
}

// semisyncFunc is a function decorated with @semisync.
type semisyncFunc struct {
	name     string
	fn       starlark.Callable
	callback starlark.Value // nil if none
	deps     []*semisyncFunc
	cache    cacheMode // the cache= argument (cache.go)
}

var (
	_ starlark.Callable = (*semisyncFunc)(nil)
	_ Crosser           = (*semisyncFunc)(nil)
)

func (s *semisyncFunc) String() string        { return fmt.Sprintf("<semisync function %s>", s.name) }
func (s *semisyncFunc) Type() string          { return "semisync_function" }
func (s *semisyncFunc) Freeze()               {}
func (s *semisyncFunc) Truth() starlark.Bool  { return true }
func (s *semisyncFunc) Hash() (uint32, error) { return builtin.HashPointer(s), nil }
func (s *semisyncFunc) Name() string          { return s.name }

func (s *semisyncFunc) Cross(yield func(starlark.Value) error) error {
	if err := yield(s.fn); err != nil {
		return err
	}
	if s.callback != nil {
		return yield(s.callback)
	}
	return nil
}

// CallInternal queues a call and returns its future.
func (s *semisyncFunc) CallInternal(th *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r, err := needRun(th, s.name)
	if err != nil {
		return nil, err
	}
	if isWorker(th) {
		return nil, fmt.Errorf("%s: cannot queue a semisync call from a running task; queue calls on the thread that calls semisync.begin", s.name)
	}
	in := r.in
	if err := in.prepareArgs(th, s.name, false, nil, args, kwargs); err != nil {
		return nil, err
	}
	c := &semiCall{fn: s, args: args, kwargs: kwargs, where: callerPosition(th), key: stateOf(th).nextChild()}
	c.handle = Future{f: &c.promise.Future, op: s.name, about: c, notStarted: c.notBegun}
	st := r.sem
	st.mu.Lock()
	st.queue = append(st.queue, c)
	st.mu.Unlock()
	return &c.handle, nil
}

// neverRun takes the calls still queued (at the end of a run) and
// describes them as an error, or returns "" if there are none: a queued
// call that semisync.begin never ran is a mistake worth failing for, as
// the seed would silently never run it.
func (st *semisyncState) neverRun() string {
	st.mu.Lock()
	queue := st.queue
	st.queue = nil
	st.mu.Unlock()
	if len(queue) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "semisync: %d queued call", len(queue))
	if len(queue) > 1 {
		b.WriteString("s")
	}
	b.WriteString(" never ran (call semisync.begin() after queuing them, or semisync.clear() to drop them):")
	const maxShown = 5
	for i, c := range queue {
		c.resolve(nil, fmt.Errorf("%s never ran: the script ended before semisync.begin()", c))
		if i < maxShown {
			fmt.Fprintf(&b, "\n  %s", c)
		} else if i == maxShown {
			fmt.Fprintf(&b, "\n  ... and %d more", len(queue)-maxShown)
		}
	}
	return b.String()
}

// semisyncValue is the predeclared semisync: a decorator with begin and
// clear methods.
type semisyncValue struct{}

var (
	_ starlark.Callable = semisyncValue{}
	_ starlark.HasAttrs = semisyncValue{}
)

func (semisyncValue) String() string        { return "<semisync>" }
func (semisyncValue) Type() string          { return "semisync" }
func (semisyncValue) Freeze()               {}
func (semisyncValue) Truth() starlark.Bool  { return true }
func (semisyncValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: semisync") }

// Cross lets semisync cross: it holds nothing.
func (semisyncValue) Cross(func(starlark.Value) error) error { return nil }
func (semisyncValue) Name() string                           { return "semisync" }

var semisyncMethods = map[string]*starlark.Builtin{
	"begin": starlark.NewBuiltin("semisync.begin", semisyncBegin),
	"clear": starlark.NewBuiltin("semisync.clear", semisyncClear),
	"graph": starlark.NewBuiltin("semisync.graph", semisyncGraph), // observe_graph.go
}

func (s semisyncValue) Attr(name string) (starlark.Value, error) {
	return builtin.MethodAttr(s, semisyncMethods, name)
}
func (semisyncValue) AttrNames() []string { return builtin.SortedKeys(semisyncMethods) }

// CallInternal implements both @semisync and @semisync(callback, dependencies).
func (semisyncValue) CallInternal(th *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 1 && len(kwargs) == 0 {
		if _, ok := args[0].(starlark.Callable); ok {
			return decorateSemisync(args[0], nil, nil, cacheDefault)
		}
	}
	var callback, cacheArg starlark.Value = starlark.None, starlark.None
	var deps *starlark.List
	if err := starlark.UnpackArgs("semisync", args, kwargs, "callback?", &callback, "dependencies?", &deps, "cache?", &cacheArg); err != nil {
		return nil, err
	}
	mode, err := cacheModeOf("semisync", cacheArg)
	if err != nil {
		return nil, err
	}
	if callback != starlark.None {
		if _, ok := callback.(starlark.Callable); !ok {
			return nil, fmt.Errorf("semisync: callback: got %s, want a function or None", callback.Type())
		}
	}
	var ds []*semisyncFunc
	if deps != nil {
		for i := 0; i < deps.Len(); i++ {
			d, ok := deps.Index(i).(*semisyncFunc)
			if !ok {
				return nil, fmt.Errorf("semisync: dependencies[%d]: got %s, want a @semisync function", i, deps.Index(i).Type())
			}
			ds = append(ds, d)
		}
	}
	return starlark.NewBuiltin("semisync.decorator", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var fn starlark.Callable
		if err := starlark.UnpackPositionalArgs("semisync", args, kwargs, 1, &fn); err != nil {
			return nil, err
		}
		return decorateSemisync(fn, callback, ds, mode)
	}), nil
}

func decorateSemisync(fn starlark.Value, callback starlark.Value, deps []*semisyncFunc, mode cacheMode) (starlark.Value, error) {
	c, ok := fn.(starlark.Callable)
	if !ok {
		return nil, fmt.Errorf("semisync: got %s, want a function", fn.Type())
	}
	if callback == starlark.None {
		callback = nil
	}
	return &semisyncFunc{name: c.Name(), fn: c, callback: callback, deps: deps, cache: mode}, nil
}

func semisyncClear(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	r, err := needRun(th, b.Name())
	if err != nil {
		return nil, err
	}
	st := r.sem
	st.mu.Lock()
	queue := st.queue
	st.queue = nil
	st.completed = map[*semisyncFunc]int{}
	st.mu.Unlock()
	r.forgetSemisync()
	for _, c := range queue {
		c.resolve(nil, fmt.Errorf("%s was cleared before semisync.begin ran it", c))
	}
	return starlark.None, nil
}

func semisyncBegin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var future bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "_future?", &future); err != nil {
		return nil, err
	}
	rn, err := needRun(th, b.Name())
	if err != nil {
		return nil, err
	}
	in := rn.in
	st := rn.sem
	st.mu.Lock()
	batch := st.queue
	st.queue = nil
	st.mu.Unlock()
	for _, c := range batch {
		c.begun.Store(true)
	}

	r, err := rn.planBegin(th, b.Name(), batch, future)
	if err != nil {
		for _, c := range batch {
			c.resolve(nil, err)
		}
		return nil, err
	}
	if !future {
		return starlark.None, r.run(contextOf(th), th)
	}
	desc := fmt.Sprintf("semisync.begin(_future=True) at %s", callerPos(th))
	key := stateOf(th).nextChild()
	fut := engine.Go(rn.bgContext(th), in.pool, func(ctx context.Context, w *engine.Worker) (starlark.Value, error) {
		wth := workerThread.Get(w)
		stateOf(wth).setTask(rn, key)
		return withContext(ctx, wth, func() (starlark.Value, error) {
			return starlark.None, r.run(ctx, wth)
		})
	})
	f := newFuture(fut, b.Name(), desc)
	rn.track(f)
	return f, nil
}

// beginRun is one validated batch of semisync calls, ready to run.
type beginRun struct {
	in    *Interpreter
	rn    *Run
	op    string
	batch []*semiCall
	graph engine.Graph
	call  []int  // by node id: the index in batch of the node's call, -1 for a join
	where string // position of the begin call, for the task record (see run)
}

// planBegin checks a batch and builds its graph.
func (rn *Run) planBegin(th *starlark.Thread, op string, batch []*semiCall, background bool) (*beginRun, error) {
	in := rn.in
	r := &beginRun{in: in, rn: rn, op: op, batch: batch, where: callerPos(th)}
	r.graph.Grow(len(batch))
	byFn := map[*semisyncFunc][]int{}
	remote := make([]*remoteCall, len(batch)) // remote.go: nil without a cluster
	for i, c := range batch {
		byFn[c.fn] = append(byFn[c.fn], i)
		// The arguments were prepared when the call was queued; the
		// function crosses now. Its callback runs on this thread (DESIGN.md
		// section 4), so it crosses only if this begin runs in the
		// background. Work that runs in the background must also pass the
		// stricter check.
		if err := in.prepareArgs(th, op, background, c.fn.fn, nil, nil); err != nil {
			return nil, err
		}
		if background && c.fn.callback != nil {
			if err := in.prepareArgs(th, op, true, c.fn.callback, nil, nil); err != nil {
				return nil, err
			}
		}
		if background || isWorker(th) {
			if err := in.prepareArgs(th, op, true, nil, c.args, c.kwargs); err != nil {
				return nil, err
			}
		}
	}
	st := rn.sem
	st.mu.Lock()
	completed := make(map[*semisyncFunc]bool, len(st.completed))
	for f, n := range st.completed {
		completed[f] = n > 0
	}
	st.mu.Unlock()
	for _, c := range batch {
		for _, d := range c.fn.deps {
			if _, queued := byFn[d]; !queued && !completed[d] {
				return nil, fmt.Errorf("%s: %s depends on %s, which has no queued or completed call; queue %s() first or drop the dependency",
					op, c, d.name, d.name)
			}
		}
	}
	// The cache's plan first: cache=True on an impure function says why
	// it is impure rather than why it cannot go to the cluster.
	cached, err := rn.planSemisync(op, batch)
	if err != nil {
		return nil, err
	}
	for i, c := range batch {
		if remote[i], err = rn.remoteCall(op, c.fn.fn, c.args, c.kwargs, c.key, c.where); err != nil {
			return nil, err
		}
	}
	// A node names only nodes added before it, so the calls of a function go
	// in before those of the functions that depend on it. Dependencies
	// between functions never form a cycle: a function can only depend on
	// functions decorated before it.
	ids := make([]engine.NodeID, len(batch))
	added := make([]bool, len(batch))
	joins := map[*semisyncFunc]engine.NodeID{}
	node := func(id engine.NodeID, call int) {
		for len(r.call) <= int(id) {
			r.call = append(r.call, -1)
		}
		r.call[id] = call
	}
	var add func(i int)
	add = func(i int) {
		if added[i] {
			return
		}
		added[i] = true
		c := batch[i]
		var deps []engine.NodeID
		for _, d := range c.fn.deps {
			calls, queued := byFn[d]
			if !queued {
				continue // completed earlier
			}
			for _, ci := range calls {
				add(ci)
			}
			if len(calls) == 1 {
				deps = append(deps, ids[calls[0]])
				continue
			}
			j, ok := joins[d]
			if !ok {
				of := make([]engine.NodeID, len(calls))
				for k, ci := range calls {
					of[k] = ids[ci]
				}
				j = r.graph.Join(of...)
				joins[d] = j
				node(j, -1)
			}
			deps = append(deps, j)
		}
		var cc *cachedCall
		if cached != nil {
			cc = cached[i]
		}
		rc := remote[i]
		ids[i] = r.graph.Add(func(ctx context.Context, w *engine.Worker) (any, error) {
			return rn.cached(cc, func() (starlark.Value, error) {
				if rc != nil {
					return rn.runRemote(ctx, w, rc)
				}
				return rn.runTask(ctx, w, c.key, c.fn.fn, c.args, c.kwargs)
			})
		}, deps...)
		node(ids[i], i)
	}
	for i := range batch {
		add(i)
	}
	return r, nil
}

// runGraph runs the batch on the pool; callbacks run on th (the
// goroutine calling it). Call it through run, which records the batch as a
// task.
func (r *beginRun) runGraph(ctx context.Context, th *starlark.Thread) error {
	st := r.rn.sem
	ts := stateOf(th)
	err := r.graph.Run(ctx, r.in.pool, workerOf(th), func(id engine.NodeID, v any) error {
		c := r.batch[r.call[id]]
		res := v.(starlark.Value)
		if c.fn.callback != nil {
			args := starlark.Tuple{res}
			if t, ok := res.(starlark.Tuple); ok {
				args = t
			}
			// The callback is task 0 under its call (see taskID): its random
			// numbers do not depend on the order calls complete in.
			saved := ts.taskState
			ts.setTask(r.rn, taskRef{parent: c.key.id(), n: 0})
			_, err := starlark.Call(th, r.rn.in.comp.Callable(c.fn.callback), args, nil)
			ts.taskState = saved
			if err != nil {
				return &callbackError{err}
			}
		}
		st.mu.Lock()
		st.completed[c.fn]++
		st.mu.Unlock()
		c.resolve(res, nil)
		return nil
	})
	if err == nil {
		return nil
	}
	ge, ok := err.(*engine.GraphError)
	if !ok {
		for _, c := range r.batch {
			c.resolve(nil, err)
		}
		return fmt.Errorf("%s: %w", r.op, err)
	}
	return r.explain(ge, context.Cause(ctx))
}

// callbackError marks the failure of a callback (rather than of the call).
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }
func (e *callbackError) Unwrap() error { return e.err }

// explain resolves the handles of calls that did not succeed and builds
// begin's error: each failed call with its traceback, each skipped call
// with the failure that made it skip.
func (r *beginRun) explain(ge *engine.GraphError, stopped error) error {
	call := func(id engine.NodeID) *semiCall {
		if i := r.call[id]; i >= 0 {
			return r.batch[i]
		}
		return nil // a join node
	}
	var b strings.Builder
	skipped := 0
	for _, s := range ge.Skipped {
		if call(s.ID) != nil {
			skipped++
		}
	}
	if stopped != nil {
		// Interrupted (Ctrl-C, a timeout): the calls that were running were
		// stopped where their tracebacks show.
		fmt.Fprintf(&b, "%s: %v: %d of %d calls stopped", r.op, stopped, len(ge.Failed), len(r.batch))
	} else {
		fmt.Fprintf(&b, "%s: %d of %d calls failed", r.op, len(ge.Failed), len(r.batch))
	}
	if skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped", skipped)
	}
	if n := len(ge.Cancelled); n > 0 {
		fmt.Fprintf(&b, ", %d not started: %v", n, ge.Cause)
	}
	// Report the first few of each kind in full; resolve every handle.
	const maxShown = 5
	frozen := false
	for k, f := range ge.Failed {
		c := call(f.ID)
		what := c.String() + " failed"
		if stopped != nil {
			what = c.String() + " stopped"
		}
		if cb, ok := f.Err.(*callbackError); ok {
			what = fmt.Sprintf("callback %s of %s failed", c.fn.callback.(starlark.Callable).Name(), c)
			f.Err = cb.err
		}
		c.resolve(nil, &TaskError{Op: r.op, Task: c.String(), Err: f.Err})
		text := errText(f.Err)
		frozen = frozen || strings.Contains(text, "frozen")
		if k < maxShown {
			fmt.Fprintf(&b, "\n  %s:\n%s", what, indent(indent(text)))
		} else if k == maxShown {
			fmt.Fprintf(&b, "\n  ... and %d more failed calls", len(ge.Failed)-maxShown)
		}
	}
	shown := 0
	for _, s := range ge.Skipped {
		if c := call(s.ID); c != nil {
			cause := call(s.Because)
			c.resolve(nil, fmt.Errorf("%s: %s skipped: %s failed", r.op, c, cause))
			if shown++; shown <= maxShown {
				fmt.Fprintf(&b, "\n  %s skipped: its dependency %s failed", c, cause)
			} else if shown == maxShown+1 {
				fmt.Fprintf(&b, "\n  ... and %d more skipped calls", skipped-maxShown)
			}
		}
	}
	if frozen {
		b.WriteString("\nhint: values a call can reach are frozen when it starts, so tasks cannot change script state;\n" +
			"return results (callbacks receive them) or share state through Manager().list(), .dict() or .Namespace()")
	}
	for _, id := range ge.Cancelled {
		if c := call(id); c != nil {
			c.resolve(nil, fmt.Errorf("%s: %s not started: %v", r.op, c, ge.Cause))
		}
	}
	return &beginError{msg: b.String(), ge: ge}
}

// beginError is the error of a failed semisync.begin.
type beginError struct {
	msg string
	ge  *engine.GraphError
}

func (e *beginError) Error() string { return e.msg }
func (e *beginError) Unwrap() error { return e.ge }

// run runs the batch like runGraph and records it as one task of kind
// "semisync" (one record per begin, not per call, so the record costs
// nothing per call), listed by [Run.Tasks] and the REPL's :tasks.
func (r *beginRun) run(ctx context.Context, th *starlark.Thread) error {
	if len(r.batch) == 0 {
		return r.runGraph(ctx, th)
	}
	rec := r.rn.record("semisync", r.describe())
	t0 := r.rn.obs.begin()
	r.rn.obs.beginStarted(t0, th, r) // observe_stream.go
	err := r.runGraph(ctx, th)
	r.rn.obs.graph(t0, th, r, err)
	rec.finish(err)
	return err
}

// describe names a batch for its task record, e.g.
// `begin at <stdin#4>:1:15: 3 calls: fetch("a"), fetch("b"), report()`.
func (r *beginRun) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "begin at %s: ", r.where)
	if len(r.batch) == 1 {
		b.WriteString("1 call: ")
	} else {
		fmt.Fprintf(&b, "%d calls: ", len(r.batch))
	}
	const maxShown = 3
	for i, c := range r.batch {
		if i == maxShown {
			fmt.Fprintf(&b, ", ... (%d more)", len(r.batch)-maxShown)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s(%s)", c.fn.name, shortArgs(c.args, c.kwargs))
	}
	return b.String()
}
