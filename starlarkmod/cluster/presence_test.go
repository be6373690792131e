package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGuidedChunk(t *testing.T) {
	for _, tc := range []struct{ left, runners, max, want int }{
		{80, 2, 256, 10},
		{8, 2, 256, 1},
		{1, 2, 256, 1},
		{1, 100, 256, 1},
		{1024, 2, 256, 128},
		{100000, 2, 256, 256},
		{40, 1, 256, 10},
	} {
		assert.Equal(t, tc.want, guidedChunk(tc.left, tc.runners, tc.max), "%+v", tc)
	}
	// A batch's messages shrink to one item each at the end.
	var sizes []int
	for left := 80; left > 0; {
		k := guidedChunk(left, 2, 256)
		sizes = append(sizes, k)
		left -= k
	}
	assert.Equal(t, []int{10, 9, 8, 7, 6, 5, 5, 4, 4, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1}, sizes)
}

// waitRunners waits until e has heard from workers running n items at once.
func waitRunners(t *testing.T, e *Executor, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return e.seen.runners() == n }, 20*time.Second, 5*time.Millisecond)
}

func TestPresenceCountsRunners(t *testing.T) {
	s := startServer(t, t.TempDir())
	e := newExecutor(t, s, Options{})
	assert.Zero(t, e.seen.runners(), "no worker yet")
	startWorker(t, s, WorkerOptions{Name: "w1", Concurrency: 2, Exec: echoExec(nil)})
	startWorker(t, s, WorkerOptions{Name: "w2", Concurrency: 3, Exec: echoExec(nil)})
	// The executor asks again at most once a second, on its next call.
	waitRunners(t, e, 5)
	// Two workers of the same name both count; an answer cannot claim
	// more than 1<<20 runners, nor a sum overflow.
	startWorker(t, s, WorkerOptions{Name: "w2", Concurrency: 1, Exec: echoExec(nil)})
	waitRunners(t, e, 6)
	for i := range 3 {
		e.seen.onHello(&nats.Msg{Data: fmt.Appendf(nil, `{"id":"big%d","name":"big","concurrency":%d}`, i, int64(1)<<62)})
	}
	assert.Equal(t, maxHelloConcurrency, e.seen.runners())
	assert.Equal(t, 1, guidedChunk(1000, e.seen.runners(), 256))
}

// tasksLastSeq returns the last sequence of the tasks stream: how many
// task messages were ever published.
func tasksLastSeq(t *testing.T, e *Executor) uint64 {
	t.Helper()
	info, err := e.tasks.Info(context.Background())
	require.NoError(t, err)
	return info.State.LastSeq
}

func TestMessagesFollowRunners(t *testing.T) {
	s := startServer(t, t.TempDir())
	var calls atomic.Int64
	startWorker(t, s, WorkerOptions{Name: "w", Concurrency: 1, Exec: echoExec(&calls)})
	e := newExecutor(t, s, Options{})
	waitRunners(t, e, 1)
	items := make([]string, 40)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	before := tasksLastSeq(t, e)
	var c collected
	require.NoError(t, e.Run(context.Background(), batchOf("upper", items...), c.done))
	assert.Len(t, c.vals, 40)
	// 40 items for one runner: 10, 8, 6, 4, 3, 3, 2, 1, 1, 1, 1.
	assert.EqualValues(t, 11, tasksLastSeq(t, e)-before)
	assert.EqualValues(t, 40, calls.Load())

	// A message never holds more than ChunkSize (256) items; a large batch
	// of a job whose batches come back quickly stops shrinking at 1/64 of
	// it, and any other ends with messages of one item.
	items = make([]string, 20000)
	for i := range items {
		items[i] = "x"
	}
	for _, quick := range []bool{true, false} {
		before = tasksLastSeq(t, e)
		var big collected
		b := batchOf("upper", items...)
		b.Quick = quick
		require.NoError(t, e.Run(context.Background(), b, big.done))
		assert.Len(t, big.vals, 20000)
		sent := tasksLastSeq(t, e) - before
		assert.GreaterOrEqual(t, sent, uint64(20000/256+1))
		if quick {
			// 256 down to 20000/64 = 312, capped at 256: every message 256.
			assert.EqualValues(t, (20000+255)/256, sent)
		} else {
			// 256 each until 1024 are left, then shrinking to one item.
			assert.Greater(t, sent, uint64((20000+255)/256+10))
		}
	}
}

// maxDeliveries makes e act on the server's advisory that the message at
// seq was delivered n times (the server sends it one AckWait after the
// last delivery of a message that every worker it went to died on).
func maxDeliveries(t *testing.T, e *Executor, seq uint64, n int) {
	t.Helper()
	data, err := json.Marshal(map[string]any{"stream_seq": seq, "deliveries": n})
	require.NoError(t, err)
	e.onMaxDeliveries(&nats.Msg{Data: data})
}

// awaitChunk waits until e has published a chunk that is, and returns it.
func awaitChunk(t *testing.T, e *Executor, is func(*chunk) bool) *chunk {
	t.Helper()
	var found *chunk
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, ch := range e.bySeq {
			if is(ch) {
				found = ch
				return true
			}
		}
		return false
	}, 20*time.Second, 5*time.Millisecond)
	return found
}

// TestMaxDeliveriesSplitsMessage: when a message of several items reaches
// MaxDeliver, no item is blamed: which one killed the workers is not
// known (a worker may have died holding the message before it started
// it). Its unfinished items go out again, the first alone; a message of
// one item fails.
func TestMaxDeliveriesSplitsMessage(t *testing.T) {
	s := startServer(t, t.TempDir())
	e := newExecutor(t, s, Options{})
	// A worker runs one item at once, as far as the executor knows; no
	// worker pulls until the advisory has been handled.
	e.seen.onHello(&nats.Msg{Data: []byte(`{"id":"x","name":"w","concurrency":1}`)})
	items := make([]string, 40)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	var c collected
	ran := make(chan error, 1)
	go func() { ran <- e.Run(context.Background(), batchOf("upper", items...), c.done) }()
	// The first message holds items 0-9; pretend a worker sent the
	// results of 0 and 1 before it died on item 2 or later.
	first := awaitChunk(t, e, func(ch *chunk) bool { return ch.indexes[0] == 0 })
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, first.indexes)
	first.c.finish(0, []byte("done-0"), nil)
	first.c.finish(1, []byte("done-1"), nil)
	before := tasksLastSeq(t, e)
	maxDeliveries(t, e, first.seq, 4)
	// Two messages more: item 2 alone, items 3-9.
	require.Eventually(t, func() bool { return tasksLastSeq(t, e) == before+2 }, 20*time.Second, 5*time.Millisecond)
	// The advisory's message is deleted, so nothing runs twice.
	require.Eventually(t, func() bool {
		_, err := e.tasks.GetMsg(context.Background(), first.seq)
		return errors.Is(err, jetstream.ErrMsgNotFound)
	}, 20*time.Second, 5*time.Millisecond)

	var calls atomic.Int64
	stop := startWorker(t, s, WorkerOptions{Name: "w", Concurrency: 1, Exec: echoExec(&calls)})
	require.NoError(t, <-ran)
	assert.Empty(t, c.errs)
	require.Len(t, c.vals, 40)
	assert.Equal(t, "done-0", c.vals[0])
	assert.Equal(t, "2", c.vals[2])
	assert.EqualValues(t, 38, calls.Load(), "items 2-39 ran once each")

	// A message of one item that reaches MaxDeliver fails that item.
	stop()
	var one collected
	e.seen.onHello(&nats.Msg{Data: []byte(`{"id":"x","name":"w","concurrency":1}`)})
	b := batchOf("sleep", "x")
	go func() { ran <- e.Run(context.Background(), b, one.done) }()
	only := awaitChunk(t, e, func(ch *chunk) bool { return ch.c.name == "sleep" })
	maxDeliveries(t, e, only.seq, 4)
	require.NoError(t, <-ran)
	require.Len(t, one.errs, 1)
	assert.True(t, strings.Contains(one.errs[0].Error(), "sleep item 0") && strings.Contains(one.errs[0].Error(), "delivered 4 times"), one.errs[0].Error())
}

// A job of slow items that follows a job of quick ones spreads over both
// workers: a worker that has just run quick messages does not take most
// of the next job's messages in one pull.
func TestSlowJobAfterQuickOneSpreads(t *testing.T) {
	s := startServer(t, t.TempDir())
	var mu sync.Mutex
	ran := map[string]int{}
	for _, name := range []string{"w1", "w2"} {
		upper := echoExec(nil)
		startWorker(t, s, WorkerOptions{Name: name, Concurrency: 1, Exec: func(ctx context.Context, fn []byte, sum string, files func(string) ([]byte, error), args []byte, out func(string)) ([]byte, error) {
			if string(fn) == "slow" {
				mu.Lock()
				ran[name]++
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
				return args, nil
			}
			return upper(ctx, fn, sum, files, args, out)
		}})
	}
	e := newExecutor(t, s, Options{})
	waitRunners(t, e, 2)
	for round := range 5 {
		quick := make([]string, 300)
		for i := range quick {
			quick[i] = "q"
		}
		var q collected
		require.NoError(t, e.Run(context.Background(), batchOf("upper", quick...), q.done))
		slow := make([]string, 80)
		for i := range slow {
			slow[i] = fmt.Sprint(i)
		}
		mu.Lock()
		clear(ran)
		mu.Unlock()
		var c collected
		require.NoError(t, e.Run(context.Background(), batchOf("slow", slow...), c.done))
		require.Len(t, c.vals, 80)
		mu.Lock()
		assert.GreaterOrEqual(t, min(ran["w1"], ran["w2"]), 30, "round %d: items per worker %v", round, ran)
		mu.Unlock()
	}
}

// A server whose permissions leave out the workers subject still runs
// the work: no worker answers, and the caller uses the sizes for that.
func TestPresenceDeniedStillWorks(t *testing.T) {
	port := serveWith(t, `authorization {
  users = [{user: alice, password: s3cret, permissions: {
    publish: {deny: ["SEMISYNC_TASKS.workers"]}
    subscribe: {deny: ["SEMISYNC_TASKS.workers"]}
  }}]
}
`)
	url := fmt.Sprintf("nats://alice:s3cret@127.0.0.1:%d", port)
	wnc, err := Connect(url, ConnectOptions{})
	require.NoError(t, err)
	t.Cleanup(wnc.Close)
	runWorker(t, wnc, WorkerOptions{Name: "w", Exec: echoExec(nil)})
	nc, err := Connect(url, ConnectOptions{})
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	e, err := New(context.Background(), nc, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	var c collected
	require.NoError(t, e.Run(context.Background(), batchOf("upper", "a", "b", "c"), c.done))
	assert.Equal(t, map[int]string{0: "A", 1: "B", 2: "C"}, c.vals)
	assert.Zero(t, e.seen.runners(), "no worker could answer")
}
