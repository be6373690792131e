package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func key(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func open(t *testing.T, dir string, max int64) *Store {
	t.Helper()
	s, err := Open(dir, Options{MaxBytes: max})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPutGet(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	_, ok := s.Get(key("a"))
	assert.False(t, ok)
	require.NoError(t, s.Put(key("a"), []byte("value of a")))
	require.NoError(t, s.Put(key("empty"), nil))
	v, ok := s.Get(key("a"))
	require.True(t, ok)
	assert.Equal(t, "value of a", string(v))
	v, ok = s.Get(key("empty"))
	require.True(t, ok)
	assert.Empty(t, v)
	assert.Equal(t, Counters{Hits: 2, Misses: 1, Puts: 2}, s.Counters())

	// Another store on the same directory (another process) sees them.
	s2 := open(t, dir, 0)
	v, ok = s2.Get(key("a"))
	require.True(t, ok)
	assert.Equal(t, "value of a", string(v))

	_, err := os.Stat(filepath.Join(dir, "CACHEDIR.TAG"))
	assert.NoError(t, err)
}

func TestCorruptEntries(t *testing.T) {
	good := encode(key("k"), []byte("the payload"))
	other := encode(key("other"), []byte("the payload"))
	for _, tc := range []struct {
		name string
		file []byte
	}{
		{"empty file", nil},
		{"truncated header", good[:20]},
		{"truncated payload", good[:len(good)-3]},
		{"padded", append(append([]byte(nil), good...), 'x')},
		{"flipped payload byte", func() []byte { b := append([]byte(nil), good...); b[len(b)-1] ^= 1; return b }()},
		{"flipped checksum byte", func() []byte { b := append([]byte(nil), good...); b[20] ^= 1; return b }()},
		{"bad magic", func() []byte { b := append([]byte(nil), good...); b[0] = 'X'; return b }()},
		{"another key's entry", other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, t.TempDir(), 0)
			k := key("k")
			require.NoError(t, s.Put(k, []byte("the payload")))
			p := s.path(k)
			require.NoError(t, os.WriteFile(p, tc.file, 0o644))
			_, ok := s.Get(k)
			assert.False(t, ok)
			_, err := os.Stat(p)
			assert.True(t, os.IsNotExist(err), "the corrupt entry is removed")
			c := s.Counters()
			assert.Equal(t, int64(1), c.Corrupt)
			assert.Equal(t, int64(1), c.Misses)
			// Recomputed and stored again, it is found.
			require.NoError(t, s.Put(k, []byte("the payload")))
			v, ok := s.Get(k)
			require.True(t, ok)
			assert.Equal(t, "the payload", string(v))
		})
	}
}

func TestEvictLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	payload := make([]byte, 1000-headerSize) // 1000-byte entries
	s := open(t, dir, 1<<40)
	base := time.Now().Add(-time.Hour)
	for i := 0; i < 10; i++ {
		k := key(fmt.Sprint(i))
		require.NoError(t, s.Put(k, payload))
		// Entry i was last used i minutes after base.
		mt := base.Add(time.Duration(i) * time.Minute)
		require.NoError(t, os.Chtimes(s.path(k), mt, mt))
	}
	// A hit on entry 0 makes it the most recent (its time is over a minute old).
	_, ok := s.Get(key("0"))
	require.True(t, ok)
	st, err := s.Stats()
	require.NoError(t, err)
	assert.Equal(t, 10, st.Entries)
	assert.Equal(t, int64(10000), st.Bytes)

	// A cap of 5500 bytes: evict down to 90% of it, 4950, so 4 entries stay.
	small := open(t, dir, 5500)
	require.NoError(t, small.Evict())
	st, err = small.Stats()
	require.NoError(t, err)
	assert.Equal(t, 4, st.Entries)
	assert.Equal(t, int64(6), small.Counters().Evicted)
	for i, want := range []bool{true, false, false, false, false, false, false, true, true, true} {
		_, err := os.Stat(s.path(key(fmt.Sprint(i))))
		assert.Equal(t, want, err == nil, "entry %d kept", i)
	}
}

func TestEvictWhileStoring(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 8000) // scans every 1000 bytes written
	payload := make([]byte, 500-headerSize)
	for i := 0; i < 100; i++ {
		require.NoError(t, s.Put(key(fmt.Sprint(i)), payload))
	}
	st, err := s.Stats()
	require.NoError(t, err)
	assert.LessOrEqual(t, st.Bytes, int64(8000+1000))
	require.NoError(t, s.Close())
	st, err = s.Stats()
	require.NoError(t, err)
	assert.LessOrEqual(t, st.Bytes, int64(8000))
}

func TestStaleTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	require.NoError(t, s.Put(key("a"), []byte("x")))
	shard := filepath.Dir(s.path(key("a")))
	old := filepath.Join(shard, tmpPrefix+"old")
	fresh := filepath.Join(shard, tmpPrefix+"fresh")
	require.NoError(t, os.WriteFile(old, []byte("half"), 0o644))
	require.NoError(t, os.WriteFile(fresh, []byte("half"), 0o644))
	mt := time.Now().Add(-2 * staleTemp)
	require.NoError(t, os.Chtimes(old, mt, mt))
	st, err := s.Stats()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Entries, "temporary files are not entries")
	_, err = os.Stat(old)
	assert.True(t, os.IsNotExist(err))
	_, err = os.Stat(fresh)
	assert.NoError(t, err, "a temporary file being written stays")
}

func TestCountsAcrossStores(t *testing.T) {
	dir := t.TempDir()
	s1 := open(t, dir, 0)
	require.NoError(t, s1.Put(key("a"), []byte("x")))
	s1.Get(key("a"))
	s1.Get(key("b"))
	require.NoError(t, s1.Close())
	require.NoError(t, s1.Close()) // twice is fine

	s2 := open(t, dir, 0)
	s2.Get(key("a"))
	st, err := s2.Stats()
	require.NoError(t, err)
	assert.Equal(t, Stats{Dir: filepath.Join(dir, version), Entries: 1, Bytes: headerSize + 1, MaxBytes: DefaultMaxBytes, Hits: 2, Misses: 1}, st)
	require.NoError(t, s2.Close())
	st, err = open(t, dir, 0).Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(2), st.Hits)

	// A torn record (a process died in mid-append) is ignored.
	f, err := os.OpenFile(filepath.Join(dir, version, countsFile), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{0, 0, 1})
	require.NoError(t, err)
	require.NoError(t, f.Close())
	st, err = open(t, dir, 0).Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(2), st.Hits)
}

func TestClear(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	for i := 0; i < 20; i++ {
		require.NoError(t, s.Put(key(fmt.Sprint(i)), []byte("x")))
	}
	s.Get(key("1"))
	require.NoError(t, s.Close())
	// Something else in the directory is left alone.
	mine := filepath.Join(dir, version, "notes.txt")
	require.NoError(t, os.WriteFile(mine, nil, 0o644))

	s = open(t, dir, 0)
	require.NoError(t, s.Clear())
	st, err := s.Stats()
	require.NoError(t, err)
	assert.Equal(t, 0, st.Entries)
	assert.Equal(t, int64(0), st.Hits)
	_, err = os.Stat(mine)
	assert.NoError(t, err)
	// The store still works after a clear (its shard directories are gone).
	require.NoError(t, s.Put(key("1"), []byte("y")))
	v, ok := s.Get(key("1"))
	require.True(t, ok)
	assert.Equal(t, "y", string(v))
}

// TestSharedDirectory has several stores on one directory (as several
// processes would have) store, read, clear and evict the same keys at
// once: every value read is one that was stored, whole.
func TestSharedDirectory(t *testing.T) {
	dir := t.TempDir()
	const stores, keys, rounds = 4, 50, 20
	value := func(k int) []byte { return []byte(fmt.Sprintf("value %d %s", k, make([]byte, k*10))) }
	var wg sync.WaitGroup
	errs := make(chan error, stores*rounds*keys)
	for n := 0; n < stores; n++ {
		s, err := Open(dir, Options{MaxBytes: 20000})
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			for r := 0; r < rounds; r++ {
				for k := 0; k < keys; k++ {
					kk := key(fmt.Sprint(k))
					if v, ok := s.Get(kk); ok && string(v) != string(value(k)) {
						errs <- fmt.Errorf("key %d: read %q", k, v)
					}
					if err := s.Put(kk, value(k)); err != nil {
						errs <- err
					}
				}
				if n == 0 && r%5 == 4 {
					if err := s.Clear(); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := open(t, dir, 0)
	for k := 0; k < keys; k++ {
		if v, ok := s.Get(key(fmt.Sprint(k))); ok {
			assert.Equal(t, string(value(k)), string(v))
		}
	}
	assert.Zero(t, s.Counters().Corrupt)
}

func TestInvalidKeyPanics(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	assert.Panics(t, func() { s.Get("../../etc/passwd") })
	assert.Panics(t, func() { s.Put("ABC", nil) })
	assert.True(t, ValidKey(key("x")))
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/some/where")
	d, err := DefaultDir()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join("/some/where", "semisync"), d)
}

func TestPutLater(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	require.NoError(t, err)
	for i := 0; i < 200; i++ {
		require.NoError(t, s.PutLater(key(fmt.Sprint(i)), []byte(fmt.Sprint("v", i))))
	}
	// Queued or written, a value is found at once.
	for i := 0; i < 200; i++ {
		v, ok := s.Get(key(fmt.Sprint(i)))
		require.True(t, ok, i)
		assert.Equal(t, fmt.Sprint("v", i), string(v))
	}
	require.NoError(t, s.Flush())
	st, err := s.Stats()
	require.NoError(t, err)
	assert.Equal(t, 200, st.Entries)
	require.NoError(t, s.PutLater(key("last"), []byte("x")))
	require.NoError(t, s.Close(), "Close writes what is queued")
	v, ok := open(t, dir, 0).Get(key("last"))
	require.True(t, ok)
	assert.Equal(t, "x", string(v))
}

func TestPutLaterError(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	require.NoError(t, err)
	// A file where the shard directory should be: the write fails.
	k := key("x")
	require.NoError(t, os.WriteFile(filepath.Join(dir, version, k[:2]), nil, 0o644))
	require.NoError(t, s.PutLater(k, []byte("v")))
	assert.Error(t, s.Flush())
	assert.NoError(t, s.Flush(), "reported once")
	require.NoError(t, s.Close())
}

func TestPacks(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	require.NoError(t, err)
	const n = 100
	for i := 0; i < n; i++ {
		require.NoError(t, s.PutLater(key(fmt.Sprint(i)), []byte(fmt.Sprint("v", i))))
	}
	require.NoError(t, s.Close())
	st, err := open(t, dir, 0).Stats()
	require.NoError(t, err)
	assert.Equal(t, n, st.Entries)
	require.Equal(t, 1, st.Packs, "a store that wrote many values writes a pack")

	// A new store answers from the pack: even with an entry file gone.
	require.NoError(t, os.Remove(filepath.Join(dir, version, key("7")[:2], key("7"))))
	s2 := open(t, dir, 0)
	v, ok := s2.Get(key("7"))
	require.True(t, ok)
	assert.Equal(t, "v7", string(v))

	// A corrupt record is skipped (the entry file answers); a truncated
	// pack keeps its whole records.
	paths, _ := s2.packFiles()
	require.Len(t, paths, 1)
	b, err := os.ReadFile(paths[0])
	require.NoError(t, err)
	b[packRecordHead+headerSize] ^= 1 // the first record's payload
	require.NoError(t, os.WriteFile(paths[0], b[:len(b)-5], 0o644))
	s3 := open(t, dir, 0)
	for i := 0; i < n; i++ {
		v, ok := s3.Get(key(fmt.Sprint(i)))
		if i == 7 {
			continue // neither in the pack's last record nor on disk, maybe
		}
		require.True(t, ok, i)
		assert.Equal(t, fmt.Sprint("v", i), string(v))
	}
	assert.Equal(t, int64(1), s3.Counters().Corrupt)

	// Eviction removes packs first; Clear removes them.
	require.NoError(t, open(t, dir, 1000).Evict())
	st, err = s3.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Packs)
	s4 := open(t, dir, 0)
	for i := 0; i < n; i++ {
		require.NoError(t, s4.Put(key(fmt.Sprint("x", i)), []byte("x")))
	}
	require.NoError(t, s4.Close())
	s5 := open(t, dir, 0)
	require.NoError(t, s5.Clear())
	st, err = s5.Stats()
	require.NoError(t, err)
	assert.Equal(t, 0, st.Packs)
	assert.Equal(t, 0, st.Entries)
}

func TestPacksMerge(t *testing.T) {
	dir := t.TempDir()
	for p := 0; p <= maxPacks; p++ {
		s, err := Open(dir, Options{})
		require.NoError(t, err)
		for i := 0; i < packMin; i++ {
			require.NoError(t, s.Put(key(fmt.Sprint(p, "/", i)), []byte("v")))
		}
		require.NoError(t, s.Close())
	}
	s := open(t, dir, 0)
	st, err := s.Stats()
	require.NoError(t, err)
	assert.Equal(t, maxPacks+1, st.Packs)
	_, ok := s.Get(key("3/5"))
	require.True(t, ok)
	require.NoError(t, s.Close()) // found too many: merges them
	st, err = open(t, dir, 0).Stats()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Packs)
	v, ok := open(t, dir, 0).Get(key("8/63"))
	require.True(t, ok)
	assert.Equal(t, "v", string(v))
}
