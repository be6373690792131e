package repl

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPlainReader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		input   string
		prompts bool
		want    []string
		shown   string
	}{
		{"lines", "a\nb\n", false, []string{"a", "b"}, ""},
		{"last line without newline", "a\r\nb", false, []string{"a", "b"}, ""},
		{"prompts shown", "x\n", true, []string{"x"}, ">>> >>> "},
		{"empty", "", false, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var shown bytes.Buffer
			r := &plainReader{r: bufio.NewReader(strings.NewReader(tc.input))}
			if tc.prompts {
				r.w = &shown
			}
			var got []string
			for {
				line, err := r.Prompt(">>> ")
				if err == io.EOF {
					break
				}
				assert.NoError(t, err)
				got = append(got, line)
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.shown, shown.String())
		})
	}
}
