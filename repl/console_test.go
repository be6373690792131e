package repl

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestConsole(t *testing.T) {
	type write struct {
		prompt string // the prompt showing ("" none), set before the write if it changes
		text   string
	}
	for _, tc := range []struct {
		name   string
		ansi   bool
		writes []write
		want   string
	}{
		{"no prompt: unchanged", false, []write{{"", "a\n"}, {"", "b"}}, "a\nb"},
		{"prompt: below it, then the prompt again", false, []write{{">>> ", "bg\n"}}, "\nbg\n>>> "},
		{"a line without its newline gets one", false, []write{{"... ", "bg"}}, "\nbg\n... "},
		{"plain terminal: every write starts a line", false, []write{{">>> ", "a\n"}, {">>> ", "b\n"}},
			"\na\n>>> \nb\n>>> "},
		{"ANSI: later writes erase the re-printed prompt", true, []write{{">>> ", "a\n"}, {">>> ", "b\n"}},
			"\na\n>>> \r\x1b[Kb\n>>> "},
		{"a new prompt starts over", true, []write{{">>> ", "a\n"}, {"", "value\n"}, {">>> ", "b\n"}},
			"\na\n>>> value\n\nb\n>>> "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := &console{ansi: tc.ansi}
			w := c.writer(&buf)
			shown := ""
			for _, wr := range tc.writes {
				if wr.prompt != shown {
					c.setPrompt(wr.prompt)
					shown = wr.prompt
				}
				n, err := io.WriteString(w, wr.text)
				assert.NoError(t, err)
				assert.Equal(t, len(wr.text), n)
			}
			assert.Equal(t, tc.want, buf.String())
		})
	}
}

// TestConsoleConcurrent checks that concurrent writers keep whole writes
// (run with -race).
func TestConsoleConcurrent(t *testing.T) {
	var buf syncBuffer
	c := &console{ansi: true}
	w := c.writer(&buf)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 50 {
				fmt.Fprintf(w, "g%d line %d\n", g, i)
			}
		}()
	}
	for i := range 20 {
		c.setPrompt(fmt.Sprintf("%d> ", i))
	}
	for range 4 {
		<-done
	}
	for g := range 4 {
		for i := range 50 {
			assert.Contains(t, buf.String(), fmt.Sprintf("g%d line %d\n", g, i))
		}
	}
}
