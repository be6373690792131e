package engine

import (
	"context"
	"sync"
)

// A Dispatcher delivers posted values to a handler one batch at a time, in
// post order, on a drain task of its own. [Dispatcher.Post] never blocks:
// the queue is unbounded. The drain task is started on the executor given
// to Post when a value arrives and none is running, and it returns as soon
// as the queue is empty, so an idle Dispatcher holds no goroutine (on a
// [Pool], the worker goes back to the pool). Posting on an [Inline]
// executor runs the drain at once on the caller's goroutine; a Post from
// inside the handler then only queues, and the running drain delivers the
// value after the current batch, so the order stays FIFO.
//
// The handler receives the queued values in batches of up to 256, so that
// per-drain set-up is paid once per batch rather than per value. The queue
// is a list of fixed-size chunks, recycled, so a backlog of any length
// costs no copying. It returns how many values of the batch it handled: it may stop
// early (its context is done), and the rest go back to the front of the
// queue, in order, for the next drain. A handler must not wait for its own Dispatcher
// ([Dispatcher.Wait] from inside it waits forever). A panic in the handler
// is caught (the batch counts as handled) and re-raised, with the drain's
// stack, by the next [Dispatcher.Wait].
//
// All methods are safe for concurrent use. The zero Dispatcher is not
// usable; call [NewDispatcher].
type Dispatcher[T any] struct {
	handle func(ctx context.Context, w *Worker, batch []T) (handled int)

	mu       sync.Mutex
	q        chunkQueue[T]
	running  bool
	lastCtx  context.Context // of the latest Post or Resume, and its executor:
	lastEx   Executor        // a drain whose context ends hands over to them
	closed   bool
	posted   uint64
	handled  uint64
	waiters  []dispatchWaiter
	panicked *PanicError
}

type dispatchWaiter struct {
	n  uint64 // wake when handled reaches n
	ch chan struct{}
}

// NewDispatcher returns a dispatcher that calls handle with batches of
// posted values, in order, one batch at a time. ctx is the context of the
// Post that started the drain; once it is done, the drain stops and leaves
// the rest queued for the next drain, which starts at once if a later Post
// or Resume brought a context still live.
func NewDispatcher[T any](handle func(ctx context.Context, w *Worker, batch []T) (handled int)) *Dispatcher[T] {
	return &Dispatcher[T]{handle: handle}
}

// Post queues v and, if no drain is running, starts one on ex with ctx.
// It fails with [ErrClosed] after [Dispatcher.Close], or with ex's error
// if ex refuses the drain; then the values queued and not yet handled are
// dropped (counted as handled) so that waiters do not wait forever.
func (d *Dispatcher[T]) Post(ctx context.Context, ex Executor, v T) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	d.q.push(v)
	d.posted++
	d.lastCtx, d.lastEx = ctx, ex
	if d.running {
		d.mu.Unlock()
		return nil
	}
	d.running = true
	d.mu.Unlock()
	return d.start(ctx, ex)
}

// Resume starts a drain on ex with ctx if values are queued and no drain
// is running: after a drain stopped because its context ended, the values
// it left wait for the next Post, or for Resume. (If a drain is running
// but its context has ended, it hands over to the context of the latest
// Post or Resume as it stops.) It fails like Post if ex refuses the drain.
func (d *Dispatcher[T]) Resume(ctx context.Context, ex Executor) error {
	d.mu.Lock()
	d.lastCtx, d.lastEx = ctx, ex
	if d.running || d.q.empty() {
		d.mu.Unlock()
		return nil
	}
	d.running = true
	d.mu.Unlock()
	return d.start(ctx, ex)
}

// start runs a drain on ex; running is already set.
func (d *Dispatcher[T]) start(ctx context.Context, ex Executor) error {
	if err := ex.Go(ctx, d.drain); err != nil {
		d.mu.Lock()
		d.running = false
		d.q.reset()
		d.handled = d.posted
		d.notifyLocked()
		d.mu.Unlock()
		return err
	}
	return nil
}

func (d *Dispatcher[T]) drain(ctx context.Context, w *Worker) {
	for {
		d.mu.Lock()
		if d.q.empty() || ctx.Err() != nil {
			// Stopping with values left because ctx ended: if a later Post
			// or Resume brought a live context, a drain goes on under it
			// (they saw this one running and started none).
			next, ex := d.lastCtx, d.lastEx
			if d.q.empty() || next == nil || next == ctx || next.Err() != nil {
				next = nil
				d.running = false
			}
			d.mu.Unlock()
			if next != nil {
				d.start(next, ex) //nolint:errcheck // a refusal drops the values, as in Post
			}
			return
		}
		batch := d.q.pop()
		d.mu.Unlock()

		n, err := catch(func() (int, error) { return d.handle(ctx, w, batch), nil })
		if p, ok := err.(*PanicError); ok {
			n = len(batch) // a panicking batch counts as handled
			d.mu.Lock()
			if d.panicked == nil {
				d.panicked = p
			}
			d.mu.Unlock()
		}
		n = max(0, min(n, len(batch)))

		d.mu.Lock()
		if n < len(batch) {
			// Put back what was not handled, ahead of what came since.
			d.q.unpop(append(make([]T, 0, chunkSize), batch[n:]...))
		}
		d.q.recycle(batch)
		d.handled += uint64(n)
		d.notifyLocked()
		d.mu.Unlock()
	}
}

// notifyLocked wakes the waiters whose values are all handled. Called with
// mu held.
func (d *Dispatcher[T]) notifyLocked() {
	keep := d.waiters[:0]
	for _, wt := range d.waiters {
		if d.handled >= wt.n {
			close(wt.ch)
		} else {
			keep = append(keep, wt)
		}
	}
	clear(d.waiters[len(keep):])
	d.waiters = keep
}

// Pending returns the number of values posted and not yet handled.
func (d *Dispatcher[T]) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return int(d.posted - d.handled)
}

// Wait waits until every value posted before the call has been handled, or
// until ctx is done (it then returns ctx's cause). If the handler panicked,
// Wait panics with the [*PanicError].
func (d *Dispatcher[T]) Wait(ctx context.Context) error {
	d.mu.Lock()
	if d.handled >= d.posted {
		p := d.panicked
		d.panicked = nil
		d.mu.Unlock()
		repanic(errOf(p))
		return nil
	}
	wt := dispatchWaiter{n: d.posted, ch: make(chan struct{})}
	d.waiters = append(d.waiters, wt)
	d.mu.Unlock()
	select {
	case <-wt.ch:
		d.mu.Lock()
		p := d.panicked
		d.panicked = nil
		d.mu.Unlock()
		repanic(errOf(p))
		return nil
	case <-ctx.Done():
		d.mu.Lock()
		for i, x := range d.waiters {
			if x.ch == wt.ch {
				d.waiters = append(d.waiters[:i], d.waiters[i+1:]...)
				break
			}
		}
		d.mu.Unlock()
		return context.Cause(ctx)
	}
}

// Close makes later Posts fail with [ErrClosed], then waits like
// [Dispatcher.Wait] for the values already posted.
func (d *Dispatcher[T]) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	return d.Wait(ctx)
}

// errOf returns p as an error, or nil (not a nil *PanicError in an error).
func errOf(p *PanicError) error {
	if p == nil {
		return nil
	}
	return p
}

// chunkSize is the capacity of a queue chunk, and the largest batch.
const chunkSize = 256

// chunkQueue is a FIFO of values in fixed-size chunks: pushing never
// copies what is queued, and emptied chunks are reused.
type chunkQueue[T any] struct {
	chunks [][]T // oldest first; all full but the last
	head   int   // chunks[:head] are gone
	free   [][]T // emptied chunks, for reuse
}

func (q *chunkQueue[T]) empty() bool { return q.head == len(q.chunks) }

func (q *chunkQueue[T]) push(v T) {
	if n := len(q.chunks); n == q.head || len(q.chunks[n-1]) == chunkSize {
		var c []T
		if k := len(q.free); k > 0 {
			c, q.free = q.free[k-1], q.free[:k-1]
		} else {
			c = make([]T, 0, chunkSize)
		}
		q.chunks = append(q.chunks, c)
	}
	last := &q.chunks[len(q.chunks)-1]
	*last = append(*last, v)
}

// pop removes and returns the oldest chunk; the queue must not be empty.
func (q *chunkQueue[T]) pop() []T {
	c := q.chunks[q.head]
	q.chunks[q.head] = nil
	q.head++
	if q.head == len(q.chunks) {
		q.chunks, q.head = q.chunks[:0], 0
	}
	return c
}

// unpop puts c back at the front.
func (q *chunkQueue[T]) unpop(c []T) {
	if q.head > 0 {
		q.head--
		q.chunks[q.head] = c
		return
	}
	q.chunks = append(q.chunks, nil)
	copy(q.chunks[1:], q.chunks)
	q.chunks[0] = c
}

// recycle keeps an emptied chunk for reuse (a few at most).
func (q *chunkQueue[T]) recycle(c []T) {
	clear(c)
	if cap(c) == chunkSize && len(q.free) < 4 {
		q.free = append(q.free, c[:0])
	}
}

// reset drops everything queued.
func (q *chunkQueue[T]) reset() {
	for !q.empty() {
		q.recycle(q.pop())
	}
}
