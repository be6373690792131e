package repl

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.starlark.net/starlark"
)

// keywords are Starlark's statement and expression keywords, completed
// like names.
var keywords = []string{
	"and", "break", "continue", "def", "elif", "else", "for", "if", "in",
	"lambda", "load", "not", "or", "pass", "return", "while",
}

var (
	// load("mod   or   load('./dir/fi
	loadModuleRE = regexp.MustCompile(`\bload\(\s*(["'])([^"']*)$`)
	// load("mod", "a", x = "b
	loadMemberRE = regexp.MustCompile(`\bload\(\s*(["'])([^"']*)["']\s*,(?:[^"')]*["'][^"']*["']\s*,)*\s*(?:\w+\s*=\s*)?(["'])([^"']*)$`)
)

// Complete returns the completions of the text before pos in line, in the
// form liner's WordCompleter wants: the text before the completed word
// (head), the candidate words, and the text after pos (tail). It completes
//
//   - nothing but blanks: four spaces (Tab indents a block's line);
//   - :commands, and file names after :load;
//   - in load(), module names and ./files (first argument), and the
//     members of the named module (later arguments);
//   - attributes after a dot, from the value's AttrNames
//     (semisync.be -> semisync.begin), for a dotted name bound in the
//     session;
//   - names: the session's globals, the predeclared names and Starlark's
//     builtins, and keywords.
//
// It evaluates nothing but names and attribute lookups. It is safe to call
// while [Session.Run] waits at a prompt (liner calls it from Prompt).
func (s *Session) Complete(line string, pos int) (head string, completions []string, tail string) {
	if pos < 0 || pos > len(line) {
		pos = len(line)
	}
	before, tail := line[:pos], line[pos:]

	if strings.TrimLeft(before, " \t") == "" {
		return before, []string{"    "}, tail // Tab indents, as in Python's REPL
	}

	if strings.HasPrefix(strings.TrimLeft(before, " \t"), ":") {
		trimmed := strings.TrimLeft(before, " \t")
		lead := before[:len(before)-len(trimmed)]
		if cmd, arg, ok := strings.Cut(trimmed, " "); ok {
			if cmd == ":load" {
				arg = strings.TrimLeft(arg, " ")
				return before[:len(before)-len(arg)], completeFile(arg, false), tail
			}
			return before, nil, tail
		}
		var list []string
		for _, c := range metaCommands {
			if strings.HasPrefix(c.name, trimmed) {
				list = append(list, c.name)
			}
		}
		return lead, list, tail
	}

	if m := loadMemberRE.FindStringSubmatchIndex(before); m != nil {
		module := before[m[4]:m[5]]
		partial := before[m[8]:m[9]]
		return before[:m[8]], s.moduleMembers(module, partial), tail
	}
	if m := loadModuleRE.FindStringSubmatchIndex(before); m != nil {
		partial := before[m[4]:m[5]]
		var list []string
		if strings.HasPrefix(partial, ".") || strings.Contains(partial, "/") {
			list = completeFile(partial, true)
		} else {
			for _, name := range s.in.ModuleNames() {
				if strings.HasPrefix(name, partial) {
					list = append(list, name)
				}
			}
		}
		return before[:m[4]], list, tail
	}

	// The dotted name that ends at pos.
	start := len(before)
	for start > 0 && (isIdentByte(before[start-1]) || before[start-1] == '.') {
		start--
	}
	word := before[start:]
	if word == "" || word[0] == '.' || ('0' <= word[0] && word[0] <= '9') {
		return before, nil, tail
	}
	if start > 0 && (before[start-1] == '"' || before[start-1] == '\'') {
		return before, nil, tail // in a string, probably
	}
	if dot := strings.LastIndexByte(word, '.'); dot >= 0 {
		base, partial := word[:dot], word[dot+1:]
		v := s.lookup(base)
		ha, ok := v.(starlark.HasAttrs)
		if !ok {
			return before, nil, tail
		}
		return before[:start+dot+1], withPrefix(ha.AttrNames(), partial), tail
	}
	return before[:start], withPrefix(s.names(), word), tail
}

// lookup returns the value of a dotted name (a, a.b, a.b.c) among the
// session's names, or nil.
func (s *Session) lookup(dotted string) starlark.Value {
	parts := strings.Split(dotted, ".")
	s.mu.Lock()
	v, ok := s.globals[parts[0]]
	s.mu.Unlock()
	if !ok {
		v, ok = s.predeclared()[parts[0]]
	}
	if !ok {
		v, ok = starlark.Universe[parts[0]]
	}
	if !ok {
		return nil
	}
	for _, p := range parts[1:] {
		ha, ok := v.(starlark.HasAttrs)
		if !ok {
			return nil
		}
		next, err := ha.Attr(p)
		if err != nil || next == nil {
			return nil
		}
		v = next
	}
	return v
}

// names returns every name an entry can use, sorted, without duplicates.
func (s *Session) names() []string {
	set := map[string]bool{}
	s.mu.Lock()
	for k := range s.globals {
		set[k] = true
	}
	s.mu.Unlock()
	for k := range s.predeclared() {
		set[k] = true
	}
	for k := range starlark.Universe {
		set[k] = true
	}
	for _, k := range keywords {
		set[k] = true
	}
	list := make([]string, 0, len(set))
	for k := range set {
		list = append(list, k)
	}
	sort.Strings(list)
	return list
}

// moduleMembers returns the members of a module load accepts by name
// (not of script files: loading one to complete would run it).
func (s *Session) moduleMembers(module, partial string) []string {
	known := false
	for _, name := range s.in.ModuleNames() {
		known = known || name == module
	}
	s.mu.Lock()
	th := s.th
	s.mu.Unlock()
	if !known || th == nil || th.Load == nil {
		return nil
	}
	members, err := th.Load(th, module)
	if err != nil {
		return nil
	}
	return withPrefix(members.Keys(), partial)
}

// withPrefix returns the sorted elements of list that start with prefix;
// names starting with "_" only if prefix does.
func withPrefix(list []string, prefix string) []string {
	var out []string
	for _, x := range list {
		if strings.HasPrefix(x, prefix) && (prefix != "" || !strings.HasPrefix(x, "_")) {
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

// completeFile completes a file path: directories (with a trailing
// slash) and, if starOnly, only .star files. Paths are relative to the
// current directory and keep the form typed (a leading "./" stays).
func completeFile(partial string, starOnly bool) []string {
	dir, base := filepath.Split(partial)
	readDir := dir
	if readDir == "" {
		readDir = "."
	}
	entries, err := os.ReadDir(readDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, base) || strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".") {
			continue
		}
		switch {
		case e.IsDir():
			out = append(out, dir+name+"/")
		case !starOnly || strings.HasSuffix(name, ".star"):
			out = append(out, dir+name)
		}
	}
	sort.Strings(out)
	return out
}

// predeclared returns the names every entry sees without load (none before
// Run has started the session's run).
func (s *Session) predeclared() starlark.StringDict {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == nil {
		return nil
	}
	return s.state.Predeclared()
}
