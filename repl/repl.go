package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"

	"github.com/peterh/liner"
	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
)

// A LineReader reads the lines the user types. *liner.State satisfies it.
//
// Prompt shows prompt and returns the line typed, without its line break.
// It returns io.EOF at the end of input (Ctrl-D on an empty line) and
// liner.ErrPromptAborted when the user presses Ctrl-C at the prompt; any
// other error ends the session. AppendHistory records a line for recall.
type LineReader interface {
	Prompt(prompt string) (string, error)
	AppendHistory(item string)
}

// The prompts: the primary one, and the one shown while an entry (a block,
// an open bracket or string) continues.
const (
	PrimaryPrompt      = ">>> "
	ContinuationPrompt = "... "
)

// Options configures a [Session]. Stdout is required unless the zero value
// (os.Stdout) will do; so is Stderr.
type Options struct {
	// Stdout receives values, :command output and what scripts print;
	// Stderr receives errors. Both should be where the LineReader shows its
	// prompt (the terminal), because writes made while a prompt is showing
	// are placed below it and the prompt is shown again (see [Session]).
	Stdout, Stderr io.Writer

	// Interp configures the session's interpreter. Its Stdout and Stderr are
	// replaced by writers that go to Stdout and Stderr in step with the
	// prompt.
	Interp starlarkmod.Options

	// Root is the directory that load() of script files must stay under
	// (default: the current directory). Relative paths in load() and :load
	// are resolved against the current directory.
	Root string

	// Interrupts delivers the Ctrl-C presses that arrive while code runs
	// (SIGINT, from signal.Notify). Each one cancels the running entry; one
	// that arrives while nothing runs is discarded before the next entry
	// starts. Nil: entries cannot be interrupted.
	Interrupts <-chan os.Signal

	// ANSI says Stdout is a terminal that understands ANSI escapes: output
	// arriving while a prompt shows can then erase the prompt it re-printed
	// earlier instead of leaving a copy of it on every line.
	ANSI bool
}

// A Session is one interactive REPL session: an interpreter, the globals
// the user has bound, and the loop that reads entries, runs them and prints
// their values and errors. Create it with [New] and run it once with
// [Session.Run].
//
// Every entry is compiled as its own module named "<stdin#N>", N counting
// the entries run in the session from 1 (:load runs a file under its own
// path), so the positions in error messages read "<stdin#3>:2:5": entry 3,
// line 2 of that entry, column 5. Names bound by earlier entries are
// visible to later ones; an expression's value is printed (repr) and bound
// to "_".
//
// Each entry runs under its own context, derived from the session's, so
// that Ctrl-C cancels that entry and the work it started, while work an
// earlier entry left running in the background (futures,
// semisync.begin(_future=True)) goes on. An entry's context is cancelled only
// by Ctrl-C during it, or when the session ends.
//
// Output written while the prompt is showing (background work printing)
// starts on a fresh line below the prompt and the prompt is printed again
// after it. liner cannot redraw the line being typed: the characters typed
// so far stay in the line but are not shown again until a key that moves
// the cursor (Ctrl-E, an arrow) redraws it.
type Session struct {
	r     LineReader
	opts  Options
	in    *starlarkmod.Interpreter
	state *starlarkmod.Run // made by Run: the session's state in the interpreter
	con   *console
	out   io.Writer // coordinated Stdout
	errw  io.Writer // coordinated Stderr

	interrupts <-chan os.Signal // nil once closed

	mu      sync.Mutex          // guards globals, th (read by Complete)
	globals starlark.StringDict // bound by earlier entries
	th      *starlark.Thread    // the session's main thread

	ctx     context.Context // the session's
	cancels []context.CancelCauseFunc
	n       int  // entries run so far
	ran     bool // Run was called
}

// New returns a session that reads lines from r. It creates the session's
// interpreter; [Session.Run] closes it.
func New(r LineReader, opts Options) *Session {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	con := &console{ansi: opts.ANSI}
	s := &Session{
		r:          r,
		opts:       opts,
		con:        con,
		out:        con.writer(opts.Stdout),
		errw:       con.writer(opts.Stderr),
		interrupts: opts.Interrupts,
	}
	iopts := opts.Interp
	iopts.Stdout, iopts.Stderr = s.out, s.errw
	if iopts.Observer == nil {
		// :graph shows durations and the critical path (see starlarkmod.Observer for the cost).
		iopts.Observer = starlarkmod.NewObserver()
	}
	s.in = starlarkmod.New(iopts)
	root := opts.Root
	if root == "" {
		root, _ = os.Getwd()
	}
	s.in.SetRoot(root)
	return s
}

// Interpreter returns the session's interpreter.
func (s *Session) Interpreter() *starlarkmod.Interpreter { return s.in }

// errInterrupted is the cause of an entry's context when Ctrl-C cancels it.
// It matches context.Canceled, so that cancelled tasks are reported as
// such.
var errInterrupted error = interruptError{}

type interruptError struct{}

func (interruptError) Error() string        { return "interrupted" }
func (interruptError) Is(target error) bool { return target == context.Canceled }

// Run reads and runs entries until the input ends (Ctrl-D), :quit, or
// ctx is done between entries. Then it waits for the background work still
// running (Ctrl-C cancels it), closes the interpreter and returns its
// report of background failures nobody observed, or the line reader's
// error. Run may be called once.
func (s *Session) Run(ctx context.Context) error {
	if s.ran {
		panic("repl: Session.Run called twice")
	}
	s.ran = true
	sctx, cancel := context.WithCancelCause(ctx)
	s.ctx = sctx
	s.mu.Lock()
	s.state = s.in.NewRun(sctx, "")
	s.th = s.state.NewThread("repl")
	s.state.Leave(s.th) // rejoined for each entry: see run
	s.mu.Unlock()
	defer func() {
		for _, c := range s.cancels {
			c(nil)
		}
		cancel(nil)
	}()

	rd := &entryReader{s: s}
	var err error
	for ctx.Err() == nil {
		var e entry
		var eof bool
		e, eof, err = rd.next()
		if err != nil {
			break
		}
		if e.meta != "" {
			if s.meta(e.meta) {
				break
			}
		} else if e.src != "" {
			s.eval(e.src)
		}
		if eof {
			if pr, ok := s.r.(*plainReader); !ok || pr.w != nil {
				fmt.Fprintln(s.out) // leave the prompt's line
			}
			break
		}
	}
	if cerr := s.close(cancel); err == nil {
		err = cerr
	}
	return err
}

// close waits for background work and closes the interpreter. Ctrl-C
// meanwhile cancels the session's context, and so the work.
func (s *Session) close(cancel context.CancelCauseFunc) error {
	running := 0
	for _, t := range s.state.Tasks() {
		if t.End.IsZero() {
			running++
		}
	}
	if running > 0 {
		fmt.Fprintf(s.errw, "waiting for %d running task(s); press Ctrl-C to cancel them\n", running)
	}
	stop := s.watchInterrupts(cancel)
	err := s.state.Wait(context.Background()) // Ctrl-C cancels the work (s.ctx), which then ends
	if cerr := s.in.Close(); err == nil {
		err = cerr
	}
	stop()
	return err
}

// eval runs one entry and prints its value or error.
func (s *Session) eval(src string) {
	s.n++
	s.run(fmt.Sprintf("<stdin#%d>", s.n), []byte(src), true)
}

// run runs src as a chunk named filename under a fresh context that Ctrl-C
// cancels, and prints its error, and its value if show.
func (s *Session) run(filename string, src []byte, show bool) {
	s.drainInterrupts()
	ctx, cancel := context.WithCancelCause(s.ctx)
	// The context must outlive the entry: work it started in the background
	// runs under it. It is released when the session ends (a few hundred
	// bytes per entry until then).
	s.cancels = append(s.cancels, cancel)
	stop := s.watchInterrupts(cancel)
	defer stop()

	defer func() {
		if p := recover(); p != nil {
			// The eval boundary: report the panic and go on with a fresh
			// thread (the old one may be mid-call).
			fmt.Fprintf(s.errw, "panic: %v\n\n%s\n", p, debug.Stack())
			s.mu.Lock()
			s.th = s.state.NewThread("repl")
			s.state.Leave(s.th)
			s.mu.Unlock()
		}
	}()
	s.mu.Lock()
	th, globals := s.th, s.globals
	s.mu.Unlock()
	th.Steps = 0 // each entry has the whole --max-steps budget
	// The session's thread takes part in the interpreter's pool only while
	// an entry runs: in sequential mode, background work goes on while the
	// prompt waits for input.
	s.state.Rejoin(th)
	g, v, err := func() (starlark.StringDict, starlark.Value, error) {
		defer s.state.Leave(th) // even on a panic
		return execChunk(ctx, s.state, th, filename, src, globals)
	}()
	s.mu.Lock()
	s.globals = g
	s.mu.Unlock()
	if err != nil {
		s.printError(err)
		return
	}
	if show && v != nil {
		fmt.Fprintln(s.out, v.String())
	}
}

// printError prints err as [starlarkmod.FormatError] renders it.
func (s *Session) printError(err error) {
	fmt.Fprintln(s.errw, starlarkmod.FormatError(err))
}

// drainInterrupts discards Ctrl-C presses that arrived while no entry ran,
// so that they cannot cancel the next one.
func (s *Session) drainInterrupts() {
	for s.interrupts != nil {
		select {
		case _, ok := <-s.interrupts:
			if !ok {
				s.interrupts = nil
			}
		default:
			return
		}
	}
}

// watchInterrupts calls cancel on every Ctrl-C until stop is called.
func (s *Session) watchInterrupts(cancel context.CancelCauseFunc) (stop func()) {
	sigs := s.interrupts
	if sigs == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case _, ok := <-sigs:
				if !ok {
					return
				}
				cancel(errInterrupted)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// prompt shows p and reads a line, marking the console as prompting
// meanwhile.
func (s *Session) prompt(p string) (string, error) {
	s.con.setPrompt(p)
	line, err := s.r.Prompt(p)
	s.con.setPrompt("")
	return line, err
}

// isAbort reports whether err means Ctrl-C at the prompt.
func isAbort(err error) bool { return errors.Is(err, liner.ErrPromptAborted) }
