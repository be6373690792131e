package repl

import (
	"io"
	"sync"
)

// A console serialises the session's output (Stdout and Stderr) and keeps
// output that arrives while the line reader shows a prompt (background
// work printing) from running into the prompt and the line being typed.
//
// The line reader draws the prompt and the typed text itself, and liner
// offers no way to redraw them on demand, so the console can only work
// around them: the first write during a prompt starts on a fresh line
// (leaving the partly typed line visible above it) and is followed by the
// prompt again; later writes during the same prompt, on an ANSI terminal,
// erase that re-printed prompt line first, so that a burst of lines is not
// interleaved with prompts. The characters typed so far stay in liner's
// buffer; liner shows them again at its next full redraw (any key that
// moves the cursor, such as Ctrl-E or an arrow).
type console struct {
	mu     sync.Mutex
	ansi   bool
	prompt string // the prompt showing, "" while no Prompt call is under way
	broken bool   // output was written during this Prompt call
}

func (c *console) setPrompt(p string) {
	c.mu.Lock()
	c.prompt, c.broken = p, false
	c.mu.Unlock()
}

// writer returns a writer to w that goes through c.
func (c *console) writer(w io.Writer) io.Writer { return &consoleWriter{c: c, w: w} }

type consoleWriter struct {
	c *console
	w io.Writer
}

// IsTerminal reports whether the session runs on an ANSI terminal, where
// the interpreter draws job progress bars (starlarkmod.Terminal).
func (cw *consoleWriter) IsTerminal() bool { return cw.c.ansi }

// Write writes p with one Write call on the underlying writer, so that the
// lines of one call are never split by another's.
func (cw *consoleWriter) Write(p []byte) (int, error) {
	c := cw.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prompt == "" || len(p) == 0 {
		return cw.w.Write(p)
	}
	b := make([]byte, 0, len(p)+len(c.prompt)+8)
	if c.broken && c.ansi {
		b = append(b, "\r\x1b[K"...) // erase the prompt printed after the previous write
	} else {
		b = append(b, '\n') // below the prompt and the partly typed line
	}
	b = append(b, p...)
	if p[len(p)-1] != '\n' {
		b = append(b, '\n')
	}
	b = append(b, c.prompt...)
	c.broken = true
	if _, err := cw.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}
