package portable

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/semisync/semisync/starlarkmod/internal/crossing"
)

// A fileEntry is one row of an encoding's file table.
type fileEntry struct {
	sum   [32]byte
	hash  string
	name  string
	flags byte
	text  []byte // inline text, or nil
}

type decoder struct {
	data []byte
	off  int
	mode Mode
	env  *Env
	th   *starlark.Thread

	files  []*fileEntry
	objs   []starlark.Value       // by id; nil while being built
	envs   []starlark.Value       // values decoded into function environments: frozen at the end
	fixups []fixup                // environment entries that refer to values still being built
	refs   map[starlark.Value]ref // how each builtin and module met was named
	depth  int
}

var noEnv Env // read only

var errTruncated = errors.New("portable: truncated or corrupt encoding")

func newDecoder(data []byte, kind byte, env *Env) (*decoder, error) {
	if env == nil {
		env = &noEnv
	}
	d := &decoder{data: data, env: env}
	if len(data) < len(magic)+3 || string(data[:len(magic)]) != magic {
		return nil, errors.New("portable: not a portable encoding")
	}
	d.off = len(magic)
	if v := data[d.off]; v != version {
		return nil, fmt.Errorf("portable: encoding version %d, want %d", v, version)
	}
	if k := data[d.off+1]; k != kind {
		return nil, fmt.Errorf("portable: encoding of kind %q, want %q", k, kind)
	}
	d.mode = Mode(data[d.off+2])
	if d.mode > BySource {
		return nil, fmt.Errorf("portable: unknown mode %d", d.mode)
	}
	d.off += 3
	n, err := d.count()
	if err != nil {
		return nil, err
	}
	for range n {
		var fe fileEntry
		if d.off+32 > len(d.data) {
			return nil, errTruncated
		}
		copy(fe.sum[:], d.data[d.off:])
		d.off += 32
		fe.hash = hex.EncodeToString(fe.sum[:])
		if fe.name, err = d.str(); err != nil {
			return nil, err
		}
		if fe.flags, err = d.byte(); err != nil {
			return nil, err
		}
		inline, err := d.byte()
		if err != nil {
			return nil, err
		}
		if inline == 1 {
			s, err := d.str()
			if err != nil {
				return nil, err
			}
			fe.text = []byte(s)
			if sha256.Sum256(fe.text) != fe.sum {
				return nil, fmt.Errorf("portable: the inline text of %s does not match its hash", fe.name)
			}
		}
		d.files = append(d.files, &fe)
	}
	return d, nil
}

func (d *decoder) end() error {
	if d.off != len(d.data) {
		return fmt.Errorf("portable: %d bytes after the encoding", len(d.data)-d.off)
	}
	return nil
}

// A fixup is an entry of a function's environment that refers to a value
// being built when the entry was decoded (a Portable host value that holds
// the function, as fib = future(fib) does): environments are read only
// when the function runs, so the entry is filled in at the end.
type fixup struct {
	env starlark.StringDict
	key string
	id  int
}

// freeze freezes v and every value decoded into a function's environment.
func (d *decoder) freeze(v starlark.Value) {
	if len(d.envs) == 0 && scalar(v) {
		return // most arguments and results: nothing to freeze, no walk
	}
	crossing.Freeze(append(d.envs, v)...)
	d.envs = nil
}

// scalar reports whether v is immutable all through without a walk.
func scalar(v starlark.Value) bool {
	switch v := v.(type) {
	case starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
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

// resolveFixups fills in the entries left by fixups; call it before
// freeze, once the whole encoding is decoded.
// finish checks that the data ends here and resolves the references to
// values built after the environments that hold them.
func (d *decoder) finish() error {
	if err := d.end(); err != nil {
		return err
	}
	return d.resolveFixups()
}

func (d *decoder) resolveFixups() error {
	for _, f := range d.fixups {
		v := d.objs[f.id]
		if v == nil {
			return errors.New("portable: a function's environment refers to a value that was never built")
		}
		f.env[f.key] = v
		d.envs = append(d.envs, v)
	}
	d.fixups = nil
	return nil
}

func (d *decoder) thread() *starlark.Thread {
	if d.env.Thread != nil {
		return d.env.Thread
	}
	if d.th == nil {
		d.th = &starlark.Thread{Name: "portable.decode"}
	}
	return d.th
}

func (d *decoder) fileText(fe *fileEntry) ([]byte, error) {
	if fe.text != nil {
		return fe.text, nil
	}
	if d.env.Files == nil {
		return nil, fmt.Errorf("portable: the text of %s (%s) is not available", fe.name, fe.hash)
	}
	text, err := d.env.Files(fe.hash)
	if err != nil {
		return nil, fmt.Errorf("portable: the text of %s: %w", fe.name, err)
	}
	if len(text) > maxFileBytes || sha256.Sum256(text) != fe.sum {
		return nil, fmt.Errorf("portable: the text of %s does not match its hash %s", fe.name, fe.hash)
	}
	fe.text = text
	return text, nil
}

// Low-level readers.

func (d *decoder) byte() (byte, error) {
	if d.off >= len(d.data) {
		return 0, errTruncated
	}
	b := d.data[d.off]
	d.off++
	return b, nil
}

func (d *decoder) uvarint() (uint64, error) {
	x, n := binary.Uvarint(d.data[d.off:])
	if n <= 0 {
		return 0, errTruncated
	}
	d.off += n
	return x, nil
}

func (d *decoder) varint() (int64, error) {
	x, n := binary.Varint(d.data[d.off:])
	if n <= 0 {
		return 0, errTruncated
	}
	d.off += n
	return x, nil
}

// count reads a number of items that each take at least one byte.
func (d *decoder) count() (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(d.data)-d.off) {
		return 0, errTruncated
	}
	return int(n), nil
}

func (d *decoder) str() (string, error) {
	n, err := d.count()
	if err != nil {
		return "", err
	}
	s := string(d.data[d.off : d.off+n])
	d.off += n
	return s, nil
}

func (d *decoder) reserve() int {
	d.objs = append(d.objs, nil)
	return len(d.objs) - 1
}

func (d *decoder) value() (starlark.Value, error) {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		return nil, fmt.Errorf("portable: value nested more than %d deep", maxDepth)
	}
	tag, err := d.byte()
	if err != nil {
		return nil, err
	}
	switch tag {
	case tagNone:
		return starlark.None, nil
	case tagFalse:
		return starlark.False, nil
	case tagTrue:
		return starlark.True, nil
	case tagInt:
		x, err := d.varint()
		if err != nil {
			return nil, err
		}
		return starlark.MakeInt64(x), nil
	case tagBigInt:
		sign, err := d.byte()
		if err != nil {
			return nil, err
		}
		mag, err := d.str()
		if err != nil {
			return nil, err
		}
		b := new(big.Int).SetBytes([]byte(mag))
		if sign == 1 {
			b.Neg(b)
		}
		return starlark.MakeBigInt(b), nil
	case tagFloat:
		if d.off+8 > len(d.data) {
			return nil, errTruncated
		}
		bits := binary.LittleEndian.Uint64(d.data[d.off:])
		d.off += 8
		return starlark.Float(math.Float64frombits(bits)), nil
	case tagString:
		s, err := d.str()
		return starlark.String(s), err
	case tagBytes:
		s, err := d.str()
		return starlark.Bytes(s), err
	case tagTuple:
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		t := make(starlark.Tuple, n)
		for i := range t {
			if t[i], err = d.value(); err != nil {
				return nil, err
			}
		}
		return t, nil
	case tagList:
		id := d.reserve()
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		l := starlark.NewList(make([]starlark.Value, 0, n))
		d.objs[id] = l
		for range n {
			x, err := d.value()
			if err != nil {
				return nil, err
			}
			l.Append(x) //nolint:errcheck // not frozen yet
		}
		return l, nil
	case tagDict:
		id := d.reserve()
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		m := starlark.NewDict(n)
		d.objs[id] = m
		for range n {
			k, err := d.value()
			if err != nil {
				return nil, err
			}
			v, err := d.value()
			if err != nil {
				return nil, err
			}
			if err := m.SetKey(k, v); err != nil {
				return nil, fmt.Errorf("portable: %v", err)
			}
		}
		return m, nil
	case tagSet:
		id := d.reserve()
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		s := starlark.NewSet(n)
		d.objs[id] = s
		for range n {
			x, err := d.value()
			if err != nil {
				return nil, err
			}
			if err := s.Insert(x); err != nil {
				return nil, fmt.Errorf("portable: %v", err)
			}
		}
		return s, nil
	case tagRef:
		id, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		if id >= uint64(len(d.objs)) {
			return nil, errors.New("portable: reference to an unknown value")
		}
		if d.objs[id] == nil {
			return nil, errors.New("portable: cannot rebuild a cycle through a struct, a host value or a function's defaults")
		}
		return d.objs[id], nil
	case tagStruct:
		id := d.reserve()
		ctor, err := d.value()
		if err != nil {
			return nil, err
		}
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		fields := make(starlark.StringDict, n)
		for range n {
			name, err := d.str()
			if err != nil {
				return nil, err
			}
			if fields[name], err = d.value(); err != nil {
				return nil, err
			}
		}
		s := starlarkstruct.FromStringDict(ctor, fields)
		d.objs[id] = s
		return s, nil
	case tagModule:
		name, err := d.str()
		if err != nil {
			return nil, err
		}
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		members := make(starlark.StringDict, n)
		for range n {
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			if members[k], err = d.value(); err != nil {
				return nil, err
			}
		}
		return &starlarkstruct.Module{Name: name, Members: members}, nil
	case tagFunc:
		return d.function()
	case tagUniverse:
		name, err := d.str()
		if err != nil {
			return nil, err
		}
		v, ok := starlark.Universe[name]
		if !ok {
			return nil, fmt.Errorf("portable: no builtin %s in the universe", name)
		}
		d.named(v, ref{tag: tagUniverse, name: name})
		return v, nil
	case tagPredeclared:
		name, err := d.str()
		if err != nil {
			return nil, err
		}
		v, ok := d.env.Predeclared[name]
		if !ok || v == nil {
			return nil, fmt.Errorf("portable: no predeclared %s here", name)
		}
		d.named(v, ref{tag: tagPredeclared, name: name})
		return v, nil
	case tagLoad:
		module, err := d.str()
		if err != nil {
			return nil, err
		}
		member, err := d.str()
		if err != nil {
			return nil, err
		}
		if d.env.Load == nil {
			return nil, fmt.Errorf("portable: cannot load %s.%s here", module, member)
		}
		m, err := d.env.Load(module)
		if err != nil {
			return nil, fmt.Errorf("portable: loading %s: %w", module, err)
		}
		v, ok := m[member]
		if !ok || v == nil {
			return nil, fmt.Errorf("portable: module %s has no member %s here", module, member)
		}
		d.named(v, ref{tag: tagLoad, name: module, member: member})
		return v, nil
	case tagAttr:
		recv, err := d.value()
		if err != nil {
			return nil, err
		}
		name, err := d.str()
		if err != nil {
			return nil, err
		}
		ha, ok := recv.(starlark.HasAttrs)
		if !ok {
			return nil, fmt.Errorf("portable: %s has no attribute %s", recv.Type(), name)
		}
		v, err := ha.Attr(name)
		if err != nil || v == nil {
			return nil, fmt.Errorf("portable: %s has no attribute %s", recv.Type(), name)
		}
		if r, ok := d.refs[recv]; ok && r.attr == "" {
			r.attr = name
			d.named(v, r)
		}
		return v, nil
	case tagPortable:
		id := d.reserve()
		ctor, err := d.str()
		if err != nil {
			return nil, err
		}
		args, err := d.value()
		if err != nil {
			return nil, err
		}
		t, ok := args.(starlark.Tuple)
		if !ok {
			return nil, errors.New("portable: host value arguments are not a tuple")
		}
		ctors := d.env.Predeclared
		if d.env.Constructors != nil {
			ctors = d.env.Constructors
		}
		c, ok := ctors[ctor].(starlark.Callable)
		if !ok {
			return nil, fmt.Errorf("portable: no predeclared %s here to rebuild a host value", ctor)
		}
		d.freeze(t)
		v, err := starlark.Call(d.thread(), c, t, nil)
		if err != nil {
			return nil, fmt.Errorf("portable: rebuilding a host value with %s: %v", ctor, err)
		}
		d.objs[id] = v
		return v, nil
	case tagTime:
		sec, err := d.varint()
		if err != nil {
			return nil, err
		}
		nsec, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		if nsec >= 1e9 {
			return nil, errTruncated
		}
		locName, err := d.str()
		if err != nil {
			return nil, err
		}
		loc, err := time.LoadLocation(locName)
		if err != nil {
			return nil, fmt.Errorf("portable: time zone %q: %v", locName, err)
		}
		return startime.Time(time.Unix(sec, int64(nsec)).In(loc)), nil
	case tagDuration:
		x, err := d.varint()
		return startime.Duration(x), err
	case tagRange:
		var args starlark.Tuple
		for range 3 {
			x, err := d.varint()
			if err != nil {
				return nil, err
			}
			args = append(args, starlark.MakeInt64(x))
		}
		v, err := starlark.Call(d.thread(), starlark.Universe["range"], args, nil)
		if err != nil {
			return nil, fmt.Errorf("portable: %v", err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("portable: unknown tag %d", tag)
}

// names returns the map of how builtins and modules were named, shared by
// the programs of the functions this decoding builds.
func (d *decoder) names() map[starlark.Value]ref {
	if d.refs == nil {
		d.refs = map[starlark.Value]ref{}
	}
	return d.refs
}

// named records that v was decoded from r.
func (d *decoder) named(v starlark.Value, r ref) {
	switch v.(type) {
	case *starlark.Builtin, *starlarkstruct.Module:
		if _, dup := d.names()[v]; !dup {
			d.refs[v] = r
		}
	}
}

// pendingRef reports whether the next value is a reference to a value
// still being built, and consumes it if so.
func (d *decoder) pendingRef() (int, bool) {
	if d.off >= len(d.data) || d.data[d.off] != tagRef {
		return 0, false
	}
	id, n := binary.Uvarint(d.data[d.off+1:])
	if n <= 0 || id >= uint64(len(d.objs)) || d.objs[id] != nil {
		return 0, false
	}
	d.off += 1 + n
	return int(id), true
}

// function decodes a function (see encoder.function for the layout).
func (d *decoder) function() (starlark.Value, error) {
	id := d.reserve()
	if d.mode != ByFile {
		return nil, errors.New("portable: a function encoded BySource is a key; only ByFile encodings can be decoded")
	}
	var decl funcDecl
	fi, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if fi >= uint64(len(d.files)) {
		return nil, errors.New("portable: reference to an unknown file")
	}
	decl.file = d.files[fi]
	line, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	col, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if line > math.MaxInt32 || col > math.MaxInt32 {
		return nil, errTruncated
	}
	decl.line, decl.col = int32(line), int32(col)
	if decl.flags, err = d.byte(); err != nil {
		return nil, err
	}
	n, err := d.count()
	if err != nil {
		return nil, err
	}
	defaults := make([]binding, n)
	for i := range defaults {
		if defaults[i].name, err = d.str(); err != nil {
			return nil, err
		}
		if defaults[i].v, err = d.value(); err != nil {
			return nil, err
		}
		d.envs = append(d.envs, defaults[i].v)
	}
	var names, unbound []string
	var bound []string // names whose values follow, in order
	{
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		for range n {
			name, err := d.str()
			if err != nil {
				return nil, err
			}
			b, err := d.byte()
			if err != nil {
				return nil, err
			}
			names = append(names, name)
			if b == 0 {
				unbound = append(unbound, name)
			} else {
				bound = append(bound, name)
			}
		}
	}
	env := starlark.StringDict{}
	fn, err := d.build(&decl, defaults, names, unbound, env)
	if err != nil {
		return nil, err
	}
	d.objs[id] = fn
	self := fn.Name()
	for _, name := range bound {
		if id, ok := d.pendingRef(); ok {
			key := name
			if name == self && decl.flags&flagSelfOther != 0 {
				key = name + selfSuffix
			}
			d.fixups = append(d.fixups, fixup{env, key, id})
			continue
		}
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		key := name
		if name == self && self != "lambda" {
			if decl.flags&flagSelfOther == 0 {
				continue // the def's own binding: the function itself
			}
			key = name + selfSuffix
		}
		env[key] = v
		d.envs = append(d.envs, v)
	}
	return fn, nil
}
