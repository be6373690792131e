#!/usr/bin/env python3
"""Compare semisync with the Python libraries it generalises.

Runs each workload of DESIGN.md section 6 the way the seeds (or Python's
standard tools) do it, then runs semisync's Go benchmarks for the same
workload on the same machine, and prints both with their ratio.

    python3 scripts/bench/compare.py            # a few minutes
    python3 scripts/bench/compare.py --quick    # smaller sizes, noisier

It prints one table: for each workload the Python way's figure, semisync's,
the hand-written Go floor where there is one (GOMAXPROCS goroutines calling
the function with starlark.Call on long-lived threads: BenchmarkJobFloor),
the target of DESIGN.md section 6 and whether it was met.

Python side, as the seeds do it:
  - semisync: one multiprocessing.Process per queued call, results through a
    Queue, callbacks in the parent (the seed's code);
  - futures: concurrent.futures.ThreadPoolExecutor (concert uses a 128-thread
    pool) and asyncio tasks;
  - jobs: multiprocessing.Pool(4).map with chunks (what spychronous wraps);
  - pipelines: a generator feeding a primed coroutine (concert's inject);
  - dispatcher: a queue.Queue drained by one daemon thread (concert's);
  - CPU-bound code: CPython itself, then multiprocessing.Pool(2).map.
"""
import asyncio
import concurrent.futures
import multiprocessing as mp
import os
import queue
import re
import statistics
import subprocess
import sys
import threading
import time

QUICK = "--quick" in sys.argv
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


# --- semisync's approach: a process per call ------------------------------

def _run_call(q, name, secs):
    time.sleep(secs)
    q.put((name, secs))


def seed_example():
    """revenue (0.3 s) and expenses (0.5 s) in parallel, then profit (0 s)."""
    q = mp.Queue()
    procs = [mp.Process(target=_run_call, args=(q, n, s)) for n, s in (("revenue", 0.3), ("expenses", 0.5))]
    for p in procs:
        p.start()
    for _ in procs:
        q.get()
    for p in procs:
        p.join()
    p = mp.Process(target=_run_call, args=(q, "profit", 0))
    p.start()
    q.get()
    p.join()


def seed_trivial(n):
    q = mp.Queue()
    procs = [mp.Process(target=_run_call, args=(q, i, 0)) for i in range(n)]
    for p in procs:
        p.start()
    for _ in procs:
        q.get()
    for p in procs:
        p.join()


# --- futures ----------------------------------------------------------------

def trivial(i):
    return i


def tpe(n):
    with concurrent.futures.ThreadPoolExecutor(max_workers=128) as ex:
        fs = [ex.submit(trivial, i) for i in range(n)]
        for f in fs:
            f.result()


def asyncio_tasks(n):
    async def t(i):
        return i

    async def main():
        await asyncio.gather(*(asyncio.create_task(t(i)) for i in range(n)))

    asyncio.run(main())


# --- jobs -------------------------------------------------------------------

def pool_trivial(n):
    with mp.Pool(4) as pool:
        pool.map(trivial, range(n), chunksize=max(1, n // 64))


def cpu(i):
    x = 0
    for j in range(20000):
        x = (x + j * i) % 1000003
    return x


def loop_cpu(n):
    return [cpu(i) for i in range(n)]


def pool_cpu(n):
    with mp.Pool(2) as pool:
        return pool.map(cpu, range(n))


# --- pipelines and the dispatcher ---------------------------------------------

def inject(n):
    def coroutine(fn):
        def start(*a):
            g = fn(*a)
            next(g)
            return g
        return start

    @coroutine
    def consume():
        while True:
            _ = yield

    c = consume()
    for i in range(n):
        c.send(i)


def dispatcher(n):
    q = queue.Queue()
    done = threading.Event()
    handled = [0]

    def handler(sender):
        handled[0] += 1

    def serve():
        while True:
            sender, message = q.get()
            if message is None:
                done.set()
                return
            handler(sender)

    threading.Thread(target=serve, daemon=True).start()
    obj = {}
    for _ in range(n):
        q.put((obj, "foo"))
    q.put((None, None))
    done.wait()


# --- semisync's Go benchmarks -------------------------------------------------

def go_bench(pattern, benchtime, count=3):
    """Runs Go benchmarks count times; each metric is the median of the runs."""
    out = subprocess.run(
        ["go", "test", "-run", "^$", "-bench", pattern, "-benchtime", benchtime,
         "-count", str(count), "./starlarkmod/"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    runs = {}
    for line in out.splitlines():
        if not line.startswith("Benchmark"):
            continue
        fields = line.split()
        name = re.sub(r"-\d+$", "", fields[0])
        for value, unit in zip(fields[2::2], fields[3::2]):
            runs.setdefault(name, {}).setdefault(unit, []).append(float(value))
    return {name: {unit: statistics.median(vs) for unit, vs in metrics.items()} for name, metrics in runs.items()}


def best(cmd, runs=3, **kw):
    """Wall time of the fastest of runs runs of cmd (the least disturbed by load)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, **kw)
        times.append(time.perf_counter() - t0)
    return min(times)


def ctrl_c(binary, runs=3):
    """Time from SIGINT to exit of semisync running 100 spinning futures."""
    times = []
    for _ in range(runs):
        p = subprocess.Popen([binary, "scripts/bench/spin_futures.star"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        p.stdout.readline()  # "started"
        time.sleep(0.3)
        t0 = time.perf_counter()
        p.send_signal(2)
        p.wait()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


ROWS = []


def row(workload, py_way, py, ours, floor, unit, target, met, note=""):
    ROWS.append((workload, py_way, py, ours, floor, unit, target, met, note))
    fmt = lambda v: "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
    status = "met" if met else "MISSED"
    print(f"{workload:<46} {py_way:<28} {fmt(py):>9} {fmt(ours):>9} {fmt(floor):>9} {unit:<8} {target:<22} {status}{'  ' + note if note else ''}")
    sys.stdout.flush()


def main():
    n_tasks = 20000 if QUICK else 100000
    n_items = 200000 if QUICK else 1000000
    n_seed = 50 if QUICK else 200
    n_stream = 200000 if QUICK else 1000000
    n_prime = 50000 if QUICK else 200000

    binary = os.path.join(ROOT, ".bench-semisync")
    subprocess.run(["go", "build", "-o", binary, "./cmd/semisync"], cwd=ROOT, check=True)
    try:
        load = os.getloadavg()[0]
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load:.1f} at the start;")
        print("Go figures are medians of 3 benchmark runs, process timings the best of 3.\n")
        print(f"{'workload':<46} {'Python way':<28} {'Python':>9} {'semisync':>9} {'Go floor':>9} {'unit':<8} {'target':<22} status")

        ex = go_bench("SemisyncExample", "3x", count=1)["BenchmarkSemisyncExample"]["ms-over-critical-path"]
        py = (min(timed(seed_example) for _ in range(3)) - 0.5) * 1000
        row("seed example 0.3/0.5/0 s: above critical path", "process per call", py, ex, None, "ms", "<= 2 ms", ex <= 2)

        g = go_bench("SemisyncTrivial$|FutureTrivial", f"{n_tasks}x")
        floor = go_bench("JobFloor", "3x")["BenchmarkJobFloor"]["ns/item"] / 1000
        ours = g["BenchmarkSemisyncTrivial/semisync"]["ns/op"] / 1000
        fut = g["BenchmarkFutureTrivial"]["ns/op"] / 1000
        row(f"{n_tasks} trivial semisync calls, per call", "process per call", timed(seed_trivial, n_seed) / n_seed * 1e6, ours, floor, "us", "<= 1.0 us", ours <= 1.0)
        row(f"{n_tasks} trivial @future calls, per call", "ThreadPoolExecutor", timed(tpe, n_tasks) / n_tasks * 1e6, fut, floor, "us", "-", True)
        row(f"{n_tasks} trivial @future calls, per call", "asyncio tasks", timed(asyncio_tasks, n_tasks) / n_tasks * 1e6, fut, floor, "us", "-", True)

        o = go_bench("SemisyncTrivialObserved", f"{n_tasks}x", count=5)
        off = o["BenchmarkSemisyncTrivialObserved/off"]["ns/op"] / 1000
        obs = o["BenchmarkSemisyncTrivialObserved/observed"]["ns/op"] / 1000
        tr = o["BenchmarkSemisyncTrivialObserved/trace"]["ns/op"] / 1000
        row("the same with --summary/--graph (recording)", "-", None, obs, None, "us", "<= 1.1x without", obs <= 1.1 * off, f"{obs / off:.2f}x of {off:.3g} us without")
        row("the same with --trace (recording + writing)", "-", None, tr, None, "us", "<= 1.1x without", tr <= 1.1 * off, f"{tr / off:.2f}x of {off:.3g} us without")

        item = go_bench("JobTrivial/trivial$", "3x")["BenchmarkJobTrivial/trivial"]["ns/item"] / 1000
        jfloor = floor
        row(f"job over {n_items} trivial items, per item", "Pool(4).map, chunked", timed(pool_trivial, n_items) / n_items * 1e6, item, jfloor, "us", "<= 1.2x floor", item <= 1.2 * jfloor, f"{item / jfloor:.2f}x floor")

        py_prime = min(timed(loop_prime, n_prime) for _ in range(3))
        ours = best([binary, "scripts/bench/is_prime_task.star", str(n_prime)])
        row(f"is_prime over range({n_prime}), one core, a task", "CPython loop", py_prime, ours, None, "s", ">= 1.5x CPython", py_prime / ours >= 1.5, f"{py_prime / ours:.2f}x (compiled)")
        vm = best([binary, "scripts/bench/is_prime.star", str(n_prime)])
        row("the same at the script's top level", "CPython loop", py_prime, vm, None, "s", "-", True, f"{py_prime / vm:.2f}x (top level runs on the VM)")
        py_pool = min(timed(pool_prime, n_prime) for _ in range(3))
        ours2 = best([binary, "scripts/bench/is_prime_job.star", str(n_prime), "2"])
        row(f"the same as a job on 2 workers", "Pool(2).map, chunks of 1000", py_pool, ours2, None, "s", ">= 2x Pool(2)", py_pool / ours2 >= 2, f"{py_pool / ours2:.2f}x")

        p = go_bench("Pipeline|Dispatcher", f"{n_stream}x")
        inject_go = max(v.get("items/s", 0) for k, v in p.items() if k.startswith("BenchmarkPipeline/") and "floor" not in k and "sequential" not in k)
        unbuf = [v.get("items/s", 0) for k, v in p.items() if k == "BenchmarkPipeline/inject/generator/unbuffered"]
        disp_go = max(v.get("msgs/s", 0) for k, v in p.items() if k.startswith("BenchmarkDispatcher/") and "floor" not in k)
        row(f"no-op items through inject ({n_stream})", "generator -> coroutine", n_stream / timed(inject, n_stream), inject_go, None, "items/s", ">= 2M/s unbuffered",
            bool(unbuf) and max(unbuf) >= 2e6, f"unbuffered generator -> coroutine {max(unbuf) if unbuf else 0:.3g}/s")
        row(f"dispatcher messages ({n_stream})", "Queue + daemon thread", n_stream / timed(dispatcher, n_stream), disp_go, None, "msgs/s", ">= 2M/s", disp_go >= 2e6)

        c = ctrl_c(binary)
        row("Ctrl-C to exit, 100 spinning futures", "-", None, c * 1000, None, "ms", "< 100 ms", c < 0.1)
        py_start = best(["python3", "-c", "print('hi')"], runs=10)
        ours = best([binary, "scripts/bench/hi.star"], runs=10)
        row('start-up, print("hi")', "python3 -c", py_start * 1000, ours * 1000, None, "ms", "< 10 ms", ours < 0.01)
        print("\nnot measured here: the cluster (issue 12) and the result cache (issue 14) rows of DESIGN.md section 6.")
        print(f"load average {os.getloadavg()[0]:.1f} at the end.")
    finally:
        os.remove(binary)


def is_prime(n):
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def loop_prime(n):
    return sum(1 for x in range(n) if is_prime(x))


def count_chunk(start):
    return sum(1 for x in range(start, start + 1000) if is_prime(x))


def pool_prime(n):
    with mp.Pool(2) as pool:
        return sum(pool.map(count_chunk, range(0, n, 1000)))


if __name__ == "__main__":
    main()
