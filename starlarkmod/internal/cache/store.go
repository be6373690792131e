// Package cache is the on-disk store of semisync's result cache
// (DESIGN.md section 8): values keyed by a sha256 hex digest, in a local
// directory that any number of processes may share at once.
//
// # Layout
//
//	DIR/CACHEDIR.TAG        marks DIR as a cache for backup tools (bford.net/cachedir)
//	DIR/v1/ab/abcdef...     one file per entry, in 256 shards by the key's first byte
//	DIR/v1/ab/.tmp-*        an entry being written (renamed into place when complete)
//	DIR/v1/counts           hit and miss counts, one 16-byte record appended per closed store
//
// # Entries
//
// An entry file is a 48-byte header (8 bytes of magic, the payload's
// length, sha256 of the key and the payload) then the payload. A reader
// that finds a short file, a wrong length or a wrong checksum (a crash in
// mid-write on a file system that reorders writes, a disk error, a hand
// edit) removes the entry and reports a miss: the caller recomputes the
// value and stores it again.
//
// # Concurrency
//
// A value is written to a temporary file in the entry's own directory,
// then renamed over the entry's name: readers see the old entry, no entry
// or the new one, never a mix. Two processes storing the same key race
// harmlessly (the last rename wins; both wrote the same value, since the
// key is the hash of what computes it). Removal (of a corrupt entry, by
// eviction, by Clear) races with readers harmlessly too: a reader that has
// the file open reads it whole; one that comes later misses. Nothing is
// locked. Writes are not fsynced: after a machine crash an entry may be
// torn, which the checksum catches. PutLater hands the write to one of 16
// background writers (creating a file is mostly waiting for the file
// system); Get finds a queued value before it is written, and Close waits
// for the queue.
//
// # Size and eviction
//
// The store keeps the directory under a size cap by least-recently-used
// eviction. Recency is the entry file's modification time: a write sets it,
// and a hit sets it again if it is more than a minute old (so a busy entry
// costs one extra system call a minute, not one per hit). Eviction scans
// the directory (cost: one stat per entry), and runs when the store is
// closed after writing, and during a run each time a process has written
// an eighth of the cap since its last scan. It removes the oldest entries
// until the total is at most 90% of the cap. Temporary files older than
// an hour (left by a killed process) are removed by the same scan.
package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBytes is the size cap of a store opened with MaxBytes 0: 1 GiB.
const DefaultMaxBytes = 1 << 30

const (
	version    = "v1"
	magic      = "semiSC01"
	headerSize = 8 + 8 + sha256.Size
	countsFile = "counts"
	tmpPrefix  = ".tmp-"
	// touchAfter is how old an entry's modification time must be for a
	// hit to refresh it (see the package comment).
	touchAfter = time.Minute
	// staleTemp is how old a temporary file must be for a scan to remove it.
	staleTemp = time.Hour
)

// DefaultDir returns the default cache directory: semisync under the
// user's cache directory (os.UserCacheDir: $XDG_CACHE_HOME or ~/.cache on
// Linux, ~/Library/Caches on macOS, %LocalAppData% on Windows).
func DefaultDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no default cache directory (%w); give one", err)
	}
	return filepath.Join(d, "semisync"), nil
}

// Options configures [Open].
type Options struct {
	// MaxBytes caps the total size of the entries (0: DefaultMaxBytes).
	// The directory may exceed it by up to an eighth between scans, per
	// process writing.
	MaxBytes int64
}

// A Store is an open cache directory. Its methods are safe for concurrent
// use by many goroutines, and several processes may open the same
// directory at once. Close it to record its counts and evict.
type Store struct {
	dir      string // DIR/v1
	maxBytes int64

	hits, misses, puts, corrupt, evicted atomic.Int64
	flushedHits, flushedMisses           atomic.Int64 // already appended to counts

	written   atomic.Int64 // bytes stored since the last scan
	evictMu   sync.Mutex   // one scan at a time in this process
	closeOnce sync.Once

	shardMu sync.Mutex
	shards  map[string]bool // shard directories known to exist

	// Writes in the background (PutLater).
	startOnce   sync.Once
	queue       chan *putReq
	writers     sync.WaitGroup
	pendMu      sync.Mutex
	pendCond    sync.Cond
	pending     map[string]*putReq // values queued and not yet written, for Get
	outstanding int                // queued and not yet written
	laterErr    error              // the first failed background write

	packs packState // see pack.go
}

// putReq is a value queued by PutLater.
type putReq struct {
	key   string
	value []byte
}

// writers is how many goroutines write in the background: creating a
// file is mostly waiting (for the file system's journal), and 16 writers
// store about 16 times as many values a second as one.
const writers = 16

// Open opens (creating it if needed) the cache directory dir.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("cache: empty directory name")
	}
	v := filepath.Join(dir, version)
	if err := os.MkdirAll(v, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	tag := filepath.Join(dir, "CACHEDIR.TAG")
	if _, err := os.Stat(tag); errors.Is(err, fs.ErrNotExist) {
		// Best effort, written atomically like an entry: a tag is a nicety.
		writeAtomic(dir, tag, []byte("Signature: 8a477f597d28d172789f06886806bc55\n"+ //nolint:errcheck
			"# This directory is semisync's result cache (see its README). It can be deleted at any time.\n"))
	}
	max := opts.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	st := &Store{dir: v, maxBytes: max, shards: map[string]bool{}, pending: map[string]*putReq{}}
	st.pendCond.L = &st.pendMu
	return st, nil
}

// Dir returns the directory the store keeps its entries in (DIR/v1).
func (s *Store) Dir() string { return s.dir }

// MaxBytes returns the store's size cap.
func (s *Store) MaxBytes() int64 { return s.maxBytes }

// ValidKey reports whether key names an entry: 64 lower-case hex digits.
func ValidKey(key string) bool {
	if len(key) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Store) path(key string) string { return filepath.Join(s.dir, key[:2], key) }

// checksum is sha256(key bytes || payload): an entry found under another
// key's name does not pass.
func checksum(key string, payload []byte) [sha256.Size]byte {
	var k [sha256.Size]byte
	hex.Decode(k[:], []byte(key)) //nolint:errcheck // keys are checked by the callers
	h := sha256.New()
	h.Write(k[:])
	h.Write(payload)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// encode returns the bytes of an entry file.
func encode(key string, payload []byte) []byte {
	b := make([]byte, headerSize+len(payload))
	copy(b, magic)
	binary.BigEndian.PutUint64(b[8:], uint64(len(payload)))
	sum := checksum(key, payload)
	copy(b[16:], sum[:])
	copy(b[headerSize:], payload)
	return b
}

// decode checks an entry file's bytes and returns its payload.
func decode(key string, b []byte) ([]byte, error) {
	if len(b) < headerSize {
		return nil, fmt.Errorf("truncated: %d bytes, shorter than the %d-byte header", len(b), headerSize)
	}
	if string(b[:8]) != magic {
		return nil, errors.New("bad magic")
	}
	n := binary.BigEndian.Uint64(b[8:])
	if n != uint64(len(b)-headerSize) {
		return nil, fmt.Errorf("truncated or padded: header says %d payload bytes, file has %d", n, len(b)-headerSize)
	}
	payload := b[headerSize:]
	if sum := checksum(key, payload); !bytes.Equal(sum[:], b[16:headerSize]) {
		return nil, errors.New("checksum mismatch")
	}
	return payload, nil
}

// Get returns the value stored under key, and whether there was one. An
// entry that fails its checks is removed and counts as a miss (see
// Corrupt in [Counters]). It panics if key is not a [ValidKey].
func (s *Store) Get(key string) ([]byte, bool) {
	if !ValidKey(key) {
		panic(fmt.Sprintf("cache: invalid key %q", key))
	}
	s.pendMu.Lock()
	req, ok := s.pending[key]
	s.pendMu.Unlock()
	if ok {
		s.hits.Add(1)
		return req.value, true
	}
	if v, ok := s.packGet(key); ok {
		s.hits.Add(1)
		return v, true
	}
	p := s.path(key)
	b, st, err := readFile(p)
	if err != nil {
		if st.mod.IsZero() {
			s.misses.Add(1) // no entry (or not readable)
		} else {
			s.drop(p, st) // opened, but not read whole
		}
		return nil, false
	}
	// A file that grew or shrank after the stat fails the length check.
	payload, err := decode(key, b)
	if err != nil {
		s.drop(p, st)
		return nil, false
	}
	if time.Since(st.mod) > touchAfter {
		now := time.Now()
		os.Chtimes(p, now, now) //nolint:errcheck // recency is best effort
	}
	s.hits.Add(1)
	return payload, true
}

// drop removes a corrupt entry, unless it was replaced meanwhile (another
// process stored a good one under the name), and counts a miss.
func (s *Store) drop(p string, read fileStat) {
	s.misses.Add(1)
	s.corrupt.Add(1)
	if sameFile(p, read) {
		os.Remove(p) //nolint:errcheck // gone already is fine
	}
}

// Put stores value under key, replacing any entry. It panics if key is
// not a [ValidKey].
func (s *Store) Put(key string, value []byte) error {
	if !ValidKey(key) {
		panic(fmt.Sprintf("cache: invalid key %q", key))
	}
	shard := filepath.Join(s.dir, key[:2])
	if err := s.ensureShard(shard); err != nil {
		return err
	}
	b := encode(key, value)
	err := writeAtomic(shard, filepath.Join(shard, key), b)
	if errors.Is(err, fs.ErrNotExist) {
		// Clear removed the directory meanwhile (another process): make it
		// again, once.
		s.forgetShards()
		if err = s.ensureShard(shard); err == nil {
			err = writeAtomic(shard, filepath.Join(shard, key), b)
		}
	}
	if err != nil {
		return fmt.Errorf("cache: store %s: %w", key[:12], err)
	}
	s.puts.Add(1)
	s.packs.remember(key, value)
	if s.written.Add(int64(len(b))) >= s.maxBytes/8 && s.evictMu.TryLock() {
		// This goroutine scans; others go on storing meanwhile.
		defer s.evictMu.Unlock()
		s.written.Store(0)
		if _, err := s.scan(true); err != nil {
			return fmt.Errorf("cache: evict: %w", err)
		}
	}
	return nil
}

// PutLater is Put in the background: it queues the value (which it keeps:
// do not change it) for one of the store's writers and returns at once,
// unless the queue is full. Until it is written, Get returns it. It
// returns the error of an earlier background write, if one failed (the
// value is still queued); [Store.Flush] and Close return it too.
func (s *Store) PutLater(key string, value []byte) error {
	if !ValidKey(key) {
		panic(fmt.Sprintf("cache: invalid key %q", key))
	}
	s.startOnce.Do(func() {
		s.queue = make(chan *putReq, 4*writers)
		for range writers {
			s.writers.Add(1)
			go s.writer()
		}
	})
	req := &putReq{key, value}
	s.pendMu.Lock()
	s.pending[key] = req
	s.outstanding++
	err := s.laterErr
	s.pendMu.Unlock()
	s.queue <- req
	return err
}

// writer writes queued values until Close.
func (s *Store) writer() {
	defer s.writers.Done()
	for req := range s.queue {
		err := s.Put(req.key, req.value)
		s.pendMu.Lock()
		if err != nil && s.laterErr == nil {
			s.laterErr = err
		}
		if s.pending[req.key] == req {
			delete(s.pending, req.key) // unless queued again meanwhile
		}
		if s.outstanding--; s.outstanding == 0 {
			s.pendCond.Broadcast()
		}
		s.pendMu.Unlock()
	}
}

// Flush waits until every value queued by PutLater is written, and
// returns the first background write that failed (once).
func (s *Store) Flush() error {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	for s.outstanding > 0 {
		s.pendCond.Wait()
	}
	err := s.laterErr
	s.laterErr = nil
	return err
}

func (s *Store) ensureShard(shard string) error {
	s.shardMu.Lock()
	ok := s.shards[shard]
	s.shardMu.Unlock()
	if ok {
		return nil
	}
	if err := os.MkdirAll(shard, 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	s.shardMu.Lock()
	s.shards[shard] = true
	s.shardMu.Unlock()
	return nil
}

func (s *Store) forgetShards() {
	s.shardMu.Lock()
	s.shards = map[string]bool{}
	s.shardMu.Unlock()
}

// Counters are what one open [Store] did since it was opened.
type Counters struct {
	Hits, Misses int64 // lookups that found a value, and that did not
	Puts         int64 // values stored
	Corrupt      int64 // entries that failed their checks (removed; counted as misses too)
	Evicted      int64 // entries removed to stay under the cap
}

// Counters returns what the store did since it was opened.
func (s *Store) Counters() Counters {
	return Counters{
		Hits: s.hits.Load(), Misses: s.misses.Load(), Puts: s.puts.Load(),
		Corrupt: s.corrupt.Load(), Evicted: s.evicted.Load(),
	}
}

// Stats describe a cache directory.
type Stats struct {
	Dir      string // the directory holding the entries
	Entries  int    // entries stored
	Bytes    int64  // the total size of entries and packs, headers included
	Packs    int    // pack files (see pack.go)
	MaxBytes int64  // the cap the store was opened with
	// Hits and Misses are the lookups of every store closed on this
	// directory since it was last cleared, plus this one's so far.
	Hits, Misses int64
}

// Stats scans the directory (one stat per entry) and reads the recorded
// counts.
func (s *Store) Stats() (Stats, error) {
	st, err := s.scan(false)
	if err != nil {
		return st, err
	}
	h, m, err := s.readCounts()
	if err != nil {
		return st, err
	}
	st.Hits = h + s.hits.Load() - s.flushedHits.Load()
	st.Misses = m + s.misses.Load() - s.flushedMisses.Load()
	return st, nil
}

type entryInfo struct {
	path string
	size int64
	mod  time.Time
}

// scan walks the entries, removing stale temporary files, and with evict
// removes the least recently used entries while the total is over the cap.
func (s *Store) scan(evict bool) (Stats, error) {
	st := Stats{Dir: s.dir, MaxBytes: s.maxBytes}
	shards, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return st, nil
		}
		return st, err
	}
	var entries []entryInfo
	now := time.Now()
	for _, sh := range shards {
		if !sh.IsDir() || len(sh.Name()) != 2 {
			continue
		}
		dir := filepath.Join(s.dir, sh.Name())
		names, err := os.ReadDir(dir)
		if err != nil {
			continue // removed meanwhile (Clear in another process)
		}
		for _, e := range names {
			name := e.Name()
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			if strings.HasPrefix(name, tmpPrefix) {
				if now.Sub(fi.ModTime()) > staleTemp {
					os.Remove(filepath.Join(dir, name)) //nolint:errcheck
				}
				continue
			}
			if !ValidKey(name) || !fi.Mode().IsRegular() {
				continue
			}
			st.Entries++
			st.Bytes += fi.Size()
			if evict {
				entries = append(entries, entryInfo{filepath.Join(dir, name), fi.Size(), fi.ModTime()})
			}
		}
	}
	packs, packBytes := s.packFiles()
	st.Packs = len(packs)
	st.Bytes += packBytes
	if !evict || st.Bytes <= s.maxBytes {
		return st, nil
	}
	// Packs go first: every value in them is in its entry file too.
	if err := s.removePacks(); err == nil {
		st.Bytes -= packBytes
		st.Packs = 0
	}
	if st.Bytes <= s.maxBytes/10*9 {
		return st, nil
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].mod.Before(entries[j].mod) })
	low := s.maxBytes / 10 * 9
	for _, e := range entries {
		if st.Bytes <= low {
			break
		}
		if err := os.Remove(e.path); err == nil {
			s.evicted.Add(1)
		}
		// Removed by another process already: it no longer counts either.
		st.Entries--
		st.Bytes -= e.size
	}
	return st, nil
}

// Evict scans the directory and removes the least recently used entries
// while it is over the cap (to 90% of it).
func (s *Store) Evict() error {
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	s.written.Store(0)
	_, err := s.scan(true)
	return err
}

// readCounts sums the records of the counts file; a torn last record
// (a process died in mid-append) is ignored.
func (s *Store) readCounts() (hits, misses int64, err error) {
	b, err := os.ReadFile(filepath.Join(s.dir, countsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	for ; len(b) >= 16; b = b[16:] {
		hits += int64(binary.BigEndian.Uint64(b))
		misses += int64(binary.BigEndian.Uint64(b[8:]))
	}
	return hits, misses, nil
}

// flushCounts appends this store's hits and misses not yet recorded, as
// one 16-byte write to a file opened for appending: records of processes
// closing at once do not interleave.
func (s *Store) flushCounts() error {
	h := s.hits.Load()
	m := s.misses.Load()
	dh, dm := h-s.flushedHits.Load(), m-s.flushedMisses.Load()
	if dh == 0 && dm == 0 {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(s.dir, countsFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	var rec [16]byte
	binary.BigEndian.PutUint64(rec[:], uint64(dh))
	binary.BigEndian.PutUint64(rec[8:], uint64(dm))
	_, err = f.Write(rec[:])
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		s.flushedHits.Store(h)
		s.flushedMisses.Store(m)
	}
	return err
}

// Clear removes every entry and the recorded counts. Other processes using
// the directory meanwhile go on: their lookups miss, their stores succeed
// (an entry stored during a Clear may stay). Files that are not the
// store's are left alone.
func (s *Store) Clear() error {
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	s.flushedHits.Store(s.hits.Load())
	s.flushedMisses.Store(s.misses.Load())
	if err := os.Remove(filepath.Join(s.dir, countsFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache: clear: %w", err)
	}
	if err := s.removePacks(); err != nil {
		return fmt.Errorf("cache: clear: %w", err)
	}
	shards, err := os.ReadDir(s.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache: clear: %w", err)
	}
	for _, sh := range shards {
		if !sh.IsDir() || len(sh.Name()) != 2 || !ValidKeyPrefix(sh.Name()) {
			continue
		}
		dir := filepath.Join(s.dir, sh.Name())
		names, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		// Entries only: a temporary file may be about to be renamed by a
		// writer (stale ones go at the next scan).
		for _, e := range names {
			if ValidKey(e.Name()) {
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("cache: clear: %w", err)
				}
			}
		}
	}
	return nil
}

// ValidKeyPrefix reports whether p is made of lower-case hex digits.
func ValidKeyPrefix(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Close waits for the values queued by PutLater to be written, records
// the store's counts in the directory and, if it stored anything since its
// last scan, evicts. The store must not be used
// afterwards; a second Close does nothing.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.Flush()
		if s.queue != nil {
			close(s.queue)
			s.writers.Wait()
		}
		if perr := s.writePack(); err == nil {
			err = perr
		}
		if ferr := s.flushCounts(); err == nil {
			err = ferr
		}
		if s.written.Load() > 0 {
			if eerr := s.Evict(); err == nil {
				err = eerr
			}
		}
	})
	return err
}
