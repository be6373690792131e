package starlarkmod

import (
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod/internal/crossing"
)

// A Crosser is a value whose type says how it crosses to another thread:
// how it is passed to a task (an argument of a @future or @semisync call,
// a job item, a message, a value stored in a Manager container, a task's
// result). Every value that crosses must be a core Starlark value (which
// is deep-frozen) or a Crosser; a host value of any other type is refused
// with an error naming its type.
//
// A host type implements Cross to be passed to tasks. Cross returns an
// error to refuse (the value is bound to the thread that made it; say why
// and what to do instead), or calls yield for each Starlark value it holds
// that the receiving thread can reach (each is then frozen and checked in
// turn; return yield's error if it fails) and returns nil. The value itself
// must then be safe for concurrent use by any number of threads: it is
// shared, not copied. Cross is called on the thread that owns the value,
// before it crosses; its Freeze method is called after the values it
// yielded were frozen.
type Crosser = crossing.Crosser

// Crossing: see the package comment of internal/crossing for the model.

// prepare readies vs to cross to another goroutine for the builtin named
// op, on behalf of th. Work started from a task is background work
// whatever its kind: the module that started the task may still execute.
func (in *Interpreter) prepare(th *starlark.Thread, op string, background bool, vs ...starlark.Value) error {
	return in.cross.Cross(th, op, background || isWorker(th), vs...)
}

// prepareValues is prepare when the calling thread is not known; callers
// without a thread pass background=true.
func (in *Interpreter) prepareValues(op string, background bool, vs ...starlark.Value) error {
	return in.cross.Cross(nil, op, background, vs...)
}

// prepareArgs readies the arguments of a call that will run elsewhere.
func (in *Interpreter) prepareArgs(th *starlark.Thread, op string, background bool, fn starlark.Value, args starlark.Tuple, kwargs []starlark.Tuple) error {
	if err := in.prepare(th, op, background, fn, args); err != nil {
		return err
	}
	for _, kv := range kwargs {
		if err := in.prepare(th, op, background, kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// prepareResult readies v, the result of a task, to cross back to whoever
// waits for it: the same walk as for arguments, so a task cannot hand back
// a value bound to its own thread (a stream, an inbox, emit) or a host
// value that does not cross. The background rule applies: the receiver
// may call a function in the result at any time later, while the module
// that started the task may still execute.
func (in *Interpreter) prepareResult(v starlark.Value) error {
	switch v.(type) {
	case starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
		return nil
	}
	return in.cross.Cross(nil, "return", true, v)
}

// freezeGlobals freezes the globals of a module that has finished, as
// StringDict.Freeze would, but without recursion on the Go stack (a global
// nested a million deep, or a nested def that captures itself, would
// overflow it).
func freezeGlobals(g starlark.StringDict) {
	vs := make([]starlark.Value, 0, len(g))
	for _, v := range g {
		vs = append(vs, v)
	}
	crossing.Freeze(vs...)
}

// checker returns in's crossing checker; for values made outside any
// interpreter (in is nil), a fresh one, so the same rules apply.
func (in *Interpreter) checker() *crossing.Checker {
	if in == nil {
		return new(crossing.Checker)
	}
	return &in.cross
}
