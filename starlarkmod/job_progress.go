package starlarkmod

import (
	"bytes"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Progress bars, drawn by github.com/schollz/progressbar (kept: it is
// maintained, renders counts, rates and ETAs for known and unknown
// totals, and writes to any io.Writer, which is what lets us put its
// frames under our own lock). What it does not do, barTerm does:
//
//   - no bar for a job that ends within barDelay (0.5 s): frames are
//     dropped until then, so loops of short jobs draw nothing;
//   - the first frame comes after barDelay, when the rate is measured over
//     half a second rather than over the first item;
//   - lines printed while a bar is shown (by tasks, on stdout, or reports
//     on stderr) go above it: the bar is erased, the line written, the
//     bar drawn again, all under one lock, so no line is glued to a bar;
//   - a finished bar is erased, leaving no debris;
//   - one bar at a time per terminal: a job started while another shows
//     its bar gets none.

// barDelay is how long a job runs before its bar appears.
const barDelay = 500 * time.Millisecond

// barTerm is the terminal that an interpreter's output and bars share.
type barTerm struct {
	mu     sync.Mutex
	w      io.Writer // the terminal (stderr)
	active *progress // the bar being drawn, or nil
	shown  bool      // its frame is on the screen
	frame  []byte    // its last frame
}

// Terminal is implemented by writers that are terminals without being an
// *os.File (the REPL's console): bars are drawn on them.
type Terminal interface {
	IsTerminal() bool
}

// isTerminal reports whether w is a terminal: an *os.File on a tty, or a
// [Terminal] that says so.
func isTerminal(w io.Writer) bool {
	if t, ok := w.(Terminal); ok {
		return t.IsTerminal()
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newBarTerm returns the bar terminal for stderr, or nil if it is not a
// terminal.
func newBarTerm(stderr io.Writer) *barTerm {
	if !isTerminal(stderr) {
		return nil
	}
	return &barTerm{w: stderr}
}

const eraseLine = "\r\x1b[K"

// write writes line (whole lines) to w, above the bar if one is shown.
func (t *barTerm) write(w io.Writer, line []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.shown {
		w.Write(line) //nolint:errcheck // print has nowhere to report failure
		return
	}
	io.WriteString(t.w, eraseLine) //nolint:errcheck
	w.Write(line)                  //nolint:errcheck
	t.w.Write(t.frame)             //nolint:errcheck
}

// progress is a job's progress bar. A nil *progress does nothing, so
// callers need not check.
type progress struct {
	t       *barTerm
	bar     *progressbar.ProgressBar
	timer   *time.Timer
	fired   chan struct{} // closed when the timer's function has run
	visible bool          // barDelay has passed: frames are drawn (under t.mu)
}

// newProgress returns a bar for a job of total items (-1: unknown), or nil
// if the interpreter's stderr is not a terminal or another bar is shown.
func newProgress(in *Interpreter, total int, name string) *progress {
	return newProgressOn(in.out.tty, total, name)
}

func newProgressOn(t *barTerm, total int, name string) *progress {
	if t == nil {
		return nil
	}
	p := &progress{t: t, fired: make(chan struct{})}
	t.mu.Lock()
	if t.active != nil {
		t.mu.Unlock()
		return nil
	}
	t.active = p
	t.mu.Unlock()
	p.bar = progressbar.NewOptions64(int64(total),
		progressbar.OptionSetWriter(barWriter{p}),
		progressbar.OptionUseANSICodes(true),
		progressbar.OptionSetDescription("job "+name),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("items"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		// No background goroutine redrawing the spinner: every goroutine
		// has an owner that waits for it, and this one would not.
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
	// Rates are measured from now, not from the first item's end.
	p.bar.StartWithoutRender()
	p.timer = time.AfterFunc(barDelay, func() {
		defer close(p.fired)
		t.mu.Lock()
		on := t.active == p
		p.visible = on
		t.mu.Unlock()
		if on {
			p.bar.RenderBlank() //nolint:errcheck // the first frame, even before an item ends
		}
	})
	return p
}

// add counts one finished item.
func (p *progress) add() {
	if p != nil {
		p.bar.Add(1) //nolint:errcheck // drawing is best effort
	}
}

// finish erases the bar (whether the job succeeded or not).
func (p *progress) finish(bool) {
	if p == nil {
		return
	}
	if !p.timer.Stop() {
		<-p.fired
	}
	t := p.t
	t.mu.Lock()
	if t.active == p {
		if t.shown {
			io.WriteString(t.w, eraseLine) //nolint:errcheck
		}
		t.active, t.shown, t.frame = nil, false, nil
	}
	t.mu.Unlock()
}

// barWriter receives progressbar's output: frames, and erasures.
type barWriter struct{ p *progress }

func (bw barWriter) Write(b []byte) (int, error) {
	p := bw.p
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.active != p || !p.visible {
		return len(b), nil // before barDelay, or after the end: nothing is drawn
	}
	frame := b
	for _, esc := range []string{"\r", "\x1b[0K", "\x1b[2K", "\x1b[K"} {
		frame = bytes.ReplaceAll(frame, []byte(esc), nil)
	}
	frame = bytes.TrimRight(frame, " ")
	if len(frame) == 0 { // an erasure
		if t.shown {
			io.WriteString(t.w, eraseLine) //nolint:errcheck
		}
		t.shown = false
		return len(b), nil
	}
	t.frame = append(append(t.frame[:0], eraseLine...), frame...)
	t.shown = true
	t.w.Write(t.frame) //nolint:errcheck
	return len(b), nil
}
