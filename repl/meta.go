package repl

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// metaCommands are the REPL's own commands, for :help and completion.
var metaCommands = []struct{ name, args, help string }{
	{":help", "", "show this help"},
	{":load", "FILE", "run FILE in this session: its globals become yours"},
	{":tasks", "", "list recent work (semisync batches, jobs, futures) with status and time"},
	{":graph", "", "print the semisync graphs that ran and the calls queued, as Graphviz DOT"},
	{":reset", "", "forget every global (background work keeps running)"},
	{":quit", "", "leave, after waiting for background work (also Ctrl-D)"},
}

const helpText = `Type Starlark statements and expressions. An expression's value is printed
and kept in _. A line that opens a block (def, if, for, while) or starts with
a decorator (@) continues with "... " until a blank line. Names bound by one
entry are visible to later ones; load() works as in a script.

Keys: Tab completes names, attributes and load() arguments; Ctrl-C discards
the line, or cancels the running entry and the work it started; Ctrl-D leaves.
Work started in the background (futures, begin(_future=True)) keeps running
while you type.

Commands:
`

// meta runs a :command line and reports whether the session should end.
func (s *Session) meta(line string) (quit bool) {
	name, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch name {
	case ":help", ":h", ":?":
		var b strings.Builder
		b.WriteString(helpText)
		tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		for _, c := range metaCommands {
			fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.help)
		}
		tw.Flush()
		fmt.Fprint(s.out, b.String())
	case ":load":
		if arg == "" {
			fmt.Fprintln(s.errw, "usage: :load FILE")
			return false
		}
		s.loadFile(arg)
	case ":tasks":
		s.tasks()
	case ":graph":
		fmt.Fprint(s.out, s.state.GraphDOT())
	case ":reset":
		s.mu.Lock()
		s.globals = nil
		s.mu.Unlock()
		fmt.Fprintln(s.out, "globals cleared; background work keeps running")
	case ":quit", ":q", ":exit":
		return true
	default:
		fmt.Fprintf(s.errw, "unknown command %s (try :help)\n", name)
	}
	return false
}

// loadFile runs the file at path into the session's globals, as if its
// text had been typed (without printing a trailing expression's value, and
// keeping _). Errors name the file and its lines; load() in it is relative
// to the file's directory.
func (s *Session) loadFile(path string) {
	src, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(s.errw, ":load: %v\n", err)
		return
	}
	s.mu.Lock()
	last, hadLast := s.globals["_"]
	s.mu.Unlock()
	s.run(path, src, false)
	s.mu.Lock()
	if s.globals != nil {
		if hadLast {
			s.globals["_"] = last
		} else {
			delete(s.globals, "_")
		}
	}
	s.mu.Unlock()
}

// tasks prints the interpreter's task records: kind, status, time taken
// (so far, if running) and what the task is, oldest first.
func (s *Session) tasks() {
	list := s.state.Tasks()
	if len(list) == 0 {
		fmt.Fprintln(s.out, "no tasks yet")
		return
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tSTATUS\tTIME\tTASK")
	for _, t := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Kind, t.Status, formatDuration(t.Dur), t.Desc)
		if t.Err != "" {
			fmt.Fprintf(tw, "\t\t\terror: %s\n", t.Err)
		}
	}
	tw.Flush()
	fmt.Fprint(s.out, b.String())
}

// formatDuration formats d in seconds with millisecond precision, so that
// the column stays narrow and regular ("0.052s", "12.300s").
func formatDuration(d time.Duration) string {
	return fmt.Sprintf("%.3fs", d.Seconds())
}
