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

// A Graph is a set of named nodes, each a function and the names of the nodes
// it depends on. [Graph.Run] runs every node once, each as soon as all its
// dependencies have completed, all ready nodes at once.
//
// The zero Graph is empty and ready to use. A Graph is not safe for
// concurrent use; Run it from one goroutine. A Graph may be run once.
type Graph struct {
	nodes []*node
	index map[string]int
}

type node struct {
	name       string
	fn         Func
	deps       []string
	waiting    int   // dependencies not yet completed
	dependents []int // indexes of nodes that depend on this one
	state      nodeState
	err        error  // why it failed
	cause      string // the failed node that made it skip
}

type nodeState uint8

const (
	pending nodeState = iota
	started
	succeeded
	failed
	skipped
)

// Add adds a node named name that runs fn after every node named in deps.
// The dependencies need not exist yet; Run checks them. A nil fn makes a
// join node: it completes as soon as its dependencies do, without running
// anything, and is not reported to the completion callback. Add fails if the
// name is already taken.
func (g *Graph) Add(name string, fn Func, deps ...string) error {
	if g.index == nil {
		g.index = make(map[string]int)
	}
	if _, ok := g.index[name]; ok {
		return fmt.Errorf("engine: duplicate node %q", name)
	}
	g.index[name] = len(g.nodes)
	g.nodes = append(g.nodes, &node{name: name, fn: fn, deps: deps})
	return nil
}

// Grow makes room for n more nodes, so that adding many nodes does not
// repeatedly grow the graph's tables.
func (g *Graph) Grow(n int) {
	if g.index == nil {
		g.index = make(map[string]int, n)
	}
	g.nodes = slices.Grow(g.nodes, n)
}

// Len returns the number of nodes.
func (g *Graph) Len() int { return len(g.nodes) }

// Validate checks that every dependency names a node and that there is no
// cycle. Run calls it first.
func (g *Graph) Validate() error {
	for _, n := range g.nodes {
		n.dependents = n.dependents[:0]
	}
	for i, n := range g.nodes {
		n.waiting = 0
		for _, d := range n.deps {
			j, ok := g.index[d]
			if !ok {
				return fmt.Errorf("engine: node %q depends on unknown node %q", n.name, d)
			}
			g.nodes[j].dependents = append(g.nodes[j].dependents, i)
			n.waiting++
		}
	}
	// Kahn's algorithm: whatever is never freed is on or behind a cycle.
	waiting := make([]int, len(g.nodes))
	var ready []int
	for i, n := range g.nodes {
		waiting[i] = n.waiting
		if n.waiting == 0 {
			ready = append(ready, i)
		}
	}
	seen := 0
	for len(ready) > 0 {
		i := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		seen++
		for _, d := range g.nodes[i].dependents {
			if waiting[d]--; waiting[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	if seen < len(g.nodes) {
		return fmt.Errorf("engine: dependency cycle: %s", g.cycle(waiting))
	}
	return nil
}

// cycle finds one cycle among the nodes left waiting by Kahn's algorithm
// and returns it as "a -> b -> a".
func (g *Graph) cycle(waiting []int) string {
	start := -1
	for i, w := range waiting {
		if w > 0 {
			start = i
			break
		}
	}
	// Walk dependencies that are still waiting until a node repeats.
	pos := map[int]int{}
	var path []int
	for i := start; ; {
		if p, ok := pos[i]; ok {
			path = append(path[p:], i)
			break
		}
		pos[i] = len(path)
		path = append(path, i)
		for _, d := range g.nodes[i].deps {
			if j := g.index[d]; waiting[j] > 0 {
				i = j
				break
			}
		}
	}
	names := make([]string, len(path))
	for k, i := range path {
		names[k] = g.nodes[i].name
	}
	return strings.Join(names, " -> ")
}

// A GraphError reports the nodes of a [Graph] that failed, were skipped
// because a dependency failed, or never started because the run was
// cancelled. Nodes are listed in the order they were added.
type GraphError struct {
	Failed    []NodeError
	Skipped   []NodeSkip
	Cancelled []string
	Total     int
	// Cause is the context's cause if the run was cancelled.
	Cause error
}

// A NodeError is the error of one failed node.
type NodeError struct {
	Name string
	Err  error
}

// A NodeSkip names a node that did not run and the failed node it depended on.
type NodeSkip struct {
	Name, Because string
}

func (e *GraphError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d failed", len(e.Failed), e.Total)
	if len(e.Skipped) > 0 {
		fmt.Fprintf(&b, ", %d skipped", len(e.Skipped))
	}
	if len(e.Cancelled) > 0 {
		fmt.Fprintf(&b, ", %d cancelled", len(e.Cancelled))
	}
	for _, f := range e.Failed {
		fmt.Fprintf(&b, "\n%s: %v", f.Name, f.Err)
	}
	for _, s := range e.Skipped {
		fmt.Fprintf(&b, "\n%s: skipped: %s failed", s.Name, s.Because)
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
	i   int
	v   any
	err error
}

// Run validates the graph and runs it on ex. Every node whose dependencies
// have completed is submitted at once, in the order nodes were added.
//
// onDone, if not nil, is called with the value of each node that succeeded
// (join nodes excepted), one at a time, in completion order, on the
// goroutine that called Run. A non-nil error from onDone counts as the
// node's failure.
//
// When a node fails, every node that depends on it, directly or not, is
// skipped; independent nodes still run. When ctx is done, no node starts;
// running nodes see the cancelled context. Run returns after every started
// node has finished, with a [*GraphError] if anything failed, was skipped or
// was cancelled. A panic in a node is re-raised by Run.
func (g *Graph) Run(ctx context.Context, ex Executor, onDone func(name string, v any) error) error {
	if err := g.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		mu      sync.Mutex
		done    fifo[completion]
		notify  = make(chan struct{}, 1)
		ready   []int
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
	for i, n := range g.nodes {
		if n.waiting == 0 {
			ready = append(ready, i)
		}
	}
	var skip func(i int, because string)
	skip = func(i int, because string) {
		for _, d := range g.nodes[i].dependents {
			if n := g.nodes[d]; n.state == pending {
				n.state, n.cause = skipped, because
				skip(d, because)
			}
		}
	}
	for {
		// Start everything that is ready, unless cancelled.
		for len(ready) > 0 && ctx.Err() == nil {
			i := ready[0]
			ready = ready[1:]
			n := g.nodes[i]
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
		select {
		case <-notify:
		case <-ctx.Done():
			<-notify // wait for the running nodes to report
		}
		mu.Lock()
		batch := done.takeAll()
		mu.Unlock()
		for c, ok := batch.pop(); ok; c, ok = batch.pop() {
			running--
			n := g.nodes[c.i]
			err := c.err
			if p, ok := err.(*PanicError); ok {
				if panicV == nil {
					panicV = p
				}
				cancel(p)
			}
			if err == nil && n.fn != nil && onDone != nil && panicV == nil {
				err = onDone(n.name, c.v)
			}
			if err != nil {
				n.state, n.err = failed, err
				skip(c.i, n.name)
				continue
			}
			n.state = succeeded
			for _, d := range n.dependents {
				dn := g.nodes[d]
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
	e := &GraphError{Total: len(g.nodes)}
	for _, n := range g.nodes {
		switch n.state {
		case failed:
			e.Failed = append(e.Failed, NodeError{n.name, n.err})
		case skipped:
			e.Skipped = append(e.Skipped, NodeSkip{n.name, n.cause})
		case pending:
			e.Cancelled = append(e.Cancelled, n.name)
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
