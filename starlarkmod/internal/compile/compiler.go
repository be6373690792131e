package compile

import (
	"errors"
	"math/big"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

type ctl uint8

const (
	ctlNext ctl = iota
	ctlBreak
	ctlContinue
	ctlReturn
)

type (
	stmtFn   func(fr *frame) (ctl, error)
	exprFn   func(fr *frame) (starlark.Value, error)
	condFn   func(fr *frame) (bool, error)
	assignFn func(fr *frame, v starlark.Value) error
)

// errUnsupported marks a construct left to the VM.
var errUnsupported = errors.New("unsupported")

// fcomp compiles one function. It follows go.starlark.net's compiler
// (internal/compile) in the order it emits instructions and sets
// positions: an instruction takes the position last set, if no
// instruction took it yet, and an operation that fails is reported at
// the position of the last instruction that took one. Mirroring that
// makes errors name the VM's line and column.
type fcomp struct {
	code       *code
	pending    syntax.Position
	hasPending bool
	cur        int32 // index in code.pos of the last position taken
	emitted    bool
	err        error
}

func compileFunc(c *Compiler, f *resolve.Function) (cd *code) {
	cd = &code{
		comp:    c,
		name:    f.Name,
		nlocals: len(f.Locals),
		nkwonly: f.NumKwonlyParams,
		varargs: f.HasVarargs,
		kwargs:  f.HasKwargs,
	}
	for _, b := range f.Locals {
		if b.Scope == resolve.Cell {
			return nil // a nested function captures a local: the VM makes closures
		}
		cd.localNames = append(cd.localNames, b.First.Name)
	}
	cd.nparams = len(f.Params)
	if f.NumKwonlyParams > 0 && !f.HasVarargs {
		cd.nparams--
	}
	for _, p := range f.Params {
		if u, ok := p.(*syntax.UnaryExpr); ok && (u.Op == syntax.STAR || u.Op == syntax.STARSTAR) {
			break
		}
		if _, ok := p.(*syntax.BinaryExpr); ok {
			cd.atMost = true
		}
	}
	cd.positional = !cd.varargs && !cd.kwargs && cd.nkwonly == 0
	fc := &fcomp{code: cd}
	fc.setPos(f.Pos)
	body := fc.stmts(f.Body)
	fc.emit() // NONE; RETURN
	if fc.err != nil {
		return nil
	}
	cd.body = body
	return cd
}

func (fc *fcomp) unsupported() { fc.err = errUnsupported }

func (fc *fcomp) setPos(p syntax.Position) { fc.pending, fc.hasPending = p, true }

// emit accounts for one VM instruction.
func (fc *fcomp) emit() {
	if fc.hasPending {
		fc.code.pos = append(fc.code.pos, fc.pending)
		fc.cur = int32(len(fc.code.pos) - 1)
		fc.hasPending = false
	}
	if !fc.emitted {
		fc.emitted = true
		fc.code.entry = fc.cur
	}
}

// at is the position of the instruction just emitted.
func (fc *fcomp) at() int32 { return fc.cur }

// extraPos records a position for cancellation reports only, without
// disturbing the VM's position bookkeeping.
func (fc *fcomp) extraPos(p syntax.Position) int32 {
	fc.code.pos = append(fc.code.pos, p)
	return int32(len(fc.code.pos) - 1)
}

// weight estimates how many VM instructions a node compiles to.
func weight(nodes ...syntax.Node) uint64 {
	var n uint64
	for _, node := range nodes {
		if node == nil {
			continue
		}
		syntax.Walk(node, func(syntax.Node) bool { n++; return true })
	}
	return n
}

// ---- statements ----

func (fc *fcomp) stmts(list []syntax.Stmt) stmtFn {
	var fns []stmtFn
	var w uint64
	for _, s := range list {
		if f := fc.stmt(s); f != nil {
			fns = append(fns, f)
		}
		w += stmtWeight(s)
	}
	switch len(fns) {
	case 0:
		return func(fr *frame) (ctl, error) { fr.th.Steps += w; return ctlNext, nil }
	case 1:
		f := fns[0]
		return func(fr *frame) (ctl, error) { fr.th.Steps += w; return f(fr) }
	case 2:
		f, g := fns[0], fns[1]
		return func(fr *frame) (ctl, error) {
			fr.th.Steps += w
			if c, err := f(fr); c != ctlNext || err != nil {
				return c, err
			}
			return g(fr)
		}
	}
	return func(fr *frame) (ctl, error) {
		fr.th.Steps += w
		for _, f := range fns {
			if c, err := f(fr); c != ctlNext || err != nil {
				return c, err
			}
		}
		return ctlNext, nil
	}
}

// stmtWeight is the weight of a statement, not counting nested bodies
// (loop bodies count at each iteration).
func stmtWeight(s syntax.Stmt) uint64 {
	switch s := s.(type) {
	case *syntax.IfStmt:
		return weight(s.Cond) + 1
	case *syntax.ForStmt:
		return weight(s.X) + 2
	case *syntax.WhileStmt:
		return 1
	case *syntax.DefStmt:
		return 1
	}
	return weight(s) + 1
}

func (fc *fcomp) stmt(s syntax.Stmt) stmtFn {
	switch s := s.(type) {
	case *syntax.ExprStmt:
		if _, ok := s.X.(*syntax.Literal); ok {
			return nil // doc comment
		}
		x := fc.expr(s.X)
		fc.emit() // POP
		return func(fr *frame) (ctl, error) {
			_, err := x(fr)
			return ctlNext, err
		}

	case *syntax.BranchStmt:
		switch s.Token {
		case syntax.BREAK:
			return func(*frame) (ctl, error) { return ctlBreak, nil }
		case syntax.CONTINUE:
			return func(*frame) (ctl, error) { return ctlContinue, nil }
		}
		return nil // pass

	case *syntax.IfStmt:
		cond := fc.cond(s.Cond)
		t := fc.stmts(s.True)
		if len(s.False) == 0 {
			return func(fr *frame) (ctl, error) {
				ok, err := cond(fr)
				if err != nil || !ok {
					return ctlNext, err
				}
				return t(fr)
			}
		}
		f := fc.stmts(s.False)
		return func(fr *frame) (ctl, error) {
			ok, err := cond(fr)
			if err != nil {
				return ctlNext, err
			}
			if ok {
				return t(fr)
			}
			return f(fr)
		}

	case *syntax.AssignStmt:
		if s.Op == syntax.EQ {
			return fc.assignStmt(s)
		}
		return fc.augmented(s)

	case *syntax.ForStmt:
		return fc.forStmt(s)

	case *syntax.WhileStmt:
		k := fc.extraPos(s.While)
		cond := fc.cond(s.Cond)
		body := fc.stmts(s.Body)
		w := weight(s.Cond) + 1
		return func(fr *frame) (ctl, error) {
			for {
				if err := fr.tick(w, k); err != nil {
					return ctlNext, err
				}
				ok, err := cond(fr)
				if err != nil {
					return ctlNext, err
				}
				if !ok {
					return ctlNext, nil
				}
				c, err := body(fr)
				if err != nil {
					return ctlNext, err
				}
				switch c {
				case ctlBreak:
					return ctlNext, nil
				case ctlReturn:
					return c, nil
				}
			}
		}

	case *syntax.ReturnStmt:
		if s.Result == nil {
			fc.emit() // NONE
			fc.emit() // RETURN
			return func(fr *frame) (ctl, error) { fr.result = starlark.None; return ctlReturn, nil }
		}
		x := fc.expr(s.Result)
		fc.emit() // RETURN
		return func(fr *frame) (ctl, error) {
			v, err := x(fr)
			fr.result = v
			return ctlReturn, err
		}
	}
	// def (makes a closure), load (top level only)
	fc.unsupported()
	return nil
}

func (fc *fcomp) assignStmt(s *syntax.AssignStmt) stmtFn {
	rhs := fc.expr(s.RHS)
	if id, ok := unparen(s.LHS).(*syntax.Ident); ok {
		if b, ok := id.Binding.(*resolve.Binding); ok && b.Scope == resolve.Local {
			fc.emit() // SETLOCAL
			i := b.Index
			return func(fr *frame) (ctl, error) {
				v, err := rhs(fr)
				if err != nil {
					return ctlNext, err
				}
				fr.locals[i] = v
				return ctlNext, nil
			}
		}
	}
	set := fc.assign(s.OpPos, s.LHS)
	return func(fr *frame) (ctl, error) {
		v, err := rhs(fr)
		if err != nil {
			return ctlNext, err
		}
		return ctlNext, set(fr, v)
	}
}

// augmented compiles x op= y as the VM does: the "address" of x once,
// then the in-place op (lists extend in place on +=).
func (fc *fcomp) augmented(s *syntax.AssignStmt) stmtFn {
	op := s.Op - syntax.PLUS_EQ + syntax.PLUS
	apply := func(k int32) func(fr *frame, x, y starlark.Value) (starlark.Value, error) {
		if op == syntax.PIPE {
			return func(fr *frame, x, y starlark.Value) (starlark.Value, error) {
				z, err := inplacePipe(x, y)
				if err != nil {
					return nil, fr.fail(k, err)
				}
				return z, nil
			}
		}
		if op == syntax.PLUS {
			return func(fr *frame, x, y starlark.Value) (starlark.Value, error) {
				if a, ok := smallInt(x); ok {
					if b, ok := smallInt(y); ok {
						return mkInt(a + b), nil
					}
				}
				z, err := inplaceAdd(x, y)
				if err != nil {
					return nil, fr.fail(k, err)
				}
				return z, nil
			}
		}
		return func(fr *frame, x, y starlark.Value) (starlark.Value, error) {
			z, err := binary(op, x, y)
			if err != nil {
				return nil, fr.fail(k, err)
			}
			return z, nil
		}
	}
	switch lhs := unparen(s.LHS).(type) {
	case *syntax.Ident:
		xo := fc.operand(lhs)
		yo := fc.operand(s.RHS)
		get, rhs := xo.fn, yo.fn
		fc.setPos(s.OpPos)
		fc.emit()
		do := apply(fc.at())
		set := fc.setIdent(lhs)
		if xo.local && yo.isConst && (op == syntax.PLUS || op == syntax.MINUS) {
			// i += 1
			xi, xk, xn, c := xo.idx, xo.k, xo.name, yo.c
			if op == syntax.MINUS {
				c = -c
			}
			return func(fr *frame) (ctl, error) {
				x := fr.locals[xi]
				if x == nil {
					return ctlNext, unbound(fr, xk, xn)
				}
				if a, ok := smallInt(x); ok {
					fr.locals[xi] = mkInt(a + c)
					return ctlNext, nil
				}
				z, err := do(fr, x, yo.val)
				if err != nil {
					return ctlNext, err
				}
				fr.locals[xi] = z
				return ctlNext, nil
			}
		}
		return func(fr *frame) (ctl, error) {
			x, err := get(fr)
			if err != nil {
				return ctlNext, err
			}
			y, err := rhs(fr)
			if err != nil {
				return ctlNext, err
			}
			z, err := do(fr, x, y)
			if err != nil {
				return ctlNext, err
			}
			return ctlNext, set(fr, z)
		}

	case *syntax.IndexExpr:
		xe := fc.expr(lhs.X)
		ye := fc.expr(lhs.Y)
		fc.emit() // DUP2
		fc.setPos(lhs.Lbrack)
		fc.emit()
		k1 := fc.at()
		rhs := fc.expr(s.RHS)
		fc.setPos(s.OpPos)
		fc.emit()
		do := apply(fc.at())
		fc.setPos(lhs.Lbrack)
		fc.emit()
		k3 := fc.at()
		return func(fr *frame) (ctl, error) {
			x, err := xe(fr)
			if err != nil {
				return ctlNext, err
			}
			y, err := ye(fr)
			if err != nil {
				return ctlNext, err
			}
			old, err := getIndex(x, y)
			if err != nil {
				return ctlNext, fr.fail(k1, err)
			}
			r, err := rhs(fr)
			if err != nil {
				return ctlNext, err
			}
			z, err := do(fr, old, r)
			if err != nil {
				return ctlNext, err
			}
			if err := setIndex(x, y, z); err != nil {
				return ctlNext, fr.fail(k3, err)
			}
			return ctlNext, nil
		}

	case *syntax.DotExpr:
		xe := fc.expr(lhs.X)
		fc.emit() // DUP
		fc.setPos(lhs.Dot)
		fc.emit()
		k1 := fc.at()
		name := lhs.Name.Name
		rhs := fc.expr(s.RHS)
		fc.setPos(s.OpPos)
		fc.emit()
		do := apply(fc.at())
		fc.setPos(lhs.Dot)
		fc.emit()
		k3 := fc.at()
		return func(fr *frame) (ctl, error) {
			x, err := xe(fr)
			if err != nil {
				return ctlNext, err
			}
			old, err := getAttr(x, name)
			if err != nil {
				return ctlNext, fr.fail(k1, err)
			}
			r, err := rhs(fr)
			if err != nil {
				return ctlNext, err
			}
			z, err := do(fr, old, r)
			if err != nil {
				return ctlNext, err
			}
			if err := setField(x, name, z); err != nil {
				return ctlNext, fr.fail(k3, err)
			}
			return ctlNext, nil
		}
	}
	fc.unsupported()
	return nil
}

func (fc *fcomp) forStmt(s *syntax.ForStmt) stmtFn {
	xe := fc.expr(s.X)
	fc.setPos(s.For)
	fc.emit() // ITERPUSH
	k := fc.at()
	fc.emit() // ITERJMP
	set := fc.assign(s.For, s.Vars)
	body := fc.stmts(s.Body)
	fc.emit() // ITERPOP
	w := weight(s.Vars) + 2
	return func(fr *frame) (ctl, error) {
		x, err := xe(fr)
		if err != nil {
			return ctlNext, err
		}
		iter := starlark.Iterate(x)
		if iter == nil {
			return ctlNext, fr.errorf(k, "%s value is not iterable", x.Type())
		}
		var elem starlark.Value
		for iter.Next(&elem) {
			if err := set(fr, elem); err != nil {
				iter.Done()
				return ctlNext, err
			}
			c, err := body(fr)
			if err != nil {
				iter.Done()
				return ctlNext, err
			}
			if c == ctlBreak {
				break
			}
			if c == ctlReturn {
				iter.Done()
				return c, nil
			}
			if err := fr.tick(w, k); err != nil {
				iter.Done()
				return ctlNext, err
			}
		}
		iter.Done()
		// An iterator can only report a failure by cancelling the thread
		// and ending: the VM sees it at the next instruction.
		return ctlNext, fr.tick(0, k)
	}
}

// assign compiles lhs = (a value computed before), as the VM's assign.
func (fc *fcomp) assign(pos syntax.Position, lhs syntax.Expr) assignFn {
	switch lhs := lhs.(type) {
	case *syntax.ParenExpr:
		return fc.assign(pos, lhs.X)
	case *syntax.Ident:
		return fc.setIdent(lhs)
	case *syntax.TupleExpr:
		return fc.assignSequence(pos, lhs.List)
	case *syntax.ListExpr:
		return fc.assignSequence(pos, lhs.List)
	case *syntax.IndexExpr:
		xe := fc.expr(lhs.X)
		fc.emit() // EXCH
		ye := fc.expr(lhs.Y)
		fc.emit() // EXCH
		fc.setPos(lhs.Lbrack)
		fc.emit()
		k := fc.at()
		return func(fr *frame, v starlark.Value) error {
			x, err := xe(fr)
			if err != nil {
				return err
			}
			y, err := ye(fr)
			if err != nil {
				return err
			}
			if err := setIndex(x, y, v); err != nil {
				return fr.fail(k, err)
			}
			return nil
		}
	case *syntax.DotExpr:
		xe := fc.expr(lhs.X)
		fc.emit() // EXCH
		fc.setPos(lhs.Dot)
		fc.emit()
		k := fc.at()
		name := lhs.Name.Name
		return func(fr *frame, v starlark.Value) error {
			x, err := xe(fr)
			if err != nil {
				return err
			}
			if err := setField(x, name, v); err != nil {
				return fr.fail(k, err)
			}
			return nil
		}
	}
	fc.unsupported()
	return nil
}

func (fc *fcomp) setIdent(id *syntax.Ident) assignFn {
	fc.emit() // SETLOCAL
	b, ok := id.Binding.(*resolve.Binding)
	if !ok || b.Scope != resolve.Local {
		fc.unsupported() // cells (closures) and globals (top level) are the VM's
		return nil
	}
	i := b.Index
	return func(fr *frame, v starlark.Value) error {
		fr.locals[i] = v
		return nil
	}
}

func (fc *fcomp) assignSequence(pos syntax.Position, lhs []syntax.Expr) assignFn {
	fc.setPos(pos)
	fc.emit() // UNPACK
	k := fc.at()
	n := len(lhs)
	sets := make([]assignFn, n)
	for i, x := range lhs {
		sets[i] = fc.assign(pos, x)
	}
	return func(fr *frame, v starlark.Value) error {
		if t, ok := v.(starlark.Tuple); ok && len(t) == n {
			for i, set := range sets {
				if err := set(fr, t[i]); err != nil {
					return err
				}
			}
			return nil
		}
		iter := starlark.Iterate(v)
		if iter == nil {
			return fr.errorf(k, "got %s in sequence assignment", v.Type())
		}
		var buf [4]starlark.Value
		vals := buf[:0]
		if n > len(buf) {
			vals = make([]starlark.Value, 0, n)
		}
		var elem starlark.Value
		for len(vals) < n && iter.Next(&elem) {
			vals = append(vals, elem)
		}
		var dummy starlark.Value
		if iter.Next(&dummy) {
			// The VM leaves the iterator open here (a list stays "being
			// iterated"); so do we, to behave the same afterwards.
			return fr.errorf(k, "too many values to unpack (got %d, want %d)", starlark.Len(v), n)
		}
		iter.Done()
		if len(vals) < n {
			return fr.errorf(k, "too few values to unpack (got %d, want %d)", len(vals), n)
		}
		for i, set := range sets {
			if err := set(fr, vals[i]); err != nil {
				return err
			}
		}
		return nil
	}
}

func unparen(e syntax.Expr) syntax.Expr {
	if p, ok := e.(*syntax.ParenExpr); ok {
		return unparen(p.X)
	}
	return e
}

// ---- expressions ----

func constant(v starlark.Value) exprFn {
	return func(*frame) (starlark.Value, error) { return v, nil }
}

func literal(e *syntax.Literal) starlark.Value {
	switch v := e.Value.(type) {
	case int64:
		return starlark.MakeInt64(v)
	case *big.Int:
		return starlark.MakeBigInt(v)
	case float64:
		return starlark.Float(v)
	case string:
		if e.Token == syntax.BYTES {
			return starlark.Bytes(v)
		}
		return starlark.String(v)
	}
	return nil
}

func (fc *fcomp) expr(e syntax.Expr) exprFn {
	switch e := e.(type) {
	case *syntax.ParenExpr:
		return fc.expr(e.X)

	case *syntax.Ident:
		return fc.ident(e)

	case *syntax.Literal:
		fc.emit()
		v := literal(e)
		if v == nil {
			fc.unsupported()
		}
		return constant(v)

	case *syntax.ListExpr:
		elems := fc.exprs(e.List)
		fc.emit()
		return func(fr *frame) (starlark.Value, error) {
			vals := make([]starlark.Value, len(elems))
			for i, el := range elems {
				v, err := el(fr)
				if err != nil {
					return nil, err
				}
				vals[i] = v
			}
			return starlark.NewList(vals), nil
		}

	case *syntax.TupleExpr:
		elems := fc.exprs(e.List)
		fc.emit()
		return func(fr *frame) (starlark.Value, error) {
			vals := make(starlark.Tuple, len(elems))
			for i, el := range elems {
				v, err := el(fr)
				if err != nil {
					return nil, err
				}
				vals[i] = v
			}
			return vals, nil
		}

	case *syntax.DictExpr:
		return fc.dict(e)

	case *syntax.CondExpr:
		cond := fc.cond(e.Cond)
		t := fc.expr(e.True)
		f := fc.expr(e.False)
		return func(fr *frame) (starlark.Value, error) {
			ok, err := cond(fr)
			if err != nil {
				return nil, err
			}
			if ok {
				return t(fr)
			}
			return f(fr)
		}

	case *syntax.IndexExpr:
		xe := fc.expr(e.X)
		ye := fc.expr(e.Y)
		fc.setPos(e.Lbrack)
		fc.emit()
		k := fc.at()
		return func(fr *frame) (starlark.Value, error) {
			x, err := xe(fr)
			if err != nil {
				return nil, err
			}
			y, err := ye(fr)
			if err != nil {
				return nil, err
			}
			if l, ok := x.(*starlark.List); ok {
				if i, ok := smallInt(y); ok {
					if n := int64(l.Len()); i >= -n && i < n {
						if i < 0 {
							i += n
						}
						return l.Index(int(i)), nil
					}
				}
			}
			z, err := getIndex(x, y)
			if err != nil {
				return nil, fr.fail(k, err)
			}
			return z, nil
		}

	case *syntax.SliceExpr:
		fc.setPos(e.Lbrack)
		xe := fc.expr(e.X)
		opt := func(e syntax.Expr) exprFn {
			if e == nil {
				fc.emit() // NONE
				return constant(starlark.None)
			}
			return fc.expr(e)
		}
		lo, hi, step := opt(e.Lo), opt(e.Hi), opt(e.Step)
		fc.emit()
		k := fc.at()
		return func(fr *frame) (starlark.Value, error) {
			var vs [4]starlark.Value
			for i, f := range [4]exprFn{xe, lo, hi, step} {
				v, err := f(fr)
				if err != nil {
					return nil, err
				}
				vs[i] = v
			}
			z, err := slice(vs[0], vs[1], vs[2], vs[3])
			if err != nil {
				return nil, fr.fail(k, err)
			}
			return z, nil
		}

	case *syntax.Comprehension:
		return fc.comprehension(e)

	case *syntax.UnaryExpr:
		xe := fc.expr(e.X)
		fc.setPos(e.OpPos)
		fc.emit()
		k := fc.at()
		op := e.Op
		switch op {
		case syntax.NOT:
			return func(fr *frame) (starlark.Value, error) {
				x, err := xe(fr)
				if err != nil {
					return nil, err
				}
				return starlark.Bool(!truth(x)), nil
			}
		case syntax.MINUS, syntax.PLUS, syntax.TILDE:
		default:
			fc.unsupported()
		}
		return func(fr *frame) (starlark.Value, error) {
			x, err := xe(fr)
			if err != nil {
				return nil, err
			}
			if op == syntax.MINUS {
				if a, ok := smallInt(x); ok {
					return mkInt(-a), nil
				}
			}
			y, err := starlark.Unary(op, x)
			if err != nil {
				return nil, fr.fail(k, err)
			}
			return y, nil
		}

	case *syntax.BinaryExpr:
		return fc.binary(e)

	case *syntax.DotExpr:
		xe := fc.expr(e.X)
		fc.setPos(e.Dot)
		fc.emit()
		k := fc.at()
		name := e.Name.Name
		return func(fr *frame) (starlark.Value, error) {
			x, err := xe(fr)
			if err != nil {
				return nil, err
			}
			y, err := getAttr(x, name)
			if err != nil {
				return nil, fr.fail(k, err)
			}
			return y, nil
		}

	case *syntax.CallExpr:
		return fc.call(e)
	}
	// lambda: makes a closure
	fc.unsupported()
	return constant(starlark.None)
}

func (fc *fcomp) exprs(list []syntax.Expr) []exprFn {
	fns := make([]exprFn, len(list))
	for i, e := range list {
		fns[i] = fc.expr(e)
	}
	return fns
}

func (fc *fcomp) ident(id *syntax.Ident) exprFn {
	b, ok := id.Binding.(*resolve.Binding)
	if !ok {
		fc.unsupported()
		return constant(starlark.None)
	}
	name := id.Name
	i := b.Index
	if b.Scope != resolve.Universal {
		fc.setPos(id.NamePos)
	}
	fc.emit()
	k := fc.at()
	switch b.Scope {
	case resolve.Local:
		return func(fr *frame) (starlark.Value, error) {
			if v := fr.locals[i]; v != nil {
				return v, nil
			}
			return nil, fr.errorf(k, "local variable %s referenced before assignment", name)
		}
	case resolve.Free:
		return func(fr *frame) (starlark.Value, error) {
			if _, v := fr.fn.FreeVar(i); v != nil {
				return v, nil
			}
			return nil, fr.errorf(k, "local variable %s referenced before assignment", name)
		}
	case resolve.Global:
		return func(fr *frame) (starlark.Value, error) {
			if v := moduleGlobals(fr.fn.Module())[i]; v != nil {
				return v, nil
			}
			return nil, fr.errorf(k, "global variable %s referenced before assignment", name)
		}
	case resolve.Predeclared:
		return func(fr *frame) (starlark.Value, error) {
			if v := fr.fn.Module().Predeclared()[name]; v != nil {
				return v, nil
			}
			return nil, fr.errorf(k, "internal error: predeclared variable %s is uninitialized", name)
		}
	case resolve.Universal:
		v := starlark.Universe[name]
		if v == nil {
			fc.unsupported()
		}
		return constant(v)
	}
	fc.unsupported() // a cell: the VM's
	return constant(starlark.None)
}

func (fc *fcomp) binary(e *syntax.BinaryExpr) exprFn {
	switch e.Op {
	case syntax.OR, syntax.AND:
		xe := fc.expr(e.X)
		fc.emit() // DUP
		fc.emit() // CJMP
		fc.emit() // POP
		ye := fc.expr(e.Y)
		or := e.Op == syntax.OR
		return func(fr *frame) (starlark.Value, error) {
			x, err := xe(fr)
			if err != nil {
				return nil, err
			}
			if truth(x) == or {
				return x, nil
			}
			return ye(fr)
		}
	case syntax.EQL, syntax.NEQ, syntax.LT, syntax.LE, syntax.GT, syntax.GE, syntax.NOT_IN:
		c := fc.compare(e)
		return func(fr *frame) (starlark.Value, error) {
			ok, err := c(fr)
			if err != nil {
				return nil, err
			}
			return starlark.Bool(ok), nil
		}
	}
	xo := fc.operand(e.X)
	yo := fc.operand(e.Y)
	fc.setPos(e.OpPos)
	fc.emit()
	k := fc.at()
	op := e.Op
	fail := func(fr *frame, err error) (starlark.Value, error) { return nil, fr.fail(k, err) }
	switch {
	case xo.local && yo.isConst:
		xi, xk, xn, c, cv := xo.idx, xo.k, xo.name, yo.c, yo.val
		return func(fr *frame) (starlark.Value, error) {
			x := fr.locals[xi]
			if x == nil {
				return nil, unbound(fr, xk, xn)
			}
			if a, ok := smallInt(x); ok {
				switch op {
				case syntax.PLUS:
					return mkInt(a + c), nil
				case syntax.MINUS:
					return mkInt(a - c), nil
				case syntax.STAR:
					return mkInt(a * c), nil
				case syntax.PERCENT:
					if c != 0 {
						r := a % c
						if r != 0 && (r < 0) != (c < 0) {
							r += c
						}
						return mkInt(r), nil
					}
				}
				if z, ok := arithSlow(op, a, c); ok {
					return z, nil
				}
			}
			z, err := binary(op, x, cv)
			if err != nil {
				return fail(fr, err)
			}
			return z, nil
		}
	case xo.local && yo.local:
		xi, xk, xn, yi, yk, yn := xo.idx, xo.k, xo.name, yo.idx, yo.k, yo.name
		return func(fr *frame) (starlark.Value, error) {
			x := fr.locals[xi]
			if x == nil {
				return nil, unbound(fr, xk, xn)
			}
			y := fr.locals[yi]
			if y == nil {
				return nil, unbound(fr, yk, yn)
			}
			if a, ok := smallInt(x); ok {
				if b, ok := smallInt(y); ok {
					switch op {
					case syntax.PLUS:
						return mkInt(a + b), nil
					case syntax.MINUS:
						return mkInt(a - b), nil
					case syntax.STAR:
						return mkInt(a * b), nil
					case syntax.PERCENT:
						if b != 0 {
							r := a % b
							if r != 0 && (r < 0) != (b < 0) {
								r += b
							}
							return mkInt(r), nil
						}
					}
					if z, ok := arithSlow(op, a, b); ok {
						return z, nil
					}
				}
			}
			z, err := binary(op, x, y)
			if err != nil {
				return fail(fr, err)
			}
			return z, nil
		}
	case yo.isConst:
		xe, c, cv := xo.fn, yo.c, yo.val
		return func(fr *frame) (starlark.Value, error) {
			x, err := xe(fr)
			if err != nil {
				return nil, err
			}
			if a, ok := smallInt(x); ok {
				switch op {
				case syntax.PLUS:
					return mkInt(a + c), nil
				case syntax.MINUS:
					return mkInt(a - c), nil
				case syntax.STAR:
					return mkInt(a * c), nil
				case syntax.PERCENT:
					if c != 0 {
						r := a % c
						if r != 0 && (r < 0) != (c < 0) {
							r += c
						}
						return mkInt(r), nil
					}
				}
				if z, ok := arithSlow(op, a, c); ok {
					return z, nil
				}
			}
			z, err := binary(op, x, cv)
			if err != nil {
				return fail(fr, err)
			}
			return z, nil
		}
	}
	xe, ye := xo.fn, yo.fn
	return func(fr *frame) (starlark.Value, error) {
		x, err := xe(fr)
		if err != nil {
			return nil, err
		}
		y, err := ye(fr)
		if err != nil {
			return nil, err
		}
		z, err := binary(op, x, y)
		if err != nil {
			return fail(fr, err)
		}
		return z, nil
	}
}

// An operand is a compiled subexpression with what fast paths need to
// inline it: a local variable (index, position and name for the unbound
// error) or a small int constant.
type operand struct {
	fn      exprFn
	local   bool
	idx     int
	k       int32
	name    string
	isConst bool
	c       int64
	val     starlark.Value
	// bin: x op y of two locals (indices bx, by), op one of + - * %
	bin    bool
	bop    syntax.Token
	bx, by int
}

func (fc *fcomp) operand(e syntax.Expr) operand {
	e = unparen(e)
	if id, ok := e.(*syntax.Ident); ok {
		if b, ok := id.Binding.(*resolve.Binding); ok && b.Scope == resolve.Local {
			fn := fc.ident(id)
			return operand{fn: fn, local: true, idx: b.Index, k: fc.at(), name: id.Name}
		}
	}
	if lit, ok := e.(*syntax.Literal); ok && lit.Token == syntax.INT {
		if c, ok := lit.Value.(int64); ok && c > -smallMax && c < smallMax {
			fn := fc.expr(lit)
			return operand{fn: fn, isConst: true, c: c, val: starlark.MakeInt64(c)}
		}
	}
	if b, ok := e.(*syntax.BinaryExpr); ok {
		switch b.Op {
		case syntax.PLUS, syntax.MINUS, syntax.STAR, syntax.PERCENT:
			x, xok := localIndex(b.X)
			y, yok := localIndex(b.Y)
			if xok && yok {
				return operand{fn: fc.expr(e), bin: true, bop: b.Op, bx: x, by: y}
			}
		}
	}
	return operand{fn: fc.expr(e)}
}

// localIndex reports the index of e if it is a local variable.
func localIndex(e syntax.Expr) (int, bool) {
	if id, ok := unparen(e).(*syntax.Ident); ok {
		if b, ok := id.Binding.(*resolve.Binding); ok && b.Scope == resolve.Local {
			return b.Index, true
		}
	}
	return 0, false
}

// binSmall computes a bin operand inline if both locals hold small ints
// (else the caller evaluates the operand's fn, which reports errors).
func binSmall(fr *frame, o *operand) (int64, bool) {
	a, ok := smallInt(fr.locals[o.bx])
	if !ok {
		return 0, false
	}
	b, ok := smallInt(fr.locals[o.by])
	if !ok {
		return 0, false
	}
	switch o.bop {
	case syntax.PLUS:
		return a + b, true
	case syntax.MINUS:
		return a - b, true
	case syntax.STAR:
		return a * b, true
	}
	if b == 0 { // PERCENT
		return 0, false
	}
	r := a % b
	if r != 0 && (r < 0) != (b < 0) {
		r += b
	}
	return r, true
}

func unbound(fr *frame, k int32, name string) error {
	return fr.errorf(k, "local variable %s referenced before assignment", name)
}

// arithSlow is binary's int fast path for operands in [-2^31, 2^31) and
// the operators other than +, - and * (which callers do inline).
func arithSlow(op syntax.Token, a, b int64) (starlark.Value, bool) {
	switch op {
	case syntax.SLASHSLASH:
		if b != 0 {
			q := a / b
			if a%b != 0 && (a < 0) != (b < 0) {
				q--
			}
			return mkInt(q), true
		}
	case syntax.PERCENT:
		if b != 0 {
			r := a % b
			if r != 0 && (r < 0) != (b < 0) {
				r += b
			}
			return mkInt(r), true
		}
	case syntax.AMP:
		return mkInt(a & b), true
	case syntax.PIPE:
		return mkInt(a | b), true
	case syntax.CIRCUMFLEX:
		return mkInt(a ^ b), true
	}
	return nil, false
}

// compare compiles a comparison (or not in) to a condition.
func (fc *fcomp) compare(e *syntax.BinaryExpr) condFn {
	xo := fc.operand(e.X)
	yo := fc.operand(e.Y)
	xe, ye := xo.fn, yo.fn
	fc.setPos(e.OpPos)
	fc.emit()
	k := fc.at()
	op := e.Op
	if op == syntax.NOT_IN {
		fc.emit() // NOT
		return func(fr *frame) (bool, error) {
			x, err := xe(fr)
			if err != nil {
				return false, err
			}
			y, err := ye(fr)
			if err != nil {
				return false, err
			}
			z, err := starlark.Binary(syntax.IN, x, y)
			if err != nil {
				return false, fr.fail(k, err)
			}
			return !truth(z), nil
		}
	}
	switch {
	case xo.bin && (yo.local || yo.isConst):
		// i * i <= n, n % i == 0: the int arithmetic inline
		xop, yi, yconst, c := xo, yo.idx, yo.isConst, yo.c
		return func(fr *frame) (bool, error) {
			if a, ok := binSmall(fr, &xop); ok {
				if yconst {
					return cmpInt(op, a, c), nil
				}
				if b, ok := smallInt(fr.locals[yi]); ok {
					return cmpInt(op, a, b), nil
				}
			}
			x, err := xe(fr)
			if err != nil {
				return false, err
			}
			y, err := ye(fr)
			if err != nil {
				return false, err
			}
			ok, err := compare(op, x, y)
			if err != nil {
				return false, fr.fail(k, err)
			}
			return ok, nil
		}
	case xo.local && yo.isConst:
		xi, xk, xn, c, cv := xo.idx, xo.k, xo.name, yo.c, yo.val
		return func(fr *frame) (bool, error) {
			x := fr.locals[xi]
			if x == nil {
				return false, unbound(fr, xk, xn)
			}
			if a, ok := smallInt(x); ok {
				return cmpInt(op, a, c), nil
			}
			ok, err := compare(op, x, cv)
			if err != nil {
				return false, fr.fail(k, err)
			}
			return ok, nil
		}
	case xo.local && yo.local:
		xi, xk, xn, yi, yk, yn := xo.idx, xo.k, xo.name, yo.idx, yo.k, yo.name
		return func(fr *frame) (bool, error) {
			x := fr.locals[xi]
			if x == nil {
				return false, unbound(fr, xk, xn)
			}
			y := fr.locals[yi]
			if y == nil {
				return false, unbound(fr, yk, yn)
			}
			if a, ok := smallInt(x); ok {
				if b, ok := smallInt(y); ok {
					return cmpInt(op, a, b), nil
				}
			}
			ok, err := compare(op, x, y)
			if err != nil {
				return false, fr.fail(k, err)
			}
			return ok, nil
		}
	case yo.local:
		yi, yk, yn := yo.idx, yo.k, yo.name
		return func(fr *frame) (bool, error) {
			x, err := xe(fr)
			if err != nil {
				return false, err
			}
			y := fr.locals[yi]
			if y == nil {
				return false, unbound(fr, yk, yn)
			}
			if a, ok := smallInt(x); ok {
				if b, ok := smallInt(y); ok {
					return cmpInt(op, a, b), nil
				}
			}
			ok, err := compare(op, x, y)
			if err != nil {
				return false, fr.fail(k, err)
			}
			return ok, nil
		}
	case yo.isConst:
		c, cv := yo.c, yo.val
		return func(fr *frame) (bool, error) {
			x, err := xe(fr)
			if err != nil {
				return false, err
			}
			if a, ok := smallInt(x); ok {
				return cmpInt(op, a, c), nil
			}
			ok, err := compare(op, x, cv)
			if err != nil {
				return false, fr.fail(k, err)
			}
			return ok, nil
		}
	}
	return func(fr *frame) (bool, error) {
		x, err := xe(fr)
		if err != nil {
			return false, err
		}
		y, err := ye(fr)
		if err != nil {
			return false, err
		}
		ok, err := compare(op, x, y)
		if err != nil {
			return false, fr.fail(k, err)
		}
		return ok, nil
	}
}

// cond compiles a condition as the VM's ifelse does (not, and, or and
// not in become jumps).
func (fc *fcomp) cond(e syntax.Expr) condFn {
	switch e := e.(type) {
	case *syntax.UnaryExpr:
		if e.Op == syntax.NOT {
			c := fc.cond(e.X)
			return func(fr *frame) (bool, error) {
				ok, err := c(fr)
				return !ok, err
			}
		}
	case *syntax.BinaryExpr:
		switch e.Op {
		case syntax.AND, syntax.OR:
			xe := fc.expr(e.X)
			fc.emit() // CJMP
			yc := fc.cond(e.Y)
			or := e.Op == syntax.OR
			return func(fr *frame) (bool, error) {
				x, err := xe(fr)
				if err != nil {
					return false, err
				}
				if truth(x) == or {
					return or, nil
				}
				return yc(fr)
			}
		case syntax.EQL, syntax.NEQ, syntax.LT, syntax.LE, syntax.GT, syntax.GE, syntax.NOT_IN:
			c := fc.compare(e)
			fc.emit() // CJMP
			return c
		}
	}
	xe := fc.expr(e)
	fc.emit() // CJMP
	return func(fr *frame) (bool, error) {
		x, err := xe(fr)
		if err != nil {
			return false, err
		}
		return truth(x), nil
	}
}

func (fc *fcomp) dict(e *syntax.DictExpr) exprFn {
	fc.emit() // MAKEDICT
	type entry struct {
		k, v exprFn
		pos  int32
	}
	entries := make([]entry, len(e.List))
	for i, x := range e.List {
		de := x.(*syntax.DictEntry)
		fc.emit() // DUP
		entries[i].k = fc.expr(de.Key)
		entries[i].v = fc.expr(de.Value)
		fc.setPos(de.Colon)
		fc.emit()
		entries[i].pos = fc.at()
	}
	return func(fr *frame) (starlark.Value, error) {
		d := starlark.NewDict(len(entries))
		for _, en := range entries {
			k, err := en.k(fr)
			if err != nil {
				return nil, err
			}
			v, err := en.v(fr)
			if err != nil {
				return nil, err
			}
			n := d.Len()
			if err := d.SetKey(k, v); err != nil {
				return nil, fr.fail(en.pos, err)
			}
			if d.Len() == n {
				return nil, fr.errorf(en.pos, "duplicate key: %v", k)
			}
		}
		return d, nil
	}
}

// comprehension compiles [body for ... if ...] and {k: v for ...}.
func (fc *fcomp) comprehension(comp *syntax.Comprehension) exprFn {
	fc.emit() // MAKELIST / MAKEDICT
	type acc struct {
		list []starlark.Value
		dict *starlark.Dict
	}
	type step func(fr *frame, a *acc) error
	var clause func(i int) step
	clause = func(i int) step {
		if i == len(comp.Clauses) {
			fc.emit() // DUP
			if comp.Curly {
				entry := comp.Body.(*syntax.DictEntry)
				ke := fc.expr(entry.Key)
				ve := fc.expr(entry.Value)
				fc.setPos(entry.Colon)
				fc.emit()
				k := fc.at()
				return func(fr *frame, a *acc) error {
					key, err := ke(fr)
					if err != nil {
						return err
					}
					v, err := ve(fr)
					if err != nil {
						return err
					}
					if err := a.dict.SetKey(key, v); err != nil {
						return fr.fail(k, err)
					}
					return nil
				}
			}
			be := fc.expr(comp.Body)
			fc.emit() // APPEND
			return func(fr *frame, a *acc) error {
				v, err := be(fr)
				if err != nil {
					return err
				}
				a.list = append(a.list, v)
				return nil
			}
		}
		switch cl := comp.Clauses[i].(type) {
		case *syntax.IfClause:
			c := fc.cond(cl.Cond)
			next := clause(i + 1)
			return func(fr *frame, a *acc) error {
				ok, err := c(fr)
				if err != nil || !ok {
					return err
				}
				return next(fr, a)
			}
		case *syntax.ForClause:
			xe := fc.expr(cl.X)
			fc.setPos(cl.For)
			fc.emit() // ITERPUSH
			k := fc.at()
			fc.emit() // ITERJMP
			set := fc.assign(cl.For, cl.Vars)
			next := clause(i + 1)
			fc.emit() // ITERPOP
			w := weight(cl.Vars) + weight(comp.Body) + 3
			return func(fr *frame, a *acc) error {
				x, err := xe(fr)
				if err != nil {
					return err
				}
				iter := starlark.Iterate(x)
				if iter == nil {
					return fr.errorf(k, "%s value is not iterable", x.Type())
				}
				var elem starlark.Value
				for iter.Next(&elem) {
					if err := set(fr, elem); err != nil {
						iter.Done()
						return err
					}
					if err := next(fr, a); err != nil {
						iter.Done()
						return err
					}
					if err := fr.tick(w, k); err != nil {
						iter.Done()
						return err
					}
				}
				iter.Done()
				return fr.tick(0, k)
			}
		}
		fc.unsupported()
		return nil
	}
	run := clause(0)
	if comp.Curly {
		return func(fr *frame) (starlark.Value, error) {
			a := acc{dict: new(starlark.Dict)}
			if err := run(fr, &a); err != nil {
				return nil, err
			}
			return a.dict, nil
		}
	}
	return func(fr *frame) (starlark.Value, error) {
		var a acc
		if err := run(fr, &a); err != nil {
			return nil, err
		}
		return starlark.NewList(a.list), nil
	}
}

// call compiles a call: arguments as the VM evaluates and checks them,
// then go.starlark.net's Call, with the callee's compiled code if it has
// some (so the callee has its own call frame, as on the VM).
func (fc *fcomp) call(e *syntax.CallExpr) exprFn {
	var fnE exprFn
	var recvE exprFn // x of x.name(...)
	var attrK int32
	var attr string
	if dot, ok := e.Fn.(*syntax.DotExpr); ok {
		recvE = fc.expr(dot.X)
		fc.setPos(dot.Dot)
		fc.emit()
		attrK = fc.at()
		attr = dot.Name.Name
	} else {
		fnE = fc.expr(e.Fn)
	}
	var pos []exprFn
	var names []starlark.String
	var named []exprFn
	var varargs, kwargs syntax.Expr
	for _, arg := range e.Args {
		if b, ok := arg.(*syntax.BinaryExpr); ok && b.Op == syntax.EQ {
			fc.emit() // CONSTANT name
			names = append(names, starlark.String(b.X.(*syntax.Ident).Name))
			named = append(named, fc.expr(b.Y))
			continue
		}
		if u, ok := arg.(*syntax.UnaryExpr); ok {
			if u.Op == syntax.STAR {
				varargs = u.X
				continue
			} else if u.Op == syntax.STARSTAR {
				kwargs = u.X
				continue
			}
		}
		pos = append(pos, fc.expr(arg))
	}
	var varargsE, kwargsE exprFn
	if varargs != nil {
		varargsE = fc.expr(varargs)
	}
	if kwargs != nil {
		kwargsE = fc.expr(kwargs)
	}
	fc.setPos(e.Lparen)
	fc.emit()
	k := fc.at()
	comp := fc.code.comp
	s := new(site)

	// len(x) of a string, list, tuple or dict, and l.append(x) on a
	// mutable list, are done inline: same result, no call.
	simple := len(pos) == 1 && names == nil && varargs == nil && kwargs == nil
	var isLen, isStr bool
	if id, ok := e.Fn.(*syntax.Ident); ok && simple {
		if b, ok := id.Binding.(*resolve.Binding); ok && b.Scope == resolve.Universal {
			isLen, isStr = id.Name == "len", id.Name == "str"
		}
	}
	isAppend := simple && recvE != nil && attr == "append"
	simpleCall := len(pos) > 0 && names == nil && varargs == nil && kwargs == nil
	isGet := recvE != nil && attr == "get" && (len(pos) == 1 || len(pos) == 2) && names == nil && varargs == nil && kwargs == nil

	// general makes the call; pre, if not nil, is the function, already
	// evaluated.
	general := func(fr *frame, pre starlark.Value) (starlark.Value, error) {
		fn := pre
		var err error
		if pre != nil {
			// evaluated by the caller
		} else if recvE != nil {
			recv, err := recvE(fr)
			if err != nil {
				return nil, err
			}
			if isAppend {
				if l, ok := recv.(*starlark.List); ok {
					v, err := pos[0](fr)
					if err != nil {
						return nil, err
					}
					if l.Append(v) == nil {
						return starlark.None, nil
					}
					// frozen or being iterated: the builtin reports it
					m, _ := getAttr(l, "append")
					fr.pc = k
					if err := fr.tick(1, k); err != nil {
						return nil, err
					}
					return fr.after(starlark.Call(fr.th, m, starlark.Tuple{v}, nil))
				}
			}
			if isGet {
				if d, ok := recv.(*starlark.Dict); ok {
					args := make(starlark.Tuple, len(pos))
					for i, p := range pos {
						v, err := p(fr)
						if err != nil {
							return nil, err
						}
						args[i] = v
					}
					if v, found, err := d.Get(args[0]); err == nil {
						if found {
							return v, nil
						} else if len(args) == 2 {
							return args[1], nil
						}
						return starlark.None, nil
					}
					// an unhashable key: the builtin reports it
					m, _ := getAttr(d, "get")
					fr.pc = k
					if err := fr.tick(1, k); err != nil {
						return nil, err
					}
					return fr.after(starlark.Call(fr.th, m, args, nil))
				}
			}
			fn, err = getAttr(recv, attr)
			if err != nil {
				return nil, fr.fail(attrK, err)
			}
		} else {
			fn, err = fnE(fr)
			if err != nil {
				return nil, err
			}
		}
		var callee *code
		f, isFunc := fn.(*starlark.Function)
		if isFunc {
			callee = s.codeOf(comp, f)
		}
		var next *frame
		if callee != nil {
			// The frame of the last compiled call, free again; detached
			// while the arguments are evaluated (they may call too).
			next = fr.child
			fr.child = nil
			if next == nil {
				next = new(frame)
			}
			next.code, next.fn = callee, f
		}
		var args starlark.Tuple
		if n := len(pos); n > 0 {
			if next != nil && names == nil && varargs == nil && kwargs == nil &&
				!callee.varargs && !callee.kwargs && n <= callee.nparams && callee.nlocals <= len(next.buf) {
				// Evaluate the arguments straight into the callee's locals.
				args = next.buf[:n:n]
			} else {
				args = make(starlark.Tuple, n)
			}
			for i, p := range pos {
				v, err := p(fr)
				if err != nil {
					clear(args)
					return nil, err
				}
				args[i] = v
			}
		}
		if isStr {
			switch x := args[0].(type) {
			case starlark.String:
				return x, nil
			case starlark.Int:
				return starlark.String(x.String()), nil
			}
		}
		if isLen {
			switch x := args[0].(type) {
			case starlark.String:
				return starlark.MakeInt(x.Len()), nil
			case *starlark.List:
				return starlark.MakeInt(x.Len()), nil
			case starlark.Tuple:
				return starlark.MakeInt(x.Len()), nil
			case *starlark.Dict:
				return starlark.MakeInt(x.Len()), nil
			}
		}
		var kvpairs []starlark.Tuple
		if len(names) > 0 {
			kvpairs = make([]starlark.Tuple, len(names))
			flat := make(starlark.Tuple, 2*len(names))
			for i, ne := range named {
				v, err := ne(fr)
				if err != nil {
					return nil, err
				}
				pair := flat[2*i : 2*i+2 : 2*i+2]
				pair[0], pair[1] = names[i], v
				kvpairs[i] = pair
			}
		}
		if varargsE != nil || kwargsE != nil {
			var va, kw starlark.Value
			if varargsE != nil {
				if va, err = varargsE(fr); err != nil {
					return nil, err
				}
			}
			if kwargsE != nil {
				if kw, err = kwargsE(fr); err != nil {
					return nil, err
				}
				dict, ok := kw.(starlark.IterableMapping)
				if !ok {
					return nil, fr.errorf(k, "argument after ** must be a mapping, not %s", kw.Type())
				}
				items := dict.Items()
				for _, item := range items {
					if _, ok := item[0].(starlark.String); !ok {
						return nil, fr.errorf(k, "keywords must be strings, not %s", item[0].Type())
					}
				}
				if len(kvpairs) == 0 {
					kvpairs = items
				} else {
					kvpairs = append(kvpairs, items...)
				}
			}
			if va != nil {
				iter := starlark.Iterate(va)
				if iter == nil {
					return nil, fr.errorf(k, "argument after * must be iterable, not %s", va.Type())
				}
				var elem starlark.Value
				for iter.Next(&elem) {
					args = append(args, elem)
				}
				iter.Done()
			}
		}
		fr.pc = k
		if next != nil {
			// The callee checks cancellation and steps on entry.
			v, err := starlark.Call(fr.th, next, args, kvpairs)
			fr.child = next
			return fr.after(v, err)
		}
		if err := fr.tick(1, k); err != nil {
			return nil, err
		}
		return fr.after(starlark.Call(fr.th, fn, args, kvpairs))
	}
	if recvE != nil || !simpleCall || isLen || isStr {
		return func(fr *frame) (starlark.Value, error) { return general(fr, nil) }
	}
	// f(x, y) of a compiled function taking exactly those parameters
	// (recursion, helpers): arguments straight into the callee's frame.
	n := len(pos)
	return func(fr *frame) (starlark.Value, error) {
		fn, err := fnE(fr)
		if err != nil {
			return nil, err
		}
		f, ok := fn.(*starlark.Function)
		if !ok {
			return general(fr, fn)
		}
		callee := s.codeOf(comp, f)
		if callee == nil || !callee.positional || callee.nparams != n || callee.nlocals > len(fr.buf) {
			return general(fr, fn)
		}
		next := fr.child
		fr.child = nil
		if next == nil {
			next = new(frame)
		}
		next.code, next.fn = callee, f
		args := next.buf[:n:n]
		for i, p := range pos {
			v, err := p(fr)
			if err != nil {
				clear(args)
				return nil, err
			}
			args[i] = v
		}
		fr.pc = k
		v, err := starlark.Call(fr.th, next, args, nil)
		fr.child = next
		return fr.after(v, err)
	}
}
