package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/semisync/semisync/starlarkmod"
	"github.com/semisync/semisync/starlarkmod/cluster"
)

// runOnCluster runs src as a script here, with its portable work sent to
// c's workers, and returns how long ExecFile took.
func runOnCluster(b *testing.B, c *testCluster, src string) time.Duration {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.star")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	e, err := cluster.Dial(context.Background(), c.url, cluster.ConnectOptions{}, cluster.Options{Stdout: io.Discard, Stderr: os.Stderr})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: os.Stderr, Remote: e})
	defer in.Close()
	start := time.Now()
	if _, err := in.ExecFile(context.Background(), path); err != nil {
		b.Fatal(starlarkmod.FormatError(err))
	}
	return time.Since(start)
}

// cpuTime returns the CPU time (user + system) used so far by this process
// and by c's worker processes (read from /proc; 0 for a worker whose
// figures cannot be read).
func cpuTime(c *testCluster) time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru) //nolint:errcheck // zero on failure
	total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.ws {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.Process.Pid))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: utime and stime
		// are the 12th and 13th, in clock ticks (100 per second on Linux).
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(u+s) * 10 * time.Millisecond
	}
	return total
}

// BenchmarkClusterTrivial: a job of b.N trivial items (def f(x): return
// x) run on two worker processes (one task at a time each) through an
// embedded JetStream server, all on this machine: end-to-end tasks/s,
// with encoding, chunking, the Starlark call and decoding the results.
// Run with -benchtime 200000x or more.
func BenchmarkClusterTrivial(b *testing.B) {
	c := newTestCluster(b)
	c.worker("w1", "--concurrency", "1")
	c.worker("w2", "--concurrency", "1")
	c.waitWorkers(2)
	runOnCluster(b, c, "def f(x):\n    return x\njob(f, range(100), progress = False).run()\n") // warm up: code store, caches
	b.ResetTimer()
	cpu := cpuTime(c)
	d := runOnCluster(b, c, fmt.Sprintf("def f(x):\n    return x\nr = job(f, range(%d), progress = False).run()\n", b.N))
	cpu = cpuTime(c) - cpu
	b.ReportMetric(float64(b.N)/d.Seconds(), "tasks/s")
	b.ReportMetric(float64(d.Microseconds())/float64(b.N), "us/task")
	// CPU time of every process (caller, server, workers) per task.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/task")
}

// BenchmarkClusterFutureRoundTrip: b.N @future calls, one after the other
// (each waits for its result): the latency of one remote call.
func BenchmarkClusterFutureRoundTrip(b *testing.B) {
	c := newTestCluster(b)
	c.worker("w1", "--concurrency", "1")
	c.waitWorkers(1)
	src := "@future\ndef f(x):\n    return x\nfor i in range(%d):\n    f(i).result()\n"
	runOnCluster(b, c, fmt.Sprintf(src, 10))
	b.ResetTimer()
	d := runOnCluster(b, c, fmt.Sprintf(src, b.N))
	b.ReportMetric(float64(d.Microseconds())/float64(b.N), "us/call")
}

const primesJob = `
def is_prime(n):
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True

def count_primes(start, width):
    return len([n for n in range(start, start + width) if is_prime(n)])

job(count_primes, range(0, 1000000, 12500), args = [12500], processes = 4, progress = False).run()
`

// BenchmarkClusterCPU: the CPU-bound job (is_prime over range(1000000),
// 80 items) on one worker process, then on two (one task at a time
// each): the speedup of two processes over one, on this machine's cores.
func BenchmarkClusterCPU(b *testing.B) {
	var one time.Duration
	for _, n := range []int{1, 2} {
		b.Run("workers="+strconv.Itoa(n), func(b *testing.B) {
			c := newTestCluster(b)
			for i := range n {
				c.worker(fmt.Sprintf("w%d", i+1), "--concurrency", "1")
			}
			c.waitWorkers(n)
			runOnCluster(b, c, "def f(x):\n    return x\njob(f, range(10), progress = False).run()\n")
			b.ResetTimer()
			var total time.Duration
			cpu := cpuTime(c)
			for range b.N {
				total += runOnCluster(b, c, primesJob)
			}
			cpu = cpuTime(c) - cpu
			per := total / time.Duration(b.N)
			b.ReportMetric(per.Seconds(), "s/job")
			b.ReportMetric((cpu / time.Duration(b.N)).Seconds(), "cpu-s/job")
			if n == 1 {
				one = per
			} else if one > 0 {
				b.ReportMetric(one.Seconds()/per.Seconds(), "speedup")
			}
		})
	}
}
