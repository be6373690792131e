package engine

// fifo is an unbounded first-in first-out queue made of fixed-size blocks.
// Pushing never copies what is already queued (a growing slice would, under
// the lock that guards the queue, for a burst of a hundred thousand tasks),
// and a drained block is kept for reuse. The zero fifo is empty. It is not
// safe for concurrent use.
type fifo[T any] struct {
	head, tail *block[T]
	spare      *block[T]
	n          int
}

const blockSize = 256

type block[T any] struct {
	items      [blockSize]T
	start, end int
	next       *block[T]
}

func (q *fifo[T]) len() int { return q.n }

func (q *fifo[T]) push(v T) {
	if q.tail == nil || q.tail.end == blockSize {
		b := q.spare
		if b != nil {
			q.spare = nil
		} else {
			b = new(block[T])
		}
		if q.tail == nil {
			q.head = b
		} else {
			q.tail.next = b
		}
		q.tail = b
	}
	q.tail.items[q.tail.end] = v
	q.tail.end++
	q.n++
}

func (q *fifo[T]) pop() (T, bool) {
	var zero T
	b := q.head
	if b == nil || b.start == b.end {
		return zero, false
	}
	v := b.items[b.start]
	b.items[b.start] = zero
	b.start++
	q.n--
	if b.start == b.end {
		q.drained(b)
	}
	return v, true
}

// drained recycles b, the head block, now empty: reset in place if it is
// the last block, else unlinked and kept as the spare.
func (q *fifo[T]) drained(b *block[T]) {
	if b.next == nil {
		b.start, b.end = 0, 0
		return
	}
	q.head = b.next
	b.next, b.start, b.end = nil, 0, 0
	q.spare = b
}

// takeAll moves every queued value to a new fifo, leaving q empty.
func (q *fifo[T]) takeAll() fifo[T] {
	all := fifo[T]{head: q.head, tail: q.tail, n: q.n}
	q.head, q.tail, q.n = nil, nil, 0
	return all
}

// popBatch moves up to max of the oldest values to the end of dst and
// returns it.
func (q *fifo[T]) popBatch(dst []T, max int) []T {
	for q.n > 0 && max > 0 {
		b := q.head
		k := min(b.end-b.start, max)
		dst = append(dst, b.items[b.start:b.start+k]...)
		clear(b.items[b.start : b.start+k])
		b.start += k
		q.n -= k
		max -= k
		if b.start == b.end {
			q.drained(b)
		}
	}
	return dst
}

// reset drops everything queued.
func (q *fifo[T]) reset() { *q = fifo[T]{} }
