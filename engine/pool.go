package engine

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned when work is submitted to a closed [Pool].
var ErrClosed = errors.New("engine: pool is closed")

// A Task is a unit of work run by a [Worker]. ctx is the context the task was
// submitted with; w is the worker running it.
type Task func(ctx context.Context, w *Worker)

// An Executor runs tasks. [*Pool] runs them on worker goroutines; [Inline]
// runs them at once on the caller's goroutine (semisync's sequential mode).
type Executor interface {
	// Go arranges for task to run. It does not wait for the task unless the
	// executor is inline. It fails only if the executor is closed.
	Go(ctx context.Context, task Task) error
}

// Inline is an [Executor] that runs each task immediately on the calling
// goroutine, with Worker as its worker. It is how everything runs in
// sequential mode: same code path, one goroutine, deterministic order.
type Inline struct {
	Worker *Worker
}

// Go runs task and returns when it is done.
func (in Inline) Go(ctx context.Context, task Task) error {
	task(ctx, in.Worker)
	return nil
}

// PoolOptions configures a [Pool].
type PoolOptions struct {
	// Limit is how many workers may be runnable (running a task or idle) at
	// once; a task submitted when all of them are busy waits in a queue.
	// Workers blocked in [Worker.Block] do not count, so tasks that wait
	// (sleep, wait for a future) never hold up the rest. Zero means 128,
	// the size of concert's thread pool.
	Limit int
	// Max, if positive, caps the number of worker goroutines, blocked or
	// not. It is the host's hard limit; zero means no cap.
	Max int
	// Init, if set, is called on each new worker's goroutine before its
	// first task, typically to set Worker.Local.
	Init func(w *Worker)
	// Exit, if set, is called on a worker's goroutine when it retires.
	Exit func(w *Worker)
}

// A Pool runs tasks on long-lived worker goroutines. A task goes to an idle
// worker if there is one (the most recently idle, whose stack is warm), else
// to a new worker while fewer than Limit are runnable, else to a FIFO queue.
//
// Starting a goroutine per tiny task costs about ten times a reused worker,
// mostly in stack growth; that is why workers are kept.
//
// A Pool is safe for use by multiple goroutines. Call [Pool.Close] to stop
// it; it waits for every queued and running task.
type Pool struct {
	opts PoolOptions

	mu      sync.Mutex
	idle    []*Worker // LIFO
	queue   fifo[item]
	workers int // alive
	blocked int // inside Worker.Block
	nextID  int
	closed  bool
	wg      sync.WaitGroup
}

// NewPool returns a pool configured by opts.
func NewPool(opts PoolOptions) *Pool {
	if opts.Limit <= 0 {
		opts.Limit = 128
	}
	return &Pool{opts: opts}
}

// A Worker is one goroutine of a [Pool]. It runs one task at a time.
type Worker struct {
	// ID numbers the pool's workers from 1. Inline workers have ID 0.
	ID int
	// Local is the worker's own value, set by PoolOptions.Init and used
	// only on the worker's goroutine.
	Local any

	pool *Pool
	wake chan item
}

type item struct {
	ctx  context.Context
	task Task
}

// runnable reports whether another worker may start. Called with mu held.
func (p *Pool) canSpawn() bool {
	return p.workers-p.blocked < p.opts.Limit && (p.opts.Max <= 0 || p.workers < p.opts.Max)
}

// spawn starts a worker whose first task is it. Called with mu held.
func (p *Pool) spawn(it item) {
	p.workers++
	p.nextID++
	w := &Worker{ID: p.nextID, pool: p, wake: make(chan item, 1)}
	p.wg.Add(1)
	go p.run(w, it)
}

// Go submits task to run on a worker with ctx. It never blocks for long:
// at worst the task waits in the queue. It returns [ErrClosed] if the pool
// is closed. A task that starts after ctx is done still runs; tasks check
// ctx themselves.
func (p *Pool) Go(ctx context.Context, task Task) error {
	it := item{ctx, task}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.wake <- it
		return nil
	}
	if p.canSpawn() {
		p.spawn(it)
	} else {
		p.queue.push(it)
	}
	p.mu.Unlock()
	return nil
}

func (p *Pool) run(w *Worker, it item) {
	defer p.wg.Done()
	if p.opts.Init != nil {
		p.opts.Init(w)
	}
	if p.opts.Exit != nil {
		defer p.opts.Exit(w)
	}
	for {
		it.task(it.ctx, w)
		it = item{}

		p.mu.Lock()
		// A worker that came back from Block while others ran in its
		// place is one too many: it retires rather than take queued work,
		// which would keep more than Limit tasks running. The queue is not
		// stranded: at least Limit other workers are runnable, and since
		// workers only go idle when the queue is empty, they are busy and
		// will pop it when their tasks end.
		if p.workers-p.blocked > p.opts.Limit {
			p.workers--
			p.mu.Unlock()
			return
		}
		next, ok := p.queue.pop()
		if !ok {
			if p.closed {
				p.workers--
				p.mu.Unlock()
				return
			}
			p.idle = append(p.idle, w)
		}
		p.mu.Unlock()
		if !ok {
			if next, ok = <-w.wake; !ok {
				return // closed while idle
			}
		}
		it = next
	}
}

// Block tells the pool that w is about to wait (sleep, wait for a future or
// a message) rather than compute, and returns the function to call when the
// wait is over. While w is blocked the pool may start another worker, so
// waiting tasks never starve runnable ones. Block on a nil or inline worker
// is a no-op.
func (w *Worker) Block() (unblock func()) {
	if w == nil || w.pool == nil {
		return func() {}
	}
	p := w.pool
	p.mu.Lock()
	p.blocked++
	if p.queue.len() > 0 && p.canSpawn() {
		it, _ := p.queue.pop()
		p.spawn(it)
	}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		p.blocked--
		p.mu.Unlock()
	}
}

// Close stops accepting tasks, waits for every queued and running task to
// finish, and stops the workers. It is safe to call more than once.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for _, w := range p.idle {
			p.workers--
			close(w.wake)
		}
		p.idle = nil
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Stats reports the number of live worker goroutines and how many of them are
// blocked. It is meant for tests and diagnostics.
func (p *Pool) Stats() (workers, blocked int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers, p.blocked
}
