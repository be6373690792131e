package compile

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// code is the compiled form of one function definition, shared by every
// closure and every call of it.
type code struct {
	comp  *Compiler
	name  string
	pos   []syntax.Position // positions of the operations that can fail
	entry int32             // position of the first instruction (argument errors)
	body  stmtFn

	nlocals    int
	localNames []string // parameters first

	// The signature, as the VM's setArgs needs it.
	nparams, nkwonly int // nparams counts *args and **kwargs
	varargs, kwargs  bool
	atMost           bool // a parameter before * has a default
	positional       bool // no *args, **kwargs or keyword-only parameters
}

// A frame is one activation of compiled code: the starlark.Callable that
// go.starlark.net's Call pushes on the thread's stack. Its Position is the
// operation being executed, as the VM's frames report, so backtraces,
// Thread.CallStack and builtins looking at their caller see the VM's lines.
// It is made for one call and never becomes a script value.
//
// A frame is free again when its call returns (go.starlark.net keeps no
// reference to a callable after Call, only copies of its name and
// position), so each frame keeps the frame of its last compiled callee
// for the next call it makes: a recursion allocates one frame per depth,
// not one per call.
type frame struct {
	code   *code
	fn     *starlark.Function // the closure called: defaults, free variables, module
	th     *starlark.Thread
	locals []starlark.Value
	result starlark.Value
	child  *frame // free, for the next compiled call this frame makes
	pc     int32  // index in code.pos
	held   bool   // a thread's root frame, taken by CallableOn until Release
	buf    [6]starlark.Value
}

func newFrame(code *code, fn *starlark.Function) *frame { return &frame{code: code, fn: fn} }

func (fr *frame) Name() string              { return fr.fn.Name() }
func (fr *frame) String() string            { return fr.fn.String() }
func (fr *frame) Type() string              { return "function" }
func (fr *frame) Freeze()                   { fr.fn.Freeze() }
func (fr *frame) Truth() starlark.Bool      { return true }
func (fr *frame) Hash() (uint32, error)     { return fr.fn.Hash() }
func (fr *frame) Position() syntax.Position { return fr.code.pos[fr.pc] }

// CallInternal runs the compiled code with the arguments bound as the VM
// binds them.
func (fr *frame) CallInternal(th *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if th.CallStackDepth() > 100_000 { // the VM's limit with recursion on
		clear(fr.buf[:]) // the caller may have put arguments there
		//lint:ignore ST1005 the VM's message, exactly
		return nil, errors.New("Starlark stack overflow")
	}
	code := fr.code
	fr.th = th
	fr.pc = code.entry
	if code.nlocals <= len(fr.buf) {
		fr.locals = fr.buf[:code.nlocals:code.nlocals]
	} else {
		fr.locals = make([]starlark.Value, code.nlocals)
	}
	v, err := fr.run(args, kwargs)
	clear(fr.locals) // for the next call, and not to keep values alive
	fr.locals, fr.result = nil, nil
	return v, err
}

// Release frees callee, a result of [Compiler.CallableOn] whose
// starlark.Call has returned (go.starlark.net uses the callable until then,
// for the error's backtrace), for th's next CallableOn, keeping nothing of
// the call alive. Without it, the next CallableOn makes a new frame.
func Release(callee starlark.Value) {
	if fr, ok := callee.(*frame); ok && fr.held {
		fr.code, fr.fn, fr.th, fr.child, fr.held = nil, nil, nil, nil, false
	}
}

func (fr *frame) run(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if n := len(args); n > 0 && n == fr.code.nparams && fr.code.positional && len(kwargs) == 0 && &args[0] == &fr.buf[0] {
		// A compiled caller evaluated exactly the parameters into our locals.
	} else if err := fr.setArgs(args, kwargs); err != nil {
		return nil, err
	}
	if err := fr.tick(1, fr.code.entry); err != nil {
		return nil, err
	}
	c, err := fr.code.body(fr)
	if err != nil {
		return nil, err
	}
	if v := fr.result; c == ctlReturn && v != nil {
		return v, nil
	}
	return starlark.None, nil
}

// tick counts w steps and checks the step limit and cancellation, as the
// VM does before each instruction; compiled code does it at every call
// and loop iteration. On failure the frame is at position k.
func (fr *frame) tick(w uint64, k int32) error {
	th := fr.th
	th.Steps += w
	if th.Steps >= maxSteps(th) {
		if th.OnMaxSteps != nil {
			th.OnMaxSteps(th)
		} else {
			th.Cancel("too many steps")
		}
	}
	if r := cancelReason(th); r != nil {
		fr.pc = k
		//lint:ignore ST1005 the VM's message, exactly
		return fmt.Errorf("Starlark computation cancelled: %s", *r)
	}
	return nil
}

// after returns the result of a call, unless the callee cancelled the
// thread (an iterator or builtin reporting a failure): the VM fails at
// the next instruction, with the frame still at the call.
func (fr *frame) after(v starlark.Value, err error) (starlark.Value, error) {
	if err == nil {
		if r := cancelReason(fr.th); r != nil {
			//lint:ignore ST1005 the VM's message, exactly
			return nil, fmt.Errorf("Starlark computation cancelled: %s", *r)
		}
	}
	return v, err
}

// fail puts the frame at position k and returns err (go.starlark.net's
// Call wraps it with the call stack).
func (fr *frame) fail(k int32, err error) error {
	fr.pc = k
	return err
}

func (fr *frame) errorf(k int32, format string, args ...any) error {
	fr.pc = k
	return fmt.Errorf(format, args...)
}

// setArgs is the VM's setArgs (starlark/eval.go): the same binding and
// the same messages.
func (fr *frame) setArgs(args starlark.Tuple, kwargs []starlark.Tuple) error {
	code, fn, locals := fr.code, fr.fn, fr.locals
	if code.nparams == 0 {
		if nactual := len(args) + len(kwargs); nactual > 0 {
			return fmt.Errorf("function %s accepts no arguments (%d given)", fn.Name(), nactual)
		}
		return nil
	}
	nparams := code.nparams
	var kwdict *starlark.Dict
	if code.kwargs {
		nparams--
		kwdict = new(starlark.Dict)
		locals[nparams] = kwdict
	}
	if code.varargs {
		nparams--
	}
	nonkwonly := nparams - code.nkwonly
	n := len(args)
	if len(args) > nonkwonly {
		if !code.varargs {
			atMost, s := "", "s"
			if code.atMost {
				atMost = "at most "
			}
			if nonkwonly == 1 {
				s = ""
			}
			return fmt.Errorf("function %s accepts %s%d positional argument%s (%d given)",
				fn.Name(), atMost, nonkwonly, s, len(args))
		}
		n = nonkwonly
	}
	copy(locals[:n], args[:n])
	if code.varargs {
		tuple := make(starlark.Tuple, len(args)-n)
		copy(tuple, args[n:])
		locals[nparams] = tuple
	}
	params := code.localNames[:nparams]
	for _, pair := range kwargs {
		k, v := pair[0].(starlark.String), pair[1]
		if i := findParam(params, string(k)); i >= 0 {
			if locals[i] != nil {
				return fmt.Errorf("function %s got multiple values for parameter %s", fn.Name(), k)
			}
			locals[i] = v
			continue
		}
		if kwdict == nil {
			return fmt.Errorf("function %s got an unexpected keyword argument %s", fn.Name(), k)
		}
		oldlen := kwdict.Len()
		kwdict.SetKey(k, v) //nolint:errcheck // a new dict, string keys
		if kwdict.Len() == oldlen {
			return fmt.Errorf("function %s got multiple values for parameter %s", fn.Name(), k)
		}
	}
	if n < nparams || code.nkwonly > 0 {
		var missing []string
		for i := n; i < nparams; i++ {
			if locals[i] == nil {
				d := fn.ParamDefault(i) // nil: required, or keyword-only without default
				if d == nil {
					missing = append(missing, params[i])
					continue
				}
				locals[i] = d
			}
		}
		if missing != nil {
			s := ""
			if len(missing) > 1 {
				s = "s"
			}
			return fmt.Errorf("function %s missing %d argument%s (%s)",
				fn.Name(), len(missing), s, strings.Join(missing, ", "))
		}
	}
	return nil
}

func findParam(params []string, name string) int {
	for i, p := range params {
		if p == name {
			return i
		}
	}
	return -1
}

// A site is a call site's cache of the compiled code of the function it
// called last (typically always the same global function).
type site struct{ last atomic.Pointer[siteEntry] }

type siteEntry struct {
	fn   *starlark.Function
	code *code
}

func (s *site) codeOf(c *Compiler, f *starlark.Function) *code {
	if e := s.last.Load(); e != nil && e.fn == f {
		return e.code
	}
	code := c.codeOf(f)
	s.last.Store(&siteEntry{f, code})
	return code
}
