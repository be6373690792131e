package repl

import (
	"context"
	"sort"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/semisync/semisync/starlarkmod"
)

// How an entry runs: it is parsed in semisync's dialect with load binding
// globally, rewritten so that a trailing expression's value can be shown
// (and bound to "_") and so that it may re-bind an earlier entry's global
// from its old value, then run through starlarkmod's hook
// ([starlarkmod.Run.ExecSyntax]) with the earlier entries' globals visible
// as predeclared names.

// chunkOptions are the dialect's options for entries: as in files, but
// load binds its names as globals so that they stay visible to later
// entries (as in go.starlark.net's REPL, google/starlark-go#224).
var chunkOptions = func() *syntax.FileOptions {
	o := starlarkmod.FileOptions()
	o.LoadBindsGlobally = true
	return o
}()

// hiddenValue is the global a trailing expression statement is bound to.
const hiddenValue = "__semisync_value__"

// execChunk runs src, one entry, on th with ctx as its context. Names bound
// by earlier entries (globals) are visible to it as predeclared names; the
// result holds globals updated with the entry's own bindings. If the
// entry's last statement is an expression (other than a call that returns
// None), its value is returned as val and bound to "_". Decorators work as
// in files.
func execChunk(ctx context.Context, run *starlarkmod.Run, th *starlark.Thread, filename string, src []byte, globals starlark.StringDict) (result starlark.StringDict, val starlark.Value, err error) {
	f, err := starlarkmod.Parse(chunkOptions, filename, src)
	if err != nil {
		return globals, nil, err
	}
	// Bind a trailing expression statement to a hidden global, keeping its
	// position, so its value can be shown.
	if n := len(f.Stmts); n > 0 {
		if es, ok := f.Stmts[n-1].(*syntax.ExprStmt); ok {
			start, _ := es.X.Span()
			f.Stmts[n-1] = &syntax.AssignStmt{
				OpPos: start,
				Op:    syntax.EQ,
				LHS:   &syntax.Ident{NamePos: start, Name: hiddenValue},
				RHS:   es.X,
			}
		}
	}
	pre := run.Predeclared()
	env := make(starlark.StringDict, len(globals)+len(pre))
	for k, v := range pre {
		env[k] = v
	}
	for k, v := range globals {
		env[k] = v
	}
	seedRebound(f, globals, env) // x += 1 of an earlier entry's x
	g, err := run.ExecSyntax(ctx, th, f, env)
	result = make(starlark.StringDict, len(globals)+len(g))
	for k, v := range globals {
		result[k] = v
	}
	for k, v := range g {
		if k != hiddenValue {
			result[k] = v
		}
	}
	if v, ok := g[hiddenValue]; ok && err == nil && v != starlark.None {
		val = v
		result["_"] = v
	}
	return result, val, err
}

// seedRebound lets a REPL entry re-bind, from its old value, a name that an
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
