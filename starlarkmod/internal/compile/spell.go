package compile

import (
	"strings"
	"unicode"
)

// nearest is go.starlark.net/internal/spell.Nearest (BSD licence, The
// Bazel Authors), which cannot be imported: the attribute error hints
// ("did you mean .append?") must be the VM's.
func nearest(x string, candidates []string) string {
	fold := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '_' {
				return -1
			}
			return unicode.ToLower(r)
		}, s)
	}
	x = fold(x)
	var best string
	bestD := (len(x) + 1) / 2 // allow up to 50% typos
	for _, c := range candidates {
		d := levenshtein(x, fold(c), bestD)
		if d < bestD {
			bestD = d
			best = c
		}
	}
	return best
}

func levenshtein(x, y string, max int) int {
	if len(x) > len(y) {
		x, y = y, x
	}
	// Remove common prefix (as the original does: not when x is a prefix of y).
	for i := 0; i < len(x); i++ {
		if x[i] != y[i] {
			x = x[i:]
			y = y[i:]
			break
		}
	}
	if x == "" {
		return len(y)
	}
	if d := abs(len(x) - len(y)); d > max {
		return d
	}
	row := make([]int, len(y)+1)
	for i := range row {
		row[i] = i
	}
	for i := 1; i <= len(x); i++ {
		row[0] = i
		best := i
		prev := i - 1
		for j := 1; j <= len(y); j++ {
			a := prev
			if x[i-1] != y[j-1] {
				a++
			}
			b := 1 + row[j-1]
			c := 1 + row[j]
			k := min(a, b, c)
			prev, row[j] = row[j], k
			best = min(best, k)
		}
		if best > max {
			return best
		}
	}
	return row[len(y)]
}

func abs(x int) int {
	if x >= 0 {
		return x
	}
	return -x
}
