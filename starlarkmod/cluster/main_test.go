package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// nats.go v1.55.0 races with itself when a connection closes right after
// its first PublishAsync: the goroutine that watches reconnects reads its
// status channel after the close handler set it to nil, and blocks on the
// nil channel forever (jetstream/publish.go, resetPendingAcksOnReconnect).
// It holds nothing; it is ignored here.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}
