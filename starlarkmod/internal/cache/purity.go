package cache

import (
	"sort"
	"strings"
)

// Purity decides which builtins and host values a cached function may
// reach. A function is pure when everything it reaches is frozen data,
// other script functions (whose own reach is part of the same list), or
// a builtin in the pure table below or declared pure by the host. The
// table is an allow-list: a builtin it does not name is impure, so a new
// builtin is safe until someone adds it here.
//
// A Purity is immutable and safe for concurrent use.
type Purity struct {
	declared map[string]bool
}

// NewPurity returns the purity rules with the host's builtins declared
// pure added: each is named as the task encoding names it ("name" for a
// predeclared builtin, "module.name" for a member of a loadable module).
func NewPurity(declared []string) *Purity {
	p := &Purity{declared: make(map[string]bool, len(declared))}
	for _, n := range declared {
		p.declared[n] = true
	}
	return p
}

// pure lists the builtins whose result depends only on their arguments
// and which change nothing: Starlark's universe (less print), semisync's
// sum, and the pure members of math, json and time.
var pure = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(`
		abs all any bool bytes chr dict dir enumerate fail float getattr
		hasattr hash int len list max min ord range repr reversed set sorted
		str tuple type zip sum
		json.encode json.decode json.indent json.encode_indent
		time.parse_duration time.parse_time time.from_timestamp time.time
		time.is_valid_timezone
		time.nanosecond time.microsecond time.millisecond time.second
		time.minute time.hour`) {
		m[n] = true
	}
	return m
}()

// pureModules are modules all of whose members are pure.
var pureModules = []string{"math."}

// why says, for impure builtins a script is likely to reach, why a cached
// call cannot skip them.
var why = map[string]string{
	"print":        "a cached call would not print",
	"sleep":        "it waits",
	"time.sleep":   "it waits",
	"time.now":     "it reads the clock",
	"Manager":      "it shares state between tasks",
	"Lock":         "it shares state between tasks",
	"dispatcher":   "it sends messages",
	"Dispatcher":   "it sends messages",
	"future":       "it starts background work",
	"wait":         "it waits for other tasks",
	"as_completed": "it waits for other tasks",
	"job":          "it starts a job",
	"semisync":     "it queues semisync calls",
	"coroutine":    "it starts a pipeline",
	"generator":    "it starts a pipeline",
	"inject":       "it feeds a pipeline",
	"broadcast":    "it feeds a pipeline",
	"load":         "it loads modules",
}

// Pure reports whether reaching name (a builtin or a host value, as the
// task encoding names it) keeps a function pure.
func (p *Purity) Pure(name string) bool {
	if pure[name] || p.declared[name] {
		return true
	}
	for _, m := range pureModules {
		if strings.HasPrefix(name, m) {
			return true
		}
	}
	return false
}

// Why says why reaching name (impure) makes a function impure, for
// messages: "it reads the clock", "it draws random numbers", or for a
// builtin the table does not know, that it is not declared pure.
func (p *Purity) Why(name string) string {
	if w, ok := why[name]; ok {
		return w
	}
	if name == "random" || strings.HasPrefix(name, "random.") {
		return "it draws random numbers"
	}
	if strings.HasPrefix(name, "multiprocessing.") {
		return "it shares state between tasks"
	}
	return "it is not a builtin known to be pure (a host declares its pure builtins in Options.PureBuiltins)"
}

// PureNames returns the builtins of the pure table, sorted, for docs and
// tests (members of the math module appear as "math.*").
func PureNames() []string {
	names := make([]string, 0, len(pure)+len(pureModules))
	for n := range pure {
		names = append(names, n)
	}
	for _, m := range pureModules {
		names = append(names, m+"*")
	}
	sort.Strings(names)
	return names
}
