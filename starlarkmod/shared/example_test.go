package shared_test

import (
	"fmt"
	"testing"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
	"go.uber.org/goleak"

	"github.com/semisync/semisync/starlarkmod/shared"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The module works on any Starlark thread; on semisync's threads its waits
// go through the engine (see the package doc).
func Example() {
	th := &starlark.Thread{Print: func(_ *starlark.Thread, msg string) { fmt.Println(msg) }}
	_, err := starlark.ExecFileOptions(&syntax.FileOptions{}, th, "example.star", `
m = Manager()
l = m.list([1, 2])
l.extend(l)
d = m.dict(a=1)
d.update(d)
lock = Lock()
lock.acquire()
print(l, d, lock.locked())
lock.release()
`, shared.Module.Members)
	if err != nil {
		fmt.Println(err)
	}
	// Output: Manager.list([1, 2, 1, 2]) Manager.dict({"a": 1}) True
}
