package starlarkmod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/builtin"
	"github.com/semisync/semisync/starlarkmod/internal/compile"
	"github.com/semisync/semisync/starlarkmod/internal/crossing"
	"github.com/semisync/semisync/starlarkmod/internal/decorator"
	"github.com/semisync/semisync/starlarkmod/internal/portable"
	"github.com/semisync/semisync/starlarkmod/random"
)

// Options configures an [Interpreter]. The zero value is usable: output goes
// to os.Stdout and os.Stderr, work runs in parallel, the random seed is
// random, and there is no step limit.
type Options struct {
	// Stdout receives print output, one whole line per write. Stderr receives
	// reports of suppressed and background errors.
	Stdout, Stderr io.Writer
	// Sequential runs every task (graph, job, future, pipeline, handler)
	// one at a time, in a deterministic order, on the same workers as
	// parallel mode (the engine's serial pool), with the same results.
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
	// Limit is how many workers may compute at once (0: two per core, see
	// engine.PoolOptions). Workers waiting in sleep, result or other
	// blocking calls do not count: a worker that waits gives its place to
	// a queued task, and when its wait ends it goes on at once rather than
	// wait for a place, so that tasks that wait for tasks (or poll what
	// another task sets) never deadlock. So after a wait, more than Limit
	// may compute until one of them ends or waits; a job's workers wait
	// that way for their next items when the items come slowly.
	Limit int
	// MaxWorkers, if positive, is a hard cap on worker goroutines, waiting
	// or not: a task that waits for a task queued behind it (a future
	// waiting for a future) then waits until the context ends. To cap the
	// tasks that compute at once, use Limit.
	MaxWorkers int
	// Modules adds modules that load accepts by name, beside the built-in
	// ones (a host's own API, or starlarktest's "assert.star"). Their
	// values are shared by all threads and must be frozen or thread-safe.
	Modules map[string]starlark.StringDict
	// Withhold names predeclared builtins and modules that scripts of this
	// interpreter may not use (e.g. "sleep", "Dispatcher", "dispatcher",
	// "job", "time"): a script that calls one gets an error saying the host
	// withheld it, and load() refuses a withheld module or member. See
	// embed.go.
	Withhold []string
	// WaitNotice, if positive, is how long the end of a script may wait for
	// its background work (futures, pipelines, messages) before saying so
	// on Stderr, naming the running tasks. The command sets one second.
	WaitNotice time.Duration
	// ThreadInit, if set, is called for every thread the interpreter
	// creates (main threads and workers) before it runs any code, to set
	// the host's thread-locals.
	ThreadInit func(th *starlark.Thread)
	// Cache, if set, is where the result cache stores the results of pure
	// calls (see cache.go and [OpenDirCache]). Without it, cache=True only
	// checks that the function is pure.
	Cache Cache
	// CacheAll caches every call of a @semisync or @future function and
	// every job item whose function is provably pure (except those with
	// cache=False), not only those with cache=True (the command line's
	// --cache).
	CacheAll bool
	// PureBuiltins names the host's builtins that are pure (their result
	// depends only on their arguments; they change nothing), so that
	// functions calling them can be cached: "name" for a predeclared
	// builtin, "module.name" for a member of a module in Modules.
	PureBuiltins []string
	// Remote, if set (`--nats`), runs job items, @semisync calls and
	// @future calls elsewhere (see remote.go); a task whose function or
	// arguments are not portable is refused before anything is sent.
	Remote Remote
	// NoCompile runs every function on go.starlark.net's VM. By default,
	// functions that run as tasks (and the functions they call) run
	// compiled to Go closures (see internal/compile), with the same
	// results and errors, faster.
	NoCompile bool
	// Observer, if set, records what each run does for traces, graphs
	// and summaries (see [Observer]); without it that costs nothing.
	Observer *Observer
}

// An Interpreter runs semisync scripts. It holds the configuration, a
// pool of worker goroutines (each with its own Starlark thread) and caches
// of what it learned about compiled code; each execution has its own state
// (a [Run]: see [Interpreter.ExecFile] and [Interpreter.NewRun]), so runs
// on one Interpreter, one after the other or at once, never see each
// other. Create it with [New] and release it with [Interpreter.Close]. Its
// methods are safe for concurrent use.
type Interpreter struct {
	opts   Options
	out    *lineWriter
	errOut *lineWriter
	pool   *engine.Pool
	seed   int64
	root   string // default load root of runs; "" means the script's directory

	cross crossing.Checker  // analyses, finished modules, values found safe for good
	comp  *compile.Compiler // nil with Options.NoCompile

	remoteFns remoteCache // functions decoded by ExecRemote

	predeclOnce sync.Once
	predecl     starlark.StringDict
	modulesOnce sync.Once
	mods        map[string]starlark.StringDict

	cacheOnce sync.Once
	cache     interpCache // the result cache's purity rules and totals (cache.go)
}

// New returns an interpreter configured by opts.
func New(opts Options) *Interpreter {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	tty := newBarTerm(opts.Stderr) // job_progress.go
	in := &Interpreter{
		opts:   opts,
		out:    &lineWriter{w: opts.Stdout, tty: tty},
		errOut: &lineWriter{w: opts.Stderr, tty: tty},
	}
	in.cross.OnFreeze = noteFrozen // frozen.go
	in.seed = opts.Seed
	if !opts.NoCompile {
		in.comp = compile.New()
	}
	if !opts.Seeded {
		in.seed = time.Now().UnixNano()
	}
	in.pool = engine.NewPool(engine.PoolOptions{
		Limit:  opts.Limit,
		Max:    opts.MaxWorkers,
		Serial: opts.Sequential,
		Init: func(w *engine.Worker) {
			th := in.newThread(fmt.Sprintf("worker-%d", w.ID), w, true)
			workerThread.Set(w, th)
		},
		Exit: func(w *engine.Worker) {
			th := workerThread.Get(w)
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
	mu  sync.Mutex
	w   io.Writer
	tty *barTerm // if stderr is a terminal: lines go above progress bars
}

func (lw *lineWriter) line(s string) {
	b := make([]byte, 0, len(s)+1)
	b = append(b, s...)
	b = append(b, '\n')
	lw.mu.Lock()
	if lw.tty != nil {
		lw.tty.write(lw.w, b)
	} else {
		lw.w.Write(b) //nolint:errcheck // print has nowhere to report failure
	}
	lw.mu.Unlock()
}

// threadState is the per-thread record kept under the local key
// "semisync.thread". Fields change only between tasks, on the thread's own
// goroutine.
type threadState struct {
	in     *Interpreter
	worker *engine.Worker // the goroutine's place in the pool: every wait goes through it
	pooled bool           // a pool worker's thread, which runs tasks (else a main thread)

	// The running task (see taskState).
	taskState

	// On a worker: the context its thread is bound to, and how to unbind.
	ctx   context.Context
	stop  func() bool
	fired chan struct{}
}

// taskState is what a thread knows of the task it runs: the run it belongs
// to and its identity (see taskID), which seeds its random generator and
// numbers the tasks it starts.
type taskState struct {
	run      *Run
	task     taskRef
	id       *taskID    // task.id(), once needed
	children int        // tasks the running task has started
	rng      *rand.Rand // created on first use in a task
	item     int        // 1 + the index of the ExecRemoteBatch item this task is (0: none)
}

// Worker returns the engine worker of the thread's goroutine
// (builtin.Thread).
func (ts *threadState) Worker() *engine.Worker { return ts.worker }

// Cross readies vs to be stored where any thread may read them
// (builtin.Thread): Manager containers call it.
func (ts *threadState) Cross(op string, vs ...starlark.Value) error {
	return ts.in.cross.Cross(nil, op, true, vs...)
}

// setTask makes the thread run the task ref of run r (between tasks).
func (ts *threadState) setTask(r *Run, ref taskRef) {
	ts.taskState = taskState{run: r, task: ref}
}

// setTaskID is setTask for a task whose identity is already made.
func (ts *threadState) setTaskID(r *Run, id *taskID) {
	ts.taskState = taskState{run: r, id: id}
}

// taskID returns the identity of the running task.
func (ts *threadState) taskID() *taskID {
	if ts.id == nil {
		ts.id = ts.task.id()
	}
	return ts.id
}

// nextChild numbers a task that the running task starts.
func (ts *threadState) nextChild() taskRef {
	ts.children++
	return taskRef{parent: ts.taskID(), n: ts.children}
}

// Rand returns the running task's random generator (random.Source),
// seeded from the interpreter's seed and the task's identity.
func (ts *threadState) Rand() *rand.Rand {
	if ts.rng == nil {
		seed := ts.in.seed
		if ts.run != nil && ts.run.remote.seeded {
			seed = ts.run.remote.seed // a task run for a cluster caller: the caller's seed
		}
		ts.rng = rand.New(rand.NewPCG(uint64(seed), ts.taskID().hash))
	}
	return ts.rng
}

// Reseed implements random.seed(n) for the running task.
func (ts *threadState) Reseed(n int64) { ts.rng = random.NewSeeded(n) }

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
	localContext = "context"        // context.Context, as in go.starlark.net/repl
	localState   = builtin.LocalKey // a *threadState, the builtin.Thread of th
)

// workerThread is the Starlark thread of each pool worker.
var workerThread engine.Local[*starlark.Thread]

// newThread returns a thread for the goroutine of w: a pool worker's
// (pooled), or a goroutine that entered the pool to run script code (a
// run's main thread).
func (in *Interpreter) newThread(name string, w *engine.Worker, pooled bool) *starlark.Thread {
	th := &starlark.Thread{
		Name: name,
		Print: func(th *starlark.Thread, msg string) {
			if r := runOf(th); r != nil && r.remote.out != nil {
				r.remote.out(stateOf(th).item-1, msg) // a task run for a cluster caller
				return
			}
			in.out.line(msg)
		},
	}
	if !pooled {
		th.Load = func(th *starlark.Thread, module string) (starlark.StringDict, error) {
			return runOf(th).load(th, module)
		}
	} else {
		th.Load = func(*starlark.Thread, string) (starlark.StringDict, error) {
			return nil, errors.New("load is only allowed at the top level of a file")
		}
	}
	ts := &threadState{in: in, worker: w, pooled: pooled}
	th.SetLocal(localState, ts)
	random.SetSource(th, ts)
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

// isWorker reports whether th is running a task (it is a pool worker's
// thread), as opposed to a run's main thread.
func isWorker(th *starlark.Thread) bool {
	ts := stateOf(th)
	return ts != nil && ts.pooled
}

// workerOf returns the pool worker of th's goroutine, through which every
// wait goes (engine.Recv, Worker.Sleep): a waiting thread then lets others
// compute, and in sequential mode hands on the baton. It is nil for a
// thread no interpreter made.
func workerOf(th *starlark.Thread) *engine.Worker {
	if ts := stateOf(th); ts != nil {
		return ts.worker
	}
	return nil
}

// recvOn receives from ch on th's goroutine (see workerOf), watching th's
// context and giving up after timeout (if positive) with engine.ErrTimeout.
func recvOn[T any](th *starlark.Thread, ch <-chan T, timeout time.Duration) (T, bool, error) {
	return engine.Recv(contextOf(th), workerOf(th), ch, timeout)
}

// withContext runs f on th (a thread owned by the calling goroutine) with
// ctx as its context: cancelling ctx cancels th's Starlark code. The thread's
// previous context and cancellation state are restored afterwards.
func withContext[T any](ctx context.Context, th *starlark.Thread, f func() (T, error)) (T, error) {
	if ts := stateOf(th); ts != nil && ts.pooled {
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
	v, err := recovered(f) // embed.go: a Go panic is an error
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
		return scriptCause(err).Error()
	}
	return "cancelled"
}

// runTask calls fn(args, kwargs) as the task named task of run r on pool
// worker w, with ctx. It owns w's thread for the call: it sets the run,
// the task's identity (and so its random generator), the context and the
// step budget. The result is readied to cross back (prepareResult); if it
// cannot cross, that is the error.
func (r *Run) runTask(ctx context.Context, w *engine.Worker, task taskRef, fn starlark.Callable, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	th := workerThread.Get(w)
	ts := stateOf(th)
	ts.setTask(r, task)
	th.Steps = 0
	ts.bind(th, ctx)
	t0 := r.obs.begin()
	callee := r.in.comp.CallableOn(th, fn)
	v, err := starlark.Call(th, callee, args, kwargs)
	compile.Release(callee)
	r.obs.task(t0, w, task, fn, err)
	if err == nil {
		if err = r.in.prepareResult(v); err != nil {
			v = nil
		}
	}
	// (Not fn's globals to name the value: reading them races with a module
	// that is still executing.)
	return v, r.explainFrozen(err)
}

// ExecFile runs the script at path as the main module of a new [Run]
// with ctx: cancelling ctx stops all of its Starlark code, including tasks,
// promptly. It waits for background work the script started (futures,
// begin(_future=True)) before returning, and returns the first error: the
// script's, else one reporting unobserved background failures.
func (in *Interpreter) ExecFile(ctx context.Context, path string) (starlark.StringDict, error) {
	return in.Exec(ctx, path, nil, nil) // embed.go
}

// ExecFile runs the script at path as a main module of the run, on a new
// main thread, then waits for the background work of the run and returns
// the first error, like [Interpreter.ExecFile].
func (r *Run) ExecFile(path string) (starlark.StringDict, error) { return r.Exec(path, nil) }

// NewRun returns the state of a new execution (a REPL session, an
// embedder's series of calls) under ctx: background work it starts runs
// under ctx, and load() stays under root ("" for the interpreter's root,
// else the current directory). Call [Run.Wait] when it is done.
func (in *Interpreter) NewRun(ctx context.Context, root string) *Run {
	if root == "" {
		root = in.root
	}
	if root == "" {
		root = "."
	}
	return in.newRun(ctx, root)
}

// NewThread returns a new thread of the run for running script code on the
// calling goroutine (the REPL, an embedder's own calls), with the run's
// context as its context. It is the run's main thread: the tasks it starts
// are numbered from those of the run's earlier main threads. The calling
// goroutine joins the interpreter's pool to run it (in sequential mode it
// waits for its turn); call [Run.Leave] when it stops running code on th,
// at least for a while (a REPL waiting for input), and [Run.Rejoin] before
// it runs code on th again.
func (r *Run) NewThread(name string) *starlark.Thread {
	th := r.in.newThread(name, r.in.pool.Enter(), false)
	th.SetLocal(localContext, r.ctx)
	ts := stateOf(th)
	ts.run = r
	ts.id = r.main
	return th
}

// Leave tells the run that the calling goroutine stops running code on th,
// a thread from [Run.NewThread], for now or for good: in sequential mode,
// the run's tasks then go on without it.
func (r *Run) Leave(th *starlark.Thread) { workerOf(th).Leave() }

// Rejoin undoes [Run.Leave] before the calling goroutine runs code on th
// again (in sequential mode it waits for its turn).
func (r *Run) Rejoin(th *starlark.Thread) { workerOf(th).Rejoin() }

// Interpreter returns the interpreter the run belongs to.
func (r *Run) Interpreter() *Interpreter { return r.in }

// execModule parses (with decorators), compiles, records and runs one
// module, then freezes its globals.
func (r *Run) execModule(th *starlark.Thread, filename string, src []byte) (starlark.StringDict, error) {
	r.keepSource(filename, src)
	prog, err := r.in.compile(filename, src, r.predecl.Has)
	if err != nil {
		return nil, err
	}
	g, err := prog.Init(th, r.predecl)
	r.in.cross.Finish(prog)
	freezeGlobals(g)
	return g, r.explainFrozenIn(err, g)
}

// Compile parses src in semisync's dialect (decorators included) and
// compiles it against the interpreter's predeclared names.
func (in *Interpreter) Compile(filename string, src []byte) (*starlark.Program, error) {
	return in.compile(filename, src, in.predeclared().Has)
}

// compile is Compile against the predeclared names has reports (a run's).
func (in *Interpreter) compile(filename string, src []byte, has func(string) bool) (*starlark.Program, error) {
	src = bytes.TrimPrefix(src, utf8BOM) // the text positions count in
	f, err := parseSource(fileOptions, filename, src, 0)
	if err != nil {
		return nil, err
	}
	prog, err := starlark.FileProgram(f, has)
	if err != nil {
		return nil, err
	}
	in.cross.Add(prog, crossing.Analyze(f))
	portable.Register(prog, f, src)
	in.comp.AddFile(prog, f)
	return prog, nil
}

// Parse parses src in semisync's dialect (decorators included) with
// opts, which should be [FileOptions] or a copy of them with changes (the
// REPL sets LoadBindsGlobally), for [Run.ExecSyntax].
func Parse(opts *syntax.FileOptions, filename string, src []byte) (*syntax.File, error) {
	src = bytes.TrimPrefix(src, utf8BOM) // the text positions count in
	f, err := parseSource(opts, filename, src, 0)
	if err == nil {
		portable.NoteSource(f, src)
	}
	return f, err
}

// ExecSyntax compiles f, a file from [Parse] that the caller may have
// rewritten, against env (the predeclared names: typically the run's
// [Run.Predeclared] plus whatever a REPL's earlier entries bound), and
// runs it on th, a thread of the run (see [Run.NewThread]) owned by the
// calling goroutine, with ctx as its context: cancelling ctx while it runs
// cancels its Starlark code (busy loops included) and its blocking
// builtins, and the work it starts in the background (futures,
// begin(_future=True)) runs under ctx, so it keeps running after
// ExecSyntax returns until ctx is cancelled. th's previous context and
// cancellation state are restored when it ends. It returns the globals the
// file bound. In sequential mode, the work it started runs before it
// returns, until that work waits or ends. Unlike a script run by ExecFile, the globals are not frozen
// when it ends: later code of the same session may still change them.
// This is the hook the REPL runs each entry through.
func (r *Run) ExecSyntax(ctx context.Context, th *starlark.Thread, f *syntax.File, env starlark.StringDict) (starlark.StringDict, error) {
	prog, err := starlark.FileProgram(f, env.Has)
	if err != nil {
		return nil, err
	}
	r.in.cross.Add(prog, crossing.Analyze(f))
	portable.Register(prog, f, nil)
	r.in.comp.AddFile(prog, f)
	defer r.in.cross.Finish(prog)
	return withContext(ctx, th, func() (starlark.StringDict, error) {
		g, err := prog.Init(th, env)
		// In sequential mode, the work the code started runs now, until it
		// waits or ends, while ctx still applies: a REPL entry that starts a
		// busy future is then interrupted by Ctrl-C like one that runs the
		// loop itself (Python's concert runs it at the call, with DISABLE).
		// In parallel mode it returns at once.
		workerOf(th).Sleep(ctx, 0) //nolint:errcheck // ctx's end is the code's business
		return g, err
	})
}

// Incomplete reports whether src ends inside brackets, inside a string
// literal or after a backslash line continuation: as a REPL entry, it
// cannot end at the next line break.
func Incomplete(src []byte) bool { return decorator.Incomplete(src) }

// report writes a message (possibly several lines) to the interpreter's
// error output, line-atomically with respect to other output there.
func (in *Interpreter) report(msg string) {
	in.errOut.line(strings.TrimRight(msg, "\n"))
}

// Close stops the worker pool, after waiting for the tasks running on it.
// Wait for each run ([Run.Wait]) first: Close does not report their
// failures. The interpreter must not be used afterwards.
func (in *Interpreter) Close() error {
	in.pool.Close()
	return nil
}

// callerPos returns the position of the Starlark code that called the
// running builtin, as "file:line:col", or "?" if a host called it from Go.
func callerPos(th *starlark.Thread) string {
	if th.CallStackDepth() < 2 {
		return "?"
	}
	return th.CallFrame(1).Pos.String()
}

// callerPosition is callerPos as a position; it is invalid (and prints as
// "<invalid>"... so check IsValid) if a host called the builtin from Go,
// where there is no calling frame (Thread.CallFrame(1) would panic).
func callerPosition(th *starlark.Thread) syntax.Position {
	if th.CallStackDepth() < 2 {
		return syntax.Position{}
	}
	return th.CallFrame(1).Pos
}

// interpOf returns the interpreter running th, or nil.
func interpOf(th *starlark.Thread) *Interpreter {
	if ts := stateOf(th); ts != nil {
		return ts.in
	}
	return nil
}
