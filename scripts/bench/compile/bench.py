#!/usr/bin/env python3
"""CPython times for the compiler's benchmark functions (bench.star), and a
CPU-bound map on multiprocessing.Pool(2), to compare with

    go test -run XXX -bench . ./starlarkmod/internal/compile
    time semisync scripts/bench/compile/job.star

The bodies are bench.star's, which is Python as well too."""
import multiprocessing
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ns = globals()  # the functions must live in __main__ for Pool to pickle them
exec(open(os.path.join(HERE, "bench.star")).read(), ns)

CASES = [
    ("IsPrime", "count_primes", 200000),
    ("Fib", "fib", 25),
    ("StringBuild", "build_string", 200000),
    ("ListDictChurn", "churn", 200000),
    ("Comprehensions", "comprehensions", 200000),
]


def best(fn, arg, runs=3):
    """Best wall and CPU (process_time) seconds of runs calls."""
    wall = cpu = float("inf")
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn(arg)
        wall = min(wall, time.perf_counter() - w)
        cpu = min(cpu, time.process_time() - c)
    return wall, cpu


def main():
    if sys.argv[1:] != ["pool"]:  # bench.py pool: only the Pool(2) map
        bench()
    chunks = list(range(0, 400000, 25000))
    start, cpu = time.perf_counter(), time.process_time()
    with multiprocessing.Pool(2) as p:
        p.map(ns["prime_chunk"], chunks)
    print("%-16s %8.1f ms wall  (Pool(2).map(prime_chunk, 16 chunks); CPU in the children)" % ("Pool2", (time.perf_counter() - start) * 1000))


def bench():
    for name, fn, arg in CASES:
        wall, cpu = best(ns[fn], arg)
        print("%-16s %8.1f ms wall %8.1f cpu-ms  (%s(%d))" % (name, wall * 1000, cpu * 1000, fn, arg))


if __name__ == "__main__":
    main()
