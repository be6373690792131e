package engine

import (
	"context"
	"sync"
)

// A Dispatcher delivers posted values to a handler one batch at a time, in
// post order, on a drain task of its own. [Dispatcher.Post] never blocks:
// the queue is unbounded. The drain task is started on the executor given
// to Post when a value arrives and none is running, and it returns as soon
// as the queue is empty, so an idle Dispatcher holds no goroutine (the
// worker goes back to the [Pool]). A Post from inside the handler only
// queues: the running drain delivers the value after the current batch,
// so the order stays FIFO.
//
// The handler receives the queued values in batches of up to 256, so that
// per-drain set-up is paid once per batch rather than per value. The queue
// is a list of fixed-size blocks, recycled, so a backlog of any length
// costs no copying; a batch is copied once into the drain's buffer. The
// handler returns how many values of the batch it handled: it may stop
// early (its context is done), and the rest go back to the front of the
// queue, in order, for the next drain. A handler must not wait for its own
// Dispatcher ([Dispatcher.Wait] from inside it waits forever). A panic in
// the handler is caught (the batch counts as handled) and re-raised, with
// the drain's stack, by the next [Dispatcher.Wait].
//
// All methods are safe for concurrent use. The zero Dispatcher is not
// usable; call [NewDispatcher].
type Dispatcher[T any] struct {
	handle func(ctx context.Context, w *Worker, batch []T) (handled int)

	mu       sync.Mutex
	q        fifo[T]
	front    []T // values a drain handed back, delivered before q
	buf      []T // the batch buffer, reused by each drain in turn
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
	if d.running || d.emptyLocked() {
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
		d.front = nil
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
		if d.emptyLocked() || ctx.Err() != nil {
			// Stopping with values left because ctx ended: if a later Post
			// or Resume brought a live context, a drain goes on under it
			// (they saw this one running and started none).
			next, ex := d.lastCtx, d.lastEx
			if d.emptyLocked() || next == nil || next == ctx || next.Err() != nil {
				next = nil
				d.running = false
			}
			d.mu.Unlock()
			if next != nil {
				d.start(next, ex) //nolint:errcheck // a refusal drops the values, as in Post
			}
			return
		}
		batch := d.popBatchLocked()
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
			d.front = append(d.front, batch[n:]...)
		}
		clear(batch)
		d.buf = batch[:0]
		d.handled += uint64(n)
		d.notifyLocked()
		d.mu.Unlock()
	}
}

// batchSize is the largest batch handed to a handler.
const batchSize = 256

func (d *Dispatcher[T]) emptyLocked() bool { return len(d.front) == 0 && d.q.len() == 0 }

// popBatchLocked takes the next batch: the values handed back first, else
// up to batchSize of the queue, into the drain's buffer.
func (d *Dispatcher[T]) popBatchLocked() []T {
	if len(d.front) > 0 {
		b := d.front
		d.front = nil
		return b
	}
	b := d.buf
	d.buf = nil
	if b == nil {
		b = make([]T, 0, batchSize)
	}
	return d.q.popBatch(b, batchSize)
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
// until ctx is done (it then returns ctx's cause). w is the calling
// goroutine's [Worker] (nil if it has none); Wait waits through [Recv]. If
// the handler panicked, Wait panics with the [*PanicError].
func (d *Dispatcher[T]) Wait(ctx context.Context, w *Worker) error {
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
	if _, _, err := Recv(ctx, w, wt.ch, 0); err != nil {
		d.mu.Lock()
		for i, x := range d.waiters {
			if x.ch == wt.ch {
				d.waiters = append(d.waiters[:i], d.waiters[i+1:]...)
				break
			}
		}
		d.mu.Unlock()
		return err
	}
	d.mu.Lock()
	p := d.panicked
	d.panicked = nil
	d.mu.Unlock()
	repanic(errOf(p))
	return nil
}

// Close makes later Posts fail with [ErrClosed], then waits like
// [Dispatcher.Wait] for the values already posted.
func (d *Dispatcher[T]) Close(ctx context.Context, w *Worker) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	return d.Wait(ctx, w)
}

// errOf returns p as an error, or nil (not a nil *PanicError in an error).
func errOf(p *PanicError) error {
	if p == nil {
		return nil
	}
	return p
}
