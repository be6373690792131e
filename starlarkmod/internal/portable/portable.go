package portable

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// A Mode says how a function is named in an encoding.
type Mode uint8

const (
	// ByFile names a function by its file's content hash (sha256, hex) and
	// the position of its def or lambda; the file's text travels once, by
	// hash (Func.Files), or inline in encodings that have no side channel
	// (EncodeArgs, EncodeValue). A worker decodes it with the original
	// positions. Cluster tasks use it.
	ByFile Mode = iota
	// BySource names a function by the source text of its own def or
	// lambda only (no file hash, no positions): editing, moving or adding
	// other functions does not change it; editing it, or a function or
	// value it reaches, does. Cache keys use it. Such encodings are keys:
	// DecodeFunc refuses them.
	BySource
)

func (m Mode) String() string {
	switch m {
	case ByFile:
		return "ByFile"
	case BySource:
		return "BySource"
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// A Func is the canonical encoding of a function value and everything it
// reaches.
type Func struct {
	Data    []byte            // canonical bytes
	Sum     [32]byte          // sha256(Data)
	Files   map[string][]byte // ByFile: content hash (hex) -> file text
	Reached []Reached         // every builtin, host value and function reached, in encounter order
}

// A Reached is one builtin, host value or function that an encoding
// reaches: what a cache asks before it trusts a call to be pure.
type Reached struct {
	Kind string          // "builtin", "function" or "value"
	Name string          // "print", "time.now", "random.random", "sleep", "fib", "future", ...
	Pos  syntax.Position // where the reaching function names it (best effort; may be invalid)
}

// A NotPortableError reports a value that cannot leave the process:
// a Manager container, a Lock, a dispatcher, a future, a stream, a
// @semisync function, a host value that does not implement [Portable], a
// function whose source is unknown.
type NotPortableError struct {
	What string          // e.g. "Manager list", "Lock", "future"
	Path string          // e.g. `global "counts" of function f: in list element 3`
	Pos  syntax.Position // the line that uses it (invalid if unknown, e.g. an argument)
}

func (e *NotPortableError) Error() string {
	var b strings.Builder
	if e.Pos.IsValid() {
		b.WriteString(e.Pos.String())
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%s cannot leave this process (it is not portable)", e.What)
	return b.String()
}

// A Portable is a host value that can leave the process: it says how to
// rebuild itself elsewhere, as a call of a predeclared callable (looked up
// in the decoding side's [Env].Predeclared) with portable arguments. A
// value of a host type that does not implement Portable is not portable.
//
// For example, a function decorated with @future is rebuilt as
// future(fn): Portable returns ("future", (fn,), nil).
type Portable interface {
	starlark.Value
	// Portable returns the name of the predeclared callable that rebuilds
	// the value and its arguments, or an error if this value, unlike others
	// of its type, cannot leave the process.
	Portable() (ctor string, args starlark.Tuple, err error)
}

// Env is what a decoding side supplies to rebuild functions and builtins.
type Env struct {
	// Predeclared names the predeclared builtins (sleep, job, future...).
	Predeclared starlark.StringDict
	// Constructors, if not nil, are the only callables that may rebuild
	// Portable host values (else any predeclared callable may): decoding
	// calls them, so an encoding cannot make the decoder call anything
	// else (sleep, job...).
	Constructors starlark.StringDict
	// Load returns the members of a built-in module (json, math, time,
	// random...), for names a script bound with load; nil refuses them.
	Load func(module string) (starlark.StringDict, error)
	// Files returns a file's text by its content hash (hex), for
	// functions encoded ByFile without inline text; nil refuses them.
	Files func(hash string) ([]byte, error)
	// Thread calls Portable constructors; nil means a bare thread.
	Thread *starlark.Thread
	// Compiled, if set, is told of each program decoding compiles (a
	// function's synthetic file, resolved), so that a compiler of task
	// functions can compile the decoded functions too.
	Compiled func(prog *starlark.Program, f *syntax.File)
}

// EncodeFunc returns the canonical, deterministic encoding of fn (a
// Starlark function, a builtin, or a Portable host callable) and of
// everything it reaches: the globals and free variables it reads, its
// defaults, other functions, builtins by module and name. Values that
// cannot leave the process give a *NotPortableError.
//
// A Starlark function is encodable only if the file it was compiled from
// was registered ([Register]); semisync's Interpreter registers all of
// them. Encoding reads values only: it never freezes or calls anything.
func EncodeFunc(fn starlark.Value, mode Mode) (*Func, error) {
	e := newEncoder(mode, false)
	if err := e.root(fn); err != nil {
		return nil, err
	}
	data := e.finish(kindFunc)
	f := &Func{Data: data, Sum: sha256.Sum256(data), Files: e.filesOut, Reached: e.reached}
	if f.Files == nil {
		f.Files = map[string][]byte{}
	}
	return f, nil
}

// EncodeArgs returns the canonical encoding of a call's arguments. In
// ByFile mode the text of any function's file is inline, so DecodeArgs
// needs nothing else.
func EncodeArgs(args starlark.Tuple, kwargs []starlark.Tuple, mode Mode) ([]byte, error) {
	e := newEncoder(mode, true)
	e.uvarint(uint64(len(args)))
	for i, a := range args {
		e.push(seg{kind: segArg, i: i})
		if err := e.value(a); err != nil {
			return nil, err
		}
		e.pop()
	}
	e.uvarint(uint64(len(kwargs)))
	for _, kv := range kwargs {
		name, ok := kv[0].(starlark.String)
		if !ok || len(kv) != 2 {
			return nil, fmt.Errorf("portable: keyword argument is not a (string, value) pair")
		}
		e.str(string(name))
		e.push(seg{kind: segKwarg, name: string(name)})
		if err := e.value(kv[1]); err != nil {
			return nil, err
		}
		e.pop()
	}
	return e.finish(kindArgs), nil
}

// EncodeValue returns the canonical encoding of v (a task's result), in
// ByFile mode with file texts inline.
func EncodeValue(v starlark.Value) ([]byte, error) {
	e := newEncoder(ByFile, true)
	if err := e.value(v); err != nil {
		return nil, err
	}
	return e.finish(kindValue), nil
}

// DecodeFunc rebuilds the function that EncodeFunc(fn, ByFile) encoded,
// without running the top-level code of its script: each function is
// compiled alone from its def in the original file (fetched with files),
// with the values it reached supplied as its environment, so its error
// positions and backtraces name the original file, line and column.
// predeclared supplies the builtins the encoding names (see [Env]); use
// [DecodeFuncEnv] to supply modules for load-bound names too. The result
// and everything it holds is frozen.
func DecodeFunc(data []byte, files func(hash string) ([]byte, error), predeclared starlark.StringDict) (starlark.Callable, error) {
	return DecodeFuncEnv(data, &Env{Predeclared: predeclared, Files: files})
}

// DecodeFuncEnv is DecodeFunc with a full environment.
func DecodeFuncEnv(data []byte, env *Env) (starlark.Callable, error) {
	d, v, err := decodeOne(data, kindFunc, env)
	if err != nil {
		return nil, err
	}
	c, ok := v.(starlark.Callable)
	if !ok {
		return nil, fmt.Errorf("portable: encoded function is a %s, not callable", v.Type())
	}
	d.freeze(v)
	return c, nil
}

// DecodeArgs decodes what EncodeArgs encoded; the values are frozen.
// Functions among them need DecodeArgsEnv when they read builtins.
func DecodeArgs(data []byte) (starlark.Tuple, []starlark.Tuple, error) {
	return DecodeArgsEnv(data, nil)
}

// DecodeArgsEnv is DecodeArgs with an environment for the functions and
// builtins among the arguments.
func DecodeArgsEnv(data []byte, env *Env) (starlark.Tuple, []starlark.Tuple, error) {
	d, err := newDecoder(data, kindArgs, env)
	if err != nil {
		return nil, nil, err
	}
	n, err := d.count()
	if err != nil {
		return nil, nil, err
	}
	args := make(starlark.Tuple, n)
	for i := range args {
		if args[i], err = d.value(); err != nil {
			return nil, nil, err
		}
	}
	n, err = d.count()
	if err != nil {
		return nil, nil, err
	}
	var kwargs []starlark.Tuple
	for range n {
		name, err := d.str()
		if err != nil {
			return nil, nil, err
		}
		v, err := d.value()
		if err != nil {
			return nil, nil, err
		}
		kwargs = append(kwargs, starlark.Tuple{starlark.String(name), v})
	}
	if err := d.finish(); err != nil {
		return nil, nil, err
	}
	d.freeze(args)
	for _, kv := range kwargs {
		d.freeze(kv[1])
	}
	return args, kwargs, nil
}

// DecodeValue decodes what EncodeValue encoded; the value is frozen.
func DecodeValue(data []byte) (starlark.Value, error) { return DecodeValueEnv(data, nil) }

// DecodeValueEnv is DecodeValue with an environment for the functions and
// builtins in the value.
func DecodeValueEnv(data []byte, env *Env) (starlark.Value, error) {
	d, v, err := decodeOne(data, kindValue, env)
	if err != nil {
		return nil, err
	}
	d.freeze(v)
	return v, nil
}

// decodeOne decodes data, one value of kind, to its end, with the
// references to values built later resolved; freezing is the caller's.
func decodeOne(data []byte, kind byte, env *Env) (*decoder, starlark.Value, error) {
	d, err := newDecoder(data, kind, env)
	if err != nil {
		return nil, nil, err
	}
	v, err := d.value()
	if err != nil {
		return nil, nil, err
	}
	if err := d.finish(); err != nil {
		return nil, nil, err
	}
	return d, v, nil
}
