package starlarkmod

import (
	"context"
	"time"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod/internal/builtin"
)

// Context returns the context of the code running on th, a thread made by
// an [Interpreter] (a run's main thread or a worker running a task): it
// ends when that code is cancelled (Ctrl-C, a timeout, a cancelled future,
// a failing job item). A host builtin that blocks must watch it. On a
// thread no interpreter made it is the thread-local "context", or
// context.Background().
func Context(th *starlark.Thread) context.Context { return builtin.Context(th) }

// Recv is how a host builtin waits: it receives from ch on behalf of the
// code running on th, and returns the value and true, or false if ch is
// closed, or an error when th's context ends or (if positive) timeout
// elapses (engine.ErrTimeout). While it waits, the thread counts as
// waiting, not computing: the interpreter starts other tasks meanwhile
// (Options.Limit bounds computing threads only), and in sequential mode
// the other tasks run. A builtin that blocks any other way holds up work,
// and in sequential mode stops it.
func Recv[T any](th *starlark.Thread, ch <-chan T, timeout time.Duration) (T, bool, error) {
	return builtin.Recv(th, ch, timeout)
}
