package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A MapFunc processes one item: i is its index in input order (from 0).
// ctx is the context the item runs under: the worker's context, or with
// [Mapper.Timeout] a context of the item's own that ends at its deadline.
type MapFunc[In, Out any] func(ctx context.Context, i int, item In) (Out, error)

// A Mapper applies a function to a stream of items on a fixed number of
// long-running worker loops: a parallel map with bounded memory.
//
// [Mapper.Run] pulls items one at a time from a function on the calling
// goroutine (so the source need not be safe for concurrent use, and is
// never materialised), hands them to the workers in chunks, and emits the
// results on the calling goroutine, in input order or, if Ordered is false,
// in completion order. At most Window chunks are between being pulled and
// being emitted, so memory does not grow with the number of items.
//
// # Capacity
//
// Chunks adapt to the work: they start at one item and grow while items are
// quick, so that a chunk holds about 100µs of work (at most Chunk items).
// Slow items thus go out one by one and spread over the workers, while a
// million trivial items cost two channel operations per few hundred items.
// A chunk also goes out early if pulling it takes over a millisecond (a slow
// source). Completion order is per chunk: within a chunk, input order. On a
// serial [Pool] every chunk is one item, so that which loop runs which item
// does not depend on timing.
//
// Each worker loop is one task of the executor for the whole run. Loops
// are submitted with [Executor.TryGo], one per chunk sent until there are
// Workers of them. The calling goroutine runs chunks itself exactly when
// no loop has been accepted and none can be (the executor is at its hard
// cap, for example every worker of a pool with [PoolOptions.Max] runs an
// outer map and waits for this one): so nested maps never deadlock, and
// otherwise the caller only pulls and emits. It tries again to submit a
// loop before each chunk it runs.
//
// # Cost
//
// Each worker loop calls Start once on its goroutine with the loop's
// context, and uses the function it returns for every item it runs; there is
// no goroutine, channel operation or context allocation per item unless
// Timeout is set (then each item gets its own context with a deadline, a
// real-time one even on a serial pool).
//
// # Ending
//
// Errors: unless KeepGoing is set, the first failing item stops the run.
// With Ordered it is the first failing item in input order: items after it
// are cancelled (running ones see their context end, queued ones never
// start) but items before it still complete, so which failure is reported
// does not depend on timing. Without Ordered, the first failure to arrive
// cancels everything else. Run then returns a [*MapError] naming the item.
// With KeepGoing, failed items are emitted with their error and the run goes
// on. When ctx ends, no item starts any more, running items see their
// context end, and Run returns a *MapError listing the items that were
// running (Cancelled) with ctx's cause.
//
// A panic in Start or in an item is re-raised by Run, with the stack of the
// goroutine that panicked, once every worker loop has stopped.
//
// A Mapper is a configuration; it may be used for any number of runs, also
// concurrently (that is why the caller's worker is a parameter of Run, not
// a field). Start must be set; Run panics otherwise.
type Mapper[In, Out any] struct {
	// Workers is the number of worker loops (at least 1).
	Workers int
	// Ordered emits results in input order; otherwise in completion order.
	Ordered bool
	// KeepGoing emits failed items with their error instead of stopping.
	KeepGoing bool
	// Timeout, if positive, limits each item: its context ends after
	// Timeout and the item fails with a [*TimeoutError].
	Timeout time.Duration
	// Chunk is the largest number of items handed over at once (0: 256).
	Chunk int
	// Window is how many chunks may be pulled and not yet emitted
	// (0: 16 per worker, at least 64).
	Window int
	// Start prepares a worker (or the calling goroutine, see above) to run
	// items under ctx, on that worker's goroutine. It returns the function
	// that runs each item and a function called when the worker is done
	// with the run (stop may be nil).
	Start func(ctx context.Context, w *Worker) (fn MapFunc[In, Out], stop func())
}

// A MapItem is one item of a [Mapper] run: its index, value and error.
type MapItem[In any] struct {
	Index int
	Value In
	Err   error
}

// A MapError reports why [Mapper.Run] stopped before every item was emitted:
// an item failed (Failed), or ctx ended (Cause).
type MapError[In any] struct {
	// Failed is the item whose error stopped the run, or nil.
	Failed *MapItem[In]
	// Cause is ctx's cause if the run stopped because ctx ended.
	Cause error
	// Cancelled lists, in input order, the items that were running when
	// the run stopped and ended with an error because of it.
	Cancelled []MapItem[In]
	// Done is the number of items emitted; NotStarted the number pulled
	// from the source that never started.
	Done, NotStarted int
}

func (e *MapError[In]) Error() string {
	var b strings.Builder
	if e.Failed != nil {
		fmt.Fprintf(&b, "engine: item %d failed: %v", e.Failed.Index, e.Failed.Err)
	} else {
		fmt.Fprintf(&b, "engine: cancelled: %v", e.Cause)
	}
	if len(e.Cancelled) > 0 {
		idx := make([]string, len(e.Cancelled))
		for k, it := range e.Cancelled {
			idx[k] = fmt.Sprint(it.Index)
		}
		fmt.Fprintf(&b, "; running items cancelled: %s", strings.Join(idx, ", "))
	}
	fmt.Fprintf(&b, "; %d done, %d not started", e.Done, e.NotStarted)
	return b.String()
}

// Unwrap returns the failed item's error or the cause.
func (e *MapError[In]) Unwrap() error {
	if e.Failed != nil {
		return e.Failed.Err
	}
	return e.Cause
}

// A TimeoutError is the error of an item that ran longer than
// [Mapper.Timeout]. It matches [ErrTimeout] with errors.Is.
type TimeoutError struct {
	Timeout time.Duration
	// Err is what the item returned once its context ended (typically a
	// cancellation error with the item's own stack), or nil.
	Err error
}

func (e *TimeoutError) Error() string        { return "engine: timed out after " + e.Timeout.String() }
func (e *TimeoutError) Unwrap() error        { return e.Err }
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// errNotStarted marks a pulled item that never ran; errStopped is the cause
// of contexts cancelled because another item failed.
var (
	errNotStarted = errors.New("not started")
	errStopped    = errors.New("engine: stopped: another item failed")
)

// cancelledErr marks the error of an item cancelled while it ran.
type cancelledErr struct{ err error }

func (e *cancelledErr) Error() string { return e.err.Error() }

// chunkTarget is how much work a chunk should hold once item costs are known.
const chunkTarget = 100 * time.Microsecond

type mapChunk[In, Out any] struct {
	seq, base int
	items     []In
	out       []Out
	errs      []error // nil unless an item did not succeed
	dur       time.Duration
	ran       int // items that started
}

func (c *mapChunk[In, Out]) setErr(k int, err error) {
	if c.errs == nil {
		c.errs = make([]error, len(c.items))
	}
	c.errs[k] = err
}

// loopSlot is what stopAt needs of a running worker: the item it runs and
// how to cancel it. Padded so that workers do not share a cache line.
type loopSlot struct {
	cur    atomic.Int64
	cancel context.CancelCauseFunc // set under mapRun.mu
	_      [48]byte
}

// mapRun is the state of one Run. The fields above mu are the caller's:
// only the goroutine that called Run touches them (help too runs there).
type mapRun[In, Out any] struct {
	m      *Mapper[In, Out]
	ex     Executor
	caller *Worker
	next   func() (In, bool, error)
	emit   func(i int, item In, v Out, err error) error

	ctx    context.Context // the run's; cancelled when it stops
	cancel context.CancelCauseFunc
	limit  atomic.Int64 // items above it are not started (after a failure)
	tcause *TimeoutError
	todo   chan *mapChunk[In, Out]
	done   chan *mapChunk[In, Out]

	workers, maxChunk, window int
	submitted                 int  // loops the executor accepted
	noLoops                   bool // the executor refused a loop with an error

	seq, pulled int // chunks sent, items pulled
	inflight    int // chunks sent and not emitted
	outstanding int // chunks sent and not received back
	exhausted   bool
	size        int // items per chunk, adapted
	est         time.Duration
	reorder     []*mapChunk[In, Out]
	emitSeq     int
	free        []*mapChunk[In, Out]
	fail        *MapItem[In]
	result      error // of next or emit, or the executor's refusal
	emitted     int
	notStarted  int

	mu        sync.Mutex
	slots     []*loopSlot
	finished  bool          // loops that start from now on return at once
	loops     int           // loops running
	stopped   chan struct{} // closed once finished and no loop runs
	cancelled []MapItem[In]
	panicked  *PanicError
}

// Run pulls items from next until it reports false, processes them as
// described on [Mapper], and calls emit on the calling goroutine with each
// item and its result (with KeepGoing, each failed item and its error
// too). w is the calling goroutine's [Worker] (nil if it has none): Run
// waits through [Recv] with it, and runs chunks as w when it must (see
// [Mapper]). Run returns when every worker loop has stopped: nil if every
// pulled item was emitted, a [*MapError] if an item failed or ctx ended,
// or the error of next or emit (which also stop the run).
func (m *Mapper[In, Out]) Run(ctx context.Context, ex Executor, w *Worker, next func() (In, bool, error), emit func(i int, item In, v Out, err error) error) error {
	if m.Start == nil {
		panic("engine: Mapper.Start is nil")
	}
	r := m.newRun(ctx, ex, w, next, emit)
	defer r.cancel(nil)
	for {
		r.feed()
		if r.outstanding == 0 && (r.exhausted || r.halted()) {
			break
		}
		r.receive()
	}
	return r.finish(ctx)
}

func (m *Mapper[In, Out]) newRun(ctx context.Context, ex Executor, w *Worker, next func() (In, bool, error), emit func(i int, item In, v Out, err error) error) *mapRun[In, Out] {
	r := &mapRun[In, Out]{
		m: m, ex: ex, caller: w, next: next, emit: emit,
		workers:  max(m.Workers, 1),
		maxChunk: m.Chunk,
		window:   m.Window,
		size:     1,
		stopped:  make(chan struct{}),
	}
	if r.caller == nil {
		r.caller = &Worker{}
	}
	if r.maxChunk <= 0 {
		r.maxChunk = 256
	}
	if s, ok := ex.(interface{ Serial() bool }); ok && s.Serial() {
		r.maxChunk = 1 // chunk sizes must not depend on timing
	}
	if r.window <= 0 {
		r.window = max(16*r.workers, 64)
	}
	r.todo = make(chan *mapChunk[In, Out], r.window)
	r.done = make(chan *mapChunk[In, Out], r.window)
	r.reorder = make([]*mapChunk[In, Out], r.window)
	if m.Timeout > 0 {
		r.tcause = &TimeoutError{Timeout: m.Timeout}
	}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	r.limit.Store(math.MaxInt64)
	return r
}

// halted reports whether the run stops pulling and emitting.
func (r *mapRun[In, Out]) halted() bool {
	return r.fail != nil || r.result != nil || r.ctx.Err() != nil
}

// feed pulls chunks and sends them to the worker loops while the window
// has room, starting loops as it goes, and emits what is ready meanwhile.
func (r *mapRun[In, Out]) feed() {
	for !r.exhausted && !r.halted() && r.inflight < r.window && r.limit.Load() == math.MaxInt64 {
		c := r.pull()
		if c == nil {
			return
		}
		r.seq++
		r.inflight++
		r.outstanding++
		r.todo <- c // never blocks: fewer than window chunks are out
		if r.submitted < r.workers && !r.noLoops {
			r.startLoop()
		}
		// Emit what is ready without waiting.
		for {
			select {
			case c := <-r.done:
				r.handle(c)
				continue
			default:
			}
			break
		}
	}
}

// pull pulls the next chunk from the source, or returns nil if there is
// nothing more (the source ended or failed).
func (r *mapRun[In, Out]) pull() *mapChunk[In, Out] {
	var c *mapChunk[In, Out]
	if n := len(r.free); n > 0 {
		c, r.free = r.free[n-1], r.free[:n-1]
	} else {
		c = &mapChunk[In, Out]{}
	}
	c.seq, c.base, c.ran, c.dur = r.seq, r.pulled, 0, 0
	var t0 time.Time
	if r.size > 1 {
		t0 = time.Now()
	}
	for len(c.items) < r.size {
		x, ok, err := r.next()
		if err != nil {
			r.result = err
			r.cancel(err)
			break
		}
		if !ok {
			r.exhausted = true
			break
		}
		c.items = append(c.items, x)
		if len(c.items)%16 == 0 && time.Since(t0) > time.Millisecond {
			break // a slow source: send what we have
		}
	}
	if len(c.items) == 0 {
		r.free = append(r.free, c)
		return nil
	}
	r.pulled += len(c.items)
	if n := len(c.items); cap(c.out) >= n {
		c.out = c.out[:n] // zeroed when recycled
	} else {
		c.out = make([]Out, n)
	}
	return c
}

// startLoop submits one more worker loop, unless the executor is at its
// hard cap. A refusal with an error stops the run if no loop was accepted.
func (r *mapRun[In, Out]) startLoop() {
	ok, err := r.ex.TryGo(r.ctx, r.loop)
	switch {
	case err != nil:
		r.noLoops = true
		if r.submitted == 0 {
			r.result = err
			r.cancel(err)
		}
	case ok:
		r.submitted++
	}
}

// receive waits for one chunk to come back and handles it. If no loop was
// accepted and none can be, the caller runs a queued chunk itself: every
// outstanding chunk is then still queued.
func (r *mapRun[In, Out]) receive() {
	select {
	case c := <-r.done:
		r.handle(c)
		return
	default:
	}
	if r.submitted == 0 && !r.noLoops {
		r.startLoop()
	}
	if r.submitted == 0 {
		select {
		case c := <-r.todo:
			r.help(r.caller, c)
			r.handle(c)
			return
		default:
		}
	}
	// Loops return every chunk promptly once the run is cancelled, so
	// this wait needs no context of its own.
	c, _, _ := Recv(context.Background(), r.caller, r.done, 0)
	r.handle(c)
}

// handle takes a chunk back from a loop: it adapts the chunk size to the
// time its items took and emits it, in input order if Ordered.
func (r *mapRun[In, Out]) handle(c *mapChunk[In, Out]) {
	r.outstanding--
	if c.ran > 0 && c.errs == nil {
		per := c.dur / time.Duration(c.ran)
		if r.est == 0 {
			r.est = per
		} else {
			r.est = (3*r.est + per) / 4
		}
		want := r.maxChunk
		if r.est > 0 {
			want = int(min(int64(chunkTarget/r.est), int64(r.maxChunk)))
		}
		r.size = max(1, min(want, 2*r.size))
	}
	if !r.m.Ordered {
		r.inflight--
		r.emitChunk(c)
		return
	}
	r.reorder[c.seq%r.window] = c
	for {
		c := r.reorder[r.emitSeq%r.window]
		if c == nil || c.seq != r.emitSeq {
			break
		}
		r.reorder[r.emitSeq%r.window] = nil
		r.emitSeq++
		r.inflight--
		r.emitChunk(c)
	}
}

// emitChunk emits the items of c (unless the run has halted) and recycles
// the chunk.
func (r *mapRun[In, Out]) emitChunk(c *mapChunk[In, Out]) {
	var zero Out
	for k := range c.items {
		var err error
		if c.errs != nil {
			err = c.errs[k]
		}
		switch {
		case err == errNotStarted:
			r.notStarted++
			continue
		case err != nil:
			if _, ok := err.(*cancelledErr); ok {
				continue // listed in r.cancelled
			}
		}
		if r.halted() {
			continue
		}
		i := c.base + k
		if err != nil && !r.m.KeepGoing {
			r.fail = &MapItem[In]{Index: i, Value: c.items[k], Err: err}
			r.cancel(errStopped)
			continue
		}
		v := c.out[k]
		if err != nil {
			v = zero
		}
		if e := r.emit(i, c.items[k], v, err); e != nil {
			r.result = e
			r.cancel(e)
			continue
		}
		r.emitted++
	}
	clear(c.items)
	clear(c.out)
	c.items, c.out, c.errs = c.items[:0], c.out[:0], nil
	r.free = append(r.free, c)
}

// finish stops the worker loops, waits for them, and returns the run's
// outcome (re-raising a panic).
func (r *mapRun[In, Out]) finish(ctx context.Context) error {
	close(r.todo)
	r.mu.Lock()
	r.finished = true
	if r.loops == 0 {
		close(r.stopped)
	}
	r.mu.Unlock()
	Recv(context.Background(), r.caller, r.stopped, 0) //nolint:errcheck // cannot fail; loops end once todo is closed
	if r.panicked != nil {
		panic(r.panicked)
	}
	var me *MapError[In]
	switch {
	case r.fail != nil:
		me = &MapError[In]{Failed: r.fail}
	case r.result != nil:
		return r.result
	case ctx.Err() != nil && !(r.exhausted && r.emitted == r.pulled):
		me = &MapError[In]{Cause: context.Cause(ctx)}
	default:
		return nil
	}
	sort.Slice(r.cancelled, func(a, b int) bool { return r.cancelled[a].Index < r.cancelled[b].Index })
	me.Cancelled, me.Done, me.NotStarted = r.cancelled, r.emitted, r.notStarted
	return me
}

// loop is one worker loop: a task that runs chunks until todo closes.
func (r *mapRun[In, Out]) loop(_ context.Context, w *Worker) {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return
	}
	slot := &loopSlot{}
	slot.cur.Store(-1)
	lctx, lcancel := context.WithCancelCause(r.ctx)
	slot.cancel = lcancel
	r.slots = append(r.slots, slot)
	r.loops++
	r.mu.Unlock()
	defer func() {
		lcancel(nil)
		r.mu.Lock()
		if r.loops--; r.loops == 0 && r.finished {
			close(r.stopped)
		}
		r.mu.Unlock()
	}()

	fn, stop := r.start(lctx, w)
	for {
		// The caller closes todo once every chunk is back, cancelled or
		// not, so this wait needs no context.
		c, ok, _ := Recv(context.Background(), w, r.todo, 0)
		if !ok {
			break
		}
		r.process(lctx, slot, fn, c)
		r.done <- c // never blocks: done has room for every chunk out
	}
	if stop != nil {
		r.guard(stop)
	}
}

// help runs chunk c on the calling goroutine, as worker w.
func (r *mapRun[In, Out]) help(w *Worker, c *mapChunk[In, Out]) {
	slot := &loopSlot{}
	slot.cur.Store(-1)
	lctx, lcancel := context.WithCancelCause(r.ctx)
	slot.cancel = lcancel
	r.mu.Lock()
	r.slots = append(r.slots, slot)
	r.mu.Unlock()
	fn, stop := r.start(lctx, w)
	r.process(lctx, slot, fn, c)
	if stop != nil {
		r.guard(stop)
	}
	lcancel(nil)
	r.mu.Lock()
	for k, s := range r.slots {
		if s == slot {
			r.slots = append(r.slots[:k], r.slots[k+1:]...)
			break
		}
	}
	r.mu.Unlock()
}

// start calls Mapper.Start; after a panic it returns a nil fn.
func (r *mapRun[In, Out]) start(ctx context.Context, w *Worker) (fn MapFunc[In, Out], stop func()) {
	r.guard(func() { fn, stop = r.m.Start(ctx, w) })
	return fn, stop
}

// guard calls f and turns a panic into the run's failure.
func (r *mapRun[In, Out]) guard(f func()) {
	defer func() {
		if p := recover(); p != nil {
			r.panic(&PanicError{Value: p, Stack: debug.Stack()})
		}
	}()
	f()
}

func (r *mapRun[In, Out]) panic(p *PanicError) {
	r.mu.Lock()
	if r.panicked == nil {
		r.panicked = p
	}
	r.mu.Unlock()
	r.cancel(p)
}

// process runs the items of c with fn (nil after a panic: nothing runs).
func (r *mapRun[In, Out]) process(lctx context.Context, slot *loopSlot, fn MapFunc[In, Out], c *mapChunk[In, Out]) {
	start := time.Now()
	k := 0
	defer func() {
		slot.cur.Store(-1)
		c.dur = time.Since(start)
		if p := recover(); p != nil {
			pe := &PanicError{Value: p, Stack: debug.Stack()}
			r.panic(pe)
			c.setErr(k, pe)
			for k++; k < len(c.items); k++ {
				c.setErr(k, errNotStarted)
			}
		}
	}()
	if fn == nil {
		for ; k < len(c.items); k++ {
			c.setErr(k, errNotStarted)
		}
		return
	}
	timeout := r.m.Timeout
	ldone := lctx.Done()
	for ; k < len(c.items); k++ {
		i := c.base + k
		// Publish the item before reading the limit; stopAt writes the
		// limit before reading cur. So either this item sees the new limit
		// or stopAt sees this item and cancels it.
		slot.cur.Store(int64(i))
		if int64(i) > r.limit.Load() {
			c.setErr(k, errNotStarted)
			continue
		}
		select {
		case <-ldone:
			c.setErr(k, errNotStarted)
			continue
		default:
		}
		c.ran++
		var (
			v   Out
			err error
		)
		if timeout > 0 {
			ictx, icancel := context.WithTimeoutCause(lctx, timeout, r.tcause)
			v, err = fn(ictx, i, c.items[k])
			if context.Cause(ictx) == r.tcause {
				err = &TimeoutError{Timeout: timeout, Err: err}
			}
			icancel()
		} else {
			v, err = fn(lctx, i, c.items[k])
		}
		if err == nil {
			c.out[k] = v
			continue
		}
		if _, timedOut := err.(*TimeoutError); !timedOut && lctx.Err() != nil {
			c.setErr(k, &cancelledErr{err})
			r.mu.Lock()
			r.cancelled = append(r.cancelled, MapItem[In]{Index: i, Value: c.items[k], Err: err})
			r.mu.Unlock()
			continue
		}
		c.setErr(k, err)
		if !r.m.KeepGoing {
			r.stopAt(i)
		}
	}
}

// stopAt records that item i failed: no item after it starts (no other
// item at all if the run is unordered), and running ones are cancelled.
func (r *mapRun[In, Out]) stopAt(i int) {
	lim := int64(i)
	if !r.m.Ordered {
		lim = -1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if lim < r.limit.Load() {
		r.limit.Store(lim)
	}
	lim = r.limit.Load()
	for _, s := range r.slots {
		if s.cur.Load() > lim {
			s.cancel(errStopped)
		}
	}
}
