package engine

import (
	"container/heap"
	"context"
	"reflect"
	"slices"
	"time"
)

// serialState is the baton of a serial [Pool]. Every field is guarded by
// the pool's mu.
//
// Who chooses the next holder: the participant that releases the baton
// applies the rule at once (grantLocked); if nothing can be chosen it kicks
// the scheduler goroutine, which waits for an event and applies the rule
// again. While the scheduler is inside reflect.Select (selecting), nobody
// else chooses: a waiter's channel must be received from by one goroutine
// only, or a value could be taken for a waiter that another goroutine has
// already woken. Goroutines that are not the holder (a foreign Pool.Go,
// Enter, Close) never choose; they only kick.
type serialState struct {
	holder    *Worker
	selecting bool
	waiters   []*waiter // in the order their waits began
	timers    timerHeap
	seq       uint64        // timers made so far
	vnow      time.Duration // virtual time: the deadline of the last timer fired
	kick      chan struct{}
	stop      bool
	done      chan struct{} // closed when the scheduler returns
}

func newSerialState() *serialState {
	return &serialState{kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// A waiter is a participant waiting for the baton.
type waiter struct {
	w    *Worker
	ctx  context.Context // nil: only the channel or timer ends the wait
	over bool            // the wait is over; its result is stored
	err  error
	// poll receives from the waited-for channel without blocking and
	// stores what it got; nil if the wait has no channel. rch is the same
	// channel for reflect.Select, and stash stores what the select got.
	poll  func() bool
	rch   reflect.Value
	stash func(v reflect.Value, ok bool)
	timer *timer
}

// ready reports whether wt's wait is over, polling its channel and context.
func (wt *waiter) ready() bool {
	switch {
	case wt.over:
	case wt.poll != nil && wt.poll():
		wt.over = true
	case wt.ctx != nil && wt.ctx.Err() != nil:
		wt.over, wt.err = true, context.Cause(wt.ctx)
	default:
		return false
	}
	return true
}

// A timer is a sleep or a wait's timeout in a serial pool.
type timer struct {
	vdeadline time.Duration // virtual
	seq       uint64
	real      time.Time
	wt        *waiter
	err       error // what the waiter gets when it fires: nil or ErrTimeout
	index     int
}

type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].vdeadline != h[j].vdeadline {
		return h[i].vdeadline < h[j].vdeadline
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

// kickLocked wakes the scheduler goroutine to apply the rule.
func (p *Pool) kickLocked() {
	select {
	case p.serial.kick <- struct{}{}:
	default:
	}
}

// serialSubmitLocked queues a task in a serial pool. With try, it refuses
// a task that no worker would be left for (see TryGo).
func (p *Pool) serialSubmitLocked(it item, try bool) bool {
	if try && p.opts.Max > 0 && p.queue.len() >= len(p.idle)+p.opts.Max-p.workers {
		return false
	}
	p.queue.push(it)
	if p.serial.holder == nil {
		p.kickLocked()
	}
	return true
}

// enqueueWaiterLocked adds wt to the waiters, newest last.
func (p *Pool) enqueueWaiterLocked(wt *waiter) {
	if !wt.w.entered {
		p.blocked++
	}
	p.serial.waiters = append(p.serial.waiters, wt)
}

// releaseLocked takes the baton from w, which must hold it, and hands it
// on.
func (p *Pool) releaseLocked(w *Worker) {
	s := p.serial
	if s.holder != w {
		panic("engine: a participant of a serial pool waited or left without holding the baton")
	}
	s.holder = nil
	if !p.grantLocked() {
		p.kickLocked()
	}
}

// grantLocked applies the rule of the [Pool] doc ("Serial mode") and gives
// the baton to the participant it chooses. It reports false if nothing can
// be chosen now. Called with mu held, no holder, and the scheduler not
// selecting.
func (p *Pool) grantLocked() bool {
	s := p.serial
	// 1. The longest waiting participant whose wait is over.
	for i, wt := range s.waiters {
		if wt.ready() {
			s.waiters = slices.Delete(s.waiters, i, i+1)
			p.grantWaiterLocked(wt)
			return true
		}
	}
	// 2. The oldest queued task, if a worker is free for it.
	if p.queue.len() > 0 {
		if n := len(p.idle); n > 0 {
			w := p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			it, _ := p.queue.pop()
			s.holder = w
			w.wake <- it
			return true
		}
		if p.underMax() {
			it, _ := p.queue.pop()
			w := p.newWorker()
			w.baton = make(chan struct{}, 1)
			s.holder = w
			p.wg.Add(1)
			go p.run(w, it)
			return true
		}
	}
	// Closing: idle workers retire one at a time, holding the baton.
	if p.closed && p.queue.len() == 0 && len(p.idle) > 0 {
		n := len(p.idle)
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.workers--
		s.holder = w
		close(w.wake)
		return true
	}
	// 3. The first timer, once its real deadline has passed.
	if len(s.timers) > 0 {
		t := s.timers[0]
		if time.Now().Before(t.real) {
			return false
		}
		s.vnow = t.vdeadline
		wt := t.wt
		wt.over, wt.err = true, t.err
		s.waiters = slices.DeleteFunc(s.waiters, func(x *waiter) bool { return x == wt })
		p.grantWaiterLocked(wt)
		return true
	}
	return false
}

// grantWaiterLocked gives the baton to wt, already removed from the
// waiters.
func (p *Pool) grantWaiterLocked(wt *waiter) {
	s := p.serial
	if t := wt.timer; t != nil {
		heap.Remove(&s.timers, t.index)
		wt.timer = nil
	}
	if !wt.w.entered {
		p.blocked--
	}
	s.holder = wt.w
	wt.w.baton <- struct{}{}
}

// waitSerial makes wt.w, which holds the baton, wait: with a timer of d if
// timed (then err is what the waiter gets when it fires). It returns when
// wt.w holds the baton again, with wt's result stored.
func (p *Pool) waitSerial(wt *waiter, d time.Duration, timed bool, err error) {
	s := p.serial
	p.mu.Lock()
	if timed {
		s.seq++
		t := &timer{vdeadline: s.vnow + d, seq: s.seq, real: time.Now().Add(d), wt: wt, err: err}
		heap.Push(&s.timers, t)
		wt.timer = t
	}
	p.enqueueWaiterLocked(wt)
	p.releaseLocked(wt.w)
	p.mu.Unlock()
	<-wt.w.baton
}

// runSerial is the loop of a serial pool's worker. The worker holds the
// baton whenever it runs: it was granted it with each task.
func (p *Pool) runSerial(w *Worker, it item) {
	if p.opts.Init != nil {
		p.opts.Init(w)
	}
	for {
		it.task(it.ctx, w)
		it = item{}

		p.mu.Lock()
		if p.closed && p.queue.len() == 0 {
			p.workers--
			p.mu.Unlock()
			break
		}
		p.idle = append(p.idle, w)
		p.releaseLocked(w)
		p.mu.Unlock()
		next, ok := <-w.wake // granted with the baton
		if !ok {
			break // retiring, granted the baton
		}
		it = next
	}
	if p.opts.Exit != nil {
		p.opts.Exit(w)
	}
	p.mu.Lock()
	p.releaseLocked(w)
	p.mu.Unlock()
}

// schedule is the scheduler goroutine of a serial pool. It applies the
// rule whenever the baton is free and nobody else could, and otherwise
// waits for an event: a waiter's channel or context, the first timer's
// real deadline, or a kick.
func (p *Pool) schedule() {
	s := p.serial
	defer close(s.done)
	var (
		tm     *time.Timer
		cases  []reflect.SelectCase
		owners []*waiter // the waiter whose channel each case is, or nil
		seen   = map[<-chan struct{}]bool{}
	)
	defer func() {
		if tm != nil {
			tm.Stop()
		}
	}()
	add := func(ch reflect.Value, wt *waiter) {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: ch})
		owners = append(owners, wt)
	}
	for {
		p.mu.Lock()
		if s.stop {
			p.mu.Unlock()
			return
		}
		if s.holder != nil || p.grantLocked() {
			p.mu.Unlock()
			<-s.kick
			continue
		}
		clear(cases)
		clear(owners)
		cases, owners = cases[:0], owners[:0]
		clear(seen)
		add(reflect.ValueOf(s.kick), nil)
		if len(s.timers) > 0 {
			d := time.Until(s.timers[0].real)
			if tm == nil {
				tm = time.NewTimer(d)
			} else {
				tm.Reset(d)
			}
			add(reflect.ValueOf(tm.C), nil)
		}
		for _, wt := range s.waiters {
			if wt.rch.IsValid() {
				add(wt.rch, wt)
			}
			if wt.ctx != nil {
				if done := wt.ctx.Done(); done != nil && !seen[done] {
					seen[done] = true
					add(reflect.ValueOf(done), nil)
				}
			}
		}
		s.selecting = true
		p.mu.Unlock()
		chosen, v, ok := reflect.Select(cases)
		p.mu.Lock()
		s.selecting = false
		if wt := owners[chosen]; wt != nil {
			wt.stash(v, ok)
			wt.over = true
		}
		p.mu.Unlock()
	}
}

// stopScheduler stops the scheduler goroutine and waits for it.
func (p *Pool) stopScheduler() {
	p.mu.Lock()
	p.serial.stop = true
	p.kickLocked()
	p.mu.Unlock()
	<-p.serial.done
}
