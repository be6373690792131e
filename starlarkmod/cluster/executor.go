package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/semisync/semisync/starlarkmod"
)

// Options configure an [Executor].
type Options struct {
	// Stream names the deployment (default [DefaultStream]); workers must
	// use the same name.
	Stream string
	// Stdout receives the lines tasks print on workers, one write per
	// line, each prefixed with "[worker-name] ". Stderr receives the
	// notice that nothing consumes the stream. Both default to io.Discard.
	Stdout, Stderr io.Writer
	// ChunkSize is the most items sent in one message (default 256):
	// fewer messages is more throughput, smaller chunks spread short jobs
	// over more workers. Messages follow the workers' runners (see
	// guidedChunk): each takes a quarter of a runner's share of the items
	// left, down to one item at the end of a batch. Before any worker has
	// answered, batches of up to 256 items go one item per message and
	// larger ones are cut into at least 16 messages.
	ChunkSize int
	// WaitNotice is how long a call may see no progress before the
	// executor checks that some worker consumes the stream (default 2s).
	WaitNotice time.Duration
	// URL names the server in messages (redacted).
	URL string
}

// An Executor sends batches of portable tasks to the workers of one
// stream and gathers their results: it implements starlarkmod.Remote.
//
// Each batch is cut into chunks; each chunk is one message on the
// work-queue stream, published with its id as the JetStream message id
// (a retried publish is dropped as a duplicate). The function's encoding
// and the file texts it names go once, by sha256, to the deployment's
// object store (<stream>_CODE), where workers fetch and cache them.
// Workers publish results into the <stream>_RESULTS stream, on a subject
// of this executor only, which it reads with an ordered consumer: a
// result stored there survives a server restart, and the worker acks its
// task only after that. Delivery is at least once, so results are
// deduplicated by item.
//
// Its methods are safe for concurrent use. Close releases it.
type Executor struct {
	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	n       names
	opts    Options
	client  string
	tasks   jetstream.Stream
	results jetstream.Stream
	code    jetstream.ObjectStore
	newErr  func(worker, msg, trace string) error

	outMu sync.Mutex // one write per printed line

	storeMu sync.Mutex
	stored  map[string]*storeOnce

	mu       sync.Mutex
	calls    map[uint64]*call
	bySeq    map[uint64]*chunk // stream sequence of a published chunk
	nextCall uint64
	progress time.Time // last result, or start of the oldest call
	noticed  bool      // the waiting notice was printed since then

	msgs   jetstream.MessagesContext
	adv    *nats.Subscription
	seen   *presence
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

type storeOnce struct {
	done chan struct{}
	err  error
}

// A call is one Run in flight.
type call struct {
	key   uint64
	name  string
	batch *starlarkmod.RemoteBatch
	ids   []string
	done  func(i int, result []byte, err error)
	mu    sync.Mutex
	fin   []bool
	left  int
	end   chan struct{} // closed when left reaches 0
	chunk []*chunk
}

// A chunk is one published task message.
type chunk struct {
	c       *call
	id      string
	indexes []int
	seq     uint64
}

// Dial connects to url and returns an executor that owns the connection.
func Dial(ctx context.Context, url string, co ConnectOptions, o Options) (*Executor, error) {
	nc, err := Connect(url, co)
	if err != nil {
		return nil, err
	}
	if o.URL == "" {
		o.URL = url
	}
	e, err := New(ctx, nc, o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	e.ownConn = true
	return e, nil
}

// New returns an executor that uses nc (which the caller closes after
// Close). It creates the deployment's streams if they do not exist.
func New(ctx context.Context, nc *nats.Conn, o Options) (*Executor, error) {
	n, err := newNames(o.Stream)
	if err != nil {
		return nil, err
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = 256
	}
	if o.WaitNotice <= 0 {
		o.WaitNotice = 2 * time.Second
	}
	if o.URL == "" {
		o.URL = nc.ConnectedUrlRedacted()
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		return nil, err
	}
	e := &Executor{
		nc: nc, js: js, n: n, opts: o,
		client: nuid.Next(),
		stored: map[string]*storeOnce{},
		calls:  map[uint64]*call{},
		bySeq:  map[uint64]*chunk{},
		newErr: newRemoteError,
	}
	if e.tasks, e.results, e.code, err = n.setup(ctx, js); err != nil {
		return nil, err
	}
	cons, err := e.results.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{n.resultSubject(e.client)},
	})
	if err != nil {
		return nil, fmt.Errorf("results consumer: %w", err)
	}
	if e.msgs, err = cons.Messages(); err != nil {
		return nil, fmt.Errorf("results consumer: %w", err)
	}
	if e.adv, err = nc.Subscribe(n.advisor, e.onMaxDeliveries); err != nil {
		e.msgs.Stop()
		return nil, err
	}
	if e.seen, err = newPresence(nc, n.workers); err != nil {
		e.msgs.Stop()
		e.adv.Unsubscribe() //nolint:errcheck // closing anyway
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	e.stop = stop
	e.wg.Add(2)
	go func() { defer e.wg.Done(); e.readResults() }()
	go func() { defer e.wg.Done(); e.watchWorkers(bg) }()
	return e, nil
}

// Close stops reading results, removes this executor's leftover tasks
// and results from the streams, and closes the connection if Dial made
// it. Calls still running fail.
func (e *Executor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.stop()
	e.msgs.Stop()
	err := e.adv.Unsubscribe()
	e.seen.close()
	e.wg.Wait()
	// Calls still waiting get an error for each item left.
	e.mu.Lock()
	calls := make([]*call, 0, len(e.calls))
	for _, c := range e.calls {
		calls = append(calls, c)
	}
	e.mu.Unlock()
	for _, c := range calls {
		for i := range c.fin {
			c.finish(i, nil, errors.New("cluster: the executor was closed"))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if e.nc.IsConnected() {
		e.tasks.Purge(ctx, jetstream.WithPurgeSubject(e.n.clientTasks(e.client)))     //nolint:errcheck // best effort
		e.results.Purge(ctx, jetstream.WithPurgeSubject(e.n.resultSubject(e.client))) //nolint:errcheck // best effort
	}
	if e.ownConn {
		e.nc.Close()
	}
	return err
}

// Run sends b's items to the workers and calls done once per item (from
// the goroutine that reads results) with the portable-encoded result or a
// *starlarkmod.RemoteError. It returns when every item is done, or when
// ctx is cancelled: then it tells the workers to stop the batch's items,
// removes its messages that no worker finished from the stream, and
// returns ctx's error.
func (e *Executor) Run(ctx context.Context, b *starlarkmod.RemoteBatch, done func(i int, result []byte, err error)) error {
	if len(b.Items) == 0 {
		return nil
	}
	if err := e.storeCode(ctx, b); err != nil {
		return err
	}
	c := &call{
		batch: b,
		name:  b.Name,
		done:  done,
		fin:   make([]bool, len(b.Items)),
		left:  len(b.Items),
		end:   make(chan struct{}),
		ids:   make([]string, len(b.Items)),
	}
	for i, it := range b.Items {
		c.ids[i] = it.ID
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errors.New("cluster executor is closed")
	}
	e.nextCall++
	c.key = e.nextCall
	if len(e.calls) == 0 {
		e.progress, e.noticed = time.Now(), false
	}
	e.calls[c.key] = c
	e.mu.Unlock()
	defer e.forget(c)

	pubErr := make(chan error, 1)
	pctx, stopPub := context.WithCancel(ctx)
	go func() { pubErr <- e.publish(pctx, c, b) }()
	// The publisher is stopped and waited for before forget reads its chunks.
	stop := func() {
		stopPub()
		if pubErr != nil {
			<-pubErr
		}
	}
	for {
		select {
		case <-c.end:
			stop()
			return nil
		case err := <-pubErr:
			pubErr = nil
			if err != nil && ctx.Err() == nil {
				stop()
				e.cancelCall(c)
				return err
			}
		case <-ctx.Done():
			stop()
			e.cancelCall(c)
			return ctx.Err()
		}
	}
}

// chunkSize is the number of items per message for a batch of n when no
// worker has said how many items it runs at once: one for a small batch,
// else at most ChunkSize, and small enough that a batch makes 16
// messages, so that jobs of slow items still spread over many workers (a
// job sends batches of 1024 items, four at a time, growing to 8192 while
// they come back quickly: 64 messages of up to 256 items in flight).
func (e *Executor) chunkSize(n int) int {
	if n <= smallBatch {
		// One item per message: a small batch may be a job of slow items,
		// whose last messages would otherwise keep one worker busy while
		// others are idle; a few hundred messages cost milliseconds.
		return 1
	}
	k := (n + 15) / 16
	return max(1, min(k, e.opts.ChunkSize))
}

// smallBatch is the largest batch sent one item per message.
const smallBatch = 256

// maxChunkBytes caps a chunk's payload below the server's max_payload.
func (e *Executor) maxChunkBytes() int {
	return int(min(e.nc.MaxPayload()/2, 512<<10))
}

// publish sends c's chunks, keeping a bounded number of publishes in
// flight, and records each chunk's stream sequence. A publish that fails
// or is not acknowledged is retried with the same message id.
func (e *Executor) publish(ctx context.Context, c *call, b *starlarkmod.RemoteBatch) error {
	per := e.chunkSize(len(b.Items))
	limit := e.maxChunkBytes()
	type inflight struct {
		ch  *chunk
		msg *nats.Msg
		f   jetstream.PubAckFuture
	}
	var window []inflight
	send := func(ch *chunk, msg *nats.Msg) (jetstream.PubAckFuture, error) {
		for {
			f, err := e.js.PublishMsgAsync(msg)
			if err == nil {
				return f, nil
			}
			if !sleepCtx(ctx, 100*time.Millisecond) {
				return nil, ctx.Err()
			}
		}
	}
	// A publish is retried (a server restart takes a moment) for a minute.
	settle := func(in inflight) error {
		var failing time.Time
		var lastErr error
		for {
			select {
			case ack := <-in.f.Ok():
				e.mu.Lock()
				in.ch.seq = ack.Sequence
				if !c.finished() {
					e.bySeq[ack.Sequence] = in.ch
				}
				e.mu.Unlock()
				return nil
			case lastErr = <-in.f.Err():
			case <-time.After(5 * time.Second):
				lastErr = errors.New("no acknowledgement in 5s")
			case <-ctx.Done():
				return ctx.Err()
			}
			if failing.IsZero() {
				failing = time.Now()
			} else if time.Since(failing) > time.Minute {
				return fmt.Errorf("cluster: cannot publish %s's tasks to stream %s: %v", b.Name, e.n.tasks, lastErr)
			}
			if !sleepCtx(ctx, 100*time.Millisecond) {
				return ctx.Err()
			}
			f, err := send(in.ch, in.msg)
			if err != nil {
				return err
			}
			in.f = f
		}
	}
	runners := e.seen.runners()
	// Messages shrink to one item at the end of a batch, so that the last
	// items of a job of slow items spread over every runner. A batch of a
	// job whose earlier batches came back quickly (b.Quick) goes down to
	// 1/64 of it only: many small messages would cost throughput and gain
	// nothing (BenchmarkClusterTrivial).
	least := 1
	if b.Quick {
		least = max(1, min(e.opts.ChunkSize, len(b.Items)/64))
	}
	for start := 0; start < len(b.Items); {
		size := per
		if runners > 0 {
			size = max(least, guidedChunk(len(b.Items)-start, runners, e.opts.ChunkSize))
		}
		// 22: an item's other fields, at most.
		end := start + 1
		for bytes := len(b.Items[start].Args) + 22; end < len(b.Items) && end-start < size; end++ {
			if bytes += len(b.Items[end].Args) + 22; bytes > limit {
				break
			}
		}
		ch, msg := e.chunkMsg(c, b, span(start, end), "")
		if int64(len(msg.Data)) > e.nc.MaxPayload() {
			c.finish(start, nil, fmt.Errorf("cluster: %s item %d: its arguments take %d bytes, more than the server's max_payload (%d)", b.Name, start, len(msg.Data), e.nc.MaxPayload()))
			start = end
			continue
		}
		start = end
		e.mu.Lock()
		c.chunk = append(c.chunk, ch)
		e.mu.Unlock()
		f, err := send(ch, msg)
		if err != nil {
			return err
		}
		window = append(window, inflight{ch, msg, f})
		if len(window) >= 256 {
			if err := settle(window[0]); err != nil {
				return err
			}
			window = window[1:]
		}
	}
	for _, in := range window {
		if err := settle(in); err != nil {
			return err
		}
	}
	return nil
}

// span returns the indexes start to end-1.
func span(start, end int) []int {
	s := make([]int, 0, end-start)
	for i := start; i < end; i++ {
		s = append(s, i)
	}
	return s
}

// chunkMsg builds the task message of b's items at indexes, of call c.
// The message id names the chunk within this call (the executor's client
// id is unique, its calls are numbered; suffix tells chunks sent again
// apart): a publish retried after a lost ack is a duplicate; the same
// items sent again by another call are not.
func (e *Executor) chunkMsg(c *call, b *starlarkmod.RemoteBatch, indexes []int, suffix string) (*chunk, *nats.Msg) {
	tm := taskMsg{Client: e.client, Call: c.key, Name: b.Name, FnSum: b.FnSum, Timeout: b.Timeout, Seed: b.Seed, Seeded: b.Seeded,
		Items: make([]taskItem, 0, len(indexes))}
	for _, i := range indexes {
		it := b.Items[i]
		tm.Items = append(tm.Items, taskItem{Index: i, Args: it.Args, Task: it.Task})
	}
	ch := &chunk{c: c, indexes: indexes}
	ch.id = e.client + "." + strconv.FormatUint(c.key, 10) + "." + strconv.Itoa(indexes[0]) + "-" + strconv.Itoa(indexes[len(indexes)-1]+1) + suffix
	msg := &nats.Msg{Subject: e.n.taskSubject(e.client, c.key), Data: tm.encode(),
		Header: nats.Header{jetstream.MsgIDHeader: []string{ch.id}}}
	return ch, msg
}

// storeCode puts the function's encoding and the files it names into the
// code store, once per executor and hash.
func (e *Executor) storeCode(ctx context.Context, b *starlarkmod.RemoteBatch) error {
	if err := e.storeOne(ctx, b.FnSum, b.Fn); err != nil {
		return err
	}
	for h, text := range b.Files {
		if err := e.storeOne(ctx, h, text); err != nil {
			return err
		}
	}
	return nil
}

func (e *Executor) storeOne(ctx context.Context, hash string, data []byte) error {
	e.storeMu.Lock()
	s := e.stored[hash]
	if s == nil {
		s = &storeOnce{done: make(chan struct{})}
		e.stored[hash] = s
		e.storeMu.Unlock()
		s.err = e.put(ctx, hash, data)
		if s.err != nil {
			e.storeMu.Lock()
			delete(e.stored, hash) // try again next time
			e.storeMu.Unlock()
		}
		close(s.done)
		return s.err
	}
	e.storeMu.Unlock()
	select {
	case <-s.done:
		if s.err != nil {
			return e.storeOne(ctx, hash, data)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Executor) put(ctx context.Context, hash string, data []byte) error {
	if info, err := e.code.GetInfo(ctx, hash); err == nil && info.Size == uint64(len(data)) {
		return nil // content-addressed: already there
	}
	if _, err := e.code.PutBytes(ctx, hash, data); err != nil {
		return fmt.Errorf("cluster: storing code %.12s in %s: %w", hash, e.n.code, err)
	}
	return nil
}

// readResults hands each result message to its call until Close.
func (e *Executor) readResults() {
	for {
		msg, err := e.msgs.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			// The ordered consumer recreates itself; do not spin meanwhile.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		e.onResult(msg.Data())
	}
}

func (e *Executor) onResult(data []byte) {
	m, err := decodeResult(data)
	if err != nil {
		fmt.Fprintf(e.opts.Stderr, "semisync: cluster: %v\n", err)
		return
	}
	e.mu.Lock()
	c := e.calls[m.Call]
	e.progress, e.noticed = time.Now(), false
	e.mu.Unlock()
	if c == nil {
		return // a call that ended (cancelled, or a duplicate after its end)
	}
	for _, it := range m.Items {
		if it.Index < 0 || it.Index >= len(c.fin) || !c.claim(it.Index) {
			continue
		}
		for _, l := range it.Lines {
			e.printLine(m.Worker, l)
		}
		var err error
		if it.Failed {
			err = e.newErr(m.Worker, it.Msg, it.Trace)
		}
		c.deliver(it.Index, it.Value, err)
	}
	for _, l := range m.Lines {
		e.printLine(m.Worker, l)
	}
}

func (e *Executor) printLine(worker, line string) {
	var b bytes.Buffer
	b.Grow(len(worker) + len(line) + 4)
	b.WriteByte('[')
	b.WriteString(worker)
	b.WriteString("] ")
	b.WriteString(line)
	b.WriteByte('\n')
	e.outMu.Lock()
	e.opts.Stdout.Write(b.Bytes()) //nolint:errcheck // print has nowhere to report failure
	e.outMu.Unlock()
}

// claim marks item i done; it reports false if it already was.
func (c *call) claim(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fin[i] {
		return false
	}
	c.fin[i] = true
	return true
}

// isDone reports whether item i has its result or error.
func (c *call) isDone(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fin[i]
}

// deliver calls done for a claimed item and ends the call after the last.
func (c *call) deliver(i int, v []byte, err error) {
	c.done(i, v, err)
	c.mu.Lock()
	c.left--
	last := c.left == 0
	c.mu.Unlock()
	if last {
		close(c.end)
	}
}

func (c *call) finish(i int, v []byte, err error) {
	if c.claim(i) {
		c.deliver(i, v, err)
	}
}

func (c *call) finished() bool {
	select {
	case <-c.end:
		return true
	default:
		return false
	}
}

// forget drops a call that returned.
func (e *Executor) forget(c *call) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.calls, c.key)
	for _, ch := range c.chunk {
		if ch.seq != 0 && e.bySeq[ch.seq] == ch {
			delete(e.bySeq, ch.seq)
		}
	}
}

// cancelCall tells workers to stop c's items and removes its messages
// that no worker has finished.
func (e *Executor) cancelCall(c *call) {
	e.nc.Publish(e.n.cancel, fmt.Appendf(nil, "%s %d", e.client, c.key)) //nolint:errcheck // best effort: the purge below is what counts
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e.tasks.Purge(ctx, jetstream.WithPurgeSubject(e.n.taskSubject(e.client, c.key))) //nolint:errcheck // best effort; Close purges again
}

// onMaxDeliveries fails the items of a chunk that every worker that took
// it died on (or stalled on past the ack wait), and deletes the message,
// which a work-queue stream would otherwise keep.
func (e *Executor) onMaxDeliveries(m *nats.Msg) {
	var adv struct {
		Seq        uint64 `json:"stream_seq"`
		Deliveries int    `json:"deliveries"`
	}
	if json.Unmarshal(m.Data, &adv) != nil {
		return
	}
	e.mu.Lock()
	ch := e.bySeq[adv.Seq]
	delete(e.bySeq, adv.Seq)
	e.mu.Unlock()
	if ch == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		e.tasks.DeleteMsg(ctx, adv.Seq) //nolint:errcheck // gone already is fine
	}()
	// Which item killed the workers is not known: a worker may also have
	// died holding this message before it started it (fetched ahead).
	// A message of one item fails; a longer one is split in two, its first
	// unfinished item alone and the rest, each sent again with deliveries
	// of its own. (A worker given a message again sends each result at
	// once, so the items that ran before the culprit are not sent again.)
	var left []int
	for _, i := range ch.indexes {
		if !ch.c.isDone(i) {
			left = append(left, i)
		}
	}
	switch {
	case len(left) == 1:
		i := left[0]
		ch.c.finish(i, nil, fmt.Errorf("cluster: %s item %d (task %s): delivered %d times and no worker finished it: each worker that ran it died or stopped answering", ch.c.name, i, short(ch.c.ids[i]), adv.Deliveries))
	case len(left) > 1:
		go func() {
			e.resend(ch.c, left[:1])
			e.resend(ch.c, left[1:])
		}()
	}
}

// resend publishes the items at indexes of call c again, in a message of
// their own.
func (e *Executor) resend(c *call, indexes []int) {
	ch, msg := e.chunkMsg(c, c.batch, indexes, ".again")
	e.mu.Lock()
	if e.calls[c.key] != c {
		e.mu.Unlock()
		return // the call returned
	}
	c.chunk = append(c.chunk, ch)
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ack, err := e.js.PublishMsg(ctx, msg, jetstream.WithRetryAttempts(60), jetstream.WithRetryWait(time.Second))
	if err != nil {
		for _, i := range indexes {
			c.finish(i, nil, fmt.Errorf("cluster: %s item %d: delivered too often with other items, and sending it again failed: %v", c.name, i, err))
		}
		return
	}
	e.mu.Lock()
	ch.seq = ack.Sequence
	if e.calls[c.key] == c {
		e.bySeq[ack.Sequence] = ch
	}
	e.mu.Unlock()
}

func short(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// watchWorkers prints, once per wait, that calls are waiting and nothing
// consumes the stream, instead of hanging silently.
func (e *Executor) watchWorkers(ctx context.Context) {
	tick := time.NewTicker(e.opts.WaitNotice / 2)
	defer tick.Stop()
	idle := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		e.mu.Lock()
		waiting := len(e.calls) > 0 && !e.noticed && time.Since(e.progress) >= e.opts.WaitNotice
		e.mu.Unlock()
		if !waiting {
			idle = 0
			continue
		}
		if e.workersGone(ctx) {
			idle++
		} else {
			idle = 0
		}
		if idle < 2 {
			continue
		}
		e.mu.Lock()
		print := !e.noticed && len(e.calls) > 0
		e.noticed = true
		e.mu.Unlock()
		if print {
			u := Redact(e.opts.URL)
			fmt.Fprintf(e.opts.Stderr, "semisync: waiting for workers: nothing consumes stream %s on %s (start one with: semisync worker --nats %s)\n", e.n.tasks, u, u)
		}
		idle = 0
	}
}

// workersGone reports whether no worker pulls from the stream: its
// consumer does not exist, or it has neither waiting pulls nor tasks
// being worked on.
func (e *Executor) workersGone(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cons, err := e.tasks.Consumer(ctx, consumerName)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return true
	}
	if err != nil {
		return false
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return false
	}
	return info.NumWaiting == 0 && info.NumAckPending == 0
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func newRemoteError(worker, msg, trace string) error {
	return &starlarkmod.RemoteError{Worker: worker, Msg: msg, Trace: trace}
}

var _ starlarkmod.Remote = (*Executor)(nil)
