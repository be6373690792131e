package starlarkmod

import (
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
)

// FormatError renders an error of semisync for a person: a Starlark error
// as its backtrace (with what a wrapping error says above it), every error
// of a file that failed to compile on a line of its own, anything else as
// its message. The command, the REPL and the tests print errors with it.
func FormatError(err error) string {
	var list resolve.ErrorList
	if errors.As(err, &list) && len(list) > 0 {
		lines := make([]string, len(list))
		for i, e := range list {
			lines[i] = e.Error()
		}
		return strings.Join(lines, "\n")
	}
	return errText(err)
}

// errText renders an error for a report: a Starlark backtrace if it has one.
func errText(err error) string {
	switch e := err.(type) {
	case *starlark.EvalError:
		return e.Backtrace()
	case *TaskError:
		return e.Error() // already carries the task's traceback
	case *RemoteError:
		return e.text()
	}
	// An EvalError in the chain is this side's: its message already holds
	// any remote error it wraps (through a TaskError), so it comes first.
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		// A wrapped traceback: keep what the wrapping says, then the frames.
		msg := err.Error()
		if prefix, ok := strings.CutSuffix(msg, ee.Msg); ok && prefix != "" {
			return strings.TrimRight(prefix, ": ") + ":\n" + indent(ee.Backtrace())
		}
		return ee.Backtrace()
	}
	var re *RemoteError
	if errors.As(err, &re) {
		msg := err.Error()
		if prefix, ok := strings.CutSuffix(msg, re.Msg); ok && prefix != "" {
			return strings.TrimRight(prefix, ": ") + ":\n" + indent(re.text())
		}
		return re.text()
	}
	return err.Error()
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// A TaskError is the error of work that ran on another thread: it names the
// builtin that started it and the task, and keeps the task's own traceback
// (its Starlark frames) in its message, so the error printed on the
// starting thread shows both stacks.
type TaskError struct {
	Op   string // the builtin, e.g. "semisync.begin"
	Task string // e.g. "revenue() queued at x.star:12:8"
	Err  error
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("%s: %s failed:\n%s", e.Op, e.Task, indent(errText(e.Err)))
}

func (e *TaskError) Unwrap() error { return e.Err }

// causeError is an error of the engine as a script author reads it: without
// the "engine: " that names a Go package (a per-item timeout reads "timed
// out after 50ms"). It wraps the error, so errors.Is and errors.As still
// see it.
type causeError struct{ err error }

func (e causeError) Error() string { return strings.TrimPrefix(e.err.Error(), "engine: ") }
func (e causeError) Unwrap() error { return e.err }

// scriptCause returns err ready to be shown to a script author (see
// causeError); nil stays nil.
func scriptCause(err error) error {
	if err == nil || !strings.HasPrefix(err.Error(), "engine: ") {
		return err
	}
	return causeError{err}
}
