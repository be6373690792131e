// Package portable encodes Starlark tasks so they can leave the process:
// a canonical, deterministic encoding of functions (with everything they
// reach), arguments and results, and the decoding that rebuilds them on
// another machine without running the script's top-level code.
//
// # What is portable
//
// Core values are: None, bools, ints (any size), floats, strings, bytes,
// tuples, lists, dicts, sets, ranges, starlarkstruct's structs and
// modules, lib/time's Time and Duration. Sharing and cycles through lists,
// dicts and sets survive a round trip.
//
// Starlark functions are, when their file was registered ([Register]):
// each is named by its def (see [Mode]) and carries the values of what it
// reads by name: the globals and free variables its code uses, its
// defaults, and the predeclared names it uses. Other functions among
// those are encoded in turn.
//
// Builtins are named, never sent: by universe name (len, print), by
// predeclared name (sleep, job, future), by the built-in module a load
// bound them from (load("math", "sqrt") is math.sqrt; load("json",
// "json") is the module), or as a method of a portable receiver
// (",".join). The decoding side supplies them ([Env]).
//
// A host value is portable if its type implements [Portable], which says
// how to rebuild it with a predeclared callable (a @future function is
// future(fn)). Anything else (Manager containers, Locks, dispatchers,
// futures, streams, @semisync functions, a function whose source is
// unknown, a builtin found under no name) gives a *[NotPortableError]
// naming the value, the path to it and the line that uses it.
//
// # Determinism
//
// The same value gives the same bytes: dicts and sets in iteration
// (insertion) order, struct fields and a function's names sorted, ids in
// order of first appearance. With [BySource], a function's encoding is
// its own source text and what it reaches, so a key is stable when other
// functions are edited or lines are inserted above it, and changes when
// the function, a function it calls or a value it reads changes.
//
// # Decoding
//
// [DecodeFunc] compiles each function alone: the file is parsed again
// (its text travels by content hash), the def is taken with its original
// positions and compiled in a synthetic module whose predeclared names
// hold the decoded values it reads. Only that def is executed, never the
// script's top level; errors and backtraces name the original file, line
// and column. Decoded values are frozen.
package portable
