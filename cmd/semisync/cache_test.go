package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cacheScript is a graph of 300 pure calls whose results are checked.
const cacheScript = `
def sum_of(xs):
    s = 0
    for x in xs:
        s += x
    return s
def work(i):
    s = 0
    for k in range(2000):
        s += (k * i) % 7
    return s

@semisync
def node(i):
    return work(i)

hs = [node(i) for i in range(300)]
semisync.begin()
print("total", sum_of([h.result() for h in hs]))
`

// statsOf runs "semisync cache stats --cache dir" in-process and returns
// its fields.
func statsOf(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, doMain([]string{"cache", "stats", "--cache", dir}, nil, &stdout, &stderr), stderr.String())
	m := map[string]int64{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if f := regexp.MustCompile(`^(\w+):\s+(\d+)`).FindStringSubmatch(line); f != nil {
			n, _ := strconv.ParseInt(f[2], 10, 64)
			m[f[1]] = n
		}
	}
	return m
}

// Two processes share one cache directory at once: both compute and store
// the same results concurrently, both print the right total, and a third
// run finds every result.
func TestCacheTwoProcessesShareADirectory(t *testing.T) {
	bin := semisyncBinary(t)
	dir := t.TempDir()
	path := script(t, cacheScript)
	var want bytes.Buffer
	require.Equal(t, 0, doMain([]string{path}, nil, &want, &want), want.String())

	cmds := make([]*exec.Cmd, 2)
	outs := make([]bytes.Buffer, 2)
	for i := range cmds {
		cmds[i] = exec.Command(bin, "--cache", dir, path)
		cmds[i].Stdout = &outs[i]
		cmds[i].Stderr = &outs[i]
		require.NoError(t, cmds[i].Start())
	}
	for i, c := range cmds {
		require.NoError(t, c.Wait(), outs[i].String())
		assert.Equal(t, want.String(), outs[i].String())
	}
	st := statsOf(t, dir)
	assert.Equal(t, int64(300), st["entries"])
	assert.Equal(t, int64(600), st["hits"]+st["misses"], "each process looked up every call")

	// A third process: every call is a hit.
	out, err := exec.Command(bin, "--cache", dir, path).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, want.String(), string(out))
	st2 := statsOf(t, dir)
	assert.Equal(t, st["hits"]+300, st2["hits"])
	assert.Equal(t, st["misses"], st2["misses"])
}

func TestCacheCommand(t *testing.T) {
	dir := t.TempDir()
	path := script(t, cacheScript)
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := doMain(args, nil, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := run("--cache", dir, path)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "total ")
	assert.Equal(t, int64(300), statsOf(t, dir)["entries"])

	code, out, _ = run("cache", "clear", "--cache", dir)
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "removed 300 entries")
	assert.Equal(t, map[string]int64{"entries": 0, "packs": 0, "bytes": 0, "hits": 0, "misses": 0}, statsOf(t, dir))

	// Usage errors.
	for _, args := range [][]string{{"cache"}, {"cache", "nope"}, {"cache", "stats", "extra"}, {"--cache-max", "lots", path}} {
		code, _, errOut = run(args...)
		assert.Equal(t, 2, code, "%v: %s", args, errOut)
	}
	code, _, errOut = run("cache", "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, errOut, "usage: semisync cache stats")

	// A small cap evicts: 300 entries of ~60 bytes do not fit in 4K.
	code, _, errOut = run("--cache", dir, "--cache-max", "4K", path)
	require.Equal(t, 0, code, errOut)
	st := statsOf(t, dir)
	assert.LessOrEqual(t, st["bytes"], int64(4096))
	assert.Less(t, st["entries"], int64(300))
}

func TestSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{"100": 100, "4K": 4096, "2m": 2 << 20, "1G": 1 << 30, "3GB": 3 << 30} {
		var s sizeFlag
		require.NoError(t, s.Set(in), in)
		assert.Equal(t, want, int64(s), in)
	}
	for _, in := range []string{"", "0", "-1", "x", "1T", "99999999999G"} {
		var s sizeFlag
		assert.Error(t, s.Set(in), in)
	}
}
