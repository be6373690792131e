package starlarkmod

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/compile"
	"github.com/semisync/semisync/starlarkmod/internal/portable"
)

// Remote execution (DESIGN.md section 7): with Options.Remote set, job
// items, @semisync calls and @future calls run elsewhere (a NATS
// JetStream cluster: starlarkmod/cluster implements Remote; this package
// imports no NATS). The task travels as its portable encoding
// (internal/portable): the function named by its file's content hash and
// the position of its def, the values it reaches, the arguments. A task
// whose function or arguments cannot leave the process (a Manager
// container, a Lock, the dispatcher, a future, a stream, a @semisync
// function, a host value that is not portable) is refused before anything
// is sent, with an error naming the value and the line that uses it.
// Everything else behaves as locally: results come back decoded and frozen,
// in the job's order; callbacks run on the thread that called
// semisync.begin; suppress_worker_exceptions reports and goes on; per-item
// timeouts apply on the worker (RemoteBatch.Timeout); the progress bar
// advances; Ctrl-C cancels the remote work (Remote.Run's context).
//
// Pipelines, dispatcher handlers and Manager containers stay here.

// A Remote runs portable tasks elsewhere. starlarkmod/cluster implements
// it; starlarkmod imports no NATS.
type Remote interface {
	// Run sends the batch and calls done once per item (any order, any
	// goroutine) with the portable-encoded result or an error. It returns
	// when every item is done or ctx is cancelled (then it cancels the
	// remote work and returns ctx's error).
	Run(ctx context.Context, b *RemoteBatch, done func(i int, result []byte, err error)) error
}

// A RemoteBatch is a function and the items to call it with.
type RemoteBatch struct {
	Run   string            // this run's id (unique per Run)
	Name  string            // the function's name, for messages
	Fn    []byte            // portable.EncodeFunc(fn, ByFile).Data
	FnSum string            // hex sha256 of Fn (workers cache decoded functions by it)
	Files map[string][]byte // texts the encoding names, by content hash
	Items []RemoteItem      // job items (chunked by the executor), or one call
	// Timeout, if positive, limits each item (a job's timeout=): the worker
	// runs ExecRemote under a context with this deadline, and the item fails
	// with a timeout error.
	Timeout time.Duration
	// Seed, if Seeded (--seed), seeds each item's random generator with the
	// item's Task, as locally: ExecRemoteBatch gives the same random
	// numbers as a local run.
	Seed   int64
	Seeded bool
	// Quick says that an earlier batch of the same job came back within
	// 100ms: its items are quick, and the executor may send this batch in
	// fewer, larger messages. Without it, a batch may be the last of a job
	// of slow items, whose last messages should hold one item each.
	Quick bool
}

// A RemoteItem is one call of a batch's function.
type RemoteItem struct {
	ID   string // hex: hash(Fn, Args) + run + structural task id; dedup key
	Args []byte // portable.EncodeArgs
	Task uint64 // the hash of the task's structural identity (seeds its random generator)
}

// A RemoteError is a task's failure as the worker saw it.
type RemoteError struct {
	Worker string // the worker's name
	Msg    string // the error message
	Trace  string // the formatted backtrace (file:line:col of the original script)
}

// Error returns the message.
func (e *RemoteError) Error() string { return e.Msg }

// text renders the failure with its backtrace and the worker that saw it.
func (e *RemoteError) text() string {
	s := e.Trace
	if s == "" {
		s = e.Msg
	}
	if e.Worker != "" {
		s += "\n(on worker " + e.Worker + ")"
	}
	return s
}

// remoteRun is a run's state for remote work.
type remoteRun struct {
	once sync.Once
	id   string
	env  *portable.Env

	// out, if set, receives the lines the run's threads print (a run made
	// by ExecRemote sends them back to the caller), with the index of the
	// ExecRemoteBatch item that printed it (-1: another task of the run).
	out func(item int, line string)
	// seed, if seeded, replaces the interpreter's seed for the run's
	// tasks (the caller's --seed).
	seed   int64
	seeded bool
}

// remoteID returns the run's id, unique per run.
func (r *Run) remoteID() string {
	r.remote.once.Do(r.initRemote)
	return r.remote.id
}

// remoteEnv returns what decoding needs on this side: the run's
// predeclared names and built-in modules.
func (r *Run) remoteEnv() *portable.Env {
	r.remote.once.Do(r.initRemote)
	return r.remote.env
}

func (r *Run) initRemote() {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	r.remote.id = hex.EncodeToString(b[:])
	r.remote.env = &portable.Env{
		Predeclared:  r.predecl,
		Constructors: portableConstructors(r.predecl),
		Load: func(module string) (starlark.StringDict, error) {
			if m, ok := r.mods[module]; ok {
				return m, nil
			}
			return nil, fmt.Errorf("no module %q", module)
		},
		Compiled: r.in.comp.AddFile,
	}
}

// taskHash returns the id of a remote item: the hash of the function's
// encoding, the arguments, the run and the task's structural identity.
func taskHash(fnSum [32]byte, args []byte, run, task string) string {
	buf := make([]byte, 0, 32+8+len(args)+len(run)+1+len(task))
	buf = append(buf, fnSum[:]...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(args)))
	buf = append(buf, args...)
	buf = append(buf, run...)
	buf = append(buf, 0)
	buf = append(buf, task...)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// refuseRemote explains why a task cannot run remotely.
func refuseRemote(op, name, where string, err error) error {
	var npe *portable.NotPortableError
	if errors.As(err, &npe) {
		return fmt.Errorf("%s: cannot send %s (called at %s) to the cluster: %w", op, name, where, err)
	}
	return fmt.Errorf("%s: cannot send %s (called at %s) to the cluster: %v", op, name, where, err)
}

func posText(p syntax.Position) string {
	if !p.IsValid() {
		return "?"
	}
	return p.String()
}

// A remoteCall is one call ready to be sent: a batch of one item.
type remoteCall struct {
	batch *RemoteBatch
}

// remoteCall encodes fn(args, kwargs), the task key of run r, for the
// cluster; nil, nil if there is no cluster. The error refuses the call.
func (r *Run) remoteCall(op string, fn starlark.Callable, args starlark.Tuple, kwargs []starlark.Tuple, key taskRef, where syntax.Position) (*remoteCall, error) {
	if r.in.opts.Remote == nil {
		return nil, nil
	}
	enc, err := portable.EncodeFunc(fn, portable.ByFile)
	if err != nil {
		return nil, refuseRemote(op, fn.Name(), posText(where), err)
	}
	a, err := portable.EncodeArgs(args, kwargs, portable.ByFile)
	if err != nil {
		return nil, refuseRemote(op, fn.Name(), posText(where), err)
	}
	id := key.id()
	b := &RemoteBatch{
		Run: r.remoteID(), Name: fn.Name(), Fn: enc.Data, FnSum: hex.EncodeToString(enc.Sum[:]), Files: enc.Files,
		Items: []RemoteItem{{ID: taskHash(enc.Sum, a, r.remoteID(), id.String()), Args: a, Task: id.hash}},
		Seed:  r.in.seed, Seeded: r.in.opts.Seeded,
	}
	return &remoteCall{batch: b}, nil
}

// runRemote sends rc and waits for its result on pool worker w (counting
// as waiting, not computing), under ctx: cancelling ctx cancels the
// remote work.
func (r *Run) runRemote(ctx context.Context, w *engine.Worker, rc *remoteCall) (starlark.Value, error) {
	type outcome struct {
		data []byte
		err  error
	}
	ch := make(chan outcome, 1)
	go func() {
		var mu sync.Mutex
		var got *outcome
		err := r.in.opts.Remote.Run(ctx, rc.batch, func(_ int, data []byte, err error) {
			mu.Lock()
			if got == nil {
				got = &outcome{data, err}
			}
			mu.Unlock()
		})
		mu.Lock()
		o := got
		mu.Unlock()
		if o == nil {
			if err == nil {
				err = errors.New("the cluster returned no result")
			}
			o = &outcome{err: err}
		}
		ch <- *o
	}()
	o, _, err := engine.Recv(ctx, w, ch, 0)
	if err != nil {
		<-ch // Remote.Run returns once ctx is cancelled
		return nil, err
	}
	if o.err != nil {
		return nil, o.err
	}
	v, err := portable.DecodeValueEnv(o.data, r.remoteEnv())
	if err != nil {
		return nil, fmt.Errorf("%s: decoding the result: %v", rc.batch.Name, err)
	}
	return v, nil
}

// Portable makes a @future function portable: it is rebuilt elsewhere as
// future(fn).
func (a *asyncFunc) Portable() (string, starlark.Tuple, error) {
	return "future", starlark.Tuple{a.fn}, nil
}

// portableConstructors are the predeclared callables that rebuild
// Portable values of this package (see the Portable methods): decoding
// may call nothing else.
func portableConstructors(pre starlark.StringDict) starlark.StringDict {
	return starlark.StringDict{"future": pre["future"]}
}

// remoteCache is an interpreter's cache of functions decoded by
// ExecRemote, by the hash of their encoding.
type remoteCache struct {
	mu  sync.Mutex
	fns map[string]starlark.Callable
}

const remoteCacheSize = 1024

func (c *remoteCache) get(sum string) starlark.Callable {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fns[sum]
}

func (c *remoteCache) put(sum string, fn starlark.Callable) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fns == nil || len(c.fns) >= remoteCacheSize {
		c.fns = map[string]starlark.Callable{} // simple and bounded
	}
	c.fns[sum] = fn
}

// workerEnv returns what decoding needs on a worker: the interpreter's
// predeclared names and built-in modules.
func (in *Interpreter) workerEnv(files func(hash string) ([]byte, error)) *portable.Env {
	mods := in.modules()
	return &portable.Env{
		Predeclared:  in.predeclared(),
		Constructors: portableConstructors(in.predeclared()),
		Load: func(module string) (starlark.StringDict, error) {
			if m, ok := mods[module]; ok {
				return m, nil
			}
			return nil, fmt.Errorf("no module %q", module)
		},
		Files:    files,
		Compiled: in.comp.AddFile, // decoded task functions run compiled too
	}
}

// ExecRemote runs one task item on this interpreter (a cluster worker)
// and returns its portable-encoded result. fn is a RemoteBatch's Fn (its
// decoding is cached by fnSum), files returns the texts it names, args is
// a RemoteItem's Args. The function is rebuilt without running its
// script's top-level code, and runs as the only task of a run of its own,
// under ctx: cancelling ctx cancels it promptly; the background work it
// starts (futures) is waited for. Lines it prints go to out (nil: the
// interpreter's Stdout).
//
// A failure of the script code is returned as a *RemoteError: its Error()
// is the message, Trace the backtrace (positions in the original script).
// Other errors (a corrupt encoding, a file that cannot be fetched) are
// plain errors. ExecRemote is safe for concurrent use.
func (in *Interpreter) ExecRemote(ctx context.Context, fn []byte, fnSum string, files func(hash string) ([]byte, error), args []byte, out func(line string)) ([]byte, error) {
	env := in.workerEnv(files)
	callable := in.remoteFns.get(fnSum)
	if callable == nil {
		sum := sha256.Sum256(fn)
		if hex.EncodeToString(sum[:]) != fnSum {
			return nil, fmt.Errorf("semisync: task function does not match its hash %s", fnSum)
		}
		c, err := portable.DecodeFuncEnv(fn, env)
		if err != nil {
			return nil, fmt.Errorf("semisync: decoding the task function: %v", err)
		}
		in.remoteFns.put(fnSum, c)
		callable = c
	}
	a, kw, err := portable.DecodeArgsEnv(args, env)
	if err != nil {
		return nil, fmt.Errorf("semisync: decoding the arguments of %s: %v", callable.Name(), err)
	}
	rn := in.newRemoteRun(ctx)
	if out != nil {
		rn.remote.out = func(_ int, line string) { out(line) }
	}
	f := engine.Go(ctx, in.pool, func(ctx context.Context, w *engine.Worker) (starlark.Value, error) {
		return rn.runTask(ctx, w, taskRef{parent: rn.main, n: 1}, callable, a, kw)
	})
	v, err := f.Result(ctx, nil)
	if werr := rn.Wait(ctx); err == nil {
		err = werr
	}
	if err != nil {
		err = scriptCause(err) // "timed out after 1s", not "engine: ..."
		return nil, &RemoteError{Msg: err.Error(), Trace: errText(err)}
	}
	data, err := portable.EncodeValue(v)
	if err != nil {
		msg := fmt.Sprintf("%s: its result cannot be sent back: %v", callable.Name(), err)
		return nil, &RemoteError{Msg: msg, Trace: msg}
	}
	return data, nil
}

// RemoteItemContext returns the context a worker runs an item of b under:
// ctx, with b's per-item timeout if it has one, whose expiry reads as a
// job's local timeout does ("timed out after 50ms").
func RemoteItemContext(ctx context.Context, b *RemoteBatch) (context.Context, context.CancelFunc) {
	if b.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, b.Timeout, &engine.TimeoutError{Timeout: b.Timeout})
}

// newRemoteRun returns the run of one task that ExecRemote runs: like
// newRun, but lean (it is made for every task): it shares the
// interpreter's predeclared names and modules instead of copying them,
// and has no global dispatcher of its own (a function that reads the
// dispatcher is not portable, and never gets here).
func (in *Interpreter) newRemoteRun(ctx context.Context) *Run {
	root := in.root
	if root == "" {
		root = "."
	}
	return &Run{
		in:       in,
		ctx:      ctx,
		root:     root,
		main:     newRootID(),
		loads:    make(map[string]*loadEntry),
		sem:      newSemisyncState(),
		predecl:  in.predeclared(),
		mods:     in.modules(),
		waitKick: make(chan struct{}, 1),
	}
}

// A remoteJob runs a job's items remotely (see jobRunner.runRemote).
const (
	remoteChunk    = 1024 // items per RemoteBatch at first (the executor may split it further)
	remoteChunkMax = 8192 // items per RemoteBatch once batches come back quickly
	remoteFast     = 100 * time.Millisecond
	remoteInFlight = 4 // batches in flight at once: memory stays bounded on lazy items
)

// quickSource reports whether a source that gave n items in d is still
// worth waiting for before a batch goes out: for 10ms, then while it
// gives an item per 20µs. (With 1ms, a job over range(80) went out in up
// to four batches on this project's VM, whose threads stop for a
// millisecond or more now and then: more, smaller task messages.)
func quickSource(d time.Duration, n int) bool {
	return d < 10*time.Millisecond || d < time.Duration(n)*20*time.Microsecond
}

type remoteEvent struct {
	batch int // the batch's number in the job
	i     int // item index in the job; -1: the batch ended
	data  []byte
	err   error
}

// runRemote is run for a job whose items run on the cluster: the items
// are pulled lazily on the calling thread th, encoded and sent in batches
// (a bounded number in flight), and their results handed back in the
// job's order (or completion order), with the job's rules for errors,
// suppression, progress and cancellation.
func (r *jobRunner) runRemote(ctx context.Context, th *starlark.Thread) (_ starlark.Value, err error) {
	caller := workerOf(th)
	j := r.j
	rn := r.rn
	enc, err := portable.EncodeFunc(j.fn, portable.ByFile)
	if err != nil {
		return nil, refuseRemote(r.op, j.fn.Name(), r.where, err)
	}
	rec := rn.record("job", fmt.Sprintf("%s over %s items, run at %s on the cluster", j.fn.Name(), j.items.Type(), r.where))
	defer func() { rec.finish(err) }()
	fnSum := hex.EncodeToString(enc.Sum[:])
	runID := rn.remoteID()
	prefix := r.id.String() + "/"
	env := rn.remoteEnv()

	iter := j.items.Iterate()
	defer iter.Done()
	total := -1
	if s, ok := j.items.(starlark.Sequence); ok {
		total = s.Len()
	}
	var bar *progress
	if r.bar && j.progress != starlark.False {
		bar = newProgress(r.in, total, j.fn.Name())
	}

	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan remoteEvent, remoteChunkMax*remoteInFlight+remoteInFlight)
	running := 0 // batches in flight
	defer func() {
		cancel()
		for running > 0 { // every batch goroutine ends: Run returns once bctx is cancelled
			if ev := <-events; ev.i < 0 {
				running--
			}
		}
	}()

	items := map[int]starlark.Value{} // in flight, for messages
	itemBatch := map[int]int{}        // in flight: the batch of each item
	left := map[int]int{}             // items each batch in flight has not answered
	sentAt := map[int]time.Time{}     // when each batch in flight was sent
	batches := 0
	// Batches grow while they come back quickly (trivial items): fewer,
	// larger messages; slow items stay in small batches that spread over
	// the workers.
	size := remoteChunk
	var results []starlark.Value // by index (ordered) or in completion order
	done := 0
	pulled := 0
	exhausted := false
	failed := -1 // the first failing item in input order, once known
	var failErr error
	// Suppressed failures are reported in item order, as locally (the
	// engine's ordered Mapper emits in order), whatever order the results
	// come back in: a report waits for the items before it.
	reports := map[int]string{}
	finished := map[int]bool{} // done, past nextReport
	nextReport := 0
	complete := func(i int, report string) {
		if !j.ordered {
			if report != "" {
				r.in.report(report)
			}
			return
		}
		if i == nextReport && report == "" && len(finished) == 0 {
			nextReport++ // in order, nothing waits: no map for this item
			return
		}
		if report != "" {
			reports[i] = report
		}
		finished[i] = true
		for finished[nextReport] {
			delete(finished, nextReport)
			if rep, ok := reports[nextReport]; ok {
				r.in.report(rep)
				delete(reports, nextReport)
			}
			nextReport++
		}
	}
	defer func() {
		// Reports still waiting for an item that did not finish
		// (cancelled, or the job failed), in order.
		for _, i := range slices.Sorted(maps.Keys(reports)) {
			r.in.report(reports[i])
		}
	}()
	args := make(starlark.Tuple, 1+len(j.args))
	copy(args[1:], j.args)

	send := func() error {
		b := &RemoteBatch{Run: runID, Name: j.fn.Name(), Fn: enc.Data, FnSum: fnSum, Files: enc.Files, Timeout: j.timeout,
			Quick: size > remoteChunk, // batches grow only when they come back quickly
			Seed:  r.in.seed, Seeded: r.in.opts.Seeded}
		first := pulled
		seq := batches
		start := time.Now()
		// A batch goes out when full, or early when the items come slowly
		// (a lazy source: after 10ms, at less than one item per 20µs), so
		// that the cluster is not kept waiting.
		for len(b.Items) < size && (len(b.Items) == 0 || quickSource(time.Since(start), len(b.Items))) {
			var x starlark.Value
			if !iter.Next(&x) {
				exhausted = true
				break
			}
			if err := r.prepareItem(x); err != nil {
				return fmt.Errorf("%s: item %d (value %s): %w", r.op, pulled, short(x), err)
			}
			args[0] = x
			a, err := portable.EncodeArgs(args, nil, portable.ByFile)
			if err != nil {
				return refuseRemote(r.op, j.fn.Name(), r.where, fmt.Errorf("item %d (value %s): %w", pulled, short(x), err))
			}
			b.Items = append(b.Items, RemoteItem{ID: taskHash(enc.Sum, a, runID, prefix+strconv.Itoa(pulled)), Args: a,
				Task: mixHash(r.id.hash, pulled)})
			items[pulled] = x
			itemBatch[pulled] = seq
			pulled++
		}
		args[0] = nil
		if len(b.Items) == 0 {
			return nil
		}
		batches++
		left[seq] = len(b.Items)
		sentAt[seq] = start
		running++
		go func() {
			err := r.in.opts.Remote.Run(bctx, b, func(i int, data []byte, err error) {
				select {
				case events <- remoteEvent{batch: seq, i: first + i, data: data, err: err}:
				case <-bctx.Done(): // nobody reads results any more
				}
			})
			events <- remoteEvent{batch: seq, i: -1, err: err} // room is reserved for it
		}()
		return nil
	}

	for {
		for failed < 0 && !exhausted && running < remoteInFlight {
			if err := send(); err != nil {
				bar.finish(false)
				return nil, err
			}
		}
		if running == 0 {
			break
		}
		ev, _, rerr := engine.Recv(ctx, caller, events, 0)
		if rerr != nil {
			bar.finish(false)
			return nil, r.remoteCancelled(rerr, done, len(items), total)
		}
		if ev.i < 0 {
			running--
			n := left[ev.batch]
			delete(left, ev.batch)
			if n == 0 && time.Since(sentAt[ev.batch]) < remoteFast {
				size = min(2*size, remoteChunkMax)
			}
			delete(sentAt, ev.batch)
			if n > 0 && failed < 0 && ctx.Err() == nil {
				// The batch ended without every result: the cluster failed.
				bar.finish(false)
				if ev.err == nil {
					ev.err = fmt.Errorf("no result for %d items", n)
				}
				return nil, fmt.Errorf("%s: the cluster: %w (job run at %s)", r.op, ev.err, r.where)
			}
			continue
		}
		item, ok := items[ev.i]
		if !ok {
			continue // a duplicate result
		}
		delete(items, ev.i)
		left[itemBatch[ev.i]]--
		delete(itemBatch, ev.i)
		var v starlark.Value
		err := ev.err
		if err == nil {
			v, err = portable.DecodeValueEnv(ev.data, env)
			if err != nil {
				err = fmt.Errorf("decoding the result: %v", err)
			}
		}
		if err != nil {
			if !j.suppress {
				// The first failing item in input order (items before it
				// in flight still finish), or with ordered=False the first
				// to fail.
				if failed < 0 || j.ordered && ev.i < failed {
					failed, failErr = ev.i, &TaskError{Op: r.op, Task: r.itemDesc(ev.i, item), Err: err}
				}
				done++
				complete(ev.i, "")
				if r.settled(failed, items) {
					break // the rest is cancelled (see the deferred drain)
				}
				continue
			}
			complete(ev.i, suppressed(r.op, r.itemDesc(ev.i, item), err))
			v = starlark.None
		} else {
			complete(ev.i, "")
		}
		done++
		bar.add()
		if failed >= 0 && r.settled(failed, items) {
			break
		}
		if !j.keep {
			continue
		}
		if !j.ordered {
			results = append(results, v)
			continue
		}
		for len(results) <= ev.i {
			results = append(results, nil)
		}
		results[ev.i] = v
	}
	if failed >= 0 {
		bar.finish(false)
		return nil, failErr
	}
	bar.finish(true)
	if !j.keep {
		return starlark.None, nil
	}
	return starlark.NewList(results), nil
}

// settled reports whether a remote job that failed at item failed can
// stop: with ordered=False at once (the first failure to arrive wins),
// else once every item before it is done (so the failure reported does
// not depend on timing). Items still running are then cancelled.
func (r *jobRunner) settled(failed int, inFlight map[int]starlark.Value) bool {
	if !r.j.ordered {
		return true
	}
	for i := range inFlight {
		if i < failed {
			return false
		}
	}
	return true
}

// remoteCancelled is the error of a remote job whose context ended.
func (r *jobRunner) remoteCancelled(cause error, done, inFlight, total int) error {
	of := ""
	if total >= 0 {
		of = " of " + strconv.Itoa(total)
	}
	return fmt.Errorf("%s: %w; cancelled %d items running on the cluster; %d%s items done, the rest not taken (job run at %s)",
		r.op, scriptCause(cause), inFlight, done, of, r.where)
}

// ExecRemoteBatch runs every item of b on this interpreter (a cluster
// worker), up to concurrency at once (0: the interpreter's limit, see
// Options.Limit), and calls done once per item that ran, on the calling
// goroutine, with its portable-encoded result or its error (a
// *RemoteError for a failure of the script code, as ExecRemote). It is
// ExecRemote for many items: the function is decoded once, the items are
// tasks of one run (numbered by their index) on long-running worker
// loops, as a local job's items are, so a trivial item costs a fraction
// of an ExecRemote call. b.Timeout limits each item. Lines printed go to
// out (nil: Stdout).
//
// It returns when every item is done, or when ctx ends: then the items
// still running are cancelled, done is not called for the items that did
// not finish, and it returns ctx's cause. It returns an error without
// calling done if the function cannot be decoded.
func (in *Interpreter) ExecRemoteBatch(ctx context.Context, b *RemoteBatch, files func(hash string) ([]byte, error), concurrency int, out func(line string), done func(i int, result []byte, err error)) error {
	var lines func(int, string)
	if out != nil {
		lines = func(_ int, line string) { out(line) }
	}
	return in.ExecRemoteBatchLines(ctx, b, files, concurrency, lines, done)
}

// ExecRemoteBatchLines is ExecRemoteBatch with each printed line's item:
// out receives the index of the item whose task printed the line, or -1
// for a line printed by other work of the batch (a @future an item
// started), so that a cluster worker can send each item's lines with its
// result. out may be called from several goroutines; nil: Stdout.
func (in *Interpreter) ExecRemoteBatchLines(ctx context.Context, b *RemoteBatch, files func(hash string) ([]byte, error), concurrency int, out func(item int, line string), done func(i int, result []byte, err error)) error {
	env := in.workerEnv(files)
	callable := in.remoteFns.get(b.FnSum)
	if callable == nil {
		sum := sha256.Sum256(b.Fn)
		if hex.EncodeToString(sum[:]) != b.FnSum {
			return fmt.Errorf("semisync: task function does not match its hash %s", b.FnSum)
		}
		c, err := portable.DecodeFuncEnv(b.Fn, env)
		if err != nil {
			return fmt.Errorf("semisync: decoding the task function: %v", err)
		}
		in.remoteFns.put(b.FnSum, c)
		callable = c
	}
	if concurrency <= 0 {
		concurrency = in.opts.Limit
		if concurrency <= 0 {
			concurrency = 2 * runtime.GOMAXPROCS(0) // the pool's default limit
		}
	}
	rn := in.newRemoteRun(ctx)
	rn.remote.out = out
	rn.remote.seed, rn.remote.seeded = b.Seed, b.Seeded
	caller := in.pool.Enter()
	defer caller.Leave()
	m := engine.Mapper[int, []byte]{
		Workers:   concurrency,
		KeepGoing: true,
		Timeout:   b.Timeout,
		Start: func(ctx context.Context, w *engine.Worker) (engine.MapFunc[int, []byte], func()) {
			th := workerThread.Get(w)
			fresh := w == caller
			if fresh {
				th = in.newThread(fmt.Sprintf("remote-helper-%d", w.ID), w, true)
			}
			ts := stateOf(th)
			saved := ts.taskState
			ts.bind(th, ctx)
			timeout := b.Timeout > 0
			call := func(ctx context.Context, i int, _ int) ([]byte, error) {
				args, kwargs, err := portable.DecodeArgsEnv(b.Items[i].Args, env)
				if err != nil {
					return nil, fmt.Errorf("semisync: decoding the arguments of %s: %v", callable.Name(), err)
				}
				if b.Seeded {
					// The caller's identity of the task: with the caller's
					// seed, the same random numbers as locally.
					ts.setTaskID(rn, &taskID{hash: b.Items[i].Task})
				} else {
					ts.setTask(rn, taskRef{parent: rn.main, n: i + 1})
				}
				ts.item = i + 1
				th.Steps = 0
				if timeout {
					ts.bind(th, ctx)
				}
				callee := in.comp.CallableOn(th, callable) // compiled, as a local task
				v, err := starlark.Call(th, callee, args, kwargs)
				compile.Release(callee)
				if err != nil {
					return nil, remoteFailure(err)
				}
				data, err := portable.EncodeValue(v)
				if err != nil {
					msg := fmt.Sprintf("%s: its result cannot be sent back: %v", callable.Name(), err)
					return nil, &RemoteError{Msg: msg, Trace: msg}
				}
				return data, nil
			}
			return call, func() {
				if fresh {
					ts.unbind(th)
				}
				ts.taskState = saved
			}
		},
	}
	n := 0
	next := func() (int, bool, error) {
		if n == len(b.Items) {
			return 0, false, nil
		}
		n++
		return n - 1, true, nil
	}
	err := m.Run(ctx, in.pool, caller, next, func(i int, _ int, data []byte, err error) error {
		var te *engine.TimeoutError
		if errors.As(err, &te) {
			err = remoteFailure(err)
		}
		done(i, data, err)
		return nil
	})
	if werr := rn.Wait(ctx); err == nil && werr != nil {
		err = werr
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// remoteFailure is a task's error as a *RemoteError.
func remoteFailure(err error) *RemoteError {
	err = scriptCause(err) // "timed out after 1s", not "engine: ..."
	return &RemoteError{Msg: err.Error(), Trace: errText(err)}
}
