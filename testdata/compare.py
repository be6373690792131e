#!/usr/bin/env python3
"""Compare semisync with the Python libraries it generalises.

Runs each workload of DESIGN.md section 6 the way the seeds (or Python's
standard tools) do it, then runs semisync's Go benchmarks for the same
workload on the same machine, and prints both with their ratio.

    python3 testdata/compare.py            # about two minutes
    python3 testdata/compare.py --quick    # smaller sizes, noisier

Python side, as the seeds do it:
  - semisync: one multiprocessing.Process per queued call, results through a
    Queue, callbacks in the parent (the seed's code);
  - futures: concurrent.futures.ThreadPoolExecutor (concert uses a 128-thread
    pool) and asyncio tasks;
  - jobs: multiprocessing.Pool(4).map with chunks (what spychronous wraps);
  - pipelines: a generator feeding a primed coroutine (concert's inject);
  - dispatcher: a queue.Queue drained by one daemon thread (concert's).
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
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def row(what, py_label, py_value, go_value, unit, better="lower"):
    ratio = py_value / go_value if better == "lower" else go_value / py_value
    print(f"  {what:<44} {py_label:<26} {py_value:>12.3f} {unit:<8} semisync {go_value:>12.3f} {unit:<8} {ratio:>8.1f}x")


def main():
    n_tasks = 20000 if QUICK else 100000
    n_items = 200000 if QUICK else 1000000
    n_seed = 50 if QUICK else 200
    n_stream = 200000 if QUICK else 1000000

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; ratios > 1 mean semisync is better;")
    print("Go figures are medians of 3 benchmark runs\n")

    ex = go_bench("SemisyncExample", "3x", count=1)["BenchmarkSemisyncExample"]["ms-over-critical-path"]
    py = (sum(timed(seed_example) for _ in range(3)) / 3 - 0.5) * 1000
    print("semisync README example, sleeps 0.3/0.5/0 (time above the 0.5 s critical path)")
    row("", "seed (process per call)", py, ex, "ms")

    g = go_bench("SemisyncTrivial|FutureTrivial", f"{n_tasks}x")
    ours = g["BenchmarkSemisyncTrivial/semisync"]["ns/op"] / 1000
    fut = g["BenchmarkFutureTrivial"]["ns/op"] / 1000
    print(f"\nper task, {n_tasks} independent trivial calls")
    row("semisync calls", "seed (process per call)", timed(seed_trivial, n_seed) / n_seed * 1e6, ours, "us")
    row("@future calls", "ThreadPoolExecutor", timed(tpe, n_tasks) / n_tasks * 1e6, fut, "us")
    row("@future calls", "asyncio tasks", timed(asyncio_tasks, n_tasks) / n_tasks * 1e6, fut, "us")

    j = go_bench("JobTrivial/trivial$|JobCPU", "3x")
    print(f"\njob over {n_items} trivial items (per item)")
    row("job(...).run()", "Pool(4).map, chunked", timed(pool_trivial, n_items) / n_items * 1e6,
        j["BenchmarkJobTrivial/trivial"]["ns/item"] / 1000, "us")
    n_cpu = 400 if QUICK else 2000
    loop = timed(loop_cpu, n_cpu)
    par = timed(pool_cpu, n_cpu)
    print(f"\nCPU-bound job, {n_cpu} items, 2 workers (speedup over a loop in the same language)")
    row("job vs run_single_processed", "Pool(2).map vs loop", loop / par, j["BenchmarkJobCPU"]["speedup"], "x", better="higher")

    p = go_bench("Pipeline|Dispatcher", f"{n_stream}x")
    print(f"\nno-op items through a pipeline and messages through a dispatcher ({n_stream})")
    inject_go = max(v.get("items/s", 0) for k, v in p.items() if k.startswith("BenchmarkPipeline/") and "floor" not in k and "sequential" not in k)
    disp_go = max(v.get("msgs/s", 0) for k, v in p.items() if k.startswith("BenchmarkDispatcher/") and "floor" not in k)
    row("inject into a no-op consumer", "generator -> coroutine", n_stream / timed(inject, n_stream), inject_go, "items/s", better="higher")
    row("dispatcher.send + handler", "Queue + daemon thread", n_stream / timed(dispatcher, n_stream), disp_go, "msgs/s", better="higher")


if __name__ == "__main__":
    main()
