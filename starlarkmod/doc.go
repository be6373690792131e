// Package starlarkmod is the adapter between Starlark and semisync's
// engine: the builtins scripts call, value conversion and freezing, the
// decorator syntax, the loader and the Python-compatible modules, and the
// [Interpreter] type that embedders use.
//
// # Threads
//
// Every goroutine that runs Starlark owns one *starlark.Thread: the main
// thread of a script (or a REPL session), and one per engine worker, kept
// for the worker's life. Each thread carries, as thread-locals, its
// context.Context (key "context") and a record of its interpreter, its
// worker and the task it runs. Blocking builtins select on that context and
// mark their worker as blocked (see engine.Worker.Block) so waiting never
// holds up computing; cancelling the context cancels the thread's Starlark
// code (context.AfterFunc calls Thread.Cancel).
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
// With Options.Sequential every piece of work runs on the thread that
// started it (engine.Inline), in submission order, still returning futures:
// the same results, deterministic output.
package starlarkmod
