package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/crossing"
	"github.com/semisync/semisync/starlarkmod/internal/decorator"
)

// Options configures an [Interpreter]. The zero value is usable: output goes
// to os.Stdout and os.Stderr, work runs in parallel, the random seed is
// random, and there is no step limit.
type Options struct {
	// Stdout receives print output, one whole line per write. Stderr receives
	// reports of suppressed and background errors.
	Stdout, Stderr io.Writer
	// Sequential runs every graph, job, future and pipeline on the thread
	// that started it, one at a time, in a deterministic order.
	Sequential bool
	// Seed, if Seeded, makes the random module deterministic: each task's
	// generator is seeded from Seed and the task's identity.
	Seed   int64
	Seeded bool
	// MaxSteps, if positive, limits each thread of execution (the script's
	// top level and each task) to that many Starlark computation steps.
	MaxSteps uint64
	// Args is the script's argv (argv[0] is the script path).
	Args []string
	// Limit is how many workers may compute at once (0: 128). Workers
	// waiting in sleep, result or other blocking calls do not count.
	Limit int
	// MaxWorkers, if positive, is a hard cap on worker goroutines.
	MaxWorkers int
	// Modules adds modules that load accepts by name, beside the built-in
	// ones (a host's own API, or starlarktest's "assert.star"). Their
	// values are shared by all threads and must be frozen or thread-safe.
	Modules map[string]starlark.StringDict
	// ThreadInit, if set, is called for every thread the interpreter
	// creates (main threads and workers) before it runs any code, to set
	// the host's thread-locals.
	ThreadInit func(th *starlark.Thread)
}

// An Interpreter runs semisync scripts. It owns a pool of worker goroutines,
// each with its own Starlark thread, and everything scripts share (the
// semisync call queue, background futures). Create it with [New], run
// scripts with [Interpreter.ExecFile], and release it with
// [Interpreter.Close]. Its methods are safe for concurrent use, but one
// script runs on one main thread at a time.
type Interpreter struct {
	opts   Options
	out    *lineWriter
	errOut *lineWriter
	pool   *engine.Pool
	seed   int64

	cross crossing.Checker // analyses, finished modules, values found safe for good

	loadMu sync.Mutex
	loads  map[string]*loadEntry
	root   string

	sem *semisyncState

	predeclOnce sync.Once
	predecl     starlark.StringDict
	modulesOnce sync.Once
	mods        map[string]starlark.StringDict

	rootCtx atomic.Value // context.Context of the latest ExecFile or MainThread

	bgMu   sync.Mutex
	bg     map[*Future]struct{}              // background work to wait for before exit
	bgSeq  uint64                            // numbers tracked futures, for reporting in order
	atExit []func(ctx context.Context) error // more of it: drain dispatchers, ...

	tasks taskLog
	pipes pipelines // coroutines and dispatchers to settle before exit (pipeline.go)
}

// New returns an interpreter configured by opts.
func New(opts Options) *Interpreter {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	in := &Interpreter{
		opts:   opts,
		out:    &lineWriter{w: opts.Stdout},
		errOut: &lineWriter{w: opts.Stderr},
		loads:  make(map[string]*loadEntry),
	}
	in.seed = opts.Seed
	if !opts.Seeded {
		in.seed = time.Now().UnixNano()
	}
	in.sem = newSemisyncState()
	in.pool = engine.NewPool(engine.PoolOptions{
		Limit: opts.Limit,
		Max:   opts.MaxWorkers,
		Init: func(w *engine.Worker) {
			th := in.newThread(fmt.Sprintf("worker-%d", w.ID), w)
			w.Local = th
		},
		Exit: func(w *engine.Worker) {
			th := w.Local.(*starlark.Thread)
			stateOf(th).unbind(th)
		},
	})
	return in
}

// FileOptions are the dialect's options: Python-like top-level control
// flow, while loops, recursion, sets and global reassignment.
var fileOptions = &syntax.FileOptions{
	Set:             true,
	While:           true,
	TopLevelControl: true,
	GlobalReassign:  true,
	Recursion:       true,
}

// FileOptions returns the Starlark dialect semisync scripts are written in.
func FileOptions() *syntax.FileOptions {
	o := *fileOptions
	return &o
}

// lineWriter writes each line with one Write call under a mutex, so lines
// printed by many threads never interleave.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lineWriter) line(s string) {
	b := make([]byte, 0, len(s)+1)
	b = append(b, s...)
	b = append(b, '\n')
	lw.mu.Lock()
	lw.w.Write(b) //nolint:errcheck // print has nowhere to report failure
	lw.mu.Unlock()
}

// threadState is the per-thread record kept under the local key
// "semisync.thread". Fields change only between tasks, on the thread's own
// goroutine.
type threadState struct {
	in     *Interpreter
	worker *engine.Worker // nil on a main thread
	task   taskKey        // identity of the running task, for random seeding
	rng    *randState     // created on first use in a task
	inline int            // depth of tasks run inline on this thread (sequential mode)

	// On a worker: the context its thread is bound to, and how to unbind.
	ctx   context.Context
	stop  func() bool
	fired chan struct{}
}

// bind makes ctx the context of th, a worker's thread, for the next task:
// cancelling ctx cancels th. Consecutive tasks of one job or graph share a
// context, so the binding (a context.AfterFunc) is made once per context,
// not once per task. A thread cancelled for another reason (too many steps)
// is un-cancelled, unless ctx itself is done.
func (ts *threadState) bind(th *starlark.Thread, ctx context.Context) {
	if ts.ctx != ctx {
		ts.unbind(th)
		ts.ctx = ctx
		th.SetLocal(localContext, ctx)
		fired := make(chan struct{})
		ts.fired = fired
		ts.stop = context.AfterFunc(ctx, func() {
			th.Cancel(cancelReason(ctx))
			close(fired)
		})
	}
	if ctx.Err() == nil {
		th.Uncancel()
	}
}

// unbind undoes bind, waiting for a cancellation in flight to land first.
func (ts *threadState) unbind(th *starlark.Thread) {
	if ts.stop == nil {
		return
	}
	if !ts.stop() {
		<-ts.fired
	}
	th.Uncancel()
	th.SetLocal(localContext, context.Background())
	ts.ctx, ts.stop, ts.fired = nil, nil, nil
}

const (
	localContext = "context" // context.Context, as in go.starlark.net/repl
	localState   = "semisync.thread"
)

func (in *Interpreter) newThread(name string, w *engine.Worker) *starlark.Thread {
	th := &starlark.Thread{
		Name:  name,
		Print: func(_ *starlark.Thread, msg string) { in.out.line(msg) },
	}
	if w == nil {
		th.Load = in.load
	} else {
		th.Load = func(*starlark.Thread, string) (starlark.StringDict, error) {
			return nil, errors.New("load is only allowed at the top level of a file")
		}
	}
	th.SetLocal(localState, &threadState{in: in, worker: w, task: taskKey{prefix: name}})
	th.SetLocal(localContext, context.Background())
	if in.opts.MaxSteps > 0 {
		th.SetMaxExecutionSteps(in.opts.MaxSteps)
	}
	if in.opts.ThreadInit != nil {
		in.opts.ThreadInit(th)
	}
	return th
}

func stateOf(th *starlark.Thread) *threadState {
	ts, _ := th.Local(localState).(*threadState)
	return ts
}

// contextOf returns the context of the code running on th.
func contextOf(th *starlark.Thread) context.Context {
	if ctx, ok := th.Local(localContext).(context.Context); ok {
		return ctx
	}
	return context.Background()
}

// isWorker reports whether th is running a task: it is a worker thread,
// or a task runs inline on it (sequential mode), so that both modes apply
// the same rules.
func isWorker(th *starlark.Thread) bool {
	ts := stateOf(th)
	return ts != nil && (ts.worker != nil || ts.inline > 0)
}

// block marks th's worker as waiting; call the result when the wait ends.
func block(th *starlark.Thread) func() {
	if ts := stateOf(th); ts != nil {
		return ts.worker.Block()
	}
	return func() {}
}

// withContext runs f on th (a thread owned by the calling goroutine) with
// ctx as its context: cancelling ctx cancels th's Starlark code. The thread's
// previous context and cancellation state are restored afterwards.
func withContext[T any](ctx context.Context, th *starlark.Thread, f func() (T, error)) (T, error) {
	if ts := stateOf(th); ts != nil && ts.worker != nil {
		ts.bind(th, ctx) // a worker's thread stays bound until its next task
		return f()
	}
	prev := th.Local(localContext)
	th.SetLocal(localContext, ctx)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		th.Cancel(cancelReason(ctx))
		close(fired)
	})
	v, err := f()
	if !stop() {
		<-fired // the canceller ran or is running: let it finish before Uncancel
	}
	// Clear this run's cancellation, whoever caused it: ctx, or an iterator
	// reporting a failure the only way it can (Thread.Cancel; by now the
	// failure has surfaced as an error). Otherwise a REPL thread would fail
	// every later chunk.
	if pctx, ok := prev.(context.Context); !ok || pctx.Err() == nil {
		th.Uncancel()
	}
	th.SetLocal(localContext, prev)
	return v, err
}

func cancelReason(ctx context.Context) string {
	if err := context.Cause(ctx); err != nil {
		return err.Error()
	}
	return "cancelled"
}

// executor returns where work started from th runs: th itself in
// sequential mode, else the worker pool.
func (in *Interpreter) executor(th *starlark.Thread) engine.Executor {
	if in.opts.Sequential {
		return engine.Inline{Worker: &engine.Worker{Local: th}}
	}
	return in.pool
}

// runTask calls fn(args, kwargs) as the task named task on worker w, with
// ctx. On a pool worker it owns w's thread for the call: it sets the
// context, resets the step budget and the random generator. Inline (the
// worker's thread is the caller's), it just calls fn. The result is readied
// to cross back (prepareResult); if it cannot cross, that is the error.
func (in *Interpreter) runTask(ctx context.Context, w *engine.Worker, task taskKey, fn starlark.Callable, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	th := w.Local.(*starlark.Thread)
	ts := stateOf(th)
	if w.ID == 0 { // inline: the caller's own thread; only the task identity changes
		saved, savedRng := ts.task, ts.rng
		ts.task, ts.rng = task, nil
		ts.inline++
		depth := th.CallStackDepth()
		v, err := starlark.Call(th, fn, args, kwargs)
		ts.inline--
		// A failure the task reported by cancelling the thread (an iterator's
		// only way) is the task's error, returned above; it must not cancel
		// the caller's next step too. A cancelled context still does.
		if contextOf(th).Err() == nil {
			th.Uncancel()
		}
		// Show the task's own frames only, as a worker's traceback would.
		if ee, ok := err.(*starlark.EvalError); ok && len(ee.CallStack) > depth {
			trimmed := *ee
			trimmed.CallStack = ee.CallStack[depth:]
			err = &trimmed
		}
		ts.task, ts.rng = saved, savedRng
		if err == nil {
			if err = in.prepareResult(v); err != nil {
				v = nil
			}
		}
		return v, err
	}
	ts.task, ts.rng = task, nil
	th.Steps = 0
	ts.bind(th, ctx)
	v, err := starlark.Call(th, fn, args, kwargs)
	if err == nil {
		if err = in.prepareResult(v); err != nil {
			v = nil
		}
	}
	return v, err
}

// A taskKey identifies a task deterministically (given the same script and
// seed): it seeds the task's random generator. It is formatted only if the
// task uses random.
type taskKey struct {
	prefix string
	n      int
}

func (k taskKey) String() string { return k.prefix + "#" + strconv.Itoa(k.n) }

// ExecFile runs the script at path as the main module with ctx: cancelling
// ctx stops all of its Starlark code, including tasks, promptly. It waits
// for background work the script started (futures, begin(_future=True))
// before returning, and returns the first error: the script's, else one
// reporting unobserved background failures.
func (in *Interpreter) ExecFile(ctx context.Context, path string) (starlark.StringDict, error) {
	if in.root == "" {
		in.root = filepath.Dir(path)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	th := in.MainThread(ctx, "main")
	globals, err := withContext(ctx, th, func() (starlark.StringDict, error) {
		return in.execModule(th, path, src)
	})
	werr := in.Wait(ctx)
	if err == nil {
		err = werr
	}
	return globals, err
}

// MainThread returns a new thread for running script code on the caller's
// goroutine (the REPL, an embedder's own calls) with ctx as its context.
func (in *Interpreter) MainThread(ctx context.Context, name string) *starlark.Thread {
	th := in.newThread(name, nil)
	th.SetLocal(localContext, ctx)
	in.rootCtx.Store(ctxBox{ctx})
	return th
}

type ctxBox struct{ context.Context }

// bgContext returns the context for background work started from th
// (a future, begin(_future=True)): the thread's own context on a main
// thread, but the session's on a worker, because a task's context ends with
// the task while what it starts in the background must outlive it.
func (in *Interpreter) bgContext(th *starlark.Thread) context.Context {
	if isWorker(th) {
		if b, ok := in.rootCtx.Load().(ctxBox); ok {
			return b.Context
		}
	}
	return contextOf(th)
}

// execModule parses (with decorators), compiles, records and runs one
// module, then freezes its globals.
func (in *Interpreter) execModule(th *starlark.Thread, filename string, src []byte) (starlark.StringDict, error) {
	prog, err := in.Compile(filename, src)
	if err != nil {
		return nil, err
	}
	g, err := prog.Init(th, in.Predeclared())
	in.cross.Finish(prog)
	freezeGlobals(g)
	return g, err
}

// Compile parses src in semisync's dialect (decorators included) and
// compiles it against the interpreter's predeclared names.
func (in *Interpreter) Compile(filename string, src []byte) (*starlark.Program, error) {
	f, err := decorator.Parse(fileOptions, filename, src, 0)
	if err != nil {
		return nil, err
	}
	pre := in.Predeclared()
	prog, err := starlark.FileProgram(f, pre.Has)
	if err != nil {
		return nil, err
	}
	in.cross.Add(prog, crossing.Analyze(f))
	return prog, nil
}

// ExecChunk runs src, one REPL entry, on th. Names bound by earlier
// chunks (globals) are visible to it as predeclared names; the result holds
// globals updated with the chunk's own bindings. If the chunk's last
// statement is an expression (other than a call that returns None), its
// value is returned as val and bound to "_". Decorators work as in files.
func (in *Interpreter) ExecChunk(th *starlark.Thread, filename string, src []byte, globals starlark.StringDict) (result starlark.StringDict, val starlark.Value, err error) {
	f, err := decorator.Parse(chunkOptions, filename, src, 0) // see repl_support.go
	if err != nil {
		return globals, nil, err
	}
	// Bind a trailing expression statement to a hidden global, keeping its
	// position, so its value can be shown.
	const hidden = "__semisync_value__"
	if n := len(f.Stmts); n > 0 {
		if es, ok := f.Stmts[n-1].(*syntax.ExprStmt); ok {
			start, _ := es.X.Span()
			f.Stmts[n-1] = &syntax.AssignStmt{
				OpPos: start,
				Op:    syntax.EQ,
				LHS:   &syntax.Ident{NamePos: start, Name: hidden},
				RHS:   es.X,
			}
		}
	}
	env := make(starlark.StringDict, len(globals)+16)
	for k, v := range in.Predeclared() {
		env[k] = v
	}
	for k, v := range globals {
		env[k] = v
	}
	seedRebound(f, globals, env) // x += 1 of an earlier chunk's x; see repl_support.go
	prog, err := starlark.FileProgram(f, env.Has)
	if err != nil {
		return globals, nil, err
	}
	in.cross.Add(prog, crossing.Analyze(f))
	g, err := prog.Init(th, env)
	in.cross.Finish(prog)
	result = make(starlark.StringDict, len(globals)+len(g))
	for k, v := range globals {
		result[k] = v
	}
	for k, v := range g {
		if k != hidden {
			result[k] = v
		}
	}
	if v, ok := g[hidden]; ok && err == nil && v != starlark.None {
		val = v
		result["_"] = v
	}
	return result, val, err
}

// Wait waits for the background work started so far (futures, graphs run
// with _future=True, pending dispatcher messages) and returns an error
// listing the failures nobody observed, or ctx's cause if ctx ends first.
func (in *Interpreter) Wait(ctx context.Context) error {
	var errs []string
	for {
		in.bgMu.Lock()
		bg, hooks := in.bg, in.atExit
		in.bg = nil
		in.bgMu.Unlock()
		for _, h := range hooks {
			if err := h(ctx); err != nil {
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				errs = append(errs, err.Error())
			}
		}
		if len(bg) == 0 {
			in.bgMu.Lock()
			more := len(in.bg) > 0
			in.bgMu.Unlock()
			if !more {
				break
			}
			continue
		}
		for _, f := range sortedFutures(bg) {
			if _, err := f.f.Result(ctx); err != nil {
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				if !f.observed.Load() {
					errs = append(errs, fmt.Sprintf("%s failed:\n%s", f.desc(), indent(errText(err))))
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("background work failed and nobody waited for it:\n%s", strings.Join(errs, "\n"))
	}
	return nil
}

// track records background work for [Interpreter.Wait]: until it is done,
// and afterwards if it failed (its error may need reporting).
func (in *Interpreter) track(f *Future) {
	in.bgMu.Lock()
	if in.bg == nil {
		in.bg = map[*Future]struct{}{}
	}
	in.bgSeq++
	f.seq = in.bgSeq
	in.bg[f] = struct{}{}
	in.bgMu.Unlock()
	f.f.OnDone(func() {
		if _, err, _ := f.f.Peek(); err == nil {
			in.bgMu.Lock()
			delete(in.bg, f)
			in.bgMu.Unlock()
		}
	})
}

// onWait registers h to run each time [Interpreter.Wait] runs (before the
// interpreter exits): it waits for background work that is not a future,
// such as a dispatcher's queue, and returns its unobserved failures.
func (in *Interpreter) onWait(h func(ctx context.Context) error) {
	in.bgMu.Lock()
	in.atExit = append(in.atExit, h)
	in.bgMu.Unlock()
}

// report writes a message (possibly several lines) to the interpreter's
// error output, line-atomically with respect to other output there.
func (in *Interpreter) report(msg string) {
	in.errOut.line(strings.TrimRight(msg, "\n"))
}

// Close waits for background work and stops the worker pool. The
// interpreter must not be used afterwards.
func (in *Interpreter) Close() error {
	err := in.Wait(context.Background())
	in.pool.Close()
	return err
}

// errText renders an error for a report: a Starlark backtrace if it has one.
func errText(err error) string {
	switch e := err.(type) {
	case *starlark.EvalError:
		return e.Backtrace()
	case *TaskError:
		return e.Error() // already carries the task's traceback
	}
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		// A wrapped traceback: keep what the wrapping says, then the frames.
		msg := err.Error()
		if prefix, ok := strings.CutSuffix(msg, ee.Msg); ok && prefix != "" {
			return strings.TrimRight(prefix, ": ") + ":\n" + indent(ee.Backtrace())
		}
		return ee.Backtrace()
	}
	return err.Error()
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// A TaskError is the error of work that ran on another thread: it names the
// builtin that started it and the task, and keeps the task's own traceback
// (its Starlark frames) in its message, so the error printed on the
// starting thread shows both stacks.
type TaskError struct {
	Op   string // the builtin, e.g. "semisync.begin"
	Task string // e.g. "revenue() queued at x.star:12:8"
	Err  error
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("%s: %s failed:\n%s", e.Op, e.Task, indent(errText(e.Err)))
}

func (e *TaskError) Unwrap() error { return e.Err }

// callerPos returns the position of the Starlark code that called the
// running builtin, as "file:line:col".
func callerPos(th *starlark.Thread) string {
	if th.CallStackDepth() < 2 {
		return "?"
	}
	return th.CallFrame(1).Pos.String()
}

// sortedFutures returns the futures of set in the order they were tracked.
func sortedFutures(set map[*Future]struct{}) []*Future {
	list := make([]*Future, 0, len(set))
	for f := range set {
		list = append(list, f)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].seq < list[j].seq })
	return list
}
