package engine_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/semisync/semisync/engine"
)

func ExamplePool() {
	p := engine.NewPool(engine.PoolOptions{
		Limit: 2, // at most two tasks compute at once; the rest queue
		Init:  func(w *engine.Worker) { w.Local = new(strings.Builder) },
	})

	squares := make([]int, 5)
	for i := range squares {
		err := p.Go(context.Background(), func(ctx context.Context, w *engine.Worker) {
			squares[i] = i * i // each task writes its own element
		})
		if err != nil {
			panic(err)
		}
	}
	p.Close() // waits for every queued and running task

	fmt.Println(squares)
	fmt.Println(p.Go(context.Background(), func(context.Context, *engine.Worker) {}))
	// Output:
	// [0 1 4 9 16]
	// engine: pool is closed
}

func ExampleWorker_Block() {
	p := engine.NewPool(engine.PoolOptions{Limit: 1})
	defer p.Close()

	// The first task waits for the second. With Limit 1 the second could
	// never start, but a blocked worker does not count against the limit.
	ready := make(chan string)
	first := engine.Go(context.Background(), p, func(ctx context.Context, w *engine.Worker) (string, error) {
		unblock := w.Block()
		defer unblock()
		return "got " + <-ready, nil
	})
	engine.Go(context.Background(), p, func(context.Context, *engine.Worker) (struct{}, error) {
		ready <- "message"
		return struct{}{}, nil
	})
	fmt.Println(first.Result(context.Background()))
	// Output: got message <nil>
}

func ExampleGo() {
	p := engine.NewPool(engine.PoolOptions{})
	defer p.Close()
	ctx := context.Background()

	f := engine.Go(ctx, p, func(ctx context.Context, w *engine.Worker) (string, error) {
		return strings.ToUpper("hello"), nil
	})
	// ... the caller goes on, then collects the result.
	v, err := f.Result(ctx)
	fmt.Println(v, err)

	// A task that panics re-raises its panic in Result.
	bad := engine.Go(ctx, p, func(context.Context, *engine.Worker) (int, error) {
		panic("assignment to entry in nil map")
	})
	func() {
		defer func() {
			pe := recover().(*engine.PanicError)
			fmt.Println("recovered:", pe.Value)
		}()
		bad.Result(ctx)
	}()
	// Output:
	// HELLO <nil>
	// recovered: assignment to entry in nil map
}

func ExampleNewPromise() {
	f, resolve := engine.NewPromise[int]()
	f.OnDone(func() {
		v, _, _ := f.Peek()
		fmt.Println("resolved with", v)
	})

	fmt.Println(resolve(42, nil)) // runs the callback, then reports success
	fmt.Println(resolve(7, nil))  // a future is resolved only once
	fmt.Println(f.Result(context.Background()))
	// Output:
	// resolved with 42
	// true
	// false
	// 42 <nil>
}

func ExampleFuture_Cancel() {
	f, resolve := engine.NewPromise[string]()
	fmt.Println(f.Cancel(), f.Cancelled())
	fmt.Println(resolve("too late", nil))
	v, err := f.Result(context.Background())
	fmt.Printf("%q %v\n", v, err)
	// Output:
	// true true
	// false
	// "" cancelled
}

func ExampleGraph() {
	// The three-node graph of the semisync README: profit needs both
	// revenue and expenses, which run at the same time.
	p := engine.NewPool(engine.PoolOptions{})
	defer p.Close()

	// onDone runs on this goroutine, and a node starts only after onDone
	// has seen all its dependencies, so nodes may read results without a
	// lock.
	results := map[string]int{}
	var g engine.Graph
	g.Add("revenue", func(context.Context, *engine.Worker) (any, error) { return 100, nil })
	g.Add("expenses", func(context.Context, *engine.Worker) (any, error) { return 60, nil })
	g.Add("profit", func(context.Context, *engine.Worker) (any, error) {
		return results["revenue"] - results["expenses"], nil
	}, "revenue", "expenses")

	err := g.Run(context.Background(), p, func(name string, v any) error {
		results[name] = v.(int)
		if name == "profit" { // always last: it depends on the others
			fmt.Println("profit is ready")
		}
		return nil
	})
	fmt.Println("error:", err)
	for _, name := range slices.Sorted(maps.Keys(results)) {
		fmt.Println(name, results[name])
	}
	// Output:
	// profit is ready
	// error: <nil>
	// expenses 60
	// profit 40
	// revenue 100
}

func ExampleGraph_failure() {
	var g engine.Graph
	g.Add("fetch", func(context.Context, *engine.Worker) (any, error) { return nil, fmt.Errorf("connection refused") })
	g.Add("parse", func(context.Context, *engine.Worker) (any, error) { return "parsed", nil }, "fetch")
	g.Add("log", func(context.Context, *engine.Worker) (any, error) { return "logged", nil })

	err := g.Run(context.Background(), engine.Inline{}, nil)
	fmt.Println(err)
	// Output:
	// 1 of 3 failed, 1 skipped
	// fetch: connection refused
	// parse: skipped: fetch failed
}

func ExampleInline() {
	// Inline runs every task at once on the calling goroutine: the same
	// code as with a Pool, but sequential and deterministic.
	var in engine.Inline
	for i := range 3 {
		in.Go(context.Background(), func(context.Context, *engine.Worker) { fmt.Println("task", i) })
	}

	f := engine.Go(context.Background(), in, func(context.Context, *engine.Worker) (int, error) { return 6 * 7, nil })
	fmt.Println("done before Go returned:", f.IsDone())

	var g engine.Graph
	g.Add("load", func(context.Context, *engine.Worker) (any, error) { return "rows", nil })
	g.Add("clean", func(context.Context, *engine.Worker) (any, error) { return "clean rows", nil }, "load")
	g.Add("report", func(context.Context, *engine.Worker) (any, error) { return "report", nil }, "clean")
	g.Run(context.Background(), in, func(name string, v any) error {
		fmt.Printf("%s: %v\n", name, v)
		return nil
	})
	// Output:
	// task 0
	// task 1
	// task 2
	// done before Go returned: true
	// load: rows
	// clean: clean rows
	// report: report
}
