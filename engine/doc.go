// Package engine is semisync's concurrency core, in plain Go.
//
// It knows nothing of Starlark and imports only the standard library.
//
//   - A [Pool] keeps long-lived worker goroutines, each carrying worker-local
//     values ([Local]; semisync stores a *starlark.Thread there), and hands
//     tasks to them, in parallel or, with [PoolOptions.Serial], one at a
//     time in a deterministic order (sequential mode: the same tasks on the
//     same goroutines).
//   - A [Future] is the result of one task; a [Promise] is a future its
//     owner resolves.
//   - A [Graph] runs functions whose dependencies are other functions in
//     the graph, every ready one at once.
//   - A [Mapper] maps a function over a lazy sequence of items on a fixed
//     number of workers, in order, with per-item timeouts.
//   - A [Stream] hands items from a producer to a consumer with
//     backpressure; a [Dispatcher] delivers posted values in order, off the
//     poster's goroutine, through an unbounded queue.
//
// Use a Pool when you want to run many small tasks without paying for a new
// goroutine (and a new stack) per task; a Graph when some calls must wait for
// others; a Future when the caller goes on and collects a result later; a
// Mapper for a parallel map; a Stream or Dispatcher to connect producers and
// consumers.
//
// Every blocking call takes a [context.Context] and returns when it is done,
// and the calling goroutine's [*Worker] (nil if it has none): it waits
// through [Recv] (or [Worker.Sleep]), the one wait of the package. That is
// where a parallel pool stops counting a worker as runnable (waiting is not
// bounded by the pool's limit) and where a serial pool hands on its baton.
// A panic in a task is caught and re-raised, with the task's stack, in the
// goroutine that waits for it ([Future.Result], [Graph.Run]).
package engine
