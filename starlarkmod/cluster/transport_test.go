package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer starts an embedded JetStream server on a random port with
// its store in a temp dir; it is shut down at the end of the test, after
// everything registered later (connections) is closed.
func startServer(t testing.TB, dir string) *server.Server {
	t.Helper()
	s, err := Serve(ServeOptions{Addr: "127.0.0.1:0", StoreDir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := Connect(s.ClientURL(), ConnectOptions{})
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// echoExec is a worker's Exec for transport tests: the function is
// "upper" (the result is the argument upper-cased), "fail" (an error
// naming the argument), "sleep" (waits for cancellation) or "print"
// (prints the argument, returns it).
func echoExec(calls *atomic.Int64) ExecFunc {
	return func(ctx context.Context, fn []byte, fnSum string, files func(string) ([]byte, error), args []byte, out func(string)) ([]byte, error) {
		if calls != nil {
			calls.Add(1)
		}
		switch string(fn) {
		case "upper":
			return bytes.ToUpper(args), nil
		case "fail":
			return nil, &starlarkmod.RemoteError{Msg: "bad item " + string(args), Trace: "trace of " + string(args)}
		case "sleep":
			<-ctx.Done()
			return nil, ctx.Err()
		case "print":
			out("got " + string(args))
			return args, nil
		case "files":
			text, err := files(string(args))
			return text, err
		}
		return nil, fmt.Errorf("unknown function %q", fn)
	}
}

func startWorker(t testing.TB, s *server.Server, o WorkerOptions) (stop func()) {
	t.Helper()
	nc := connect(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunWorker(ctx, nc, o) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
			nc.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

func newExecutor(t testing.TB, s *server.Server, o Options) *Executor {
	t.Helper()
	nc := connect(t, s)
	e, err := New(context.Background(), nc, o)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

func batchOf(fn string, items ...string) *starlarkmod.RemoteBatch {
	b := &starlarkmod.RemoteBatch{Name: fn, Fn: []byte(fn), FnSum: fmt.Sprintf("sum-%s", fn)}
	for i, it := range items {
		b.Items = append(b.Items, starlarkmod.RemoteItem{ID: fmt.Sprintf("%s-%d-%s", fn, i, it), Args: []byte(it)})
	}
	return b
}

type collected struct {
	mu   sync.Mutex
	vals map[int]string
	errs map[int]error
	dups int
}

func (c *collected) done(i int, v []byte, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vals == nil {
		c.vals, c.errs = map[int]string{}, map[int]error{}
	}
	if _, ok := c.vals[i]; ok {
		c.dups++
	}
	if _, ok := c.errs[i]; ok {
		c.dups++
	}
	if err != nil {
		c.errs[i] = err
	} else {
		c.vals[i] = string(v)
	}
}

func TestRoundTrip(t *testing.T) {
	s := startServer(t, t.TempDir())
	var calls atomic.Int64
	startWorker(t, s, WorkerOptions{Name: "w1", Concurrency: 2, Exec: echoExec(&calls)})
	startWorker(t, s, WorkerOptions{Name: "w2", Concurrency: 2, Exec: echoExec(&calls)})
	out := &syncBuffer{}
	e := newExecutor(t, s, Options{Stdout: out})

	items := make([]string, 1000)
	for i := range items {
		items[i] = fmt.Sprintf("item%d", i)
	}
	var c collected
	require.NoError(t, e.Run(context.Background(), batchOf("upper", items...), c.done))
	require.Len(t, c.vals, len(items))
	for i, it := range items {
		assert.Equal(t, strings.ToUpper(it), c.vals[i])
	}
	assert.Zero(t, c.dups)
	assert.EqualValues(t, len(items), calls.Load())

	// Errors carry the worker's name and the trace; lines are prefixed.
	var f collected
	require.NoError(t, e.Run(context.Background(), batchOf("fail", "a", "b"), f.done))
	require.Len(t, f.errs, 2)
	var re *starlarkmod.RemoteError
	require.True(t, errors.As(f.errs[1], &re))
	assert.Equal(t, "bad item b", re.Msg)
	assert.Equal(t, "trace of b", re.Trace)
	assert.Contains(t, []string{"w1", "w2"}, re.Worker)

	var p collected
	require.NoError(t, e.Run(context.Background(), batchOf("print", "x"), p.done))
	assert.Regexp(t, `^\[w[12]\] got x\n$`, out.String())
}

func TestFilesTravelByHash(t *testing.T) {
	s := startServer(t, t.TempDir())
	startWorker(t, s, WorkerOptions{Name: "w", Exec: echoExec(nil)})
	e := newExecutor(t, s, Options{})
	b := batchOf("files", "h1", "h2")
	b.Files = map[string][]byte{"h1": []byte("text one"), "h2": []byte("text two")}
	var c collected
	require.NoError(t, e.Run(context.Background(), b, c.done))
	assert.Equal(t, map[int]string{0: "text one", 1: "text two"}, c.vals)
}

func TestWaitingForWorkers(t *testing.T) {
	s := startServer(t, t.TempDir())
	stderr := &syncBuffer{}
	e := newExecutor(t, s, Options{Stderr: stderr, WaitNotice: 200 * time.Millisecond, URL: s.ClientURL()})
	ran := make(chan error, 1)
	var c collected
	go func() { ran <- e.Run(context.Background(), batchOf("upper", "a", "b", "c"), c.done) }()
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "waiting for workers") }, 20*time.Second, 20*time.Millisecond)
	assert.Contains(t, stderr.String(), "nothing consumes stream SEMISYNC_TASKS on "+s.ClientURL())
	startWorker(t, s, WorkerOptions{Name: "late", Exec: echoExec(nil)})
	require.NoError(t, <-ran)
	assert.Equal(t, map[int]string{0: "A", 1: "B", 2: "C"}, c.vals)
	assert.Equal(t, 1, strings.Count(stderr.String(), "waiting for workers"), stderr.String())
}

func TestCancelStopsWorkersAndPurges(t *testing.T) {
	s := startServer(t, t.TempDir())
	var calls atomic.Int64
	startWorker(t, s, WorkerOptions{Name: "w", Concurrency: 2, Exec: echoExec(&calls)})
	e := newExecutor(t, s, Options{})
	items := make([]string, 300) // 150 messages of 2: 2 running, the rest queued
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	var c collected
	go func() { ran <- e.Run(ctx, batchOf("sleep", items...), c.done) }()
	require.Eventually(t, func() bool { return calls.Load() >= 2 }, 20*time.Second, 5*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-ran, context.Canceled)
	// The workers' running items end, and nothing else of the call runs.
	nc := connect(t, s)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), DefaultStream)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	}, 20*time.Second, 10*time.Millisecond)
	assert.LessOrEqual(t, calls.Load(), int64(4), "items started after the cancel")
	assert.Empty(t, c.vals)
}

func TestWorkerStopHandsBackTasks(t *testing.T) {
	s := startServer(t, t.TempDir())
	var calls atomic.Int64
	stop := startWorker(t, s, WorkerOptions{Name: "w1", Concurrency: 1, Grace: 50 * time.Millisecond, Exec: echoExec(&calls)})
	e := newExecutor(t, s, Options{})
	// The first worker holds sleeping items; when it stops, it hands them
	// back and a second worker, for which sleep is upper, finishes them.
	ran := make(chan error, 1)
	var c collected
	b := batchOf("sleep", "a", "b", "c")
	go func() { ran <- e.Run(context.Background(), b, c.done) }()
	require.Eventually(t, func() bool { return calls.Load() >= 1 }, 20*time.Second, 5*time.Millisecond)
	stop()
	upper := echoExec(nil)
	startWorker(t, s, WorkerOptions{Name: "w2", Exec: func(ctx context.Context, fn []byte, sum string, files func(string) ([]byte, error), args []byte, out func(string)) ([]byte, error) {
		return upper(ctx, []byte("upper"), sum, files, args, out)
	}})
	require.NoError(t, <-ran)
	assert.Equal(t, map[int]string{0: "A", 1: "B", 2: "C"}, c.vals)
}

func TestWireRoundTrip(t *testing.T) {
	tm := taskMsg{Client: "c", Call: 7, Name: "f", FnSum: "abc", Timeout: time.Second, Seed: -5, Seeded: true,
		Items: []taskItem{{Index: 3, Args: []byte{1, 2}, Task: 1 << 63}, {Index: 4, Args: nil}}}
	got, err := decodeTask(tm.encode())
	require.NoError(t, err)
	assert.Equal(t, tm.Client, got.Client)
	assert.Equal(t, tm.Items[0], got.Items[0])
	assert.Equal(t, 4, got.Items[1].Index)
	assert.Equal(t, []any{time.Second, int64(-5), true}, []any{got.Timeout, got.Seed, got.Seeded})
	tm.Seeded = false
	got, err = decodeTask(tm.encode())
	require.NoError(t, err)
	assert.False(t, got.Seeded)

	rm := resultMsg{Call: 9, Worker: "w", Items: []resultItem{{Index: 1, Value: []byte("v"), Lines: []string{"a", "b"}}, {Index: 2, Failed: true, Msg: "m", Trace: "t"}},
		Lines: []string{"loose"}}
	gr, err := decodeResult(rm.encode())
	require.NoError(t, err)
	assert.Equal(t, rm.Items[0].Lines, gr.Items[0].Lines)
	assert.Equal(t, rm.Items[1], gr.Items[1])
	assert.Equal(t, rm.Lines, gr.Lines)

	for _, b := range [][]byte{nil, {2}, {9}, tm.encode()[:5], append(tm.encode(), 0)} {
		_, err := decodeTask(b)
		assert.Error(t, err)
	}
}

func TestServerRestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Serve(ServeOptions{Addr: "127.0.0.1:0", StoreDir: dir})
	require.NoError(t, err)
	addr := s.Addr().String()
	var calls atomic.Int64
	slow := func(ctx context.Context, fn []byte, sum string, files func(string) ([]byte, error), args []byte, out func(string)) ([]byte, error) {
		calls.Add(1)
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return bytes.ToUpper(args), nil
	}
	// Connections are closed (by the cleanups registered after this one)
	// before the last server stops.
	var last *server.Server
	t.Cleanup(func() { last.Shutdown(); last.WaitForShutdown() })
	last = s
	startWorker(t, s, WorkerOptions{Name: "w1", Concurrency: 2, AckWait: time.Second, Exec: slow})
	startWorker(t, s, WorkerOptions{Name: "w2", Concurrency: 2, AckWait: time.Second, Exec: slow})
	e := newExecutor(t, s, Options{})

	items := make([]string, 2000)
	for i := range items {
		items[i] = fmt.Sprintf("item%d", i)
	}
	ran := make(chan error, 1)
	var c collected
	go func() { ran <- e.Run(context.Background(), batchOf("upper", items...), c.done) }()
	require.Eventually(t, func() bool { return calls.Load() >= 200 }, 30*time.Second, time.Millisecond)
	s.Shutdown()
	s.WaitForShutdown()
	s2, err := Serve(ServeOptions{Addr: addr, StoreDir: dir})
	require.NoError(t, err)
	last = s2
	select {
	case err := <-ran:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("the run did not finish after the restart: %d of %d results", len(c.vals), len(items))
	}
	require.Len(t, c.vals, len(items))
	for i, it := range items {
		assert.Equal(t, strings.ToUpper(it), c.vals[i])
	}
	assert.Zero(t, c.dups)
	t.Logf("%d executions for %d items", calls.Load(), len(items))
}

// TestCredentials: a server that requires a user and password (set in a
// nats-server configuration file) accepts them in the URL and refuses a
// connection without them.
// serveWith starts a server with the configuration text conf and returns
// its port.
func serveWith(t *testing.T, conf string) int {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "server.conf")
	require.NoError(t, os.WriteFile(file, []byte(conf), 0o600))
	s, err := Serve(ServeOptions{Addr: "127.0.0.1:0", StoreDir: dir, ConfigFile: file})
	require.NoError(t, err)
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.Addr().(*net.TCPAddr).Port
}

// runWorker runs a worker on nc until the test ends.
func runWorker(t *testing.T, nc *nats.Conn, o WorkerOptions) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunWorker(ctx, nc, o) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })
}

func TestCredentials(t *testing.T) {
	port := serveWith(t, "authorization {\n  user: alice\n  password: s3cret\n}\n")

	_, err := Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), ConnectOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Authorization Violation")
	_, err = Connect(fmt.Sprintf("nats://alice:wrong@127.0.0.1:%d", port), ConnectOptions{})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "wrong", "the password is shown")

	nc, err := Connect(fmt.Sprintf("nats://alice:s3cret@127.0.0.1:%d", port), ConnectOptions{})
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	runWorker(t, nc, WorkerOptions{Name: "w", Exec: echoExec(nil)})
	e, err := New(context.Background(), nc, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	var c collected
	require.NoError(t, e.Run(context.Background(), batchOf("upper", "a"), c.done))
	assert.Equal(t, map[int]string{0: "A"}, c.vals)
}

func TestRedact(t *testing.T) {
	assert.Equal(t, "nats://alice:xxxxx@host:4222", Redact("nats://alice:s3cret@host:4222"))
	assert.Equal(t, "nats://host:4222", Redact("nats://host:4222"))
}

func TestCloseEndsCalls(t *testing.T) {
	s := startServer(t, t.TempDir())
	nc := connect(t, s)
	e, err := New(context.Background(), nc, Options{})
	require.NoError(t, err)
	ran := make(chan error, 1)
	var c collected
	go func() { ran <- e.Run(context.Background(), batchOf("upper", "a", "b"), c.done) }()
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.calls) == 1 && len(e.bySeq) == 2 // both items published
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, e.Close())
	require.NoError(t, <-ran)
	require.Len(t, c.errs, 2)
	assert.EqualError(t, c.errs[0], "cluster: the executor was closed")
}
