package cluster

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Workers answer a request on <stream>.workers with their name and how
// many task items they run at once, so that a caller knows how many items
// the deployment runs at once (its runners) and can size its task
// messages to them (see guidedChunk). The answers are hints only: a
// caller that has heard from no worker yet sends one item per message,
// as it would for a job of slow items.

// workerHello is a worker's answer. ID tells apart workers given the
// same name.
type workerHello struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Concurrency int    `json:"concurrency"`
}

// maxHelloConcurrency bounds what one answer may claim, so that a sum of
// answers cannot overflow.
const maxHelloConcurrency = 1 << 20

// answerPings makes the worker answer the callers' pings; the returned
// subscription stops it.
func (w *worker) answerPings() (*nats.Subscription, error) {
	hello, err := json.Marshal(workerHello{ID: nuid.Next(), Name: w.o.Name, Concurrency: w.o.Concurrency})
	if err != nil {
		return nil, err
	}
	return w.nc.Subscribe(w.n.workers, func(m *nats.Msg) {
		if m.Reply != "" {
			m.Respond(hello) //nolint:errcheck // the caller asks again
		}
	})
}

// presence is a caller's view of the workers: who answered its pings,
// when, and with what concurrency.
type presence struct {
	nc      *nats.Conn
	subject string // <stream>.workers
	inbox   string
	sub     *nats.Subscription

	mu   sync.Mutex
	seen map[string]seenWorker // by workerHello.ID
	last time.Time             // last ping
}

type seenWorker struct {
	concurrency int
	at          time.Time
}

// presenceTTL is how long a worker counts after its last answer. A worker
// that stopped still counts until then: more runners than there are only
// makes messages smaller.
const presenceTTL = 10 * time.Second

// pingEvery is how often a caller asks again (on its next call).
const pingEvery = time.Second

func newPresence(nc *nats.Conn, subject string) (*presence, error) {
	p := &presence{nc: nc, subject: subject, inbox: nc.NewInbox(), seen: map[string]seenWorker{}}
	sub, err := nc.Subscribe(p.inbox, p.onHello)
	if err != nil {
		return nil, err
	}
	p.sub = sub
	p.ping()
	return p, nil
}

func (p *presence) onHello(m *nats.Msg) {
	var h workerHello
	if json.Unmarshal(m.Data, &h) != nil || h.ID == "" || h.Concurrency <= 0 {
		return
	}
	p.mu.Lock()
	if len(p.seen) < 1<<16 || p.seen[h.ID] != (seenWorker{}) {
		p.seen[h.ID] = seenWorker{concurrency: min(h.Concurrency, maxHelloConcurrency), at: time.Now()}
	}
	p.mu.Unlock()
}

// ping asks every worker to answer (at most once per pingEvery).
func (p *presence) ping() {
	p.mu.Lock()
	if time.Since(p.last) < pingEvery {
		p.mu.Unlock()
		return
	}
	p.last = time.Now()
	p.mu.Unlock()
	p.nc.PublishRequest(p.subject, p.inbox, nil) //nolint:errcheck // a lost ping leaves the old view
}

// runners returns how many items the workers that answered lately run at
// once (0: none answered), and asks them again for the next call.
func (p *presence) runners() int {
	defer p.ping()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for id, s := range p.seen {
		if time.Since(s.at) > presenceTTL {
			delete(p.seen, id)
			continue
		}
		n = min(n+s.concurrency, maxHelloConcurrency)
	}
	return n
}

func (p *presence) close() {
	p.sub.Unsubscribe() //nolint:errcheck // the connection may be closing
}

// guidedChunk is the number of items of the next task message when left
// items of a batch remain to be sent to runners runners, at most max:
// a quarter of each runner's share of what is left. Messages start large
// (few messages, little overhead per item) and shrink to one item at the
// end of the batch, so that a job's last items spread over every runner.
// This is OpenMP's "guided" schedule, and the quarter is the chunk size
// Python's Pool.map picks (len / (4 * processes)), but shrinking.
func guidedChunk(left, runners, max int) int {
	k := (left + 4*runners - 1) / (4 * runners)
	return min(max, k)
}
