// Command semisync runs semisync scripts: Starlark files that describe
// concurrent work (semisync graphs, jobs, futures, pipelines, a
// dispatcher), run truly in parallel.
//
//	semisync [flags] FILE.star [ARGS...]   run a script; ARGS are its argv[1:]
//	semisync [flags] -c CODE [ARGS...]     run CODE
//	semisync [flags] - [ARGS...]           run the script read from stdin
//	semisync [flags] [repl]                the interactive REPL (see package repl)
//	semisync version                       print the version
//
// Exit codes: 0 ok, 1 script error, 2 usage (a bad flag, a missing
// script), 130 interrupted (Ctrl-C).
//
// The flags are registered by [registerFlags] on a [config]; the
// subcommands are in [subcommands]. A feature with flags of its own
// registers them from a function in its own file, called with one line in
// registerFlags; to take part in a run of a script it appends a [hook] to
// config.hooks there (before: change the interpreter's options; after:
// see the run and its error). A subcommand of its own is one line in
// subcommands; it parses its own flags from the arguments after its name.
// Before-hooks run for scripts, the REPL and subcommands alike (the REPL
// and subcommands use config.opts too); after-hooks for scripts and the
// REPL (with a nil run), not for subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/semisync/semisync/repl"
	"github.com/semisync/semisync/starlarkmod"
)

// version is the semisync version, set at build time with -ldflags "-X main.version=...".
var version = "0.1.0"

const usage = `usage: semisync [flags] FILE.star [ARGS...]
       semisync [flags] -c CODE [ARGS...]
       semisync [flags] - [ARGS...]        (the script is read from stdin)
       semisync [flags] [repl]
       semisync version

Runs a semisync script. ARGS are visible to the script as argv[1:].
With no script, or "repl", starts the interactive REPL (:help there).

flags:
`

func main() { os.Exit(doMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

var errInterrupted = errors.New("interrupted")

// A config is what the command line says: the interpreter's options and
// how to run. Files that add flags keep their values here or in their own
// variables, and change the run through hooks.
type config struct {
	opts       starlarkmod.Options
	timeout    time.Duration
	root       string
	code       string
	codeSet    bool
	version    bool
	waitNotice time.Duration // how long the end of a script may wait silently for background work

	stdin          io.Reader
	stdout, stderr io.Writer

	hooks []hook
}

// A hook lets a feature take part in a run of a script. before runs once
// the flags are parsed, before the interpreter exists: it may change the
// interpreter's options (and return an error to stop with status 2).
// after runs when the script and its background work (or the REPL) have ended, with
// their error (nil if none) and the run (nil for the REPL); it returns the error to report (the same,
// or a new one, e.g. a trace file that could not be written).
type hook struct {
	before func(c *config) error
	after  func(c *config, r *starlarkmod.Run, err error) error
}

// registerFlags defines every flag of the command on fs, storing values
// in c. Each feature with flags of its own adds a line here calling a
// function in its own file.
func registerFlags(fs *flag.FlagSet, c *config) {
	registerCoreFlags(fs, c)
	registerCompileFlags(fs, c)
	registerObserveFlags(fs, c) // observe.go
	registerCacheFlags(fs, c)   // cache.go
	registerClusterFlags(fs, c) // cluster.go
}

// registerCoreFlags defines the flags of running a script.
func registerCoreFlags(fs *flag.FlagSet, c *config) {
	fs.Var(envBool{&c.opts.Sequential}, "sequential", "run tasks one at a time in a deterministic order, with the same results (also SEMISYNC_SEQUENTIAL=1)")
	fs.Func("seed", "make random deterministic: each task draws from its own stream, seeded from `N` and the task's identity", func(s string) error {
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			return errors.New("want an integer")
		}
		c.opts.Seed, c.opts.Seeded = n, true
		return nil
	})
	fs.Uint64Var(&c.opts.MaxSteps, "max-steps", 0, "limit each thread (the script, each task) to `N` Starlark steps (0: no limit)")
	fs.Var(durationFlag{&c.timeout}, "timeout", "stop the script after `DURATION` (e.g. 30s, 1m30s) and exit 1")
	fs.StringVar(&c.root, "root", "", "let load() read files under `DIR` (default: the script's directory)")
	fs.Func("c", "run `CODE` (a source string) instead of a file; argv[0] is \"-c\"", func(s string) error {
		c.code, c.codeSet = s, true
		return nil
	})
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
}

// A subcommand runs when its name is the first argument after the flags,
// with the arguments after its name.
type subcommand struct {
	run  func(c *config, args []string) int
	help string
}

// subcommands are the command's subcommands. A file of its own adds one
// with one line here. A script file of the same name runs as ./NAME.
var subcommands = map[string]subcommand{
	"repl":    {runREPL, "start the interactive REPL (also: no script)"},
	"version": {func(c *config, _ []string) int { return printVersion(c) }, "print the version"},
	"cache":   {func(c *config, args []string) int { return cacheCommand(args, c.stdout, c.stderr) }, "show or clear the result cache: cache stats|clear [--cache DIR]"},
	"worker":  {runWorker, "serve the tasks of semisync --nats URL (see semisync worker --help)"},
}

func printVersion(c *config) int {
	fmt.Fprintf(c.stdout, "semisync %s\n", version)
	return 0
}

func doMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	c := &config{stdin: stdin, stdout: stdout, stderr: stderr, waitNotice: time.Second}
	seq, err := parseBool(os.Getenv("SEMISYNC_SEQUENTIAL"))
	if err != nil {
		fmt.Fprintf(stderr, "semisync: SEMISYNC_SEQUENTIAL=%q: %v\n", os.Getenv("SEMISYNC_SEQUENTIAL"), err)
		return 2
	}
	c.opts.Sequential = seq

	fs := flag.NewFlagSet("semisync", flag.ContinueOnError)
	registerFlags(fs, c)
	// The flag package prints an error and the whole usage; print the
	// error as a runner error with a pointer to --help instead.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, stderr)
			return 0
		}
		fmt.Fprintf(stderr, "semisync: %v\nRun 'semisync --help' for usage.\n", err)
		return 2
	}
	if c.version {
		return printVersion(c)
	}
	for _, h := range c.hooks {
		if h.before != nil {
			if err := h.before(c); err != nil {
				fmt.Fprintf(stderr, "semisync: %v\n", err)
				return 2
			}
		}
	}
	rest := fs.Args()
	if c.codeSet {
		return runScript(c, "<string>", []byte(c.code), append([]string{"-c"}, rest...))
	}
	if len(rest) == 0 {
		return runREPL(c, nil)
	}
	if sub, ok := subcommands[rest[0]]; ok {
		return sub.run(c, rest[1:])
	}
	if rest[0] == "-" {
		src, err := io.ReadAll(stdin)
		if err != nil {
			fmt.Fprintf(stderr, "semisync: reading the script from stdin: %v\n", err)
			return 2
		}
		return runScript(c, "<stdin>", src, rest)
	}
	path := rest[0]
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "semisync: cannot open script %s: %v\n", path, errors.Unwrap(err))
		return 2
	case fi.IsDir():
		fmt.Fprintf(stderr, "semisync: cannot run %s: it is a directory\n", path)
		return 2
	}
	return runScript(c, path, nil, rest)
}

// printUsage prints the command's usage, flags and subcommands to w.
func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, usage)
	fs.VisitAll(func(f *flag.Flag) {
		arg, help := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if len(f.Name) == 1 {
			name = "-" + f.Name
		}
		if arg != "" {
			name += " " + arg
		}
		if len(name) > 18 {
			fmt.Fprintf(w, "  %s\n  %-18s  %s\n", name, "", help)
		} else {
			fmt.Fprintf(w, "  %-18s  %s\n", name, help)
		}
	})
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(subcommands))
	for name := range subcommands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, subcommands[name].help)
	}
}

// runREPL starts the interactive REPL with args as argv[1:].
func runREPL(c *config, args []string) int {
	opts := c.opts
	opts.Args = append([]string{""}, args...) // argv[0] is "", as in Python's interactive mode
	if f, ok := c.stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprintf(c.stderr, "semisync %s: Starlark with tasks on every core. Type :help for help, Ctrl-D to exit.\n", version)
	}
	err := repl.RunTerminal(context.Background(), repl.Options{
		Stdout: c.stdout,
		Stderr: c.stderr,
		Interp: opts,
	})
	for _, h := range c.hooks {
		if h.after != nil {
			err = h.after(c, nil, err)
		}
	}
	if err != nil {
		fmt.Fprintln(c.stderr, starlarkmod.FormatError(err))
		return 1
	}
	return 0
}

// runScript runs a script: the file at filename if src is nil, else src
// (named filename in errors), with argv.
func runScript(c *config, filename string, src []byte, argv []string) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer func() { signal.Stop(sigs); close(sigs) }()
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		cancel(errInterrupted)
		if _, ok := <-sigs; ok { // a second Ctrl-C: stop waiting
			fmt.Fprintln(c.stderr, "semisync: interrupted twice, exiting now")
			os.Exit(130)
		}
	}()
	if c.timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, c.timeout, fmt.Errorf("timeout: the script ran longer than %s", c.timeout))
		defer stop()
	}

	opts := c.opts
	opts.Stdout, opts.Stderr = c.stdout, c.stderr
	opts.Args = argv
	opts.WaitNotice = c.waitNotice
	in := starlarkmod.New(opts)
	root := c.root
	if root == "" {
		root = "."
		if src == nil {
			root = filepath.Dir(filename)
		}
	}
	r := in.NewRunWith(ctx, starlarkmod.RunOptions{Root: root})
	var err error
	if src == nil {
		_, err = r.Exec(filename, nil)
	} else {
		_, err = r.Exec(filename, src)
	}
	// Close first: it waits for every task, including those a Ctrl-C or a
	// timeout cancelled that are still unwinding, so that the after-hooks
	// (the trace, the cache's store) see the whole run.
	if cerr := in.Close(); err == nil {
		err = cerr
	}
	for _, h := range c.hooks {
		if h.after != nil {
			err = h.after(c, r, err)
		}
	}
	if err == nil {
		return 0
	}
	fmt.Fprintln(c.stderr, starlarkmod.FormatError(err))
	if errors.Is(context.Cause(ctx), errInterrupted) {
		return 130
	}
	return 1
}

// durationFlag is a time.Duration flag that explains what it wants: a
// bare number ("1") needs a unit, and a negative duration is refused.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return fmt.Errorf("a duration needs a unit: %ss, %sms or %sm", s, s, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 30s, 500ms or 1m30s")
	}
	if d < 0 {
		return errors.New("a timeout cannot be negative")
	}
	*f.d = d
	return nil
}

// envBool is a boolean flag whose default comes from the environment.
type envBool struct{ b *bool }

func (f envBool) String() string {
	if f.b == nil {
		return "false"
	}
	return strconv.FormatBool(*f.b)
}

func (f envBool) Set(s string) error {
	v, err := parseBool(s)
	if err != nil {
		return err
	}
	*f.b = v
	return nil
}

func (f envBool) IsBoolFlag() bool { return true }

// parseBool accepts what people write in environment variables: 1, true,
// yes, on (and 0, false, no, off, or nothing), in any case.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "t", "yes", "y", "on":
		return true, nil
	case "", "0", "false", "f", "no", "n", "off":
		return false, nil
	}
	return false, errors.New("want 1, true, yes or on (or 0, false, no, off)")
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
