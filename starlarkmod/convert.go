package starlarkmod

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"

	"go.starlark.net/starlark"
)

// Converting between Go and Starlark values. No module among the ones this
// project may use does it (go.starlark.net itself leaves it to the host;
// qri-io/starlib's util pulls in a dozen modules), and the rules are
// short, so they are here.

// ToGo converts a Starlark value to a plain Go value:
//
//	None              nil
//	bool              bool
//	int               int64, or *big.Int if it does not fit
//	float             float64
//	string            string
//	bytes             []byte
//	list, tuple       []any
//	dict              map[string]any if every key is a string, else map[any]any
//	set               []any, in the set's order
//
// Elements are converted in turn; a dict key must convert to a comparable
// Go value (a tuple key does not). Any other value (a function, a
// future, a host value) is an error naming its type and where it is
// nested. Nesting is limited to 1000 levels, and a value that contains
// itself is an error.
func ToGo(v starlark.Value) (any, error) {
	return toGo(v, 0, map[starlark.Value]bool{})
}

const maxConvertDepth = 1000

func toGo(v starlark.Value, depth int, open map[starlark.Value]bool) (any, error) {
	if depth > maxConvertDepth {
		return nil, fmt.Errorf("value nested more than %d levels deep", maxConvertDepth)
	}
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(v), nil
	case starlark.Int:
		if n, ok := v.Int64(); ok {
			return n, nil
		}
		return v.BigInt(), nil
	case starlark.Float:
		return float64(v), nil
	case starlark.String:
		return string(v), nil
	case starlark.Bytes:
		return []byte(v), nil
	case starlark.Tuple:
		return seqToGo(v, len(v), "tuple", depth, open)
	case *starlark.List:
		if open[v] {
			return nil, fmt.Errorf("a list that contains itself")
		}
		open[v] = true
		defer delete(open, v)
		return seqToGo(v, v.Len(), "list", depth, open)
	case *starlark.Set:
		out := make([]any, 0, v.Len())
		it := v.Iterate()
		defer it.Done()
		var x starlark.Value
		for it.Next(&x) {
			g, err := toGo(x, depth+1, open)
			if err != nil {
				return nil, fmt.Errorf("in set element %s: %w", x, err)
			}
			out = append(out, g)
		}
		return out, nil
	case *starlark.Dict:
		if open[v] {
			return nil, fmt.Errorf("a dict that contains itself")
		}
		open[v] = true
		defer delete(open, v)
		items := v.Items()
		allStrings := true
		for _, kv := range items {
			if _, ok := kv[0].(starlark.String); !ok {
				allStrings = false
				break
			}
		}
		if allStrings {
			out := make(map[string]any, len(items))
			for _, kv := range items {
				g, err := toGo(kv[1], depth+1, open)
				if err != nil {
					return nil, fmt.Errorf("in dict value for key %s: %w", kv[0], err)
				}
				out[string(kv[0].(starlark.String))] = g
			}
			return out, nil
		}
		out := make(map[any]any, len(items))
		for _, kv := range items {
			k, err := toGo(kv[0], depth+1, open)
			if err != nil {
				return nil, fmt.Errorf("in dict key %s: %w", kv[0], err)
			}
			if k != nil && !reflect.TypeOf(k).Comparable() {
				return nil, fmt.Errorf("in dict key %s: a %s key has no Go map key form", kv[0], kv[0].Type())
			}
			if b, ok := k.(*big.Int); ok {
				k = b.String() // *big.Int compares by pointer: key it by its digits
			}
			g, err := toGo(kv[1], depth+1, open)
			if err != nil {
				return nil, fmt.Errorf("in dict value for key %s: %w", kv[0], err)
			}
			out[k] = g
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot convert a %s to a Go value", v.Type())
}

func seqToGo(seq starlark.Indexable, n int, kind string, depth int, open map[starlark.Value]bool) ([]any, error) {
	out := make([]any, n)
	for i := range n {
		g, err := toGo(seq.Index(i), depth+1, open)
		if err != nil {
			return nil, fmt.Errorf("in %s element %d: %w", kind, i, err)
		}
		out[i] = g
	}
	return out, nil
}

// FromGo converts a Go value to a Starlark value, the inverse of [ToGo]:
//
//	nil                              None
//	bool                             bool
//	int, int8..int64, uint..uint64   int
//	*big.Int                         int
//	float32, float64                 float
//	string                           string
//	[]byte                           bytes
//	slices and arrays                list
//	maps with struct{} values        set
//	other maps                       dict (in sorted key order if the keys sort)
//	starlark.Value                   itself
//
// Elements convert in turn; map keys must convert to hashable values.
// Any other Go type (a struct, a pointer, a func, a channel) is an error
// naming it. The result is not frozen.
func FromGo(x any) (starlark.Value, error) {
	return fromGo(reflect.ValueOf(x), 0)
}

var (
	valueType  = reflect.TypeFor[starlark.Value]()
	bigIntType = reflect.TypeFor[*big.Int]()
	bytesType  = reflect.TypeFor[[]byte]()
)

func fromGo(rv reflect.Value, depth int) (starlark.Value, error) {
	if depth > maxConvertDepth {
		return nil, fmt.Errorf("value nested more than %d levels deep", maxConvertDepth)
	}
	if !rv.IsValid() {
		return starlark.None, nil
	}
	if rv.Type().Implements(valueType) {
		if rv.Kind() == reflect.Interface || rv.Kind() == reflect.Pointer {
			if rv.IsNil() {
				return starlark.None, nil
			}
		}
		return rv.Interface().(starlark.Value), nil
	}
	switch rv.Type() {
	case bigIntType:
		if rv.IsNil() {
			return starlark.None, nil
		}
		return starlark.MakeBigInt(rv.Interface().(*big.Int)), nil
	case bytesType:
		return starlark.Bytes(rv.Bytes()), nil
	}
	switch rv.Kind() {
	case reflect.Interface:
		if rv.IsNil() {
			return starlark.None, nil
		}
		return fromGo(rv.Elem(), depth)
	case reflect.Bool:
		return starlark.Bool(rv.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return starlark.MakeInt64(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return starlark.MakeUint64(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return starlark.Float(rv.Float()), nil
	case reflect.String:
		return starlark.String(rv.String()), nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return starlark.NewList(nil), nil
		}
		elems := make([]starlark.Value, rv.Len())
		for i := range elems {
			v, err := fromGo(rv.Index(i), depth+1)
			if err != nil {
				return nil, fmt.Errorf("in element %d: %w", i, err)
			}
			elems[i] = v
		}
		return starlark.NewList(elems), nil
	case reflect.Map:
		keys := rv.MapKeys()
		sortKeys(keys)
		if rv.Type().Elem() == reflect.TypeFor[struct{}]() {
			set := starlark.NewSet(len(keys))
			for _, k := range keys {
				sk, err := fromGo(k, depth+1)
				if err != nil {
					return nil, fmt.Errorf("in set element %v: %w", k, err)
				}
				if err := set.Insert(sk); err != nil {
					return nil, fmt.Errorf("in set element %v: %w", k, err)
				}
			}
			return set, nil
		}
		d := starlark.NewDict(len(keys))
		for _, k := range keys {
			sk, err := fromGo(k, depth+1)
			if err != nil {
				return nil, fmt.Errorf("in map key %v: %w", k, err)
			}
			sv, err := fromGo(rv.MapIndex(k), depth+1)
			if err != nil {
				return nil, fmt.Errorf("in map value for key %v: %w", k, err)
			}
			if err := d.SetKey(sk, sv); err != nil {
				return nil, fmt.Errorf("in map key %v: %w", k, err)
			}
		}
		return d, nil
	}
	return nil, fmt.Errorf("cannot convert a Go %s to a Starlark value", rv.Type())
}

// sortKeys sorts map keys of a kind that sorts (numbers, strings), so a
// converted dict has a deterministic order; other keys stay in Go's order.
func sortKeys(keys []reflect.Value) {
	if len(keys) < 2 {
		return
	}
	less := func(a, b reflect.Value) (bool, bool) {
		if a.Kind() == reflect.Interface {
			a = a.Elem()
		}
		if b.Kind() == reflect.Interface {
			b = b.Elem()
		}
		if !a.IsValid() || !b.IsValid() || a.Kind() != b.Kind() {
			return false, false
		}
		switch a.Kind() {
		case reflect.String:
			return a.String() < b.String(), true
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return a.Int() < b.Int(), true
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			return a.Uint() < b.Uint(), true
		case reflect.Float32, reflect.Float64:
			fa, fb := a.Float(), b.Float()
			return fa < fb || (math.IsNaN(fb) && !math.IsNaN(fa)), true
		}
		return false, false
	}
	for i := 1; i < len(keys); i++ {
		if _, ok := less(keys[0], keys[i]); !ok {
			return
		}
	}
	sort.SliceStable(keys, func(i, j int) bool { l, _ := less(keys[i], keys[j]); return l })
}
