package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestProbeFetch(t *testing.T) {
	s, err := Serve(ServeOptions{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	nc, _ := nats.Connect(s.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	const N = 200
	pub := func() {
		for i := range N {
			js.PublishAsync(fmt.Sprintf("p.%d", i), []byte("hello"))
		}
		<-js.PublishAsyncComplete()
	}
	pause := func() { time.Sleep(10 * time.Millisecond) }
	var idle time.Duration
	idleNow := func() {
		c := cpuNow()
		for range 50 {
			pause()
		}
		idle = (cpuNow() - c) / 50
		t.Logf("idle now: %v per pause", idle)
	}
	pub()
	idleNow()
	c0 := cpuNow()
	c0 = cpuNow()
	for range N {
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range b.Messages() {
			pause()
			m.Ack()
		}
	}
	t.Logf("paced Fetch(1): %v cpu/msg", (cpuNow()-c0)/N-idle)

	pub()
	idleNow()
	ljs, _ := nc.JetStream()
	lsub, err := ljs.PullSubscribe("", "w", nats.Bind("P", "w"))
	if err != nil {
		t.Fatal(err)
	}
	c0 = cpuNow()
	for range N {
		ms, err := lsub.Fetch(1, nats.MaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			pause()
			m.Ack()
		}
	}
	t.Logf("paced legacy Fetch(1): %v cpu/msg", (cpuNow()-c0)/N-idle)
	pub()
	idleNow()
	inbox := nats.NewInbox()
	sub, _ := nc.SubscribeSync(inbox)
	req, _ := json.Marshal(map[string]any{"batch": 1, "expires": int64(time.Second)})
	c0 = cpuNow()
	for range N {
		nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.P.w", inbox, req)
		m, err := sub.NextMsg(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		pause()
		m.Ack()
	}
	t.Logf("paced raw pull: %v cpu/msg", (cpuNow()-c0)/N-idle)

	pub()
	idleNow()
	c0 = cpuNow()
	nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.P.w", inbox, req)
	for range N {
		m, err := sub.NextMsg(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		pause()
		nc.PublishRequest(m.Reply, inbox, []byte("+NXT {\"batch\":1,\"expires\":1000000000}"))
	}
	t.Logf("paced AckNext: %v cpu/msg", (cpuNow()-c0)/N-idle)

	pub()
	idleNow()
	c0 = cpuNow()
	for range N {
		js.PublishAsync("p.x", []byte("hello"))
		<-js.PublishAsyncComplete()
		pause()
	}
	t.Logf("paced publish+puback: %v cpu/msg", (cpuNow()-c0)/N-idle)
	c0 = cpuNow()
	for range N {
		nc.Publish("core.x", []byte("hello"))
		nc.Flush()
		pause()
	}
	t.Logf("paced core publish+flush (ping/pong): %v cpu/msg", (cpuNow()-c0)/N-idle)
}
