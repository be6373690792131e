package starlarkmod

import (
	"sort"
	"unsafe"

	"go.starlark.net/starlark"
)

// hashPointer hashes a value by identity.
func hashPointer[T any](p *T) uint32 {
	u := uintptr(unsafe.Pointer(p))
	return uint32(u ^ u>>32)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// builtinAttrs implements Attr and AttrNames for a value whose attributes
// are methods.
func methodAttr(recv starlark.Value, methods map[string]*starlark.Builtin, name string) (starlark.Value, error) {
	if b, ok := methods[name]; ok {
		return b.BindReceiver(recv), nil
	}
	return nil, nil
}

// wrapped is embedded by the values that decorate a Starlark callable
// (@future, Synchronizer.create_blocking): the methods they share.
type wrapped struct {
	fn starlark.Callable
}

func (w *wrapped) Freeze()               {}
func (w *wrapped) Truth() starlark.Bool  { return true }
func (w *wrapped) Hash() (uint32, error) { return hashPointer(w), nil }
func (w *wrapped) Name() string          { return w.fn.Name() }

func (w *wrapped) Cross(yield func(starlark.Value) error) error { return yield(w.fn) }
