package cache

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Packs make a warm rerun cheap. A hit on an entry file costs four system
// calls (open, stat, read, close), which on a virtual machine cost more
// than many small calls they stand for. So a store that wrote many small
// values also writes, when it is closed, one pack file holding all of
// them; a later store reads every pack once, on its first Get, and
// answers hits on packed values from memory.
//
//	DIR/v1/packs/<random>.pack      records: 32-byte key, then an entry as in its file
//
// A pack is only an accelerator: every value in it is also in its entry
// file, which stays the record of truth for eviction and for other
// processes. A pack is written like an entry (temporary file, rename) and
// each record carries the entry's checksum: a corrupt record is skipped
// (the entry file answers), and a truncated pack keeps its whole records.
// Eviction removes every pack before it removes entries, and Clear removes
// them all. Hits answered from a pack do not refresh recency; once packs
// are evicted, the entry files answer and refresh it again. When a store
// finds more than maxPacks packs, it merges them into one when it closes.
// A store reads the packs once, at its first Get: a Clear or an eviction
// by another process meanwhile does not reach the values it holds, and a
// merge it writes afterwards may copy them again (they are still right:
// a key is the hash of what computes its value).
const (
	packDir        = "packs"
	packSuffix     = ".pack"
	packMin        = 64       // a store writes a pack if it stored at least this many values
	packValueMax   = 64 << 10 // larger values stay in their entry files only
	packLoadMax    = 256 << 20
	maxPacks       = 8
	packRecordHead = 32 // the key, before the entry
)

// packState is a store's view of the packs.
type packState struct {
	loadOnce sync.Once
	index    map[string][]byte // key -> payload, read-only once loaded
	loaded   []string          // pack files read
	bytes    int64             // their size

	mu    sync.Mutex
	fresh []packRecord // values this store wrote, for its own pack
	size  int64
}

type packRecord struct {
	key   string
	value []byte
}

// remember notes a value the store wrote, for its pack.
func (p *packState) remember(key string, value []byte) {
	if len(value) > packValueMax {
		return
	}
	p.mu.Lock()
	if p.size < packLoadMax {
		p.fresh = append(p.fresh, packRecord{key, value})
		p.size += int64(len(value)) + packRecordHead + headerSize
	}
	p.mu.Unlock()
}

// packGet returns the value of key from the packs, loading them first if
// this is the first lookup.
func (s *Store) packGet(key string) ([]byte, bool) {
	p := &s.packs
	p.loadOnce.Do(func() { s.loadPacks() })
	v, ok := p.index[key]
	return v, ok
}

// loadPacks reads the packs, newest last, up to packLoadMax bytes.
func (s *Store) loadPacks() {
	p := &s.packs
	p.index = map[string][]byte{}
	dir := filepath.Join(s.dir, packDir)
	names, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range names {
		if !strings.HasSuffix(e.Name(), packSuffix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, _, err := readFile(path)
		if err != nil || p.bytes+int64(len(b)) > packLoadMax {
			continue
		}
		p.loaded = append(p.loaded, path)
		p.bytes += int64(len(b))
		for len(b) >= packRecordHead+headerSize {
			key := hex.EncodeToString(b[:packRecordHead])
			n := uint64FromHeader(b[packRecordHead:])
			if n > uint64(len(b)) {
				break // truncated: keep the whole records before it
			}
			end := packRecordHead + headerSize + int(n)
			if end > len(b) {
				break // truncated: keep the whole records before it
			}
			if payload, err := decode(key, b[packRecordHead:end]); err == nil {
				p.index[key] = payload
			} else {
				s.corrupt.Add(1) // skipped: the entry file answers
			}
			b = b[end:]
		}
	}
}

func uint64FromHeader(h []byte) uint64 {
	var n uint64
	for _, c := range h[8:16] {
		n = n<<8 | uint64(c)
	}
	return n
}

// writePack writes the values this store wrote as a pack, if there are
// enough of them, merging the packs it loaded if there are too many.
func (s *Store) writePack() error {
	p := &s.packs
	p.mu.Lock()
	fresh := p.fresh
	p.fresh, p.size = nil, 0
	p.mu.Unlock()
	merge := len(p.loaded) > maxPacks
	if len(fresh) < packMin && !merge {
		return nil
	}
	var b []byte
	seen := map[string]bool{}
	add := func(key string, value []byte) {
		if seen[key] {
			return
		}
		seen[key] = true
		k, _ := hex.DecodeString(key)
		b = append(b, k...)
		b = append(b, encode(key, value)...)
	}
	for _, r := range fresh {
		add(r.key, r.value)
	}
	if merge {
		for key, v := range p.index {
			add(key, v)
		}
	}
	if int64(len(b)) > s.maxBytes/4 {
		return nil // a pack would take too much of the cap
	}
	dir := filepath.Join(s.dir, packDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := fmt.Sprintf("%016x%s", rand.Uint64(), packSuffix)
	if err := writeAtomic(dir, filepath.Join(dir, name), b); err != nil {
		return fmt.Errorf("cache: write pack: %w", err)
	}
	s.written.Add(int64(len(b))) // Close scans (and evicts if need be)
	if merge {
		for _, path := range p.loaded {
			os.Remove(path) //nolint:errcheck // another process merged it already
		}
	}
	return nil
}

// packFiles lists the pack files and their total size.
func (s *Store) packFiles() (paths []string, size int64) {
	dir := filepath.Join(s.dir, packDir)
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0
	}
	for _, e := range names {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), packSuffix) {
			paths = append(paths, filepath.Join(dir, e.Name()))
			size += fi.Size()
		}
	}
	return paths, size
}

// removePacks removes every pack file.
func (s *Store) removePacks() error {
	paths, _ := s.packFiles()
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
