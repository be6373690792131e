package starlarkmod

import (
	"fmt"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// Python habits that Starlark lacks, met halfway (DESIGN.md section 3):
// sum, and load("json", "json") binding the module itself. The parse-error
// hints are in hints.go, the explanation of frozen values in frozen.go.

// sum(iterable, start=0) adds up the items of iterable after start, as
// Python's sum does (with +, so lists and tuples concatenate). Like
// Python's, it refuses strings and names the idiom to use instead.
var sumBuiltin = starlark.NewBuiltin("sum", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var iterable starlark.Iterable
	var start starlark.Value = starlark.MakeInt(0)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "iterable", &iterable, "start?", &start); err != nil {
		return nil, err
	}
	if _, ok := start.(starlark.String); ok {
		return nil, fmt.Errorf(`%s: can't sum strings (use "".join(seq) instead)`, b.Name())
	}
	it := iterable.Iterate()
	defer it.Done()
	acc := start
	var x starlark.Value
	for i := 0; it.Next(&x); i++ {
		if _, ok := x.(starlark.String); ok && i == 0 {
			if _, isInt := acc.(starlark.Int); isInt {
				return nil, fmt.Errorf(`%s: can't sum strings (use "".join(seq) instead)`, b.Name())
			}
		}
		v, err := starlark.Binary(syntax.PLUS, acc, x)
		if err != nil {
			return nil, fmt.Errorf("%s: item %d: %w", b.Name(), i, err)
		}
		acc = v
	}
	if err := contextOf(th).Err(); err != nil {
		// An iterator that stopped because the thread was cancelled (a
		// stream) ends the loop as if it had ended: report it instead.
		return nil, fmt.Errorf("%s: %w", b.Name(), scriptCause(err))
	}
	return acc, nil
})

// selfModules are the built-in modules that load("m", "m") binds as a
// whole, so json.encode(x) reads like Python's.
var selfModules = []string{"json", "math", "time", "random"}

// bindModuleSelves adds to each of selfModules in mods a member of the
// module's own name: the module as a value, so json.encode(x) and
// math.floor(x) read like Python. Where the module already has a member
// of its name (time.time, random.random), the value is both: calling it
// calls that member (random() as before, time(year=...)), its attributes
// are the module's (random.randint, time.now). Members maps are copied
// first: some are go.starlark.net's own globals.
func bindModuleSelves(mods map[string]starlark.StringDict) {
	for _, name := range selfModules {
		m, ok := mods[name]
		if !ok {
			continue
		}
		members := make(starlark.StringDict, len(m)+1)
		for k, v := range m {
			members[k] = v
		}
		var self starlark.Value
		if fn, ok := m[name].(starlark.Callable); ok {
			self = &callableModule{name: name, fn: fn, members: m}
		} else {
			mod := &starlarkstruct.Module{Name: name, Members: m}
			self = mod
		}
		self.Freeze()
		members[name] = self
		mods[name] = members
	}
}

// A callableModule is a module that is also its namesake function:
// load("random", "random") binds it, random() draws a float and
// random.randint(1, 6) an int, as with Python's import random (almost).
type callableModule struct {
	name    string
	fn      starlark.Callable
	members starlark.StringDict
}

var (
	_ starlark.Callable = (*callableModule)(nil)
	_ starlark.HasAttrs = (*callableModule)(nil)
	_ Crosser           = (*callableModule)(nil)
)

func (m *callableModule) String() string        { return fmt.Sprintf("<module %q>", m.name) }
func (m *callableModule) Type() string          { return "module" }
func (m *callableModule) Freeze()               { m.members.Freeze() }
func (m *callableModule) Truth() starlark.Bool  { return true }
func (m *callableModule) Hash() (uint32, error) { return starlark.String(m.name).Hash() }
func (m *callableModule) Name() string          { return m.fn.Name() }
func (m *callableModule) AttrNames() []string   { return m.members.Keys() }
func (m *callableModule) Attr(name string) (starlark.Value, error) {
	return m.members[name], nil
}
func (m *callableModule) CallInternal(th *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return starlark.Call(th, m.fn, args, kwargs)
}

// Cross lets tasks use the module: its members are builtins, frozen.
func (m *callableModule) Cross(yield func(starlark.Value) error) error {
	for _, k := range m.members.Keys() {
		if err := yield(m.members[k]); err != nil {
			return err
		}
	}
	return nil
}
