package crossing

import (
	"fmt"
	"testing"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

const fuzzScript = `
def outer():
    def f(n):
        return 0 if n == 0 else f(n - 1)
    return f

recursive = outer()
table = {"k": [1, 2]}

def reads_table():
    return table["k"]

def with_default(x = [1, {"a": 2}]):
    return x

def make_closure():
    captured = [3]
    return lambda: captured

closure = make_closure()
total = 0
total += 1

def reads_total():
    return total
`

// FuzzCross builds random nested values (lists, dicts, tuples, sets,
// structs, self-references, functions from a small script) from the
// input, and crosses them with the background rule on and off: the walk
// never panics or hangs, and on success everything reachable is frozen.
func FuzzCross(f *testing.F) {
	f.Add([]byte{0, 1, 2, 10, 3, 11, 4, 0, 12})
	f.Add([]byte{5, 5, 13, 13, 14, 6, 7, 8, 9, 10, 15, 200})
	f.Add([]byte{6, 10, 14, 14, 11, 12, 13, 1})
	f.Add([]byte{7, 3, 10, 10, 10, 11, 16, 16, 201})
	var c Checker
	g := load(f, &c, fuzzScript)
	fns := []starlark.Value{g["recursive"], g["reads_table"], g["with_default"], g["closure"], g["reads_total"], starlark.Universe["len"]}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang is a finding: fail the input (the fuzzer has no time limit
		// of its own and would just stop making progress).
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("FuzzCross: input %x ran over 10s", data)) })
		defer watchdog.Stop()
		var stack []starlark.Value
		pop := func(n int) []starlark.Value {
			n = min(n, len(stack))
			xs := append([]starlark.Value(nil), stack[len(stack)-n:]...)
			stack = stack[:len(stack)-n]
			return xs
		}
		background := false
		for i, b := range data {
			n := int(b>>5) + 1 // how many values the op takes
			switch b % 20 {
			case 0, 1, 2:
				stack = append(stack, starlark.MakeInt(i))
			case 3:
				stack = append(stack, starlark.String("s"))
			case 4, 5:
				stack = append(stack, fns[i%len(fns)])
			case 10:
				stack = append(stack, starlark.NewList(pop(n)))
			case 11:
				stack = append(stack, starlark.Tuple(pop(n)))
			case 12:
				d := starlark.NewDict(n)
				for j, x := range pop(n) {
					d.SetKey(starlark.MakeInt(j), x) //nolint:errcheck // may be frozen: fine
				}
				stack = append(stack, d)
			case 13:
				s := starlark.NewSet(n)
				for _, x := range pop(n) {
					s.Insert(x) //nolint:errcheck // unhashable: skipped
				}
				stack = append(stack, s)
			case 14:
				fields := starlark.StringDict{}
				for j, x := range pop(n) {
					fields[string(rune('a'+j))] = x
				}
				stack = append(stack, starlarkstruct.FromStringDict(starlarkstruct.Default, fields))
			case 15, 16:
				// A self-reference: the top container holds itself, or the
				// one below it.
				if len(stack) >= 2 {
					target := stack[len(stack)-1-int(b%2)]
					switch top := stack[len(stack)-1].(type) {
					case *starlark.List:
						top.Append(target) //nolint:errcheck // may be frozen
					case *starlark.Dict:
						top.SetKey(starlark.String("self"), target) //nolint:errcheck
					}
				}
			case 19:
				background = !background
			}
		}
		err := c.Cross(nil, "fuzz", background, stack...)
		if err == nil {
			checkFrozen(t, stack)
		}
	})
}

// checkFrozen checks, without recursion, that every list, dict and set
// reachable from vs is frozen.
func checkFrozen(t *testing.T, vs []starlark.Value) {
	seen := map[starlark.Value]bool{}
	todo := append([]starlark.Value(nil), vs...)
	for len(todo) > 0 {
		v := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		switch v := v.(type) {
		case *starlark.List:
			if seen[v] {
				continue
			}
			seen[v] = true
			if v.Append(starlark.None) == nil {
				t.Fatalf("list not frozen: %s", v)
			}
			for i := 0; i < v.Len(); i++ {
				todo = append(todo, v.Index(i))
			}
		case *starlark.Dict:
			if seen[v] {
				continue
			}
			seen[v] = true
			if v.SetKey(starlark.String("probe"), starlark.None) == nil {
				t.Fatalf("dict not frozen")
			}
			for _, kv := range v.Items() {
				todo = append(todo, kv[0], kv[1])
			}
		case *starlark.Set:
			if seen[v] {
				continue
			}
			seen[v] = true
			if v.Insert(starlark.String("probe")) == nil {
				t.Fatalf("set not frozen")
			}
			for x := range v.Elements() {
				todo = append(todo, x)
			}
		case starlark.Tuple:
			todo = append(todo, v...)
		case *starlarkstruct.Struct:
			if seen[v] {
				continue
			}
			seen[v] = true
			for _, name := range v.AttrNames() {
				x, _ := v.Attr(name)
				todo = append(todo, x)
			}
		case *starlark.Function:
			if seen[v] {
				continue
			}
			seen[v] = true
			for i := 0; i < v.NumParams(); i++ {
				if d := v.ParamDefault(i); d != nil {
					todo = append(todo, d)
				}
			}
			for i := 0; i < v.NumFreeVars(); i++ {
				if _, x := v.FreeVar(i); x != nil {
					todo = append(todo, x)
				}
			}
		}
	}
}
