package portable

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
	"go.uber.org/goleak"

	"github.com/semisync/semisync/starlarkmod/internal/decorator"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testOptions = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}

// run compiles and runs src as file name, registered for encoding, with
// predeclared, and returns its globals (frozen).
func run(t testing.TB, name, src string, predeclared starlark.StringDict) starlark.StringDict {
	t.Helper()
	f, err := decorator.Parse(testOptions, name, []byte(src), 0)
	require.NoError(t, err)
	prog, err := starlark.FileProgram(f, predeclared.Has)
	require.NoError(t, err)
	Register(prog, f, []byte(src))
	th := &starlark.Thread{Name: "test", Load: func(_ *starlark.Thread, module string) (starlark.StringDict, error) {
		return testLoad(module)
	}}
	g, err := prog.Init(th, predeclared)
	require.NoError(t, err)
	g.Freeze()
	return g
}

func testLoad(module string) (starlark.StringDict, error) {
	if m, ok := testModules[module]; ok {
		return m, nil
	}
	return nil, os.ErrNotExist
}
