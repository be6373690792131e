package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod/cluster"
)

// A testCluster is an embedded JetStream server (127.0.0.1, random port,
// temp store) and worker processes started from the built binary.
type testCluster struct {
	t   testing.TB
	bin string
	dir string
	srv *server.Server
	url string
	nc  *nats.Conn
	mu  sync.Mutex
	ws  map[string]*exec.Cmd
}

func newTestCluster(t testing.TB) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and starts processes")
	}
	bin := semisyncBinary(t)
	dir := t.TempDir()
	s, err := cluster.Serve(cluster.ServeOptions{Addr: "127.0.0.1:0", StoreDir: dir})
	require.NoError(t, err)
	c := &testCluster{t: t, bin: bin, dir: dir, srv: s, url: s.ClientURL(), ws: map[string]*exec.Cmd{}}
	// Shut down in order: workers, our connection, then the server.
	t.Cleanup(func() {
		c.mu.Lock()
		ws := c.ws
		c.ws = nil
		c.mu.Unlock()
		for _, w := range ws {
			w.Process.Kill() //nolint:errcheck // may have exited
			w.Wait()         //nolint:errcheck // killed
		}
		if c.nc != nil {
			c.nc.Close()
		}
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
	})
	c.nc, err = nats.Connect(c.url)
	require.NoError(t, err)
	return c
}

// worker starts "semisync worker" named name with extra flags; its log
// goes to the test log.
func (c *testCluster) worker(name string, flags ...string) *exec.Cmd {
	c.t.Helper()
	args := append([]string{"worker", "--nats", c.url, "--name", name, "--ack-wait", "1s"}, flags...)
	cmd := exec.Command(c.bin, args...)
	cmd.Stderr = &testLog{t: c.t, prefix: name + ": "}
	require.NoError(c.t, cmd.Start())
	c.mu.Lock()
	c.ws[name] = cmd
	c.mu.Unlock()
	return cmd
}

// restart stops the server and starts it again on the same port and
// store, as a restarted nats-server would be.
func (c *testCluster) restart() {
	c.t.Helper()
	addr := c.srv.Addr().String()
	c.srv.Shutdown()
	c.srv.WaitForShutdown()
	s, err := cluster.Serve(cluster.ServeOptions{Addr: addr, StoreDir: c.dir})
	require.NoError(c.t, err)
	c.srv = s
}

// kill9 kills a worker with SIGKILL.
func (c *testCluster) kill9(name string) {
	c.mu.Lock()
	w := c.ws[name]
	delete(c.ws, name)
	c.mu.Unlock()
	require.NoError(c.t, w.Process.Signal(syscall.SIGKILL))
	w.Wait() //nolint:errcheck // killed
}

// consumer returns the workers' consumer's info, or nil before it exists.
func (c *testCluster) consumer() *jetstream.ConsumerInfo {
	js, err := jetstream.New(c.nc)
	require.NoError(c.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, cluster.DefaultStream, "workers")
	if err != nil {
		return nil
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil
	}
	return info
}

// waitWorkers waits until n workers pull from the stream.
func (c *testCluster) waitWorkers(n int) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		info := c.consumer()
		return info != nil && info.NumWaiting >= n
	}, 60*time.Second, 10*time.Millisecond, "workers did not start")
}

// streamMsgs returns how many tasks the stream holds.
func (c *testCluster) streamMsgs() uint64 {
	js, err := jetstream.New(c.nc)
	require.NoError(c.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, cluster.DefaultStream)
	require.NoError(c.t, err)
	info, err := st.Info(ctx)
	require.NoError(c.t, err)
	return info.State.Msgs
}

// caller starts "semisync --nats URL args..." in dir.
func (c *testCluster) caller(dir string, args ...string) (*exec.Cmd, *syncBuf, *syncBuf) {
	c.t.Helper()
	cmd := exec.Command(c.bin, append([]string{"--nats", c.url}, args...)...)
	cmd.Dir = dir
	stdout, stderr := &syncBuf{}, &syncBuf{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	require.NoError(c.t, cmd.Start())
	c.t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // exited, normally
		cmd.Wait()         //nolint:errcheck // already waited for, normally
	})
	return cmd, stdout, stderr
}

// syncBuf is declared in observe_test.go.

type testLog struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.t.Log(l.prefix + line)
	}
	return len(p), nil
}

func exitCode(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(within):
		cmd.Process.Kill() //nolint:errcheck
		<-done
		t.Fatalf("%s did not exit within %s", cmd, within)
		return -1
	}
}

var workerPrefix = regexp.MustCompile(`(?m)^\[w[0-9]\] `)
var onWorker = regexp.MustCompile(`(?m)^\s*\(on worker w[0-9]\)\n`)

// TestClusterScripts runs the examples in scripts/ through a cluster of
// two worker processes and checks that each prints what it prints
// locally (its golden file), but for the worker names before the lines
// tasks print and after the errors they raise.
func TestClusterScripts(t *testing.T) {
	c := newTestCluster(t)
	c.worker("w1", "--concurrency", "2")
	c.worker("w2", "--concurrency", "2")
	c.waitWorkers(2)
	files, err := filepath.Glob("../../scripts/*.star")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	// Run from starlarkmod/, as the golden files do.
	notPortable := map[string]string{
		"profit.star": `semisync.begin: cannot send revenue (called at ../scripts/profit.star:37:8) to the cluster: ../scripts/profit.star:20:5: global "shared" of function revenue: Namespace cannot leave this process (it is not portable)`,
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			cmd, stdout, stderr := c.caller("../../starlarkmod", "--seed", "1", "../scripts/"+name)
			code := exitCode(t, cmd, 2*time.Minute)
			if want, ok := notPortable[name]; ok {
				assert.Equal(t, 1, code)
				assert.Contains(t, stderr.String(), want)
				return
			}
			golden, err := os.ReadFile(strings.TrimSuffix(file, ".star") + ".golden")
			require.NoError(t, err)
			got := workerPrefix.ReplaceAllString(stdout.String(), "")
			if e := onWorker.ReplaceAllString(stderr.String(), ""); e != "" {
				if code == 0 {
					got += "--- stderr ---\n" + e
				} else {
					got += "--- error ---\n" + e
				}
			}
			if name == "spychronous_ctrl_c.star" {
				// A remote item's timeout names the item but not yet the
				// line it was running (the worker's trace is the message).
				assert.Equal(t, 1, code)
				assert.Contains(t, got, "item 0 (value 1) of the job run at ../scripts/spychronous_ctrl_c.star:24:33 failed:")
				assert.Contains(t, got, "timed out after 300ms")
				return
			}
			assert.Equal(t, string(golden), got)
		})
	}
}

const killScript = `
def work(x):
    n = 0
    for i in range(20000):
        n += i % 7
    print("item", x)
    return n + x

results = job(work, range(600), processes = 4, progress = False).run()
print("results", len(results))
total = 0
for r in results:
    total += r
print("total", total)
`

// killScriptTotal is what killScript prints as its total.
func killScriptTotal() int {
	n := 0
	for i := range 20000 {
		n += i % 7
	}
	total := 0
	for x := range 600 {
		total += n + x
	}
	return total
}

// TestClusterKill9 kills one of two workers with SIGKILL while it runs a
// job's items: its tasks go to the other worker after the ack wait, and
// the job's results are complete and correct.
func TestClusterKill9(t *testing.T) {
	c := newTestCluster(t)
	c.worker("w1", "--concurrency", "2")
	c.worker("w2", "--concurrency", "2")
	c.waitWorkers(2)
	dir := t.TempDir()
	script := filepath.Join(dir, "kill.star")
	require.NoError(t, os.WriteFile(script, []byte(killScript), 0o644))
	cmd, stdout, stderr := c.caller(dir, script)
	// Kill w1 once it has sent back some results.
	require.Eventually(t, func() bool { return strings.Count(stdout.String(), "[w1] item") >= 10 }, 2*time.Minute, 5*time.Millisecond, "w1 sent no results: %s", stderr)
	c.kill9("w1")
	killedAt := strings.Count(stdout.String(), "] item ")
	require.Equal(t, 0, exitCode(t, cmd, 3*time.Minute), stderr.String())
	want := killScriptTotal()
	out := stdout.String()
	assert.True(t, strings.HasSuffix(out, fmt.Sprintf("results 600\ntotal %d\n", want)), "the job's results are wrong or incomplete")
	assert.Less(t, killedAt, 600, "the job was over when w1 was killed")
	// Every item printed once, whoever ran it (duplicates are dropped).
	for x := range 600 {
		assert.Equal(t, 1, len(regexp.MustCompile(fmt.Sprintf(`(?m)^\[w[12]\] item %d$`, x)).FindAllString(out, -1)), "item %d", x)
	}
}

// TestClusterServerRestart restarts the server (file storage) in the
// middle of a job: callers and workers reconnect, and the job's results
// are complete and correct.
func TestClusterServerRestart(t *testing.T) {
	c := newTestCluster(t)
	c.worker("w1", "--concurrency", "2")
	c.worker("w2", "--concurrency", "2")
	c.waitWorkers(2)
	dir := t.TempDir()
	script := filepath.Join(dir, "restart.star")
	require.NoError(t, os.WriteFile(script, []byte(killScript), 0o644))
	cmd, stdout, stderr := c.caller(dir, script)
	require.Eventually(t, func() bool { return strings.Count(stdout.String(), "] item ") >= 20 }, 2*time.Minute, 5*time.Millisecond, "no results: %s", stderr)
	c.restart()
	require.Equal(t, 0, exitCode(t, cmd, 3*time.Minute), stderr.String())
	out := stdout.String()
	assert.True(t, strings.HasSuffix(out, fmt.Sprintf("results 600\ntotal %d\n", killScriptTotal())), "the job's results are wrong or incomplete")
}

// TestClusterMaxDeliver: a task that kills every worker that runs it
// (here the test kills each worker that holds it) fails after MaxDeliver
// deliveries with an error naming it.
func TestClusterMaxDeliver(t *testing.T) {
	c := newTestCluster(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "poison.star")
	require.NoError(t, os.WriteFile(script, []byte(`
def poison(x):
    sleep(1000)

job(poison, [7], progress = False).run()
`), 0o644))
	cmd, _, stderr := c.caller(dir, script)
	for i := range 2 {
		name := fmt.Sprintf("w%d", i+1)
		c.worker(name, "--max-deliver", "2")
		require.Eventually(t, func() bool {
			// Each delivery, first or again, takes a consumer sequence.
			info := c.consumer()
			return info != nil && info.Delivered.Consumer == uint64(i+1)
		}, time.Minute, 5*time.Millisecond, "no worker took the task")
		c.kill9(name)
	}
	// The server gives up on a task only while some worker pulls: the
	// advisory comes one ack wait after the last delivery.
	c.worker("w3", "--max-deliver", "2")
	require.Equal(t, 1, exitCode(t, cmd, time.Minute), stderr.String())
	assert.Contains(t, stderr.String(), "item 0 (value 7) of the job run at "+script+":5:39 failed:")
	assert.Regexp(t, `cluster: poison item 0 \(task [0-9a-f]{16}\): delivered 2 times and no worker finished it`, stderr.String())
	assert.Zero(t, c.streamMsgs(), "the task was left in the stream")
}

// TestClusterCtrlC: SIGINT on the caller stops it with status 130, stops
// its tasks on the workers and removes the rest from the stream.
func TestClusterCtrlC(t *testing.T) {
	c := newTestCluster(t)
	c.worker("w1", "--concurrency", "2")
	c.waitWorkers(1)
	dir := t.TempDir()
	script := filepath.Join(dir, "long.star")
	require.NoError(t, os.WriteFile(script, []byte(`
def long(x):
    sleep(1000)

job(long, range(100), processes = 4, progress = False).run()
`), 0o644))
	cmd, _, stderr := c.caller(dir, script)
	require.Eventually(t, func() bool {
		info := c.consumer()
		return info != nil && info.NumAckPending >= 2
	}, time.Minute, 5*time.Millisecond, "the worker took no task")
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 130, exitCode(t, cmd, 30*time.Second), stderr.String())
	// The worker's running items stop and nothing is left to run.
	require.Eventually(t, func() bool {
		info := c.consumer()
		return info != nil && info.NumAckPending == 0 && c.streamMsgs() == 0
	}, 30*time.Second, 10*time.Millisecond, "tasks left running or queued")
}

// TestClusterNoWorker: with nothing consuming the stream, the caller says
// that it waits for workers, naming the stream.
func TestClusterNoWorker(t *testing.T) {
	c := newTestCluster(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "s.star")
	require.NoError(t, os.WriteFile(script, []byte(`
def f(x):
    return x
print(job(f, [1, 2], progress = False).run())
`), 0o644))
	cmd, stdout, stderr := c.caller(dir, script)
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "waiting for workers") }, time.Minute, 10*time.Millisecond)
	assert.Contains(t, stderr.String(), "semisync: waiting for workers: nothing consumes stream SEMISYNC_TASKS on "+c.url)
	c.worker("w1")
	assert.Equal(t, 0, exitCode(t, cmd, time.Minute), stderr.String())
	assert.Equal(t, "[1, 2]\n", stdout.String())
}

// TestClusterWorkerSIGTERM: a worker stopped with SIGTERM finishes the
// items it runs, hands back the tasks it has not started, and exits 0;
// another worker finishes the job.
func TestClusterWorkerSIGTERM(t *testing.T) {
	c := newTestCluster(t)
	w1 := c.worker("w1", "--concurrency", "2")
	c.waitWorkers(1)
	dir := t.TempDir()
	script := filepath.Join(dir, "nap.star")
	require.NoError(t, os.WriteFile(script, []byte(`
def nap(x):
    sleep(2)
    print("napped", x)
    return x

print(job(nap, range(8), processes = 8, progress = False).run())
`), 0o644))
	cmd, stdout, stderr := c.caller(dir, script)
	require.Eventually(t, func() bool {
		info := c.consumer()
		return info != nil && info.NumAckPending >= 2
	}, time.Minute, 5*time.Millisecond, "w1 took no task")
	// w1 has fetched tasks; let it start them (a fetched task starts at
	// once, and each naps 2 s), so that the signal finds items running,
	// not only fetched ones, which it would hand back.
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, w1.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, exitCode(t, w1, 30*time.Second))
	c.mu.Lock()
	delete(c.ws, "w1")
	c.mu.Unlock()
	c.worker("w2", "--concurrency", "8")
	require.Equal(t, 0, exitCode(t, cmd, time.Minute), stderr.String())
	out := stdout.String()
	assert.True(t, strings.HasSuffix(out, "[0, 1, 2, 3, 4, 5, 6, 7]\n"), out)
	assert.Regexp(t, `\[w1\] napped`, out, "w1 did not finish the items it ran")
	assert.Regexp(t, `\[w2\] napped`, out)
}

// TestClusterSharedCache: with --nats-cache, the results of pure calls go
// to the cluster's object store; a second caller process computes
// nothing (no task reaches the workers) and prints the same.
func TestClusterSharedCache(t *testing.T) {
	c := newTestCluster(t)
	c.worker("w1")
	dir := t.TempDir()
	script := filepath.Join(dir, "s.star")
	require.NoError(t, os.WriteFile(script, []byte(`
@semisync
def square(i):
    return i * i

hs = [square(i) for i in range(20)]
semisync.begin()
print(sum([h.result() for h in hs]))
`), 0o644))
	cmd, stdout, stderr := c.caller(dir, "--nats-cache", "--summary", script)
	require.Equal(t, 0, exitCode(t, cmd, time.Minute), stderr.String())
	assert.Equal(t, "2470\n", stdout.String())
	assert.Contains(t, stderr.String(), "cache: 0 hits, 20 misses, 20 stored")

	c.kill9("w1") // a hit needs no worker
	cmd, stdout, stderr = c.caller(dir, "--nats-cache", "--summary", script)
	require.Equal(t, 0, exitCode(t, cmd, time.Minute), stderr.String())
	assert.Equal(t, "2470\n", stdout.String())
	assert.Contains(t, stderr.String(), "cache: 20 hits, 0 misses")
}

// TestClusterSeed: with --seed, a job's items, a @semisync call and a
// @future call draw the same random numbers on the workers as locally
// (the caller's seed and each task's structural identity travel with
// the task), whichever worker runs them.
func TestClusterSeed(t *testing.T) {
	c := newTestCluster(t)
	c.worker("w1", "--concurrency", "2")
	c.worker("w2", "--concurrency", "1")
	c.waitWorkers(2)
	dir := t.TempDir()
	script := filepath.Join(dir, "seeded.star")
	require.NoError(t, os.WriteFile(script, []byte(`
load("random", "randint")

def draw(x):
    return [x, randint(0, 1000000), randint(0, 1000000)]

@future
def later(x):
    return randint(0, 1000000) + x

print(job(draw, range(300), progress = False).run())
print(later(1).result(), later(2).result())
`), 0o644))
	local := exec.Command(c.bin, "--seed", "42", script)
	local.Dir = dir
	want, err := local.Output()
	require.NoError(t, err)
	require.Contains(t, string(want), "[0, ")
	for range 2 {
		cmd, stdout, stderr := c.caller(dir, "--seed", "42", script)
		require.Equal(t, 0, exitCode(t, cmd, 2*time.Minute), stderr.String())
		assert.Equal(t, string(want), stdout.String())
	}
	// Another seed draws other numbers (the seed is not ignored).
	cmd, stdout, stderr := c.caller(dir, "--seed", "43", script)
	require.Equal(t, 0, exitCode(t, cmd, 2*time.Minute), stderr.String())
	assert.NotEqual(t, string(want), stdout.String())
}
