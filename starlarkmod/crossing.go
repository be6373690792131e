package starlarkmod

import (
	"fmt"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// This file makes sure nothing a task can reach is shared unsafely.
//
// Every value that crosses to another goroutine is frozen, deeply. Freezing
// a *starlark.Function freezes its defaults and the values of the variables
// it captures, but not its module's globals (google/starlark-go#623), and
// freezing does not stop a slot from being re-bound: top-level code can
// re-assign a global, and a function can re-assign a local that a closure
// captured. So, for every function that crosses, we look at what it can
// reach from its source (computed once per file by analyze):
//
//   - the globals it (or any function nested in it) names: their values are
//     prepared in turn (deep-frozen, functions inside followed);
//   - the variables it captures: their values likewise.
//
// Work that can outlive the call that started it (futures, begin with
// _future=True, handlers), and any work started from a task, runs while
// the starting module may still execute. For that "background" work we also
// require every global and captured variable it reads to be bound already
// and bound in one place only, outside any loop, so that nothing will write
// that slot again; otherwise the call is rejected with an error saying
// which name and what to do. Work that blocks the main thread until it is
// done (begin, job.run) needs no such rule: no top-level code runs while it
// does, and functions cannot assign globals.

// progInfo is what analyze learns about one compiled file.
type progInfo struct {
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

	// undecorated is the position of the def whose decorators re-bind the
	// name; while the slot holds that function, the decorators have not
	// run yet.
	undecorated syntax.Position
}

// analyze walks a resolved file.
func analyze(f *syntax.File) *progInfo {
	pi := &progInfo{funcs: map[pos]*funcInfo{}, globals: map[string]binding{}}
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
	pi      *progInfo
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
			// the undecorated function, which prepare treats as unsettled.
			as := s.(*syntax.AssignStmt)
			a.expr(as.RHS, loop)
			id := as.LHS.(*syntax.Ident)
			if b := a.sites[id.Binding.(*resolve.Binding).First]; b != nil {
				b.undecorated = list[i-1].(*syntax.DefStmt).Function.(*resolve.Function).Pos
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

// A preparer makes values safe to hand to another goroutine: it deep-freezes
// them and checks the functions among them (see the comment at the top).
type preparer struct {
	in         *Interpreter
	background bool
	what       string           // the builtin, for error messages
	seen       []starlark.Value // containers and functions visited (a cycle stops here)
	seenSet    map[starlark.Value]bool
	unsettled  bool             // some function reached may still change
	settled    []starlark.Value // functions (and values holding them) to remember as safe if none may
}

// knownSafe reports whether v needs no walk: an immutable scalar, a tuple
// of them, or a value an earlier walk found safe for good.
func (in *Interpreter) knownSafe(v starlark.Value) bool {
	switch v := v.(type) {
	case nil, starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
		return true
	case starlark.Tuple:
		for _, x := range v {
			if !in.knownSafe(x) {
				return false
			}
		}
		return true
	case *starlark.Function, preparable:
		_, ok := in.ready.Load(v)
		return ok
	}
	return false
}

// prepare readies v to cross to another goroutine for the builtin named op.
func (in *Interpreter) prepare(th *starlark.Thread, op string, background bool, vs ...starlark.Value) error {
	return in.prepareValues(op, background || isWorker(th), vs...)
}

// prepareValues is prepare when the calling thread is not known; callers
// without a thread pass background=true.
func (in *Interpreter) prepareValues(op string, background bool, vs ...starlark.Value) error {
	// Most crossings carry numbers, strings and functions already known to
	// be safe: check those without starting a walk.
	quick := true
	for _, v := range vs {
		if !in.knownSafe(v) {
			quick = false
			break
		}
	}
	if quick {
		return nil
	}
	p := preparer{in: in, background: background, what: op}
	for _, v := range vs {
		if err := p.value(v); err != nil {
			return err
		}
	}
	// A function is safe forever once everything it can reach is frozen and
	// bound for good; only then may later crossings skip the walk.
	if !p.unsettled {
		for _, fn := range p.settled {
			in.ready.Store(fn, struct{}{})
		}
	}
	return nil
}

// prepareArgs readies the arguments of a call that will run elsewhere.
func (in *Interpreter) prepareArgs(th *starlark.Thread, op string, background bool, fn starlark.Value, args starlark.Tuple, kwargs []starlark.Tuple) error {
	if err := in.prepare(th, op, background, fn, args); err != nil {
		return err
	}
	for _, kv := range kwargs {
		if err := in.prepare(th, op, background, kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// preparable is implemented by semisync's own values that hold Starlark
// values (decorated functions, for instance) so the walk can reach them.
type preparable interface {
	starlark.Value
	prepareValues(yield func(starlark.Value) error) error
}

// mark records v as visited and reports whether it was new. Most walks
// visit a handful of values, so a slice comes first; a map takes over for
// big ones.
func (p *preparer) mark(v starlark.Value) bool {
	if p.seenSet != nil {
		if p.seenSet[v] {
			return false
		}
		p.seenSet[v] = true
		return true
	}
	for _, x := range p.seen {
		if x == v {
			return false
		}
	}
	p.seen = append(p.seen, v)
	if len(p.seen) > 16 {
		p.seenSet = make(map[starlark.Value]bool, 2*len(p.seen))
		for _, x := range p.seen {
			p.seenSet[x] = true
		}
	}
	return true
}

func (p *preparer) value(v starlark.Value) error {
	switch v := v.(type) {
	case nil, starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
		return nil
	case *starlark.Function:
		return p.function(v)
	case *starlark.List:
		if !p.mark(v) {
			return nil
		}
		for i := 0; i < v.Len(); i++ {
			if err := p.value(v.Index(i)); err != nil {
				return err
			}
		}
	case starlark.Tuple:
		for _, x := range v {
			if err := p.value(x); err != nil {
				return err
			}
		}
	case *starlark.Dict:
		if !p.mark(v) {
			return nil
		}
		for _, kv := range v.Items() {
			if err := p.value(kv[0]); err != nil { // keys may be functions too
				return err
			}
			if err := p.value(kv[1]); err != nil {
				return err
			}
		}
	case *starlark.Set:
		if !p.mark(v) {
			return nil
		}
		for x := range v.Elements() {
			if err := p.value(x); err != nil {
				return err
			}
		}
	case *starlark.Builtin:
		if r := v.Receiver(); r != nil {
			if err := p.value(r); err != nil {
				return err
			}
		}
	case *starlarkstruct.Struct:
		if !p.mark(v) {
			return nil
		}
		for _, name := range v.AttrNames() {
			x, _ := v.Attr(name)
			if err := p.value(x); err != nil {
				return err
			}
		}
	case preparable:
		if _, ok := p.in.ready.Load(v); ok {
			return nil
		}
		if !p.mark(v) {
			return nil
		}
		if err := v.prepareValues(p.value); err != nil {
			return err
		}
		p.settled = append(p.settled, v)
	}
	v.Freeze()
	return nil
}

// function prepares a Starlark function: the globals it names and the
// variables it captures, with the background rule if it applies.
func (p *preparer) function(fn *starlark.Function) error {
	if _, ok := p.in.ready.Load(fn); ok {
		return nil
	}
	if !p.mark(fn) {
		return nil
	}
	settled := true
	pi, _ := p.in.progs.Load(fn.Module().Program())
	info, ok := pi.(*progInfo)
	var fi *funcInfo
	if ok {
		fi = info.funcs[posOf(fn.Position())]
	}
	globals := fn.Globals()
	if fi == nil {
		// Not compiled by this interpreter: freeze everything it could read.
		settled = false
		for _, v := range globals {
			if err := p.value(v); err != nil {
				return err
			}
		}
	} else {
		for _, name := range fi.globals {
			b := info.globals[name]
			v, bound := globals[name]
			if f, ok := v.(*starlark.Function); ok && b.undecorated.IsValid() && posOf(f.Position()) == posOf(b.undecorated) {
				bound = false // its decorators have not run yet
			}
			if !bound || b.rebind {
				settled = false
			}
			if p.background {
				if !bound {
					return fmt.Errorf("%s: %s reads global %s, which is not defined yet; define %s before starting work that runs in the background",
						p.what, describeFunc(fn), name, name)
				}
				if b.rebind {
					return fmt.Errorf("%s: %s reads global %s, which the script may assign again (%s); work running in the background must not read a global that can change: assign it once, outside loops, or pass the value as an argument",
						p.what, describeFunc(fn), name, b.where)
				}
			}
			if bound {
				if err := p.value(v); err != nil {
					return err
				}
			}
		}
		pre := fn.Module().Predeclared()
		for _, name := range fi.predeclared {
			if err := p.value(pre[name]); err != nil {
				return err
			}
		}
		for i := 0; i < fn.NumFreeVars(); i++ {
			b, v := fn.FreeVar(i)
			var fb binding
			if i < len(fi.free) {
				fb = fi.free[i]
			}
			if v == nil || fb.rebind {
				settled = false
			}
			if p.background {
				if fb.rebind {
					return fmt.Errorf("%s: %s uses variable %s of its enclosing function, which assigns it again (%s); pass the value as an argument or assign it only once, outside loops",
						p.what, describeFunc(fn), b.Name, fb.where)
				}
				if v == nil {
					return fmt.Errorf("%s: %s uses variable %s of its enclosing function before it is assigned; assign %s before starting the work",
						p.what, describeFunc(fn), b.Name, b.Name)
				}
			}
			if v != nil {
				if err := p.value(v); err != nil {
					return err
				}
			}
		}
	}
	for i := 0; i < fn.NumParams(); i++ {
		if d := fn.ParamDefault(i); d != nil {
			if err := p.value(d); err != nil {
				return err
			}
		}
	}
	fn.Freeze()
	if settled {
		p.settled = append(p.settled, fn)
	} else {
		p.unsettled = true
	}
	return nil
}

// describeFunc names a function and where it was defined.
func describeFunc(fn *starlark.Function) string {
	return fmt.Sprintf("function %s (%s)", fn.Name(), fn.Position())
}
