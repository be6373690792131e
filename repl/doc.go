// Package repl is semisync's interactive read-eval-print loop, a library
// that cmd/semisync wires to the terminal ([RunTerminal]) and that tests
// drive through a [LineReader] and writers ([New], [Session.Run]).
//
// # Using the REPL
//
// Start it with `semisync` (no script) or `semisync repl`; --sequential,
// --seed and --max-steps apply to it as to scripts. Everything a script
// can do works:
//
//	>>> def show(total):
//	...     print("total:", total)
//	...
//	>>> @semisync(callback=show)
//	... def add(a, b):
//	...     return a + b
//	...
//	>>> h = add(1, 2)
//	>>> semisync.begin()
//	total: 3
//	>>> h.result()
//	3
//	>>> :tasks
//	KIND      STATUS  TIME    TASK
//	semisync  done    0.001s  begin at <stdin#4>:1:15: 1 call: add(1, 2)
//
// Entries. A line that opens a block (def, if, for, while) or starts with
// a decorator (@) continues at the "... " prompt until a blank line, or
// until a line at column 0 (other than else/elif, a comment, or the
// decorators and def of a decorated function), which then starts the next
// entry. An entry also continues while a bracket or a string is open.
//
// Values and names. An expression's value is printed (its repr; None is
// not printed) and bound to _. Names bound by one entry are visible to the
// next. Each entry is its own module, named "<stdin#N>" where N counts the
// session's entries from 1, so an error at "<stdin#3>:2:5" is at line 2,
// column 5 of the third entry. An entry may re-bind a name from its old
// value (`x += 1`). load() binds names for later entries;
// load("./file.star", ...) is relative to the current directory and must
// stay under it. As in a script, background work (a future) may not read a
// global that can still be re-bound: one that the entry defining the
// function binds twice, or re-binds from its old value.
//
// Errors print the Starlark backtrace; the session goes on.
//
// Keys. Tab completes names (globals, builtins, keywords), attributes
// (semisync.be<Tab> gives semisync.begin, from any value's attribute
// names), module names and members inside load(...), :commands and file
// names after :load. History is kept in ~/.semisync_history across
// sessions. Ctrl-C at the prompt discards the line (or the whole
// unfinished entry); Ctrl-C while an entry runs cancels it, busy loops and
// sleeps included, and the work it started, and returns to the prompt.
// Ctrl-D (or :quit) leaves: the REPL first waits for background work
// (Ctrl-C cancels it) and reports its errors nobody looked at; the exit
// status is then 1.
//
// Background work. Futures and begin(_future=True) keep running while you
// type. What they print appears below the prompt, followed by the prompt
// again; liner cannot redraw a half-typed line, so after such output the
// characters typed so far are kept but not shown until a key that moves
// the cursor (Ctrl-E, an arrow key) redraws the line.
//
// Commands:
//
//	:help        the keys and commands
//	:load FILE   run FILE in the session: its globals become the session's
//	:tasks       recent work: semisync batches (one per begin), jobs,
//	             futures, with kind, status, time taken and what it is
//	:reset       forget every global (background work keeps running)
//	:quit        leave, as Ctrl-D
//
// # Design
//
// A [Session] owns a [starlarkmod.Interpreter], one [starlarkmod.Run] (the
// session's state: semisync queue, background work, task log) and its main
// thread, and runs each entry (chunk.go: the "_" binding and re-binding an
// earlier entry's name) with [starlarkmod.Run.ExecSyntax] under a context
// derived from the session's context. The main thread takes part in the
// interpreter's pool only while an entry runs (Run.Rejoin, Run.Leave), so
// in sequential mode background work goes on while the prompt waits. Ctrl-C reaches the session
// in two ways: at the prompt, liner returns liner.ErrPromptAborted; while
// an entry runs, SIGINT arrives on Options.Interrupts and cancels the
// entry's context (which cancels its Starlark thread and the tasks started
// under it). Interrupts left over from earlier are drained before each
// entry runs, so they never cancel it. An entry's context is not cancelled
// when the entry ends, since background work started by it runs under it.
//
// The interpreter's output goes through a console that knows when a
// prompt is showing (see [Session]).
package repl
