package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The tests that run the real binary (SIGINT, the REPL in a terminal)
// share one build of it, made on first use.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// semisyncBinary builds the semisync command once for the test binary and
// returns its path; TestMain removes it.
func semisyncBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil && os.Getenv("GOROOT") != "" {
			goBin, err = filepath.Join(os.Getenv("GOROOT"), "bin", "go"), nil
		}
		if err != nil {
			binary.err = err
			return
		}
		if binary.dir, binary.err = os.MkdirTemp("", "semisync-bin"); binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "semisync")
		binary.out, binary.err = exec.Command(goBin, "build", "-o", binary.path, ".").CombinedOutput()
	})
	if binary.err != nil {
		t.Fatalf("go build: %v\n%s", binary.err, binary.out)
	}
	return binary.path
}

// removeBinary deletes the shared build, if any.
func removeBinary() {
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
}
