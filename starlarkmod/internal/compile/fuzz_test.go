package compile_test

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// gen writes a random small Starlark function f (arithmetic on small
// and big ints and floats, loops, comprehensions, string, list and dict
// operations, and the errors they raise) that always terminates.
type gen struct {
	r      *rand.Rand
	b      strings.Builder
	depth  int
	loops  int // enclosing loops
	whiles int
}

var ints = []string{"0", "1", "2", "3", "7", "-1", "-5", "100", "2147483647", "4611686018427387903", "4611686018427387904", "9223372036854775807", "-9223372036854775808", "123456789012345678901234567890"}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) intExpr(d int) string {
	if d <= 0 || g.r.IntN(3) == 0 {
		return g.pick(append([]string{"a", "b", "c", "a", "b", "i"}, ints...)...)
	}
	switch g.r.IntN(12) {
	case 0, 1, 2, 3:
		return fmt.Sprintf("(%s %s %s)", g.intExpr(d-1), g.pick("+", "-", "*", "//", "%", "&", "|", "^", "+", "-", "*"), g.intExpr(d-1))
	case 4:
		return fmt.Sprintf("(%s %s %s)", g.intExpr(d-1), g.pick("<<", ">>"), g.pick("0", "1", "3", "-1", "70", "b % 40"))
	case 5:
		return "-" + g.intExpr(d-1)
	case 6:
		return fmt.Sprintf("len(%s)", g.pick("s", "l", "d", "[]", "\"abc\""))
	case 7:
		return fmt.Sprintf("l[%s]", g.intExpr(d-1))
	case 8:
		return fmt.Sprintf("d.get(%s, %s)", g.intExpr(d-1), g.intExpr(d-1))
	case 9:
		return fmt.Sprintf("(%s if %s else %s)", g.intExpr(d-1), g.cond(d-1), g.intExpr(d-1))
	case 10:
		return fmt.Sprintf("len([%s for i in range(%d) if %s])", g.intExpr(d-1), g.r.IntN(4), g.cond(d-1))
	default:
		return fmt.Sprintf("int(%s)", g.pick("x", "\"12\"", "s", "True", "2.5"))
	}
}

func (g *gen) floatExpr(d int) string {
	if d <= 0 || g.r.IntN(3) == 0 {
		return g.pick("x", "1.5", "0.0", "-2.25", "1e300", "float(a)")
	}
	return fmt.Sprintf("(%s %s %s)", g.floatExpr(d-1), g.pick("+", "-", "*", "/", "//", "%"), g.pick(g.floatExpr(d-1), g.intExpr(d-1)))
}

func (g *gen) strExpr(d int) string {
	if d <= 0 || g.r.IntN(3) == 0 {
		return g.pick("s", "\"\"", "\"ab\"", "\"xyz\"", "str(a)", "str(len(l))")
	}
	switch g.r.IntN(6) {
	case 0, 1:
		return fmt.Sprintf("(%s + %s)[:40]", g.strExpr(d-1), g.strExpr(d-1))
	case 2:
		return fmt.Sprintf("%s[%s:%s]", g.strExpr(d-1), g.pick("", "1", "-2", "b"), g.pick("", "3", "-1", "a"))
	case 3:
		return fmt.Sprintf("%s.upper()", g.strExpr(d-1))
	case 4:
		return fmt.Sprintf("(%q %% (%s,))", g.pick("%d", "%s-%s", "<%r>"), g.intExpr(d-1))
	default:
		return fmt.Sprintf("(%s * %s)", g.strExpr(d-1), g.pick("0", "2", "-1"))
	}
}

func (g *gen) listExpr(d int) string {
	if d <= 0 || g.r.IntN(3) == 0 {
		return g.pick("l", "[]", "[1, 2, 3]", "[a, s]", "list(range(4))")
	}
	switch g.r.IntN(4) {
	case 0:
		return fmt.Sprintf("(%s + %s)[:12]", g.listExpr(d-1), g.listExpr(d-1))
	case 1:
		return fmt.Sprintf("%s[%s:%s]", g.listExpr(d-1), g.pick("", "1", "-2"), g.pick("", "3", "-1", "a"))
	case 2:
		return fmt.Sprintf("[%s for %s in %s]", g.intExpr(d-1), g.pick("i", "a"), g.pick("range(3)", "l", "d", "[1, 2]"))
	default:
		return fmt.Sprintf("[%s, %s]", g.intExpr(d-1), g.any(d-1))
	}
}

func (g *gen) any(d int) string {
	switch g.r.IntN(5) {
	case 0:
		return g.floatExpr(d)
	case 1:
		return g.strExpr(d)
	case 2:
		return g.listExpr(d)
	}
	return g.intExpr(d)
}

func (g *gen) cond(d int) string {
	switch g.r.IntN(7) {
	case 0:
		return fmt.Sprintf("(%s and %s)", g.cond(d-1), g.cond(d-1))
	case 1:
		return fmt.Sprintf("(%s or not %s)", g.cond(d-1), g.cond(d-1))
	case 2:
		return fmt.Sprintf("(%s %s %s)", g.any(d-1), g.pick("in", "not in"), g.pick("l", "d", "s", "[1, 2]"))
	case 3:
		return fmt.Sprintf("(%s %s %s)", g.any(d-1), g.pick("<", "==", "!="), g.any(d-1))
	case 4:
		return g.pick("l", "d", "s", "a", "x")
	}
	return fmt.Sprintf("(%s %s %s)", g.intExpr(d-1), g.pick("<", "<=", ">", ">=", "==", "!="), g.intExpr(d-1))
}

func (g *gen) line(indent int, format string, args ...any) {
	g.b.WriteString(strings.Repeat("    ", indent))
	fmt.Fprintf(&g.b, format, args...)
	g.b.WriteString("\n")
}

func (g *gen) stmts(indent, n int) {
	for range n {
		g.stmt(indent)
	}
}

func (g *gen) stmt(indent int) {
	d := 2
	k := g.r.IntN(23)
	if g.depth >= 3 && k >= 14 {
		k = g.r.IntN(14)
	}
	switch k {
	case 0, 1:
		g.line(indent, "%s = %s %% %s", g.pick("a", "b", "c"), g.intExpr(d), g.pick("1000000007", "-9223372036854775809", "7"))
	case 2:
		g.line(indent, "%s %s %s", g.pick("a", "b", "c"), g.pick("+=", "-=", "//=", "%=", "|=", "^="), g.intExpr(d))
	case 3:
		g.line(indent, "s = (s + %s)[-30:]", g.strExpr(d))
	case 4:
		g.line(indent, "l %s %s", g.pick("=", "+="), g.listExpr(d))
		g.line(indent, "l = l[-20:]")
	case 5:
		g.line(indent, "l.append(%s)", g.any(d))
	case 6:
		g.line(indent, "d[%s] = %s", g.pick(g.intExpr(1), g.strExpr(1)), g.any(d))
	case 7:
		g.line(indent, "l[%s] %s %s", g.intExpr(1), g.pick("=", "+="), g.intExpr(d))
	case 8:
		g.line(indent, "x = %s", g.floatExpr(d))
	case 9:
		g.line(indent, "print(%s)", g.any(d))
	case 10:
		g.line(indent, "a, b = %s", g.pick("b, a", "l[:2]", "(1, 2)", "[a]", "d.items()[0] if d else (0, 0)"))
	case 11:
		g.line(indent, "d = {%s: %s for %s in %s}", g.intExpr(1), g.any(1), g.pick("i", "a"), g.pick("range(3)", "l", "[1, 1]"))
	case 12:
		if g.loops > 0 {
			g.line(indent, "if %s:", g.cond(1))
			g.line(indent+1, "%s", g.pick("break", "continue"))
			return
		}
		g.line(indent, "c = %s", g.intExpr(d))
	case 19:
		// calls between compiled functions, good and bad argument lists
		g.line(indent, "%s = h(%s)", g.pick("a", "b", "c"), g.pick(
			g.intExpr(1), g.intExpr(1)+", "+g.intExpr(1), "q="+g.intExpr(1)+", p=1", "*l[:2]", "1, 2, 3", "", "z=1", "**{\"p\": a}", "1, p=2"))
	case 13:
		if g.r.IntN(4) == 0 {
			g.line(indent, "return %s", g.any(d))
			return
		}
		g.line(indent, "pass")
	case 14, 15:
		g.line(indent, "if %s:", g.cond(d))
		g.nest(indent)
		if g.r.IntN(2) == 0 {
			g.line(indent, "else:")
			g.nest(indent)
		}
	case 16, 17:
		g.line(indent, "for %s in %s:", g.pick("i", "a", "e"), g.pick("range(4)", "range(b % 5)", "l", "d", "s", "[1, 2, 3]", "list(d)"))
		g.loops++
		g.nest(indent)
		g.loops--
	case 18:
		w := fmt.Sprintf("w%d", g.whiles)
		g.whiles++
		g.line(indent, "%s = 0", w)
		g.line(indent, "while %s < %d:", w, g.r.IntN(5))
		g.line(indent+1, "%s += 1", w)
		g.loops++
		g.nest(indent)
		g.loops--
	default:
		g.line(indent, "%s = %s %% 999999999989", g.pick("a", "b", "c"), g.intExpr(d))
	}
}

func (g *gen) nest(indent int) {
	g.depth++
	g.stmts(indent+1, 1+g.r.IntN(3))
	g.depth--
}

// program returns a random function f and the seed-derived description.
func program(seed []byte) string {
	h := fnv.New64a()
	h.Write(seed)
	g := &gen{r: rand.New(rand.NewPCG(h.Sum64(), 0x5eed))}
	g.line(0, "G = [1, 2]")
	g.line(0, "def h(p, q=2):")
	g.line(1, "if p == 3:")
	g.line(2, "return p // (q - q)")
	g.line(1, "G.append(p) if q == 7 else None")
	g.line(1, "return p * 10 + q if type(p) == \"int\" else q")
	g.line(0, "def f():")
	if g.r.IntN(8) != 0 {
		g.line(1, "a, b, c, x = 3, -7, 11, 0.5")
	} else {
		g.line(1, "if G == 0: a, b, c, x = 0, 0, 0, 0.0") // locals, unbound
	}
	g.line(1, "s, l, d = \"ab\", [1, 2, 3], {1: \"one\", \"k\": 2}")
	if g.r.IntN(8) != 0 {
		g.line(1, "i = 1")
	} else {
		g.line(1, "if G == 0: i = 0")
	}
	g.stmts(1, 2+g.r.IntN(6))
	g.line(1, "return (a, b, c, x, s, l, d)")
	return g.b.String()
}

// FuzzDifferential compares random functions compiled and on the VM:
// results, printed output and errors with their backtraces must be equal.
// go test -fuzz FuzzDifferential -fuzztime 60s ./starlarkmod/internal/compile
func FuzzDifferential(f *testing.F) {
	for i := range 20 {
		f.Add([]byte(fmt.Sprint(i)))
	}
	f.Fuzz(func(t *testing.T, seed []byte) {
		same(t, program(seed))
	})
}

// TestRandomPrograms runs a fixed set of the fuzzer's programs.
func TestRandomPrograms(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 50
	}
	compiled := 0
	for i := range n {
		src := program([]byte(fmt.Sprint("p", i)))
		if same(t, src) {
			compiled++
		}
		if t.Failed() {
			return
		}
	}
	assert.Equal(t, n, compiled, "every generated function compiles")
}
