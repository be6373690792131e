package starlarkmod

import (
	"context"
	"errors"
	"fmt"
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

// taskRecord is the interpreter's record of one piece of work. Its
// description is formatted only when someone lists the tasks.
type taskRecord struct {
	log    *taskLog
	kind   string
	about  fmt.Stringer
	start  time.Time
	end    time.Time
	status string
	err    string
}

// taskLog keeps the most recent records in a ring, so a million futures do
// not keep a million records.
type taskLog struct {
	mu      sync.Mutex
	records []*taskRecord // ring of at most maxTaskRecords
	next    int           // where the next record goes once the ring is full
}

const maxTaskRecords = 1000

// record notes that work of the given kind started. Call finish on the
// result when it ends.
func (r *Run) record(kind, desc string) *taskRecord {
	return r.recordOf(kind, text(desc))
}

// recordOf is record with a lazily formatted description.
func (rn *Run) recordOf(kind string, about fmt.Stringer) *taskRecord {
	l := &rn.tasks
	r := &taskRecord{log: l, kind: kind, about: about, start: time.Now(), status: "running"}
	l.mu.Lock()
	if len(l.records) < maxTaskRecords {
		l.records = append(l.records, r)
	} else {
		l.records[l.next] = r
		l.next = (l.next + 1) % maxTaskRecords
	}
	l.mu.Unlock()
	return r
}

// finish marks the work ended with err (nil: done).
func (r *taskRecord) finish(err error) {
	end := time.Now()
	status, msg := "done", ""
	switch {
	case err == nil:
	case errors.Is(err, engine.ErrCancelled) || errors.Is(err, context.Canceled):
		status = "cancelled"
	default:
		status, msg = "failed", err.Error()
	}
	r.log.mu.Lock()
	r.end, r.status, r.err = end, status, msg
	r.log.mu.Unlock()
}

// Tasks returns the records of the run's recent work (the last 1000),
// oldest first.
func (rn *Run) Tasks() []TaskInfo {
	l := &rn.tasks
	l.mu.Lock()
	ring := append(append([]*taskRecord(nil), l.records[l.next:]...), l.records[:l.next]...)
	infos := make([]TaskInfo, len(ring))
	for i, r := range ring {
		infos[i] = TaskInfo{Kind: r.kind, Start: r.start, End: r.end, Status: r.status, Err: firstLine(r.err)}
	}
	l.mu.Unlock()
	now := time.Now()
	for i, r := range ring {
		infos[i].Desc = r.about.String()
		if infos[i].End.IsZero() {
			infos[i].Dur = now.Sub(infos[i].Start)
		} else {
			infos[i].Dur = infos[i].End.Sub(infos[i].Start)
		}
	}
	return infos
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
