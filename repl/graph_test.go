package repl

import (
	"testing"

	"github.com/semisync/semisync/starlarkmod"
)

// TestGraphCommand runs a graph in a session and checks that :graph
// prints it as DOT with each call's status and duration (the REPL observes
// its run) and the critical path marked, then the calls still queued.
func TestGraphCommand(t *testing.T) {
	s := newSession(t, lines(`load("time", "sleep")
@semisync
def slow():
    sleep(0.05)

@semisync(dependencies = [slow])
def after():
    pass

slow()
after()
semisync.begin()
after()
:graph
`), starlarkmod.Options{})
	out := s.run(t)
	requireContainsInOrder(t, out, ">>> :graph\n", "digraph semisync {",
		`label="slow()\nok `, `class="ok critical"`,
		`label="after()\nok `, `class="ok critical"`,
		"-> ", `class="critical"`,
		"queued calls", `label="after()\nqueued"`, "}\n")
}
