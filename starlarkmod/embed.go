package starlarkmod

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// RunOptions configures one run (see [Interpreter.NewRunWith]).
type RunOptions struct {
	// Root is the directory that load() of script files stays under: a
	// directory of the file system, or of FS if set. "" means the
	// interpreter's root ([Interpreter.SetRoot]), else "." .
	Root string
	// FS, if set, is where the run's script files are read from: the main
	// script (given by name to [Run.Exec] without a source) and every file
	// it loads. Names are slash-separated, as io/fs wants.
	FS fs.FS
	// Predeclared adds names that every module of the run sees without
	// load (a host's functions and values), beside or instead of the
	// built-in ones. Values must be frozen or safe for concurrent use;
	// a *starlark.Builtin among them that panics fails with a Starlark
	// error instead of crashing the program.
	Predeclared starlark.StringDict
}

// NewRunWith returns the state of a new execution under ctx, configured by
// opts: the run's background work runs under ctx, load() reads under
// opts.Root (of opts.FS, if set), and its modules see opts.Predeclared.
// Call [Run.Exec] to run a script in it, or [Run.NewThread] for calls of
// your own (then [Run.Wait] when it is done).
func (in *Interpreter) NewRunWith(ctx context.Context, opts RunOptions) *Run {
	root := opts.Root
	if root == "" && opts.FS == nil {
		root = in.root
	}
	if root == "" {
		root = "."
	}
	r := in.newRun(ctx, root)
	r.fsys = opts.FS
	if len(opts.Predeclared) > 0 {
		for k, v := range guardBuiltins(opts.Predeclared) {
			r.predecl[k] = v
		}
	}
	return r
}

// Exec runs a script as the main module of a new run under ctx, like
// go.starlark.net's ExecFileOptions: src is its source (a string, a
// []byte or an io.Reader), or nil to read the file filename. filename
// names the script in error messages; load() reads script files under
// its directory (or the interpreter's root, see [Interpreter.SetRoot]).
// predeclared adds names for this run only (see [RunOptions]).
//
// Cancelling ctx stops the script's Starlark code and all its tasks
// promptly, busy loops and sleeps included; the error then satisfies
// errors.Is(err, context.Canceled) or errors.Is(err,
// context.DeadlineExceeded), as ctx.Err() does. Exec waits for the
// background work the script started (futures, pipelines, messages)
// before it returns, and returns the first error: the script's, else one
// reporting background failures nobody observed. It returns the script's
// globals, frozen.
func (in *Interpreter) Exec(ctx context.Context, filename string, src any, predeclared starlark.StringDict) (starlark.StringDict, error) {
	root := in.rootFor(filename)
	if src != nil && in.root == "" {
		root = "." // a source string: loads are relative to the current directory
	}
	return in.NewRunWith(ctx, RunOptions{Root: root, Predeclared: predeclared}).Exec(filename, src)
}

// ExecFS runs the script name of fsys as [Interpreter.Exec] does a file;
// load() reads the script files it loads from fsys too, relative to the
// loading file, never outside name's directory.
func (in *Interpreter) ExecFS(ctx context.Context, fsys fs.FS, name string, predeclared starlark.StringDict) (starlark.StringDict, error) {
	return in.NewRunWith(ctx, RunOptions{Root: path.Dir(name), FS: fsys, Predeclared: predeclared}).Exec(name, nil)
}

// Exec runs a script as a main module of the run, on a new main thread:
// src is its source (a string, a []byte or an io.Reader), or nil to read
// the file filename (from the run's FS, if it has one). Then it waits for
// the run's background work and returns the first error, as
// [Interpreter.Exec] does.
func (r *Run) Exec(filename string, src any) (starlark.StringDict, error) {
	b, err := r.readSource(filename, src)
	if err != nil {
		return nil, err
	}
	th := r.NewThread("main")
	globals, err := withContext(r.ctx, th, func() (starlark.StringDict, error) {
		return r.execModule(th, filename, b)
	})
	r.Leave(th)
	werr := r.waitAtEnd()
	if err == nil {
		err = werr
	}
	return globals, r.cancelled(err)
}

// readSource returns the source of a script: src, or the file filename.
func (r *Run) readSource(filename string, src any) ([]byte, error) {
	switch s := src.(type) {
	case nil:
		if r.fsys != nil {
			return fs.ReadFile(r.fsys, filename)
		}
		return os.ReadFile(filename)
	case string:
		return []byte(s), nil
	case []byte:
		return s, nil
	case io.Reader:
		return io.ReadAll(s)
	}
	return nil, fmt.Errorf("semisync: invalid source of %s: got %T, want string, []byte, io.Reader or nil", filename, src)
}

// waitAtEnd is [Run.Wait] at the end of a script: if the wait lasts
// longer than Options.WaitNotice, it says so on Stderr, naming the running
// tasks; if the run's context ends while it waits (Ctrl-C), the error
// names the tasks that were cancelled.
func (r *Run) waitAtEnd() error {
	begin := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	if d := r.in.opts.WaitNotice; d > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-done:
			case <-t.C:
				if running := r.running(time.Time{}); len(running) > 0 {
					r.in.report(fmt.Sprintf("semisync: the script has ended; waiting for %s (Ctrl-C cancels them):\n%s",
						plural(len(running), "running task"), describeTasks(running)))
				}
			}
		}()
	}
	_, err := recovered(func() (struct{}, error) { return struct{}{}, r.Wait(r.ctx) })
	close(done)
	wg.Wait()
	if err == nil || r.ctx.Err() == nil {
		return err
	}
	cancelled := r.running(begin)
	if len(cancelled) == 0 {
		return err
	}
	return fmt.Errorf("semisync: %w while waiting for background work; cancelled %s:\n%s",
		err, plural(len(cancelled), "running task"), describeTasks(cancelled))
}

// running returns the run's tasks that have not ended, and if since is
// not zero, those that ended after since without completing (the ones
// a cancellation stopped).
func (r *Run) running(since time.Time) []TaskInfo {
	var list []TaskInfo
	for _, t := range r.Tasks() {
		if t.End.IsZero() || !since.IsZero() && t.End.After(since) && t.Status != "done" {
			list = append(list, t)
		}
	}
	return list
}

func describeTasks(ts []TaskInfo) string {
	var b strings.Builder
	for i, t := range ts {
		if i == 8 {
			fmt.Fprintf(&b, "  ... and %d more\n", len(ts)-i)
			break
		}
		fmt.Fprintf(&b, "  %s %s (running for %s)\n", t.Kind, t.Desc, t.Dur.Round(time.Millisecond))
	}
	return strings.TrimRight(b.String(), "\n")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// cancelled returns err so that errors.Is finds ctx.Err() in it if the
// run's context has ended (the message stays err's).
func (r *Run) cancelled(err error) error {
	if err == nil {
		return nil
	}
	cerr := r.ctx.Err()
	if cerr == nil || errors.Is(err, cerr) {
		return err
	}
	return &cancelError{err: err, ctxErr: cerr}
}

// A cancelError is the error of code stopped because its context ended:
// it reads as the error, and errors.Is also finds the context's error
// (context.Canceled or context.DeadlineExceeded).
type cancelError struct {
	err    error
	ctxErr error
}

func (e *cancelError) Error() string   { return e.err.Error() }
func (e *cancelError) Unwrap() []error { return []error{e.err, e.ctxErr} }

// Call calls fn (typically a function from the globals [Interpreter.Exec]
// returned) with args and kwargs, on a new run under ctx whose main thread
// is the calling goroutine, and waits for the background work it starts.
// Cancelling ctx stops it, as for Exec; the error then satisfies errors.Is
// with ctx.Err(). The result is returned as is (use [ToGo] to convert it).
func (in *Interpreter) Call(ctx context.Context, fn starlark.Value, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := in.NewRun(ctx, "")
	th := r.NewThread("call")
	v, err := withContext(ctx, th, func() (starlark.Value, error) {
		return starlark.Call(th, fn, args, kwargs)
	})
	r.Leave(th)
	werr := r.waitAtEnd()
	if err == nil {
		err = werr
	}
	return v, r.cancelled(r.explainFrozen(err))
}

// Block runs f, a blocking call of a host builtin (a network request,
// a database query), on behalf of the code running on th: f gets th's
// context (see [Context]), which ends when that code is cancelled, and
// must return soon after it does. While f runs, the thread counts as
// waiting, like [Recv]: other tasks go on (in sequential mode they run),
// and Ctrl-C returns at once with the context's error (f's goroutine is
// left to finish on its own, so f must honour its context).
func Block[T any](th *starlark.Thread, f func(ctx context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ctx := Context(th)
	ch := make(chan result, 1)
	go func() {
		var res result
		defer func() {
			if p := recover(); p != nil {
				res.err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
			ch <- res
		}()
		res.v, res.err = f(ctx)
	}()
	res, _, err := Recv(th, ch, 0)
	if err != nil {
		var zero T
		return zero, context.Cause(ctx)
	}
	return res.v, res.err
}

// recovered calls f on a run's main thread (or while it waits at the end)
// and turns a Go panic (a builtin's bug, or a task's panic that the engine
// re-raised where its result was collected) into an error with the Go
// stack, so a script cannot crash the program that runs it.
func recovered[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			var zero T
			v, err = zero, fmt.Errorf("semisync: a Go builtin panicked (a bug: please report it): %v\n%s", p, panicFrames())
		}
	}()
	return f()
}

// guardBuiltins returns d with each *starlark.Builtin (also inside a
// module value) replaced by one that turns a Go panic into a Starlark
// error naming the builtin: a host's bug then fails the script with a
// traceback instead of crashing the program.
func guardBuiltins(d starlark.StringDict) starlark.StringDict {
	out := make(starlark.StringDict, len(d))
	for k, v := range d {
		out[k] = guardValue(v)
	}
	return out
}

func guardValue(v starlark.Value) starlark.Value {
	switch v := v.(type) {
	case *starlark.Builtin:
		return guardBuiltin(v)
	case *starlarkstruct.Module:
		return &starlarkstruct.Module{Name: v.Name, Members: guardBuiltins(v.Members)}
	}
	return v
}

func guardBuiltin(b *starlark.Builtin) *starlark.Builtin {
	g := starlark.NewBuiltin(b.Name(), func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (v starlark.Value, err error) {
		defer func() {
			if p := recover(); p != nil {
				v, err = nil, fmt.Errorf("%s: the Go function panicked: %v (a bug in the host program)\n%s", b.Name(), p, panicFrames())
			}
		}()
		return b.CallInternal(th, args, kwargs)
	})
	if recv := b.Receiver(); recv != nil {
		g = g.BindReceiver(recv)
	}
	return g
}

// panicFrames returns the Go stack of a recovered panic, without the
// frames of the recovery itself.
func panicFrames() string {
	lines := strings.Split(strings.TrimRight(string(debug.Stack()), "\n"), "\n")
	// Skip the frames up to and including panic itself.
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") {
			if i+2 <= len(lines) {
				lines = lines[i+2:]
			}
			break
		}
	}
	if len(lines) > 12 {
		lines = append(lines[:12], "\t...")
	}
	return "Go stack:\n" + strings.Join(lines, "\n")
}

// withhold applies Options.Withhold to a new run: each withheld
// predeclared name, and each module member that is the same builtin or
// has that name, becomes a builtin that fails saying the host withheld
// it; a withheld module name is removed from what load accepts.
func (in *Interpreter) withhold(r *Run) {
	if len(in.opts.Withhold) == 0 {
		return
	}
	refused := map[*starlark.Builtin]bool{}
	for _, name := range in.opts.Withhold {
		if v, ok := r.predecl[name]; ok {
			if b, ok := v.(*starlark.Builtin); ok {
				refused[b] = true
			}
			r.predecl[name] = withheldBuiltin(name)
		}
	}
	for modName, m := range r.mods {
		if slices.Contains(in.opts.Withhold, modName) {
			delete(r.mods, modName)
			continue
		}
		var copied starlark.StringDict
		for k, v := range m {
			b, _ := v.(*starlark.Builtin)
			if refused[b] || slices.Contains(in.opts.Withhold, k) {
				if copied == nil {
					copied = make(starlark.StringDict, len(m))
					for k2, v2 := range m {
						copied[k2] = v2
					}
				}
				copied[k] = withheldBuiltin(k)
			}
		}
		if copied != nil {
			r.mods[modName] = copied
		}
	}
}

// withheldBuiltin is what a script finds under a name the host withheld:
// calling it, or using one of its attributes (dispatcher.send), fails
// saying so.
func withheldBuiltin(name string) starlark.Value { return withheld(name) }

type withheld string

var (
	_ starlark.Callable = withheld("")
	_ starlark.HasAttrs = withheld("")
	_ Crosser           = withheld("")
)

func (w withheld) err() error {
	return fmt.Errorf("%s: not available here: the program running this script withheld it", string(w))
}
func (w withheld) String() string        { return fmt.Sprintf("<withheld %s>", string(w)) }
func (w withheld) Type() string          { return "withheld" }
func (w withheld) Freeze()               {}
func (w withheld) Truth() starlark.Bool  { return true }
func (w withheld) Hash() (uint32, error) { return starlark.String(w).Hash() }
func (w withheld) Name() string          { return string(w) }
func (w withheld) AttrNames() []string   { return nil }
func (w withheld) Attr(string) (starlark.Value, error) {
	return nil, w.err()
}
func (w withheld) CallInternal(*starlark.Thread, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return nil, w.err()
}
func (w withheld) Cross(func(starlark.Value) error) error { return nil }

// loadFS is load() of a script file for a run with an FS: path is
// relative to the loading file, slash-separated, and must stay under the
// run's root in the FS.
func (r *Run) loadFS(th *starlark.Thread, module string) (starlark.StringDict, error) {
	from := "."
	if th.CallStackDepth() > 0 {
		from = path.Dir(th.CallFrame(0).Pos.Filename())
	}
	p := path.Join(from, module)
	rel := p
	if r.root != "." {
		rel = strings.TrimPrefix(p, r.root+"/")
	}
	if !fs.ValidPath(p) || rel == p && r.root != "." {
		return nil, fmt.Errorf("%s is outside the script's root directory %s", p, r.root)
	}
	key := "fs:" + p
	r.loadMu.Lock()
	e, ok := r.loads[key]
	if ok && !e.done {
		r.loadMu.Unlock()
		return nil, fmt.Errorf("cycle in load graph: %s loads itself", p)
	}
	if !ok {
		e = &loadEntry{}
		r.loads[key] = e
	}
	r.loadMu.Unlock()
	if ok {
		return e.globals, e.err
	}
	src, err := fs.ReadFile(r.fsys, p)
	if err == nil {
		e.globals, err = r.execModule(th, p, src)
	}
	r.loadMu.Lock()
	e.err, e.done = err, true
	r.loadMu.Unlock()
	return e.globals, err
}
