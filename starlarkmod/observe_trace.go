package starlarkmod

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
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
func (o *Observer) WriteTrace(w io.Writer) error {
	o.mu.Lock()
	runs := append([]*runObs(nil), o.runs...)
	o.mu.Unlock()
	bw := bufio.NewWriterSize(w, 1<<16)
	tw := &traceWriter{w: bw, first: true}
	bw.WriteString(`{"displayTimeUnit":"ms","traceEvents":[`)
	dropped := 0
	for _, ro := range runs {
		dropped += ro.writeTrace(tw, o.now())
	}
	bw.WriteString("\n],\"otherData\":{\"droppedSlices\":")
	bw.WriteString(strconv.Itoa(dropped))
	bw.WriteString(",\"maxSlicesPerRun\":")
	bw.WriteString(strconv.Itoa(MaxTraceSlices))
	bw.WriteString("}}\n")
	return bw.Flush()
}

type traceWriter struct {
	w     *bufio.Writer
	first bool
	flow  int
}

// event writes one event; args are key, value pairs (values: string or int).
func (tw *traceWriter) event(ph string, name, cat string, pid int, tid int32, ts int64, dur int64, extra string, args ...any) {
	w := tw.w
	if tw.first {
		w.WriteString("\n{")
		tw.first = false
	} else {
		w.WriteString(",\n{")
	}
	w.WriteString(`"ph":"`)
	w.WriteString(ph)
	w.WriteString(`","name":`)
	w.WriteString(jsonString(name))
	if cat != "" {
		w.WriteString(`,"cat":`)
		w.WriteString(jsonString(cat))
	}
	fmt.Fprintf(w, `,"pid":%d,"tid":%d,"ts":%s`, pid, tid, micros(ts))
	if ph == "X" {
		w.WriteString(`,"dur":`)
		w.WriteString(micros(dur))
	}
	w.WriteString(extra)
	if len(args) > 0 {
		w.WriteString(`,"args":{`)
		sep := ""
		for i := 0; i+1 < len(args); i += 2 {
			w.WriteString(sep)
			sep = ","
			w.WriteString(jsonString(args[i].(string)))
			w.WriteString(":")
			switch v := args[i+1].(type) {
			case string:
				w.WriteString(jsonString(v))
			case int:
				w.WriteString(strconv.Itoa(v))
			}
		}
		w.WriteString("}")
	}
	w.WriteString("}")
}

// micros renders ns as microseconds, the trace format's unit.
func micros(ns int64) string { return strconv.FormatFloat(float64(ns)/1e3, 'f', 3, 64) }

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// slice is a drawn slice that may start flows.
type slice struct {
	tid        int32
	start, end int64
}

func (s slice) clamp(ts int64) int64 { return min(max(ts, s.start), s.end) }

// writeTrace writes the run's events and returns how many slices it dropped.
func (ro *runObs) writeTrace(tw *traceWriter, now int64) int {
	spans, dropped := ro.snapshot()
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	pid := ro.pid
	ro.gmu.Lock()
	graphs := append([]*graphRec(nil), ro.graphs...)
	mainTid := int32(0)
	for t := range ro.mainTid {
		if mainTid == 0 || t < mainTid {
			mainTid = t
		}
	}
	ro.gmu.Unlock()

	end := now
	tids := map[int32]bool{mainTid: true}
	for _, s := range spans {
		tids[s.tid] = true
	}
	tw.event("M", "process_name", "", pid, 0, 0, 0, "", "name", fmt.Sprintf("semisync run %d", pid))
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
		tw.event("M", "thread_name", "", pid, int32(t), 0, 0, "", "name", name)
		tw.event("M", "thread_sort_index", "", pid, int32(t), 0, 0, "", "sort_index", t)
	}
	// The script's main thread, for flows from the top level.
	mainSlice := slice{tid: mainTid, start: ro.start, end: end}
	tw.event("X", "main", "run", pid, mainTid, ro.start, end-ro.start, "")

	// Sources of flows: begin slices by call, job slices by job identity,
	// task slices by identity.
	beginOf := map[callKey]slice{}
	whereOf := map[callKey]string{}
	for _, g := range graphs {
		s := slice{tid: g.tid, start: g.start, end: g.end}
		tw.event("X", "semisync.begin", "begin", pid, g.tid, g.start, g.end-g.start, "",
			"at", g.where, "calls", len(g.calls))
		for _, gc := range g.calls {
			k := callKey{gc.c.key.parent, int32(gc.c.key.n)}
			beginOf[k] = s
			whereOf[k] = gc.c.where.String()
		}
	}
	jobOf := map[*taskID]slice{}
	jobWhere := map[*taskID]string{}
	byPath := map[string]slice{}
	paths := make([]string, len(spans))
	for i, s := range spans {
		switch s.kind {
		case spanJob:
			jobOf[s.extra.id] = slice{tid: s.tid, start: s.start, end: s.end}
			jobWhere[s.extra.id] = s.extra.where
		case spanTask, spanHandler:
			paths[i] = refPath(s.parent, s.n, s.sub)
			byPath[paths[i]] = slice{tid: s.tid, start: s.start, end: s.end}
		}
	}
	for i, s := range spans {
		name, cat := "", spanCats[s.kind]
		var args []any
		var src slice
		haveSrc := false
		switch s.kind {
		case spanJob, spanDelivery:
			name = s.extra.name
			if s.extra.where != "" {
				args = append(args, "at", s.extra.where)
			}
			if s.extra.id != nil {
				args = append(args, "task", s.extra.id.String())
			}
		case spanItem:
			name = valueName(s.fn)
			args = append(args, "task", refPath(s.parent, s.n, 0), "item", int(s.n))
			if w := jobWhere[s.parent]; w != "" {
				args = append(args, "at", w)
			}
			src, haveSrc = jobOf[s.parent]
		default:
			name = valueName(s.fn)
			args = append(args, "task", paths[i])
			k := callKey{s.parent, s.n}
			if w, ok := whereOf[k]; ok && s.sub == 0 {
				args = append(args, "at", w)
				src, haveSrc = beginOf[k]
				cat = "semisync"
			} else if s.parent != nil && s.parent.parent == nil {
				src, haveSrc = mainSlice, true
			} else if s.parent != nil {
				src, haveSrc = byPath[s.parent.String()]
			}
		}
		if d := defPos(s.fn); d != "" {
			args = append(args, "def", d)
		}
		if s.failed {
			args = append(args, "error", s.extra.err)
		}
		tw.event("X", name, cat, pid, s.tid, s.start, s.end-s.start, "", args...)
		if haveSrc {
			tw.flow++
			id := fmt.Sprintf(`,"id":%d`, tw.flow)
			tw.event("s", "start", "flow", pid, src.tid, src.clamp(s.start), 0, id)
			tw.event("f", "start", "flow", pid, s.tid, s.start, 0, id+`,"bp":"e"`)
		}
	}
	return dropped
}

// refPath renders a task's identity from its parent and numbers.
func refPath(parent *taskID, n, sub int32) string {
	p := parent.String() + "/" + strconv.Itoa(int(n))
	if sub > 0 {
		p += "/" + strconv.Itoa(int(sub))
	}
	return p
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
