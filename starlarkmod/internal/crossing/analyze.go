package crossing

import (
	"go.starlark.net/resolve"
	"go.starlark.net/syntax"
)

// Info is what [Analyze] learns about one resolved file: for each function
// (def or lambda) the names it reads, and how each variable is bound. It is
// immutable and safe for concurrent use.
type Info struct {
	funcs   map[pos]*funcInfo  // by the position of def or lambda
	globals map[string]binding // by global name
}

type pos struct{ line, col int32 }

func posOf(p syntax.Position) pos { return pos{p.Line, p.Col} }

// funcInfo lists what a function can reach by name.
type funcInfo struct {
	globals     []string  // global names used by the function or its nested functions
	predeclared []string  // likewise, predeclared names (a REPL's earlier globals are predeclared)
	free        []binding // per free variable, in FreeVars order
}

// binding summarises how a variable is bound in its scope.
type binding struct {
	name   string
	sites  int             // number of binding occurrences
	rebind bool            // bound in a loop, by augmented assignment, or more than once
	where  syntax.Position // the last binding occurrence

	// decoratedEnd, if valid, is where the def whose decorators re-bind
	// the name ends: once the top level of its module has run past it (or
	// the module has finished), the decorators have run and the slot holds
	// its final value. Until then it holds the undecorated function, or
	// whatever a decorator returned before the others ran.
	decoratedEnd syntax.Position
}

// Analyze walks f, a file resolved by go.starlark.net/resolve (as
// starlark.FileProgram does), and returns what crossing needs to know about
// it. Its cost is linear in the size of f.
func Analyze(f *syntax.File) *Info {
	pi := &Info{funcs: map[pos]*funcInfo{}, globals: map[string]binding{}}
	a := &analyzer{pi: pi, sites: map[*syntax.Ident]*binding{}}
	a.stmts(f.Stmts, 0)
	for first, b := range a.sites {
		if first.Binding.(*resolve.Binding).Scope == resolve.Global {
			pi.globals[first.Name] = *b
		}
	}
	// Now that every binding site is counted, fill in free variables.
	for _, fi := range a.pending {
		for _, fb := range fi.fn.FreeVars {
			b := a.sites[fb.First]
			if b == nil {
				b = &binding{name: fb.First.Name}
			}
			fi.info.free = append(fi.info.free, *b)
		}
	}
	return pi
}

type analyzer struct {
	pi      *Info
	sites   map[*syntax.Ident]*binding // by the variable's first binding ident
	pending []pendingFunc
	stack   []*funcInfo // enclosing functions
}

type pendingFunc struct {
	fn   *resolve.Function
	info *funcInfo
}

// bind records a binding occurrence of id; loop is the loop depth within
// id's own function (or top level).
func (a *analyzer) bind(id *syntax.Ident, loop int, aug bool) {
	rb, ok := id.Binding.(*resolve.Binding)
	if !ok || rb.First == nil {
		return
	}
	b := a.sites[rb.First]
	if b == nil {
		b = &binding{name: id.Name}
		a.sites[rb.First] = b
	}
	b.sites++
	b.where = id.NamePos
	if loop > 0 || aug || b.sites > 1 {
		b.rebind = true
	}
}

func (a *analyzer) bindLHS(e syntax.Expr, loop int, aug bool) {
	switch e := e.(type) {
	case *syntax.Ident:
		a.bind(e, loop, aug)
	case *syntax.TupleExpr:
		for _, x := range e.List {
			a.bindLHS(x, loop, aug)
		}
	case *syntax.ListExpr:
		for _, x := range e.List {
			a.bindLHS(x, loop, aug)
		}
	case *syntax.ParenExpr:
		a.bindLHS(e.X, loop, aug)
	default:
		a.expr(e, loop) // a[i] = v, a.f = v: uses, not bindings
	}
}

func (a *analyzer) stmts(list []syntax.Stmt, loop int) {
	for i, s := range list {
		if i > 0 && decorates(list[i-1], s) {
			// f = dec(f) right after def f (what a decorator becomes) completes
			// the def's binding rather than re-binding f: nothing runs in
			// between but the decorator. Until it has run, the slot still holds
			// the undecorated function, which the walk treats as unbound.
			as := s.(*syntax.AssignStmt)
			a.expr(as.RHS, loop)
			id := as.LHS.(*syntax.Ident)
			if b := a.sites[id.Binding.(*resolve.Binding).First]; b != nil {
				_, b.decoratedEnd = list[i-1].Span()
			}
			continue
		}
		a.stmt(s, loop)
	}
}

// decorates reports whether s assigns to the name that prev, a def, bound.
func decorates(prev, s syntax.Stmt) bool {
	def, ok := prev.(*syntax.DefStmt)
	if !ok {
		return false
	}
	as, ok := s.(*syntax.AssignStmt)
	if !ok || as.Op != syntax.EQ {
		return false
	}
	id, ok := as.LHS.(*syntax.Ident)
	return ok && id.Name == def.Name.Name
}

func (a *analyzer) stmt(s syntax.Stmt, loop int) {
	switch s := s.(type) {
	case *syntax.AssignStmt:
		a.expr(s.RHS, loop)
		aug := s.Op != syntax.EQ
		if aug {
			a.expr(s.LHS, loop)
		}
		a.bindLHS(s.LHS, loop, aug)
	case *syntax.DefStmt:
		a.function(s.Function.(*resolve.Function), loop)
		a.bind(s.Name, loop, false)
	case *syntax.ExprStmt:
		a.expr(s.X, loop)
	case *syntax.IfStmt:
		a.expr(s.Cond, loop)
		a.stmts(s.True, loop)
		a.stmts(s.False, loop)
	case *syntax.ForStmt:
		a.expr(s.X, loop)
		a.bindLHS(s.Vars, loop+1, false)
		a.stmts(s.Body, loop+1)
	case *syntax.WhileStmt:
		a.expr(s.Cond, loop+1)
		a.stmts(s.Body, loop+1)
	case *syntax.LoadStmt:
		for _, id := range s.To {
			a.bind(id, loop, false)
		}
	case *syntax.ReturnStmt:
		if s.Result != nil {
			a.expr(s.Result, loop)
		}
	}
}

// function analyzes a def or lambda. Parameters are bound once at entry;
// defaults are evaluated in the enclosing scope.
func (a *analyzer) function(fn *resolve.Function, loop int) {
	for _, p := range fn.Params {
		switch p := p.(type) {
		case *syntax.BinaryExpr: // name=default
			a.expr(p.Y, loop)
			a.bindLHS(p.X, 0, false)
		case *syntax.UnaryExpr: // *args, **kwargs
			if p.X != nil {
				a.bindLHS(p.X, 0, false)
			}
		case *syntax.Ident:
			a.bind(p, 0, false)
		}
	}
	info := &funcInfo{}
	a.pi.funcs[posOf(fn.Pos)] = info
	a.pending = append(a.pending, pendingFunc{fn, info})
	a.stack = append(a.stack, info)
	a.stmts(fn.Body, 0)
	a.stack = a.stack[:len(a.stack)-1]
}

// use records a use of a global by every enclosing function.
func (a *analyzer) use(id *syntax.Ident) {
	rb, ok := id.Binding.(*resolve.Binding)
	if !ok {
		return
	}
	for _, fi := range a.stack {
		switch rb.Scope {
		case resolve.Global:
			if !contains(fi.globals, id.Name) {
				fi.globals = append(fi.globals, id.Name)
			}
		case resolve.Predeclared:
			if !contains(fi.predeclared, id.Name) {
				fi.predeclared = append(fi.predeclared, id.Name)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (a *analyzer) expr(e syntax.Expr, loop int) {
	syntax.Walk(e, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Ident:
			a.use(n)
		case *syntax.LambdaExpr:
			a.function(n.Function.(*resolve.Function), loop)
			return false
		case *syntax.Comprehension:
			// Comprehension variables are re-bound on every iteration.
			for _, c := range n.Clauses {
				switch c := c.(type) {
				case *syntax.ForClause:
					a.expr(c.X, loop)
					a.bindLHS(c.Vars, loop+1, false)
				case *syntax.IfClause:
					a.expr(c.Cond, loop+1)
				}
			}
			a.expr(n.Body, loop+1)
			return false
		}
		return true
	})
}
