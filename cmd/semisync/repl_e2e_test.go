package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestREPLInTerminal drives the real binary's REPL in a terminal: tmux
// runs it in a detached session, send-keys types, capture-pane reads the
// screen. It checks tab completion, Ctrl-C at the prompt, a multi-line
// block, and Ctrl-C cancelling a busy loop and a sleep, each time getting
// the prompt back, then Ctrl-D and the history file. It is skipped without
// tmux (.ci/run installs it: apt-get install tmux) and with -short.
//
// Every wait polls the screen with a generous deadline: the CI machine is
// slow and shared, so nothing depends on how long a step takes.
func TestREPLInTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the REPL in tmux; skipped with -short")
	}
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed (apt-get install -y tmux; .ci/run installs it)")
	}
	bin := semisyncBinary(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}

	term := &terminal{t: t, tmux: tmux, socket: filepath.Join(dir, "tmux.sock")}
	t.Cleanup(func() { term.run("kill-server") }) //nolint:errcheck // the server may be gone
	// exec: no shell stays in between to be killed by Ctrl-C.
	command := fmt.Sprintf("cd %s && exec env HOME=%s %s repl", shellQuote(dir), shellQuote(home), shellQuote(bin))
	if _, err := term.run("-f", "/dev/null", "new-session", "-d", "-s", "repl", "-x", "100", "-y", "40", command,
		";", "set-option", "-w", "-t", "repl", "remain-on-exit", "on"); err != nil {
		t.Fatal(err)
	}

	term.waitPrompt("the first prompt", func(screen string) bool {
		return strings.Contains(screen, "semisync "+version+": ") && strings.Contains(screen, "Type :help for help")
	})

	// Tab completion of an attribute; Ctrl-C discards the line.
	term.keys("-l", "semisync.be")
	term.keys("Tab")
	term.waitFor("semisync.be<Tab> completed", func(screen string) bool {
		return lastLine(screen) == ">>> semisync.begin"
	})
	term.keys("C-c")
	term.waitPrompt("Ctrl-C at the prompt", func(screen string) bool {
		return strings.Contains(screen, ">>> semisync.begin^C")
	})

	// A multi-line block, then a call of what it defined.
	term.line("def double(n):")
	term.waitFor("the continuation prompt", func(screen string) bool { return lastLine(screen) == "..." })
	term.line("    return n * 2")
	term.line("")
	term.waitPrompt("the end of the block", nil)
	term.line("double(21)")
	term.waitPrompt("double(21)", func(screen string) bool { return hasLine(screen, "42") })

	// Ctrl-C stops a busy loop, and the prompt comes back.
	term.line("if True:")
	term.line(`    print("spinning")`)
	term.line("    while True: pass")
	term.line("")
	term.waitFor("the busy loop", func(screen string) bool { return hasLine(screen, "spinning") })
	term.keys("C-c")
	term.waitPrompt("the busy loop cancelled", func(screen string) bool {
		return strings.Contains(screen, "Error: Starlark computation cancelled: interrupted")
	})

	// Ctrl-C stops a sleep.
	term.line("if True:")
	term.line(`    print("sleeping")`)
	term.line("    sleep(3600)")
	term.line("")
	term.waitFor("the sleep", func(screen string) bool { return hasLine(screen, "sleeping") })
	term.keys("C-c")
	term.waitPrompt("the sleep cancelled", func(screen string) bool {
		return strings.Contains(screen, "sleep: interrupted")
	})

	// The session goes on; nothing stale cancels the next entry.
	term.line("6 * 7")
	term.waitPrompt("6 * 7", func(screen string) bool { return strings.Contains(screen, ">>> 6 * 7\n42\n") })

	// Ctrl-D leaves with status 0 and saves the history. (tmux marks the
	// pane dead when the process closes the terminal, and sometimes leaves
	// it a zombie without reading its status: then the status is empty.)
	term.keys("C-d")
	var status string
	term.waitFor("the REPL to exit", func(string) bool {
		out, err := term.run("display-message", "-p", "-t", "repl", "#{pane_dead}:#{pane_dead_status}")
		dead, st, _ := strings.Cut(strings.TrimSpace(out), ":")
		status = st
		return err == nil && dead == "1"
	})
	if status != "" && status != "0" {
		t.Errorf("the REPL exited with status %s, want 0", status)
	}
	hist, err := os.ReadFile(filepath.Join(home, ".semisync_history"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(hist), "double(21)\n") {
		t.Errorf("history file lacks double(21):\n%s", hist)
	}
}

// terminal is a tmux server on its own socket, with one session "repl".
type terminal struct {
	t      *testing.T
	tmux   string
	socket string
}

func (term *terminal) run(args ...string) (string, error) {
	out, err := exec.Command(term.tmux, append([]string{"-S", term.socket}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// keys sends keys (tmux key names, or text after "-l").
func (term *terminal) keys(keys ...string) {
	term.t.Helper()
	if _, err := term.run(append([]string{"send-keys", "-t", "repl"}, keys...)...); err != nil {
		term.t.Fatal(err)
	}
}

// line types text and Enter.
func (term *terminal) line(text string) {
	term.t.Helper()
	if text != "" {
		term.keys("-l", text)
	}
	term.keys("Enter")
}

// screen returns the visible screen, wrapped lines joined, without
// trailing blank lines.
func (term *terminal) screen() string {
	out, err := term.run("capture-pane", "-p", "-J", "-t", "repl")
	if err != nil {
		return ""
	}
	return strings.TrimRight(out, "\n ")
}

// waitFor polls the screen until ok accepts it, for at most two minutes.
func (term *terminal) waitFor(what string, ok func(screen string) bool) string {
	term.t.Helper()
	const limit = 2 * time.Minute
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		screen := term.screen()
		if ok(screen) {
			return screen
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("waited %v for %s; the screen shows:\n%s", limit, what, screen)
		}
		<-tick.C
	}
}

// waitPrompt waits until the screen ends with an empty primary prompt and,
// if ok is not nil, ok accepts it.
func (term *terminal) waitPrompt(what string, ok func(screen string) bool) string {
	term.t.Helper()
	return term.waitFor(what, func(screen string) bool {
		return lastLine(screen) == ">>>" && (ok == nil || ok(screen))
	})
}

func lastLine(screen string) string {
	lines := strings.Split(screen, "\n")
	return strings.TrimRight(lines[len(lines)-1], " ")
}

func hasLine(screen, line string) bool {
	for _, l := range strings.Split(screen, "\n") {
		if strings.TrimRight(l, " ") == line {
			return true
		}
	}
	return false
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
