package starlarkmod

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress is a job's progress bar on the interpreter's stderr, drawn by
// github.com/schollz/progressbar: done/total, percentage, rate and ETA, or
// a count and rate when the total is unknown. A nil *progress does nothing,
// so callers need not check.
type progress struct {
	bar *progressbar.ProgressBar
	out io.Writer
}

// isTerminal reports whether w is a terminal (an *os.File on a tty).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress returns a bar for a job of total items (-1: unknown), or nil
// if the interpreter's stderr is not a terminal.
func newProgress(in *Interpreter, total int, name string) *progress {
	if !isTerminal(in.opts.Stderr) {
		return nil
	}
	return newProgressOn(lockedWriter{in.errOut}, total, name)
}

// newProgressOn draws the bar on w, terminal or not (tests use it).
func newProgressOn(w io.Writer, total int, name string) *progress {
	p := &progress{out: w}
	p.bar = progressbar.NewOptions64(int64(total),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("job "+name),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("items"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		// No background goroutine redrawing the spinner: every goroutine
		// has an owner that waits for it, and this one would not.
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	return p
}

// add counts one finished item.
func (p *progress) add() {
	if p != nil {
		p.bar.Add(1) //nolint:errcheck // drawing is best effort
	}
}

// finish completes the bar (ok) or leaves it where it stopped.
func (p *progress) finish(ok bool) {
	if p == nil {
		return
	}
	if ok {
		p.bar.Finish() //nolint:errcheck
		return
	}
	p.bar.Exit() //nolint:errcheck // calls the completion hook: ends the line
}

// lockedWriter writes to a lineWriter's destination under its lock, so
// the bar's partial lines do not tear reports written line by line.
type lockedWriter struct{ lw *lineWriter }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.lw.mu.Lock()
	defer w.lw.mu.Unlock()
	return w.lw.w.Write(b)
}
