package repl

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/semisync/semisync/starlarkmod"
)

var update = flag.Bool("update", false, "rewrite the transcripts in testdata/*.txt")

// durationRE matches the durations :tasks prints, which the transcripts
// mask.
var durationRE = regexp.MustCompile(`\b\d+\.\d{3}s\b`)

// waitingRE matches the note printed at exit while background work runs:
// whether a task that just ended is still recorded as running then is a
// matter of timing, so transcripts leave the note out (session_test.go
// checks it).
var waitingRE = regexp.MustCompile(`(?m)^waiting for \d+ running task\(s\); press Ctrl-C to cancel them\n`)

// TestTranscripts runs each testdata/*.txt: the lines of its "-- input --"
// section are typed into a session (see scriptReader for ^C, ^D and
// !interrupt) and what the terminal shows must equal its
// "-- transcript --" section, durations masked as X.XXXs and the exit's
// "waiting for" note left out. Lines before
// the input are comments; "# options: sequential" runs the session in
// sequential mode. With -update, the transcript sections are rewritten.
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			header, input, want, err := parseTranscript(string(data))
			require.NoError(t, err)
			var opts starlarkmod.Options
			opts.Sequential = strings.Contains(header, "# options: sequential")
			s := newSession(t, lines(input), opts)
			got := durationRE.ReplaceAllString(waitingRE.ReplaceAllString(s.run(t), ""), "X.XXXs")
			if *update {
				out := header + "-- input --\n" + input + "-- transcript --\n" + got
				require.NoError(t, os.WriteFile(file, []byte(out), 0o644))
				return
			}
			assert.Equal(t, want, got, "transcript of %s (run go test ./repl -run TestTranscripts -update to rewrite)", file)
		})
	}
}

// parseTranscript splits a transcript file into its header (comments),
// input and transcript sections.
func parseTranscript(data string) (header, input, transcript string, err error) {
	const in, tr = "-- input --\n", "-- transcript --\n"
	i := strings.Index(data, in)
	j := strings.Index(data, tr)
	if i < 0 || j < i {
		return "", "", "", os.ErrInvalid
	}
	return data[:i], data[i+len(in) : j], data[j+len(tr):], nil
}
