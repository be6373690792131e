package starlarkmod

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.starlark.net/starlark"
)

// "cannot append to frozen list" alone leaves a Python user lost: which
// list, why is it frozen, what now? Each run remembers where the lists,
// dicts and sets that crossings froze crossed (the line that passed them
// to a task, and the path from the task to them), and an error on a frozen
// value is explained with that record.

// maxFrozenRecords bounds the records of one run: a job over a million
// lists does not keep a million records (later ones go unexplained).
const maxFrozenRecords = 10000

// frozenAt is where a value was frozen by a crossing.
type frozenAt struct {
	where string // the line that passed it to a task
	op    string // the builtin that did, e.g. "job.run"
	how   string // the path from what crossed to the value
}

// frozenLog is a run's record of values frozen by crossings.
type frozenLog struct {
	n      atomic.Int64
	mu     sync.Mutex
	byVal  map[starlark.Value]frozenAt
	byName map[string]frozenAt // for values reached through a global or captured variable
}

// noteFrozen is the interpreter's crossing.Checker.OnFreeze.
func noteFrozen(th *starlark.Thread, op string, v starlark.Value, describe func() (name, how string)) {
	if th == nil {
		return
	}
	r := runOf(th)
	if r == nil || r.frozen.n.Load() >= maxFrozenRecords {
		return
	}
	l := &r.frozen
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.byVal[v]; ok {
		return
	}
	name, how := describe()
	if m := reArgument.FindStringSubmatch(how); m != nil {
		n, _ := strconv.Atoi(m[1])
		how = fmt.Sprintf("argument %d%s", n+1, m[2])
	} else if how == "" {
		how = "passed to it"
	}
	at := frozenAt{where: callerPos(th), op: op, how: how}
	if l.byVal == nil {
		l.byVal = map[starlark.Value]frozenAt{}
		l.byName = map[string]frozenAt{}
	}
	l.byVal[v] = at
	if _, ok := l.byName[name]; name != "" && !ok {
		l.byName[name] = at
	}
	l.n.Add(1)
}

// lookup returns the record of v, else of the variable name.
func (l *frozenLog) lookup(name string, v starlark.Value) (frozenAt, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch v.(type) {
	case *starlark.List, *starlark.Dict, *starlark.Set:
		if at, ok := l.byVal[v]; ok {
			return at, true
		}
	}
	at, ok := l.byName[name]
	return at, ok
}

// reArgument is the path of a value reached through a call's arguments
// (the walk's root is the tuple of them).
var reArgument = regexp.MustCompile(`^tuple element (\d+)(.*)$`)

var (
	// The messages of go.starlark.net for a change to a frozen value, as
	// a builtin method or an operator reports them.
	reFrozenMsg = regexp.MustCompile(`^(?:[\w.]+: )?cannot [\w +=]+ frozen (list|hash table|set)$`)
	// The receiver of a method call, up to the call's parenthesis.
	reReceiver = regexp.MustCompile(`([A-Za-z_][\w.]*)\s*\.\s*\w+\s*$`)
	// The container of an item assignment, up to its bracket.
	reIndexed = regexp.MustCompile(`([A-Za-z_][\w.]*)\s*$`)
)

// explainFrozen adds to err, if it is an error on a frozen list, dict or
// set raised by Starlark code of r, which value it was (as the source
// names it), where it crossed to another thread (if r froze it) and what
// to do instead. It changes the message of the *starlark.EvalError in err
// in place and returns err.
func (r *Run) explainFrozen(err error) error { return r.explainFrozenIn(err, nil) }

// explainFrozenIn is explainFrozen where globals (if not nil) are the
// globals of the failing code's module, to find the value by its name.
func (r *Run) explainFrozenIn(err error, globals starlark.StringDict) error {
	var ee *starlark.EvalError
	if r == nil || !errors.As(err, &ee) || !reFrozenMsg.MatchString(ee.Msg) {
		return err
	}
	kind := reFrozenMsg.FindStringSubmatch(ee.Msg)[1]
	switch {
	case kind == "hash table" && strings.Contains(ee.Msg, "set"):
		kind = "set"
	case kind == "hash table":
		kind = "dict"
	}
	name := r.receiverName(ee)
	subject := "the " + kind
	if name != "" {
		subject = name
	}
	var b strings.Builder
	b.WriteString(ee.Msg)
	base := name
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	if at, ok := r.frozen.lookup(base, globals[base]); ok && base != "" {
		fmt.Fprintf(&b, "\n  %s was frozen when it crossed to another thread at %s (%s: %s).", subject, at.where, at.op, at.how)
	} else {
		fmt.Fprintf(&b, "\n  %s is frozen: a value is frozen when it crosses to another thread (a task reads it, or it is passed to one), and a module's globals when it has finished loading.", subject)
	}
	b.WriteString("\n  Frozen values can be shared by any number of threads without a data race.")
	copyOf := "list(x)"
	switch kind {
	case "list":
		b.WriteString(` To share a list that tasks change, make it with Manager().list() (load("multiprocessing", "Manager")),`)
	case "dict":
		copyOf = "dict(x)"
		b.WriteString(` To share a dict that tasks change, make it with Manager().dict() (load("multiprocessing", "Manager")),`)
	default:
		copyOf = "set(x)"
		b.WriteString(" To share values that tasks change, use Manager().list() or .dict() (load(\"multiprocessing\", \"Manager\")),")
	}
	if name != "" {
		copyOf = strings.Replace(copyOf, "x", name, 1)
	}
	fmt.Fprintf(&b, " or return results from the tasks; to change a copy, use %s.", copyOf)
	ee.Msg = b.String()
	return err
}

// receiverName returns the source text naming the value that the
// failing call or assignment of ee changes (results in
// results.append(x), d in d[k] = v), or "".
func (r *Run) receiverName(ee *starlark.EvalError) string {
	for i := len(ee.CallStack) - 1; i >= 0; i-- {
		pos := ee.CallStack[i].Pos
		if !pos.IsValid() || pos.Filename() == "<builtin>" {
			continue
		}
		line := r.sourceLine(pos.Filename(), int(pos.Line))
		col := int(pos.Col) - 1
		if line == "" || col < 0 || col > len(line) {
			return ""
		}
		before := line[:col]
		if m := reReceiver.FindStringSubmatch(before); m != nil {
			return m[1]
		}
		if m := reIndexed.FindStringSubmatch(before); m != nil && col < len(line) && line[col] == '[' {
			return m[1]
		}
		return ""
	}
	return ""
}

// sourceLine returns line n of the file the run compiled under filename,
// or "".
func (r *Run) sourceLine(filename string, n int) string {
	r.srcMu.Lock()
	src := r.sources[filename]
	r.srcMu.Unlock()
	for i := 1; len(src) > 0; i++ {
		line, rest, _ := strings.Cut(src, "\n")
		if i == n {
			return strings.TrimRight(line, "\r")
		}
		src = rest
	}
	return ""
}

// keepSource records the source of a file the run compiles, for error
// explanations.
func (r *Run) keepSource(filename string, src []byte) {
	r.srcMu.Lock()
	if r.sources == nil {
		r.sources = map[string]string{}
	}
	r.sources[filename] = string(src)
	r.srcMu.Unlock()
}
