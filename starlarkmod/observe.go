package starlarkmod

import (
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/semisync/semisync/engine"
)

// An Observer records what the runs of an interpreter did, for the
// views of --trace, --graph and --summary: a slice per task (semisync
// call, future, pipeline stage, dispatcher handler call, job item), a
// slice per job run, dispatcher delivery and semisync.begin, the graphs
// begin ran with each call's status and duration, and per-function counts
// and times.
//
// Set it in [Options].Observer before the first run; each run records into
// its own part (a run sees only its own graphs in semisync.graph()). After
// the runs, write the views with [Observer.WriteTrace],
// [Observer.WriteGraph] and [Observer.WriteSummary]. Its methods are safe
// for concurrent use.
//
// Cost: with no Observer, each hook is one nil check. With one, a task
// costs two monotonic clock reads and an append of a pointer-free record
// under its worker's own lock (about 80-90 ns, BenchmarkObserveTask), and
// the trace about 200 ns per slice (three events) to format. With
// [Observer.StreamTrace] (what --trace uses), that formatting happens
// while the run goes, on a goroutine of its own, so on a machine with an
// idle core it is off the run's critical path: on the 100k trivial-call
// benchmark (BenchmarkSemisyncTrivialObserved, ns/op, 2 shared cores
// under load) a traced run took 1.21-1.43 us per call against 1.23-1.31
// us untraced (0.98-1.09x), where formatting after the run took 1.38x.
//
// Size: a job records a slice for each of its first 1024 items, then 512
// per doubling of the index (items 1024-2047: every 2nd; 2048-4095: every
// 4th, ...), so a job of 10^7 items records about 7,800 item slices; the
// per-function counts and times still cover every item. A run keeps at
// most 500,000 slices (MaxTraceSlices); later ones are counted, not kept,
// and the trace says how many were dropped.
type Observer struct {
	epoch  time.Time
	stream atomic.Bool // StreamTrace was called
	smu    sync.Mutex  // guards the stream's writer:
	sw     io.Writer
	sfirst bool  // no event written to sw yet
	serr   error // sw's first error
	mu     sync.Mutex
	runs   []*runObs
}

// MaxTraceSlices is the most task slices an [Observer] keeps per run.
const MaxTraceSlices = 500_000

// NewObserver returns an observer to set in [Options].Observer.
func NewObserver() *Observer { return &Observer{epoch: time.Now()} }

func (o *Observer) now() int64 { return int64(time.Since(o.epoch)) }

// spanKind says what a slice is.
type spanKind uint8

const (
	spanTask     spanKind = iota // a semisync call, future, pipeline stage (runTask)
	spanHandler                  // a dispatcher handler call
	spanItem                     // a job item
	spanJob                      // a job's run, on the thread that ran it
	spanDelivery                 // a dispatcher delivering a batch of messages
)

var spanCats = [...]string{"task", "handler", "item", "job", "dispatcher"}

// span is one recorded slice, as kept: it holds no pointers (the
// function, parent and rare fields are indexes into its shard's tables),
// so the garbage collector does not scan the chunks that hold a run's
// slices.
type span struct {
	start, end int64 // ns since the observer's epoch
	n, sub     int32
	tid        int32
	fn         int32 // in the shard's fns
	parent     int32 // in the shard's parents
	extra      int32 // 1 + index in the shard's extras, or 0
	kind       spanKind
	failed     bool
}

// spanRec is a recorded slice with its fields resolved, as the views see
// it.
type spanRec struct {
	kind       spanKind
	failed     bool
	tid        int32
	n, sub     int32
	start, end int64
	parent     *taskID
	fn         starlark.Value // the function run (nil for a job or delivery)
	extra      *spanExtra     // rare fields
}

type spanExtra struct {
	name  string  // for a job or a delivery
	where string  // the line that started it
	err   string  // the error's first line
	id    *taskID // a job's identity (its items are its children)
}

const spanChunk = 4096

// obsShards spreads recording over locks by worker, so that each worker
// in practice records under a lock of its own, uncontended.
const obsShards = 16

// obsShard is where the workers whose ID is its index modulo obsShards
// record. Only its lock guards it: a worker takes slice quota from the
// run's shared counter once per chunk, not per slice.
type obsShard struct {
	mu     sync.Mutex
	spans  [][]span // chunks of spanChunk: appending never copies
	quota  int      // slices the shard may still keep (taken per chunk)
	drops  int      // slices not kept for want of quota
	stats  map[starlark.Value]*fnStat
	fns    []starlark.Value
	fnIx   map[starlark.Value]int32
	pars   []*taskID
	parIx  map[*taskID]int32
	extras []spanExtra
	// The last function and parent: tasks come in runs of them.
	lastFn   starlark.Value
	lastFnIx int32
	lastStat *fnStat
	lastPar  *taskID
	lastPIx  int32
	_        [64]byte // keep shards on separate cache lines
}

// fnStat is the per-function summary.
type fnStat struct {
	name            string
	first           int64 // when the function first ran, to order the table
	calls, failures int
	total, max      time.Duration
}

// runObs is the record of one run. Every Run has one; o is nil when
// nothing is observed, and then every hook returns at its nil check.
type runObs struct {
	o     *Observer
	pid   int
	start int64
	taken atomic.Int64 // slice quota handed to shards, a chunk at a time

	shards [obsShards]obsShard
	stream *traceStream // if the trace is formatted as the run goes

	gmu     sync.Mutex
	graphs  []*graphRec
	mainTid map[int32]bool              // workers of main threads
	where   map[callKey]syntax.Position // where futures were called
}

// startedAt notes the line that started the task ref (a future's call).
func (ro *runObs) startedAt(ref taskRef, pos syntax.Position) {
	if ro == nil || ro.o == nil || ref.sub != 0 {
		return
	}
	ro.gmu.Lock()
	if ro.where == nil {
		ro.where = map[callKey]syntax.Position{}
	}
	ro.where[callKey{ref.parent, int32(ref.n)}] = pos
	ro.gmu.Unlock()
}

// newRunObs returns the record of a new run (observed if o is not nil).
func (o *Observer) newRunObs() *runObs {
	ro := &runObs{o: o}
	if o == nil {
		return ro
	}
	ro.start = o.now()
	if o.stream.Load() {
		ro.stream = &traceStream{}
		ro.stream.idle.L = &ro.stream.mu
	}
	o.mu.Lock()
	ro.pid = len(o.runs) + 1
	o.runs = append(o.runs, ro)
	o.mu.Unlock()
	return ro
}

// begin returns the time a task starts (0 if not observed).
func (ro *runObs) begin() int64 {
	if ro == nil || ro.o == nil {
		return 0
	}
	return ro.o.now()
}

// task records a task that ran fn on w from t0 (a begin result) until now.
func (ro *runObs) task(t0 int64, w *engine.Worker, ref taskRef, fn starlark.Value, err error) {
	if ro == nil || ro.o == nil {
		return
	}
	kind := spanTask
	if ref.sub > 0 {
		kind = spanHandler
	}
	ro.add(w, kind, t0, ro.o.now(), ref.parent, int32(ref.n), int32(ref.sub), fn, nil, err, true)
}

// item records item i of the job with identity job: every item counts in
// the summary, but only a sample (see Observer) is kept as a slice.
func (ro *runObs) item(t0 int64, w *engine.Worker, job *taskID, i int, fn starlark.Value, err error) {
	if ro == nil || ro.o == nil {
		return
	}
	ro.add(w, spanItem, t0, ro.o.now(), job, int32(i), 0, fn, nil, err, sampled(i))
}

// sampled reports whether job item i gets a slice of its own: the first
// 1024, then 512 per doubling of the index.
func sampled(i int) bool {
	if i < 1024 {
		return true
	}
	mask := 1<<(bits.Len(uint(i))-10) - 1
	return i&mask == 0
}

// span starts a slice of kind (a job's run, a delivery) on the track of
// th's goroutine and returns the function that ends it with its error.
func (ro *runObs) span(kind spanKind, th *starlark.Thread, id *taskID, name, where string) func(err error) {
	if ro == nil || ro.o == nil {
		return func(error) {}
	}
	w := workerOf(th)
	if !isWorker(th) {
		ro.main(w)
	}
	t0 := ro.o.now()
	return func(err error) {
		ro.add(w, kind, t0, ro.o.now(), nil, 0, 0, nil, &spanExtra{name: name, where: where, id: id}, err, true)
	}
}

func (ro *runObs) add(w *engine.Worker, kind spanKind, start, end int64, parent *taskID, n, sub int32, fn starlark.Value, x *spanExtra, err error, keep bool) {
	tid := 0
	if w != nil {
		tid = w.ID
	}
	if err != nil {
		if x == nil {
			x = &spanExtra{}
		}
		x.err = firstLine(err.Error())
	}
	sh := &ro.shards[tid%obsShards]
	kick := false // more slices for the stream to format
	sh.mu.Lock()
	if keep {
		if sh.quota == 0 {
			ro.refill(sh)
		}
		if sh.quota == 0 {
			sh.drops++
			keep = false
		}
	}
	fnIx := int32(-1)
	if fn != nil {
		st := sh.lastStat
		if sh.lastFn != fn {
			st = sh.stats[fn]
			if st == nil {
				if sh.stats == nil {
					sh.stats = map[starlark.Value]*fnStat{}
					sh.fnIx = map[starlark.Value]int32{}
				}
				st = &fnStat{first: start}
				sh.stats[fn] = st
				sh.fnIx[fn] = int32(len(sh.fns))
				sh.fns = append(sh.fns, fn)
			}
			sh.lastFn, sh.lastStat, sh.lastFnIx = fn, st, sh.fnIx[fn]
		}
		fnIx = sh.lastFnIx
		d := time.Duration(end - start)
		st.calls++
		st.total += d
		st.max = max(st.max, d)
		if err != nil {
			st.failures++
		}
	}
	if keep {
		s := span{kind: kind, failed: err != nil, tid: int32(tid), n: n, sub: sub, start: start, end: end, fn: fnIx, parent: -1}
		if parent != nil {
			if parent != sh.lastPar {
				ix, ok := sh.parIx[parent]
				if !ok {
					if sh.parIx == nil {
						sh.parIx = map[*taskID]int32{}
					}
					ix = int32(len(sh.pars))
					sh.parIx[parent] = ix
					sh.pars = append(sh.pars, parent)
				}
				sh.lastPar, sh.lastPIx = parent, ix
			}
			s.parent = sh.lastPIx
		}
		if x != nil {
			sh.extras = append(sh.extras, *x)
			s.extra = int32(len(sh.extras))
		}
		if k := len(sh.spans); k == 0 || len(sh.spans[k-1]) == spanChunk {
			sh.spans = append(sh.spans, make([]span, 0, spanChunk))
		}
		last := &sh.spans[len(sh.spans)-1]
		*last = append(*last, s)
		kick = ro.stream != nil && len(*last)%streamEvery == 0
		sh.quota--
	}
	sh.mu.Unlock()
	if kick {
		ro.kick()
	}
}

// refill gives sh up to a chunk of the run's slice quota (MaxTraceSlices).
// Called with sh.mu held.
func (ro *runObs) refill(sh *obsShard) {
	if ro.taken.Load() >= MaxTraceSlices {
		return
	}
	after := ro.taken.Add(spanChunk)
	sh.quota = int(min(spanChunk, max(0, MaxTraceSlices-(after-spanChunk))))
}

// main notes that w runs a main thread of the run (its track is named so).
func (ro *runObs) main(w *engine.Worker) {
	if ro == nil || ro.o == nil || w == nil {
		return
	}
	ro.gmu.Lock()
	if ro.mainTid == nil {
		ro.mainTid = map[int32]bool{}
	}
	ro.mainTid[int32(w.ID)] = true
	ro.gmu.Unlock()
}

// spanList is a snapshot of a run's slices: each shard's chunks (not
// copied: a chunk's elements before its length never change) and tables.
type spanList []shardSnap

type shardSnap struct {
	shard  int // its index in the run's shards
	spans  [][]span
	fns    []starlark.Value
	pars   []*taskID
	extras []spanExtra
}

// all iterates over the slices, in no particular order.
func (l spanList) all(yield func(spanRec) bool) {
	for _, sh := range l {
		for _, c := range sh.spans {
			for i := range c {
				if !yield(sh.rec(&c[i])) {
					return
				}
			}
		}
	}
}

// rec resolves the fields of s, one of the shard's slices.
func (sh *shardSnap) rec(s *span) spanRec {
	r := spanRec{kind: s.kind, failed: s.failed, tid: s.tid, n: s.n, sub: s.sub, start: s.start, end: s.end}
	if s.fn >= 0 {
		r.fn = sh.fns[s.fn]
	}
	if s.parent >= 0 {
		r.parent = sh.pars[s.parent]
	}
	if s.extra > 0 {
		r.extra = &sh.extras[s.extra-1]
	}
	return r
}

// snapshot returns the run's slices and how many were dropped.
func (ro *runObs) snapshot() (spans spanList, dropped int) {
	for i := range ro.shards {
		sh := &ro.shards[i]
		sh.mu.Lock()
		if len(sh.spans) > 0 {
			// Chunks' lengths as of now; the last chunk's header is copied.
			spans = append(spans, shardSnap{
				shard:  i,
				spans:  append([][]span(nil), sh.spans...),
				fns:    sh.fns[:len(sh.fns):len(sh.fns)],
				pars:   sh.pars[:len(sh.pars):len(sh.pars)],
				extras: sh.extras[:len(sh.extras):len(sh.extras)],
			})
		}
		dropped += sh.drops
		sh.mu.Unlock()
	}
	return spans, dropped
}

// stats returns the per-function summary, merged over shards, in the
// order the functions first ran.
func (ro *runObs) stats() []*fnStat {
	byFn := map[starlark.Value]*fnStat{}
	var list []*fnStat
	for i := range ro.shards {
		sh := &ro.shards[i]
		sh.mu.Lock()
		for fn, s := range sh.stats {
			m := byFn[fn]
			if m == nil {
				m = &fnStat{name: valueName(fn), first: s.first}
				byFn[fn] = m
				list = append(list, m)
			}
			m.first = min(m.first, s.first)
			m.calls += s.calls
			m.failures += s.failures
			m.total += s.total
			m.max = max(m.max, s.max)
		}
		sh.mu.Unlock()
	}
	return list
}

// valueName names a function for views.
func valueName(v starlark.Value) string {
	if c, ok := v.(starlark.Callable); ok {
		return c.Name()
	}
	return v.String()
}

// defPos returns where fn was defined, or "".
func defPos(v starlark.Value) string {
	if f, ok := v.(*starlark.Function); ok {
		return f.Position().String()
	}
	return ""
}
