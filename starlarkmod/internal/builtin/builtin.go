// Package builtin holds what the packages that implement semisync's script
// builtins share: how a builtin waits on the thread that calls it (through
// the engine, watching the thread's context), how it readies values for
// other threads, the timeout argument, and small helpers for values with
// methods. starlarkmod sets each thread up so that these work (see
// [Thread]); on a thread it did not make they fall back to plain waits and
// a crossing checker of their own.
package builtin

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"
	"unsafe"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/crossing"
)

// A Thread is what starlarkmod records for each thread it makes, under the
// thread-local key [LocalKey].
type Thread interface {
	// Worker returns the engine worker of the thread's goroutine: every
	// wait goes through it.
	Worker() *engine.Worker
	// Cross readies vs to be read by any thread (see starlarkmod.Crosser):
	// core values are deep-frozen and checked, others must say how they
	// cross.
	Cross(op string, vs ...starlark.Value) error
}

// LocalKey is the thread-local key of a thread's [Thread].
const LocalKey = "semisync.thread"

// Of returns th's [Thread], or nil for a thread starlarkmod did not make.
func Of(th *starlark.Thread) Thread {
	t, _ := th.Local(LocalKey).(Thread)
	return t
}

// Context returns the context of the code running on th (the thread-local
// "context", as in go.starlark.net's REPL), or context.Background().
func Context(th *starlark.Thread) context.Context {
	if ctx, ok := th.Local("context").(context.Context); ok {
		return ctx
	}
	return context.Background()
}

// WorkerOf returns the engine worker of th's goroutine, or nil.
func WorkerOf(th *starlark.Thread) *engine.Worker {
	if t := Of(th); t != nil {
		return t.Worker()
	}
	return nil
}

// Recv receives from ch on th's goroutine: through the engine, so that a
// waiting thread lets others compute (in sequential mode, hands on its
// turn), watching th's context, and giving up after timeout (if positive)
// with engine.ErrTimeout.
func Recv[T any](th *starlark.Thread, ch <-chan T, timeout time.Duration) (T, bool, error) {
	return engine.Recv(Context(th), WorkerOf(th), ch, timeout)
}

// CrosserOf returns the function that readies values stored by code of
// th for any thread to read (see [Thread.Cross]); on a thread starlarkmod
// did not make, the same walk with a checker of its own (it knows no
// compiled file, so functions are checked conservatively).
func CrosserOf(th *starlark.Thread) func(op string, vs ...starlark.Value) error {
	if t := Of(th); t != nil {
		return t.Cross
	}
	c := new(crossing.Checker)
	return func(op string, vs ...starlark.Value) error { return c.Cross(nil, op, true, vs...) }
}

// An ErrIterator is an iterator whose failure Go code can read directly:
// NextErr is Next, except that it reports a failure as an error instead of
// cancelling the consuming thread (which is all Next can do). Builtins that
// iterate should use it when available; streams and inboxes implement it.
type ErrIterator interface {
	starlark.Iterator
	NextErr(p *starlark.Value) (bool, error)
}

// Timeout unpacks an optional timeout in seconds (None: wait forever).
//
// Not a number (nan), negative numbers and numbers too large for a
// time.Duration (over about 292 years) are errors: converting them would
// silently give a zero or negative duration, that is, no wait at all.
// +inf is an error too, as in CPython (Lock.acquire, Event.wait and
// Future.result raise OverflowError for it): a timeout is either a number
// of seconds or None, and the error says to use None. Accepting inf as
// "forever" would make one spelling of "forever" work here and fail in
// sleep(inf), where CPython also raises.
type Timeout struct{ D time.Duration }

func (t *Timeout) Unpack(v starlark.Value) error {
	if v == starlark.None {
		return nil
	}
	secs, ok := starlark.AsFloat(v)
	if !ok {
		return fmt.Errorf("got %s, want a number of seconds or None", v.Type())
	}
	switch {
	case math.IsNaN(secs):
		return fmt.Errorf("invalid timeout nan (want a number of seconds, or None to wait forever)")
	case secs < 0:
		return fmt.Errorf("negative timeout %v (want a number of seconds >= 0, or None to wait forever)", v)
	case secs > MaxSeconds:
		return fmt.Errorf("timeout %v is too long (at most %d seconds; use None to wait forever)", v, int64(MaxSeconds))
	}
	t.D = time.Duration(secs * float64(time.Second))
	if t.D == 0 {
		t.D = 1 // zero means "don't wait", not "forever"
	}
	return nil
}

// MaxSeconds is the longest wait a time.Duration holds, in whole seconds
// (about 292 years). Compared as floats, anything above it converts
// without overflow.
const MaxSeconds = float64(math.MaxInt64 / int64(time.Second))

// HashPointer hashes a value by identity.
func HashPointer[T any](p *T) uint32 {
	u := uintptr(unsafe.Pointer(p))
	return uint32(u ^ u>>32)
}

// SortedKeys returns the keys of m in order.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// MethodAttr implements Attr for a value whose attributes are methods:
// the builtin named name, bound to recv, or nil.
func MethodAttr(recv starlark.Value, methods map[string]*starlark.Builtin, name string) (starlark.Value, error) {
	if b, ok := methods[name]; ok {
		return b.BindReceiver(recv), nil
	}
	return nil, nil
}
