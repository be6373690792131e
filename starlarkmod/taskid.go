package starlarkmod

import "strconv"

// A taskID names a task structurally (DESIGN.md section 2, rule 13): by its
// parent, the task that started it, and its sequence number among the
// tasks that parent started, from 1. The root of a run is its main thread.
// A job's items are numbered by index under the job's run, a dispatcher's
// handler calls under the send that queued them, a semisync callback is
// number 0 under its call. Because a task's code starts its children in
// program order, the same script starts the same tree of tasks whatever
// the scheduling, in parallel and in sequential mode, so seeding each
// task's random generator from its identity (with --seed) gives the same
// numbers in both. The same identity names tasks in traces and reports.
type taskID struct {
	parent *taskID
	n      int
	hash   uint64 // of the whole path, for seeding
}

// newRootID returns the identity of a run's main thread.
func newRootID() *taskID { return &taskID{hash: 0x9e3779b97f4a7c15} }

// child returns the identity of the n-th task started by t.
func (t *taskID) child(n int) *taskID {
	return &taskID{parent: t, n: n, hash: mixHash(t.hash, n)}
}

// mixHash combines a parent's hash with a child's number (splitmix64).
func mixHash(h uint64, n int) uint64 {
	z := h + 0x9e3779b97f4a7c15*uint64(n+1)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// String renders the path, e.g. "main/3/1" (only for messages and traces:
// it allocates).
func (t *taskID) String() string {
	if t == nil {
		return "?"
	}
	var parts []int
	for x := t; x.parent != nil; x = x.parent {
		parts = append(parts, x.n)
	}
	b := []byte("main")
	for i := len(parts) - 1; i >= 0; i-- {
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(parts[i]), 10)
	}
	return string(b)
}

// A taskRef is a task identity not yet materialised: the parent and the
// number. Most tasks (job items, handler calls) never need their identity
// as a pointer (only for random numbers or to start children of their
// own), so it is built on demand.
type taskRef struct {
	parent *taskID
	n      int
	sub    int // if positive, the task is child sub of child n of parent
}

func (r taskRef) id() *taskID {
	if r.parent == nil {
		return nil
	}
	id := r.parent.child(r.n)
	if r.sub > 0 {
		id = id.child(r.sub)
	}
	return id
}
