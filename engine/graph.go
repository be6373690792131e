package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// A Func is the work of one [Graph] node. It runs on a worker; its value is
// handed to the graph's completion callback.
type Func func(ctx context.Context, w *Worker) (any, error)

// A NodeID names a node of a [Graph]: the value [Graph.Add] or [Graph.Join]
// returned.
type NodeID int

// A Graph is a set of nodes, each a function and the nodes it depends on.
// [Graph.Run] runs every node once, each as soon as all its dependencies
// have completed, all ready nodes at once. A node may depend only on nodes
// added before it, so a Graph has no cycle by construction.
//
// The zero Graph is empty and ready to use. A Graph is not safe for
// concurrent use; build and Run it from one goroutine. A Graph may be run
// once.
type Graph struct {
	nodes []node
	real  int // nodes that are not joins
}

type node struct {
	fn         Func // nil for a join
	waiting    int  // dependencies not yet completed
	dependents []NodeID
	state      nodeState
	err        error  // why it failed
	cause      NodeID // the failed node that made it skip
}

type nodeState uint8

const (
	pending nodeState = iota
	started
	succeeded
	failed
	skipped
)

// Add adds a node that runs fn after every node in deps, and returns its
// id. It panics if fn is nil or a dependency is not an id this graph
// returned: both are mistakes in the calling code.
func (g *Graph) Add(fn Func, deps ...NodeID) NodeID {
	if fn == nil {
		panic("engine: Graph.Add with a nil Func (use Graph.Join)")
	}
	g.real++
	return g.add(fn, deps)
}

// Join adds a join node: it completes as soon as every node in deps has,
// runs nothing, and is never reported to Run's callback nor listed in a
// [GraphError]. Depending on a join is depending on all its deps. It
// panics like [Graph.Add] on a bad dependency.
func (g *Graph) Join(deps ...NodeID) NodeID {
	return g.add(nil, deps)
}

func (g *Graph) add(fn Func, deps []NodeID) NodeID {
	id := NodeID(len(g.nodes))
	for _, d := range deps {
		if d < 0 || d >= id {
			panic(fmt.Sprintf("engine: Graph node %d depends on %d, which is not a node added before it", id, d))
		}
	}
	for _, d := range deps {
		g.nodes[d].dependents = append(g.nodes[d].dependents, id)
	}
	g.nodes = append(g.nodes, node{fn: fn, waiting: len(deps)})
	return id
}

// Grow makes room for n more nodes, so that adding many nodes does not
// repeatedly grow the graph's table.
func (g *Graph) Grow(n int) { g.nodes = slices.Grow(g.nodes, n) }

// Len returns the number of nodes, joins included.
func (g *Graph) Len() int { return len(g.nodes) }

// A GraphError reports the nodes of a [Graph] that failed, were skipped
// because a dependency failed, or never started because the run was
// cancelled. Nodes are listed in the order they were added.
//
// Join nodes are never listed.
type GraphError struct {
	Failed    []NodeError
	Skipped   []NodeSkip
	Cancelled []NodeID
	// Total is the number of nodes in the graph, joins excepted.
	Total int
	// Cause is the context's cause if the run was cancelled.
	Cause error
}

// A NodeError is the error of one failed node.
type NodeError struct {
	ID  NodeID
	Err error
}

// A NodeSkip names a node that did not run and the failed node it depended
// on, directly or through other nodes (never a join).
type NodeSkip struct {
	ID, Because NodeID
}

func (e *GraphError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "engine: %d of %d nodes failed", len(e.Failed), e.Total)
	if len(e.Skipped) > 0 {
		fmt.Fprintf(&b, ", %d skipped", len(e.Skipped))
	}
	if len(e.Cancelled) > 0 {
		fmt.Fprintf(&b, ", %d cancelled", len(e.Cancelled))
	}
	for _, f := range e.Failed {
		fmt.Fprintf(&b, "\nnode %d: %v", f.ID, f.Err)
	}
	for _, s := range e.Skipped {
		fmt.Fprintf(&b, "\nnode %d: skipped: node %d failed", s.ID, s.Because)
	}
	return b.String()
}

// Unwrap returns the cancellation cause and the failed nodes' errors.
func (e *GraphError) Unwrap() []error {
	var errs []error
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	for _, f := range e.Failed {
		errs = append(errs, f.Err)
	}
	return errs
}

type completion struct {
	i   NodeID
	v   any
	err error
}

// Run runs the graph on ex. Every node whose dependencies have completed is
// submitted at once, in the order nodes were added. w is the calling
// goroutine's [Worker] (nil if it has none): Run waits for completions
// through [Recv] with it.
//
// onDone, if not nil, is called with the id and value of each node that
// succeeded (join nodes excepted), one at a time, in completion order, on
// the goroutine that called Run. A non-nil error from onDone counts as the
// node's failure.
//
// When a node fails, every node that depends on it, directly or not, is
// skipped; independent nodes still run. When ctx is done, no node starts;
// running nodes see the cancelled context. Run returns after every started
// node has finished, with a [*GraphError] if anything failed, was skipped or
// was cancelled. A panic in a node is re-raised by Run.
func (g *Graph) Run(ctx context.Context, ex Executor, w *Worker, onDone func(id NodeID, v any) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		mu      sync.Mutex
		done    fifo[completion]
		notify  = make(chan struct{}, 1)
		ready   []NodeID
		running int
		panicV  *PanicError
	)
	push := func(c completion) {
		mu.Lock()
		done.push(c)
		mu.Unlock()
		select {
		case notify <- struct{}{}:
		default:
		}
	}
	for i := range g.nodes {
		if g.nodes[i].waiting == 0 {
			ready = append(ready, NodeID(i))
		}
	}
	// skip marks every pending dependent of i as skipped because of the
	// failed node because; iterative, so a long chain needs no deep stack.
	var stack []NodeID
	skip := func(i, because NodeID) {
		stack = append(stack[:0], i)
		for len(stack) > 0 {
			j := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, d := range g.nodes[j].dependents {
				if n := &g.nodes[d]; n.state == pending {
					n.state, n.cause = skipped, because
					stack = append(stack, d)
				}
			}
		}
	}
	for {
		// Start everything that is ready, unless cancelled.
		for len(ready) > 0 && ctx.Err() == nil {
			i := ready[0]
			ready = ready[1:]
			n := &g.nodes[i]
			n.state = started
			running++
			if n.fn == nil {
				push(completion{i: i})
				continue
			}
			fn := n.fn
			err := ex.Go(ctx, func(ctx context.Context, w *Worker) {
				v, err := catch(func() (any, error) { return fn(ctx, w) })
				push(completion{i, v, err})
			})
			if err != nil {
				push(completion{i: i, err: err})
			}
		}
		if running == 0 {
			break
		}
		if _, _, err := Recv(ctx, w, notify, 0); err != nil {
			// Cancelled: wait for the running nodes to report.
			Recv(context.WithoutCancel(ctx), w, notify, 0) //nolint:errcheck // cannot fail
		}
		mu.Lock()
		batch := done.takeAll()
		mu.Unlock()
		for c, ok := batch.pop(); ok; c, ok = batch.pop() {
			running--
			n := &g.nodes[c.i]
			err := c.err
			if p, ok := err.(*PanicError); ok {
				if panicV == nil {
					panicV = p
				}
				cancel(p)
			}
			if err == nil && n.fn != nil && onDone != nil && panicV == nil {
				err = onDone(c.i, c.v)
			}
			if err != nil {
				n.state, n.err = failed, err
				skip(c.i, c.i)
				continue
			}
			n.state = succeeded
			for _, d := range n.dependents {
				dn := &g.nodes[d]
				if dn.waiting--; dn.waiting == 0 && dn.state == pending {
					ready = append(ready, d)
				}
			}
		}
	}
	if panicV != nil {
		panic(panicV)
	}
	return g.result(ctx)
}

// result summarises the finished run.
func (g *Graph) result(ctx context.Context) error {
	e := &GraphError{Total: g.real}
	for i := range g.nodes {
		n := &g.nodes[i]
		if n.fn == nil {
			continue // joins are never listed
		}
		id := NodeID(i)
		switch n.state {
		case failed:
			e.Failed = append(e.Failed, NodeError{id, n.err})
		case skipped:
			e.Skipped = append(e.Skipped, NodeSkip{id, n.cause})
		case pending:
			e.Cancelled = append(e.Cancelled, id)
		}
	}
	if len(e.Failed)+len(e.Skipped)+len(e.Cancelled) == 0 {
		return nil
	}
	if len(e.Cancelled) > 0 {
		e.Cause = context.Cause(ctx)
	}
	return e
}
