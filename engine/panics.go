package engine

import (
	"fmt"
	"runtime/debug"
)

// A PanicError is a panic caught in a task. It is re-raised (with panic) in the
// goroutine that collects the task's result, so the stack of the goroutine
// that panicked is not lost.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the stack of the panicking goroutine
}

func (p *PanicError) Error() string {
	return fmt.Sprintf("engine: panic in task: %v\n\ntask goroutine stack:\n%s", p.Value, p.Stack)
}

// Unwrap returns the panic value if it is an error.
func (p *PanicError) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// catch calls fn and turns a panic into a *PanicError.
func catch[T any](fn func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// repanic re-raises a caught panic in the current goroutine.
func repanic(err error) {
	if p, ok := err.(*PanicError); ok {
		panic(p)
	}
}
