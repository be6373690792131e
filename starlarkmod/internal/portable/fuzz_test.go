package portable

import (
	"bytes"
	"errors"
	"testing"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod/internal/decorator"
)

// FuzzRoundTrip evaluates a Starlark expression (under a step limit) and
// checks that its value encodes (or is refused with a NotPortableError),
// decodes to an equal value, and re-encodes to the same bytes; that
// functions defined beside it encode in both modes, decode, and give the
// same result when called; and that decoding corrupted bytes fails
// cleanly.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{
		"None", "True", "[1, 2, (3, 4)]", `{"a": 1, 2: [3]}`, "set([1, 2])", "range(0, 10, 3)",
		"1 << 100", "-(1 << 70)", "3.5", "float('nan')", `b"\xff"`, `"héllo"`,
		"[[[[[]]]]]", "(1, [2, {3: (4,)}])", "len", `",".join`, "lambda x: x + 1",
		"[x * x for x in range(5)]", `{"k": set(["a"])}`, "struct_like",
	} {
		f.Add(s, []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, expr string, noise []byte) {
		src := "x = " + expr + "\n\ndef fn(a=x):\n    return [a, x]\n"
		file, err := decorator.Parse(testOptions, "fuzz.star", []byte(src), 0)
		if err != nil {
			return
		}
		prog, err := starlark.FileProgram(file, func(string) bool { return false })
		if err != nil {
			return
		}
		Register(prog, file, []byte(src))
		th := &starlark.Thread{}
		th.SetMaxExecutionSteps(10000)
		g, err := prog.Init(th, nil)
		if err != nil {
			return
		}
		g.Freeze()
		x := g["x"]
		if x == nil || g["fn"] == nil {
			return // a NUL byte ends the file for the scanner
		}
		data, err := EncodeValue(x)
		if err != nil {
			var npe *NotPortableError
			if !errors.As(err, &npe) {
				t.Fatalf("EncodeValue(%s): %v", x, err)
			}
			return
		}
		y, err := DecodeValue(data)
		if err != nil {
			if _, isFn := x.(*starlark.Function); isFn {
				return // functions in values need an Env for their builtins
			}
			t.Fatalf("DecodeValue(EncodeValue(%s)): %v", x, err)
		}
		data2, err := EncodeValue(y)
		if _, isFn := x.(*starlark.Function); !isFn {
			if err != nil {
				t.Fatalf("re-encoding %s: %v", y, err)
			}
			if !bytes.Equal(data, data2) {
				t.Fatalf("re-encoding %s gives other bytes", x)
			}
			if _, ok := x.(*starlark.Builtin); ok {
				if x.String() != y.String() {
					t.Fatalf("round trip: got %s, want %s", y, x)
				}
			} else if eq, err := starlark.Equal(x, y); err == nil && !eq && !hasNaN(x.String()) {
				t.Fatalf("round trip: got %s, want %s", y, x)
			}
		}
		for _, mode := range []Mode{ByFile, BySource} {
			enc, err := EncodeFunc(g["fn"], mode)
			if err != nil {
				var npe *NotPortableError
				if !errors.As(err, &npe) {
					t.Fatalf("EncodeFunc: %v", err)
				}
				return
			}
			if mode == BySource {
				continue
			}
			fn, err := DecodeFuncEnv(enc.Data, testEnv(enc.Files, nil))
			if err != nil {
				t.Fatalf("DecodeFunc: %v", err)
			}
			th.SetMaxExecutionSteps(0)
			want, err1 := starlark.Call(&starlark.Thread{}, g["fn"].(starlark.Callable), nil, nil)
			got, err2 := starlark.Call(&starlark.Thread{}, fn, nil, nil)
			if (err1 == nil) != (err2 == nil) || err1 == nil && want.String() != got.String() {
				t.Fatalf("decoded function: got %v %v, want %v %v", got, err2, want, err1)
			}
		}
		// Corrupt the encoding: decoding fails or succeeds, never panics.
		for i, b := range noise {
			if len(data) == 0 {
				break
			}
			data[(i*7+int(b))%len(data)] ^= b | 1
		}
		DecodeValue(data)                                                          //nolint:errcheck // any outcome but a panic or hang
		DecodeValue(noise)                                                         //nolint:errcheck
		DecodeArgs(noise)                                                          //nolint:errcheck
		DecodeFuncEnv(append([]byte("SSP\x01F\x00"), noise...), testEnv(nil, nil)) //nolint:errcheck
	})
}

func hasNaN(s string) bool { return bytes.Contains([]byte(s), []byte("nan")) }
