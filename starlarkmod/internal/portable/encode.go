package portable

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// The format (version 1). Every encoding starts with a header:
//
//	magic "SSP" | version 1 | kind (func, args, value) | mode | file table
//
// The file table lists the files that functions name (ByFile only), in
// order of first use: content hash (32 bytes), filename, dialect flags,
// and the text or nothing (then it comes from Func.Files / Env.Files).
// Then come the values, each a tag byte and its payload; integers are
// varints (signed ones zigzag), strings are a length and UTF-8 bytes.
// Lists, dicts, sets, structs, functions and Portable values get an id, in
// order of first appearance; a second appearance of the same object is
// tagRef and its id, so sharing and cycles survive. Everything is written
// in one deterministic order: dicts and sets as they iterate (insertion
// order), struct fields and a function's globals and predeclared names
// sorted, free variables and defaults in their order in the function. No
// Go map order leaks in.
//
// Why not a library (CBOR, protobuf): the values are Starlark's, with
// identity (sharing, cycles), functions and builtins named by module, so
// a generic format would need the same tagging on top; this one is ~20
// tags with varints, and its bytes are canonical by construction.
const (
	magic   = "SSP"
	version = 1

	kindFunc  = 'F'
	kindArgs  = 'A'
	kindValue = 'V'
)

const (
	tagNone        = iota // -
	tagFalse              // -
	tagTrue               // -
	tagInt                // zigzag varint
	tagBigInt             // sign byte (0 or 1), magnitude bytes (big-endian)
	tagFloat              // 8 bytes, IEEE bits, little-endian
	tagString             // string
	tagBytes              // string
	tagTuple              // n, values
	tagList               // n, values (gets an id)
	tagDict               // n, key value pairs (gets an id)
	tagSet                // n, values (gets an id)
	tagRef                // id
	tagStruct             // constructor value, n, (name, value) sorted by name (gets an id, after its fields)
	tagModule             // name, n, (name, value) sorted
	tagFunc               // see encoder.function (gets an id)
	tagUniverse           // name: starlark.Universe[name]
	tagPredeclared        // name: Env.Predeclared[name]
	tagLoad               // module, member: Env.Load(module)[member]
	tagAttr               // value, name: getattr(value, name) (bound methods, module members)
	tagPortable           // ctor name, args tuple (gets an id, after its args)
	tagTime               // unix seconds (varint), nanoseconds (uvarint), location name
	tagDuration           // varint nanoseconds
	tagRange              // start, stop, step (varints)
	tagMax
)

// maxDepth bounds how deeply values may nest in an encoding: the encoder
// and decoder recurse on the Go stack, and a goroutine's stack is finite
// (locally, crossing walks values of any depth without recursion).
const maxDepth = 10000

// dialect flags of a file, so a worker parses it as it was parsed here.
const (
	flagSet = 1 << iota
	flagWhile
	flagTopLevelControl
	flagGlobalReassign
	flagLoadBindsGlobally
	flagRecursion
)

func dialectFlags(o *syntax.FileOptions) byte {
	if o == nil {
		return 0
	}
	var f byte
	for _, x := range []struct {
		on  bool
		bit byte
	}{{o.Set, flagSet}, {o.While, flagWhile}, {o.TopLevelControl, flagTopLevelControl},
		{o.GlobalReassign, flagGlobalReassign}, {o.LoadBindsGlobally, flagLoadBindsGlobally}, {o.Recursion, flagRecursion}} {
		if x.on {
			f |= x.bit
		}
	}
	return f
}

func dialectOptions(f byte) *syntax.FileOptions {
	return &syntax.FileOptions{
		Set:               f&flagSet != 0,
		While:             f&flagWhile != 0,
		TopLevelControl:   f&flagTopLevelControl != 0,
		GlobalReassign:    f&flagGlobalReassign != 0,
		LoadBindsGlobally: f&flagLoadBindsGlobally != 0,
		Recursion:         f&flagRecursion != 0,
	}
}

// A seg is one step of the path from an encoding's root to a value, for
// error messages; it is formatted only when there is an error.
type seg struct {
	kind segKind
	i    int
	name string
	key  starlark.Value
	fn   *starlark.Function
	pos  syntax.Position // where the function names it
}

type segKind uint8

const (
	segArg segKind = iota
	segKwarg
	segList
	segTuple
	segDictKey
	segDictValue
	segSet
	segField
	segMember
	segReceiver
	segGlobal
	segPredeclared
	segFree
	segDefault
	segHeld
)

func (s seg) String() string {
	switch s.kind {
	case segArg:
		return fmt.Sprintf("argument %d", s.i+1)
	case segKwarg:
		return fmt.Sprintf("argument %s", s.name)
	case segList:
		return fmt.Sprintf("in list element %d", s.i)
	case segTuple:
		return fmt.Sprintf("in tuple element %d", s.i)
	case segDictKey:
		return "in dict key " + shortRepr(s.key)
	case segDictValue:
		return "in dict value for key " + shortRepr(s.key)
	case segSet:
		return "in set element " + shortRepr(s.key)
	case segField:
		return "in struct field " + s.name
	case segMember:
		return "in module member " + s.name
	case segReceiver:
		return "in the receiver of " + s.name
	case segGlobal:
		return fmt.Sprintf("global %q of function %s", s.name, s.fn.Name())
	case segPredeclared:
		return fmt.Sprintf("%q of function %s", s.name, s.fn.Name())
	case segFree:
		return fmt.Sprintf("variable %q captured by function %s", s.name, s.fn.Name())
	case segDefault:
		return fmt.Sprintf("the default of parameter %s of function %s", s.name, s.fn.Name())
	case segHeld:
		return "in " + s.name
	}
	return ""
}

func shortRepr(v starlark.Value) string {
	s := v.String()
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

// A ref names a builtin or module value on the decoding side.
type ref struct {
	tag          byte // tagUniverse, tagPredeclared or tagLoad
	name, member string
	attr         string // if set: an attribute of that
}

type encoder struct {
	mode   Mode
	inline bool // file texts inline (args and values have no side channel)
	buf    []byte

	ids      map[any]int
	files    []*fileInfo
	fileIdx  map[*fileInfo]int
	filesOut map[string][]byte

	reached     []Reached
	reachedSeen map[[2]string]bool

	learned map[starlark.Value]ref // builtins and modules bound by load, met as free variables

	path  []seg
	ctx   []*fileInfo // files of the functions being encoded (innermost last): where builtins are named
	depth int
}

func newEncoder(mode Mode, inline bool) *encoder {
	e := &encoder{mode: mode, inline: inline}
	e.begin()
	return e
}

func (e *encoder) push(s seg) { e.path = append(e.path, s) }
func (e *encoder) pop()       { e.path = e.path[:len(e.path)-1] }

// notPortable returns the error for v at the current path.
func (e *encoder) notPortable(what string) error {
	var parts []string
	var p syntax.Position
	for _, s := range e.path {
		parts = append(parts, s.String())
		if s.pos.IsValid() {
			p = s.pos
		}
	}
	return &NotPortableError{What: what, Path: strings.Join(parts, ": "), Pos: p}
}

func (e *encoder) reach(kind, name string, p syntax.Position) {
	k := [2]string{kind, name}
	if e.reachedSeen[k] {
		return
	}
	if e.reachedSeen == nil {
		e.reachedSeen = map[[2]string]bool{}
	}
	e.reachedSeen[k] = true
	e.reached = append(e.reached, Reached{Kind: kind, Name: name, Pos: p})
}

// usePos returns where the innermost function on the path names the value
// being encoded.
func (e *encoder) usePos() syntax.Position {
	for i := len(e.path) - 1; i >= 0; i-- {
		if e.path[i].pos.IsValid() {
			return e.path[i].pos
		}
	}
	return syntax.Position{}
}

// Low-level writers.

func (e *encoder) byte(b byte)             { e.buf = append(e.buf, b) }
func (e *encoder) uvarint(x uint64)        { e.buf = binary.AppendUvarint(e.buf, x) }
func (e *encoder) varint(x int64)          { e.buf = binary.AppendVarint(e.buf, x) }
func (e *encoder) str(s string)            { e.uvarint(uint64(len(s))); e.buf = append(e.buf, s...) }
func (e *encoder) tagged(t byte, s string) { e.byte(t); e.str(s) }

// headerSize is the length of a header with an empty file table; the
// body is written after that much room, so that an encoding without files
// (most arguments and results) needs no copy.
const headerSize = len(magic) + 4

func (e *encoder) begin() {
	if e.buf == nil {
		e.buf = make([]byte, headerSize, 64)
	}
}

// finish returns the header, the file table and the body.
func (e *encoder) finish(kind byte) []byte {
	e.begin()
	if len(e.files) == 0 {
		out := e.buf
		copy(out, magic)
		out[len(magic)], out[len(magic)+1], out[len(magic)+2], out[len(magic)+3] = version, kind, byte(e.mode), 0
		return out
	}
	body := e.buf[headerSize:]
	out := make([]byte, 0, len(body)+16)
	out = append(out, magic...)
	out = append(out, version, kind, byte(e.mode))
	out = binary.AppendUvarint(out, uint64(len(e.files)))
	for _, fi := range e.files {
		out = append(out, fi.hashBytes()...)
		out = binary.AppendUvarint(out, uint64(len(fi.file.Path)))
		out = append(out, fi.file.Path...)
		out = append(out, fi.flags)
		if e.inline {
			out = append(out, 1)
			out = binary.AppendUvarint(out, uint64(len(fi.src)))
			out = append(out, fi.src...)
		} else {
			out = append(out, 0)
		}
	}
	return append(out, body...)
}

// root encodes the function of EncodeFunc.
func (e *encoder) root(fn starlark.Value) error {
	if fn, ok := fn.(*starlark.Function); ok {
		e.reach("function", fn.Name(), fn.Position())
	}
	return e.value(fn)
}

// newID gives x the next id if it has none; it reports whether x was new
// (else it wrote a reference to it).
func (e *encoder) newID(x any) bool {
	if id, ok := e.ids[x]; ok {
		e.byte(tagRef)
		e.uvarint(uint64(id))
		return false
	}
	if e.ids == nil {
		e.ids = map[any]int{}
	}
	e.ids[x] = len(e.ids)
	return true
}

func (e *encoder) value(v starlark.Value) error {
	e.depth++
	defer func() { e.depth-- }()
	if e.depth > maxDepth {
		return e.notPortable(fmt.Sprintf("value nested more than %d deep", maxDepth))
	}
	switch v := v.(type) {
	case nil:
		return fmt.Errorf("portable: nil value")
	case starlark.NoneType:
		e.byte(tagNone)
	case starlark.Bool:
		if v {
			e.byte(tagTrue)
		} else {
			e.byte(tagFalse)
		}
	case starlark.Int:
		if x, ok := v.Int64(); ok {
			e.byte(tagInt)
			e.varint(x)
		} else {
			b := v.BigInt()
			e.byte(tagBigInt)
			if b.Sign() < 0 {
				e.byte(1)
			} else {
				e.byte(0)
			}
			e.str(string(new(big.Int).Abs(b).Bytes()))
		}
	case starlark.Float:
		e.byte(tagFloat)
		e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(float64(v)))
	case starlark.String:
		e.tagged(tagString, string(v))
	case starlark.Bytes:
		e.tagged(tagBytes, string(v))
	case starlark.Tuple:
		e.byte(tagTuple)
		e.uvarint(uint64(len(v)))
		for i, x := range v {
			e.push(seg{kind: segTuple, i: i})
			if err := e.value(x); err != nil {
				return err
			}
			e.pop()
		}
	case *starlark.List:
		if !e.newID(v) {
			return nil
		}
		e.byte(tagList)
		e.uvarint(uint64(v.Len()))
		for i := range v.Len() {
			e.push(seg{kind: segList, i: i})
			if err := e.value(v.Index(i)); err != nil {
				return err
			}
			e.pop()
		}
	case *starlark.Dict:
		if !e.newID(v) {
			return nil
		}
		items := v.Items()
		e.byte(tagDict)
		e.uvarint(uint64(len(items)))
		for _, kv := range items {
			e.push(seg{kind: segDictKey, key: kv[0]})
			if err := e.value(kv[0]); err != nil {
				return err
			}
			e.path[len(e.path)-1].kind = segDictValue
			if err := e.value(kv[1]); err != nil {
				return err
			}
			e.pop()
		}
	case *starlark.Set:
		if !e.newID(v) {
			return nil
		}
		e.byte(tagSet)
		e.uvarint(uint64(v.Len()))
		for x := range v.Elements() {
			e.push(seg{kind: segSet, key: x})
			if err := e.value(x); err != nil {
				return err
			}
			e.pop()
		}
	case *starlarkstruct.Struct:
		if !e.newID(v) {
			return nil
		}
		e.byte(tagStruct)
		if err := e.value(v.Constructor()); err != nil {
			return err
		}
		names := v.AttrNames() // sorted
		e.uvarint(uint64(len(names)))
		for _, name := range names {
			x, _ := v.Attr(name)
			e.str(name)
			e.push(seg{kind: segField, name: name})
			if err := e.value(x); err != nil {
				return err
			}
			e.pop()
		}
	case *starlarkstruct.Module:
		if r, ok := e.name(v); ok {
			e.writeRef(r)
			return nil
		}
		e.byte(tagModule)
		e.str(v.Name)
		names := sortedKeys(v.Members)
		e.uvarint(uint64(len(names)))
		for _, name := range names {
			e.str(name)
			e.push(seg{kind: segMember, name: name})
			if err := e.value(v.Members[name]); err != nil {
				return err
			}
			e.pop()
		}
	case *starlark.Function:
		return e.function(v)
	case *starlark.Builtin:
		return e.builtin(v)
	case startime.Time:
		t := time.Time(v)
		e.byte(tagTime)
		e.varint(t.Unix())
		e.uvarint(uint64(t.Nanosecond()))
		e.str(t.Location().String())
	case startime.Duration:
		e.byte(tagDuration)
		e.varint(int64(v))
	case Portable:
		return e.portable(v)
	default:
		if reflect.TypeOf(v) == rangeType {
			return e.rangeValue(v)
		}
		if isModule(v) {
			if r, ok := e.name(v); ok {
				e.writeRef(r) // a loaded module of another type (load("random", "random"))
				return nil
			}
		}
		return e.notPortable(describe(v))
	}
	return nil
}

// isModule reports whether v is a module value of a type other than
// starlarkstruct.Module (starlarkmod's callable modules): like a Module,
// it travels by the load that binds it.
func isModule(v starlark.Value) bool { return v.Type() == "module" }

// describe names a value that is not portable, for messages.
func describe(v starlark.Value) string {
	t := v.Type()
	switch t {
	case "function", "builtin_function_or_method":
		return fmt.Sprintf("%s %s", t, v.String())
	}
	return t
}

var rangeType = func() reflect.Type {
	v, err := starlark.Call(&starlark.Thread{}, starlark.Universe["range"], starlark.Tuple{starlark.MakeInt(1)}, nil)
	if err != nil {
		panic(err)
	}
	return reflect.TypeOf(v)
}()

// rangeValue encodes a range by its start, stop and step, parsed from its
// String (the type is not exported).
func (e *encoder) rangeValue(v starlark.Value) error {
	s := strings.TrimSuffix(strings.TrimPrefix(v.String(), "range("), ")")
	parts := strings.Split(s, ", ")
	nums := []int64{0, 0, 1}
	switch len(parts) {
	case 1:
		parts = []string{"0", parts[0], "1"}
	case 2:
		parts = append(parts, "1")
	case 3:
	default:
		return fmt.Errorf("portable: cannot encode %s", v)
	}
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return fmt.Errorf("portable: cannot encode %s", v)
		}
		nums[i] = n
	}
	e.byte(tagRange)
	for _, n := range nums {
		e.varint(n)
	}
	return nil
}

func (e *encoder) writeRef(r ref) {
	if r.attr != "" {
		e.byte(tagAttr)
	}
	e.byte(r.tag)
	e.str(r.name)
	if r.tag == tagLoad {
		e.str(r.member)
	}
	if r.attr != "" {
		e.str(r.attr)
	}
}

// builtin encodes a builtin: a bound method as its receiver and name, any
// other by where the decoding side finds it (universe, predeclared, a
// built-in module).
func (e *encoder) builtin(b *starlark.Builtin) error {
	if recv := b.Receiver(); recv != nil {
		e.byte(tagAttr)
		e.push(seg{kind: segReceiver, name: b.Name()})
		if err := e.value(recv); err != nil {
			return err
		}
		e.pop()
		e.str(b.Name())
		return nil
	}
	r, ok := e.name(b)
	if !ok {
		return e.notPortable(fmt.Sprintf("builtin %s (not found under any predeclared, universal or loaded name)", b.Name()))
	}
	e.writeRef(r)
	e.reach("builtin", r.String(), e.usePos())
	return nil
}

func (r ref) String() string {
	s := r.name
	if r.tag == tagLoad {
		s = r.name + "." + r.member
		if r.member == r.name { // load("json", "json"): the module itself
			s = r.name
		}
	}
	if r.attr != "" {
		s += "." + r.attr
	}
	return s
}

// name finds v, a builtin or module, among the names the function being
// encoded can see (its file's loads, its module's predeclared names, the
// universe), or the universe alone outside any function.
func (e *encoder) name(v starlark.Value) (ref, bool) {
	if r, ok := e.learned[v]; ok {
		return r, true
	}
	if len(e.ctx) > 0 {
		fi := e.ctx[len(e.ctx)-1]
		if r, ok := fi.names[v]; ok {
			return r, true
		}
	}
	r, ok := universeNames[v]
	return r, ok
}

var universeNames = func() map[starlark.Value]ref {
	m := map[starlark.Value]ref{}
	for name, v := range starlark.Universe {
		if b, ok := v.(*starlark.Builtin); ok {
			m[b] = ref{tag: tagUniverse, name: name}
		}
	}
	return m
}()

// learn records the name of v, a value a load bound, and of its members if
// it is a module.
func (e *encoder) learn(v starlark.Value, r ref) {
	if e.learned == nil {
		e.learned = map[starlark.Value]ref{}
	}
	addName(e.learned, v, r)
}

func addName(m map[starlark.Value]ref, v starlark.Value, r ref) {
	switch v.(type) {
	case *starlark.Builtin, *starlarkstruct.Module:
	default:
		if !isModule(v) {
			return
		}
	}
	if _, dup := m[v]; !dup {
		m[v] = r
	}
	if mod, ok := v.(*starlarkstruct.Module); ok && r.attr == "" {
		for _, name := range sortedKeys(mod.Members) {
			r2 := r
			r2.attr = name
			switch x := mod.Members[name].(type) {
			case *starlark.Builtin, *starlarkstruct.Module:
				if _, dup := m[x]; !dup {
					m[x] = r2
				}
			}
		}
	}
}

// namesFor indexes the builtins and modules that functions of fi can name.
func (fi *fileInfo) namesFor(fn *starlark.Function) {
	fi.namesOnce.Do(func() {
		m := map[starlark.Value]ref{}
		add := func(v starlark.Value, r ref) { addName(m, v, r) }
		globals := fn.Globals()
		for _, name := range sortedKeys(globals) {
			if l, ok := fi.loads[name]; ok {
				add(globals[name], ref{tag: tagLoad, name: l.module, member: l.member})
			}
		}
		pre := fn.Module().Predeclared()
		for _, name := range sortedKeys(pre) {
			add(pre[name], ref{tag: tagPredeclared, name: name})
		}
		fi.names = m
	})
}

func sortedKeys(d starlark.StringDict) []string { return d.Keys() }

// portable encodes a host value that implements Portable.
func (e *encoder) portable(v Portable) error {
	if key := identityKey(v); key != nil {
		if !e.newID(key) {
			return nil
		}
	} else {
		if e.ids == nil {
			e.ids = map[any]int{}
		}
		e.ids[new(byte)] = len(e.ids) // an id all the same, in step with the decoder
	}
	ctor, args, err := v.Portable()
	if err != nil {
		return e.notPortable(fmt.Sprintf("%s (%v)", v.Type(), err))
	}
	e.reach("value", v.Type(), e.usePos())
	e.byte(tagPortable)
	e.str(ctor)
	e.push(seg{kind: segHeld, name: v.Type()})
	if err := e.value(args); err != nil {
		return err
	}
	e.pop()
	return nil
}

// identityKey returns a map key for v's identity, or nil if its type
// cannot be one.
func identityKey(v starlark.Value) any {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer || t.Comparable() {
		return v
	}
	return nil
}
