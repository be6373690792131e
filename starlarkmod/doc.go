// Package starlarkmod is the adapter between Starlark and semisync's
// engine: the builtins scripts call, value conversion and freezing, the
// decorator syntax, the loader and the Python-compatible modules, and the
// [Interpreter] type that embedders use.
//
// # Threads
//
// Every goroutine that runs Starlark owns one *starlark.Thread: the main
// thread of a run (see [Run.NewThread]: a script, a REPL session), and one
// per engine worker, kept for the worker's life. Each thread carries, as
// thread-locals, its context.Context (key "context") and a record of its
// interpreter, its place in the pool (an engine.Worker; a main thread's
// goroutine joins the pool too), and the task it runs: the [Run] it belongs
// to and its structural identity (its parent task and its number among the
// parent's tasks), which seeds its random generator. Every blocking builtin
// waits through the engine (engine.Recv, Worker.Sleep) on that context, so
// waiting never holds up computing; cancelling the context cancels the
// thread's Starlark code (context.AfterFunc calls Thread.Cancel).
//
// # Runs
//
// An [Interpreter] holds configuration, the worker pool and caches. Each
// execution has its own [Run]: root context, loader root, semisync queue,
// background work, pipelines, global dispatcher and task log, so runs on
// one Interpreter, at once or one after the other, never see each other.
//
// # Crossing goroutines
//
// Everything that starts work elsewhere passes the function, its arguments
// and whatever they reach through one walk (crossing.go, over
// internal/crossing): core Starlark values are deep-frozen, the globals and
// captured variables of functions are followed, and work that may outlive
// the call that started it is refused if it reads a global or captured
// variable that can still be re-bound. Crossing is an allow-list: any other
// value crosses only if its type implements [Crosser]; values bound to one
// thread (streams, inboxes, emit, as_completed) refuse. Results take the
// same walk on the way back. Shared mutable state lives in Go containers
// guarded by mutexes (Manager().list() and friends).
//
// # Errors
//
// Errors of work that ran on another thread are wrapped in a [TaskError]
// naming the builtin and the task (with the position of the line that
// submitted it) and carrying the task's own traceback, so the backtrace
// printed on the submitting thread shows both stacks.
//
// # Sequential mode
//
// With Options.Sequential the interpreter's pool is the engine's serial
// pool: the same tasks run on the same worker threads, but one at a time,
// in a deterministic order, handing on a baton wherever one waits, with
// timers ordered by deadline. No feature code looks at the mode: the
// results are those of parallel mode, and with a seed so are the random
// numbers.
package starlarkmod
