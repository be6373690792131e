// Package compile runs Starlark functions faster than go.starlark.net's
// bytecode VM, with the VM's semantics: it compiles a function's resolved
// syntax tree (the tree the interpreter itself compiled, with go.starlark.net's
// resolve annotations) to a tree of Go closures over starlark.Values,
// with locals in a slice, fast paths for small ints, floats, strings and
// comparisons, and direct calls between compiled functions.
//
// Results, error messages and positions, backtraces, frozen checks,
// iteration rules, the step limit and cancellation are the VM's: each
// activation of a compiled function is a go.starlark.net call frame (its
// Callable reports the position being executed, so Thread.CallStack,
// builtins that look at their caller and EvalError backtraces see the
// lines the VM would show); operations the VM does not export are copied
// from it; cancellation and the step limit are checked at every call and
// loop back-edge. A function the compiler does not handle (one that
// creates a function, with a nested def or lambda, or whose locals a
// nested function captures) runs on the VM, whole; so do functions of
// programs compiled without recursion allowed.
//
// Three things the VM keeps unexported are read through offsets checked
// by reflection (internals.go): a thread's cancellation reason and step
// limit, and a module's global variables; and small ints are decoded
// from go.starlark.net's representation (ops.go). If this build's
// go.starlark.net does not match, [New] returns nil and nothing is
// compiled.
//
// Speed, measured on a loaded 2-core machine (go test -bench . -cpu 1,
// CPU time): is_prime over range(200000) about 6-9x faster than the VM
// and 1.5-2x faster than CPython 3.11; recursive calls about 3-4x faster
// than the VM but still slower than CPython (each call is a real
// go.starlark.net frame, through starlark.Call).
//
// Compiled code is used only at call time: [Compiler.Callable] returns a
// per-call Callable for a *starlark.Function, which is never stored in a
// script value (script values keep seeing the *starlark.Function).
package compile

import (
	"runtime"
	"sync"
	"weak"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// A Compiler compiles the functions of the programs it was told about
// ([Compiler.AddFile]), lazily, once per function definition, and caches
// the result. A nil *Compiler compiles nothing. Its methods are safe for
// concurrent use.
type Compiler struct {
	progs sync.Map // weak.Pointer[starlark.Program] -> *progInfo
	last  site     // the function Callable saw last (a job calls one function many times)
}

// New returns a compiler, or nil (which compiles nothing) if this build's
// go.starlark.net has a layout the compiler does not know.
func New() *Compiler {
	if !layoutOK {
		return nil
	}
	return new(Compiler)
}

// progInfo is what the compiler knows of one program: its resolved syntax
// tree and the code compiled from it so far.
type progInfo struct {
	file *syntax.File

	mu    sync.Mutex
	defs  map[posKey]*resolve.Function // by the position of def or lambda; made on first use
	codes map[posKey]*code             // nil: runs on the VM
}

type posKey struct{ line, col int32 }

// AddFile records f, the resolved syntax tree prog was compiled from
// (starlark.FileProgram resolves it in place), so that prog's functions
// can be compiled. The record goes when prog is garbage. Programs
// compiled without recursion allowed are left to the VM, whose recursion
// check cannot see compiled frames.
func (c *Compiler) AddFile(prog *starlark.Program, f *syntax.File) {
	if c == nil || prog == nil || f == nil || f.Options == nil || !f.Options.Recursion {
		return
	}
	key := weak.Make(prog)
	if _, loaded := c.progs.LoadOrStore(key, &progInfo{file: f}); !loaded {
		// The cleanup holds the compiler only weakly: a cleanup is a root
		// until prog is garbage, and the compiler reaches the functions it
		// ran (last), their globals and so whatever holds prog, which then
		// never became garbage (an interpreter and its runs leaked).
		wc := weak.Make(c)
		runtime.AddCleanup(prog, func(k weak.Pointer[starlark.Program]) {
			if c := wc.Value(); c != nil {
				c.progs.Delete(k)
			}
		}, key)
	}
}

// Callable returns what to call instead of fn for one call: a fresh
// activation of fn's compiled code, or fn itself if fn is not a compiled
// Starlark function (a builtin, a function of a program the compiler was
// not told about, one it does not handle). The result must be called at
// most once, by starlark.Call, and not kept.
func (c *Compiler) Callable(fn starlark.Value) starlark.Value {
	f, ok := fn.(*starlark.Function)
	if !ok || c == nil {
		return fn
	}
	if code := c.last.codeOf(c, f); code != nil {
		return newFrame(code, f)
	}
	return fn
}

// CallableOn is [Compiler.Callable] for a call about to be made on th by
// its owner: th's root frame is reused once [Release] freed it after its
// last call, so that a worker running task after task allocates no frame
// per task. Like Callable's, the result must be called at most once, by
// starlark.Call, and not kept; pass it to Release after that Call.
func (c *Compiler) CallableOn(th *starlark.Thread, fn starlark.Value) starlark.Value {
	f, ok := fn.(*starlark.Function)
	if !ok || c == nil {
		return fn
	}
	code := c.last.codeOf(c, f)
	if code == nil {
		return fn
	}
	fr, _ := th.Local(rootFrameKey).(*frame)
	if fr == nil || fr.held {
		fr = new(frame)
		th.SetLocal(rootFrameKey, fr)
	}
	fr.code, fr.fn, fr.held = code, f, true
	return fr
}

// rootFrameKey is the thread-local key of a thread's reusable root frame.
const rootFrameKey = "semisync.compile.rootFrame"

// codeOf returns the compiled code of fn's definition, compiling it on
// first use, or nil if it runs on the VM.
func (c *Compiler) codeOf(fn *starlark.Function) *code {
	m := fn.Module()
	if m == nil {
		return nil
	}
	v, ok := c.progs.Load(weak.Make(m.Program()))
	if !ok {
		return nil
	}
	pi := v.(*progInfo)
	pos := fn.Position()
	key := posKey{pos.Line, pos.Col}
	pi.mu.Lock()
	defer pi.mu.Unlock()
	if code, ok := pi.codes[key]; ok {
		return code
	}
	if pi.defs == nil {
		pi.defs = make(map[posKey]*resolve.Function)
		pi.codes = make(map[posKey]*code)
		syntax.Walk(pi.file, func(n syntax.Node) bool {
			var f *resolve.Function
			switch n := n.(type) {
			case *syntax.DefStmt:
				f, _ = n.Function.(*resolve.Function)
			case *syntax.LambdaExpr:
				f, _ = n.Function.(*resolve.Function)
			}
			if f != nil {
				pi.defs[posKey{f.Pos.Line, f.Pos.Col}] = f
			}
			return true
		})
	}
	var code *code
	if f := pi.defs[key]; f != nil && f.Name == fn.Name() && f.Pos.Filename() == pos.Filename() {
		code = compileFunc(c, f)
	}
	pi.codes[key] = code
	return code
}
