package engine_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/semisync/semisync/engine"
)

func ExamplePool() {
	p := engine.NewPool(engine.PoolOptions{
		Limit: 2, // at most two tasks compute at once; the rest queue
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

func ExampleRecv() {
	p := engine.NewPool(engine.PoolOptions{Limit: 1})
	defer p.Close()
	ctx := context.Background()

	// The first task waits for the second. With Limit 1 the second could
	// never start, but a worker waiting in Recv does not count against the
	// limit.
	ready := make(chan string)
	first := engine.Go(ctx, p, func(ctx context.Context, w *engine.Worker) (string, error) {
		msg, _, err := engine.Recv(ctx, w, ready, 0)
		return "got " + msg, err
	})
	engine.Go(ctx, p, func(context.Context, *engine.Worker) (struct{}, error) {
		ready <- "message"
		return struct{}{}, nil
	})
	fmt.Println(first.Result(ctx, nil))

	// A timeout ends the wait with ErrTimeout.
	_, _, err := engine.Recv(ctx, nil, make(chan int), time.Millisecond)
	fmt.Println(err)
	// Output:
	// got message <nil>
	// engine: timed out
}

func ExampleLocal() {
	// Each worker keeps its own builder, set up once by Init.
	var buf engine.Local[*strings.Builder]
	p := engine.NewPool(engine.PoolOptions{
		Limit: 1,
		Init:  func(w *engine.Worker) { buf.Set(w, new(strings.Builder)) },
	})
	defer p.Close()
	ctx := context.Background()
	f := engine.Go(ctx, p, func(_ context.Context, w *engine.Worker) (string, error) {
		b := buf.Get(w)
		b.WriteString("hello")
		return b.String(), nil
	})
	fmt.Println(f.Result(ctx, nil))

	var unset engine.Local[int]
	fmt.Println(unset.Get(nil))
	// Output:
	// hello <nil>
	// 0
}

func ExampleGo() {
	p := engine.NewPool(engine.PoolOptions{})
	defer p.Close()
	ctx := context.Background()

	f := engine.Go(ctx, p, func(ctx context.Context, w *engine.Worker) (string, error) {
		return strings.ToUpper("hello"), nil
	})
	// ... the caller goes on, then collects the result.
	v, err := f.Result(ctx, nil)
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
		bad.Result(ctx, nil)
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
	fmt.Println(f.Result(context.Background(), nil))
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
	v, err := f.Result(context.Background(), nil)
	fmt.Printf("%q %v\n", v, err)
	// Output:
	// true true
	// false
	// "" engine: cancelled
}

func ExampleGraph() {
	// The three-node graph of the semisync README: profit needs both
	// revenue and expenses, which run at the same time.
	p := engine.NewPool(engine.PoolOptions{})
	defer p.Close()

	// onDone runs on this goroutine, and a node starts only after onDone
	// has seen all its dependencies, so nodes may read results without a
	// lock.
	results := map[engine.NodeID]int{}
	var g engine.Graph
	revenue := g.Add(func(context.Context, *engine.Worker) (any, error) { return 100, nil })
	expenses := g.Add(func(context.Context, *engine.Worker) (any, error) { return 60, nil })
	profit := g.Add(func(context.Context, *engine.Worker) (any, error) {
		return results[revenue] - results[expenses], nil
	}, revenue, expenses)

	err := g.Run(context.Background(), p, nil, func(id engine.NodeID, v any) error {
		results[id] = v.(int)
		if id == profit { // always last: it depends on the others
			fmt.Println("profit is ready")
		}
		return nil
	})
	fmt.Println("error:", err)
	fmt.Println(results[revenue], results[expenses], results[profit])
	// Output:
	// profit is ready
	// error: <nil>
	// 100 60 40
}

func ExampleGraph_failure() {
	p := engine.NewPool(engine.PoolOptions{})
	defer p.Close()
	var g engine.Graph
	fetch := g.Add(func(context.Context, *engine.Worker) (any, error) { return nil, fmt.Errorf("connection refused") })
	g.Add(func(context.Context, *engine.Worker) (any, error) { return "parsed", nil }, fetch)
	g.Add(func(context.Context, *engine.Worker) (any, error) { return "logged", nil })

	err := g.Run(context.Background(), p, nil, nil)
	fmt.Println(err)
	// Output:
	// engine: 1 of 3 nodes failed, 1 skipped
	// node 0: connection refused
	// node 1: skipped: node 0 failed
}

func ExampleGraph_Join() {
	// A join stands for several nodes: "after both downloads".
	p := engine.NewPool(engine.PoolOptions{Serial: true})
	defer p.Close()
	node := func(name string) engine.Func {
		return func(context.Context, *engine.Worker) (any, error) { return name, nil }
	}
	var g engine.Graph
	a := g.Add(node("download a"))
	b := g.Add(node("download b"))
	both := g.Join(a, b)
	g.Add(node("unpack"), both)
	g.Add(node("verify"), both)
	g.Run(context.Background(), p, nil, func(id engine.NodeID, v any) error { //nolint:errcheck
		fmt.Println(id, v)
		return nil
	})
	// Output:
	// 0 download a
	// 1 download b
	// 3 unpack
	// 4 verify
}

func ExamplePool_serial() {
	// A serial pool runs the same tasks on the same workers, one at a time,
	// in a deterministic order: a task runs when the baton holder waits.
	p := engine.NewPool(engine.PoolOptions{Serial: true})
	defer p.Close()
	ctx := context.Background()
	w := p.Enter() // this goroutine holds the baton
	defer w.Leave()

	var futures []*engine.Future[int]
	for i := range 3 {
		futures = append(futures, engine.Go(ctx, p, func(ctx context.Context, w *engine.Worker) (int, error) {
			fmt.Println("task", i, "starts")
			if err := w.Sleep(ctx, time.Duration(3-i)*time.Millisecond); err != nil {
				return 0, err
			}
			fmt.Println("task", i, "wakes")
			return i * i, nil
		}))
	}
	fmt.Println("submitted")
	for _, f := range futures {
		fmt.Println(f.Result(ctx, w))
	}
	// Output:
	// submitted
	// task 0 starts
	// task 1 starts
	// task 2 starts
	// task 2 wakes
	// task 1 wakes
	// task 0 wakes
	// 0 <nil>
	// 1 <nil>
	// 4 <nil>
}
