package engine

import (
	"context"
	"errors"
	"runtime"
	"sync"
)

// ErrClosed is returned when work is submitted to a closed [Pool].
var ErrClosed = errors.New("engine: pool is closed")

// A Task is a unit of work run by a [Worker]. ctx is the context the task was
// submitted with; w is the worker running it.
type Task func(ctx context.Context, w *Worker)

// An Executor runs tasks. [*Pool] is the engine's executor, parallel or
// serial ([PoolOptions.Serial]).
type Executor interface {
	// Go arranges for task to run on a worker and returns without waiting
	// for it. It fails only if the executor is closed.
	Go(ctx context.Context, task Task) error
	// TryGo is like Go, except when the executor is at its hard cap on
	// workers (every worker it may ever have is taken, running or
	// waiting): then task could wait for ever behind tasks that wait for
	// the caller, so TryGo does not queue it and reports false. A task
	// queued only because of a soft limit is accepted: it starts when a
	// running task ends or waits. A caller that must not wait for a task
	// that could be stuck behind it (a nested map whose every outer item
	// holds a worker) runs the work itself after a refusal.
	TryGo(ctx context.Context, task Task) (bool, error)
}

// PoolOptions configures a [Pool].
type PoolOptions struct {
	// Limit is how many workers may be runnable (running a task or idle) at
	// once; a task submitted when all of them are busy waits in a queue.
	// Workers that wait through the engine ([Recv], [Worker.Sleep] and
	// every blocking call of this package) do not count, so tasks that wait
	// (sleep, wait for a future) never hold up the rest, and a thousand
	// sleeping tasks all run at once. Zero means 2*runtime.GOMAXPROCS(0).
	//
	// Why so few: cancellation of a Starlark thread is checked per
	// instruction, so it reaches a busy goroutine only when the Go
	// scheduler runs it. With 64-128 runnable goroutines on 2 cores that
	// took 0.2-1.4 s to reach all of them; Ctrl-C must stop everything
	// within 100 ms. Two per core keeps every core busy while a waiting
	// worker is replaced, and keeps the scheduler's round short: with 100
	// spinning tasks on 2 cores, Ctrl-C took 130-150 ms at four per core and
	// 40-80 ms at two.
	//
	// A serial pool ignores Limit: one participant runs at a time.
	Limit int
	// Max, if positive, caps the number of worker goroutines, waiting or
	// not. It is the host's hard limit; zero means no cap.
	Max int
	// Serial makes the pool run one participant at a time in a
	// deterministic order (see [Pool], "Serial mode").
	Serial bool
	// Init, if set, is called on each new worker's goroutine before its
	// first task, typically to set worker-local values ([Local]).
	Init func(w *Worker)
	// Exit, if set, is called on a worker's goroutine when it retires.
	Exit func(w *Worker)
}

// A Pool runs tasks on long-lived worker goroutines.
//
// Starting a goroutine per tiny task costs about ten times a reused worker,
// mostly in stack growth; that is why workers are kept. A Pool is safe for
// use by multiple goroutines. Call [Pool.Close] to stop it.
//
// # Capacity
//
// In a parallel pool (the default) a task goes to an idle worker if there
// is one (the most recently idle, whose stack is warm), else to a new
// worker while fewer than [PoolOptions.Limit] are runnable and fewer than
// [PoolOptions.Max] exist, else to a FIFO queue. A worker that waits
// through the engine's wait API ([Recv], [Worker.Sleep], and every
// blocking call of this package, all built on Recv) does not count as
// runnable: the pool may start another worker meanwhile, so waiting never
// holds up computing. Only Max bounds waiting workers.
//
// Goroutines that are not the pool's may take part with [Pool.Enter]: the
// returned [Worker] has an ID and worker-local values like the pool's own,
// but its waits do not change the pool's accounting.
//
// # Serial mode
//
// With [PoolOptions.Serial] the same tasks run on the same long-lived
// worker goroutines, but only one participant (a pool worker or an entered
// goroutine) runs at a time: it holds the baton. The holder keeps it until
// it waits (through the wait API), finishes its task, or leaves
// ([Worker.Leave]). When the baton is released, the next holder is chosen
// by this rule, in this order:
//
//  1. The participant that has been waiting longest among those whose
//     wait is over: its channel has a value or is closed, or its context
//     is done. Waiters are polled oldest first with non-blocking receives;
//     the value received is kept for the waiter. A goroutine that called
//     [Pool.Enter] counts as a waiter whose wait is over.
//  2. Else the oldest queued task ([Pool.Go] queues in FIFO order). It
//     gets the most recently idle worker, or a new one (unless Max workers
//     exist: then the task waits for a worker to become idle).
//  3. Else the timer with the earliest virtual deadline, then the lowest
//     sequence number. A sleep ([Worker.Sleep]) and the timeout of a wait
//     ([Recv]) are timers: the virtual deadline is the virtual now plus
//     the duration, and virtual time advances only when a timer fires (to
//     its deadline). Its sleeper or waiter gets the baton once the real
//     time has also passed its real deadline (the real start plus the
//     duration), so sleeps take real time.
//
// While nothing is chosen (no wait is over, no task can start, the first
// timer is not due yet) the pool's scheduler goroutine waits for any
// waiter's channel or context, the first timer's real deadline, or a task
// submitted from a goroutine that is no participant, then applies the rule
// again. So a program whose only nondeterminism is scheduling runs the same
// way every time; events from outside the pool (a context cancelled by a
// signal, a channel fed by a foreign goroutine) are taken in when they
// happen.
//
// A participant must wait only through the wait API: a goroutine that
// blocks in any other way (a plain channel operation, sync.WaitGroup.Wait,
// time.Sleep) while holding the baton stops the whole pool. Short mutex
// sections are fine. Limit does not apply to a serial pool.
//
// # Cost
//
// Handing a task to a parallel pool costs one mutex section and, if a
// worker is idle, one channel send (a few hundred nanoseconds with the
// wake-up). A serial hand-off costs two goroutine switches, and a choice
// polls every waiter, so it grows with the number of waiting participants.
// A serial pool has one scheduler goroutine besides its workers.
//
// # Ending
//
// [Pool.Close] stops accepting tasks, waits for every queued and running
// task, retires the workers (calling Exit on each) and, in serial mode,
// stops the scheduler. An entered goroutine must [Worker.Leave] before it
// calls Close, or Close waits for it forever in serial mode.
type Pool struct {
	opts PoolOptions

	mu      sync.Mutex
	idle    []*Worker // LIFO
	queue   fifo[item]
	workers int // alive
	blocked int // pool workers waiting through the wait API
	nextID  int
	closed  bool
	wg      sync.WaitGroup

	serial *serialState // nil in a parallel pool
}

// NewPool returns a pool configured by opts. A serial pool starts its
// scheduler goroutine at once.
func NewPool(opts PoolOptions) *Pool {
	if opts.Limit <= 0 {
		opts.Limit = 2 * runtime.GOMAXPROCS(0)
	}
	p := &Pool{opts: opts}
	if opts.Serial {
		p.serial = newSerialState()
		go p.schedule()
	}
	return p
}

// Serial reports whether the pool runs one participant at a time.
func (p *Pool) Serial() bool { return p.serial != nil }

// A Worker is a participant of a [Pool]: one of its goroutines, or a
// goroutine that called [Pool.Enter]. It runs one task at a time. A
// Worker's methods, and [Local] values, may be used only on its own
// goroutine.
type Worker struct {
	// ID numbers the pool's workers and entered goroutines from 1 (a Worker
	// made outside any pool has ID 0).
	ID int

	locals  []localSlot
	pool    *Pool
	entered bool      // a caller goroutine, not one of the pool's
	wake    chan item // the next task (closed: retire)
	baton   chan struct{}
}

type item struct {
	ctx  context.Context
	task Task
}

// canSpawn reports whether another worker may start. Called with mu held.
func (p *Pool) canSpawn() bool {
	return p.workers-p.blocked < p.opts.Limit && p.underMax()
}

func (p *Pool) underMax() bool { return p.opts.Max <= 0 || p.workers < p.opts.Max }

// newWorker makes a pool worker. Called with mu held.
func (p *Pool) newWorker() *Worker {
	p.workers++
	p.nextID++
	return &Worker{ID: p.nextID, pool: p, wake: make(chan item, 1)}
}

// spawn starts a worker whose first task is it. Called with mu held.
func (p *Pool) spawn(it item) {
	w := p.newWorker()
	p.wg.Add(1)
	go p.run(w, it)
}

// Go submits task to run on a worker with ctx. It never blocks for long:
// at worst the task waits in the queue. It returns [ErrClosed] if the pool
// is closed. A task that starts after ctx is done still runs; tasks check
// ctx themselves.
func (p *Pool) Go(ctx context.Context, task Task) error {
	_, err := p.submit(ctx, task, false)
	return err
}

// TryGo is like [Pool.Go] but does not queue task, and reports false, if
// the pool is at its hard cap: Max workers exist and none is idle (in
// serial mode: none is left for task after the tasks already queued). A
// task queued because Limit workers are runnable is accepted: a runnable
// worker frees its place when its task ends or waits.
func (p *Pool) TryGo(ctx context.Context, task Task) (bool, error) {
	return p.submit(ctx, task, true)
}

func (p *Pool) submit(ctx context.Context, task Task, try bool) (bool, error) {
	it := item{ctx, task}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false, ErrClosed
	}
	if p.serial != nil {
		ok := p.serialSubmitLocked(it, try)
		p.mu.Unlock()
		return ok, nil
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.wake <- it
		return true, nil
	}
	switch {
	case p.canSpawn():
		p.spawn(it)
	case try && !p.underMax():
		p.mu.Unlock()
		return false, nil
	default:
		p.queue.push(it)
	}
	p.mu.Unlock()
	return true, nil
}

func (p *Pool) run(w *Worker, it item) {
	defer p.wg.Done()
	if p.serial != nil {
		p.runSerial(w, it)
		return
	}
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
		// A worker that came back from a wait while others ran in its
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

// block tells a parallel pool that w is about to wait rather than compute:
// the pool may start another worker meanwhile. It reports whether it did
// anything (w is one of the pool's own workers); then unblock must follow.
func (w *Worker) block() bool {
	if w == nil || w.pool == nil || w.entered {
		return false
	}
	p := w.pool
	p.mu.Lock()
	p.blocked++
	if p.queue.len() > 0 && p.canSpawn() {
		it, _ := p.queue.pop()
		p.spawn(it)
	}
	p.mu.Unlock()
	return true
}

func (w *Worker) unblock() {
	p := w.pool
	p.mu.Lock()
	p.blocked--
	p.mu.Unlock()
}

// Enter makes the calling goroutine a participant of the pool and returns
// its [Worker], with a new ID and no worker-local values. In a serial pool
// Enter waits until the goroutine is granted the baton (see [Pool]). In a
// parallel pool it returns at once, and the worker's waits do not change
// the pool's accounting. Call [Worker.Leave] when the goroutine stops
// taking part (for example while a REPL waits for input), and
// [Worker.Rejoin] to take part again. Enter panics if the pool is closed.
func (p *Pool) Enter() *Worker {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		panic("engine: Pool.Enter on a closed pool")
	}
	p.nextID++
	w := &Worker{ID: p.nextID, pool: p, entered: true}
	p.mu.Unlock()
	w.Rejoin()
	return w
}

// Leave ends the calling goroutine's participation, which [Pool.Enter]
// began: in a serial pool it releases the baton. It must be called by the
// goroutine that entered, and only by an entered worker (it panics
// otherwise).
func (w *Worker) Leave() {
	if w == nil || !w.entered {
		panic("engine: Worker.Leave on a worker that did not Enter")
	}
	if p := w.pool; p.serial != nil {
		p.mu.Lock()
		p.releaseLocked(w)
		p.mu.Unlock()
	}
}

// Rejoin makes the goroutine that left with [Worker.Leave] a participant
// again, keeping w's ID and worker-local values; in a serial pool it waits
// for the baton like [Pool.Enter].
func (w *Worker) Rejoin() {
	if w == nil || !w.entered {
		panic("engine: Worker.Rejoin on a worker that did not Enter")
	}
	if p := w.pool; p.serial != nil {
		if w.baton == nil {
			w.baton = make(chan struct{}, 1)
		}
		p.mu.Lock()
		p.enqueueWaiterLocked(&waiter{w: w, over: true})
		p.kickLocked()
		p.mu.Unlock()
		<-w.baton
	}
}

// Close stops accepting tasks, waits for every queued and running task to
// finish, and stops the workers (and, in serial mode, the scheduler). It is
// safe to call more than once, but not from a task, nor, in serial mode,
// from an entered goroutine that has not left.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		if p.serial == nil {
			for _, w := range p.idle {
				p.workers--
				close(w.wake)
			}
			p.idle = nil
		} else {
			p.kickLocked() // idle workers retire one at a time, holding the baton
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
	if p.serial != nil {
		p.stopScheduler()
	}
}

// Stats reports the number of live worker goroutines and how many of them are
// waiting. It is meant for tests and diagnostics.
func (p *Pool) Stats() (workers, blocked int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers, p.blocked
}
