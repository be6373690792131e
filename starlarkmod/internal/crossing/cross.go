package crossing

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// A Crosser is a value whose type says how it crosses to another thread.
//
// Cross returns an error to refuse: the value is bound to one thread, and
// the message says why and what to do instead. Otherwise it calls yield
// for each Starlark value it holds that the receiving thread can reach
// (each is walked in turn: frozen, its functions checked) and returns nil;
// if yield returns an error, Cross must return it. Cross is called on the
// thread that owns the value, before it crosses; the value's Freeze method
// is called after the values it yielded have been walked.
type Crosser interface {
	starlark.Value
	Cross(yield func(starlark.Value) error) error
}

// A Checker readies values to cross and remembers what it learned: the
// analysis of each program it was given, which programs have finished
// executing, and the functions (and Crossers) found safe for good, which
// later crossings skip. The zero value is ready to use. A Checker is safe
// for concurrent use; Cross itself must be called on the thread that owns
// the values.
type Checker struct {
	// OnFreeze, if set before first use, is called on the crossing thread
	// for each list, dict or set that a crossing freezes (not Freeze),
	// near enough to a root to name (at most four steps down). describe,
	// valid only during the call, returns the variable it was reached
	// through ("" if none) and the path to it.
	OnFreeze func(th *starlark.Thread, op string, v starlark.Value, describe func() (name, how string))

	progs    sync.Map // *starlark.Program -> *Info
	finished sync.Map // *starlark.Program -> struct{}: its top level has returned
	ready    sync.Map // *starlark.Function or Crosser -> struct{}: walked, safe forever
}

// Add records the analysis of the file prog was compiled from.
func (c *Checker) Add(prog *starlark.Program, info *Info) { c.progs.Store(prog, info) }

// Finish records that the top level of prog has returned: its globals are
// bound for good, and the decorators of its defs have run.
func (c *Checker) Finish(prog *starlark.Program) { c.finished.Store(prog, struct{}{}) }

// Cross readies vs to be handed to another goroutine for the builtin named
// op: it deep-freezes them and checks the functions they reach, with the
// background rule if background is set (see the package comment). th is
// the calling thread, or nil if unknown (decorated defs then count as
// decorated only once their module has finished). It returns the first
// refusal; values walked before it stay frozen.
//
// The cost is linear in the number of values reached, except for values
// known to be safe already (scalars, tuples of them, functions found safe
// for good), which cost nothing.
func (c *Checker) Cross(th *starlark.Thread, op string, background bool, vs ...starlark.Value) error {
	quick := true
	for _, v := range vs {
		if !c.knownSafe(v) {
			quick = false
			break
		}
	}
	if quick {
		return nil
	}
	w := walker{c: c, th: th, op: op, background: background}
	for _, v := range vs {
		if err := w.walk(v); err != nil {
			return err
		}
	}
	// A function is safe forever once everything it can reach is frozen and
	// bound for good; only then may later crossings skip the walk.
	if !w.unsettled {
		for _, v := range w.settled {
			c.ready.Store(v, struct{}{})
		}
	}
	return nil
}

// Freeze deep-freezes vs without checking anything: what a module's
// globals need when it finishes. It is StringDict.Freeze without
// recursion on the Go stack; values of types it does not know are frozen
// with their own Freeze method.
func Freeze(vs ...starlark.Value) {
	var w *walker // made on first need: its stack costs a 1024-frame block
	for _, v := range vs {
		if scalars(v) {
			continue // nothing to freeze (a remote task's decoded arguments, mostly)
		}
		if w == nil {
			w = &walker{freezeOnly: true}
		}
		w.walk(v) //nolint:errcheck // freezing alone never fails
	}
}

// scalars reports whether v is immutable with nothing inside to freeze: a
// scalar, or a tuple of scalars.
func scalars(v starlark.Value) bool {
	switch v := v.(type) {
	case nil, starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
		return true
	case starlark.Tuple:
		for _, x := range v {
			switch x.(type) {
			case starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
			default:
				return false
			}
		}
		return true
	}
	return false
}

// knownSafe reports whether v needs no walk.
func (c *Checker) knownSafe(v starlark.Value) bool {
	switch v := v.(type) {
	case nil, starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
		return true
	case starlark.Tuple:
		for _, x := range v {
			switch x := x.(type) {
			case starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
			case *starlark.Function:
				if _, ok := c.ready.Load(x); !ok {
					return false
				}
			default:
				return false
			}
		}
		return true
	case *starlark.Function:
		_, ok := c.ready.Load(v)
		return ok
	case Crosser:
		if !cacheable(v) {
			return false
		}
		_, ok := c.ready.Load(v)
		return ok
	}
	return false
}

// cacheable reports whether v can be a map key, and is worth one: a
// pointer (identity) or a comparable value.
func cacheable(v starlark.Value) bool {
	t := reflect.TypeOf(v)
	return t.Kind() == reflect.Pointer || t.Comparable()
}

// Immutable values of types that go.starlark.net does not export.
var (
	rangeType          = typeOf(starlark.Universe["range"], starlark.MakeInt(1))
	stringElemsType    = typeOf(method(starlark.String("a"), "elems"))
	stringCodesType    = typeOf(method(starlark.String("a"), "codepoints"))
	bytesElemsType     = typeOf(method(starlark.Bytes("a"), "elems"))
	timeType           = reflect.TypeOf(startime.Time{})
	durationType       = reflect.TypeOf(startime.Duration(0))
	immutableBuiltTins = map[reflect.Type]bool{
		rangeType: true, stringElemsType: true, stringCodesType: true, bytesElemsType: true,
		timeType: true, durationType: true,
	}
)

func method(recv starlark.HasAttrs, name string) starlark.Value {
	m, err := recv.Attr(name)
	if err != nil {
		panic(err)
	}
	return m
}

func typeOf(fn starlark.Value, args ...starlark.Value) reflect.Type {
	v, err := starlark.Call(&starlark.Thread{}, fn, args, nil)
	if err != nil {
		panic(err)
	}
	return reflect.TypeOf(v)
}

// An edge says how the walk reached a value from its parent, for the path
// in error messages, and whether the parent's Freeze method follows it.
type edge struct {
	kind   edgeKind
	freeze bool           // the parent's Freeze recurses along this edge
	i      int            // element index
	name   string         // field, member, global or variable name
	key    starlark.Value // dict key
	owner  starlark.Value // the function, builtin or Crosser that holds it
}

type edgeKind uint8

const (
	edgeRoot edgeKind = iota
	edgeList
	edgeTuple
	edgeDictKey
	edgeDictValue
	edgeSet
	edgeField
	edgeMember
	edgeReceiver
	edgeGlobal
	edgePredeclared
	edgeFree
	edgeDefault
	edgeHeld
)

func (e edge) String() string {
	switch e.kind {
	case edgeList:
		return fmt.Sprintf("in list element %d", e.i)
	case edgeTuple:
		return fmt.Sprintf("in tuple element %d", e.i)
	case edgeDictKey:
		return "in dict key " + shortRepr(e.key)
	case edgeDictValue:
		return "in dict value for key " + shortRepr(e.key)
	case edgeSet:
		return "in set element " + shortRepr(e.key)
	case edgeField:
		return "in struct field " + e.name
	case edgeMember:
		return "in module member " + e.name
	case edgeReceiver:
		return "in the receiver of " + e.owner.(*starlark.Builtin).Name()
	case edgeGlobal:
		return fmt.Sprintf("in global %s read by %s", e.name, describeFunc(e.owner.(*starlark.Function)))
	case edgePredeclared:
		return fmt.Sprintf("in %s read by %s", e.name, describeFunc(e.owner.(*starlark.Function)))
	case edgeFree:
		return fmt.Sprintf("in variable %s captured by %s", e.name, describeFunc(e.owner.(*starlark.Function)))
	case edgeDefault:
		return fmt.Sprintf("in the default of parameter %s of %s", e.name, describeFunc(e.owner.(*starlark.Function)))
	case edgeHeld:
		return "in " + e.owner.String()
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

// describeFunc names a function and where it was defined.
func describeFunc(fn *starlark.Function) string {
	return fmt.Sprintf("function %s (%s)", fn.Name(), fn.Position())
}

// A frame is a value the walk has entered and not yet left: the path from
// a root to it is the walk's stack.
type frame struct {
	v    starlark.Value
	kids []kid // for values other than lists and tuples
	next int32 // the next child: in kids, or the next element of a list or tuple

	low        int32 // the lowest frame that a freeze edge from its subtree leads back to
	chainStart int32 // the lowest frame from which freeze edges alone lead here
	guarded    int32 // the highest frame in [chainStart, here] whose Freeze marks it first, or -1
	loopy      bool  // its Freeze would reach a cycle that no frozen mark ends
	settled    bool  // a function or Crosser to remember as safe, if everything is
	serial     uint64
}

// how returns how the walk reached the value of frame i from frame i-1:
// the child frame i-1 is on.
func (w *walker) how(i int) edge {
	if i == 0 {
		return edge{kind: edgeRoot}
	}
	return w.path.at(i - 1).current()
}

// current returns the edge to the child f took last.
func (f *frame) current() edge {
	i := int(f.next) - 1
	switch f.v.(type) {
	case *starlark.List:
		return edge{kind: edgeList, freeze: true, i: i}
	case starlark.Tuple:
		return edge{kind: edgeTuple, freeze: true, i: i}
	}
	return f.kids[i].how
}

type kid struct {
	v   starlark.Value
	how edge
}

// A walker is one walk over the values of one crossing (or freeze).
type walker struct {
	c          *Checker
	th         *starlark.Thread
	op         string
	background bool
	freezeOnly bool

	path      stack
	seen      map[any]int // frame index while on the path; stateDone or stateDeferred after
	deferred  map[any]deferral
	loopy     map[any]bool
	serial    uint64
	unsettled bool             // some function reached may still change
	settled   []starlark.Value // functions and Crossers to remember as safe if none may
}

const (
	stateDone     = -1
	stateDeferred = -2
)

// A deferral is a value left for the first value of its cycle to freeze.
type deferral struct {
	low    int32
	serial uint64 // of the frame at low
}

// walk walks the values reachable from root.
func (w *walker) walk(root starlark.Value) error {
	if w.seen == nil {
		w.seen = make(map[any]int)
	}
	if err := w.enter(root, edge{kind: edgeRoot}); err != nil {
		return err
	}
	for w.path.len() > 0 {
		top := w.path.len() - 1
		v, how, ok := w.nextKid(w.path.at(top))
		if !ok {
			if err := w.leave(); err != nil {
				return err
			}
			continue
		}
		if err := w.enter(v, how); err != nil {
			return err
		}
	}
	return nil
}

// nextKid returns the next child of f.
func (w *walker) nextKid(f *frame) (starlark.Value, edge, bool) {
	switch v := f.v.(type) {
	case *starlark.List:
		if int(f.next) < v.Len() {
			f.next++
			return v.Index(int(f.next) - 1), f.current(), true
		}
		return nil, edge{}, false
	case starlark.Tuple:
		if int(f.next) < len(v) {
			f.next++
			return v[f.next-1], f.current(), true
		}
		return nil, edge{}, false
	}
	if int(f.next) < len(f.kids) {
		f.next++
		k := f.kids[f.next-1]
		return k.v, k.how, true
	}
	return nil, edge{}, false
}

// identity returns the key of v in seen, or nil if v needs no tracking
// (it cannot be part of a cycle, or is too small to matter).
func identity(v starlark.Value) any {
	switch v := v.(type) {
	case starlark.Tuple:
		if len(v) == 0 {
			return nil
		}
		return tupleKey{&v[0], len(v)}
	case *starlark.List, *starlark.Dict, *starlark.Set, *starlark.Function, *starlark.Builtin,
		*starlarkstruct.Struct, *starlarkstruct.Module:
		return v
	}
	if cacheable(v) {
		return v
	}
	return nil
}

type tupleKey struct {
	first *starlark.Value
	n     int
}

// enter visits v, reached by how from the top of the path: it checks v,
// and pushes a frame for it if it holds values to walk.
func (w *walker) enter(v starlark.Value, how edge) error {
	parent := w.path.len() - 1
	switch v.(type) {
	case nil, starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
		return nil
	}
	if immutableBuiltTins[reflect.TypeOf(v)] {
		return nil
	}
	key := identity(v)
	if key != nil {
		if state, ok := w.seen[key]; ok {
			w.revisit(key, state, how)
			return nil
		}
	}
	f := frame{v: v, low: int32(w.path.len()), guarded: -1}
	f.chainStart = f.low
	if how.freeze && parent >= 0 {
		f.chainStart = w.path.at(parent).chainStart
		f.guarded = w.path.at(parent).guarded
	}
	switch v := v.(type) {
	case *starlark.List, starlark.Tuple:
		// children by index, in nextKid
	case *starlark.Dict:
		for _, kv := range v.Items() {
			f.kids = append(f.kids,
				kid{kv[0], edge{kind: edgeDictKey, freeze: true, key: kv[0]}},
				kid{kv[1], edge{kind: edgeDictValue, freeze: true, key: kv[0]}})
		}
	case *starlark.Set:
		for x := range v.Elements() {
			f.kids = append(f.kids, kid{x, edge{kind: edgeSet, freeze: true, key: x}})
		}
	case *starlarkstruct.Struct:
		for _, name := range v.AttrNames() {
			x, _ := v.Attr(name)
			f.kids = append(f.kids, kid{x, edge{kind: edgeField, freeze: true, name: name}})
		}
	case *starlarkstruct.Module:
		for _, name := range sortedNames(v.Members) {
			f.kids = append(f.kids, kid{v.Members[name], edge{kind: edgeMember, freeze: true, name: name}})
		}
	case *starlark.Builtin:
		if r := v.Receiver(); r != nil {
			f.kids = append(f.kids, kid{r, edge{kind: edgeReceiver, freeze: true, owner: v}})
		}
	case *starlark.Function:
		if !w.freezeOnly {
			if _, ok := w.c.ready.Load(v); ok {
				return nil
			}
		}
		kids, settled, err := w.function(v)
		if err != nil {
			return w.refuse(how, err.Error())
		}
		f.kids, f.settled = kids, settled
		if !settled {
			w.unsettled = true
		}
	case Crosser:
		if w.freezeOnly {
			v.Freeze()
			return nil
		}
		if key != nil {
			if _, ok := w.c.ready.Load(v); ok {
				return nil
			}
		}
		err := v.Cross(func(x starlark.Value) error {
			f.kids = append(f.kids, kid{x, edge{kind: edgeHeld, owner: v}})
			return nil
		})
		if err != nil {
			return w.refuse(how, err.Error())
		}
		f.settled = key != nil
	default:
		if w.freezeOnly {
			v.Freeze()
			return nil
		}
		return w.refuse(how, fmt.Sprintf("cannot pass a %s to another thread: its Go type %T does not say how it crosses; use it on the thread that made it (a host type crosses if it implements starlarkmod.Crosser)", v.Type(), v))
	}
	switch v.(type) {
	case *starlark.List, *starlark.Dict, *starlark.Set, *starlarkstruct.Struct:
		f.guarded = int32(w.path.len())
	}
	w.serial++
	f.serial = w.serial
	if key != nil {
		w.seen[key] = w.path.len()
	}
	w.path.push(f)
	return nil
}

// revisit handles an edge to a value the walk has entered before.
func (w *walker) revisit(key any, state int, how edge) {
	if w.path.len() == 0 || !how.freeze {
		return // its Freeze does not lead there: nothing to learn
	}
	cur := w.path.at(w.path.len() - 1)
	target := int32(state)
	switch state {
	case stateDone:
		if w.loopy[key] {
			cur.loopy = true
		}
		return
	case stateDeferred:
		d := w.deferred[key]
		if int(d.low) >= w.path.len() || w.path.at(int(d.low)).serial != d.serial {
			return // its cycle has been frozen since
		}
		target = d.low
	}
	// A freeze edge back to a value still being walked: a cycle, unless the
	// chain between them is broken by an edge that Freeze does not follow
	// (then that value's own Freeze does not come back here).
	if target < cur.chainStart {
		return
	}
	if target < cur.low {
		cur.low = target
	}
	if cur.guarded < target {
		cur.loopy = true // no frozen mark on the cycle: Freeze would not return
	}
}

// leave finishes the top frame: its children are done.
func (w *walker) leave() error {
	top := w.path.len() - 1
	f := w.path.at(top)
	key := identity(f.v)
	var parent *frame
	if top > 0 && w.how(top).freeze {
		parent = w.path.at(top - 1)
	}
	guarded := int(f.guarded) == top
	if f.loopy && guarded && !w.freezeOnly {
		return w.refuseAt(top, fmt.Sprintf("cannot freeze this %s: it holds a function that refers to itself through the variables it captures (a nested def that calls itself), which go.starlark.net cannot freeze; pass that function on its own, or define it at top level", f.v.Type()))
	}
	switch {
	case int(f.low) < top:
		// Part of a cycle entered further down the path: the first value of
		// the cycle freezes it all, once the whole cycle has been walked.
		if w.deferred == nil {
			w.deferred = map[any]deferral{}
		}
		if key != nil {
			w.deferred[key] = deferral{low: f.low, serial: w.path.at(int(f.low)).serial}
			w.seen[key] = stateDeferred
		}
		if parent != nil {
			parent.low = min(parent.low, f.low)
		}
	default:
		if key != nil {
			w.seen[key] = stateDone
		}
		if !f.loopy {
			w.freeze(f)
			if w.c != nil && w.c.OnFreeze != nil && !w.freezeOnly && top <= 4 {
				w.noteFreeze(f.v, top)
			}
		}
	}
	if f.loopy {
		if w.loopy == nil {
			w.loopy = map[any]bool{}
		}
		if key != nil {
			w.loopy[key] = true
		}
		if parent != nil {
			parent.loopy = true
		}
	}
	if f.settled && !f.loopy {
		// (A loopy function is walked every time: the walk must see the
		// cycle to refuse a container that holds it.)
		w.settled = append(w.settled, f.v)
	}
	w.path.truncate(top)
	return nil
}

// freeze freezes the value of f, whose children are all frozen, except
// for values of a cycle that f is the first of.
func (w *walker) freeze(f *frame) {
	switch v := f.v.(type) {
	case *starlark.List, *starlark.Dict, *starlark.Set, *starlarkstruct.Struct, Crosser:
		v.Freeze()
	case *starlark.Function:
		// Function.Freeze has no frozen mark (a function that captures
		// itself would recurse forever): freeze what it holds instead.
		for i := 0; i < v.NumParams(); i++ {
			if d := v.ParamDefault(i); d != nil {
				freezeDeferred(w, d)
			}
		}
		for i := 0; i < v.NumFreeVars(); i++ {
			if _, x := v.FreeVar(i); x != nil {
				freezeDeferred(w, x)
			}
		}
	case starlark.Tuple:
		for _, x := range v {
			freezeDeferred(w, x)
		}
	case *starlark.Builtin:
		if r := v.Receiver(); r != nil {
			freezeDeferred(w, r)
		}
	case *starlarkstruct.Module:
		for _, x := range v.Members {
			freezeDeferred(w, x)
		}
	}
}

// noteFreeze reports to OnFreeze that the value v of frame top was frozen.
func (w *walker) noteFreeze(v starlark.Value, top int) {
	switch v.(type) {
	case *starlark.List, *starlark.Dict, *starlark.Set:
	default:
		return
	}
	w.c.OnFreeze(w.th, w.op, v, func() (name, how string) {
		var b strings.Builder
		for i := 1; i <= top; i++ {
			e := w.how(i)
			if i > 1 {
				b.WriteString(", ")
			}
			b.WriteString(strings.TrimPrefix(e.String(), "in "))
			switch e.kind {
			case edgeGlobal, edgeFree, edgeDefault:
				name = e.name
			default:
				name = ""
			}
		}
		return name, b.String()
	})
}

// freezeDeferred freezes x, a child of a value being frozen, if the walk
// left it for that value (a cycle). Other children are frozen already.
func freezeDeferred(w *walker, x starlark.Value) {
	if k := identity(x); k != nil && w.seen[k] == stateDeferred && !w.loopy[k] {
		x.Freeze()
	}
}

// refuse returns the refusal of the value reached by how from the top of
// the path.
func (w *walker) refuse(how edge, msg string) error {
	var b strings.Builder
	b.WriteString(w.op)
	b.WriteString(": ")
	for i := 1; i < w.path.len(); i++ {
		b.WriteString(w.how(i).String())
		b.WriteString(": ")
	}
	if w.path.len() > 0 && how.kind != edgeRoot {
		b.WriteString(how.String())
		b.WriteString(": ")
	}
	b.WriteString(msg)
	return errors.New(b.String())
}

// refuseAt returns the refusal of the value of frame i.
func (w *walker) refuseAt(i int, msg string) error {
	how := w.how(i)
	w.path.truncate(i)
	return w.refuse(how, msg)
}

func sortedNames(d starlark.StringDict) []string {
	names := make([]string, 0, len(d))
	for name := range d {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// function checks a Starlark function: the globals it reads and the
// variables it captures, with the background rule if it applies. It
// returns the values to walk: defaults and captured values first (what
// Function.Freeze would reach), then globals and predeclared values.
func (w *walker) function(fn *starlark.Function) (kids []kid, settled bool, err error) {
	for i := 0; i < fn.NumParams(); i++ {
		if d := fn.ParamDefault(i); d != nil {
			name, _ := fn.Param(i)
			kids = append(kids, kid{d, edge{kind: edgeDefault, freeze: true, name: name, owner: fn}})
		}
	}
	if w.freezeOnly {
		for i := 0; i < fn.NumFreeVars(); i++ {
			if b, v := fn.FreeVar(i); v != nil {
				kids = append(kids, kid{v, edge{kind: edgeFree, freeze: true, name: b.Name, owner: fn}})
			}
		}
		return kids, false, nil
	}
	settled = true
	prog := fn.Module().Program()
	var info *Info
	if x, ok := w.c.progs.Load(prog); ok {
		info = x.(*Info)
	}
	var fi *funcInfo
	if info != nil {
		fi = info.funcs[posOf(fn.Position())]
	}
	globals := fn.Globals()
	var later []kid
	if fi == nil {
		// Not compiled by this checker's programs: walk everything it
		// could read.
		settled = false
		for _, name := range sortedNames(globals) {
			later = append(later, kid{globals[name], edge{kind: edgeGlobal, name: name, owner: fn}})
		}
	} else {
		for _, name := range fi.globals {
			b := info.globals[name]
			v, bound := globals[name]
			if bound && b.decoratedEnd.IsValid() && !w.decorated(prog, b.decoratedEnd) {
				bound = false // its decorators have not run yet
			}
			if !bound || b.rebind {
				settled = false
			}
			if w.background {
				if !bound {
					return nil, false, fmt.Errorf("%s reads global %s, which is not defined yet; define %s before starting work that runs in the background",
						describeFunc(fn), name, name)
				}
				if b.rebind {
					return nil, false, fmt.Errorf("%s reads global %s, which the script may assign again (%s); work running in the background must not read a global that can change: assign it once, outside loops, or pass the value as an argument",
						describeFunc(fn), name, b.where)
				}
			}
			if bound {
				later = append(later, kid{v, edge{kind: edgeGlobal, name: name, owner: fn}})
			}
		}
		pre := fn.Module().Predeclared()
		for _, name := range fi.predeclared {
			later = append(later, kid{pre[name], edge{kind: edgePredeclared, name: name, owner: fn}})
		}
	}
	for i := 0; i < fn.NumFreeVars(); i++ {
		b, v := fn.FreeVar(i)
		var fb binding
		if fi != nil && i < len(fi.free) {
			fb = fi.free[i]
		}
		if v == nil || fb.rebind {
			settled = false
		}
		if w.background && fi != nil {
			if fb.rebind {
				return nil, false, fmt.Errorf("%s uses variable %s of its enclosing function, which assigns it again (%s); pass the value as an argument or assign it only once, outside loops",
					describeFunc(fn), b.Name, fb.where)
			}
			if v == nil {
				return nil, false, fmt.Errorf("%s uses variable %s of its enclosing function before it is assigned; assign %s before starting the work",
					describeFunc(fn), b.Name, b.Name)
			}
		}
		if v != nil {
			kids = append(kids, kid{v, edge{kind: edgeFree, freeze: true, name: b.Name, owner: fn}})
		}
	}
	return append(kids, later...), settled, nil
}

// decorated reports whether the decorators of a def in prog that ends at
// end have run: prog's top level has returned, or the calling thread is
// running it and has gone past the def.
func (w *walker) decorated(prog *starlark.Program, end syntax.Position) bool {
	if _, ok := w.c.finished.Load(prog); ok {
		return true
	}
	if w.th == nil {
		return false
	}
	for i := w.th.CallStackDepth() - 1; i >= 0; i-- {
		fr := w.th.DebugFrame(i)
		fn, ok := fr.Callable().(*starlark.Function)
		if !ok || fn.Name() != "<toplevel>" || fn.Module().Program() != prog {
			continue
		}
		pos := fr.Position()
		return pos.Line > end.Line || pos.Line == end.Line && pos.Col > end.Col
	}
	return false
}

// A stack holds the frames of the walk in blocks, so that it grows
// without copying (a walk three million deep holds three million frames).
type stack struct {
	blocks [][]frame
	n      int
}

const blockSize = 1024

func (s *stack) len() int { return s.n }

func (s *stack) at(i int) *frame { return &s.blocks[i/blockSize][i%blockSize] }

func (s *stack) push(f frame) {
	if s.n/blockSize == len(s.blocks) {
		s.blocks = append(s.blocks, make([]frame, blockSize))
	}
	*s.at(s.n) = f
	s.n++
}

// truncate pops frames until n are left.
func (s *stack) truncate(n int) {
	for s.n > n {
		s.n--
		*s.at(s.n) = frame{}
	}
}
