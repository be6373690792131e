package repl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/peterh/liner"
)

// HistoryFile is the name of the history file in the user's home
// directory.
const HistoryFile = ".semisync_history"

// RunTerminal runs a session on the process's standard input and output,
// as `semisync` does with no script: liner line editing with tab
// completion and history kept in ~/.semisync_history across sessions when
// both are a terminal, plain line reads otherwise (prompts are then shown
// only if stdin is a terminal). Ctrl-C (SIGINT) while an entry runs
// cancels it. opts.Interrupts and opts.ANSI are set here; opts.Stdout and
// opts.Stderr default to os.Stdout and os.Stderr (liner always draws the
// prompt on os.Stdout).
func RunTerminal(ctx context.Context, opts Options) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	opts.Interrupts = sigs

	if !isTerminal(os.Stdin) || !isTerminal(os.Stdout) {
		var promptTo io.Writer
		if isTerminal(os.Stdin) {
			promptTo = os.Stdout
		}
		return New(&plainReader{r: bufio.NewReader(os.Stdin), w: promptTo}, opts).Run(ctx)
	}

	st := liner.NewLiner()
	defer st.Close()
	st.SetCtrlCAborts(true)
	st.SetTabCompletionStyle(liner.TabPrints)
	hist := historyPath()
	if hist != "" {
		if f, err := os.Open(hist); err == nil {
			st.ReadHistory(f) //nolint:errcheck // a damaged history file is not worth failing for
			f.Close()
		}
	}
	opts.ANSI = true
	s := New(st, opts)
	st.SetWordCompleter(s.Complete)
	err := s.Run(ctx)
	if hist != "" {
		if werr := writeHistory(st, hist); werr != nil {
			fmt.Fprintf(s.errw, "semisync: cannot save history: %v\n", werr)
		}
	}
	return err
}

// historyPath returns ~/.semisync_history, or "" without a home directory.
func historyPath() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, HistoryFile)
}

func writeHistory(st *liner.State, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := st.WriteHistory(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// plainReader is a LineReader without line editing, for input that is not
// a terminal. It shows prompts on w, if w is not nil.
type plainReader struct {
	r *bufio.Reader
	w io.Writer
}

func (p *plainReader) Prompt(prompt string) (string, error) {
	if p.w != nil {
		io.WriteString(p.w, prompt) //nolint:errcheck // as liner does
	}
	line, err := p.r.ReadString('\n')
	if err != nil && (line == "" || err != io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (p *plainReader) AppendHistory(string) {}
