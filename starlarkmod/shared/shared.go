// Package shared is the multiprocessing module of semisync scripts:
// shared state, after Python's multiprocessing.Manager. Every container is
// guarded by its own mutex, and every value stored in one is prepared for
// crossing (deep-frozen), so any number of threads may use it at once:
//
//	Manager()                    a manager; its methods make containers
//	Manager().Namespace()        an object with settable attributes: ns.x = 1
//	Manager().dict()             a dict: d[k] = v, d[k], get, keys, values, items, pop, popitem, setdefault, update, clear, len, in, iteration (over a snapshot of the keys)
//	Manager().list()             a list: append, extend, insert, pop, remove, index, count, clear, l[i], l[i] = v, len, in, iteration (over a snapshot)
//	Manager().Lock(), Lock()     a lock: acquire(timeout=None), release(), locked(), call(fn, *args, **kwargs)
//
// Each single operation is atomic; a read-modify-write such as ns.n += 1 is
// not (as in Python): hold a Lock around it, or use lock.call. Containers
// compare by identity (==), cannot be dict keys, may hold one another and
// themselves (l.extend(l), l.append(l)), and json.encode encodes a dict as
// an object, a list as an array and a namespace as an object.
//
// A value stored in a container crosses to whichever thread reads it, so it
// is readied like every value that crosses (deep-frozen and checked; see
// starlarkmod.Crosser) before the container's lock is taken, and no lock
// is ever held while calling out (iterating an argument, formatting a
// value): l.extend(l) and two containers extended into each other from two
// tasks cannot deadlock. A wait for a Lock goes through the engine: it
// stops when the thread's context ends (Ctrl-C) and, in sequential mode,
// lets the holder run.
package shared

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"

	"go.starlark.net/starlarkstruct"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/builtin"
	"github.com/semisync/semisync/starlarkmod/internal/crossing"
)

// Module is the multiprocessing module: load("multiprocessing", "Manager",
// "Lock"). Both are also predeclared in semisync scripts.
var Module = &starlarkstruct.Module{
	Name: "multiprocessing",
	Members: starlark.StringDict{
		"Manager": starlark.NewBuiltin("Manager", newManager),
		"Lock":    starlark.NewBuiltin("Lock", newLock),
	},
}

type manager struct{}

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
	return manager{}, nil
}

// storer prepares values stored into a shared container. Whoever reads
// them later may be background work, so the background rule applies.
type storer struct {
	cross func(op string, vs ...starlark.Value) error // of the thread that made the container
}

func (s storer) store(op string, vs ...starlark.Value) error { return s.cross(op, vs...) }

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
	return builtin.MethodAttr(m, managerMethods, name)
}
func (manager) AttrNames() []string { return builtin.SortedKeys(managerMethods) }

// The containers below follow one rule (DESIGN, section 2, rule 14): no
// lock is held while calling out. A method unpacks its arguments, iterates
// any iterable argument (which may run script code, as a @generator stream
// does, or take another container's lock, as a Manager list's snapshot
// does) and prepares the values it will store, all before it takes its own
// lock; under the lock it does only plain operations on its own Go data.
// Those operations may hash and compare stored values (dict keys, list.index,
// x in l): stored values are deep-frozen core values or values whose type
// says how they cross, whose Hash and comparisons run no script code, and
// Manager containers themselves compare by identity and refuse to be
// hashed, so no other container's lock is ever taken under this one.
// str() formats from a snapshot, outside the lock (see formatter).

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
	ns := &namespace{storer: storer{builtin.CrosserOf(th)}, attrs: map[string]starlark.Value{}}
	if err := ns.storeArgs(b.Name(), nil, kwargs); err != nil {
		return nil, err
	}
	for _, kv := range kwargs {
		ns.attrs[string(kv[0].(starlark.String))] = kv[1]
	}
	return ns, nil
}

// snapshot returns the attributes as (name, value) pairs sorted by name.
func (ns *namespace) snapshot() []starlark.Tuple {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	items := make([]starlark.Tuple, 0, len(ns.attrs))
	for _, k := range builtin.SortedKeys(ns.attrs) {
		items = append(items, starlark.Tuple{starlark.String(k), ns.attrs[k]})
	}
	return items
}

func (ns *namespace) String() string        { return formatValue(ns) }
func (ns *namespace) Type() string          { return "Namespace" }
func (ns *namespace) Freeze()               {}
func (ns *namespace) Truth() starlark.Bool  { return true }
func (ns *namespace) Hash() (uint32, error) { return builtin.HashPointer(ns), nil }

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
	return builtin.SortedKeys(ns.attrs)
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

// collect iterates x on the calling thread, holding no lock, and returns
// its elements. A stream's failure is returned as an error rather than left
// to cancel the thread, so that a failed extend stores nothing.
func collect(x starlark.Iterable) ([]starlark.Value, error) {
	it := x.Iterate()
	defer it.Done()
	eit, _ := it.(builtin.ErrIterator)
	var elems []starlark.Value
	var v starlark.Value
	for {
		var ok bool
		var err error
		if eit != nil {
			ok, err = eit.NextErr(&v)
		} else {
			ok = it.Next(&v)
		}
		if err != nil {
			return nil, err
		}
		if !ok {
			return elems, nil
		}
		elems = append(elems, v)
	}
}

// sharedList is Manager().list().
type sharedList struct {
	storer
	mu    sync.Mutex
	elems []starlark.Value // each prepared (deep-frozen) before it is stored
}

var (
	_ starlark.Sequence  = (*sharedList)(nil)
	_ starlark.Container = (*sharedList)(nil)
	// l[i] and l[i] = v go through Get and SetKey, not Indexable and
	// HasSetIndex: Starlark's index operator checks Mapping first, and the
	// Indexable path calls Len and then Index, two lock acquisitions
	// between which another thread may shrink the list. Get resolves a
	// negative index and checks the bounds under one lock.
	_ starlark.HasSetKey = (*sharedList)(nil)
)

var listMethods = map[string]*starlark.Builtin{
	"append": starlark.NewBuiltin("list.append", listAppend),
	"clear":  starlark.NewBuiltin("list.clear", listClear),
	"count":  starlark.NewBuiltin("list.count", listCount),
	"extend": starlark.NewBuiltin("list.extend", listExtend),
	"index":  starlark.NewBuiltin("list.index", listIndex),
	"insert": starlark.NewBuiltin("list.insert", listInsert),
	"pop":    starlark.NewBuiltin("list.pop", listPop),
	"remove": starlark.NewBuiltin("list.remove", listRemove),
}

func newSharedList(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var init starlark.Iterable
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0, &init); err != nil {
		return nil, err
	}
	sl := &sharedList{storer: storer{builtin.CrosserOf(th)}}
	if init != nil {
		elems, err := collect(init)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		if err := sl.store(b.Name(), elems...); err != nil {
			return nil, err
		}
		sl.elems = elems
	}
	return sl, nil
}

func (sl *sharedList) String() string        { return formatValue(sl) }
func (sl *sharedList) Type() string          { return "Manager.list" }
func (sl *sharedList) Freeze()               {}
func (sl *sharedList) Truth() starlark.Bool  { return sl.Len() > 0 }
func (sl *sharedList) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: Manager.list") }
func (sl *sharedList) Attr(name string) (starlark.Value, error) {
	return builtin.MethodAttr(sl, listMethods, name)
}
func (sl *sharedList) AttrNames() []string { return builtin.SortedKeys(listMethods) }

func (sl *sharedList) Len() int {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return len(sl.elems)
}

// snapshot returns a copy of the elements.
func (sl *sharedList) snapshot() starlark.Tuple {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return slices.Clone(starlark.Tuple(sl.elems))
}

// Iterate iterates over a snapshot of the elements.
func (sl *sharedList) Iterate() starlark.Iterator { return sl.snapshot().Iterate() }

// index resolves k, an index that may be negative, against the list's
// current length; sl.mu must be held.
func (sl *sharedList) index(k starlark.Value) (int, error) {
	i, err := starlark.AsInt32(k)
	if err != nil {
		return 0, fmt.Errorf("%s index: %w", sl.Type(), err)
	}
	n := len(sl.elems)
	j := i
	if j < 0 {
		j += n
	}
	if j < 0 || j >= n {
		if n == 0 {
			return 0, fmt.Errorf("index %d out of range: empty %s", i, sl.Type())
		}
		return 0, fmt.Errorf("%s index %d out of range [%d:%d]", sl.Type(), i, -n, n-1)
	}
	return j, nil
}

// Get implements l[i].
func (sl *sharedList) Get(k starlark.Value) (starlark.Value, bool, error) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	i, err := sl.index(k)
	if err != nil {
		return nil, false, err
	}
	return sl.elems[i], true, nil
}

// SetKey implements l[i] = v; v is deep-frozen first.
func (sl *sharedList) SetKey(k, v starlark.Value) error {
	if err := sl.store("list.setindex", v); err != nil {
		return err
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	i, err := sl.index(k)
	if err != nil {
		return err
	}
	sl.elems[i] = v
	return nil
}

// find returns the index of the first element in [start, end) equal to x,
// or -1; sl.mu must be held.
func (sl *sharedList) find(x starlark.Value, start, end int) (int, error) {
	for i := start; i < end && i < len(sl.elems); i++ {
		if eq, err := starlark.Equal(sl.elems[i], x); err != nil {
			return 0, err
		} else if eq {
			return i, nil
		}
	}
	return -1, nil
}

// Has implements x in l.
func (sl *sharedList) Has(x starlark.Value) (bool, error) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	i, err := sl.find(x, 0, len(sl.elems))
	return i >= 0, err
}

func listAppend(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &x); err != nil {
		return nil, err
	}
	sl := b.Receiver().(*sharedList)
	if err := sl.store(b.Name(), x); err != nil {
		return nil, err
	}
	sl.mu.Lock()
	sl.elems = append(sl.elems, x)
	sl.mu.Unlock()
	return starlark.None, nil
}

func listClear(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	sl := b.Receiver().(*sharedList)
	sl.mu.Lock()
	sl.elems = nil
	sl.mu.Unlock()
	return starlark.None, nil
}

func listCount(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &x); err != nil {
		return nil, err
	}
	sl := b.Receiver().(*sharedList)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	n := 0
	for _, e := range sl.elems {
		eq, err := starlark.Equal(e, x)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		if eq {
			n++
		}
	}
	return starlark.MakeInt(n), nil
}

// listExtend appends the elements of any iterable, including the list
// itself (l.extend(l) doubles it) or a @generator stream, which is consumed
// before the list is locked.
func listExtend(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var src starlark.Iterable
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &src); err != nil {
		return nil, err
	}
	elems, err := collect(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	sl := b.Receiver().(*sharedList)
	if err := sl.store(b.Name(), elems...); err != nil {
		return nil, err
	}
	sl.mu.Lock()
	sl.elems = append(sl.elems, elems...)
	sl.mu.Unlock()
	return starlark.None, nil
}

// listIndex is list.index(x, start=0, end=len): the first position of x.
func listIndex(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var x, start, end starlark.Value = nil, starlark.None, starlark.None
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &x, &start, &end); err != nil {
		return nil, err
	}
	sl := b.Receiver().(*sharedList)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	n := len(sl.elems)
	lo, hi := 0, n
	for _, bound := range []struct {
		v   starlark.Value
		dst *int
	}{{start, &lo}, {end, &hi}} {
		if bound.v == starlark.None {
			continue
		}
		i, err := starlark.AsInt32(bound.v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		if i < 0 {
			i += n
		}
		*bound.dst = max(0, min(i, n))
	}
	i, err := sl.find(x, lo, hi)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	case i < 0:
		return nil, fmt.Errorf("%s: %s is not in the list", b.Name(), x)
	}
	return starlark.MakeInt(i), nil
}

// listInsert is list.insert(i, x); like Python, an index past either end
// inserts at that end.
func listInsert(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var i int
	var x starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 2, &i, &x); err != nil {
		return nil, err
	}
	sl := b.Receiver().(*sharedList)
	if err := sl.store(b.Name(), x); err != nil {
		return nil, err
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	n := len(sl.elems)
	if i < 0 {
		i += n
	}
	sl.elems = slices.Insert(sl.elems, max(0, min(i, n)), x)
	return starlark.None, nil
}

func listPop(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var k starlark.Value = starlark.MakeInt(-1)
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0, &k); err != nil {
		return nil, err
	}
	sl := b.Receiver().(*sharedList)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	i, err := sl.index(k)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	v := sl.elems[i]
	sl.elems = slices.Delete(sl.elems, i, i+1)
	return v, nil
}

func listRemove(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &x); err != nil {
		return nil, err
	}
	sl := b.Receiver().(*sharedList)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	i, err := sl.find(x, 0, len(sl.elems))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	case i < 0:
		return nil, fmt.Errorf("%s: %s is not in the list", b.Name(), x)
	}
	sl.elems = slices.Delete(sl.elems, i, i+1)
	return starlark.None, nil
}

// sharedDict is Manager().dict(). Its inner dict never leaves it: callers
// get copies (keys, values, items, snapshots to iterate over).
type sharedDict struct {
	storer
	mu sync.Mutex
	d  starlark.Dict // keys and values prepared (deep-frozen) before they are stored
}

var (
	_ starlark.IterableMapping = (*sharedDict)(nil) // json.encode encodes it as an object
	_ starlark.HasSetKey       = (*sharedDict)(nil)
	_ starlark.Sequence        = (*sharedDict)(nil)
)

var dictMethods = map[string]*starlark.Builtin{
	"clear":      starlark.NewBuiltin("dict.clear", dictClear),
	"get":        starlark.NewBuiltin("dict.get", dictGet),
	"items":      starlark.NewBuiltin("dict.items", dictItems),
	"keys":       starlark.NewBuiltin("dict.keys", dictKeys),
	"pop":        starlark.NewBuiltin("dict.pop", dictPop),
	"popitem":    starlark.NewBuiltin("dict.popitem", dictPopitem),
	"setdefault": starlark.NewBuiltin("dict.setdefault", dictSetdefault),
	"update":     starlark.NewBuiltin("dict.update", dictUpdate),
	"values":     starlark.NewBuiltin("dict.values", dictValues),
}

func newSharedDict(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	sd := &sharedDict{storer: storer{builtin.CrosserOf(th)}}
	if err := sd.update(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return sd, nil
}

func (sd *sharedDict) String() string        { return formatValue(sd) }
func (sd *sharedDict) Type() string          { return "Manager.dict" }
func (sd *sharedDict) Freeze()               {}
func (sd *sharedDict) Truth() starlark.Bool  { return sd.Len() > 0 }
func (sd *sharedDict) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: Manager.dict") }
func (sd *sharedDict) Attr(name string) (starlark.Value, error) {
	return builtin.MethodAttr(sd, dictMethods, name)
}
func (sd *sharedDict) AttrNames() []string { return builtin.SortedKeys(dictMethods) }

func (sd *sharedDict) Len() int {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return sd.d.Len()
}

// Get implements d[k] and k in d.
func (sd *sharedDict) Get(k starlark.Value) (starlark.Value, bool, error) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return sd.d.Get(k)
}

// SetKey implements d[k] = v; k and v are deep-frozen first.
func (sd *sharedDict) SetKey(k, v starlark.Value) error {
	if err := sd.store("dict.setkey", k, v); err != nil {
		return err
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return sd.d.SetKey(k, v)
}

// Items returns a snapshot of the (key, value) pairs in insertion order.
func (sd *sharedDict) Items() []starlark.Tuple {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return sd.d.Items()
}

// Iterate iterates over a snapshot of the keys.
func (sd *sharedDict) Iterate() starlark.Iterator {
	sd.mu.Lock()
	keys := starlark.Tuple(sd.d.Keys())
	sd.mu.Unlock()
	return keys.Iterate()
}

// update implements dict.update and Manager().dict(): args is empty, a
// mapping or an iterable of pairs, followed by keyword arguments. All of it
// is read, and the keys hashed, into a private dict before sd is locked.
func (sd *sharedDict) update(op string, args starlark.Tuple, kwargs []starlark.Tuple) error {
	if len(args) > 1 {
		return fmt.Errorf("%s: got %d positional arguments, want at most 1", op, len(args))
	}
	var upd starlark.Dict
	if len(args) == 1 {
		switch src := args[0].(type) {
		case starlark.IterableMapping:
			for _, kv := range src.Items() {
				if err := upd.SetKey(kv[0], kv[1]); err != nil {
					return fmt.Errorf("%s: %w", op, err)
				}
			}
		case starlark.Iterable:
			pairs, err := collect(src)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			for i, pair := range pairs {
				kv, ok := pair.(starlark.Iterable)
				if !ok {
					return fmt.Errorf("%s: element %d is not iterable (got %s, want a (key, value) pair)", op, i, pair.Type())
				}
				elems, err := collect(kv)
				if err != nil {
					return fmt.Errorf("%s: element %d: %w", op, i, err)
				}
				if len(elems) != 2 {
					return fmt.Errorf("%s: element %d has length %d, want 2 (a (key, value) pair)", op, i, len(elems))
				}
				if err := upd.SetKey(elems[0], elems[1]); err != nil {
					return fmt.Errorf("%s: %w", op, err)
				}
			}
		default:
			return fmt.Errorf("%s: got %s, want a mapping or an iterable of (key, value) pairs", op, src.Type())
		}
	}
	for _, kv := range kwargs {
		if err := upd.SetKey(kv[0], kv[1]); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	items := upd.Items()
	vs := make([]starlark.Value, 0, 2*len(items))
	for _, kv := range items {
		vs = append(vs, kv[0], kv[1])
	}
	if err := sd.store(op, vs...); err != nil {
		return err
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	for _, kv := range items {
		if err := sd.d.SetKey(kv[0], kv[1]); err != nil {
			return fmt.Errorf("%s: %w", op, err) // not reached: the keys hashed above
		}
	}
	return nil
}

func dictClear(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	sd := b.Receiver().(*sharedDict)
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if err := sd.d.Clear(); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}

func dictGet(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var k, dflt starlark.Value = nil, starlark.None
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &k, &dflt); err != nil {
		return nil, err
	}
	v, found, err := b.Receiver().(*sharedDict).Get(k)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	case !found:
		return dflt, nil
	}
	return v, nil
}

func dictItems(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	items := b.Receiver().(*sharedDict).Items()
	res := make([]starlark.Value, len(items))
	for i, kv := range items {
		res[i] = kv
	}
	return starlark.NewList(res), nil
}

func dictKeys(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	sd := b.Receiver().(*sharedDict)
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return starlark.NewList(sd.d.Keys()), nil
}

func dictValues(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	sd := b.Receiver().(*sharedDict)
	sd.mu.Lock()
	defer sd.mu.Unlock()
	items := sd.d.Items()
	values := make([]starlark.Value, len(items))
	for i, kv := range items {
		values[i] = kv[1]
	}
	return starlark.NewList(values), nil
}

// dictPop is dict.pop(k[, default]): removes k and returns its value, or
// default if k is missing; without a default, a missing k is an error.
func dictPop(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var k, dflt starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &k, &dflt); err != nil {
		return nil, err
	}
	sd := b.Receiver().(*sharedDict)
	sd.mu.Lock()
	defer sd.mu.Unlock()
	v, found, err := sd.d.Delete(k)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	case found:
		return v, nil
	case dflt != nil:
		return dflt, nil
	}
	return nil, fmt.Errorf("%s: key %s not in %s", b.Name(), k, sd.Type())
}

// dictPopitem removes and returns the first (key, value) pair, as
// Starlark's dict.popitem does (Python's pops the last).
func dictPopitem(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	sd := b.Receiver().(*sharedDict)
	sd.mu.Lock()
	defer sd.mu.Unlock()
	var first starlark.Tuple
	for k, v := range sd.d.Entries() {
		first = starlark.Tuple{k, v}
		break
	}
	if first == nil {
		return nil, fmt.Errorf("%s: empty %s", b.Name(), sd.Type())
	}
	if _, _, err := sd.d.Delete(first[0]); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return first, nil
}

// dictSetdefault is dict.setdefault(k, default=None). k and default are
// prepared (frozen) before the dict is locked, even if k turns out to be
// present and default is not stored.
func dictSetdefault(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var k, dflt starlark.Value = nil, starlark.None
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &k, &dflt); err != nil {
		return nil, err
	}
	sd := b.Receiver().(*sharedDict)
	if err := sd.store(b.Name(), k, dflt); err != nil {
		return nil, err
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	v, found, err := sd.d.Get(k)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	case found:
		return v, nil
	}
	if err := sd.d.SetKey(k, dflt); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return dflt, nil
}

func dictUpdate(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := b.Receiver().(*sharedDict).update(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

// formatter formats values for str(). It must neither hold one container's
// lock while formatting another (two threads printing a and b, each stored
// in the other, would deadlock) nor recurse forever through a cycle of
// Manager containers (l.append(l); print(l)), which Starlark's own str()
// cannot see, as it calls String on values it does not know. So one walk
// formats a value and everything in it: each Manager container from its
// own snapshot, taken under its own lock alone, and every container on the
// path from the top is remembered, as Starlark's str() remembers lists and
// dicts: a container met again on its own path prints as [...] ({...} for
// a dict, Namespace(...) for a namespace). Values of other types print with
// their String method.
type formatter struct {
	out  strings.Builder
	path []starlark.Value
}

func formatValue(v starlark.Value) string {
	var f formatter
	f.value(v)
	return f.out.String()
}

func (f *formatter) value(v starlark.Value) {
	switch v := v.(type) {
	case *sharedList:
		f.nested(v, "[...]", func() { f.seq("Manager.list([", v.snapshot(), "])") })
	case *sharedDict:
		f.nested(v, "{...}", func() {
			f.out.WriteString("Manager.dict(")
			f.items(v.Items())
			f.out.WriteString(")")
		})
	case *namespace:
		f.nested(v, "Namespace(...)", func() {
			f.out.WriteString("Namespace(")
			for i, kv := range v.snapshot() {
				if i > 0 {
					f.out.WriteString(", ")
				}
				f.out.WriteString(string(kv[0].(starlark.String)))
				f.out.WriteString("=")
				f.value(kv[1])
			}
			f.out.WriteString(")")
		})
	case *starlark.List: // stored values are frozen: reading them needs no lock
		f.nested(v, "[...]", func() {
			elems := make([]starlark.Value, v.Len())
			for i := range elems {
				elems[i] = v.Index(i)
			}
			f.seq("[", elems, "]")
		})
	case starlark.Tuple:
		if len(v) == 1 {
			f.seq("(", v, ",)")
		} else {
			f.seq("(", v, ")")
		}
	case *starlark.Dict:
		f.nested(v, "{...}", func() { f.items(v.Items()) })
	case *starlark.Set:
		f.seq("set([", slices.Collect(v.Elements()), "])")
	case *starlarkstruct.Struct:
		f.nested(v, "...", func() {
			if name, ok := v.Constructor().(starlark.String); ok {
				f.out.WriteString(string(name))
			} else {
				f.out.WriteString(v.Constructor().String())
			}
			f.out.WriteString("(")
			for i, name := range v.AttrNames() {
				if i > 0 {
					f.out.WriteString(", ")
				}
				x, _ := v.Attr(name)
				f.out.WriteString(name + " = ")
				f.value(x)
			}
			f.out.WriteString(")")
		})
	default:
		f.out.WriteString(v.String())
	}
}

// nested runs write with v on the path, or writes cycle if v is on it
// already.
func (f *formatter) nested(v starlark.Value, cycle string, write func()) {
	if slices.Contains(f.path, v) {
		f.out.WriteString(cycle)
		return
	}
	f.path = append(f.path, v)
	write()
	f.path = f.path[:len(f.path)-1]
}

func (f *formatter) seq(open string, elems []starlark.Value, close string) {
	f.out.WriteString(open)
	for i, x := range elems {
		if i > 0 {
			f.out.WriteString(", ")
		}
		f.value(x)
	}
	f.out.WriteString(close)
}

func (f *formatter) items(items []starlark.Tuple) {
	f.out.WriteString("{")
	for i, kv := range items {
		if i > 0 {
			f.out.WriteString(", ")
		}
		f.value(kv[0])
		f.out.WriteString(": ")
		f.value(kv[1])
	}
	f.out.WriteString("}")
}

// lock is Lock() and Manager().Lock().
// lock is a token in a channel of capacity one: acquiring takes it,
// releasing puts it back. Taking is a receive, so a wait for the lock goes
// through engine.Recv like every other wait (it watches the context, and
// in sequential mode lets the holder run).
type lock struct{ tok chan struct{} }

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
	l := &lock{tok: make(chan struct{}, 1)}
	l.tok <- struct{}{}
	return l, nil
}

func (l *lock) String() string {
	if len(l.tok) == 0 {
		return "<Lock locked>"
	}
	return "<Lock unlocked>"
}
func (l *lock) Type() string          { return "Lock" }
func (l *lock) Freeze()               {}
func (l *lock) Truth() starlark.Bool  { return true }
func (l *lock) Hash() (uint32, error) { return builtin.HashPointer(l), nil }
func (l *lock) Attr(name string) (starlark.Value, error) {
	return builtin.MethodAttr(l, lockMethods, name)
}
func (l *lock) AttrNames() []string { return builtin.SortedKeys(lockMethods) }

// acquire takes the lock, waiting at most d (0: forever) and no longer than
// th's context allows. It reports whether it got the lock.
func (l *lock) acquire(th *starlark.Thread, d time.Duration) (bool, error) {
	_, _, err := builtin.Recv(th, l.tok, d)
	switch {
	case err == nil:
		return true, nil
	case err == engine.ErrTimeout:
		return false, nil
	}
	return false, err
}

// release puts the token back; it reports false if the lock was not held.
func (l *lock) release() bool {
	select {
	case l.tok <- struct{}{}:
		return true
	default:
		return false
	}
}

func lockAcquire(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var t builtin.Timeout
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "timeout?", &t); err != nil {
		return nil, err
	}
	ok, err := b.Receiver().(*lock).acquire(th, t.D)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.Bool(ok), nil
}

func lockRelease(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	if !b.Receiver().(*lock).release() {
		return nil, fmt.Errorf("%s: release unlocked lock", b.Name())
	}
	return starlark.None, nil
}

func lockLocked(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return starlark.Bool(len(b.Receiver().(*lock).tok) == 0), nil
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
	defer l.release()
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
	_ crossing.Crosser = manager{}
	_ crossing.Crosser = (*namespace)(nil)
	_ crossing.Crosser = (*sharedDict)(nil)
	_ crossing.Crosser = (*sharedList)(nil)
	_ crossing.Crosser = (*lock)(nil)
)
