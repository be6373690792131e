// Command semisync runs semisync scripts: Starlark files that describe
// concurrent work (semisync graphs, shared state), run truly in parallel.
//
//	semisync [flags] FILE.star [ARGS...]
//	semisync [flags] [repl]      the interactive REPL (see package repl)
//
// Exit codes: 0 ok, 1 script error, 2 usage, 130 interrupted (Ctrl-C).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/semisync/semisync/repl"
	"github.com/semisync/semisync/starlarkmod"
)

// version is the semisync version, set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `usage: semisync [flags] FILE.star [ARGS...]
       semisync [flags] [repl]

Runs a semisync script. ARGS are visible to the script as argv[1:].
With no script, or "repl", starts the interactive REPL (:help there).

flags:
`

func main() { os.Exit(doMain(os.Args[1:], os.Stdout, os.Stderr)) }

var errInterrupted = errors.New("interrupted")

func doMain(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "worker" {
		return workerMain(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("semisync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sequential := fs.Bool("sequential", os.Getenv("SEMISYNC_SEQUENTIAL") == "1", "run all work on one thread in a deterministic order (also SEMISYNC_SEQUENTIAL=1)")
	seed := fs.Int64("seed", 0, "seed the random module: the same script draws the same numbers on every run")
	maxSteps := fs.Uint64("max-steps", 0, "limit each thread (the script, each task) to `N` Starlark steps (0: no limit)")
	timeout := fs.Duration("timeout", 0, "stop the script after `DURATION` (e.g. 30s) and exit 1")
	showVersion := fs.Bool("version", false, "print the version and exit")
	nats := addNATSFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "semisync %s\n", version)
		return 0
	}
	seeded := false
	fs.Visit(func(f *flag.Flag) { seeded = seeded || f.Name == "seed" })
	if fs.NArg() == 0 || fs.Arg(0) == "repl" {
		args := []string{""} // argv[0] is "", as in Python's interactive mode
		if fs.NArg() > 0 {
			args = append(args, fs.Args()[1:]...)
		}
		err := repl.RunTerminal(context.Background(), repl.Options{
			Stdout: stdout,
			Stderr: stderr,
			Interp: starlarkmod.Options{
				Sequential: *sequential,
				Seed:       *seed,
				Seeded:     seeded,
				MaxSteps:   *maxSteps,
				Args:       args,
			},
		})
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}

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
			fmt.Fprintln(stderr, "semisync: interrupted twice, exiting now")
			os.Exit(130)
		}
	}()
	if *timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, *timeout, fmt.Errorf("timeout: the script ran longer than %s", *timeout))
		defer stop()
	}

	opts := starlarkmod.Options{
		Stdout:     stdout,
		Stderr:     stderr,
		Sequential: *sequential,
		Seed:       *seed,
		Seeded:     seeded,
		MaxSteps:   *maxSteps,
		Args:       fs.Args(),
	}
	closeRemote, err := nats.apply(ctx, &opts, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer closeRemote()
	in := starlarkmod.New(opts)
	_, err = in.ExecFile(ctx, fs.Arg(0))
	if cerr := in.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, starlarkmod.FormatError(err))
	if errors.Is(context.Cause(ctx), errInterrupted) {
		return 130
	}
	return 1
}
