package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	gomath "math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.starlark.net/lib/json"
	"go.starlark.net/lib/math"
	starlarktime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod/internal/builtin"
	"github.com/semisync/semisync/starlarkmod/random"
	"github.com/semisync/semisync/starlarkmod/shared"
)

// Predeclared returns the names every script of the run sees without
// load: the builtins of DESIGN.md section 4 and argv (the script's
// arguments). The global dispatcher is the run's own.
func (r *Run) Predeclared() starlark.StringDict { return r.predecl }

// predeclared returns the interpreter's predeclared names, shared by its
// runs, with a placeholder for what each run has of its own (dispatcher).
// Compilation needs only the names.
func (in *Interpreter) predeclared() starlark.StringDict {
	in.predeclOnce.Do(func() {
		argv := make([]starlark.Value, len(in.opts.Args))
		for i, a := range in.opts.Args {
			argv[i] = starlark.String(a)
		}
		list := starlark.NewList(argv)
		list.Freeze()
		in.predecl = starlark.StringDict{
			"semisync": semisyncValue{},
			"Manager":  shared.Module.Members["Manager"],
			"Lock":     shared.Module.Members["Lock"],
			"sleep":    sleepBuiltin,
			"argv":     list,
			"job":      jobBuiltin,
			"sum":      sumBuiltin, // python.go

			"future":       starlark.NewBuiltin("future", futureDecorator),
			"is_async":     starlark.NewBuiltin("is_async", isAsync),
			"wait":         starlark.NewBuiltin("wait", waitAll),
			"as_completed": starlark.NewBuiltin("as_completed", asCompleted),

			// pipeline.go, dispatcher.go
			"coroutine":  starlark.NewBuiltin("coroutine", coroutineDecorator),
			"generator":  starlark.NewBuiltin("generator", generatorDecorator),
			"inject":     starlark.NewBuiltin("inject", inject),
			"broadcast":  starlark.NewBuiltin("broadcast", newBroadcast),
			"Dispatcher": starlark.NewBuiltin("Dispatcher", newDispatcherBuiltin),
			"dispatcher": starlark.None, // each run's own: see newRun
		}
		in.predecl.Freeze()
	})
	return in.predecl
}

// modules are the names load accepts besides script files, each with its
// members.
func (in *Interpreter) modules() map[string]starlark.StringDict {
	in.modulesOnce.Do(func() {
		pre := in.predeclared()
		timeMembers := starlark.StringDict{"sleep": sleepBuiltin}
		for k, v := range starlarktime.Module.Members {
			timeMembers[k] = v
		}
		in.mods = map[string]starlark.StringDict{
			"semisync":        {"semisync": pre["semisync"]},
			"spychronous":     {"SynchronousJob": pre["job"]},
			"multiprocessing": shared.Module.Members,
			"time":            timeMembers,
			"random":          random.Module.Members,
			"math":            math.Module.Members,
			"json":            json.Module.Members,
			"synchronicity":   {"Synchronizer": starlark.NewBuiltin("Synchronizer", newSynchronizer)},
			"concert.helpers": {
				"future":       pre["future"],
				"is_async":     pre["is_async"],
				"wait":         pre["wait"],
				"as_completed": pre["as_completed"],
				"coroutine":    pre["coroutine"],
				"generator":    pre["generator"],
				"inject":       pre["inject"],
				"broadcast":    pre["broadcast"],
				"Dispatcher":   pre["Dispatcher"],
				"dispatcher":   pre["dispatcher"],
			},
		}
		bindModuleSelves(in.mods) // python.go: load("json", "json")
		for name, m := range in.opts.Modules {
			in.mods[name] = guardBuiltins(m) // embed.go: a host builtin's panic is a Starlark error
		}
	})
	return in.mods
}

// ModuleNames lists the modules load accepts by name.
func (in *Interpreter) ModuleNames() []string { return builtin.SortedKeys(in.modules()) }

type loadEntry struct {
	globals starlark.StringDict
	err     error
	done    bool
}

// load implements load(): a module name from ModuleNames, or a script file
// named relative to the loading file, which must stay under the run's root
// directory (that of the main script). Each file runs once per run; its
// globals are frozen.
func (r *Run) load(th *starlark.Thread, module string) (starlark.StringDict, error) {
	in := r.in
	if m, ok := r.mods[module]; ok {
		return m, nil
	}
	if slices.Contains(in.opts.Withhold, module) {
		return nil, fmt.Errorf("module %s is not available here: the program running this script withheld it", module)
	}
	if !strings.HasSuffix(module, ".star") {
		return nil, fmt.Errorf("no module %q: load a script file (\"./name.star\") or one of %s", module, strings.Join(in.ModuleNames(), ", "))
	}
	if r.fsys != nil {
		return r.loadFS(th, module) // embed.go
	}
	from := "."
	if th.CallStackDepth() > 0 {
		from = filepath.Dir(th.CallFrame(0).Pos.Filename())
	}
	path := filepath.Join(from, filepath.FromSlash(module))
	abs, err := r.underRoot(path)
	if err != nil {
		return nil, err
	}
	r.loadMu.Lock()
	e, ok := r.loads[abs]
	if ok && !e.done {
		r.loadMu.Unlock()
		return nil, fmt.Errorf("cycle in load graph: %s loads itself", path)
	}
	if !ok {
		e = &loadEntry{}
		r.loads[abs] = e
	}
	r.loadMu.Unlock()
	if ok {
		return e.globals, e.err
	}
	src, err := readScript(path, abs)
	if err == nil {
		e.globals, err = r.execModule(th, path, src)
	}
	r.loadMu.Lock()
	e.err, e.done = err, true
	r.loadMu.Unlock()
	return e.globals, err
}

// underRoot checks that path is inside the run's root, both as written
// and with symbolic links resolved, and returns the resolved path.
func (r *Run) underRoot(path string) (string, error) {
	root := r.root
	if root == "" {
		root = "."
	}
	inside := func(root, p string) bool {
		rel, err := filepath.Rel(root, p)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if !inside(absRoot, abs) {
		return "", fmt.Errorf("%s is outside the script's root directory %s", path, root)
	}
	realRoot, err := filepath.EvalSymlinks(absRoot)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, errors.Unwrap(err))
	}
	if !inside(realRoot, real) {
		return "", fmt.Errorf("%s is a link to a file outside the script's root directory %s", path, root)
	}
	return real, nil
}

// readScript reads the script file at abs (named path in errors). Only a
// regular file is read: a named pipe would block the load forever and a
// device such as /dev/zero would never end. (A file swapped for a pipe
// between the check and the read is not caught; doing that needs write
// access to the script's root.)
func readScript(path, abs string) ([]byte, error) {
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (it is %s)", path, fileKind(fi.Mode()))
	}
	return os.ReadFile(abs)
}

// fileKind names the kind of a file that is not a regular file.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "of type " + m.Type().String()
}

// SetRoot sets the directory that the loads of later runs must stay under
// (by default, the main script's directory, or for [Interpreter.NewRun]
// the current directory). Call it before starting runs.
func (in *Interpreter) SetRoot(dir string) { in.root = dir }

// sleep(secs) waits for secs seconds. It returns early with an error when
// the thread is cancelled (Ctrl-C, a timeout, a cancelled future); a task
// that sleeps does not hold up other work.
var sleepBuiltin = starlark.NewBuiltin("sleep", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var secs starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &secs); err != nil {
		return nil, err
	}
	f, ok := starlark.AsFloat(secs)
	if !ok {
		return nil, fmt.Errorf("%s: got %s, want a number of seconds", b.Name(), secs.Type())
	}
	// Converting nan, inf or more than about 292 years of seconds to a
	// time.Duration overflows silently and would return at once; CPython
	// raises for all of them (ValueError, OverflowError).
	switch {
	case gomath.IsNaN(f):
		return nil, fmt.Errorf("%s: invalid duration nan (want a finite number of seconds)", b.Name())
	case f < 0:
		return nil, fmt.Errorf("%s: negative duration %v (want a number of seconds >= 0)", b.Name(), secs)
	case f > builtin.MaxSeconds:
		return nil, fmt.Errorf("%s: duration %v is too long (at most %d seconds)", b.Name(), secs, int64(builtin.MaxSeconds))
	}
	ctx := contextOf(th)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), context.Cause(ctx))
	}
	// sleep(0) lets the other threads go first, as in Python (in
	// sequential mode, every task that is ready runs before it returns).
	if err := workerOf(th).Sleep(ctx, time.Duration(f*float64(time.Second))); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), scriptCause(err))
	}
	return starlark.None, nil
})
