package engine

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
)

// ErrReleased is the error [Stream.Send] returns after the consumer called
// [Stream.Release] with a nil error.
var ErrReleased = errors.New("engine: stream released by its consumer")

// ErrStreamClosed is the error [Stream.Send] returns after [Stream.Close].
var ErrStreamClosed = errors.New("engine: send on closed stream")

// A Stream carries values from producers to one consumer, in order, with
// backpressure: a producer may be at most Capacity items ahead of the
// consumer.
//
// # Capacity
//
// An item is received when [Stream.Recv] returns it, or, as with Go's
// unbuffered channels, when it is handed to a consumer that is already
// waiting in Recv. [Stream.Send] returns once at most Capacity of the items
// sent so far have not been received. With capacity 0 (unbuffered) Send
// therefore returns only when the consumer has its item; with capacity N,
// up to N items wait in the stream and Send returns at once until they do.
// [Stream.SendBatch] appends several items under one lock and returns by
// the same rule applied to its last item.
//
// # Cost
//
// Items travel in batches: the consumer takes everything queued with one
// lock and then receives from its private copy without locking, so a
// buffered stream costs a few tens of nanoseconds per item. Waiting is what
// costs: every time the consumer or a producer must wait, it parks its
// goroutine and the other side wakes it (a few hundred nanoseconds). An
// unbuffered stream whose producer is faster than its consumer waits once
// per item: that is the price of its semantics. SendBatch amortises it over
// the batch.
//
// # Ending
//
// A producer ends the stream with [Stream.Close] (optionally with an error,
// which Recv reports after the last item); the consumer gives up with
// [Stream.Release], which makes pending and later Sends fail promptly.
//
// Any number of goroutines may Send, Close and Release; Recv and Release
// belong to the one consumer goroutine. Blocking calls take a context and
// the caller's *[Worker] (nil is fine) and wait through [Recv], so a
// serial [Pool] hands on its baton there. The zero Stream is not usable;
// call [NewStream].
type Stream[T any] struct {
	capacity uint64

	// Consumer side, touched only by the goroutine that calls Recv.
	local []T
	head  int
	skip  bool // local[head] was counted as received when it was handed over

	taken  atomic.Uint64 // items received (or handed to a waiting consumer)
	wakeAt atomic.Uint64 // wake waiting producers when taken reaches this

	mu        sync.Mutex
	q         []T    // sent, not yet taken into local
	sent      uint64 // items ever sent
	handed    bool   // q[0] was handed to a waiting consumer (and counted)
	recvWait  bool   // the consumer is waiting on recvSig
	recvSig   chan struct{}
	sendWake  chan struct{} // closed to wake waiting producers; nil if none
	closed    bool
	closeErr  error
	released  bool
	releaseEr error
}

// NewStream returns a stream that lets producers run capacity items ahead
// of the consumer (0: unbuffered). It panics if capacity is negative.
func NewStream[T any](capacity int) *Stream[T] {
	if capacity < 0 {
		panic("engine: NewStream with negative capacity")
	}
	s := &Stream[T]{capacity: uint64(capacity), recvSig: make(chan struct{}, 1)}
	s.wakeAt.Store(math.MaxUint64)
	return s
}

// Capacity returns the capacity the stream was made with.
func (s *Stream[T]) Capacity() int { return int(s.capacity) }

// Send sends v and waits until at most Capacity sent items have not been
// received (see [Stream]). It fails with the consumer's error after
// [Stream.Release], with [ErrStreamClosed] after [Stream.Close], and with
// ctx's cause if ctx ends first (v may then still be received). It waits
// through [Recv] with w.
func (s *Stream[T]) Send(ctx context.Context, w *Worker, v T) error {
	s.mu.Lock()
	if err := s.refusal(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.q = append(s.q, v)
	s.sent++
	s.handOff()
	return s.await(ctx, w, s.sent)
}

// SendBatch sends vs, in order, as one transfer: the consumer receives them
// one at a time, but producers' items are not interleaved with them. It
// returns by the rule of [Stream.Send] applied to the last item. Like Send,
// it fails if the stream was released or closed; then none of vs is sent.
// The stream keeps no reference to vs.
func (s *Stream[T]) SendBatch(ctx context.Context, w *Worker, vs []T) error {
	if len(vs) == 0 {
		return nil
	}
	s.mu.Lock()
	if err := s.refusal(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.q = append(s.q, vs...)
	s.sent += uint64(len(vs))
	s.handOff()
	return s.await(ctx, w, s.sent)
}

// refusal reports why Send must fail, if it must. Called with mu held.
func (s *Stream[T]) refusal() error {
	switch {
	case s.released:
		return s.releaseEr
	case s.closed:
		return ErrStreamClosed
	}
	return nil
}

// handOff, called with mu held after items were queued, gives the first
// of them to the consumer if it is waiting: like a send on an unbuffered
// channel with a receiver ready, that counts as received at once.
func (s *Stream[T]) handOff() {
	if !s.recvWait {
		return
	}
	s.recvWait = false
	s.handed = true
	n := s.taken.Add(1)
	select {
	case s.recvSig <- struct{}{}:
	default:
	}
	if n >= s.wakeAt.Load() {
		s.wakeSendersLocked()
	}
}

// await waits, with mu held on entry (released on return), until at most
// capacity of the first seq items sent have not been received.
func (s *Stream[T]) await(ctx context.Context, w *Worker, seq uint64) error {
	for {
		if s.taken.Load()+s.capacity >= seq {
			s.mu.Unlock()
			return nil
		}
		if s.released {
			err := s.releaseEr
			s.mu.Unlock()
			return err
		}
		if s.sendWake == nil {
			s.sendWake = make(chan struct{})
		}
		ch := s.sendWake
		if want := seq - s.capacity; want < s.wakeAt.Load() {
			s.wakeAt.Store(want)
		}
		// The consumer counts received items without the lock, then looks at
		// wakeAt; look at taken again now that wakeAt is published, so that
		// one of the two sees the other.
		if s.taken.Load()+s.capacity >= seq {
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		if _, _, err := Recv(ctx, w, ch, 0); err != nil {
			return err
		}
		s.mu.Lock()
	}
}

// wakeSendersLocked wakes every waiting producer; each checks its own
// condition again. Called with mu held.
func (s *Stream[T]) wakeSendersLocked() {
	s.wakeAt.Store(math.MaxUint64)
	if s.sendWake != nil {
		close(s.sendWake)
		s.sendWake = nil
	}
}

// Recv returns the next item and true; or, at the end of the stream, false
// and the error given to [Stream.Close] (nil for a normal end); or false
// and ctx's cause if ctx ends while it waits. It returns items already
// queued without looking at ctx. It waits through [Recv] with w. Only the
// consumer goroutine may call Recv.
func (s *Stream[T]) Recv(ctx context.Context, w *Worker) (v T, ok bool, err error) {
	if s.head < len(s.local) {
		return s.pop(), true, nil
	}
	return s.recvSlow(ctx, w)
}

// pop returns the next item of the consumer's private batch and counts it
// as received.
func (s *Stream[T]) pop() T {
	var zero T
	v := s.local[s.head]
	s.local[s.head] = zero
	s.head++
	if s.skip {
		s.skip = false // counted when it was handed over
	} else if n := s.taken.Add(1); n >= s.wakeAt.Load() {
		s.mu.Lock()
		s.wakeSendersLocked()
		s.mu.Unlock()
	}
	return v
}

func (s *Stream[T]) recvSlow(ctx context.Context, w *Worker) (v T, ok bool, err error) {
	s.mu.Lock()
	for {
		if len(s.q) > 0 {
			// Take the whole queue; give producers the emptied private buffer.
			s.local, s.q = s.q, s.local[:0]
			s.head = 0
			s.skip, s.handed = s.handed, false
			s.recvWait = false
			s.mu.Unlock()
			return s.pop(), true, nil
		}
		switch {
		case s.closed:
			err = s.closeErr
		case s.released:
			err = s.releaseEr
		case ctx.Err() != nil:
			err = context.Cause(ctx)
		default:
			s.recvWait = true
			s.mu.Unlock()
			_, _, werr := Recv(ctx, w, s.recvSig, 0)
			s.mu.Lock()
			if werr != nil && len(s.q) == 0 {
				s.recvWait = false
				s.mu.Unlock()
				return v, false, werr
			}
			continue // a producer handed over an item, or the stream ended
		}
		s.recvWait = false
		s.mu.Unlock()
		return v, false, err
	}
}

// Close ends the stream: the consumer receives the items already sent, then
// the end, with err (nil for a normal end). Later Sends fail with
// [ErrStreamClosed]. Only the first Close counts.
func (s *Stream[T]) Close(err error) {
	s.mu.Lock()
	if !s.closed {
		s.closed, s.closeErr = true, err
		if s.recvWait {
			s.recvWait = false
			select {
			case s.recvSig <- struct{}{}:
			default:
			}
		}
	}
	s.mu.Unlock()
}

// Release tells producers that the consumer will receive nothing more:
// queued items are dropped, and pending and later Sends fail with err
// ([ErrReleased] if err is nil). Only the first Release counts. Only the
// consumer goroutine may call it.
func (s *Stream[T]) Release(err error) {
	if err == nil {
		err = ErrReleased
	}
	s.mu.Lock()
	if !s.released {
		s.released, s.releaseEr = true, err
		clear(s.q)
		s.q = nil
		s.wakeSendersLocked()
	}
	s.mu.Unlock()
	clear(s.local)
	s.local, s.head = nil, 0
}

// Released reports whether the consumer has released the stream, and with
// what error.
func (s *Stream[T]) Released() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.released, s.releaseEr
}
