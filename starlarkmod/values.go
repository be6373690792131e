package starlarkmod

import (
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod/internal/builtin"
)

// timeoutArg unpacks an optional timeout in seconds (see builtin.Timeout).
type timeoutArg = builtin.Timeout

// wrapped is embedded by the values that decorate a Starlark callable
// (@future, Synchronizer.create_blocking): the methods they share.
type wrapped struct {
	fn starlark.Callable
}

func (w *wrapped) Freeze()               {}
func (w *wrapped) Truth() starlark.Bool  { return true }
func (w *wrapped) Hash() (uint32, error) { return builtin.HashPointer(w), nil }
func (w *wrapped) Name() string          { return w.fn.Name() }

func (w *wrapped) Cross(yield func(starlark.Value) error) error { return yield(w.fn) }
