package starlarkmod

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/engine"
)

// graphRec is one semisync graph: a batch that semisync.begin ran, or (for
// semisync.graph()) the calls still queued.
type graphRec struct {
	seq        int
	where      string // the begin call
	tid        int32
	start, end int64
	// The calls, as begin took them; their nodes (deps, status) are made
	// by linked when a view needs them, not while the run is recording.
	batch  []*semiCall
	status string         // of every call not in marks
	marks  map[int]string // status by index in batch, where not status
	once   sync.Once
	calls  []graphCall // made by linked
}

// linked returns the graph's nodes: each call with the calls it waited
// for and its status.
func (g *graphRec) linked() []graphCall {
	g.once.Do(func() {
		g.calls = linkCalls(g.batch)
		for i := range g.calls {
			g.calls[i].status = g.status
			if st, ok := g.marks[i]; ok {
				g.calls[i].status = st
			}
		}
	})
	return g.calls
}

type graphCall struct {
	c      *semiCall
	deps   []int  // indexes of the calls it waited for
	status string // ok, failed, skipped, cancelled, queued
}

// Graphs kept by a run that is not observed (for semisync.graph() and
// the REPL's :graph): the last few, and only small ones.
const (
	unobservedGraphs    = 8
	unobservedGraphSize = 10_000
)

// graph records the batch of r that begin ran on th from t0 until now,
// and how it ended (err: begin's error).
func (ro *runObs) graph(t0 int64, th *starlark.Thread, r *beginRun, err error) {
	if ro == nil || len(r.batch) == 0 || (ro.o == nil && len(r.batch) > unobservedGraphSize) {
		return
	}
	w := workerOf(th)
	if !isWorker(th) {
		ro.main(w)
	}
	g := &graphRec{where: r.where, start: t0, end: ro.begin(), batch: r.batch, status: "ok"}
	if w != nil {
		g.tid = int32(w.ID)
	}
	ro.beginEnded(r, g.end)
	var ge *engine.GraphError
	if errors.As(err, &ge) {
		g.marks = map[int]string{}
		mark := func(id engine.NodeID, status string) {
			if int(id) < len(r.call) && r.call[id] >= 0 {
				g.marks[r.call[id]] = status
			}
		}
		for _, f := range ge.Failed {
			if ge.Cause != nil {
				mark(f.ID, "cancelled")
			} else {
				mark(f.ID, "failed")
			}
		}
		for _, s := range ge.Skipped {
			mark(s.ID, "skipped")
		}
		for _, id := range ge.Cancelled {
			mark(id, "cancelled")
		}
	} else if err != nil {
		g.status = "cancelled"
	}
	ro.gmu.Lock()
	g.seq = len(ro.graphs) + 1
	if len(ro.graphs) > 0 {
		g.seq = ro.graphs[len(ro.graphs)-1].seq + 1
	}
	ro.graphs = append(ro.graphs, g)
	if ro.o == nil && len(ro.graphs) > unobservedGraphs {
		ro.graphs = append(ro.graphs[:0:0], ro.graphs[len(ro.graphs)-unobservedGraphs:]...)
	}
	ro.gmu.Unlock()
}

// linkCalls makes the nodes of a batch: call i waits for every call of
// the batch whose function it depends on.
func linkCalls(batch []*semiCall) []graphCall {
	calls := make([]graphCall, len(batch))
	hasDeps := false
	for i, c := range batch {
		calls[i].c = c
		hasDeps = hasDeps || len(c.fn.deps) > 0
	}
	if !hasDeps { // the common batch of independent calls
		return calls
	}
	byFn := map[*semisyncFunc][]int{}
	for i, c := range batch {
		byFn[c.fn] = append(byFn[c.fn], i)
	}
	for i, c := range batch {
		for _, d := range c.fn.deps {
			calls[i].deps = append(calls[i].deps, byFn[d]...)
		}
	}
	return calls
}

// graphView is a graph with each call's time and the critical path,
// ready to draw.
type graphView struct {
	run      int
	g        *graphRec
	dur      []time.Duration // -1: not timed (not run, or not observed)
	critical []bool
	critEdge map[[2]int]bool
	critLen  time.Duration
	critPath []int
}

type callKey struct {
	parent *taskID
	n      int32
}

// views returns the run's graphs with times from its slices.
func (ro *runObs) views(spans spanList) []*graphView {
	ro.gmu.Lock()
	graphs := append([]*graphRec(nil), ro.graphs...)
	ro.gmu.Unlock()
	byKey := map[callKey]time.Duration{}
	if len(graphs) > 0 {
		for s := range spans.all {
			if s.kind == spanTask {
				byKey[callKey{s.parent, s.n}] = time.Duration(s.end - s.start)
			}
		}
	}
	var vs []*graphView
	for _, g := range graphs {
		calls := g.linked()
		v := &graphView{run: ro.pid, g: g, dur: make([]time.Duration, len(calls))}
		for i, gc := range calls {
			v.dur[i] = -1
			if d, ok := byKey[callKey{gc.c.key.parent, int32(gc.c.key.n)}]; ok && gc.c.key.sub == 0 {
				v.dur[i] = d
			}
		}
		v.criticalPath()
		vs = append(vs, v)
	}
	return vs
}

// criticalPath finds the longest chain of dependent calls, by duration.
func (v *graphView) criticalPath() {
	n := len(v.g.calls)
	v.critical = make([]bool, n)
	v.critEdge = map[[2]int]bool{}
	timed := false
	for _, d := range v.dur {
		timed = timed || d >= 0
	}
	if !timed {
		return
	}
	dist := make([]time.Duration, n)
	pred := make([]int, n)
	done := make([]bool, n)
	var visit func(i int) time.Duration
	visit = func(i int) time.Duration { // the graph is acyclic: see planBegin
		if done[i] {
			return dist[i]
		}
		done[i] = true
		pred[i] = -1
		best := time.Duration(0)
		for _, d := range v.g.calls[i].deps {
			if l := visit(d); pred[i] < 0 || l > best {
				best, pred[i] = l, d
			}
		}
		dist[i] = best + max(v.dur[i], 0)
		return dist[i]
	}
	end := 0
	for i := range n {
		if visit(i) > dist[end] {
			end = i
		}
	}
	v.critLen = dist[end]
	for i := end; i >= 0; i = pred[i] {
		v.critical[i] = true
		v.critPath = append([]int{i}, v.critPath...)
		if pred[i] >= 0 {
			v.critEdge[[2]int{pred[i], i}] = true
		}
	}
}

// label is a call's text: the call, its status and its duration.
func (v *graphView) label(i int) (call, status string) {
	gc := v.g.calls[i]
	call = fmt.Sprintf("%s(%s)", gc.c.fn.name, shortArgs(gc.c.args, gc.c.kwargs))
	status = gc.status
	if v.dur[i] >= 0 {
		status += " " + fmtDur(v.dur[i])
	}
	return call, status
}

func (v *graphView) title() string {
	var t string
	if v.g.where == "" {
		t = "queued calls (semisync.begin has not run them)"
	} else {
		t = fmt.Sprintf("begin %d at %s", v.g.seq, v.g.where)
		if v.run > 0 {
			t = fmt.Sprintf("run %d, %s", v.run, t)
		}
		if len(v.critPath) > 0 {
			t += fmt.Sprintf(": critical path %s of %s", fmtDur(v.critLen), fmtDur(time.Duration(v.g.end-v.g.start)))
		}
	}
	return t
}

// fmtDur renders d with three significant digits (1.23s, 45.6ms, 789µs).
func fmtDur(d time.Duration) string {
	for _, u := range []time.Duration{time.Second, time.Millisecond, time.Microsecond} {
		if d >= u {
			r := u / 100
			if d >= 100*u {
				r = u
			} else if d >= 10*u {
				r = u / 10
			}
			return d.Round(r).String()
		}
	}
	return d.String()
}

// writeDOT draws views as one Graphviz digraph, a cluster per graph.
// Critical-path nodes and edges are red, bold and carry class "critical"
// (which Graphviz copies into SVG output).
func writeDOT(w io.Writer, views []*graphView, note string) error {
	var b strings.Builder
	b.WriteString("digraph semisync {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n")
	if note != "" {
		fmt.Fprintf(&b, "  // %s\n", note)
	}
	for k, v := range views {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s;\n", k+1, dotQuote(v.title()))
		for i := range v.g.calls {
			call, status := v.label(i)
			class := v.g.calls[i].status
			attrs := ""
			switch v.g.calls[i].status {
			case "failed":
				attrs = `, style=filled, fillcolor="#f8d0d0"`
			case "skipped":
				attrs = `, style=dashed, fontcolor=gray40`
			case "cancelled":
				attrs = `, style=dotted`
			case "queued":
				attrs = `, style=dashed`
			}
			if v.critical[i] {
				class += " critical"
				attrs += `, color=red, penwidth=2.5`
			}
			fmt.Fprintf(&b, "    g%dn%d [label=%s, class=%s%s];\n", k+1, i, dotQuote(call+"\n"+status), dotQuote(class), attrs)
		}
		for i, gc := range v.g.calls {
			for _, d := range gc.deps {
				if v.critEdge[[2]int{d, i}] {
					fmt.Fprintf(&b, "    g%dn%d -> g%dn%d [class=\"critical\", color=red, penwidth=2.5];\n", k+1, d, k+1, i)
				} else {
					fmt.Fprintf(&b, "    g%dn%d -> g%dn%d;\n", k+1, d, k+1, i)
				}
			}
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// writeMermaid draws views as a Mermaid flowchart, a subgraph per graph,
// with the critical path in class "critical" (red).
func writeMermaid(w io.Writer, views []*graphView) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	var crit []string
	var critLinks []string
	link := 0
	for k, v := range views {
		fmt.Fprintf(&b, "  subgraph g%d[\"%s\"]\n", k+1, mmdEscape(v.title()))
		for i := range v.g.calls {
			call, status := v.label(i)
			fmt.Fprintf(&b, "    g%dn%d[\"%s<br/>%s\"]:::%s\n", k+1, i, mmdEscape(call), mmdEscape(status), v.g.calls[i].status)
			if v.critical[i] {
				crit = append(crit, fmt.Sprintf("g%dn%d", k+1, i))
			}
		}
		for i, gc := range v.g.calls {
			for _, d := range gc.deps {
				fmt.Fprintf(&b, "    g%dn%d --> g%dn%d\n", k+1, d, k+1, i)
				if v.critEdge[[2]int{d, i}] {
					critLinks = append(critLinks, fmt.Sprint(link))
				}
				link++
			}
		}
		b.WriteString("  end\n")
	}
	b.WriteString("  classDef ok fill:#e8f5e9\n  classDef failed fill:#f8d0d0\n  classDef skipped stroke-dasharray:4\n" +
		"  classDef cancelled stroke-dasharray:2\n  classDef queued stroke-dasharray:4\n  classDef critical stroke:#d00,stroke-width:3px\n")
	if len(crit) > 0 {
		fmt.Fprintf(&b, "  class %s critical\n", strings.Join(crit, ","))
	}
	if len(critLinks) > 0 {
		fmt.Fprintf(&b, "  linkStyle %s stroke:#d00,stroke-width:3px\n", strings.Join(critLinks, ","))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mmdEscape(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;").Replace(s)
}

// WriteGraph writes every semisync graph that ran in the observed runs,
// with each call's status and duration and the critical path marked, as
// Graphviz DOT (format "dot") or a Mermaid flowchart ("mmd").
func (o *Observer) WriteGraph(w io.Writer, format string) error {
	o.mu.Lock()
	runs := append([]*runObs(nil), o.runs...)
	o.mu.Unlock()
	var views []*graphView
	for _, ro := range runs {
		spans, _ := ro.snapshot()
		views = append(views, ro.views(spans)...)
	}
	switch format {
	case "dot":
		return writeDOT(w, views, "")
	case "mmd":
		return writeMermaid(w, views)
	}
	return fmt.Errorf("semisync: graph format %q: want dot or mmd", format)
}

// GraphDOT returns the DOT text of the run's semisync graphs (see
// semisync.graph): those that ran, with durations if the run is observed,
// and the calls still queued.
func (r *Run) GraphDOT() string {
	ro := r.obs
	spans, _ := ro.snapshot()
	views := ro.views(spans)
	st := r.sem
	st.mu.Lock()
	queue := append([]*semiCall(nil), st.queue...)
	st.mu.Unlock()
	if len(queue) > 0 {
		g := &graphRec{batch: queue, status: "queued"}
		g.linked()
		v := &graphView{g: g, dur: make([]time.Duration, len(queue))}
		for i := range v.dur {
			v.dur[i] = -1
		}
		v.criticalPath()
		views = append(views, v)
	}
	note := ""
	if ro.o == nil {
		note = fmt.Sprintf("durations and the critical path need --graph, --trace or --summary (Options.Observer); the last %d graphs are kept", unobservedGraphs)
	}
	var b strings.Builder
	writeDOT(&b, views, note) //nolint:errcheck // a strings.Builder does not fail
	return b.String()
}

// semisyncGraph is semisync.graph(): the DOT text of the run's graphs.
func semisyncGraph(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	r, err := needRun(th, b.Name())
	if err != nil {
		return nil, err
	}
	return starlark.String(r.GraphDOT()), nil
}
