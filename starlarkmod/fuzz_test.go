package starlarkmod_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/semisync/semisync/starlarkmod"
)

// FuzzExec runs arbitrary source as a script, with a step limit and a
// deadline, in parallel mode. Whatever the script does (syntax errors,
// decorators on anything, tasks that fail, race attempts), the interpreter
// must return an error or succeed: never panic, hang or leak.
func FuzzExec(f *testing.F) {
	seeds := []string{
		"print(1)\n",
		"@semisync\ndef f(x):\n    return x\nf(1)\nsemisync.begin()\n",
		"l = []\n@semisync\ndef f():\n    l.append(1)\nf()\nsemisync.begin()\n",
		"@future\ndef g():\n    return 1 // 0\ng().exception()\n",
		"x = 0\nx += 1\n@future\ndef h():\n    return x\nh()\n",
		"def f(i):\n    return i * i\nprint(job(f, range(100)).run())\n",
		"@generator\ndef gen(emit, n):\n    for i in range(n):\n        emit(i)\nprint(list(gen(3)))\n",
		"@coroutine\ndef c(inbox):\n    return len([x for x in inbox])\nprint(inject(range(5), c()))\n",
		"d = Dispatcher()\nd.subscribe(1, 'm', print)\nd.send(1, 'm')\nd.wait()\n",
		"@@\n",
		"@semisync(dependencies=[1])\ndef f(): pass\n",
		"while True:\n    pass\n",
		"\ufeffprint(sum([1, 2]))\n",
		"x = 1\x00\nprint(x)\n",
		"import json\nclass A:\n    pass\n",
		"load(\"json\", \"json\")\nprint(json.encode([1]))\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src string) {
		path := filepath.Join(dir, "fuzz.star")
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		in := starlarkmod.New(starlarkmod.Options{Stdout: io.Discard, Stderr: io.Discard, MaxSteps: 20000})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		in.ExecFile(ctx, path) //nolint:errcheck // any outcome but a panic or a hang is fine
		in.Close()
	})
}
