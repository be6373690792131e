package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The two message bodies the cluster sends, in a small length-prefixed
// binary form (uvarint lengths; strings and byte slices as length + data).
// Task and result payloads are already portable encodings, so this layer
// only frames them; both ends are this package, and the first byte is a
// version so an old worker refuses a newer caller's tasks clearly.
const wireVersion = 2

// A taskMsg is one chunk of a batch: the items a worker runs together.
type taskMsg struct {
	Client  string        // the caller's id: results go to <prefix>.results.<Client>
	Call    uint64        // the caller's number for the Run this chunk belongs to
	Name    string        // the function's name, for messages
	FnSum   string        // hex sha256 of the function's encoding (fetched by it)
	Timeout time.Duration // per item, if positive
	Seed    int64         // the caller's --seed, if Seeded
	Seeded  bool
	Items   []taskItem
}

type taskItem struct {
	Index int // the item's index in its batch
	Args  []byte
	Task  uint64 // the task's structural identity (seeds its random generator)
}

// A resultMsg carries the outcome of some items of one chunk.
type resultMsg struct {
	Call   uint64
	Worker string
	Items  []resultItem
	Lines  []string // lines printed by work of the chunk that is no item's (a @future an item started)
}

type resultItem struct {
	Index  int
	Failed bool
	Value  []byte // portable-encoded result, when !Failed
	Msg    string // the error, when Failed
	Trace  string
	Lines  []string // lines the item printed, in order
}

type encoder struct{ b []byte }

func (e *encoder) uint(n uint64)   { e.b = binary.AppendUvarint(e.b, n) }
func (e *encoder) bytes(p []byte)  { e.uint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) string(s string) { e.uint(uint64(len(s))); e.b = append(e.b, s...) }

type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated message")

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *decoder) bytes() []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string { return string(d.bytes()) }

// count reads a length that is followed by at least min bytes per element,
// so a corrupt message cannot make us allocate much.
func (d *decoder) count(min int) int {
	n := d.uint()
	if d.err == nil && n > uint64(len(d.b)/min) {
		d.err = errShort
		return 0
	}
	return int(n)
}

func (d *decoder) version() {
	if len(d.b) == 0 {
		d.err = errShort
		return
	}
	if v := d.b[0]; v != wireVersion {
		d.err = fmt.Errorf("message version %d, this semisync speaks %d (run the same semisync version on callers and workers)", v, wireVersion)
		return
	}
	d.b = d.b[1:]
}

func (m *taskMsg) encode() []byte {
	n := 32 + len(m.Client) + len(m.Name) + len(m.FnSum)
	for _, it := range m.Items {
		n += 22 + len(it.Args)
	}
	e := encoder{b: make([]byte, 0, n)}
	e.b = append(e.b, wireVersion)
	e.string(m.Client)
	e.uint(m.Call)
	e.string(m.Name)
	e.string(m.FnSum)
	e.uint(uint64(max(m.Timeout, 0)))
	if m.Seeded {
		e.uint(1)
		e.uint(uint64(m.Seed))
	} else {
		e.uint(0)
	}
	e.uint(uint64(len(m.Items)))
	for _, it := range m.Items {
		e.uint(uint64(it.Index))
		e.bytes(it.Args)
		e.uint(it.Task)
	}
	return e.b
}

func decodeTask(b []byte) (*taskMsg, error) {
	d := decoder{b: b}
	d.version()
	m := &taskMsg{}
	m.Client = d.string()
	m.Call = d.uint()
	m.Name = d.string()
	m.FnSum = d.string()
	m.Timeout = time.Duration(d.uint())
	if d.uint() == 1 {
		m.Seeded = true
		m.Seed = int64(d.uint())
	}
	n := d.count(3)
	m.Items = make([]taskItem, n)
	for i := range m.Items {
		m.Items[i] = taskItem{Index: int(d.uint()), Args: d.bytes(), Task: d.uint()}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("bad task message: %w", d.err)
	}
	return m, nil
}

func (m *resultMsg) encode() []byte {
	n := 16 + len(m.Worker) + 8*len(m.Lines)
	for _, l := range m.Lines {
		n += len(l)
	}
	for _, it := range m.Items {
		n += 8 + len(it.Value) + len(it.Msg) + len(it.Trace) + 4*len(it.Lines)
		for _, l := range it.Lines {
			n += len(l)
		}
	}
	e := encoder{b: make([]byte, 0, n)}
	e.b = append(e.b, wireVersion)
	e.uint(m.Call)
	e.string(m.Worker)
	e.uint(uint64(len(m.Items)))
	for _, it := range m.Items {
		e.uint(uint64(it.Index))
		if it.Failed {
			e.uint(1)
			e.string(it.Msg)
			e.string(it.Trace)
		} else {
			e.uint(0)
			e.bytes(it.Value)
		}
		e.uint(uint64(len(it.Lines)))
		for _, l := range it.Lines {
			e.string(l)
		}
	}
	e.uint(uint64(len(m.Lines)))
	for _, l := range m.Lines {
		e.string(l)
	}
	return e.b
}

func decodeResult(b []byte) (*resultMsg, error) {
	d := decoder{b: b}
	d.version()
	m := &resultMsg{}
	m.Call = d.uint()
	m.Worker = d.string()
	n := d.count(3)
	m.Items = make([]resultItem, n)
	for i := range m.Items {
		it := &m.Items[i]
		it.Index = int(d.uint())
		switch d.uint() {
		case 0:
			it.Value = d.bytes()
		case 1:
			it.Failed = true
			it.Msg = d.string()
			it.Trace = d.string()
		default:
			if d.err == nil {
				d.err = errors.New("bad item status")
			}
		}
		if nl := d.count(1); nl > 0 {
			it.Lines = make([]string, nl)
			for j := range it.Lines {
				it.Lines[j] = d.string()
			}
		}
	}
	if nl := d.count(1); nl > 0 {
		m.Lines = make([]string, nl)
		for j := range m.Lines {
			m.Lines[j] = d.string()
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("bad result message: %w", d.err)
	}
	return m, nil
}
