package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/builtin"
	"github.com/semisync/semisync/starlarkmod/internal/compile"
)

// The job builtin, after spychronous's SynchronousJob: a parallel map.
//
//	job(func, items, args=[], processes=4, timeout=None,
//	    suppress_worker_exceptions=False, no_daemon=False, ordered=True,
//	    progress=None, keep_results=True, cache=None)
//	                                            a job (SynchronousJob is the same); cache: see cache.go
//	j.run_multi_processed(_future=False)        func(item, *args) for each item on `processes`
//	                                            workers; the list of results in input order
//	j.run(_future=False)                        the same
//	j.run_single_processed()                    the same, one item at a time on the calling thread
//	j.start()                                   run_multi_processed in the background: a future
//
// Semantics, and how they differ from the seed:
//
//   - Results come in input order (the seed's come in random order);
//     ordered=False gives completion order (per chunk, see below).
//   - items may be any iterable. It is consumed lazily on the thread that
//     calls run, never materialised: range(10**8) or a @generator stream is
//     fine. Each item is frozen (prepared, see crossing.go) as it is pulled,
//     then handed to the workers in chunks that start at one item and grow
//     while items are quick (engine.Mapper); at most a bounded window of
//     chunks is in flight, so memory does not grow with the number of items.
//     What grows is the list of results: 16 bytes per item (a million Nones
//     take 16 MB). keep_results=False (our addition) drops them: run returns
//     None and memory stays flat whatever the number of items.
//   - func runs on `processes` long-running worker loops, each with its own
//     Starlark thread; an item is a plain function call on that thread (no
//     goroutine, channel operation or context per item unless timeout is
//     set). Globals func reads are frozen first, so a func that mutates
//     script state fails with "cannot append to frozen list" (the seed's
//     processes lose such changes silently); share state through
//     Manager().list(), .dict() or .Namespace().
//   - timeout (seconds) applies to each item: an item over it is cancelled,
//     busy loops and sleeps included, and fails with a timeout error.
//   - An error stops the job: the first failing item in input order (with
//     ordered=False, the first to fail), reported with its index, its value,
//     the line that called run and the item's own traceback. Items after it
//     are cancelled at once; items before it still finish, so the error does
//     not depend on timing. With suppress_worker_exceptions=True a failed
//     item's traceback goes to stderr, its result is None and the job goes
//     on.
//   - Ctrl-C (the run's context ending) cancels every running item at once,
//     starts no new one, and fails with an error naming the items that were
//     cancelled.
//   - run_single_processed calls func on the calling thread, item after
//     item, without freezing anything: a debugging aid that behaves like a
//     for loop, raising the item's original error with its full traceback.
//     timeout and suppress_worker_exceptions still apply.
//   - In sequential mode (--sequential) the same worker loops run the
//     items, one item at a time, in input order: the same freezing, errors
//     and results as in parallel mode.
//   - no_daemon is accepted and ignored: nested jobs always work. A worker
//     waiting for a nested job waits through the engine, so the pool grows;
//     if the pool is at its hard cap (Options.MaxWorkers), the waiting
//     thread runs the nested items itself.
//   - A progress bar (done/total, rate, ETA; total unknown for iterables
//     without len) is drawn on stderr while a job runs from the script's
//     main thread, if stderr is a terminal and progress is not False.

// jobValue is a job: a function, the items to map it over and options.
// It is immutable once made.
type jobValue struct {
	fn        starlark.Callable
	items     starlark.Iterable
	args      starlark.Tuple
	processes int
	timeout   time.Duration
	suppress  bool
	ordered   bool
	progress  starlark.Value // None, True or False
	keep      bool
	cache     cacheMode // the cache= argument (cache.go)
}

var (
	_ starlark.HasAttrs = (*jobValue)(nil)
	_ Crosser           = (*jobValue)(nil)
)

// jobBuiltin is job and spychronous's SynchronousJob.
var jobBuiltin = starlark.NewBuiltin("job", newJob)

func newJob(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		fn        starlark.Callable
		items     starlark.Iterable
		extra     starlark.Iterable
		processes = 4
		timeout   timeoutArg
		suppress  bool
		noDaemon  bool
		ordered                  = true
		progress  starlark.Value = starlark.None
		keep                     = true
		cacheArg  starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"func", &fn, "items", &items, "args?", &extra, "processes?", &processes,
		"timeout?", &timeout, "suppress_worker_exceptions?", &suppress,
		"no_daemon?", &noDaemon, "ordered?", &ordered, "progress?", &progress,
		"keep_results?", &keep, "cache?", &cacheArg); err != nil {
		return nil, err
	}
	mode, err := cacheModeOf(b.Name(), cacheArg)
	if err != nil {
		return nil, err
	}
	if processes < 1 {
		return nil, fmt.Errorf("%s: processes: got %d, want at least 1", b.Name(), processes)
	}
	switch progress {
	case starlark.None, starlark.True, starlark.False:
	default:
		return nil, fmt.Errorf("%s: progress: got %s, want True, False or None", b.Name(), progress.Type())
	}
	j := &jobValue{fn: fn, items: items, processes: processes, timeout: timeout.D,
		suppress: suppress, ordered: ordered, progress: progress, keep: keep, cache: mode}
	if extra != nil {
		it := extra.Iterate()
		defer it.Done()
		var x starlark.Value
		for it.Next(&x) {
			j.args = append(j.args, x)
		}
	}
	return j, nil
}

func (j *jobValue) String() string {
	return fmt.Sprintf("<job %s over %s>", j.fn.Name(), j.items.Type())
}
func (j *jobValue) Type() string          { return "job" }
func (j *jobValue) Freeze()               {}
func (j *jobValue) Truth() starlark.Bool  { return true }
func (j *jobValue) Hash() (uint32, error) { return builtin.HashPointer(j), nil }

func (j *jobValue) Cross(yield func(starlark.Value) error) error {
	if err := yield(j.fn); err != nil {
		return err
	}
	if err := yield(j.items); err != nil {
		return err
	}
	return yield(j.args)
}

var jobMethods = map[string]*starlark.Builtin{
	"run_multi_processed":  starlark.NewBuiltin("job.run_multi_processed", jobRun),
	"run":                  starlark.NewBuiltin("job.run", jobRun),
	"run_single_processed": starlark.NewBuiltin("job.run_single_processed", jobRunSingle),
	"start":                starlark.NewBuiltin("job.start", jobStart),
}

func (j *jobValue) Attr(name string) (starlark.Value, error) {
	return builtin.MethodAttr(j, jobMethods, name)
}
func (j *jobValue) AttrNames() []string { return builtin.SortedKeys(jobMethods) }

func jobRun(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var future bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "_future?", &future); err != nil {
		return nil, err
	}
	j := b.Receiver().(*jobValue)
	if future {
		return j.start(th, b.Name())
	}
	rn, err := needRun(th, b.Name())
	if err != nil {
		return nil, err
	}
	in := rn.in
	ts := stateOf(th)
	if err := in.prepare(th, b.Name(), false, j.fn, j.args); err != nil {
		return nil, err
	}
	r := jobRunner{
		in: in, rn: rn, j: j, op: b.Name(), where: scriptPos(th), id: ts.nextChild().id(),
		background: isWorker(th), bar: !isWorker(th),
	}
	if r.cache, err = rn.cacheFunc(b.Name(), j.fn, j.cache); err != nil {
		return nil, err
	}
	return r.run(contextOf(th), th)
}

func jobStart(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return b.Receiver().(*jobValue).start(th, b.Name())
}

// start runs the job in the background and returns its future, which the
// interpreter waits for before exiting. Everything the job reaches,
// items included, is prepared first: the script goes on meanwhile.
func (j *jobValue) start(th *starlark.Thread, op string) (starlark.Value, error) {
	rn, err := needRun(th, op)
	if err != nil {
		return nil, err
	}
	in := rn.in
	if err := in.prepare(th, op, true, j.fn, j.args, j.items); err != nil {
		return nil, err
	}
	r := jobRunner{in: in, rn: rn, j: j, op: op, where: scriptPos(th), id: stateOf(th).nextChild().id(), background: true}
	if r.cache, err = rn.cacheFunc(op, j.fn, j.cache); err != nil {
		return nil, err
	}
	desc := fmt.Sprintf("job %s started at %s", j.fn.Name(), r.where)
	fut := engine.Go(rn.bgContext(th), in.pool, func(ctx context.Context, w *engine.Worker) (starlark.Value, error) {
		wth := workerThread.Get(w)
		stateOf(wth).setTaskID(rn, r.id)
		return withContext(ctx, wth, func() (starlark.Value, error) {
			return r.run(ctx, wth)
		})
	})
	f := newFuture(fut, op, desc)
	rn.track(f)
	return f, nil
}

// jobRunner is one run of a job.
type jobRunner struct {
	in         *Interpreter
	rn         *Run
	j          *jobValue
	op         string      // the builtin, for errors
	where      string      // the line that called run
	id         *taskID     // the run's identity: item i is its child i
	background bool        // items must pass the background rule
	bar        bool        // a progress bar may be shown
	cache      *cachedFunc // the items are cached (cache.go), if set
}

// run maps the job's function over its items on ex; th is the calling
// thread, which pulls the items, and caller its worker.
func (r *jobRunner) run(ctx context.Context, th *starlark.Thread) (_ starlark.Value, err error) {
	if r.in.opts.Remote != nil {
		return r.runRemote(ctx, th) // remote.go
	}
	caller := workerOf(th)
	j := r.j
	rec := r.rn.record("job", fmt.Sprintf("%s over %s items, run at %s", j.fn.Name(), j.items.Type(), r.where))
	obsEnd := r.rn.obs.span(spanJob, th, r.id, "job "+j.fn.Name(), r.where)
	defer func() { rec.finish(err); obsEnd(err) }()
	iter := j.items.Iterate()
	defer iter.Done()
	total := -1
	if s, ok := j.items.(starlark.Sequence); ok {
		total = s.Len()
	}
	var results []starlark.Value
	if j.keep && total > 0 {
		results = make([]starlark.Value, 0, total)
	}
	var bar *progress
	if r.bar && j.progress != starlark.False {
		bar = newProgress(r.in, total, j.fn.Name())
	}
	m := engine.Mapper[starlark.Value, starlark.Value]{
		Workers:   j.processes,
		Ordered:   j.ordered,
		KeepGoing: j.suppress,
		Timeout:   j.timeout,
		Start:     r.startWorker(caller),
	}
	pulled := 0
	next := func() (starlark.Value, bool, error) {
		var x starlark.Value
		if !iter.Next(&x) {
			return nil, false, nil
		}
		if err := r.prepareItem(x); err != nil {
			return nil, false, fmt.Errorf("%s: item %d (value %s): %w", r.op, pulled, short(x), err)
		}
		pulled++
		return x, true, nil
	}
	emit := func(i int, item, v starlark.Value, err error) error {
		if err != nil {
			r.in.report(suppressed(r.op, r.itemDesc(i, item), err))
			v = starlark.None
		}
		if j.keep {
			results = append(results, v)
		}
		bar.add()
		return nil
	}
	err = m.Run(ctx, r.in.pool, caller, next, emit)
	bar.finish(err == nil)
	if err != nil {
		return nil, r.explain(err, total)
	}
	if !j.keep {
		return starlark.None, nil
	}
	return starlark.NewList(results), nil
}

// suppressed is the report of an item that failed under
// suppress_worker_exceptions: op names the call, task the item.
func suppressed(op, task string, err error) string {
	return fmt.Sprintf("%s: %s failed (suppressed; its result is None):\n%s", op, task, indent(errText(err)))
}

// prepareItem freezes an item (and checks the functions it holds) before
// it crosses to a worker. Scalars, most items, need nothing.
func (r *jobRunner) prepareItem(x starlark.Value) error {
	switch x.(type) {
	case starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
		return nil
	}
	return r.in.prepareValues(r.op, r.background, x)
}

// startWorker returns the engine.Mapper Start hook: it binds the worker's
// thread to the loop's context once, and returns the per-item call, which
// only sets the item's task identity (for random) and calls the function.
func (r *jobRunner) startWorker(caller *engine.Worker) func(ctx context.Context, w *engine.Worker) (engine.MapFunc[starlark.Value, starlark.Value], func()) {
	fn, extra, timeout := r.j.fn, r.j.args, r.j.timeout > 0
	return func(ctx context.Context, w *engine.Worker) (engine.MapFunc[starlark.Value, starlark.Value], func()) {
		th := workerThread.Get(w)
		fresh := w == caller
		if fresh {
			// The calling goroutine runs the items because no worker loop
			// could start (the pool is at its hard cap: see engine.Mapper).
			// They get a thread of their own, so that they see what they
			// would see on a worker, tracebacks included.
			th = r.in.newThread(fmt.Sprintf("job-helper-%d", w.ID), w, true)
		}
		ts := stateOf(th)
		saved := ts.taskState
		// Bind the thread to the loop's context once for all its items
		// (threadState.bind): cancelling it cancels whichever item runs.
		ts.bind(th, ctx)
		// A Starlark function copies its arguments into its frame and never
		// keeps the tuple (Function.CallInternal promises not to mutate it),
		// so one tuple serves every item; other callables get a fresh one.
		_, reuse := fn.(*starlark.Function)
		buf := make(starlark.Tuple, 1+len(extra))
		copy(buf[1:], extra)
		call := func(ctx context.Context, i int, item starlark.Value) (starlark.Value, error) {
			ts.setTask(r.rn, taskRef{parent: r.id, n: i})
			th.Steps = 0
			args := buf
			if !reuse {
				args = make(starlark.Tuple, 1+len(extra))
				copy(args[1:], extra)
			}
			args[0] = item
			var v starlark.Value
			var err error
			var cc *cachedCall
			if r.cache != nil {
				if cc, v, err = r.cachedItem(args); v != nil || err != nil {
					if reuse {
						args[0] = nil
					}
					return v, err // a hit: the function does not run
				}
			}
			if timeout {
				ts.bind(th, ctx) // the item's own context, with its deadline
			}
			t0 := r.rn.obs.begin()
			callee := r.in.comp.CallableOn(th, fn)
			v, err = starlark.Call(th, callee, args, nil)
			compile.Release(callee)
			r.rn.obs.item(t0, w, r.id, i, fn, err)
			if reuse {
				// Do not keep the item alive. Only the shared tuple: another
				// callable (a @future function) may keep the one it got.
				args[0] = nil
			}
			if err != nil {
				return nil, r.rn.explainFrozen(err) // frozen.go
			}
			if err := r.in.prepareResult(v); err != nil {
				return nil, err
			}
			if cc != nil {
				r.rn.store(cc, v)
			}
			return v, nil
		}
		return call, func() {
			if fresh {
				ts.unbind(th)
			} // a pool worker's thread stays bound until its next task
			ts.taskState = saved
		}
	}
}

// scriptPos returns the position of the nearest script code that called
// the running builtin (skipping builtins such as assert's catch), as
// "file:line:col".
func scriptPos(th *starlark.Thread) string {
	for i := 1; i < th.CallStackDepth(); i++ {
		if pos := th.CallFrame(i).Pos; pos.IsValid() && pos.Filename() != "<builtin>" {
			return pos.String()
		}
	}
	return callerPos(th)
}

// itemDesc describes item i for messages.
func (r *jobRunner) itemDesc(i int, item starlark.Value) string {
	return fmt.Sprintf("item %d (value %s) of the job run at %s", i, short(item), r.where)
}

// short renders a value for messages, abbreviated.
func short(v starlark.Value) string {
	s := v.String()
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// explain turns the engine's error into the job's.
func (r *jobRunner) explain(err error, total int) error {
	var me *engine.MapError[starlark.Value]
	if !errors.As(err, &me) {
		return err
	}
	if me.Failed != nil {
		return &TaskError{Op: r.op, Task: r.itemDesc(me.Failed.Index, me.Failed.Value), Err: me.Failed.Err}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v", r.op, me.Cause)
	if n := len(me.Cancelled); n > 0 {
		fmt.Fprintf(&b, "; cancelled %d running item", n)
		if n > 1 {
			b.WriteString("s")
		}
		b.WriteString(":")
		const maxShown = 10
		for k, it := range me.Cancelled {
			if k == maxShown {
				fmt.Fprintf(&b, " and %d more", n-maxShown)
				break
			}
			if k > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %d (value %s)", it.Index, short(it.Value))
		}
	}
	of := ""
	if total >= 0 {
		of = " of " + strconv.Itoa(total)
	}
	fmt.Fprintf(&b, "; %d%s items done, %d queued items not started, the rest not taken (job run at %s)",
		me.Done, of, me.NotStarted, r.where)
	return &jobCancelled{msg: b.String(), err: me}
}

// jobCancelled is the error of a job whose context ended (Ctrl-C, --timeout).
type jobCancelled struct {
	msg string
	err *engine.MapError[starlark.Value]
}

func (e *jobCancelled) Error() string { return e.msg }
func (e *jobCancelled) Unwrap() error { return e.err }

func jobRunSingle(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	j := b.Receiver().(*jobValue)
	rn, err := needRun(th, b.Name())
	if err != nil {
		return nil, err
	}
	in := rn.in
	r := jobRunner{in: in, rn: rn, j: j, op: b.Name(), where: scriptPos(th)}
	var bar *progress
	if !isWorker(th) && j.progress != starlark.False {
		total := -1
		if s, ok := j.items.(starlark.Sequence); ok {
			total = s.Len()
		}
		bar = newProgress(in, total, j.fn.Name())
	}
	var results []starlark.Value
	iter := j.items.Iterate()
	defer iter.Done()
	ctx := contextOf(th)
	var x starlark.Value
	for i := 0; iter.Next(&x); i++ {
		if err := ctx.Err(); err != nil {
			bar.finish(false)
			return nil, fmt.Errorf("%s: %w", b.Name(), context.Cause(ctx))
		}
		args := make(starlark.Tuple, 1+len(j.args))
		args[0] = x
		copy(args[1:], j.args)
		var v starlark.Value
		var err error
		if j.timeout > 0 {
			tcause := &engine.TimeoutError{Timeout: j.timeout}
			ictx, cancel := context.WithTimeoutCause(ctx, j.timeout, tcause)
			v, err = withContext(ictx, th, func() (starlark.Value, error) { return starlark.Call(th, in.comp.Callable(j.fn), args, nil) })
			if context.Cause(ictx) == tcause && err == nil {
				err = fmt.Errorf("%s: %s timed out after %v", b.Name(), r.itemDesc(i, x), j.timeout)
			}
			cancel()
		} else {
			v, err = starlark.Call(th, in.comp.Callable(j.fn), args, nil)
		}
		if err != nil {
			if !j.suppress {
				bar.finish(false)
				return nil, err // the original error, with the whole traceback
			}
			in.report(suppressed(b.Name(), r.itemDesc(i, x), err))
			v = starlark.None
		}
		if j.keep {
			results = append(results, v)
		}
		bar.add()
	}
	bar.finish(true)
	if !j.keep {
		return starlark.None, nil
	}
	return starlark.NewList(results), nil
}
