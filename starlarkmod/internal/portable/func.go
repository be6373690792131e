package portable

import (
	"fmt"
	"sort"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/semisync/semisync/starlarkmod/internal/decorator"
)

// A function is encoded as
//
//	tagFunc
//	ByFile:   file index, line, column (of def or lambda)
//	BySource: the def's source text (indentation of its first line removed)
//	flags     (bit 0: the function reads its own name, bound to another
//	          value than itself: a decorated def that calls itself)
//	defaults  n, (parameter name, value)   in parameter order
//	names     free variables, globals and predeclared names, in one list
//	          sorted by name: n, (name, bound byte)
//	values    of every bound name, in that order
//
// Universe names need nothing: every side has the same universe.
const flagSelfOther = 1

func (e *encoder) function(fn *starlark.Function) error {
	if !e.newID(fn) {
		return nil
	}
	p := e.usePos()
	if !p.IsValid() {
		p = fn.Position()
	}
	e.reach("function", fn.Name(), p)
	fi := lookup(fn.Module().Program())
	if fi == nil {
		return e.notPortable(fmt.Sprintf("function %s (%s), whose source is unknown (compiled outside semisync)", fn.Name(), fn.Position()))
	}
	node := fi.funcs[posOf(fn.Position())]
	if node == nil {
		return e.notPortable(fmt.Sprintf("function %s (%s), whose def is not in its file", fn.Name(), fn.Position()))
	}
	a := fi.analyze(node)
	fi.namesFor(fn)

	e.byte(tagFunc)
	if e.mode == ByFile {
		e.uvarint(uint64(e.file(fi)))
		e.uvarint(uint64(fn.Position().Line))
		e.uvarint(uint64(fn.Position().Col))
	} else {
		e.str(fi.source(node))
	}

	var globals starlark.StringDict
	if len(a.globals) > 0 {
		globals = fn.Globals() // a copy: call it once
	}
	var flags byte
	if a.name != "lambda" {
		var self starlark.Value
		found := false
		for _, u := range a.globals {
			if u.name == a.name {
				self, found = globals[u.key()], true
			}
		}
		for _, u := range a.predecl { // a decoded function's renamed reads
			if u.name == a.name {
				self, found = fn.Module().Predeclared()[u.key()], true
			}
		}
		for i := range fn.NumFreeVars() {
			if b, v := fn.FreeVar(i); b.Name == a.name {
				self, found = v, true
			}
		}
		if found && self != starlark.Value(fn) {
			flags |= flagSelfOther
		}
	}
	e.byte(flags)

	e.ctx = append(e.ctx, fi)
	defer func() { e.ctx = e.ctx[:len(e.ctx)-1] }()

	// Defaults.
	type dflt struct {
		name string
		pos  syntax.Position
		v    starlark.Value
	}
	var ds []dflt
	for i := range fn.NumParams() {
		if d := fn.ParamDefault(i); d != nil {
			name, pos := fn.Param(i)
			ds = append(ds, dflt{name, pos, d})
		}
	}
	e.uvarint(uint64(len(ds)))
	for _, d := range ds {
		e.str(d.name)
		e.push(seg{kind: segDefault, name: d.name, fn: fn, pos: d.pos})
		if err := e.value(d.v); err != nil {
			return err
		}
		e.pop()
	}

	// Names first (free variables, globals and predeclared names, in one
	// list sorted by name: a decoded function reads them all as
	// predeclared names, and encodes the same), each with whether it is
	// bound, so that the decoder can compile the function before it
	// decodes their values (which may refer to the function).
	type entry struct {
		name string
		v    starlark.Value
		s    seg
		u    use
	}
	var entries []entry
	for i := range fn.NumFreeVars() {
		b, v := fn.FreeVar(i)
		if l, ok := fi.loadsAt[posOf(b.Pos)]; ok && v != nil {
			// A name bound by load at top level (file-local, so
			// captured like a variable): named by module and member.
			e.learn(v, ref{tag: tagLoad, name: l.module, member: l.member})
		}
		entries = append(entries, entry{b.Name, v, seg{kind: segFree, name: b.Name, fn: fn, pos: a.freeUse[b.Name]}, use{name: b.Name, pos: a.freeUse[b.Name]}})
	}
	for _, u := range a.globals {
		entries = append(entries, entry{u.name, globals[u.key()], seg{kind: segGlobal, name: u.name, fn: fn, pos: u.pos}, u})
	}
	pre := fn.Module().Predeclared()
	for _, u := range a.predecl {
		entries = append(entries, entry{u.name, pre[u.key()], seg{kind: segPredeclared, name: u.name, fn: fn, pos: u.pos}, u})
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	e.uvarint(uint64(len(entries)))
	for _, x := range entries {
		e.str(x.name)
		if x.v == nil {
			e.byte(0)
		} else {
			e.byte(1)
		}
	}
	for _, x := range entries {
		if x.v == nil {
			continue
		}
		e.push(x.s)
		if err := e.global(fi, x.u, x.v, a); err != nil {
			return err
		}
		e.pop()
	}
	for _, u := range a.universal {
		e.reach("builtin", u.name, u.pos)
	}
	return nil
}

// global encodes the value v of a name u that a function reads, noting
// the module members it uses (json.encode) as reached builtins.
func (e *encoder) global(fi *fileInfo, u use, v starlark.Value, a *analysis) error {
	if _, ok := v.(*starlarkstruct.Module); ok {
		base := u.name
		if r, ok := e.name(v); ok {
			base = r.String()
		}
		for _, d := range a.dotted[u.name] {
			e.reach("builtin", base+d.name[len(u.name):], d.pos)
		}
	}
	return e.value(v)
}

// file returns the index of fi in the encoding's file table.
func (e *encoder) file(fi *fileInfo) int {
	if i, ok := e.fileIdx[fi]; ok {
		return i
	}
	if e.fileIdx == nil {
		e.fileIdx = map[*fileInfo]int{}
	}
	// Two registered programs may share one text (a file run twice): the
	// table lists each text once.
	for i, f := range e.files {
		if f.sum == fi.sum && f.file.Path == fi.file.Path && dialectFlags(f.file.Options) == dialectFlags(fi.file.Options) {
			e.fileIdx[fi] = i
			return i
		}
	}
	e.fileIdx[fi] = len(e.files)
	e.files = append(e.files, fi)
	if !e.inline {
		if e.filesOut == nil {
			e.filesOut = map[string][]byte{}
		}
		e.filesOut[fi.hash] = fi.src
	}
	return len(e.files) - 1
}

// Decoding a function.
//
// Each function is compiled on its own, from a synthetic file whose only
// statement is its def (or "\x00fn = lambda ...") as parsed from the
// original file, so every node keeps its original position. The names it
// reads that the original module bound elsewhere (globals, free variables
// of an enclosing function, predeclared names) are predeclared names of
// the synthetic module, whose values are decoded after the function is
// made (the predeclared dict is read when the function runs, so functions
// that call each other can be built in any order). Defaults are evaluated
// when the def runs: each default expression is replaced by a predeclared
// name that holds the decoded value. A global that was not bound yet is
// bound by a dead "if False: x = None", so reading it fails as it would
// have (global variable x referenced before assignment).
//
// A free variable becomes a predeclared name: the function can only read
// it (Starlark has no nonlocal), and the value it captured is frozen.

// A funcDecl is what the decoder read of a function before building it.
type funcDecl struct {
	file  *fileEntry
	line  int32
	col   int32
	flags byte
}

type binding struct {
	name string
	v    starlark.Value // nil: unbound
}

const (
	lambdaName   = "\x00fn"
	defaultName  = "\x00default "
	selfSuffix   = "\x00self"
	maxFileBytes = 64 << 20
)

// build compiles the function of decl with the given defaults, and the
// names (globals, free variables, predeclared) it reads; their values
// are filled into env afterwards by the caller.
func (d *decoder) build(decl *funcDecl, defaults []binding, names []string, unbound []string, env starlark.StringDict) (*starlark.Function, error) {
	fe := decl.file
	text, err := d.fileText(fe)
	if err != nil {
		return nil, err
	}
	f, err := decorator.Parse(dialectOptions(fe.flags), fe.name, text, 0)
	if err != nil {
		return nil, fmt.Errorf("portable: parsing %s: %v", fe.name, err)
	}
	var node syntax.Node
	syntax.Walk(f, func(n syntax.Node) bool {
		if node != nil {
			return false
		}
		switch n := n.(type) {
		case *syntax.DefStmt:
			if n.Def.Line == decl.line && n.Def.Col == decl.col {
				node = n
			}
		case *syntax.LambdaExpr:
			if n.Lambda.Line == decl.line && n.Lambda.Col == decl.col {
				node = n
			}
		}
		return true
	})
	if node == nil {
		return nil, fmt.Errorf("portable: no def or lambda at %s:%d:%d", fe.name, decl.line, decl.col)
	}
	var params []syntax.Expr
	var stmt syntax.Stmt
	name := lambdaName
	var defName *syntax.Ident
	switch n := node.(type) {
	case *syntax.DefStmt:
		params = n.Params
		stmt = n
		name = n.Name.Name
		defName = n.Name
	case *syntax.LambdaExpr:
		params = n.Params
		stmt = &syntax.AssignStmt{Op: syntax.EQ, OpPos: n.Lambda, LHS: &syntax.Ident{NamePos: n.Lambda, Name: lambdaName}, RHS: n}
	}
	// Defaults: each by name, as a predeclared name.
	byName := map[string]starlark.Value{}
	for _, b := range defaults {
		byName[b.name] = b.v
	}
	for _, p := range params {
		be, ok := p.(*syntax.BinaryExpr)
		if !ok {
			continue
		}
		id, ok := be.X.(*syntax.Ident)
		if !ok {
			continue
		}
		v, ok := byName[id.Name]
		if !ok {
			return nil, fmt.Errorf("portable: no default for parameter %s of %s", id.Name, name)
		}
		start, _ := be.Y.Span()
		key := defaultName + id.Name
		be.Y = &syntax.Ident{NamePos: start, Name: key}
		env[key] = v
	}
	var stmts []syntax.Stmt
	for _, u := range unbound {
		if u == name {
			continue
		}
		p, _ := stmt.Span()
		stmts = append(stmts, &syntax.IfStmt{If: p, Cond: &syntax.Ident{NamePos: p, Name: "False"},
			True: []syntax.Stmt{&syntax.AssignStmt{Op: syntax.EQ, OpPos: p, LHS: &syntax.Ident{NamePos: p, Name: u}, RHS: &syntax.Ident{NamePos: p, Name: "None"}}}})
	}
	stmts = append(stmts, stmt)
	opts := *f.Options
	opts.TopLevelControl = true // for the dead ifs
	synth := &syntax.File{Path: f.Path, Stmts: stmts, Options: &opts}
	isUnbound := map[string]bool{}
	for _, u := range unbound {
		isUnbound[u] = true
	}
	for _, n := range names {
		if !isUnbound[n] && n != name {
			env[n] = starlark.None // placeholder until the caller fills it in
		}
	}
	if decl.flags&flagSelfOther != 0 && defName != nil {
		// The def reads its own name, bound to something else (a decorated
		// def calling itself through its decorated global): those reads
		// go to a predeclared name instead of the def's own binding.
		if err := resolve.File(synth, env.Has, starlark.Universe.Has); err != nil {
			return nil, fmt.Errorf("portable: %v", err)
		}
		syntax.Walk(stmt, func(n syntax.Node) bool {
			if id, ok := n.(*syntax.Ident); ok && id != defName && id.Name == name {
				if b, ok := id.Binding.(*resolve.Binding); ok && b.Scope == resolve.Global {
					id.Name = name + selfSuffix
				}
			}
			return true
		})
		env[name+selfSuffix] = starlark.None
	}
	prog, err := starlark.FileProgram(synth, env.Has)
	if err != nil {
		return nil, fmt.Errorf("portable: compiling %s at %s:%d:%d: %v", name, fe.name, decl.line, decl.col, err)
	}
	// Register the function's own program, with the original text, so a
	// decoded function encodes as the original did (a worker's cache key,
	// a task it sends on).
	registerDecoded(prog, synth, text, fe.flags, d.names())
	if d.env != nil && d.env.Compiled != nil {
		d.env.Compiled(prog, synth)
	}
	g, err := prog.Init(d.thread(), env)
	if err != nil {
		return nil, fmt.Errorf("portable: making %s: %v", name, err)
	}
	fn, ok := g[name].(*starlark.Function)
	if !ok {
		return nil, fmt.Errorf("portable: %s did not make a function", name)
	}
	return fn, nil
}
