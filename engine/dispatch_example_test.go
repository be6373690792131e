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
	if err := d.Wait(ctx); err != nil { // everything posted so far is handled
		panic(err)
	}
	fmt.Println(strings.Join(log, " "), d.Pending())
	// Output: open move close 0
}

func ExampleDispatcher_inline() {
	// On an Inline executor the drain runs in Post itself; a value posted by
	// the handler is delivered after the current batch, keeping FIFO order.
	ctx := context.Background()
	var d *engine.Dispatcher[string]
	d = engine.NewDispatcher(func(ctx context.Context, w *engine.Worker, batch []string) int {
		for _, m := range batch {
			fmt.Println("handle", m)
			if m == "ping" {
				d.Post(ctx, engine.Inline{}, "pong") //nolint:errcheck // Inline never refuses
			}
		}
		return len(batch)
	})
	d.Post(ctx, engine.Inline{}, "ping") //nolint:errcheck
	fmt.Println("posted")
	// Output:
	// handle ping
	// handle pong
	// posted
}
