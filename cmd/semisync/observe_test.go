package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// observed is a script that starts one task of every kind: 3 semisync
// calls, 5 job items, 2 futures, a generator and a coroutine (2 pipeline
// stages) and a dispatcher handler: 13 tasks.
const observed = `
load("time", "sleep")

@semisync
def fetch(x):
    return x

@semisync(dependencies=[fetch])
def report():
    return "done"

fetch(1)
fetch(2)
report()
semisync.begin()

def double(x):
    return 2 * x
print(job(double, range(5)).run())

@future
def slow(x):
    sleep(0.01)
    return x
print(wait([slow(1), slow(2)]))

@generator
def gen(emit):
    for i in range(3):
        emit(i)

@coroutine
def total(inbox):
    t = 0
    for x in inbox:
        t += x
    return t
print(inject(gen(), total()))

def handler(sender):
    print("got", sender)
dispatcher.subscribe("s", "m", handler)
dispatcher.send("s", "m")
dispatcher.wait()
`

type traceEvent struct {
	Ph   string         `json:"ph"`
	Name *string        `json:"name"`
	Cat  string         `json:"cat"`
	Pid  *int           `json:"pid"`
	Tid  *int           `json:"tid"`
	Ts   *float64       `json:"ts"`
	Dur  *float64       `json:"dur"`
	ID   *int           `json:"id"`
	BP   string         `json:"bp"`
	Args map[string]any `json:"args"`
}

// TestTraceJSON runs a script with --trace and checks the file against
// the trace-event format: every slice has ph, ts, dur, pid, tid and name,
// flows pair up and start and end inside slices, and every task has
// exactly one slice.
func TestTraceJSON(t *testing.T) {
	for _, mode := range []string{"parallel", "sequential"} {
		t.Run(mode, func(t *testing.T) {
			trace := filepath.Join(t.TempDir(), "trace.json")
			args := []string{"--trace", trace, script(t, observed)}
			if mode == "sequential" {
				args = append([]string{"--sequential"}, args...)
			}
			var stdout, stderr bytes.Buffer
			require.Equal(t, 0, doMain(args, nil, &stdout, &stderr), stderr.String())
			data, err := os.ReadFile(trace)
			require.NoError(t, err)
			var file struct {
				TraceEvents []traceEvent   `json:"traceEvents"`
				OtherData   map[string]any `json:"otherData"`
			}
			require.NoError(t, json.Unmarshal(data, &file), "not JSON")
			type sl struct {
				tid        int
				start, end float64
			}
			var slices []sl
			tasks := map[string]int{}
			cats := map[string]int{}
			starts, ends := map[int]traceEvent{}, map[int]traceEvent{}
			for _, e := range file.TraceEvents {
				switch e.Ph {
				case "X":
					require.NotNil(t, e.Name, "slice without name")
					require.NotNil(t, e.Pid, "slice %s without pid", *e.Name)
					require.NotNil(t, e.Tid, "slice %s without tid", *e.Name)
					require.NotNil(t, e.Ts, "slice %s without ts", *e.Name)
					require.NotNil(t, e.Dur, "slice %s without dur", *e.Name)
					assert.GreaterOrEqual(t, *e.Dur, 0.0)
					slices = append(slices, sl{*e.Tid, *e.Ts, *e.Ts + *e.Dur})
					cats[e.Cat]++
					switch e.Cat {
					case "semisync", "task", "item", "handler":
						id, _ := e.Args["task"].(string)
						require.NotEmpty(t, id, "task slice %s without a task id", *e.Name)
						tasks[id]++
					}
				case "s":
					require.NotNil(t, e.ID)
					starts[*e.ID] = e
				case "f":
					require.NotNil(t, e.ID)
					assert.Equal(t, "e", e.BP)
					ends[*e.ID] = e
				case "M":
				default:
					t.Errorf("unexpected phase %q", e.Ph)
				}
			}
			assert.Equal(t, map[string]int{"semisync": 3, "item": 5, "task": 4, "handler": 1, "begin": 1, "job": 1, "run": 1, "dispatcher": 1}, cats)
			assert.Len(t, tasks, 13, "one slice per task: %v", tasks)
			for id, n := range tasks {
				assert.Equal(t, 1, n, "task %s has %d slices", id, n)
			}
			inSlice := func(e traceEvent) bool {
				for _, s := range slices {
					if s.tid == *e.Tid && s.start <= *e.Ts && *e.Ts <= s.end {
						return true
					}
				}
				return false
			}
			require.NotEmpty(t, starts)
			assert.Equal(t, len(starts), len(ends), "flows pair up")
			for id, s := range starts {
				f, ok := ends[id]
				if assert.True(t, ok, "flow %d has no end", id) {
					assert.LessOrEqual(t, *s.Ts, *f.Ts, "flow %d goes back in time", id)
					assert.True(t, inSlice(f), "flow %d ends outside a slice", id)
				}
				assert.True(t, inSlice(s), "flow %d starts outside a slice", id)
			}
			assert.Equal(t, 13, len(starts), "a flow to every task")
		})
	}
}

// knownCritical has one critical path: b (0.4 s) then d; a and c take
// 10 ms each.
const knownCritical = `
load("time", "sleep")

@semisync
def a():
    sleep(0.01)

@semisync
def b():
    sleep(0.4)

@semisync(dependencies=[a])
def c():
    sleep(0.01)

@semisync(dependencies=[b, c])
def d():
    pass

a()
b()
c()
d()
semisync.begin()
`

// svgGroup is a <g> of Graphviz's SVG output: a node or an edge.
type svgGroup struct {
	Class string     `xml:"class,attr"`
	Title string     `xml:"title"`
	Texts []string   `xml:"text"`
	Inner []svgGroup `xml:"g"`
}

// TestGraphCriticalPath writes --graph FILE.dot for a graph with a known
// critical path, renders it with Graphviz (dot -Tsvg, installed by .ci/run)
// and checks that exactly the nodes b() and d() and the edge between them
// carry the class "critical" (and red), and that the Mermaid output marks
// the same nodes.
func TestGraphCriticalPath(t *testing.T) {
	dir := t.TempDir()
	src := script(t, knownCritical)
	dotFile, mmdFile := filepath.Join(dir, "g.dot"), filepath.Join(dir, "g.mmd")
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, doMain([]string{"--graph", dotFile, src}, nil, &stdout, &stderr), stderr.String())
	require.Equal(t, 0, doMain([]string{"--graph", mmdFile, src}, nil, &stdout, &stderr), stderr.String())

	mmd, err := os.ReadFile(mmdFile)
	require.NoError(t, err)
	assert.Contains(t, string(mmd), "class g1n1,g1n3 critical\n")
	assert.Regexp(t, `g1n1\["b\(\)<br/>ok [0-9.]+ms"\]`, string(mmd))

	dotBin, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("Graphviz dot is not installed (.ci/run installs it): cannot check the rendered graph")
	}
	svg, err := exec.Command(dotBin, "-Tsvg", dotFile).Output()
	require.NoError(t, err, "dot rejected the graph")
	var root struct {
		Groups []svgGroup `xml:"g"`
	}
	require.NoError(t, xml.Unmarshal(svg, &root))
	var critNodes, critEdges, nodes []string
	var walk func(gs []svgGroup)
	walk = func(gs []svgGroup) {
		for _, g := range gs {
			classes := strings.Fields(g.Class)
			crit := false
			for _, c := range classes[1:] {
				crit = crit || c == "critical"
			}
			switch {
			case len(classes) > 0 && classes[0] == "node":
				nodes = append(nodes, g.Texts[0])
				if crit {
					critNodes = append(critNodes, g.Texts[0])
				}
			case len(classes) > 0 && classes[0] == "edge" && crit:
				critEdges = append(critEdges, g.Title)
			}
			walk(g.Inner)
		}
	}
	walk(root.Groups)
	assert.ElementsMatch(t, []string{"a()", "b()", "c()", "d()"}, nodes)
	assert.ElementsMatch(t, []string{"b()", "d()"}, critNodes)
	assert.Equal(t, []string{"g1n1->g1n3"}, critEdges)
}

// TestSummaryGolden runs a fixed graph in sequential mode with --summary
// and compares the table, durations masked, with testdata/summary.golden;
// the critical path must be at least the sleeps on it.
func TestSummaryGolden(t *testing.T) {
	src := script(t, knownCritical+`
def square(x):
    return x * x
job(square, range(10)).run()
job(square, [1, "x"], suppress_worker_exceptions=True).run()
`)
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, doMain([]string{"--sequential", "--summary", src}, nil, &stdout, &stderr), stderr.String())
	out := stderr.String()
	_, table, ok := strings.Cut(out, "semisync summary:")
	require.True(t, ok, out)
	table = "semisync summary:" + table
	m := regexp.MustCompile(`critical path of the semisync graphs: ([0-9.]+)ms`).FindStringSubmatch(table)
	require.NotNil(t, m, table)
	ms, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, ms, 400.0, "the critical path includes b's 0.4 s sleep")
	masked := regexp.MustCompile(`[0-9.]+(s|ms|µs|ns)\b`).ReplaceAllString(table, "D")
	masked = regexp.MustCompile(`\([0-9]+%\)`).ReplaceAllString(masked, "(P%)")
	masked = strings.ReplaceAll(masked, filepath.Dir(src)+"/", "")
	masked = regexp.MustCompile(` +`).ReplaceAllString(masked, " ")
	golden := filepath.Join("testdata", "summary.golden")
	var want []byte
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(masked), 0o644))
	}
	want, err = os.ReadFile(golden)
	require.NoError(t, err)
	assert.Equal(t, string(want), masked)
}

// TestREPLProgressBar runs the REPL on a pseudo-terminal
// (github.com/creack/pty) and types a job that prints while its bar is
// shown: the bar is drawn, each printed line starts on a line of its own,
// and the bar is erased before the next prompt.
func TestREPLProgressBar(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary; skipped with -short")
	}
	cmd := exec.Command(semisyncBinary(t))
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "TERM=xterm")
	ctl, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 150})
	require.NoError(t, err)
	defer ctl.Close()
	var out syncBuf
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(&out, ctl) //nolint:errcheck // ends with EIO when the REPL exits
	}()
	waitFor := func(s string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), s) {
			require.True(t, time.Now().Before(deadline), "no %q in %q", s, out.String())
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(">>> ")
	io.WriteString(ctl, `load("time", "sleep")`+"\r")
	io.WriteString(ctl, "def f(x):\r    sleep(0.15)\r    print(\"item\", x)\r\r")
	io.WriteString(ctl, "r = job(f, range(10), processes = 2).run()\r")
	waitFor("item 9")
	io.WriteString(ctl, ":quit\r")
	require.NoError(t, cmd.Wait())
	<-copied
	s := out.String()
	require.Contains(t, s, "job f", "the bar was drawn in the REPL")
	for i := range 10 {
		line := fmt.Sprintf("item %d", i)
		k := strings.Index(s, line)
		require.GreaterOrEqual(t, k, 0)
		before := s[:k]
		assert.True(t, strings.HasSuffix(before, "\n") || strings.HasSuffix(before, "\r\x1b[K"),
			"%q does not start a line: %q", line, before[max(0, len(before)-40):])
	}
	last := strings.LastIndex(s, "job f")
	assert.Contains(t, s[last:], "\r\x1b[K", "the bar is erased at the end")
	assert.Less(t, last, strings.LastIndex(s, ">>> "), "the bar comes before the next prompt")
}

// syncBuf is a bytes.Buffer safe for one writer and one reader.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestTraceFileFirst: --trace opens its file before the run (the trace
// streams to it as the run goes), so a file that cannot be created stops
// the command before the script runs.
func TestTraceFileFirst(t *testing.T) {
	src := script(t, "print('ran')\n")
	bad := filepath.Join(t.TempDir(), "no", "such", "dir", "trace.json")
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 2, doMain([]string{"--trace", bad, src}, nil, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "semisync: --trace: open "+bad)
	assert.Empty(t, stdout.String(), "the script did not run")
}

// TestTraceAfterCtrlC: the trace of a run stopped with Ctrl-C holds the
// tasks that were running when it came: the trace is written after every
// cancelled task has unwound, not while they still run.
func TestTraceAfterCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := semisyncBinary(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "spin.star")
	require.NoError(t, os.WriteFile(script, []byte(`
def spin(i):
    print("running", i)
    n = 0
    while True:
        n += 1
fs = [future(spin)(i) for i in range(2)]
`), 0o644))
	traceFile := filepath.Join(dir, "t.json")
	cmd := exec.Command(bin, "--trace", traceFile, script)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuf
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // exited, normally
		cmd.Wait()         //nolint:errcheck // waited for, normally
	})
	lines := bufio.NewScanner(stdout)
	for started := 0; started < 2; started++ {
		require.True(t, lines.Scan(), "the futures never started; stderr:\n%s", stderr.String())
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	for lines.Scan() {
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, stderr.String())
	require.Equal(t, 130, exit.ExitCode(), stderr.String())

	data, err := os.ReadFile(traceFile)
	require.NoError(t, err)
	var file struct {
		TraceEvents []struct {
			Ph, Name string
		} `json:"traceEvents"`
	}
	require.NoError(t, json.Unmarshal(data, &file), string(data))
	spins := 0
	for _, e := range file.TraceEvents {
		if e.Ph == "X" && e.Name == "spin" {
			spins++
		}
	}
	assert.Equal(t, 2, spins, "the cancelled tasks' slices:\n%s", data)
}
