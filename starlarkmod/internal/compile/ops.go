package compile

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"unsafe"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// The primitive operations below are go.starlark.net's (starlark/eval.go,
// BSD licence), which the VM does not export: same checks, same messages.

// getAttr implements x.name.
func getAttr(x starlark.Value, name string) (starlark.Value, error) {
	hasAttr, ok := x.(starlark.HasAttrs)
	if !ok {
		return nil, fmt.Errorf("%s has no .%s field or method", x.Type(), name)
	}
	var errmsg string
	v, err := hasAttr.Attr(name)
	if err == nil {
		if v != nil {
			return v, nil
		}
		errmsg = fmt.Sprintf("%s has no .%s field or method", x.Type(), name)
	} else if nsa, ok := err.(starlark.NoSuchAttrError); ok {
		errmsg = string(nsa)
	} else {
		return nil, err
	}
	if n := nearest(name, hasAttr.AttrNames()); n != "" {
		errmsg = fmt.Sprintf("%s (did you mean .%s?)", errmsg, n)
	}
	return nil, fmt.Errorf("%s", errmsg)
}

// setField implements x.name = y.
func setField(x starlark.Value, name string, y starlark.Value) error {
	if x, ok := x.(starlark.HasSetField); ok {
		err := x.SetField(name, y)
		if _, ok := err.(starlark.NoSuchAttrError); ok {
			if n := nearest(name, x.AttrNames()); n != "" {
				err = fmt.Errorf("%s (did you mean .%s?)", err, n)
			}
		}
		return err
	}
	return fmt.Errorf("can't assign to .%s field of %s", name, x.Type())
}

// getIndex implements x[y].
func getIndex(x, y starlark.Value) (starlark.Value, error) {
	switch x := x.(type) {
	case starlark.Mapping:
		z, found, err := x.Get(y)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("key %v not in %s", y, x.Type())
		}
		return z, nil
	case starlark.Indexable:
		n := x.Len()
		i, err := starlark.AsInt32(y)
		if err != nil {
			return nil, fmt.Errorf("%s index: %s", x.Type(), err)
		}
		origI := i
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return nil, outOfRange(origI, n, x)
		}
		return x.Index(i), nil
	}
	return nil, fmt.Errorf("unhandled index operation %s[%s]", x.Type(), y.Type())
}

func outOfRange(i, n int, x starlark.Value) error {
	if n == 0 {
		return fmt.Errorf("index %d out of range: empty %s", i, x.Type())
	}
	return fmt.Errorf("%s index %d out of range [%d:%d]", x.Type(), i, -n, n-1)
}

// setIndex implements x[y] = z.
func setIndex(x, y, z starlark.Value) error {
	switch x := x.(type) {
	case starlark.HasSetKey:
		return x.SetKey(y, z)
	case starlark.HasSetIndex:
		n := x.Len()
		i, err := starlark.AsInt32(y)
		if err != nil {
			return err
		}
		origI := i
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return outOfRange(origI, n, x)
		}
		return x.SetIndex(i, z)
	default:
		return fmt.Errorf("%s value does not support item assignment", x.Type())
	}
}

// slice implements x[lo:hi:step] (nil bounds are None).
func slice(x, lo, hi, step_ starlark.Value) (starlark.Value, error) {
	sliceable, ok := x.(starlark.Sliceable)
	if !ok {
		return nil, fmt.Errorf("invalid slice operand %s", x.Type())
	}
	n := sliceable.Len()
	step := 1
	if step_ != starlark.None {
		var err error
		step, err = starlark.AsInt32(step_)
		if err != nil {
			return nil, fmt.Errorf("invalid slice step: %s", err)
		}
		if step == 0 {
			return nil, fmt.Errorf("zero is not a valid slice step")
		}
	}
	var start, end int
	if step > 0 {
		var err error
		start, end, err = indices(lo, hi, n)
		if err != nil {
			return nil, err
		}
		if end < start {
			end = start
		}
	} else {
		start = n - 1
		if err := asIndex(lo, n, &start); err != nil {
			return nil, fmt.Errorf("invalid start index: %s", err)
		}
		if start >= n {
			start = n - 1
		}
		end = -1
		if err := asIndex(hi, n, &end); err != nil {
			return nil, fmt.Errorf("invalid end index: %s", err)
		}
		if end < -1 {
			end = -1
		}
		if start < end {
			start = end
		}
	}
	return sliceable.Slice(start, end, step), nil
}

func indices(start_, end_ starlark.Value, len int) (start, end int, err error) {
	start = 0
	if err := asIndex(start_, len, &start); err != nil {
		return 0, 0, fmt.Errorf("invalid start index: %s", err)
	}
	if start < 0 {
		start = 0
	} else if start > len {
		start = len
	}
	end = len
	if err := asIndex(end_, len, &end); err != nil {
		return 0, 0, fmt.Errorf("invalid end index: %s", err)
	}
	if end < 0 {
		end = 0
	} else if end > len {
		end = len
	}
	return start, end, nil
}

func asIndex(v starlark.Value, len int, result *int) error {
	if v != nil && v != starlark.None {
		var err error
		*result, err = starlark.AsInt32(v)
		if err != nil {
			return err
		}
		if *result < 0 {
			*result += len
		}
	}
	return nil
}

// inplaceAdd implements x += y: a list x is extended in place.
func inplaceAdd(x, y starlark.Value) (starlark.Value, error) {
	if xlist, ok := x.(*starlark.List); ok {
		if yiter, ok := y.(starlark.Iterable); ok {
			if err := checkMutableList(xlist, "apply += to"); err != nil {
				return nil, err
			}
			if ylist, ok := y.(*starlark.List); ok {
				n := ylist.Len() // l += l appends l's elements once
				for i := 0; i < n; i++ {
					xlist.Append(ylist.Index(i)) //nolint:errcheck // checked mutable above
				}
			} else {
				iter := yiter.Iterate()
				var z starlark.Value
				for iter.Next(&z) {
					xlist.Append(z) //nolint:errcheck // checked mutable above
				}
				iter.Done()
			}
			return xlist, nil
		}
	}
	return starlark.Binary(syntax.PLUS, x, y)
}

// inplacePipe implements x |= y: a dict x is updated in place.
func inplacePipe(x, y starlark.Value) (starlark.Value, error) {
	if xdict, ok := x.(*starlark.Dict); ok {
		if ydict, ok := y.(*starlark.Dict); ok {
			if err := checkMutableDict(xdict, "apply |= to"); err != nil {
				return nil, err
			}
			for _, kv := range ydict.Items() {
				xdict.SetKey(kv[0], kv[1]) //nolint:errcheck // checked mutable, keys hashable
			}
			return xdict, nil
		}
	}
	return starlark.Binary(syntax.PIPE, x, y)
}

// checkMutableDict is the dict's hashtable.checkMutable(verb), through a
// harmless probe (setting an entry to its own value, or adding and
// removing one).
func checkMutableDict(d *starlark.Dict, verb string) error {
	var err error
	if items := d.Items(); len(items) > 0 {
		err = d.SetKey(items[0][0], items[0][1])
	} else if err = d.SetKey(starlark.None, starlark.None); err == nil {
		_, _, err = d.Delete(starlark.None)
	}
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, what := range []string{"frozen hash table", "hash table during iteration"} {
		if strings.HasSuffix(msg, what) {
			return fmt.Errorf("cannot %s %s", verb, what)
		}
	}
	return err
}

// checkMutableList is List.checkMutable(verb), through a harmless probe:
// SetIndex of an element to itself (or Append then Clear on an empty list)
// fails exactly when the list is frozen or being iterated.
func checkMutableList(l *starlark.List, verb string) error {
	var err error
	if l.Len() > 0 {
		err = l.SetIndex(0, l.Index(0))
	} else if err = l.Append(starlark.None); err == nil {
		err = l.Clear()
	}
	if err == nil {
		return nil
	}
	// Re-word "cannot assign to element of frozen list" and the like.
	msg := err.Error()
	for _, what := range []string{"frozen list", "list during iteration"} {
		if strings.HasSuffix(msg, what) {
			return fmt.Errorf("cannot %s %s", verb, what)
		}
	}
	return err
}

// Fast paths. Each applies only where its result is certainly the one
// starlark.Binary or starlark.Compare would give; anything else (big
// ints, mixed types, division by zero) goes to them.

// smallMax bounds the ints of fast paths: a sum, difference or product
// of two ints in (-2^31, 2^31) cannot overflow int64. go.starlark.net
// keeps exactly the int32 range unallocated ("small"), everything else
// as *big.Int.
const smallMax = 1 << 31

// smallInt reports x's value if x is an int in [-2^31, 2^31).
func smallInt(x starlark.Value) (int64, bool) {
	if i, ok := x.(starlark.Int); ok {
		// Int is one pointer; small ints point into a reserved region.
		if d := *(*uintptr)(unsafe.Pointer(&i)) - smallBase; d < 1<<32 {
			return int64(d) + math.MinInt32, true
		}
	}
	return 0, false
}

// mkInt is starlark.MakeInt64, inline for small ints.
func mkInt(v int64) starlark.Value {
	d := uintptr(v + 1<<31)
	if d < 1<<32 {
		d += smallBase
		return *(*starlark.Int)(unsafe.Pointer(&d))
	}
	return makeInt64(v)
}

//go:noinline
func makeInt64(v int64) starlark.Value { return starlark.MakeInt64(v) } // keeps mkInt inlinable

// smallBase is the address go.starlark.net encodes math.MinInt32 as, on
// platforms where an Int is one pointer into a reserved region of 2^32
// bytes (int_posix64.go), or 0 where it is not: nothing is compiled then
// (layoutOK). Checked by comparing with MakeInt64 at both ends.
var smallBase = func() uintptr {
	t := reflect.TypeFor[starlark.Int]()
	if t.NumField() != 1 || t.Field(0).Type.Kind() != reflect.UnsafePointer {
		return 0
	}
	lo, hi := starlark.MakeInt64(math.MinInt32), starlark.MakeInt64(math.MaxInt32)
	b := *(*uintptr)(unsafe.Pointer(&lo))
	if b == 0 || *(*uintptr)(unsafe.Pointer(&hi)) != b+(1<<32-1) {
		return 0
	}
	mid := starlark.MakeInt64(12345)
	if *(*uintptr)(unsafe.Pointer(&mid)) != b+uintptr(12345-math.MinInt32) {
		return 0
	}
	return b
}()

func binary(op syntax.Token, x, y starlark.Value) (starlark.Value, error) {
	if a, ok := smallInt(x); ok {
		if b, ok := smallInt(y); ok {
			switch op {
			case syntax.PLUS:
				return mkInt(a + b), nil
			case syntax.MINUS:
				return mkInt(a - b), nil
			case syntax.STAR:
				if a > -math.MaxInt32 && a < math.MaxInt32 && b > -math.MaxInt32 && b < math.MaxInt32 {
					return mkInt(a * b), nil
				}
			case syntax.SLASHSLASH:
				if b != 0 {
					q := a / b
					if a%b != 0 && (a < 0) != (b < 0) {
						q--
					}
					return starlark.MakeInt64(q), nil
				}
			case syntax.PERCENT:
				if b != 0 {
					r := a % b
					if r != 0 && (r < 0) != (b < 0) {
						r += b
					}
					return starlark.MakeInt64(r), nil
				}
			case syntax.AMP:
				return mkInt(a & b), nil
			case syntax.PIPE:
				return mkInt(a | b), nil
			case syntax.CIRCUMFLEX:
				return mkInt(a ^ b), nil
			}
		}
	} else if a, ok := x.(starlark.Float); ok {
		if b, ok := y.(starlark.Float); ok {
			switch op {
			case syntax.PLUS:
				return a + b, nil
			case syntax.MINUS:
				return a - b, nil
			case syntax.STAR:
				return a * b, nil
			}
		}
	} else if a, ok := x.(starlark.String); ok && op == syntax.PLUS {
		if b, ok := y.(starlark.String); ok {
			return a + b, nil
		}
	}
	return starlark.Binary(op, x, y)
}

func compare(op syntax.Token, x, y starlark.Value) (bool, error) {
	if a, ok := smallInt(x); ok {
		if b, ok := smallInt(y); ok {
			return cmpInt(op, a, b), nil
		}
	} else if a, ok := x.(starlark.String); ok {
		if b, ok := y.(starlark.String); ok {
			switch op {
			case syntax.EQL:
				return a == b, nil
			case syntax.NEQ:
				return a != b, nil
			}
		}
	}
	return starlark.Compare(op, x, y)
}

func cmpInt(op syntax.Token, a, b int64) bool {
	switch op {
	case syntax.EQL:
		return a == b
	case syntax.NEQ:
		return a != b
	case syntax.LT:
		return a < b
	case syntax.LE:
		return a <= b
	case syntax.GT:
		return a > b
	default: // GE
		return a >= b
	}
}

// truth is x.Truth() with the common cases inline.
func truth(x starlark.Value) bool {
	switch x := x.(type) {
	case starlark.Bool:
		return bool(x)
	case starlark.NoneType:
		return false
	}
	return bool(x.Truth())
}
