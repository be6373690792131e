// Package crossing decides whether Starlark values may be handed from one
// goroutine to another, and readies those that may.
//
// A *starlark.Thread belongs to one goroutine, and so does every unfrozen
// value it creates: even reading an unfrozen list races with its owner
// (List.Iterate counts iterations). A value may therefore cross to another
// thread only if one of these holds:
//
//   - it is a core Starlark value: None, bools, numbers, strings, bytes,
//     tuples, lists, dicts, sets, functions, builtins, ranges and the
//     iterables of string.elems() and .codepoints(), starlarkstruct's
//     structs and modules, and lib/time's Time and Duration. The walk
//     deep-freezes it, everything it holds, and what its functions can
//     read;
//   - its type implements [Crosser]: its Cross method refuses (a value
//     bound to one thread, such as an iterator that cancels its creator)
//     or yields the Starlark values it holds, which are walked in turn.
//
// Anything else is refused with an error naming its type, and the path to
// it when it is nested, in the style of lib/json:
//
//	future: in list element 3: in dict value for key "r": cannot pass a Widget to another thread: ...
//
// This is an allow-list: a host's Go type that says nothing does not cross.
//
// # Functions
//
// Freezing a *starlark.Function freezes its defaults and the values of the
// variables it captures, but not its module's globals
// (google/starlark-go#623), and freezing does not stop a slot from being
// re-bound: top-level code can re-assign a global (with GlobalReassign)
// and a function can re-assign a local that a closure captured. So, for
// every function that crosses, the walk uses what [Analyze] learned from
// its source: the globals and predeclared names it (or any function nested
// in it) reads, and how each variable is bound. Their values are walked in
// turn.
//
// Work that can outlive the call that started it ("background" work:
// futures, handlers, consumers, anything started from a task) runs while
// the starting module may still execute. For it the walk also requires
// every global and captured variable a function reads to be bound already
// and bound in one place only, outside any loop, so that nothing will
// write that slot again; otherwise it refuses, naming the variable and
// what to do. Work that blocks the module until it is done needs no such
// rule: no top-level code runs meanwhile, and functions cannot assign
// globals.
//
// A decorated def, "@dec def f", is rewritten as "def f" followed by
// "f = dec(f)". The slot of f is bound twice, but the second binding only
// completes the first. Whether the decorators have run is decided from
// runtime facts: the module has finished ([Checker.Finish]), or the
// crossing is asked for by the thread running the module's top level and
// that frame has gone past the end of the def. Otherwise f counts as not
// bound yet, whatever the slot holds: a decorator that returns its
// argument leaves the slot unchanged, so its contents prove nothing.
//
// # The walk
//
// The walk is iterative (an explicit stack: a value nested three million
// deep costs heap, not Go stack) and freezes post-order, children first,
// so that a value's own Freeze, which in go.starlark.net recurses into
// what it holds, meets frozen values and returns at once. Cycles are
// followed once. A cycle through lists, dicts, sets or structs is frozen
// by freezing the first value of the cycle that the walk entered, once
// the rest of the cycle has been walked (go.starlark.net's Freeze marks a
// container frozen before it recurses, so the cycle ends there). A cycle
// made only of functions, tuples, builtins and modules (a nested def that
// calls itself captures itself) has no such mark: Function.Freeze would
// never return. The walk never calls Freeze on those types (their own
// state is immutable; freezing them means freezing what they hold), so
// such a function may cross on its own; but a list, dict, set or struct
// that holds one cannot be frozen, and is refused.
//
// Go's Freeze still recurses through tuples, functions and modules nested
// directly inside a container (they have no frozen mark); a container that
// holds a million-deep nest of tuples costs a million-deep Freeze.
package crossing
