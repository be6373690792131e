package portable

import (
	"crypto/sha256"
	"encoding/hex"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"
	"weak"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// The registry maps each compiled program to the file it came from: its
// text and resolved syntax tree. A *starlark.Function knows its program
// but not its source, and EncodeFunc's signature (fixed by the cluster
// and cache contract) takes only the function. Entries are facts about
// immutable objects, keyed weakly: an entry goes when its program is
// collected, so the registry holds no configuration and leaks nothing
// between runs (each run compiles its own programs).
var (
	programs sync.Map // weak.Pointer[starlark.Program] -> *fileInfo
	sources  sync.Map // weak.Pointer[syntax.File] -> []byte
)

// NoteSource records src as the text f was parsed from, for a later
// Register(prog, f, nil) (a REPL parses and compiles in separate steps).
func NoteSource(f *syntax.File, src []byte) {
	k := weak.Make(f)
	if _, loaded := sources.LoadOrStore(k, src); !loaded {
		runtime.AddCleanup(f, func(k weak.Pointer[syntax.File]) { sources.Delete(k) }, k)
	}
}

// Register records that prog was compiled from f, parsed from src (nil:
// the text given to NoteSource for f). f must be the resolved tree that
// compiled prog (starlark.FileProgram resolves it). Functions of
// unregistered programs are not portable. Register is cheap: the file is
// hashed and indexed on first use.
func Register(prog *starlark.Program, f *syntax.File, src []byte) {
	if src == nil {
		v, ok := sources.Load(weak.Make(f))
		if !ok {
			return
		}
		src = v.([]byte)
	}
	register(prog, &fileInfo{file: f, src: src, flags: dialectFlags(f.Options)})
}

// registerDecoded registers the program of a decoded function: its
// synthetic file, the original text and dialect, and the names of the
// builtins its decoding met (so they are named as they were).
func registerDecoded(prog *starlark.Program, f *syntax.File, src []byte, flags byte, names map[starlark.Value]ref) {
	fi := &fileInfo{file: f, src: src, flags: flags}
	fi.namesOnce.Do(func() { fi.names = names })
	register(prog, fi)
}

func register(prog *starlark.Program, fi *fileInfo) {
	k := weak.Make(prog)
	if _, loaded := programs.LoadOrStore(k, fi); !loaded {
		runtime.AddCleanup(prog, func(k weak.Pointer[starlark.Program]) { programs.Delete(k) }, k)
	}
}

func lookup(prog *starlark.Program) *fileInfo {
	if prog == nil {
		return nil
	}
	v, ok := programs.Load(weak.Make(prog))
	if !ok {
		return nil
	}
	fi := v.(*fileInfo)
	fi.once.Do(fi.index)
	return fi
}

// A fileInfo is what the encoder knows of one registered file.
type fileInfo struct {
	file  *syntax.File
	src   []byte
	flags byte // the dialect src is parsed in

	once      sync.Once
	hash      string // sha256 of src, hex
	sum       [32]byte
	lines     []int               // byte offset of each line's start
	funcs     map[pos]syntax.Node // *syntax.DefStmt or *syntax.LambdaExpr, by position
	loads     map[string]loadRef  // name -> the built-in module member a load bound it to
	loadsAt   map[pos]loadRef     // likewise, by the position of the name in the load
	analyses  sync.Map            // pos -> *analysis
	namesOnce sync.Once
	names     map[starlark.Value]ref // builtins and modules by identity (see namesFor)
}

type pos struct{ line, col int32 }

func posOf(p syntax.Position) pos { return pos{p.Line, p.Col} }

type loadRef struct{ module, member string }

func (fi *fileInfo) index() {
	fi.sum = sha256.Sum256(fi.src)
	fi.hash = hex.EncodeToString(fi.sum[:])
	fi.lines = lineStarts(fi.src)
	fi.funcs = map[pos]syntax.Node{}
	fi.loads = map[string]loadRef{}
	fi.loadsAt = map[pos]loadRef{}
	syntax.Walk(fi.file, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.DefStmt:
			fi.funcs[posOf(n.Def)] = n
		case *syntax.LambdaExpr:
			fi.funcs[posOf(n.Lambda)] = n
		case *syntax.LoadStmt:
			module, _ := n.Module.Value.(string)
			if strings.HasSuffix(module, ".star") {
				break // a script file: its values are encoded as values
			}
			for i, to := range n.To {
				fi.loads[to.Name] = loadRef{module, n.From[i].Name}
				fi.loadsAt[posOf(to.NamePos)] = loadRef{module, n.From[i].Name}
			}
		}
		return true
	})
}

func (fi *fileInfo) hashBytes() []byte { return fi.sum[:] }

func lineStarts(src []byte) []int {
	starts := []int{0}
	for i, c := range src {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// offset returns the byte offset of p (line and column in runes) in src.
func offset(src []byte, lines []int, p syntax.Position) int {
	l := int(p.Line) - 1
	if l < 0 {
		return 0
	}
	if l >= len(lines) {
		return len(src)
	}
	off := lines[l]
	for col := int32(1); col < p.Col && off < len(src) && src[off] != '\n'; col++ {
		_, n := utf8.DecodeRune(src[off:])
		off += n
	}
	return off
}

// source returns the text of n, a def or lambda, with the indentation of
// its first line removed from the lines after it, so that the text does
// not depend on where the def sits.
func (fi *fileInfo) source(n syntax.Node) string {
	start, end := n.Span()
	a, b := offset(fi.src, fi.lines, start), offset(fi.src, fi.lines, end)
	if b < a {
		b = a
	}
	text := string(fi.src[a:b])
	indent := int(start.Col) - 1
	if indent <= 0 || !strings.Contains(text, "\n") {
		return text
	}
	lines := strings.Split(text, "\n")
	for i := 1; i < len(lines); i++ {
		l := lines[i]
		k := 0
		for k < indent && k < len(l) && (l[k] == ' ' || l[k] == '\t') {
			k++
		}
		lines[i] = l[k:]
	}
	return strings.Join(lines, "\n")
}

// An analysis is what a function's syntax says it reads by name.
type analysis struct {
	name      string           // the def's name, or "lambda"
	globals   []use            // names of the module's globals, sorted
	predecl   []use            // predeclared names, sorted
	universal []use            // universe names, in order of first use
	dotted    map[string][]use // name -> uses as name.attr (Name is "name.attr")
	free      []*resolve.Binding
	freeUse   map[string]syntax.Position // first use of each free variable
	params    []syntax.Expr
}

type use struct {
	name string
	pos  syntax.Position
	as   string // the name it is looked up under, if not name (a decoded function's renamed self-reference)
}

func (u use) key() string {
	if u.as != "" {
		return u.as
	}
	return u.name
}

func (fi *fileInfo) analyze(n syntax.Node) *analysis {
	p := funcPos(n)
	if a, ok := fi.analyses.Load(posOf(p)); ok {
		return a.(*analysis)
	}
	var rf *resolve.Function
	var body []syntax.Node
	switch n := n.(type) {
	case *syntax.DefStmt:
		rf = n.Function.(*resolve.Function)
		for _, s := range n.Body {
			body = append(body, s)
		}
	case *syntax.LambdaExpr:
		rf = n.Function.(*resolve.Function)
		body = append(body, n.Body)
	}
	a := &analysis{name: rf.Name, free: rf.FreeVars, params: rf.Params, dotted: map[string][]use{}, freeUse: map[string]syntax.Position{}}
	freeSet := map[*syntax.Ident]bool{} // by first binding: a nested function's own free binding differs
	for _, b := range rf.FreeVars {
		freeSet[b.First] = true
	}
	seen := map[*resolve.Binding]bool{}
	seenName := map[string]bool{}
	visit := func(x syntax.Node) bool {
		switch x := x.(type) {
		case *syntax.DotExpr:
			if id, ok := x.X.(*syntax.Ident); ok {
				if b, ok := id.Binding.(*resolve.Binding); ok && (b.Scope == resolve.Global || b.Scope == resolve.Predeclared || b.Scope == resolve.Free) {
					a.dotted[id.Name] = append(a.dotted[id.Name], use{name: id.Name + "." + x.Name.Name, pos: x.Dot})
				}
			}
		case *syntax.Ident:
			b, ok := x.Binding.(*resolve.Binding)
			if !ok {
				break
			}
			switch b.Scope {
			case resolve.Free:
				if _, ok := a.freeUse[x.Name]; !ok && freeSet[b.First] {
					a.freeUse[x.Name] = x.NamePos
				}
			case resolve.Global:
				if !seen[b] {
					seen[b] = true
					a.globals = append(a.globals, use{name: x.Name, pos: x.NamePos})
				}
			case resolve.Predeclared, resolve.Universal:
				if !seenName[x.Name] {
					seenName[x.Name] = true
					if b.Scope == resolve.Predeclared {
						u := use{name: x.Name, pos: x.NamePos}
						if name, ok := strings.CutSuffix(x.Name, selfSuffix); ok {
							u = use{name: name, pos: x.NamePos, as: x.Name}
						}
						a.predecl = append(a.predecl, u)
					} else {
						a.universal = append(a.universal, use{name: x.Name, pos: x.NamePos})
					}
				}
			}
		}
		return true
	}
	// The root's own defaults are not walked: they were evaluated when
	// the def ran, and are encoded as values. Nested functions' defaults
	// are part of the body.
	for _, s := range body {
		syntax.Walk(s, visit)
	}
	sortUses(a.globals)
	sortUses(a.predecl)
	actual, _ := fi.analyses.LoadOrStore(posOf(p), a)
	return actual.(*analysis)
}

func sortUses(us []use) {
	// insertion sort: few names, and stable positions
	for i := 1; i < len(us); i++ {
		for j := i; j > 0 && us[j].name < us[j-1].name; j-- {
			us[j], us[j-1] = us[j-1], us[j]
		}
	}
}

func funcPos(n syntax.Node) syntax.Position {
	switch n := n.(type) {
	case *syntax.DefStmt:
		return n.Def
	case *syntax.LambdaExpr:
		return n.Lambda
	}
	return syntax.Position{}
}
