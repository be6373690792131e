package starlarkmod

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"go.starlark.net/starlark"

	"github.com/semisync/semisync/starlarkmod/internal/cache"
	"github.com/semisync/semisync/starlarkmod/internal/portable"
)

// The result cache (DESIGN.md section 8): the results of calls that are
// provably pure are stored under the hash of what computes them and
// reused by later runs, in this process or another.
//
//	@semisync(cache=True)         cache the calls of a semisync function
//	@future(cache=True)           the same for a @future function
//	job(f, items, cache=True)     the same for the items of a job
//	cache=False                   never cache these calls (even with Options.CacheAll)
//
// Which calls: with cache=True, every call of the function; with
// Options.CacheAll (the command line's --cache), every call of a
// @semisync or @future function and every job item whose function is
// provably pure, unless cache=False. run_single_processed, a debugging
// aid, always runs its items.
//
// Pure: the function reaches (through the globals it reads, its free
// variables and defaults, and the functions it calls, transitively) only
// frozen data, other pure functions and pure builtins: Starlark's own
// except print, sum, math, json and the pure members of time (not
// time.now). sleep, time.now, random, print, Manager, Lock, the
// dispatcher, futures, jobs, pipelines and host builtins not declared
// pure (Options.PureBuiltins) are impure. cache=True on a function that
// is not pure is an error naming what it reaches and where; under
// CacheAll such a function simply runs.
//
// The key is sha256 of the function's portable encoding by source
// (portable.BySource: the source text of each def it reaches, never the
// file's name, hash or line numbers, and the values it reaches) and of
// the call's arguments, so editing one function recomputes exactly the
// calls that reach it, wherever it sits in the file. A semisync call's
// key also holds the keys of the calls of its dependencies, so that,
// as in make, the dependents of a call that reruns rerun too.
//
// A hit does not run the function: the stored result is decoded, frozen
// and returned (a semisync callback still runs, with it). A miss runs the
// function and stores its result if it succeeded and can be encoded.
// Without a store (Options.Cache nil), cache=True checks purity and the
// calls run every time.

// Cache is where the result cache keeps results: a directory
// ([OpenDirCache]), or anything with the same two methods (a shared
// object store). Keys are 64 lower-case hex digits (sha256). Both
// methods are called from many goroutines at once; Get reports a value
// it cannot return whole as missing.
type Cache interface {
	Get(key string) (value []byte, ok bool)
	Put(key string, value []byte) error
}

// DirCache is a [Cache] in a local directory that any number of
// processes may share at once: atomic writes, checksummed entries
// (a corrupt or truncated entry is removed and counts as a miss), and a
// size cap kept by least-recently-used eviction, recency being each
// entry file's modification time. Its methods are safe for concurrent
// use. Close it when done: it waits for the results being written,
// records its hit and miss counts in the directory and evicts.
type DirCache struct{ s *cache.Store }

var _ Cache = (*DirCache)(nil)

// DefaultCacheDir returns the default cache directory: "semisync" under
// os.UserCacheDir() ($XDG_CACHE_HOME or ~/.cache on Linux,
// ~/Library/Caches on macOS, %LocalAppData% on Windows).
func DefaultCacheDir() (string, error) { return cache.DefaultDir() }

// DefaultCacheMaxBytes is the size cap of a DirCache opened with
// maxBytes 0 (1 GiB).
const DefaultCacheMaxBytes = cache.DefaultMaxBytes

// OpenDirCache opens the cache directory dir, creating it if needed, with
// a size cap of maxBytes (0: [DefaultCacheMaxBytes]).
func OpenDirCache(dir string, maxBytes int64) (*DirCache, error) {
	s, err := cache.Open(dir, cache.Options{MaxBytes: maxBytes})
	if err != nil {
		return nil, err
	}
	return &DirCache{s}, nil
}

// Get returns the value stored under key.
func (c *DirCache) Get(key string) ([]byte, bool) { return c.s.Get(key) }

// Put stores value under key, in the background: it returns at once (or
// when 64 values wait to be written), and Get finds the value meanwhile.
// It keeps value: do not change it. It returns the error of an earlier
// background write, if one failed; Close returns it too.
func (c *DirCache) Put(key string, value []byte) error { return c.s.PutLater(key, value) }

// CacheDirStats describe a cache directory.
type CacheDirStats struct {
	Dir      string // where the entries are
	Entries  int    // how many
	Bytes    int64  // their total size, with the packs'
	Packs    int    // files that copy many small results, read in one go by later runs
	MaxBytes int64  // the size cap
	// Hits and Misses count the lookups of every DirCache closed on the
	// directory since it was last cleared, plus this one's.
	Hits, Misses int64
}

// Stats scans the directory (one stat per entry).
func (c *DirCache) Stats() (CacheDirStats, error) {
	st, err := c.s.Stats()
	return CacheDirStats(st), err
}

// Clear removes every entry and the recorded counts.
func (c *DirCache) Clear() error { return c.s.Clear() }

// Close records the counts and evicts if the cache grew. The DirCache must
// not be used afterwards.
func (c *DirCache) Close() error { return c.s.Close() }

// CacheStats count what the result cache did.
type CacheStats struct {
	Hits   int64 // calls answered from the cache (their function did not run)
	Misses int64 // cached calls that ran because the cache had no result
	Stored int64 // results handed to the store
	// Unstorable counts results that could not be encoded (they ran, and
	// will run again next time); StoreErrors counts failed stores.
	Unstorable, StoreErrors int64
}

// String renders the counts as one line for summaries.
func (s CacheStats) String() string {
	line := fmt.Sprintf("cache: %d hits, %d misses, %d stored", s.Hits, s.Misses, s.Stored)
	if s.Unstorable > 0 {
		line += fmt.Sprintf(", %d results not storable", s.Unstorable)
	}
	if s.StoreErrors > 0 {
		line += fmt.Sprintf(", %d store errors", s.StoreErrors)
	}
	return line
}

// cacheCounters are the atomic counts behind CacheStats.
type cacheCounters struct {
	hits, misses, stored, unstorable, storeErrors atomic.Int64
}

func (c *cacheCounters) stats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Stored: c.stored.Load(),
		Unstorable: c.unstorable.Load(), StoreErrors: c.storeErrors.Load()}
}

// CacheStats returns what the result cache did for this run so far.
func (r *Run) CacheStats() CacheStats { return r.cache.counts.stats() }

// CacheStats returns what the result cache did for every run of the
// interpreter so far.
func (in *Interpreter) CacheStats() CacheStats { return in.cacheState().counts.stats() }

// interpCache is the interpreter's part of the cache: the purity rules
// and the totals.
type interpCache struct {
	purity *cache.Purity
	counts cacheCounters
}

// runCache is a run's part of the cache: its counts, and the keys of the
// completed semisync calls of each function (for dependents queued by a
// later begin), until semisync.clear.
type runCache struct {
	counts   cacheCounters
	reported atomic.Bool // a store error was reported

	mu   sync.Mutex
	done map[*semisyncFunc][]string

	futures sync.Map // {function, mode} -> *cachedFunc (nil: not cached), see futureKey
}

// cacheMode is the cache= argument: None, True or False.
type cacheMode uint8

const (
	cacheDefault cacheMode = iota // None: Options.CacheAll decides
	cacheOn                       // True: cache, and insist on purity
	cacheOff                      // False: never cache
)

// cacheModeOf converts the value of a cache= argument of op.
func cacheModeOf(op string, v starlark.Value) (cacheMode, error) {
	switch v {
	case nil, starlark.None:
		return cacheDefault, nil
	case starlark.True:
		return cacheOn, nil
	case starlark.False:
		return cacheOff, nil
	}
	return 0, fmt.Errorf("%s: cache: got %s, want True, False or None", op, v.Type())
}

// cachedFunc is what the cache knows of a function for a batch of calls
// (one begin, one job run, one future call): its encoding, and whether its
// calls are looked up and stored.
type cachedFunc struct {
	data   []byte // portable.EncodeFunc(fn, BySource).Data; nil if not encodable
	name   string
	cached bool // calls are looked up and stored
}

// cacheFunc decides whether the calls of fn that op is about to run are
// cached, given the cache= argument mode. It returns nil if they are not
// and need no key; an error if mode is cacheOn and fn is not pure.
func (r *Run) cacheFunc(op string, fn starlark.Callable, mode cacheMode) (*cachedFunc, error) {
	in := r.in
	if mode == cacheOff || mode == cacheDefault && (!in.opts.CacheAll || in.opts.Cache == nil) {
		return nil, nil
	}
	cf, reason := in.encodePure(fn)
	if reason != "" {
		if mode == cacheOn {
			return nil, fmt.Errorf("%s: cache=True on %s, which is not pure: %s; drop cache=True, or move the impure part out of %s",
				op, fn.Name(), reason, fn.Name())
		}
		return nil, nil
	}
	if in.opts.Cache == nil {
		return nil, nil // checked; nowhere to store
	}
	cf.cached = true
	return cf, nil
}

// encodePure encodes fn by source and checks that it is pure; if it is
// not, reason says why (what it reaches and where), and cf holds what
// could be encoded (data is nil if nothing).
func (in *Interpreter) encodePure(fn starlark.Callable) (cf *cachedFunc, reason string) {
	cf = &cachedFunc{name: fn.Name()}
	f, err := portable.EncodeFunc(fn, portable.BySource)
	if err != nil {
		var np *portable.NotPortableError
		if errors.As(err, &np) {
			where := ""
			if np.Pos.IsValid() {
				where = " at " + np.Pos.String()
			}
			path := ""
			if np.Path != "" {
				path = " (" + np.Path + ")"
			}
			return cf, fmt.Sprintf("it reaches a %s%s%s, which cannot be part of a cache key", np.What, path, where)
		}
		return cf, fmt.Sprintf("it cannot be encoded: %v", err)
	}
	cf.data = f.Data
	purity := in.cacheState().purity
	var impure []string
	seen := map[string]bool{}
	for _, r := range f.Reached {
		if r.Kind == "function" || purity.Pure(r.Name) || seen[r.Name] {
			continue
		}
		seen[r.Name] = true
		where := ""
		if r.Pos.IsValid() {
			where = " at " + r.Pos.String()
		} else if f, ok := fn.(*starlark.Function); ok {
			// The encoding does not know where: at least say from where.
			where = fmt.Sprintf(" from %s (defined at %s)", f.Name(), f.Position())
		}
		impure = append(impure, fmt.Sprintf("%s%s (%s)", r.Name, where, purity.Why(r.Name)))
	}
	if len(impure) == 0 {
		return cf, ""
	}
	const maxShown = 3
	if len(impure) > maxShown {
		impure = append(impure[:maxShown], fmt.Sprintf("and %d more", len(impure)-maxShown))
	}
	return cf, "it reaches " + strings.Join(impure, ", ")
}

// cacheState returns the interpreter's cache state.
func (in *Interpreter) cacheState() *interpCache {
	in.cacheOnce.Do(func() { in.cache.purity = cache.NewPurity(in.opts.PureBuiltins) })
	return &in.cache
}

// cacheKeyOf returns the key of a call of cf with args and kwargs (and,
// for a semisync call, the keys of its dependencies' calls), or an error
// if an argument cannot be encoded.
func cacheKeyOf(cf *cachedFunc, args starlark.Tuple, kwargs []starlark.Tuple, deps []string) (string, error) {
	a, err := portable.EncodeArgs(args, kwargs, portable.BySource)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte("semisync result cache v1\x00"))
	writeBytes(h, cf.data)
	writeBytes(h, a)
	for _, d := range deps {
		h.Write([]byte(d))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeBytes(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// cachedCall is the cache's plan for one call: its key, and whether it is
// looked up and stored.
type cachedCall struct {
	key    string
	cached bool
}

// callKey returns the plan of a call of cf (nil if cf is nil), or for
// cacheOn an error if an argument cannot be part of a key.
func (r *Run) callKey(op string, cf *cachedFunc, mode cacheMode, args starlark.Tuple, kwargs []starlark.Tuple, deps []string) (*cachedCall, error) {
	if cf == nil || !cf.cached {
		return nil, nil
	}
	key, err := cacheKeyOf(cf, args, kwargs, deps)
	if err != nil {
		if mode == cacheOn {
			return nil, fmt.Errorf("%s: cache=True on %s, but an argument cannot be part of a cache key: %v", op, cf.name, err)
		}
		return nil, nil
	}
	return &cachedCall{key: key, cached: true}, nil
}

// lookup returns the stored result of the call, if any, decoded and
// frozen. It counts a hit or a miss.
func (r *Run) lookup(cc *cachedCall) (starlark.Value, bool) {
	in := r.in
	b, ok := in.opts.Cache.Get(cc.key)
	if ok {
		v, err := portable.DecodeValueEnv(b, r.remoteEnv()) // functions in results may name builtins
		if err == nil && in.prepareResult(v) == nil {
			r.count(func(c *cacheCounters) { c.hits.Add(1) })
			return v, true
		}
		// Written by another version, or not a value any more: recompute
		// (and overwrite it).
	}
	r.count(func(c *cacheCounters) { c.misses.Add(1) })
	return nil, false
}

// store stores v, the result of the call.
func (r *Run) store(cc *cachedCall, v starlark.Value) {
	b, err := portable.EncodeValue(v)
	if err != nil {
		r.count(func(c *cacheCounters) { c.unstorable.Add(1) })
		return
	}
	if err := r.in.opts.Cache.Put(cc.key, b); err != nil {
		r.count(func(c *cacheCounters) { c.storeErrors.Add(1) })
		if !r.cache.reported.Swap(true) {
			r.in.report(fmt.Sprintf("semisync: cannot store a result in the cache (later failures are not reported; results are recomputed next time): %v", err))
		}
		return
	}
	r.count(func(c *cacheCounters) { c.stored.Add(1) })
}

// count applies f to the run's counts and the interpreter's.
func (r *Run) count(f func(*cacheCounters)) {
	f(&r.cache.counts)
	f(&r.in.cacheState().counts)
}

// cached runs a call the cache may answer: on a hit, run is not called;
// on a miss, run's result is stored if it succeeded. cc nil: just run.
func (r *Run) cached(cc *cachedCall, run func() (starlark.Value, error)) (starlark.Value, error) {
	if cc == nil || !cc.cached {
		return run()
	}
	if v, ok := r.lookup(cc); ok {
		return v, nil
	}
	v, err := run()
	if err == nil {
		r.store(cc, v)
	}
	return v, err
}

// planSemisync returns the cache's plan for each call of a semisync batch
// (nil entries for calls not cached), in batch order. A call's key holds
// the keys of the calls of its dependencies: those of the batch, and
// those completed by earlier begins.
func (r *Run) planSemisync(op string, batch []*semiCall) ([]*cachedCall, error) {
	in := r.in
	any := false
	for _, c := range batch {
		if c.fn.cache == cacheOn || c.fn.cache == cacheDefault && in.opts.CacheAll && in.opts.Cache != nil {
			any = true
			break
		}
	}
	if !any {
		return nil, nil
	}
	byFn := map[*semisyncFunc][]int{}
	for i, c := range batch {
		byFn[c.fn] = append(byFn[c.fn], i)
	}
	// Functions are encoded once per batch: their globals cannot change
	// while begin runs.
	funcs := map[*semisyncFunc]*cachedFunc{}
	funcOf := func(f *semisyncFunc) (*cachedFunc, error) {
		if cf, ok := funcs[f]; ok {
			return cf, nil
		}
		cf, err := r.cacheFunc(op, f.fn, f.cache)
		if err == nil && cf == nil {
			// Not cached itself; encoded only to key its dependents.
			cf, _ = in.encodePure(f.fn)
		}
		funcs[f] = cf
		return cf, err
	}
	r.cache.mu.Lock()
	earlier := make(map[*semisyncFunc][]string, len(r.cache.done))
	for f, keys := range r.cache.done {
		earlier[f] = keys
	}
	r.cache.mu.Unlock()
	plans := make([]*cachedCall, len(batch))
	ids := make([]string, len(batch)) // every call's key, cached or not, for its dependents
	state := make([]uint8, len(batch))
	var plan func(i int) error
	plan = func(i int) error {
		if state[i] == 2 {
			return nil
		}
		state[i] = 2 // dependencies never form a cycle (see planBegin)
		c := batch[i]
		var deps []string
		for _, d := range c.fn.deps {
			var keys []string
			for _, j := range byFn[d] {
				if err := plan(j); err != nil {
					return err
				}
				keys = append(keys, ids[j])
			}
			keys = append(keys, earlier[d]...)
			sort.Strings(keys)
			deps = append(deps, d.name)
			deps = append(deps, keys...)
		}
		cf, err := funcOf(c.fn)
		if err != nil {
			return fmt.Errorf("%w (for %s)", err, c)
		}
		cc, err := r.callKey(op, cf, c.fn.cache, c.args, c.kwargs, deps)
		if err != nil {
			return fmt.Errorf("%w (for %s)", err, c)
		}
		plans[i] = cc
		switch {
		case cc != nil:
			ids[i] = cc.key
		case cf != nil && cf.data != nil:
			if k, err := cacheKeyOf(cf, c.args, c.kwargs, deps); err == nil {
				ids[i] = k
				break
			}
			fallthrough
		default:
			// Not encodable: stands for itself by name, so its dependents'
			// keys stay the same from run to run.
			ids[i] = "opaque " + c.fn.name
		}
		return nil
	}
	// Only calls that want the cache, and what they depend on, are keyed
	// (encoding arguments costs a little per call).
	for i, c := range batch {
		if c.fn.cache == cacheOn || c.fn.cache == cacheDefault && in.opts.CacheAll && in.opts.Cache != nil {
			if err := plan(i); err != nil {
				return nil, err
			}
		}
	}
	r.cache.mu.Lock()
	if r.cache.done == nil {
		r.cache.done = map[*semisyncFunc][]string{}
	}
	for i, c := range batch {
		if ids[i] != "" {
			r.cache.done[c.fn] = append(r.cache.done[c.fn], ids[i])
		}
	}
	r.cache.mu.Unlock()
	return plans, nil
}

// forgetSemisync forgets the keys of completed semisync calls
// (semisync.clear).
func (r *Run) forgetSemisync() {
	r.cache.mu.Lock()
	r.cache.done = nil
	r.cache.mu.Unlock()
}

// futureKey returns the cache's plan for a call of a @future function.
// A function's encoding is kept for the run: a future's function passed
// the background rule (crossing.go), so the globals it reads can no longer
// be rebound, and their values are frozen.
func (r *Run) futureKey(fn starlark.Callable, mode cacheMode, args starlark.Tuple, kwargs []starlark.Tuple) (*cachedCall, error) {
	type memoKey struct {
		fn   starlark.Callable
		mode cacheMode
	}
	k := memoKey{fn, mode}
	_, memo := fn.(*starlark.Function) // (a host's callable may not be comparable)
	var cf *cachedFunc
	var v any
	ok := false
	if memo {
		v, ok = r.cache.futures.Load(k)
	}
	if ok {
		cf = v.(*cachedFunc)
	} else {
		var err error
		if cf, err = r.cacheFunc(fn.Name(), fn, mode); err != nil {
			return nil, err
		}
		if memo {
			r.cache.futures.Store(k, cf)
		}
	}
	if cf == nil {
		return nil, nil
	}
	return r.callKey(fn.Name(), cf, mode, args, kwargs, nil)
}

// cachedItem looks up a job item's call, fn(*args): the plan (to store
// the result after a miss), and the result if the cache has it.
func (r *jobRunner) cachedItem(args starlark.Tuple) (*cachedCall, starlark.Value, error) {
	cc, err := r.rn.callKey(r.op, r.cache, r.j.cache, args, nil, nil)
	if err != nil || cc == nil {
		return nil, nil, err
	}
	if v, ok := r.rn.lookup(cc); ok {
		return cc, v, nil
	}
	return cc, nil, nil
}
