package random_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
	"go.uber.org/goleak"

	"github.com/semisync/semisync/starlarkmod/random"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixed is a source that always hands out generators seeded the same way.
type fixed struct{ r *rand.Rand }

func (f *fixed) Rand() *rand.Rand {
	if f.r == nil {
		f.r = rand.New(rand.NewPCG(1, 2))
	}
	return f.r
}
func (f *fixed) Reseed(n int64) { f.r = random.NewSeeded(n) }

func run(t *testing.T, th *starlark.Thread, src string) starlark.StringDict {
	t.Helper()
	g, err := starlark.ExecFileOptions(&syntax.FileOptions{}, th, "test.star", src, starlark.StringDict{"random": random.Module})
	require.NoError(t, err)
	return g
}

func TestSourceMakesDrawsRepeatable(t *testing.T) {
	src := `
a = [random.randint(1, 100) for _ in range(5)]
b = random.random()
c = random.uniform(2, 3)
d = random.choice("xyz")
l = list(range(10))
random.shuffle(l)
random.seed(7)
e = random.randint(0, 1000)
`
	var prev starlark.StringDict
	for range 3 {
		th := &starlark.Thread{}
		random.SetSource(th, &fixed{})
		g := run(t, th, src)
		for k, v := range prev {
			assert.Equal(t, v.String(), g[k].String(), k)
		}
		prev = g
	}
	c, _ := starlark.AsFloat(prev["c"])
	assert.True(t, c >= 2 && c <= 3)
}

func TestErrors(t *testing.T) {
	th := &starlark.Thread{}
	for src, want := range map[string]string{
		`random.randint(5, 1)`:   "random.randint: empty range [5, 1]",
		`random.choice([])`:      "random.choice: empty sequence",
		`random.uniform("a", 1)`: "random.uniform: got string and int, want numbers",
	} {
		_, err := starlark.ExecFileOptions(&syntax.FileOptions{}, th, "test.star", src, starlark.StringDict{"random": random.Module})
		require.Error(t, err, src)
		assert.Contains(t, err.Error(), want)
	}
}

func Example() {
	th := &starlark.Thread{}
	random.SetSource(th, &fixed{})
	g, err := starlark.ExecFileOptions(&syntax.FileOptions{}, th, "example.star", `
random.seed(42)
x = random.randint(1, 6)
`, starlark.StringDict{"random": random.Module})
	if err != nil {
		panic(err)
	}
	th2 := &starlark.Thread{}
	g2, _ := starlark.ExecFileOptions(&syntax.FileOptions{}, th2, "example.star", "random.seed(42)\nx = random.randint(1, 6)", starlark.StringDict{"random": random.Module})
	fmt.Println(g["x"] == g2["x"])
	// Output: true
}
