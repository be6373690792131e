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
// Chunks adapt to the work: they start at one item and grow while items are
// quick, so that a chunk holds about 100µs of work (at most Chunk items).
// Slow items thus go out one by one and spread over the workers, while a
// million trivial items cost two channel operations per few hundred items.
// A chunk also goes out early if pulling it takes over a millisecond (a slow
// source). Completion order is per chunk: within a chunk, input order.
//
// Each worker loop calls Start once on its goroutine with the loop's
// context, and uses the function it returns for every item it runs; there is
// no goroutine, channel operation or context allocation per item unless
// Timeout is set (then each item gets its own context with a deadline).
//
// When the calling goroutine would wait and no worker loop has started
// within 50ms (for example because the pool has reached its hard cap, every
// worker running an outer job), it runs queued chunks itself, with Caller as
// the worker, until a loop starts: nested maps never deadlock whatever the
// pool sizes. While it
// waits it marks Caller as blocked ([Worker.Block]).
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
// Run executes on ex: a [*Pool] (Workers loops, each a pool task for the
// whole run) or [Inline], which runs every item on the calling goroutine, in
// input order, one at a time (sequential mode).
//
// A Mapper is a configuration; it may be used for any number of runs, also
// concurrently. Start must be set; Run panics otherwise.
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
	// Caller is the worker of the goroutine that calls Run, if it has one:
	// it is marked blocked while Run waits, and runs items when no worker
	// loop has started. nil means a worker with no pool and no Local.
	Caller *Worker
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
		fmt.Fprintf(&b, "item %d failed: %v", e.Failed.Index, e.Failed.Err)
	} else {
		fmt.Fprintf(&b, "cancelled: %v", e.Cause)
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

func (e *TimeoutError) Error() string        { return "timed out after " + e.Timeout.String() }
func (e *TimeoutError) Unwrap() error        { return e.Err }
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// errNotStarted marks a pulled item that never ran; errStopped is the cause
// of contexts cancelled because another item failed.
var (
	errNotStarted = errors.New("not started")
	errStopped    = errors.New("stopped: another item failed")
)

// cancelledErr marks the error of an item cancelled while it ran.
type cancelledErr struct{ err error }

func (e *cancelledErr) Error() string { return e.err.Error() }

// chunkTarget is how much work a chunk should hold once item costs are known.
const chunkTarget = 100 * time.Microsecond

// helpDelay is how long Run waits for a first worker loop to start before
// it runs items itself. Loops normally start within microseconds; waiting
// keeps the calling goroutine free to pull and emit in the common case.
const helpDelay = 50 * time.Millisecond

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

// mapRun is the state of one Run.
type mapRun[In, Out any] struct {
	m       *Mapper[In, Out]
	ctx     context.Context // the run's; cancelled when it stops
	cancel  context.CancelCauseFunc
	limit   atomic.Int64  // items above it are not started (after a failure)
	active  atomic.Int32  // worker loops that have started
	started chan struct{} // closed when the first loop starts
	tcause  *TimeoutError
	todo    chan *mapChunk[In, Out]
	done    chan *mapChunk[In, Out]

	mu        sync.Mutex
	slots     []*loopSlot
	finished  bool // loops that start from now on return at once
	wg        sync.WaitGroup
	cancelled []MapItem[In]
	panicked  *PanicError
}

// Run pulls items from next until it reports false, processes them as
// described on [Mapper], and calls emit on the calling goroutine with each
// item and its result (with KeepGoing, each failed item and its error too). It returns when every
// worker loop has stopped: nil if every pulled item was emitted, a
// [*MapError] if an item failed or ctx ended, or the error of next or emit
// (which also stop the run).
func (m *Mapper[In, Out]) Run(ctx context.Context, ex Executor, next func() (In, bool, error), emit func(i int, item In, v Out, err error) error) error {
	if m.Start == nil {
		panic("engine: Mapper.Start is nil")
	}
	if in, ok := ex.(Inline); ok {
		return m.runInline(ctx, in.Worker, next, emit)
	}
	workers := max(m.Workers, 1)
	maxChunk := m.Chunk
	if maxChunk <= 0 {
		maxChunk = 256
	}
	window := m.Window
	if window <= 0 {
		window = max(16*workers, 64)
	}
	r := &mapRun[In, Out]{
		m:       m,
		todo:    make(chan *mapChunk[In, Out], window),
		done:    make(chan *mapChunk[In, Out], window),
		started: make(chan struct{}),
	}
	if m.Timeout > 0 {
		r.tcause = &TimeoutError{Timeout: m.Timeout}
	}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	defer r.cancel(nil)
	rdone := r.ctx.Done()
	r.limit.Store(math.MaxInt64)
	caller := m.Caller
	if caller == nil {
		caller = &Worker{}
	}

	var (
		seq, pulled int // chunks sent, items pulled
		inflight    int // chunks sent and not emitted
		outstanding int // chunks sent and not received back
		exhausted   bool
		submitted   int
		size        = 1 // items per chunk, adapted
		est         time.Duration
		reorder     = make([]*mapChunk[In, Out], window)
		emitSeq     int
		free        []*mapChunk[In, Out]
		fail        *MapItem[In]
		result      error // of next or emit
		emitted     int
		notStarted  int
		zero        Out
		helpAfter   *time.Timer
		helping     bool
	)
	halted := func() bool {
		if fail != nil || result != nil {
			return true
		}
		select {
		case <-rdone:
			return true
		default:
			return false
		}
	}
	emitChunk := func(c *mapChunk[In, Out]) {
		for k := range c.items {
			var err error
			if c.errs != nil {
				err = c.errs[k]
			}
			switch {
			case err == errNotStarted:
				notStarted++
				continue
			case err != nil:
				if _, ok := err.(*cancelledErr); ok {
					continue // listed in r.cancelled
				}
			}
			if halted() {
				continue
			}
			i := c.base + k
			if err != nil && !m.KeepGoing {
				fail = &MapItem[In]{Index: i, Value: c.items[k], Err: err}
				r.cancel(errStopped)
				continue
			}
			v := c.out[k]
			if err != nil {
				v = zero
			}
			if e := emit(i, c.items[k], v, err); e != nil {
				result = e
				r.cancel(e)
				continue
			}
			emitted++
		}
		clear(c.items)
		clear(c.out)
		c.items, c.out, c.errs = c.items[:0], c.out[:0], nil
		free = append(free, c)
	}
	handle := func(c *mapChunk[In, Out]) {
		outstanding--
		if c.ran > 0 && c.errs == nil {
			per := c.dur / time.Duration(c.ran)
			if est == 0 {
				est = per
			} else {
				est = (3*est + per) / 4
			}
			want := maxChunk
			if est > 0 {
				want = int(min(int64(chunkTarget/est), int64(maxChunk)))
			}
			size = max(1, min(want, 2*size))
		}
		if !m.Ordered {
			inflight--
			emitChunk(c)
			return
		}
		reorder[c.seq%window] = c
		for {
			c := reorder[emitSeq%window]
			if c == nil || c.seq != emitSeq {
				break
			}
			reorder[emitSeq%window] = nil
			emitSeq++
			inflight--
			emitChunk(c)
		}
	}

	for {
		// Feed the workers while the window has room.
		for !exhausted && !halted() && inflight < window && r.limit.Load() == math.MaxInt64 {
			var c *mapChunk[In, Out]
			if n := len(free); n > 0 {
				c, free = free[n-1], free[:n-1]
			} else {
				c = &mapChunk[In, Out]{}
			}
			c.seq, c.base, c.ran, c.dur = seq, pulled, 0, 0
			var t0 time.Time
			if size > 1 {
				t0 = time.Now()
			}
			for len(c.items) < size {
				x, ok, err := next()
				if err != nil {
					result = err
					r.cancel(err)
					break
				}
				if !ok {
					exhausted = true
					break
				}
				c.items = append(c.items, x)
				if len(c.items)%16 == 0 && time.Since(t0) > time.Millisecond {
					break // a slow source: send what we have
				}
			}
			if len(c.items) == 0 {
				free = append(free, c)
				break
			}
			pulled += len(c.items)
			if n := len(c.items); cap(c.out) >= n {
				c.out = c.out[:n] // zeroed when recycled
			} else {
				c.out = make([]Out, n)
			}
			seq++
			inflight++
			outstanding++
			r.todo <- c // never blocks: fewer than window chunks are out
			if submitted < workers {
				submitted++
				if err := ex.Go(r.ctx, r.loop); err != nil && submitted == 1 {
					result = err
					r.cancel(err)
				}
			}
			// Emit what is ready without waiting.
		drain:
			for {
				select {
				case c := <-r.done:
					handle(c)
				default:
					break drain
				}
			}
		}
		if outstanding == 0 && (exhausted || halted()) {
			break
		}
		select {
		case c := <-r.done:
			handle(c)
			continue
		default:
		}
		if r.active.Load() == 0 {
			// No worker loop has started. Give them a moment (normally
			// they start within microseconds), then run queued chunks here.
			if !helping {
				if helpAfter == nil {
					helpAfter = time.NewTimer(helpDelay)
					defer helpAfter.Stop()
				}
				select {
				case c := <-r.done:
					handle(c)
					continue
				case <-r.started:
					continue
				case <-helpAfter.C:
					helping = true
				}
			}
			{
				select {
				case c := <-r.todo:
					r.help(caller, c)
					handle(c)
					continue
				default:
				}
			}
		}
		unblock := caller.Block()
		c := <-r.done
		unblock()
		handle(c)
	}

	close(r.todo)
	r.mu.Lock()
	r.finished = true
	r.mu.Unlock()
	unblock := caller.Block()
	r.wg.Wait()
	unblock()
	if r.panicked != nil {
		panic(r.panicked)
	}
	var me *MapError[In]
	switch {
	case fail != nil:
		me = &MapError[In]{Failed: fail}
	case result != nil:
		return result
	case ctx.Err() != nil && !(exhausted && emitted == pulled):
		me = &MapError[In]{Cause: context.Cause(ctx)}
	default:
		return nil
	}
	sort.Slice(r.cancelled, func(a, b int) bool { return r.cancelled[a].Index < r.cancelled[b].Index })
	me.Cancelled, me.Done, me.NotStarted = r.cancelled, emitted, notStarted
	return me
}

// loop is one worker loop: a pool task that runs chunks until todo closes.
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
	r.wg.Add(1)
	if r.active.Add(1) == 1 {
		close(r.started)
	}
	r.mu.Unlock()
	defer r.wg.Done()
	defer lcancel(nil)

	fn, stop := r.start(lctx, w)
	for c := range r.todo {
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

// runInline runs every item on the calling goroutine, in input order.
func (m *Mapper[In, Out]) runInline(ctx context.Context, w *Worker, next func() (In, bool, error), emit func(i int, item In, v Out, err error) error) error {
	if w == nil {
		w = &Worker{}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fn, stop := m.Start(ctx, w)
	if stop != nil {
		defer stop()
	}
	var zero Out
	var tcause *TimeoutError
	if m.Timeout > 0 {
		tcause = &TimeoutError{Timeout: m.Timeout}
	}
	done := 0
	cdone := ctx.Done()
	for i := 0; ; i++ {
		select {
		case <-cdone:
			return &MapError[In]{Cause: context.Cause(ctx), Done: done}
		default:
		}
		x, ok, err := next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		var v Out
		if tcause != nil {
			ictx, icancel := context.WithTimeoutCause(ctx, m.Timeout, tcause)
			v, err = fn(ictx, i, x)
			if context.Cause(ictx) == tcause {
				err = &TimeoutError{Timeout: m.Timeout, Err: err}
			}
			icancel()
		} else {
			v, err = fn(ctx, i, x)
		}
		if err != nil {
			if _, timedOut := err.(*TimeoutError); !timedOut && ctx.Err() != nil {
				return &MapError[In]{Cause: context.Cause(ctx), Done: done,
					Cancelled: []MapItem[In]{{Index: i, Value: x, Err: err}}}
			}
			if !m.KeepGoing {
				return &MapError[In]{Failed: &MapItem[In]{Index: i, Value: x, Err: err}, Done: done}
			}
			v = zero
		}
		if err := emit(i, x, v, err); err != nil {
			return err
		}
		done++
	}
}
