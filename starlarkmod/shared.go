package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Shared state, after Python's multiprocessing.Manager. Every container is
// guarded by its own mutex, and every value stored in one is prepared for
// crossing (deep-frozen), so any number of threads may use it at once:
//
//	Manager()                    a manager; its methods make containers
//	Manager().Namespace()        an object with settable attributes: ns.x = 1
//	Manager().dict()             a dict: d[k] = v, d[k], get, keys, values, items, pop, setdefault, update, len, in
//	Manager().list()             a list: append, extend, insert, pop, index, l[i], l[i] = v, len, in, iteration (a snapshot)
//	Manager().Lock(), Lock()     a lock: acquire(timeout=None), release(), locked(), call(fn, *args, **kwargs)
//
// Each single operation is atomic; a read-modify-write such as ns.n += 1 is
// not (as in Python): hold a Lock around it, or use lock.call.

type manager struct{ in *Interpreter }

var managerMethods = map[string]*starlark.Builtin{
	"Namespace": starlark.NewBuiltin("Manager.Namespace", newNamespace),
	"dict":      starlark.NewBuiltin("Manager.dict", newSharedDict),
	"list":      starlark.NewBuiltin("Manager.list", newSharedList),
	"Lock":      starlark.NewBuiltin("Manager.Lock", newLock),
}

func newManager(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return manager{in: interpOf(th)}, nil
}

// interpOf returns the interpreter running th, or nil.
func interpOf(th *starlark.Thread) *Interpreter {
	if ts := stateOf(th); ts != nil {
		return ts.in
	}
	return nil
}

// storer prepares values stored into a shared container. Whoever reads
// them later may be background work, so the background rule applies.
type storer struct{ in *Interpreter }

func (s storer) store(op string, vs ...starlark.Value) error {
	return s.in.checker().Cross(nil, op, true, vs...)
}

func (s storer) storeArgs(op string, args starlark.Tuple, kwargs []starlark.Tuple) error {
	if err := s.store(op, args...); err != nil {
		return err
	}
	for _, kv := range kwargs {
		if err := s.store(op, kv[1]); err != nil {
			return err
		}
	}
	return nil
}

func (manager) String() string        { return "<Manager>" }
func (manager) Type() string          { return "Manager" }
func (manager) Freeze()               {}
func (manager) Truth() starlark.Bool  { return true }
func (manager) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: Manager") }
func (m manager) Attr(name string) (starlark.Value, error) {
	return methodAttr(m, managerMethods, name)
}
func (manager) AttrNames() []string { return sortedKeys(managerMethods) }

// namespace is Manager().Namespace(): attributes set and read by any thread.
type namespace struct {
	storer
	mu    sync.Mutex
	attrs map[string]starlark.Value
}

var _ starlark.HasSetField = (*namespace)(nil)

func newNamespace(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf("%s: got %d positional arguments, want keyword arguments only", b.Name(), len(args))
	}
	ns := &namespace{storer: storer{interpOf(th)}, attrs: map[string]starlark.Value{}}
	if err := ns.storeArgs(b.Name(), nil, kwargs); err != nil {
		return nil, err
	}
	for _, kv := range kwargs {
		ns.attrs[string(kv[0].(starlark.String))] = kv[1]
	}
	return ns, nil
}

func (ns *namespace) String() string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var b strings.Builder
	b.WriteString("Namespace(")
	for i, k := range sortedKeys(ns.attrs) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%s", k, ns.attrs[k])
	}
	b.WriteString(")")
	return b.String()
}
func (ns *namespace) Type() string          { return "Namespace" }
func (ns *namespace) Freeze()               {}
func (ns *namespace) Truth() starlark.Bool  { return true }
func (ns *namespace) Hash() (uint32, error) { return hashPointer(ns), nil }

func (ns *namespace) Attr(name string) (starlark.Value, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if v, ok := ns.attrs[name]; ok {
		return v, nil
	}
	return nil, starlark.NoSuchAttrError(fmt.Sprintf("Namespace has no attribute %q (set it first: ns.%s = ...)", name, name))
}

func (ns *namespace) AttrNames() []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return sortedKeys(ns.attrs)
}

// SetField implements ns.name = v; v is deep-frozen first.
func (ns *namespace) SetField(name string, v starlark.Value) error {
	if err := ns.store("Namespace."+name, v); err != nil {
		return err
	}
	ns.mu.Lock()
	ns.attrs[name] = v
	ns.mu.Unlock()
	return nil
}

// guarded delegates the methods of a Starlark container that only it can
// reach to that container, under its mutex, after preparing the arguments
// (which may be stored).
type guarded struct {
	storer
	mu    sync.Mutex
	inner starlark.HasAttrs
	kind  string
}

func (g *guarded) method(recv starlark.Value, name string) (starlark.Value, error) {
	g.mu.Lock()
	m, err := g.inner.Attr(name)
	g.mu.Unlock()
	if m == nil || err != nil {
		return nil, err
	}
	op := g.kind + "." + name
	return starlark.NewBuiltin(op, func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := g.storeArgs(op, args, kwargs); err != nil {
			return nil, err
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		v, err := starlark.Call(th, m, args, kwargs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, unwrapEval(err))
		}
		return v, nil
	}).BindReceiver(recv), nil
}

func (g *guarded) names() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inner.AttrNames()
}

// unwrapEval strips the EvalError a nested starlark.Call adds, keeping its
// message, so the builtin's own name leads.
func unwrapEval(err error) error {
	if ee, ok := err.(*starlark.EvalError); ok {
		if u := ee.Unwrap(); u != nil {
			return u
		}
		return errors.New(ee.Msg)
	}
	return err
}

// sharedDict is Manager().dict().
type sharedDict struct {
	guarded
	d *starlark.Dict
}

var (
	_ starlark.HasSetKey = (*sharedDict)(nil)
	_ starlark.Sequence  = (*sharedDict)(nil)
)

func newSharedDict(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	d := new(starlark.Dict)
	sd := &sharedDict{guarded: guarded{storer: storer{interpOf(th)}, inner: d, kind: "dict"}, d: d}
	if len(args)+len(kwargs) > 0 {
		upd, _ := sd.method(sd, "update")
		if _, err := starlark.Call(th, upd, args, kwargs); err != nil {
			return nil, err
		}
	}
	return sd, nil
}

func (sd *sharedDict) String() string {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return "Manager.dict(" + sd.d.String() + ")"
}
func (sd *sharedDict) Type() string          { return "Manager.dict" }
func (sd *sharedDict) Freeze()               {}
func (sd *sharedDict) Truth() starlark.Bool  { return sd.Len() > 0 }
func (sd *sharedDict) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: Manager.dict") }
func (sd *sharedDict) Attr(name string) (starlark.Value, error) {
	return sd.method(sd, name)
}
func (sd *sharedDict) AttrNames() []string { return sd.names() }

func (sd *sharedDict) Len() int {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return sd.d.Len()
}

func (sd *sharedDict) Get(k starlark.Value) (starlark.Value, bool, error) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return sd.d.Get(k)
}

func (sd *sharedDict) SetKey(k, v starlark.Value) error {
	if err := sd.store("dict.setkey", k, v); err != nil {
		return err
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return sd.d.SetKey(k, v)
}

// Iterate iterates over a snapshot of the keys.
func (sd *sharedDict) Iterate() starlark.Iterator {
	sd.mu.Lock()
	keys := starlark.Tuple(sd.d.Keys())
	sd.mu.Unlock()
	return keys.Iterate()
}

// sharedList is Manager().list().
type sharedList struct {
	guarded
	l *starlark.List
}

var (
	_ starlark.HasSetIndex = (*sharedList)(nil)
	_ starlark.HasBinary   = (*sharedList)(nil)
)

func newSharedList(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var init starlark.Iterable
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0, &init); err != nil {
		return nil, err
	}
	var elems []starlark.Value
	if init != nil {
		it := init.Iterate()
		defer it.Done()
		var x starlark.Value
		for it.Next(&x) {
			elems = append(elems, x)
		}
	}
	l := starlark.NewList(elems)
	sl := &sharedList{guarded: guarded{storer: storer{interpOf(th)}, inner: l, kind: "list"}, l: l}
	if err := sl.store(b.Name(), elems...); err != nil {
		return nil, err
	}
	return sl, nil
}

func (sl *sharedList) String() string {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return "Manager.list(" + sl.l.String() + ")"
}
func (sl *sharedList) Type() string          { return "Manager.list" }
func (sl *sharedList) Freeze()               {}
func (sl *sharedList) Truth() starlark.Bool  { return sl.Len() > 0 }
func (sl *sharedList) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: Manager.list") }
func (sl *sharedList) Attr(name string) (starlark.Value, error) {
	return sl.method(sl, name)
}
func (sl *sharedList) AttrNames() []string { return sl.names() }

func (sl *sharedList) Len() int {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.l.Len()
}

func (sl *sharedList) Index(i int) starlark.Value {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if i < 0 || i >= sl.l.Len() {
		return starlark.None // the list shrank between Len and Index
	}
	return sl.l.Index(i)
}

func (sl *sharedList) SetIndex(i int, v starlark.Value) error {
	if err := sl.store("list.setindex", v); err != nil {
		return err
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if i < 0 || i >= sl.l.Len() {
		return fmt.Errorf("list index %d out of range [0:%d]", i, sl.l.Len())
	}
	return sl.l.SetIndex(i, v)
}

func (sl *sharedList) snapshot() starlark.Tuple {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	t := make(starlark.Tuple, sl.l.Len())
	for i := range t {
		t[i] = sl.l.Index(i)
	}
	return t
}

// Iterate iterates over a snapshot of the elements.
func (sl *sharedList) Iterate() starlark.Iterator { return sl.snapshot().Iterate() }

// Binary implements x in l.
func (sl *sharedList) Binary(op syntax.Token, x starlark.Value, side starlark.Side) (starlark.Value, error) {
	if op != syntax.IN || side != starlark.Right {
		return nil, nil
	}
	for _, e := range sl.snapshot() {
		if eq, err := starlark.Equal(e, x); err != nil || eq {
			return starlark.Bool(eq), err
		}
	}
	return starlark.False, nil
}

// lock is Lock() and Manager().Lock().
type lock struct{ ch chan struct{} }

var lockMethods = map[string]*starlark.Builtin{
	"acquire": starlark.NewBuiltin("Lock.acquire", lockAcquire),
	"release": starlark.NewBuiltin("Lock.release", lockRelease),
	"locked":  starlark.NewBuiltin("Lock.locked", lockLocked),
	"call":    starlark.NewBuiltin("Lock.call", lockCall),
}

func newLock(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return &lock{ch: make(chan struct{}, 1)}, nil
}

func (l *lock) String() string {
	if len(l.ch) > 0 {
		return "<Lock locked>"
	}
	return "<Lock unlocked>"
}
func (l *lock) Type() string          { return "Lock" }
func (l *lock) Freeze()               {}
func (l *lock) Truth() starlark.Bool  { return true }
func (l *lock) Hash() (uint32, error) { return hashPointer(l), nil }
func (l *lock) Attr(name string) (starlark.Value, error) {
	return methodAttr(l, lockMethods, name)
}
func (l *lock) AttrNames() []string { return sortedKeys(lockMethods) }

// acquire takes the lock, waiting at most d (0: forever) and no longer than
// th's context allows. It reports whether it got the lock.
func (l *lock) acquire(th *starlark.Thread, d time.Duration) (bool, error) {
	select {
	case l.ch <- struct{}{}:
		return true, nil
	default:
	}
	unblock := block(th)
	defer unblock()
	ctx := contextOf(th)
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case l.ch <- struct{}{}:
		return true, nil
	case <-timeout:
		return false, nil
	case <-ctx.Done():
		return false, context.Cause(ctx)
	}
}

func lockAcquire(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var t timeoutArg
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "timeout?", &t); err != nil {
		return nil, err
	}
	ok, err := b.Receiver().(*lock).acquire(th, t.d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.Bool(ok), nil
}

func lockRelease(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	select {
	case <-b.Receiver().(*lock).ch:
		return starlark.None, nil
	default:
		return nil, fmt.Errorf("%s: release unlocked lock", b.Name())
	}
}

func lockLocked(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return starlark.Bool(len(b.Receiver().(*lock).ch) > 0), nil
}

// lockCall runs fn(*args, **kwargs) on the calling thread while holding the
// lock, and releases it however fn ends. It replaces Python's "with lock:".
func lockCall(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("%s: missing function argument", b.Name())
	}
	l := b.Receiver().(*lock)
	if _, err := l.acquire(th, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	defer func() { <-l.ch }()
	return starlark.Call(th, args[0], args[1:], kwargs)
}

// Crossing (see crossing.go). Manager containers and Locks are safe for
// concurrent use, and what a container holds was readied to cross when it
// was stored: they cross holding nothing more to walk.

func (manager) Cross(func(starlark.Value) error) error        { return nil }
func (ns *namespace) Cross(func(starlark.Value) error) error  { return nil }
func (sd *sharedDict) Cross(func(starlark.Value) error) error { return nil }
func (sl *sharedList) Cross(func(starlark.Value) error) error { return nil }
func (l *lock) Cross(func(starlark.Value) error) error        { return nil }

var (
	_ Crosser = manager{}
	_ Crosser = (*namespace)(nil)
	_ Crosser = (*sharedDict)(nil)
	_ Crosser = (*sharedList)(nil)
	_ Crosser = (*lock)(nil)
)
