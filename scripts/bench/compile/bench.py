#!/usr/bin/env python3
"""CPython times for the compiler's benchmark functions (bench.star), and a
CPU-bound map on multiprocessing.Pool(2), to compare with

    go test -run XXX -bench . ./starlarkmod/internal/compile
    time semisync scripts/bench/compile/job.star

The bodies are bench.star's, which is Python as well too."""
import multiprocessing
import os
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
    t = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn(arg)
        t = min(t, time.perf_counter() - start)
    return t


def main():
    for name, fn, arg in CASES:
        print("%-16s %8.1f ms  (%s(%d))" % (name, best(ns[fn], arg) * 1000, fn, arg))
    chunks = list(range(0, 400000, 25000))
    start = time.perf_counter()
    with multiprocessing.Pool(2) as p:
        p.map(ns["prime_chunk"], chunks)
    print("%-16s %8.1f ms  (Pool(2).map(prime_chunk, 16 chunks))" % ("Pool2", (time.perf_counter() - start) * 1000))


if __name__ == "__main__":
    main()
