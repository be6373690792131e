package starlarkmod

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// StreamTrace makes o write the trace to w as the runs go: each run's
// slices are formatted, some hundreds at a time, on a goroutine of its
// own and written to w, so that [Observer.WriteTrace] after the runs has
// only the last slices left to format: the formatting moves off the run's
// critical path onto a core the run leaves idle, and the trace is never
// held in memory. Call it before the first run, when a trace will be
// written (the CLI does for --trace), then call WriteTrace once, with the
// same w, after the runs; without it, views that need no trace
// (--summary, --graph) pay nothing for it. StreamTrace writes the trace's
// header to w at once. The goroutine runs only while recorded slices wait
// to be formatted; WriteTrace waits for it.
func (o *Observer) StreamTrace(w io.Writer) error {
	o.smu.Lock()
	defer o.smu.Unlock()
	if o.stream.Load() {
		return errors.New("semisync: StreamTrace: the trace is streamed already")
	}
	_, err := io.WriteString(w, traceHeader)
	if err != nil {
		return fmt.Errorf("semisync: StreamTrace: %w", err)
	}
	o.sw, o.sfirst = w, true
	o.stream.Store(true)
	return nil
}

// streamOut writes whole events to the stream's writer: each starts with
// a comma, but for the first one written.
type streamOut struct{ o *Observer }

func (s streamOut) Write(b []byte) (int, error) {
	o := s.o
	o.smu.Lock()
	defer o.smu.Unlock()
	if o.serr != nil {
		return 0, o.serr
	}
	n := len(b)
	if o.sfirst && len(b) > 0 {
		b, o.sfirst = b[1:], false
	}
	_, o.serr = o.sw.Write(b)
	return n, o.serr
}

// traceStream is a run's trace formatted ahead of WriteTrace. Slices it
// cannot format exactly before the run ends (job items, handlers, tasks
// not started by a semisync.begin whose batch it knows) are kept as
// records for WriteTrace.
type traceStream struct {
	mu      sync.Mutex
	idle    sync.Cond // signalled when running turns false
	running bool      // a formatter goroutine is at work
	again   bool      // a chunk closed while it was
	begins  []*streamBegin
	// Made by the formatter, read by WriteTrace under mu.
	done     [obsShards]int // slices of each shard formatted (or deferred)
	deferred []spanRec
	flows    int
	buf      []byte // reused

	// Owned by the running formatter.
	indexed int // begins indexed in calls
	// The calls of the begins, by parent and number: a parent's calls
	// have nearly consecutive numbers, so a dense table per parent does.
	calls   map[*taskID]*streamTable
	begins2 []*streamBegin // indexed, as in streamEnt.b
	wheres  []string       // JSON, as in streamEnt.where
	pos     map[syntax.Position]int32
	fns     map[starlark.Value]fnInfo
	paths   map[*taskID]string
	tids    map[int32]bool // of the slices formatted
}

// streamBegin is a semisync.begin running or done: its batch is known
// when it starts, its end when it ends.
type streamBegin struct {
	run   *beginRun
	batch []*semiCall
	tid   int32
	start int64
	end   atomic.Int64 // 0 while it runs
}

type streamTable struct {
	min int32
	ent []streamEnt
}

// streamEnt is a call: 1 + the index of its begin in begins2 (0: no
// call), and where it was made, in wheres.
type streamEnt struct{ b, where int32 }

// call returns the call n under parent, if a begin took it.
func (ts *traceStream) call(parent *taskID, n int32) (*streamBegin, string, bool) {
	t := ts.calls[parent]
	if t == nil || n < t.min || int(n-t.min) >= len(t.ent) {
		return nil, "", false
	}
	e := t.ent[n-t.min]
	if e.b == 0 {
		return nil, "", false
	}
	return ts.begins2[e.b-1], ts.wheres[e.where], true
}

// fnInfo is a function's name and, as JSON, where it is defined.
type fnInfo struct{ name, def string }

// beginStarted notes, for a streamed trace, the batch r that begin starts
// running on th at t0.
func (ro *runObs) beginStarted(t0 int64, th *starlark.Thread, r *beginRun) {
	if ro == nil || ro.stream == nil || len(r.batch) == 0 {
		return
	}
	sb := &streamBegin{run: r, batch: r.batch, start: t0}
	if w := workerOf(th); w != nil {
		sb.tid = int32(w.ID)
	}
	ts := ro.stream
	ts.mu.Lock()
	ts.begins = append(ts.begins, sb)
	ts.mu.Unlock()
}

// beginEnded notes when the begin of r ended (as its graph records it).
func (ro *runObs) beginEnded(r *beginRun, end int64) {
	if ro == nil || ro.stream == nil {
		return
	}
	ts := ro.stream
	ts.mu.Lock()
	for i := len(ts.begins) - 1; i >= 0; i-- {
		if ts.begins[i].run == r {
			ts.begins[i].end.Store(end)
			break
		}
	}
	ts.mu.Unlock()
}

// kick starts the formatter, or tells the running one there is more.
func (ro *runObs) kick() {
	ts := ro.stream
	ts.mu.Lock()
	if ts.running {
		ts.again = true
	} else {
		ts.running = true
		go ro.format()
	}
	ts.mu.Unlock()
}

// settle waits for the formatter and returns with ts.mu held, so that
// no formatter starts until it is unlocked, and the tables indexing
// every begin started.
func (ts *traceStream) settle() {
	ts.mu.Lock()
	for ts.running {
		ts.idle.Wait()
	}
	ts.index(ts.begins)
}

// streamEvery is how many slices a shard records between kicks of the
// formatter: few enough that it keeps up with the run and has little
// left when the run ends.
const streamEvery = 512

// format formats the slices recorded so far in every shard, until none
// is left. Slices before a chunk's length never change, so it formats
// them without the shard's lock.
func (ro *runObs) format() {
	ts := ro.stream
	for {
		ts.mu.Lock()
		done := ts.done
		begins := ts.begins
		ts.mu.Unlock()
		ts.index(begins)
		for i := range ro.shards {
			sh := &ro.shards[i]
			sh.mu.Lock()
			total := 0
			if k := len(sh.spans); k > 0 {
				total = (k-1)*spanChunk + len(sh.spans[k-1])
			}
			if total <= done[i] {
				sh.mu.Unlock()
				continue
			}
			first := done[i] / spanChunk
			snap := shardSnap{
				spans:  append([][]span(nil), sh.spans[first:]...),
				fns:    sh.fns[:len(sh.fns):len(sh.fns)],
				pars:   sh.pars[:len(sh.pars):len(sh.pars)],
				extras: sh.extras[:len(sh.extras):len(sh.extras)],
			}
			sh.mu.Unlock()
			for done[i] < total {
				c := snap.spans[done[i]/spanChunk-first][done[i]%spanChunk:]
				deferred := ro.formatChunk(snap, c)
				ts.mu.Lock()
				ts.deferred = append(ts.deferred, deferred...)
				ts.done[i] += len(c)
				done[i] += len(c)
				ts.mu.Unlock()
			}
		}
		ts.mu.Lock()
		if ts.again {
			ts.again = false
			ts.mu.Unlock()
			continue
		}
		ts.running = false
		ts.idle.Broadcast()
		ts.mu.Unlock()
		return
	}
}

// index adds the calls of the begins not yet indexed to ts.calls.
func (ts *traceStream) index(begins []*streamBegin) {
	if ts.calls == nil {
		ts.calls = map[*taskID]*streamTable{}
		ts.pos = map[syntax.Position]int32{}
		ts.fns = map[starlark.Value]fnInfo{}
		ts.paths = map[*taskID]string{}
		ts.tids = map[int32]bool{}
	}
	for _, b := range begins[ts.indexed:] {
		ts.begins2 = append(ts.begins2, b)
		bi := int32(len(ts.begins2))
		var lastPos syntax.Position
		wi := int32(-1)
		var lastP *taskID
		var t *streamTable
		for _, c := range b.batch {
			if c.where != lastPos || wi < 0 {
				q, ok := ts.pos[c.where]
				if !ok {
					q = int32(len(ts.wheres))
					ts.wheres = append(ts.wheres, string(appendJSON(nil, c.where.String())))
					ts.pos[c.where] = q
				}
				wi, lastPos = q, c.where
			}
			p, n := c.key.parent, int32(c.key.n)
			if t == nil || p != lastP {
				t = ts.calls[p]
				if t == nil {
					t = &streamTable{min: n}
					ts.calls[p] = t
				}
				lastP = p
			}
			if n < t.min {
				t.ent = append(make([]streamEnt, t.min-n, int(t.min-n)+len(t.ent)), t.ent...)
				t.min = n
			}
			i := int(n - t.min)
			for len(t.ent) <= i {
				t.ent = append(t.ent, streamEnt{})
			}
			t.ent[i] = streamEnt{bi, wi}
		}
	}
	ts.indexed = len(begins)
}

// formatChunk writes the slices of c (part of a chunk) that it can format exactly
// now (tasks of a known begin's batch) to the stream, and returns the
// others.
func (ro *runObs) formatChunk(sh shardSnap, c []span) []spanRec {
	ts := ro.stream
	if ts.buf == nil {
		ts.buf = make([]byte, 0, traceBuf+4096)
	}
	tw := &traceWriter{w: streamOut{ro.o}, b: ts.buf}
	var deferred []spanRec
	pid := ro.pid
	pidTid := pidTidJSON(pid)
	args := make([]traceArg, 0, 4)
	lastTid := int32(-1)
	for i := range c {
		s := &c[i]
		var b *streamBegin
		where := ""
		ok := false
		if s.kind == spanTask && s.sub == 0 && s.parent >= 0 {
			b, where, ok = ts.call(sh.pars[s.parent], s.n)
		}
		r := sh.rec(s)
		if !ok {
			deferred = append(deferred, r)
			continue
		}
		if r.tid != lastTid {
			ts.tids[r.tid], lastTid = true, r.tid
		}
		fi, have := ts.fns[r.fn]
		if !have {
			fi = newFnInfo(r.fn)
			ts.fns[r.fn] = fi
		}
		prefix, have := ts.paths[r.parent]
		if !have {
			prefix = r.parent.String() + "/"
			ts.paths[r.parent] = prefix
		}
		args = append(args[:0], pathArg(prefix, r.n, 0), rawArg("at", where))
		if fi.def != "" {
			args = append(args, rawArg("def", fi.def))
		}
		if r.failed {
			args = append(args, strArg("error", r.extra.err))
		}
		tw.event("X", fi.name, "semisync", pid, r.tid, r.start, r.end-r.start, "", args...)
		// Until begin ends, its end is later than now, so later than the
		// task's start: only the start clamps.
		src := slice{tid: b.tid, start: b.start, end: b.end.Load()}
		if src.end == 0 {
			src.end = r.start
		}
		ts.flows++
		tw.flowPair(pidTid, src.tid, src.clamp(r.start), r.tid, r.start, streamFlowID(pid, ts.flows))
	}
	tw.flush()
	ts.buf = tw.b
	return deferred
}

// streamFlowID is the id of the n-th flow a run's stream formats: apart
// from those WriteTrace numbers from 1.
func streamFlowID(pid, n int) int { return pid<<32 | n }

func pidTidJSON(pid int) string {
	return `,"pid":` + strconv.Itoa(pid) + `,"tid":`
}

func newFnInfo(v starlark.Value) fnInfo {
	fi := fnInfo{valueName(v), ""}
	if d := defPos(v); d != "" {
		fi.def = string(appendJSON(nil, d))
	}
	return fi
}
