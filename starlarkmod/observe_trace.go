package starlarkmod

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// WriteTrace writes the observed runs as Chrome trace-event JSON (the
// "JSON object format", which Perfetto and chrome://tracing open): a
// process per run, a track per worker goroutine (and one for the script's
// main thread), a complete event ("ph":"X") per task slice, job run,
// dispatcher delivery and semisync.begin, and a flow arrow (a "s"/"f"
// pair) from the slice that started each task to the task. Each task's
// args give its structural identity ("task": "main/3/1"), the line that
// started it ("at") where known, where its function is defined ("def") and
// its error. Job items are sampled past 1024 (see [Observer]).
//
// After [Observer.StreamTrace](w), call it once, after the runs, with the
// same w: it waits for the formatting goroutines and writes what is left
// and the trace's end (another writer is an error).
func (o *Observer) WriteTrace(w io.Writer) error {
	o.mu.Lock()
	runs := append([]*runObs(nil), o.runs...)
	o.mu.Unlock()
	tw := &traceWriter{w: w, first: true, b: make([]byte, 0, traceBuf+4096)}
	if o.stream.Load() {
		// The header is written; events go through the stream's writer.
		o.smu.Lock()
		same := isComparable(w) && isComparable(o.sw) && w == o.sw
		o.smu.Unlock()
		if !same {
			return errors.New("semisync: WriteTrace: the trace streams to another writer (StreamTrace)")
		}
		tw.w, tw.first = streamOut{o}, false
	} else {
		tw.b = append(tw.b, traceHeader...)
	}
	dropped := 0
	for _, ro := range runs {
		dropped += ro.writeTrace(tw, o.now())
	}
	tw.b = append(tw.b, "\n],\"otherData\":{\"droppedSlices\":"...)
	tw.b = strconv.AppendInt(tw.b, int64(dropped), 10)
	tw.b = append(tw.b, ",\"maxSlicesPerRun\":"...)
	tw.b = strconv.AppendInt(tw.b, MaxTraceSlices, 10)
	tw.b = append(tw.b, "}}\n"...)
	tw.flush()
	return tw.err
}

const traceHeader = `{"displayTimeUnit":"ms","traceEvents":[`

func isComparable(w io.Writer) bool { return w != nil && reflect.TypeOf(w).Comparable() }

// traceBuf is how much of the trace is formatted before it is written:
// few, large writes.
const traceBuf = 1 << 18

// traceWriter formats events into b, writing it out when it is full.
type traceWriter struct {
	w     io.Writer
	b     []byte
	err   error
	first bool
	flow  int
}

func (tw *traceWriter) flush() {
	if tw.w == nil {
		return // formatting into b (a streamed trace)
	}
	if tw.err == nil && len(tw.b) > 0 {
		_, tw.err = tw.w.Write(tw.b)
	}
	tw.b = tw.b[:0]
}

// sep starts an event.
func (tw *traceWriter) sep() {
	if len(tw.b) >= traceBuf {
		tw.flush()
	}
	if tw.first {
		tw.b = append(tw.b, "\n{"...)
		tw.first = false
	} else {
		tw.b = append(tw.b, ",\n{"...)
	}
}

// flowPair writes the flow arrow id from (stid, sts) to (tid, ts): its
// start, and its end bound to the slice that encloses it.
func (tw *traceWriter) flowPair(pidTid string, stid int32, sts int64, tid int32, ts int64, id int) {
	tw.sep()
	b := append(tw.b, `"ph":"s","name":"start","cat":"flow"`...)
	b = append(b, pidTid...)
	b = strconv.AppendInt(b, int64(stid), 10)
	b = append(b, `,"ts":`...)
	b = appendMicros(b, sts)
	b = append(b, `,"id":`...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, "},\n{"...)
	b = append(b, `"ph":"f","name":"start","cat":"flow"`...)
	b = append(b, pidTid...)
	b = strconv.AppendInt(b, int64(tid), 10)
	b = append(b, `,"ts":`...)
	b = appendMicros(b, ts)
	b = append(b, `,"id":`...)
	b = strconv.AppendInt(b, int64(id), 10)
	tw.b = append(b, `,"bp":"e"}`...)
}

// A traceArg is one of an event's args: a string, or an int if s is "".
type traceArg struct {
	key, s string
	n      int
	// A task path: s (the parent's path and a slash, JSON-safe), n and, if
	// positive, sub.
	path bool
	sub  int32
	raw  bool // s is already JSON
}

// pathArg is the arg "task": the path of task n (sub) under the parent
// whose path, with a trailing slash, is prefix.
func pathArg(prefix string, n, sub int32) traceArg {
	return traceArg{key: "task", s: prefix, n: int(n), path: true, sub: sub}
}

func strArg(k, v string) traceArg { return traceArg{key: k, s: v} }

// rawArg is a string arg already quoted as JSON (by appendJSON).
func rawArg(k, v string) traceArg { return traceArg{key: k, s: v, raw: true} }
func intArg(k string, v int) traceArg {
	return traceArg{key: k, n: v}
}

// event writes one event: phase ph, at ts (ns), lasting dur (for "X"),
// with extra JSON fields (starting with a comma) and args.
func (tw *traceWriter) event(ph, name, cat string, pid int, tid int32, ts, dur int64, extra string, args ...traceArg) {
	tw.eventFlow(ph, name, cat, pid, tid, ts, dur, extra, 0, args...)
}

// eventFlow is event with a flow id (if positive; a flow end binds to the
// enclosing slice).
func (tw *traceWriter) eventFlow(ph, name, cat string, pid int, tid int32, ts, dur int64, extra string, flow int, args ...traceArg) {
	tw.sep()
	b := tw.b
	b = append(b, `"ph":"`...)
	b = append(b, ph...)
	b = append(b, `","name":`...)
	b = appendJSON(b, name)
	if cat != "" {
		b = append(b, `,"cat":`...)
		b = appendJSON(b, cat)
	}
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, `,"tid":`...)
	b = strconv.AppendInt(b, int64(tid), 10)
	b = append(b, `,"ts":`...)
	b = appendMicros(b, ts)
	if ph == "X" {
		b = append(b, `,"dur":`...)
		b = appendMicros(b, dur)
	}
	b = append(b, extra...)
	if flow > 0 {
		b = append(b, `,"id":`...)
		b = strconv.AppendInt(b, int64(flow), 10)
		if ph == "f" {
			b = append(b, `,"bp":"e"`...)
		}
	}
	if len(args) > 0 {
		b = append(b, `,"args":{`...)
		for i, a := range args {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, a.key)
			b = append(b, ':')
			if a.path {
				b = append(b, '"')
				b = append(b, a.s...)
				b = strconv.AppendInt(b, int64(a.n), 10)
				if a.sub > 0 {
					b = append(b, '/')
					b = strconv.AppendInt(b, int64(a.sub), 10)
				}
				b = append(b, '"')
			} else if a.raw {
				b = append(b, a.s...)
			} else if a.s != "" {
				b = appendJSON(b, a.s)
			} else {
				b = strconv.AppendInt(b, int64(a.n), 10)
			}
		}
		b = append(b, '}')
	}
	tw.b = append(b, '}')
}

// appendMicros renders ns as microseconds with three decimals, the trace
// format's unit.
func appendMicros(b []byte, ns int64) []byte {
	if ns < 0 {
		b = append(b, '-')
		ns = -ns
	}
	b = strconv.AppendInt(b, ns/1000, 10)
	f := ns % 1000
	return append(b, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}

// appendJSON appends s as a JSON string.
func appendJSON(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// slice is a drawn slice that may start flows.
type slice struct {
	tid        int32
	start, end int64
}

func (s slice) clamp(ts int64) int64 { return min(max(ts, s.start), s.end) }

// writeTrace writes the run's events and returns how many slices it
// dropped. Events are not sorted: the format does not need it.
func (ro *runObs) writeTrace(tw *traceWriter, now int64) int {
	// With StreamTrace, the slices recorded are formatted already, but
	// for those deferred to now (settled before the snapshot, so that it
	// holds every slice formatted). The stream stays locked meanwhile:
	// its tables give the calls of the begins.
	ts := ro.stream
	var done [obsShards]int
	var deferred []spanRec
	if ts != nil {
		ts.settle()
		defer ts.mu.Unlock()
		done, deferred = ts.done, ts.deferred
	}
	spans, dropped := ro.snapshot()
	todo := func(yield func(spanRec) bool) {
		for _, sh := range spans {
			skip := done[sh.shard]
			for _, c := range sh.spans {
				if skip >= len(c) {
					skip -= len(c)
					continue
				}
				c, skip = c[skip:], 0
				for i := range c {
					if !yield(sh.rec(&c[i])) {
						return
					}
				}
			}
		}
		for _, r := range deferred {
			if !yield(r) {
				return
			}
		}
	}
	pid := ro.pid
	ro.gmu.Lock()
	graphs := append([]*graphRec(nil), ro.graphs...)
	// Positions repeat (a loop's call site): render and quote each once.
	posStrs := map[syntax.Position]string{}
	var lastPos syntax.Position
	lastStr := ""
	posJSON := func(pos syntax.Position) string {
		if pos == lastPos && lastStr != "" {
			return lastStr
		}
		q, ok := posStrs[pos]
		if !ok {
			q = string(appendJSON(nil, pos.String()))
			posStrs[pos] = q
		}
		lastPos, lastStr = pos, q
		return q
	}
	where := make(map[callKey]string, len(ro.where))
	for k, pos := range ro.where {
		where[k] = posJSON(pos)
	}
	mainTid := int32(0)
	for t := range ro.mainTid {
		if mainTid == 0 || t < mainTid {
			mainTid = t
		}
	}
	ro.gmu.Unlock()

	end := now
	tids := map[int32]bool{mainTid: true}
	if ts != nil {
		for t := range ts.tids {
			tids[t] = true
		}
	}
	for s := range todo {
		tids[s.tid] = true
	}
	tw.event("M", "process_name", "", pid, 0, 0, 0, "", strArg("name", fmt.Sprintf("semisync run %d", pid)))
	tidList := make([]int, 0, len(tids))
	for t := range tids {
		tidList = append(tidList, int(t))
	}
	sort.Ints(tidList)
	for _, t := range tidList {
		name := fmt.Sprintf("worker %d", t)
		if int32(t) == mainTid {
			name = "main thread"
		}
		tw.event("M", "thread_name", "", pid, int32(t), 0, 0, "", strArg("name", name))
		tw.event("M", "thread_sort_index", "", pid, int32(t), 0, 0, "", intArg("sort_index", t))
	}
	// The script's main thread, for flows from the top level.
	mainSlice := slice{tid: mainTid, start: ro.start, end: end}
	tw.event("X", "main", "run", pid, mainTid, ro.start, end-ro.start, "")

	// Sources of flows: begin slices by call, job slices by job identity,
	// task slices by identity (a task's child has as parent an identity
	// whose own parent and number are the task's).
	type callInfo struct {
		begin slice
		where string
	}
	// The calls of the graphs, by parent and number: a parent's calls have
	// nearly consecutive numbers, so a dense table per parent does.
	type callTable struct {
		min   int32
		infos []*callInfo
	}
	calls := map[*taskID]*callTable{}
	for _, g := range graphs {
		s := slice{tid: g.tid, start: g.start, end: g.end}
		tw.event("X", "semisync.begin", "begin", pid, g.tid, g.start, g.end-g.start, "",
			strArg("at", g.where), intArg("calls", len(g.batch)))
		if ts != nil {
			continue // the stream's tables have the calls
		}
		// One pass over the calls (each a separate object, so a cache
		// miss), keeping what the rest needs; the calls of a batch mostly
		// share a parent.
		type callRef struct {
			p     *taskID
			n     int32
			where string
		}
		refs := make([]callRef, len(g.batch))
		lo, hi := map[*taskID]int32{}, map[*taskID]int32{}
		var lastP *taskID
		var lastLo, lastHi int32
		for i, c := range g.batch {
			p, n := c.key.parent, int32(c.key.n)
			refs[i] = callRef{p, n, posJSON(c.where)}
			if p != lastP || i == 0 {
				if lastP != nil || i > 0 {
					lo[lastP], hi[lastP] = lastLo, lastHi
				}
				l, ok := lo[p]
				if !ok {
					l = n
				}
				lastP, lastLo, lastHi = p, l, max(hi[p], n)
			}
			lastLo, lastHi = min(lastLo, n), max(lastHi, n)
		}
		if len(g.batch) > 0 {
			lo[lastP], hi[lastP] = lastLo, lastHi
		}
		for p, l := range lo {
			ct := calls[p]
			if ct == nil {
				ct = &callTable{min: l}
				calls[p] = ct
			}
			if l < ct.min {
				ct.infos = append(make([]*callInfo, ct.min-l), ct.infos...)
				ct.min = l
			}
			if need := int(hi[p]-ct.min) + 1; need > len(ct.infos) {
				ct.infos = append(ct.infos, make([]*callInfo, need-len(ct.infos))...)
			}
		}
		infos := make([]callInfo, len(g.batch))
		var ct *callTable
		for i, r := range refs {
			infos[i] = callInfo{s, r.where}
			if i == 0 || r.p != refs[i-1].p {
				ct = calls[r.p]
			}
			ct.infos[r.n-ct.min] = &infos[i]
		}
	}
	callOf := func(parent *taskID, n int32) *callInfo {
		if ts != nil {
			b, where, ok := ts.call(parent, n)
			if !ok || b.end.Load() == 0 {
				return nil // a begin still running has no graph yet
			}
			return &callInfo{slice{tid: b.tid, start: b.start, end: b.end.Load()}, where}
		}
		if ct := calls[parent]; ct != nil && n >= ct.min && int(n-ct.min) < len(ct.infos) {
			return ct.infos[n-ct.min]
		}
		return nil
	}
	// Tasks started by tasks (not by the main thread or a job) get a flow
	// from their parent's slice: find the parents needed, then their slices.
	jobOf := map[*taskID]slice{}
	jobWhere := map[*taskID]string{}
	byKey := map[callKey]slice{}
	for s := range todo { // streamed slices are none of these
		switch s.kind {
		case spanJob:
			jobOf[s.extra.id] = slice{tid: s.tid, start: s.start, end: s.end}
			if s.extra.where != "" {
				jobWhere[s.extra.id] = string(appendJSON(nil, s.extra.where))
			}
		case spanTask, spanHandler:
			if p := s.parent; p != nil && p.parent != nil && (s.sub > 0 || callOf(s.parent, s.n) == nil) {
				byKey[callKey{p.parent, int32(p.n)}] = slice{tid: -1}
			}
		}
	}
	if len(byKey) > 0 {
		for s := range spans.all {
			if s.kind == spanTask {
				if _, ok := byKey[callKey{s.parent, s.n}]; ok {
					byKey[callKey{s.parent, s.n}] = slice{tid: s.tid, start: s.start, end: s.end}
				}
			}
		}
	}
	// Names, definitions and parents' paths repeat: work each out once.
	fns := map[starlark.Value]fnInfo{}
	fnOf := func(v starlark.Value) fnInfo {
		fi, ok := fns[v]
		if !ok {
			fi = newFnInfo(v)
			fns[v] = fi
		}
		return fi
	}
	parentPaths := map[*taskID]string{}
	prefix := func(parent *taskID) string {
		p, ok := parentPaths[parent]
		if !ok {
			p = parent.String() + "/"
			parentPaths[parent] = p
		}
		return p
	}
	pidTid := pidTidJSON(pid)
	args := make([]traceArg, 0, 5)
	for s := range todo {
		name, cat := "", spanCats[s.kind]
		args = args[:0]
		var src slice
		haveSrc := false
		switch s.kind {
		case spanJob, spanDelivery:
			name = s.extra.name
			if s.extra.where != "" {
				args = append(args, strArg("at", s.extra.where))
			}
			if s.extra.id != nil {
				args = append(args, strArg("task", s.extra.id.String()))
			}
		case spanItem:
			fi := fnOf(s.fn)
			name = fi.name
			args = append(args, pathArg(prefix(s.parent), s.n, 0), intArg("item", int(s.n)))
			if w := jobWhere[s.parent]; w != "" {
				args = append(args, rawArg("at", w))
			}
			if fi.def != "" {
				args = append(args, rawArg("def", fi.def))
			}
			src, haveSrc = jobOf[s.parent]
		default:
			fi := fnOf(s.fn)
			name = fi.name
			args = append(args, pathArg(prefix(s.parent), s.n, s.sub))
			c := callOf(s.parent, s.n)
			if c != nil && s.sub == 0 {
				args = append(args, rawArg("at", c.where))
				src, haveSrc = c.begin, true
				cat = "semisync"
			} else {
				if w, ok := where[callKey{s.parent, s.n}]; ok && s.sub == 0 {
					args = append(args, rawArg("at", w))
				}
				if s.parent != nil && s.parent.parent == nil {
					src, haveSrc = mainSlice, true
				} else if s.parent != nil {
					src, haveSrc = byKey[callKey{s.parent.parent, int32(s.parent.n)}]
					haveSrc = haveSrc && src.tid >= 0
				}
			}
			if fi.def != "" {
				args = append(args, rawArg("def", fi.def))
			}
		}
		if s.failed {
			args = append(args, strArg("error", s.extra.err))
		}
		tw.event("X", name, cat, pid, s.tid, s.start, s.end-s.start, "", args...)
		if haveSrc {
			tw.flow++
			tw.flowPair(pidTid, src.tid, src.clamp(s.start), s.tid, s.start, tw.flow)
		}
	}
	return dropped
}

// WriteSummary writes, for each observed run, a table of the functions
// that ran as tasks (calls, total, mean and max time, failures), in the
// order they first ran, and the critical path of its semisync graphs
// against the run's wall time so far.
func (o *Observer) WriteSummary(w io.Writer) error {
	o.mu.Lock()
	runs := append([]*runObs(nil), o.runs...)
	o.mu.Unlock()
	var b strings.Builder
	for _, ro := range runs {
		ro.writeSummary(&b, time.Duration(o.now()-ro.start))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (ro *runObs) writeSummary(b *strings.Builder, wall time.Duration) {
	stats := ro.stats()
	sort.SliceStable(stats, func(i, j int) bool { return stats[i].first < stats[j].first })
	fmt.Fprintf(b, "semisync summary: run %d, wall time %s\n", ro.pid, fmtDur(wall))
	if len(stats) == 0 {
		b.WriteString("  no tasks ran\n")
	} else {
		width := len("function")
		for _, s := range stats {
			width = max(width, len(s.name))
		}
		const row = "  %-*s %8s %10s %10s %10s %7s\n"
		fmt.Fprintf(b, row, width, "function", "calls", "total", "mean", "max", "failed")
		for _, s := range stats {
			fmt.Fprintf(b, row, width, s.name, strconv.Itoa(s.calls), fmtDur(s.total),
				fmtDur(s.total/time.Duration(s.calls)), fmtDur(s.max), strconv.Itoa(s.failures))
		}
	}
	spans, _ := ro.snapshot()
	views := ro.views(spans)
	if len(views) == 0 {
		b.WriteString("critical path: no semisync graph ran\n")
		return
	}
	var total time.Duration
	var lines []string
	for _, v := range views {
		total += v.critLen
		var names []string
		for _, i := range v.critPath {
			call, _ := v.label(i)
			names = append(names, call)
		}
		lines = append(lines, fmt.Sprintf("  begin %d at %s: %s (%s)", v.g.seq, v.g.where, strings.Join(names, " -> "), fmtDur(v.critLen)))
	}
	pct := 0.0
	if wall > 0 {
		pct = 100 * float64(total) / float64(wall)
	}
	fmt.Fprintf(b, "critical path of the semisync graphs: %s of %s wall time (%.0f%%)\n", fmtDur(total), fmtDur(wall), pct)
	const maxShown = 5
	for i, l := range lines {
		if i == maxShown {
			fmt.Fprintf(b, "  ... and %d more graphs\n", len(lines)-maxShown)
			break
		}
		b.WriteString(l + "\n")
	}
}
