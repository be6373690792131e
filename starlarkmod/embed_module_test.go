package starlarkmod_test

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostProgram is a Go program of another module that embeds semisync the
// way the package documentation says.
const hostProgram = `package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod"
)

func main() {
	in := starlarkmod.New(starlarkmod.Options{Stdout: os.Stdout})
	defer in.Close()

	// A host function the script calls from its tasks.
	rate := starlark.NewBuiltin("rate", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var currency string
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &currency); err != nil {
			return nil, err
		}
		return starlark.Float(map[string]float64{"EUR": 1.1, "GBP": 1.25}[currency]), nil
	})
	globals, err := in.Exec(context.Background(), "convert.star", ` + "`" + `
load("json", "json")

def to_usd(amounts):
    def one(item):
        return item[1] * rate(item[0])
    return {"usd": job(one, amounts).run(), "as_json": json.encode(amounts)}

print("loaded")
` + "`" + `, starlark.StringDict{"rate": rate})
	if err != nil {
		fmt.Println("exec:", err)
		os.Exit(1)
	}

	// Call a script function with Go values, and convert the result back.
	arg, err := starlarkmod.FromGo([][]any{{"EUR", 10}, {"GBP", 4}})
	if err != nil {
		fmt.Println("FromGo:", err)
		os.Exit(1)
	}
	v, err := in.Call(context.Background(), globals["to_usd"], starlark.Tuple{arg}, nil)
	if err != nil {
		fmt.Println("call:", starlarkmod.FormatError(err))
		os.Exit(1)
	}
	g, err := starlarkmod.ToGo(v)
	if err != nil {
		fmt.Println("ToGo:", err)
		os.Exit(1)
	}
	m := g.(map[string]any)
	fmt.Printf("%.1f %s\n", m["usd"], m["as_json"])

	// Cancel a script that runs too long.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = in.Exec(ctx, "long.star", "def spin():\n    while True:\n        pass\njob(lambda x: spin(), range(8)).run()\n", nil)
	fmt.Println("deadline exceeded:", errors.Is(err, context.DeadlineExceeded))
}
`

// TestEmbedFromAnotherModule builds and runs hostProgram in a temporary
// module that requires semisync through a replace directive pointing at
// this checkout: the embedding API works for a program outside the
// module. It uses only the module cache (GOPROXY=off, GOFLAGS=-mod=mod).
func TestEmbedFromAnotherModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program in another module")
	}
	goBin, err := osexec.LookPath("go")
	if err != nil && os.Getenv("GOROOT") != "" {
		goBin, err = filepath.Join(os.Getenv("GOROOT"), "bin", "go"), nil
	}
	if err != nil {
		t.Skip("no go command")
	}
	repo, err := filepath.Abs("..")
	require.NoError(t, err)
	mod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	require.NoError(t, err)
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	require.NoError(t, err)
	starlarkVersion := ""
	for _, line := range strings.Split(string(mod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "go.starlark.net" {
			starlarkVersion = f[1]
		}
	}
	require.NotEmpty(t, starlarkVersion, "go.starlark.net in go.mod")

	dir := t.TempDir()
	gomod := "module example.com/host\n\ngo 1.26\n\n" +
		"require (\n\tgithub.com/semisync/semisync v0.0.0\n\tgo.starlark.net " + starlarkVersion + "\n)\n\n" +
		"replace github.com/semisync/semisync => " + repo + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(hostProgram), 0o644))

	cmd := osexec.Command(goBin, "run", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "loaded\n[11.0 5.0] [[\"EUR\",10],[\"GBP\",4]]\ndeadline exceeded: true\n", string(out))
}
