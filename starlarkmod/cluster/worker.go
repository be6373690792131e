package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/semisync/semisync/starlarkmod"
)

// ExecFunc runs one task item: [starlarkmod.Interpreter.ExecRemote]. It
// returns the portable-encoded result; print lines go to out, which may be
// called from several goroutines. A worker given only an ExecFunc runs the
// items of a task message one after the other, each with its own call.
type ExecFunc func(ctx context.Context, fn []byte, fnSum string, files func(hash string) ([]byte, error), args []byte, out func(line string)) ([]byte, error)

// BatchExecFunc runs the items of a batch, up to concurrency at once:
// [starlarkmod.Interpreter.ExecRemoteBatchLines]. It calls done once per
// item that ran, and out for each line printed with the index of the item
// that printed it (-1: other work of the batch); out may be called from
// several goroutines. When ctx ends it returns ctx's cause; done is not
// called for the items that did not finish.
type BatchExecFunc func(ctx context.Context, b *starlarkmod.RemoteBatch, files func(hash string) ([]byte, error), concurrency int, out func(i int, line string), done func(i int, result []byte, err error)) error

// batchOfItems runs a batch as exec calls, one item after the other.
func batchOfItems(exec ExecFunc) BatchExecFunc {
	return func(ctx context.Context, b *starlarkmod.RemoteBatch, files func(hash string) ([]byte, error), _ int, out func(i int, line string), done func(i int, result []byte, err error)) error {
		for i, it := range b.Items {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			ictx, cancel := starlarkmod.RemoteItemContext(ctx, b)
			res, err := exec(ictx, b.Fn, b.FnSum, files, it.Args, func(l string) { out(i, l) })
			cancel()
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			done(i, res, err)
		}
		return nil
	}
}

// WorkerOptions configure [RunWorker].
type WorkerOptions struct {
	// Stream names the deployment (default [DefaultStream]).
	Stream string
	// Name is shown before the lines its tasks print (default host-pid).
	Name string
	// Concurrency is how many items run at once (default 1): as many
	// task messages are run at once, the items of each one after the other
	// (so that a slow message does not hold items another runner could take).
	Concurrency int
	// AckWait is how long the server waits for a worker's ack or
	// in-progress signal before it gives a task to another worker: a
	// worker that dies loses its tasks for that long (default
	// [DefaultAckWait]). Workers send in-progress signals every AckWait/2.
	AckWait time.Duration
	// MaxDeliver is how many times a task is delivered before it fails
	// (default [DefaultMaxDeliver]).
	MaxDeliver int
	// Grace is how long a stopping worker lets its running items finish
	// before it cancels them and hands their tasks back (default 10s).
	Grace time.Duration
	// ExecBatch runs the items of a task message (one of ExecBatch and
	// Exec is required; ExecBatch is used if both are set): a Starlark
	// worker sets it to [starlarkmod.Interpreter.ExecRemoteBatchLines],
	// which decodes the function once per message and runs its items as
	// tasks of one run.
	ExecBatch BatchExecFunc
	// Exec runs one item; without ExecBatch, the items of a message are
	// run by one Exec call each.
	Exec ExecFunc
	// Log receives the worker's own messages (default io.Discard).
	Log io.Writer
}

// RunWorker serves the deployment's tasks on nc until ctx is done: it
// pulls task messages from the work-queue stream, runs their items with
// Exec, publishes the results into the results stream and acks each
// message only after its results are stored. While a message is held it
// sends in-progress acks. When ctx is done it stops pulling, hands back
// (naks) the messages it has not started, lets running items finish for
// up to Grace, and returns nil.
func RunWorker(ctx context.Context, nc *nats.Conn, o WorkerOptions) error {
	if o.ExecBatch == nil {
		if o.Exec == nil {
			panic("cluster.RunWorker: nil Exec and ExecBatch")
		}
		o.ExecBatch = batchOfItems(o.Exec)
	}
	n, err := newNames(o.Stream)
	if err != nil {
		return err
	}
	if o.Name == "" {
		host, _ := os.Hostname()
		o.Name = host + "-" + strconv.Itoa(os.Getpid())
	}
	o.Concurrency = max(o.Concurrency, 1)
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	w := &worker{o: o, n: n, nc: nc, js: js,
		held:      map[*fetched]struct{}{},
		cancelled: map[string]time.Time{},
		running:   map[string]map[*context.CancelFunc]struct{}{},
		codes:     map[string]*codeEntry{},
		freed:     make(chan struct{}, 1),
	}
	// Setting up waits for the server (a worker may start first).
	var tasks *nats.Subscription
	for {
		tasks, err = w.setup(ctx)
		if err == nil {
			break
		}
		fmt.Fprintf(o.Log, "semisync worker %s: %v (retrying)\n", o.Name, err)
		if !sleepCtx(ctx, time.Second) {
			return nil
		}
	}
	sub, err := nc.Subscribe(n.cancel, w.onCancel)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe() //nolint:errcheck // the connection may be closing
	pings, err := w.answerPings()
	if err != nil {
		return err
	}
	defer pings.Unsubscribe() //nolint:errcheck // the connection may be closing
	fmt.Fprintf(o.Log, "semisync worker %s: serving stream %s on %s (concurrency %d)\n", o.Name, n.tasks, nc.ConnectedUrlRedacted(), o.Concurrency)

	// hard ends running items: Grace after ctx, for a stopping worker.
	hard, kill := context.WithCancel(context.WithoutCancel(ctx))
	defer kill()
	stopTimer := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(o.Grace, kill)
		<-hard.Done()
		t.Stop()
	})
	defer stopTimer()
	w.hard = hard

	// Up to 16 quick messages are fetched ahead (fastMessage), else two per
	// runner, and slow ones only while many wait (see fetchLoop).
	capacity := max(2*o.Concurrency, 16)
	queue := make(chan *fetched, capacity)
	slots := make(chan struct{}, capacity)
	for range capacity {
		slots <- struct{}{}
	}
	acks := make(chan *pending, capacity)
	var runners, ackers sync.WaitGroup
	for range o.Concurrency {
		runners.Add(1)
		go func() {
			defer runners.Done()
			for msg := range queue {
				w.busy.Add(1)
				start := time.Now()
				p := w.handle(ctx, msg)
				took := time.Since(start)
				w.slow.Store(took > slowMessage)
				w.fast.Store(took < fastMessage)
				w.busy.Add(-1)
				slots <- struct{}{}
				select {
				case w.freed <- struct{}{}:
				default:
				}
				if p != nil {
					acks <- p
				}
			}
		}()
	}
	ackers.Add(2)
	go func() { defer ackers.Done(); w.ackLoop(acks) }()
	beat, stopBeat := context.WithCancel(context.Background())
	go func() { defer ackers.Done(); w.inProgressLoop(beat) }()

	w.fetchLoop(ctx, tasks, queue, slots)
	close(queue)
	runners.Wait()
	close(acks)
	stopBeat()
	ackers.Wait()
	fmt.Fprintf(o.Log, "semisync worker %s: stopped\n", o.Name)
	return nil
}

// slowMessage is how long a task message must take for the worker to stop
// fetching messages ahead of its free runners.
const slowMessage = 20 * time.Millisecond

// aheadPending is how many messages must wait in the stream for slow
// messages to be fetched ahead of the worker's free runners.
const aheadPending = 16

// fastMessage is how quick task messages must be for the worker to fetch
// more than two per runner ahead (up to 16): fewer fetches for trivial
// items, and a job of slow items is not taken by the first worker that asks.
const fastMessage = 5 * time.Millisecond

type worker struct {
	o    WorkerOptions
	n    names
	nc   *nats.Conn
	js   jetstream.JetStream
	code jetstream.ObjectStore
	res  jetstream.Stream
	cons jetstream.Consumer // FetchNoWait, for pulls that must not wait
	hard context.Context

	busy atomic.Int32 // runners handling a message
	slow atomic.Bool  // the last message took longer than slowMessage
	fast atomic.Bool  // the last message took less than fastMessage
	// pending is how many messages the stream held for the workers' consumer
	// after the last one fetched.
	pending atomic.Uint64
	freed   chan struct{} // a runner finished a message

	mu        sync.Mutex
	held      map[*fetched]struct{}                       // fetched, not yet acked or naked
	cancelled map[string]time.Time                        // "client call" -> when
	running   map[string]map[*context.CancelFunc]struct{} // "client call" -> running items
	codes     map[string]*codeEntry                       // sha256 hex -> fetched text
}

type codeEntry struct {
	done chan struct{}
	data []byte
	err  error
}

// A fetched task message: nats.go's older JetStream API (the pulls that
// may wait) and its newer one (FetchNoWait) each give their own type.
type fetched struct {
	data               []byte
	subject            string
	pending, delivered uint64 // messages left in the stream; deliveries of this one
	ack, nak, term     func() error
	inProgress         func() error
}

func newLegacyFetched(m *nats.Msg) *fetched {
	f := &fetched{data: m.Data, subject: m.Subject,
		ack: func() error { return m.Ack() }, nak: func() error { return m.Nak() },
		term: func() error { return m.Term() }, inProgress: func() error { return m.InProgress() }}
	if md, err := m.Metadata(); err == nil {
		f.pending, f.delivered = md.NumPending, md.NumDelivered
	}
	return f
}

func newFetched(m jetstream.Msg) *fetched {
	f := &fetched{data: m.Data(), subject: m.Subject(), ack: m.Ack, nak: m.Nak, term: m.Term, inProgress: m.InProgress}
	if md, err := m.Metadata(); err == nil {
		f.pending, f.delivered = md.NumPending, md.NumDelivered
	}
	return f
}

// A pending message waits for its results to be stored, then is acked
// (or naked, for a stopping worker's unfinished message).
type pending struct {
	msg     *fetched
	futures []published
	nak     bool
}

type published struct {
	msg *nats.Msg
	f   jetstream.PubAckFuture
}

// setup creates the deployment's streams and the workers' consumer if
// they do not exist, and returns a pull subscription on the consumer.
//
// The subscription is nats.go's older JetStream API: its FetchBatch
// reuses the subscription, where jetstream.Consumer.Fetch subscribes and
// unsubscribes on every call. A job of slow items fetches one message at
// a time, and on this project's 2-core VM each extra subscription cost
// the server and the worker 0.15-0.4 ms of CPU per message, taken from
// the items running on the other core (see BenchmarkClusterCPU).
func (w *worker) setup(ctx context.Context) (*nats.Subscription, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tasks, res, code, err := w.n.setup(ctx, w.js)
	if err != nil {
		return nil, err
	}
	w.res, w.code = res, code
	w.cons, err = tasks.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       consumerName,
		Description:   "semisync workers",
		FilterSubject: w.n.tasks + ".tasks.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.o.AckWait,
		MaxDeliver:    w.o.MaxDeliver,
		MaxAckPending: 10000,
	})
	if err != nil {
		return nil, err
	}
	js, err := w.nc.JetStream()
	if err != nil {
		return nil, err
	}
	return js.PullSubscribe(w.n.tasks+".tasks.>", consumerName, nats.Bind(w.n.tasks, consumerName))
}

// fetchLoop pulls as many messages as there are free slots until ctx is done.
func (w *worker) fetchLoop(ctx context.Context, tasks *nats.Subscription, queue chan<- *fetched, slots chan struct{}) {
	failing := false
	call := "" // the subject of the last message fetched: its caller and call
	for {
		select {
		case <-ctx.Done():
			return
		case <-slots:
		}
		n := 1
	more:
		for ; n < cap(slots); n++ {
			select {
			case <-slots:
			default:
				break more
			}
		}
		// Slow messages are fetched ahead (one per runner) only while many
		// more wait in the stream: near the end of a CPU-bound job, a
		// message queued here while another worker is idle would lengthen
		// it, but before that, fetching each message only once a runner is
		// free leaves the runner idle for a round trip per message.
		// More than two per runner are held only while quick messages are
		// being run and more wait in the stream: a pull that finds none
		// waits for the next job, whose items may be slow, and must not
		// take all of its messages. So a pull for more than two per runner
		// asks for no more than were waiting after the last message
		// fetched, and does not wait. (Before, a worker that had just run a
		// job of quick items asked for 16, waited, and took 12 of the 23
		// messages of the CPU-bound job that came next.)
		var ahead bool
		for {
			held := int(w.busy.Load()) + len(queue)
			pending := int(min(w.pending.Load(), uint64(cap(slots))))
			allowed := 2*w.o.Concurrency - held
			switch {
			case w.slow.Load() && pending < aheadPending:
				allowed = w.o.Concurrency - held
			case !w.slow.Load() && w.fast.Load() && held > 0 && pending > 0:
				allowed = min(n, max(allowed, pending))
			}
			ahead = allowed > 2*w.o.Concurrency-held
			if allowed >= n {
				break
			}
			if allowed > 0 {
				for ; n > allowed; n-- {
					slots <- struct{}{}
				}
				break
			}
			select {
			case <-ctx.Done():
				for range n {
					slots <- struct{}{}
				}
				return
			case <-w.freed:
			case <-time.After(100 * time.Millisecond):
			}
		}
		got := 0
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		take := func(msg *fetched) {
			got++
			w.pending.Store(msg.pending)
			if msg.subject != call {
				// Another call: how long the last one's messages took says
				// nothing of this one's (a job of quick items, then one of
				// slow items whose 16 messages hold most of it).
				call = msg.subject
				w.fast.Store(false)
				w.slow.Store(false)
			}
			if ctx.Err() != nil {
				msg.nak() //nolint:errcheck // redelivered after AckWait otherwise
				slots <- struct{}{}
				return
			}
			w.mu.Lock()
			w.held[msg] = struct{}{}
			w.mu.Unlock()
			queue <- msg
		}
		var err error
		if ahead {
			// More than two per runner: only what waits now. (A pull that
			// waited would take the next job's messages, up to n of them.)
			var batch jetstream.MessageBatch
			if batch, err = w.cons.FetchNoWait(n); err == nil {
				for msg := range batch.Messages() {
					take(newFetched(msg))
				}
				err = batch.Error()
			}
		} else {
			// FetchBatch hands over each message as it comes (Fetch returns
			// once it has all n, and runners wait meanwhile).
			var batch nats.MessageBatch
			if batch, err = tasks.FetchBatch(n, nats.Context(fctx)); err == nil {
				for msg := range batch.Messages() {
					take(newLegacyFetched(msg))
				}
				err = batch.Error()
			}
		}
		cancel()
		if got == 0 {
			w.pending.Store(0) // nothing waits in the stream now
		}
		for range n - got {
			slots <- struct{}{}
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			if !failing {
				fmt.Fprintf(w.o.Log, "semisync worker %s: %v (retrying)\n", w.o.Name, err)
			}
			failing = true
			if !sleepCtx(ctx, 250*time.Millisecond) {
				return
			}
			continue
		}
		failing = false
	}
}

// handle runs the items of one task message and returns the message with
// its result publishes, to be acked once they are stored. It returns nil
// for a message it already answered (acked, naked or terminated).
func (w *worker) handle(stop context.Context, msg *fetched) *pending {
	t, err := decodeTask(msg.data)
	if err != nil {
		fmt.Fprintf(w.o.Log, "semisync worker %s: %v: dropped\n", w.o.Name, err)
		w.release(msg)
		msg.term() //nolint:errcheck // nothing else to do with it
		return nil
	}
	key := t.Client + " " + strconv.FormatUint(t.Call, 10)
	p := &pending{msg: msg}
	if stop.Err() != nil {
		p.nak = true
		return p
	}
	if w.isCancelled(key) {
		return p
	}
	fn, err := w.fetchCode(t.FnSum)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		// The store is unreachable (a server restart): try again later.
		p.nak = true
		return p
	}
	subject := w.n.resultSubject(t.Client)
	var out []resultItem
	flush := func(extra []string) {
		if len(out) == 0 && len(extra) == 0 {
			return
		}
		rm := resultMsg{Call: t.Call, Worker: w.o.Name, Items: out, Lines: extra}
		m := &nats.Msg{Subject: subject, Data: rm.encode()}
		p.futures = append(p.futures, w.publish(m))
		out = out[len(out):] // the encoding copied the items: reuse the rest of the array
	}
	if err != nil {
		for _, it := range t.Items {
			out = append(out, resultItem{Index: it.Index, Failed: true,
				Msg: fmt.Sprintf("cluster: worker %s cannot find the code of %s (%.12s) in %s: %v", w.o.Name, t.Name, t.FnSum, w.n.code, err)})
		}
		flush(nil)
		return p
	}
	// The message's items run under one context, which a cancel of their
	// call (onCancel) or the end of the grace period cancels.
	mctx, mcancel := context.WithCancel(w.hard)
	defer mcancel()
	w.track(key, &mcancel, true)
	defer w.track(key, &mcancel, false)
	b := &starlarkmod.RemoteBatch{Name: t.Name, Fn: fn, FnSum: t.FnSum, Timeout: t.Timeout,
		Seed: t.Seed, Seeded: t.Seeded, Items: make([]starlarkmod.RemoteItem, len(t.Items))}
	for i, it := range t.Items {
		b.Items[i] = starlarkmod.RemoteItem{Args: it.Args, Task: it.Task}
	}
	// Lines printed, by item; lines of no item go with the next item done.
	var lmu sync.Mutex
	var lines map[int][]string
	var loose []string
	var printed atomic.Bool // lines or loose may be non-empty
	took := func(i int) []string {
		if !printed.Load() {
			return nil
		}
		lmu.Lock()
		defer lmu.Unlock()
		l := lines[i]
		delete(lines, i)
		if len(loose) > 0 {
			l = append(loose, l...)
			loose = nil
		}
		return l
	}
	ran := make([]bool, len(t.Items))
	again := msg.delivered > 1
	last := time.Now()
	cancelled := false
	xerr := w.o.ExecBatch(mctx, b, w.files, 1, func(i int, l string) {
		lmu.Lock()
		printed.Store(true)
		if i < 0 || i >= len(t.Items) {
			loose = append(loose, l)
		} else {
			if lines == nil {
				lines = map[int][]string{}
			}
			lines[i] = append(lines[i], l)
		}
		lmu.Unlock()
	}, func(i int, res []byte, err error) {
		if cancelled || mctx.Err() != nil {
			cancelled = true // the caller gave up on this call, or the worker stops
			return
		}
		ran[i] = true
		ri := resultItem{Index: t.Items[i].Index, Lines: took(i)}
		if err != nil {
			ri.Failed = true
			ri.Msg, ri.Trace = errorParts(err)
		} else {
			ri.Value = res
		}
		out = append(out, ri)
		// Results go back together, every 100ms and at the end of the
		// message: each result message costs the server and the caller a
		// wakeup, taken from the items running on this machine's cores. A
		// message delivered again may hold an item that kills every worker
		// that runs it: then each result goes at once, so that the items
		// before that one are not run again when the caller splits the
		// message (onMaxDeliveries).
		if again || time.Since(last) > 100*time.Millisecond {
			flush(nil)
			last = time.Now()
		}
	})
	switch {
	case w.hard.Err() != nil:
		p.nak = true // the worker stops: another one runs what is left
	case w.isCancelled(key):
		// The caller gave up on this call: what ran is sent, the rest dropped.
	case xerr != nil:
		// The function could not be run at all (a corrupt encoding, a file
		// that cannot be fetched): every item left fails with the reason.
		msg, trace := errorParts(xerr)
		for i, it := range t.Items {
			if !ran[i] {
				out = append(out, resultItem{Index: it.Index, Failed: true, Msg: msg, Trace: trace, Lines: took(i)})
			}
		}
	}
	flush(took(-1))
	return p
}

// errorParts is how a failed item travels: its message and backtrace.
func errorParts(err error) (msg, trace string) {
	var rerr *starlarkmod.RemoteError
	if errors.As(err, &rerr) {
		return rerr.Msg, rerr.Trace
	}
	return err.Error(), ""
}

// publish sends one result message into the results stream.
func (w *worker) publish(m *nats.Msg) published {
	for {
		f, err := w.js.PublishMsgAsync(m)
		if err == nil {
			return published{m, f}
		}
		if !sleepCtx(w.hard, 100*time.Millisecond) {
			return published{m, nil}
		}
	}
}

// ackLoop waits, in order, for each message's results to be stored, then
// acks it (or naks it), and forgets it.
func (w *worker) ackLoop(acks <-chan *pending) {
	for p := range acks {
		stored := true
		for _, pub := range p.futures {
			if !w.settle(pub) {
				stored = false
			}
		}
		if p.nak || !stored {
			p.msg.nak() //nolint:errcheck // redelivered after AckWait otherwise
		} else {
			p.msg.ack() //nolint:errcheck // a lost ack means a redelivery, and the caller drops duplicates
		}
		w.release(p.msg)
	}
}

// settle waits until a result message is stored, publishing it again if
// that fails; it gives up when the worker is killed.
func (w *worker) settle(pub published) bool {
	for pub.f != nil {
		select {
		case <-pub.f.Ok():
			return true
		case <-pub.f.Err():
		case <-time.After(5 * time.Second):
		case <-w.hard.Done():
			return false
		}
		if !sleepCtx(w.hard, 100*time.Millisecond) {
			return false
		}
		pub = w.publish(pub.msg)
	}
	return false
}

func (w *worker) release(msg *fetched) {
	w.mu.Lock()
	delete(w.held, msg)
	w.mu.Unlock()
}

// inProgressLoop tells the server every AckWait/2 that held messages are
// still being worked on, so that only a dead worker's tasks move.
func (w *worker) inProgressLoop(ctx context.Context) {
	t := time.NewTicker(w.o.AckWait / 2)
	defer t.Stop()
	var held []*fetched
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held = held[:0]
		w.mu.Lock()
		for m := range w.held {
			held = append(held, m)
		}
		for k, at := range w.cancelled {
			if time.Since(at) > 10*time.Minute {
				delete(w.cancelled, k)
			}
		}
		w.mu.Unlock()
		for _, m := range held {
			m.inProgress() //nolint:errcheck // a missed one costs a redelivery at worst
		}
	}
}

// onCancel records a caller's cancelled call and cancels its running items.
func (w *worker) onCancel(m *nats.Msg) {
	key := string(m.Data)
	w.mu.Lock()
	w.cancelled[key] = time.Now()
	var cancels []context.CancelFunc
	for c := range w.running[key] {
		cancels = append(cancels, *c)
	}
	w.mu.Unlock()
	for _, c := range cancels {
		c()
	}
}

func (w *worker) isCancelled(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.cancelled[key]
	return ok
}

func (w *worker) track(key string, c *context.CancelFunc, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if on {
		if w.running[key] == nil {
			w.running[key] = map[*context.CancelFunc]struct{}{}
		}
		w.running[key][c] = struct{}{}
		return
	}
	delete(w.running[key], c)
	if len(w.running[key]) == 0 {
		delete(w.running, key)
	}
}

// files is the files callback of Exec: texts by content hash.
func (w *worker) files(hash string) ([]byte, error) { return w.fetchCode(hash) }

// fetchCode returns the text stored under hash in the code store, fetched
// once per worker and checked against its hash.
func (w *worker) fetchCode(hash string) ([]byte, error) {
	w.mu.Lock()
	e := w.codes[hash]
	if e == nil {
		e = &codeEntry{done: make(chan struct{})}
		w.codes[hash] = e
		w.mu.Unlock()
		e.data, e.err = w.getCode(hash)
		if e.err != nil {
			w.mu.Lock()
			delete(w.codes, hash)
			w.mu.Unlock()
		}
		close(e.done)
	} else {
		w.mu.Unlock()
		<-e.done
	}
	return e.data, e.err
}

func (w *worker) getCode(hash string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(w.hard, 10*time.Second)
	defer cancel()
	return w.code.GetBytes(ctx, hash)
}
