package portable

import (
	"testing"

	"go.starlark.net/starlark"
)

// Costs of the encoding on its own (what a cluster task and a cache key
// pay per item and per function).
func BenchmarkPortable(b *testing.B) {
	g := run(b, "bench.star", "K = [1, 2, 3]\n\ndef f(x):\n    return x * len(K)\n", nil)
	args := starlark.Tuple{starlark.MakeInt(12345)}
	b.Run("EncodeArgs/int", func(b *testing.B) {
		for range b.N {
			if _, err := EncodeArgs(args, nil, ByFile); err != nil {
				b.Fatal(err)
			}
		}
	})
	data, _ := EncodeArgs(args, nil, ByFile)
	b.Run("DecodeArgs/int", func(b *testing.B) {
		for range b.N {
			if _, _, err := DecodeArgs(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, mode := range []Mode{ByFile, BySource} {
		b.Run("EncodeFunc/"+mode.String(), func(b *testing.B) {
			for range b.N {
				if _, err := EncodeFunc(g["f"], mode); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	enc, _ := EncodeFunc(g["f"], ByFile)
	env := testEnv(enc.Files, nil)
	b.Run("DecodeFunc", func(b *testing.B) {
		for range b.N {
			if _, err := DecodeFuncEnv(enc.Data, env); err != nil {
				b.Fatal(err)
			}
		}
	})
}
