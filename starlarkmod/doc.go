// Package starlarkmod runs semisync scripts from a Go program: Starlark
// (go.starlark.net) in a Python-like dialect, with builtins that run
// work truly in parallel (semisync graphs, jobs, futures, pipelines, a
// dispatcher) and cannot cause a data race.
//
// # Running a script
//
// Create an [Interpreter] with [New] (its [Options] say where output
// goes, sequential mode, the random seed, limits) and run scripts with
// it, as go.starlark.net's ExecFileOptions would:
//
//	in := starlarkmod.New(starlarkmod.Options{Stdout: os.Stdout})
//	defer in.Close()
//	globals, err := in.Exec(ctx, "report.star", src, starlark.StringDict{"fetch": fetch})
//
// [Interpreter.Exec] takes the source as a string, []byte or io.Reader
// (or nil to read the file), [Interpreter.ExecFile] a file and
// [Interpreter.ExecFS] a file of an fs.FS (an embed.FS); the last argument
// adds predeclared names for that run only. Host modules that scripts
// load by name go in Options.Modules. Each call is a run of its own (see
// [Run]): runs on one Interpreter, at once or one after the other, never
// see each other's state. Exec waits for the work the script left running
// in the background (futures, pipelines, messages) and returns the
// script's globals, frozen.
//
// # Calling script functions and converting values
//
// [Interpreter.Call] calls a function from those globals with Starlark
// arguments. [FromGo] and [ToGo] convert between Go and Starlark values
// (None, bool, int, float, string, bytes, list, tuple, dict, set).
//
// # Host builtins
//
// A host builtin is a *starlark.Builtin. It may be called from any task,
// on any goroutine, so it must be safe for concurrent use. It gets the
// context of the code that called it with [Context]; if it blocks, it
// must wait through [Recv] (a channel) or [Block] (any blocking call that
// honours a context): then Ctrl-C or a timeout stops it at once, other
// tasks go on while it waits, and sequential mode works. A Go panic in a
// host builtin becomes a Starlark error naming it, with the Go stack.
// Host values that a script passes to tasks must implement [Crosser].
//
// # Cancellation and limits
//
// Cancelling the context given to Exec or Call stops all of the run's
// Starlark code promptly, busy loops, sleeps and tasks included; the
// error then satisfies errors.Is(err, context.Canceled) or
// errors.Is(err, context.DeadlineExceeded). Options.MaxSteps bounds the
// computation of each thread; Options.Limit caps the tasks that compute
// at once (tasks that wait do not count, so tasks waiting for tasks never
// deadlock); Options.MaxWorkers is a hard cap on worker goroutines,
// waiting or not, under which a task that waits for another task can wait
// until the context ends; Options.Withhold takes builtins away from
// scripts (sleep, the dispatcher, job, a module).
//
// # Sessions of your own
//
// For a series of calls sharing one run (a REPL, a server session):
// r := in.NewRunWith(ctx, opts), th := r.NewThread("main") (the calling
// goroutine joins the interpreter's pool), starlark.Call(th, ...),
// r.Leave(th), and r.Wait(ctx) at the end for the background work.
//
// # How it works
//
// Every goroutine that runs Starlark owns one *starlark.Thread: the main
// thread of a run, and one per engine worker, kept for the worker's life.
// Each thread carries, as thread-locals, its context.Context (key
// "context") and a record of its interpreter, its place in the pool, and
// the task it runs: its [Run] and its structural identity (its parent
// task and its number among the parent's tasks), which seeds its random
// generator. Every blocking builtin waits through the engine on that
// context, so waiting never holds up computing, and cancelling the
// context cancels the thread's Starlark code.
//
// Everything that starts work elsewhere passes the function, its
// arguments and whatever they reach through one walk: core Starlark
// values are deep-frozen, the globals and captured variables of functions
// are followed, and work that may outlive the call that started it is
// refused if it reads a variable that can still be re-bound. Crossing is
// an allow-list: any other value crosses only if its type implements
// [Crosser]. Results take the same walk back. Shared mutable state lives
// in Go containers guarded by mutexes (Manager().list() and friends). A
// change to a frozen value fails with an error that says which value,
// where it crossed and what to do instead.
//
// Errors of work that ran on another thread are wrapped in a [TaskError]
// naming the builtin and the task and carrying the task's own traceback,
// so the backtrace printed on the submitting thread shows both stacks.
//
// With Options.Sequential the same tasks run on the same worker threads,
// one at a time, in a deterministic order (the engine's serial pool); no
// feature code looks at the mode, so the results are those of parallel
// mode, and with a seed so are the random numbers.
package starlarkmod
