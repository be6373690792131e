package engine_test

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/semisync/semisync/engine"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// Pool must be closed and every task must have returned.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goid returns the id of the calling goroutine. Tests use it to check which
// goroutine a callback runs on; nothing else should.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	b = b[:bytes.IndexByte(b, ' ')]
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic(err)
	}
	return id
}

// recoverPanic calls fn and returns the value it panicked with, or nil.
func recoverPanic(fn func()) (r any) {
	defer func() { r = recover() }()
	fn()
	return nil
}

// An executorCase names an Executor for table-driven tests. newEx is called
// once per subtest; the pool it may create is closed by t.Cleanup.
type executorCase struct {
	name  string
	newEx func(t *testing.T) engine.Executor
}

func newPool(t *testing.T, opts engine.PoolOptions) *engine.Pool {
	t.Helper()
	p := engine.NewPool(opts)
	t.Cleanup(p.Close)
	return p
}

var executors = []executorCase{
	{"Serial", func(t *testing.T) engine.Executor { return newPool(t, engine.PoolOptions{Serial: true}) }},
	{"SerialMax2", func(t *testing.T) engine.Executor { return newPool(t, engine.PoolOptions{Serial: true, Max: 2}) }},
	{"PoolLimit1", func(t *testing.T) engine.Executor { return newPool(t, engine.PoolOptions{Limit: 1}) }},
	{"PoolLimit2", func(t *testing.T) engine.Executor { return newPool(t, engine.PoolOptions{Limit: 2}) }},
	{"PoolDefault", func(t *testing.T) engine.Executor { return newPool(t, engine.PoolOptions{}) }},
}

// serialExecutors are the serial pools of executors.
var serialExecutors = executors[:2]

// concurrentExecutors are the executors that can run several tasks at once.
var concurrentExecutors = []executorCase{
	{"PoolLimit8", func(t *testing.T) engine.Executor { return newPool(t, engine.PoolOptions{Limit: 8}) }},
	{"PoolDefault", func(t *testing.T) engine.Executor { return newPool(t, engine.PoolOptions{}) }},
}

var bg = context.Background()
