package engine_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/semisync/semisync/engine"
)

func ExampleDispatcher() {
	ctx := context.Background()
	p := engine.NewPool(engine.PoolOptions{})
	defer p.Close()

	var log []string // touched only by the drain task, one batch at a time
	d := engine.NewDispatcher(func(ctx context.Context, w *engine.Worker, batch []string) int {
		log = append(log, batch...)
		return len(batch) // all handled
	})
	for _, m := range []string{"open", "move", "close"} {
		if err := d.Post(ctx, p, m); err != nil { // never blocks
			panic(err)
		}
	}
	if err := d.Wait(ctx, nil); err != nil { // everything posted so far is handled
		panic(err)
	}
	fmt.Println(strings.Join(log, " "), d.Pending())
	// Output: open move close 0
}

func ExampleDispatcher_serial() {
	// In a serial pool the drain runs once the poster waits; a value posted
	// by the handler is delivered after the current batch, keeping FIFO
	// order.
	ctx := context.Background()
	p := engine.NewPool(engine.PoolOptions{Serial: true})
	defer p.Close()
	w := p.Enter() // this goroutine takes part: it holds the baton
	defer w.Leave()

	var d *engine.Dispatcher[string]
	d = engine.NewDispatcher(func(ctx context.Context, w *engine.Worker, batch []string) int {
		for _, m := range batch {
			fmt.Println("handle", m)
			if m == "ping" {
				d.Post(ctx, p, "pong") //nolint:errcheck // the pool is open
			}
		}
		return len(batch)
	})
	d.Post(ctx, p, "ping") //nolint:errcheck
	fmt.Println("posted")
	d.Wait(ctx, w) //nolint:errcheck // hands the baton to the drain
	// Output:
	// posted
	// handle ping
	// handle pong
}
