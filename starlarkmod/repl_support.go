package starlarkmod

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/semisync/semisync/engine"
	"github.com/semisync/semisync/starlarkmod/internal/decorator"
)

// What the REPL (package repl) needs beyond ExecFile: running a chunk under
// its own context, knowing when a chunk's text is unfinished, and a task
// record for each semisync.begin batch (listed by :tasks).

// chunkOptions are the dialect's options for REPL chunks: as in files, but
// load binds its names as globals so that they stay visible to later
// chunks (as in go.starlark.net's REPL, google/starlark-go#224).
var chunkOptions = func() *syntax.FileOptions {
	o := *fileOptions
	o.LoadBindsGlobally = true
	return &o
}()

// ExecChunkContext is [Interpreter.ExecChunk] with ctx as the chunk's
// context: cancelling ctx while the chunk runs cancels its Starlark code
// (busy loops included) and its blocking builtins, and the work the chunk
// starts in the background (futures, begin(_future=True)) runs under ctx,
// so it keeps running after the chunk returns until ctx is cancelled.
// th must belong to the calling goroutine; its previous context and
// cancellation state are restored when the chunk ends.
func (rn *Run) ExecChunkContext(ctx context.Context, th *starlark.Thread, filename string, src []byte, globals starlark.StringDict) (starlark.StringDict, starlark.Value, error) {
	type result struct {
		globals starlark.StringDict
		val     starlark.Value
	}
	r, err := withContext(ctx, th, func() (result, error) {
		g, v, err := rn.ExecChunk(th, filename, src, globals)
		return result{g, v}, err
	})
	return r.globals, r.val, err
}

// ChunkIncomplete reports whether src, the text of a REPL entry so far,
// ends inside brackets, inside a string literal or after a backslash line
// continuation: the entry cannot end at the next line break.
func ChunkIncomplete(src []byte) bool { return decorator.Incomplete(src) }

// run runs the batch like runGraph and records it as one task of kind
// "semisync" (one record per begin, not per call, so the record costs
// nothing per call), listed by [Interpreter.Tasks] and the REPL's :tasks.
func (r *beginRun) run(ctx context.Context, th *starlark.Thread, ex engine.Executor) error {
	if len(r.batch) == 0 {
		return r.runGraph(ctx, th, ex)
	}
	rec := r.rn.record("semisync", r.describe())
	err := r.runGraph(ctx, th, ex)
	rec.finish(err)
	return err
}

// describe names a batch for its task record, e.g.
// `begin at <stdin#4>:1:15: 3 calls: fetch("a"), fetch("b"), report()`.
func (r *beginRun) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "begin at %s: ", r.where)
	if len(r.batch) == 1 {
		b.WriteString("1 call: ")
	} else {
		fmt.Fprintf(&b, "%d calls: ", len(r.batch))
	}
	const maxShown = 3
	for i, c := range r.batch {
		if i == maxShown {
			fmt.Fprintf(&b, ", ... (%d more)", len(r.batch)-maxShown)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s(%s)", c.fn.name, shortArgs(c.args, c.kwargs))
	}
	return b.String()
}

// seedRebound lets a REPL chunk re-bind, from its old value, a name that an
// earlier chunk bound, as in `x += 1` or `x = x + 1`. Each chunk is its
// own module and sees earlier chunks' globals as predeclared names, so a
// name the chunk binds is a new global of the chunk, unbound until
// assigned: reading it first fails ("referenced before assignment").
// For each name that the chunk binds at top level, reads at top level
// (outside function bodies) and an earlier chunk bound, seedRebound
// prepends `name = __semisync_prev_name__` to the chunk and predeclares
// the hidden name with the old value in env. Earlier chunks' slots are
// never written. A name seeded this way counts as bound twice, which is
// true of what the chunk does: background work may not read it (see
// crossing.go), as in a file that binds it twice.
func seedRebound(f *syntax.File, globals, env starlark.StringDict) {
	if len(f.Stmts) == 0 || len(globals) == 0 {
		return
	}
	bound := map[string]bool{}
	read := map[string]bool{}
	var bindLHS func(e syntax.Expr)
	bindLHS = func(e syntax.Expr) {
		switch e := e.(type) {
		case *syntax.Ident:
			bound[e.Name] = true
		case *syntax.TupleExpr:
			for _, x := range e.List {
				bindLHS(x)
			}
		case *syntax.ListExpr:
			for _, x := range e.List {
				bindLHS(x)
			}
		case *syntax.ParenExpr:
			bindLHS(e.X)
		default: // a[i] = ..., a.b = ...: reads
			reads(e, read)
		}
	}
	var stmts func(list []syntax.Stmt)
	stmts = func(list []syntax.Stmt) {
		for _, s := range list {
			switch s := s.(type) {
			case *syntax.AssignStmt:
				reads(s.RHS, read)
				if s.Op != syntax.EQ {
					reads(s.LHS, read)
				}
				bindLHS(s.LHS)
			case *syntax.DefStmt:
				bound[s.Name.Name] = true
				for _, p := range s.Params { // defaults are evaluated here
					if b, ok := p.(*syntax.BinaryExpr); ok {
						reads(b.Y, read)
					}
				}
			case *syntax.ForStmt:
				reads(s.X, read)
				bindLHS(s.Vars)
				stmts(s.Body)
			case *syntax.WhileStmt:
				reads(s.Cond, read)
				stmts(s.Body)
			case *syntax.IfStmt:
				reads(s.Cond, read)
				stmts(s.True)
				stmts(s.False)
			case *syntax.ExprStmt:
				reads(s.X, read)
			case *syntax.LoadStmt:
				for _, id := range s.To {
					bound[id.Name] = true
				}
			}
		}
	}
	stmts(f.Stmts)

	var names []string
	for name := range bound {
		if _, ok := globals[name]; ok && read[name] {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	start, _ := f.Stmts[0].Span()
	prelude := make([]syntax.Stmt, 0, len(names)+len(f.Stmts))
	for _, name := range names {
		hidden := "__semisync_prev_" + name + "__"
		env[hidden] = globals[name]
		prelude = append(prelude, &syntax.AssignStmt{
			OpPos: start,
			Op:    syntax.EQ,
			LHS:   &syntax.Ident{NamePos: start, Name: name},
			RHS:   &syntax.Ident{NamePos: start, Name: hidden},
		})
	}
	f.Stmts = append(prelude, f.Stmts...)
}

// reads adds to read the names e mentions, outside lambda bodies.
func reads(e syntax.Expr, read map[string]bool) {
	syntax.Walk(e, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Ident:
			read[n.Name] = true
		case *syntax.LambdaExpr:
			return false
		}
		return true
	})
}
