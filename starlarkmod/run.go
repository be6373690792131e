package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/engine"
)

// A Run is the state of one execution on an [Interpreter]: a file, a
// source string, a REPL session (DESIGN.md section 2, rule 12). The
// Interpreter holds configuration, the worker pool and caches; everything a
// script can observe lives here, so two runs on one Interpreter, at once
// or one after the other, never see each other: the root context, the
// loader's root and loaded modules, the semisync queue, the background work
// to wait for at exit, the pipelines, the global dispatcher and the task log.
//
// A run's tasks may run on any of the interpreter's workers; a worker's
// thread learns which run its current task belongs to from the task (see
// runTask), never from the worker.
type Run struct {
	in   *Interpreter
	ctx  context.Context // the root context: background work runs under it
	root string          // load() stays under it
	main *taskID         // identity of the main thread, the root of the task tree

	loadMu sync.Mutex
	loads  map[string]*loadEntry

	predecl starlark.StringDict // the interpreter's, with this run's dispatcher
	mods    map[string]starlark.StringDict

	sem    *semisyncState
	tasks  taskLog
	pipes  pipelines
	remote remoteRun // remote.go

	frozen  frozenLog         // where crossings froze values (frozen.go)
	srcMu   sync.Mutex        //
	sources map[string]string // the source of each file, for explanations
	fsys    fs.FS             // if set, load() reads script files from it (embed.go)
	obs     *runObs           // what --trace, --graph and --summary show (observe.go)

	// waitKick wakes Wait when a future it waits for ends, or a thread
	// starts waiting for the result of a consumer nobody closed.
	waitKick chan struct{}

	bgMu   sync.Mutex
	fails  []string                                            // failures already reported that end the run with an error
	bg     map[*Future]struct{}                                // background work to wait for before exit
	bgSeq  uint64                                              // numbers tracked futures, for reporting in order
	atExit []func(ctx context.Context, w *engine.Worker) error // more of it: drain dispatchers, ...
}

// newRun starts the state of an execution under ctx whose loads stay under
// root.
func (in *Interpreter) newRun(ctx context.Context, root string) *Run {
	r := &Run{
		in:    in,
		ctx:   ctx,
		root:  root,
		main:  newRootID(),
		loads: make(map[string]*loadEntry),
		sem:   newSemisyncState(),
		obs:   in.opts.Observer.newRunObs(),

		waitKick: make(chan struct{}, 1),
	}
	d := newDispatcher(r, "dispatcher")
	base := in.predeclared()
	r.predecl = make(starlark.StringDict, len(base))
	for k, v := range base {
		r.predecl[k] = v
	}
	r.predecl["dispatcher"] = d
	r.mods = make(map[string]starlark.StringDict, len(in.modules()))
	for name, m := range in.modules() {
		r.mods[name] = m
	}
	helpers := make(starlark.StringDict, len(r.mods["concert.helpers"]))
	for k, v := range r.mods["concert.helpers"] {
		helpers[k] = v
	}
	helpers["dispatcher"] = d
	r.mods["concert.helpers"] = helpers
	in.withhold(r) // embed.go: Options.Withhold
	return r
}

// rootFor returns the load root of a run of the script at path: the
// interpreter's, if set, else the script's directory.
func (in *Interpreter) rootFor(path string) string {
	if in.root != "" {
		return in.root
	}
	return filepath.Dir(path)
}

// runOf returns the run of the code running on th, or nil.
func runOf(th *starlark.Thread) *Run {
	if ts := stateOf(th); ts != nil {
		return ts.run
	}
	return nil
}

// needRun returns the run of th, or an error naming op if th is not a
// semisync thread (a host called a builtin on a thread of its own).
func needRun(th *starlark.Thread, op string) (*Run, error) {
	if r := runOf(th); r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("%s: needs a thread made by a semisync interpreter", op)
}

// bgContext returns the context for background work started from th
// (a future, begin(_future=True)): the thread's own context on a main
// thread, but the run's on a worker, because a task's context ends with
// the task while what it starts in the background must outlive it.
func (r *Run) bgContext(th *starlark.Thread) context.Context {
	if isWorker(th) {
		return r.ctx
	}
	return contextOf(th)
}

// Wait waits for the background work started so far and returns an error
// listing the failures nobody observed, or ctx's cause if ctx ends first.
// Nothing is lost (DESIGN.md section 2, rule 9), and work that feeds a
// consumer ends before the consumer is closed:
//
//  1. pending dispatcher messages are delivered;
//  2. every future, background job and graph, and every consumer's
//     function that has been closed, is waited for;
//  3. when only open consumers are left (nobody closed them), the one
//     created last is closed, since a pipeline's upstream stages are
//     created after the consumers they feed, and Wait goes back to 1.
//
// One exception to the order: a consumer nobody closed whose result a
// thread waits for is closed as soon as Wait would otherwise wait (that
// thread waits for its end, and nothing else would ever close it).
//
// The calling goroutine joins the interpreter's pool while it waits (in
// sequential mode, the run's tasks go on whenever it waits): it must not
// be running a thread of the run that has not left (see [Run.Leave]).
func (r *Run) Wait(ctx context.Context) error {
	w := r.in.pool.Enter()
	defer w.Leave()
	var errs []string
	for {
		r.bgMu.Lock()
		hooks := r.atExit
		r.bgMu.Unlock()
		for _, h := range hooks {
			if err := h(ctx, w); err != nil {
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				errs = append(errs, err.Error())
			}
		}
		if fs := r.takeSettling(); len(fs) > 0 {
			for _, f := range fs {
				if err := r.settle(ctx, w, f); err != nil {
					if ctx.Err() != nil {
						return context.Cause(ctx)
					}
					if !f.observed.Load() {
						errs = append(errs, fmt.Sprintf("%s failed:\n%s", f.desc(), indent(errText(err))))
					}
				}
			}
			continue
		}
		if c := r.pipes.newestOpen(); c != nil {
			c.closeAt(nil, "the end of the script")
			continue
		}
		break
	}
	r.bgMu.Lock()
	fails := r.fails
	r.fails = nil
	r.bgMu.Unlock()
	if msg := r.sem.neverRun(); msg != "" {
		fails = append(fails, msg)
	}
	switch {
	case len(errs) > 0:
		return fmt.Errorf("background work failed and nobody waited for it:\n%s", strings.Join(append(errs, fails...), "\n"))
	case len(fails) > 0:
		return errors.New(strings.Join(fails, "\n"))
	}
	return nil
}

// settle waits for f on w and returns its error; while it waits, it closes
// the consumers nobody closed that a thread waits for (see Wait).
func (r *Run) settle(ctx context.Context, w *engine.Worker, f *Future) error {
	f.f.OnDone(r.kickWait)
	for !f.f.IsDone() {
		if c := r.pipes.newestAwaited(); c != nil {
			c.closeAt(nil, "the end of the script")
			continue
		}
		if _, _, err := engine.Recv(ctx, w, r.waitKick, 0); err != nil {
			return err
		}
	}
	_, err := f.f.Result(ctx, w) // resolved: returns at once (re-raising a task's panic)
	return err
}

// kickWait wakes Wait if it waits (see waitKick).
func (r *Run) kickWait() {
	select {
	case r.waitKick <- struct{}{}:
	default:
	}
}

// takeSettling removes from the tracked background work, and returns in the
// order it was started, everything except the functions of consumers that
// are still open (they end only once closed: see Wait).
func (r *Run) takeSettling() []*Future {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	var list []*Future
	for f := range r.bg {
		if f.consumer != nil && !f.consumer.closing.Load() {
			continue
		}
		list = append(list, f)
		delete(r.bg, f)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].seq < list[j].seq })
	return list
}

// failed records a failure of background work that was reported as it
// happened (a dispatcher handler's) and must still make the run fail.
func (r *Run) failed(msg string) {
	r.bgMu.Lock()
	r.fails = append(r.fails, msg)
	r.bgMu.Unlock()
}

// track records background work for [Run.Wait]: until it is done, and
// afterwards if it failed (its error may need reporting).
func (r *Run) track(f *Future) {
	r.bgMu.Lock()
	if r.bg == nil {
		r.bg = map[*Future]struct{}{}
	}
	r.bgSeq++
	f.seq = r.bgSeq
	r.bg[f] = struct{}{}
	r.bgMu.Unlock()
	f.f.OnDone(func() {
		if _, _, err := f.f.Peek(); err == nil {
			r.bgMu.Lock()
			delete(r.bg, f)
			r.bgMu.Unlock()
		}
	})
}

// onWait registers h to run each time [Run.Wait] runs (before the run
// ends): it waits for background work that is not a future, such as a
// dispatcher's queue, and returns its unobserved failures.
func (r *Run) onWait(h func(ctx context.Context, w *engine.Worker) error) {
	r.bgMu.Lock()
	r.atExit = append(r.atExit, h)
	r.bgMu.Unlock()
}
