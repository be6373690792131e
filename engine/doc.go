// Package engine is semisync's concurrency core, in plain Go.
//
// It knows nothing of Starlark. A [Pool] keeps long-lived worker goroutines,
// each carrying a per-worker value (semisync stores a *starlark.Thread there),
// and hands tasks to them; a [Future] is the result of one task; a [Graph]
// runs functions whose dependencies are other functions in the graph.
//
// Use a Pool when you want to run many small tasks without paying for a new
// goroutine (and a new stack) per task; a Graph when some calls must wait for
// others; a Future when the caller goes on and collects a result later.
//
// Every blocking call takes a [context.Context] and returns when it is done.
// A panic in a task is caught and re-raised, with the task's stack, in the
// goroutine that waits for it ([Future.Result], [Graph.Run]).
package engine
