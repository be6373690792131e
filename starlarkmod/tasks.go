package starlarkmod

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/semisync/semisync/engine"
)

// TaskInfo describes one piece of work the interpreter started: a semisync
// batch, a job, a future, a pipeline stage. The REPL's :tasks lists them.
type TaskInfo struct {
	Kind   string        // "semisync", "job", "future", ...
	Desc   string        // what and where, e.g. "revenue() queued at x.star:3:8"
	Start  time.Time     //
	End    time.Time     // zero while running
	Status string        // "running", "done", "failed", "cancelled"
	Err    string        // the error's first line, if failed
	Dur    time.Duration // End-Start, or the time so far
}

// taskRecord is the interpreter's record of one piece of work.
type taskRecord struct {
	in   *Interpreter
	info TaskInfo
}

// taskLog keeps the most recent records (bounded, so a million futures do
// not keep a million records).
type taskLog struct {
	mu      sync.Mutex
	records []*taskRecord
}

const maxTaskRecords = 1000

// record notes that work of the given kind started. Call finish on the
// result when it ends.
func (in *Interpreter) record(kind, desc string) *taskRecord {
	r := &taskRecord{in: in, info: TaskInfo{Kind: kind, Desc: desc, Start: time.Now(), Status: "running"}}
	in.tasks.mu.Lock()
	if len(in.tasks.records) >= maxTaskRecords {
		// Drop the oldest finished record, if any.
		for i, old := range in.tasks.records {
			if !old.info.End.IsZero() {
				in.tasks.records = append(in.tasks.records[:i], in.tasks.records[i+1:]...)
				break
			}
		}
	}
	in.tasks.records = append(in.tasks.records, r)
	in.tasks.mu.Unlock()
	return r
}

// finish marks the work ended with err (nil: done).
func (r *taskRecord) finish(err error) {
	r.in.tasks.mu.Lock()
	defer r.in.tasks.mu.Unlock()
	r.info.End = time.Now()
	switch {
	case err == nil:
		r.info.Status = "done"
	case errors.Is(err, engine.ErrCancelled) || errors.Is(err, context.Canceled):
		r.info.Status = "cancelled"
	default:
		r.info.Status = "failed"
		r.info.Err = firstLine(err.Error())
	}
}

// Tasks returns the records of recent work, oldest first.
func (in *Interpreter) Tasks() []TaskInfo {
	in.tasks.mu.Lock()
	defer in.tasks.mu.Unlock()
	now := time.Now()
	out := make([]TaskInfo, len(in.tasks.records))
	for i, r := range in.tasks.records {
		out[i] = r.info
		if r.info.End.IsZero() {
			out[i].Dur = now.Sub(r.info.Start)
		} else {
			out[i].Dur = r.info.End.Sub(r.info.Start)
		}
	}
	return out
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
