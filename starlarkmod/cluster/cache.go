package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/semisync/semisync/starlarkmod"
)

// An ObjectCache is a [starlarkmod.Cache] in a JetStream object store
// (bucket <stream>_CACHE), shared by every caller of the deployment: a
// result one caller computed is a hit for all the others (--nats with
// --nats-cache). Objects are named by the cache key; each value is
// checked against the digest the object store keeps, and a value that
// fails the check is deleted and counts as a miss. The bucket has no size
// cap of its own: give it one with MaxBytes (the server then refuses new
// results when it is full; they are simply not stored). Its methods are
// safe for concurrent use.
type ObjectCache struct {
	os      jetstream.ObjectStore
	timeout time.Duration
}

var _ starlarkmod.Cache = (*ObjectCache)(nil)

// Cache returns the deployment's shared result cache, creating its bucket
// if needed, capped at maxBytes (0: no cap).
func (e *Executor) Cache(ctx context.Context, maxBytes int64) (*ObjectCache, error) {
	return OpenObjectCache(ctx, e.js, e.n.tasks+"_CACHE", maxBytes)
}

// OpenObjectCache opens (or creates) the object store bucket as a cache.
func OpenObjectCache(ctx context.Context, js jetstream.JetStream, bucket string, maxBytes int64) (*ObjectCache, error) {
	os, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		cfg := jetstream.ObjectStoreConfig{
			Bucket:      bucket,
			Description: "semisync results of pure calls, by cache key",
			Storage:     jetstream.FileStorage,
		}
		if maxBytes > 0 {
			cfg.MaxBytes = maxBytes
		}
		os, err = js.CreateObjectStore(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			os, err = js.ObjectStore(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", bucket, err)
	}
	return &ObjectCache{os: os, timeout: 30 * time.Second}, nil
}

// Get returns the value stored under key. A missing, unreadable or
// corrupted value is a miss (a corrupted one is deleted).
func (c *ObjectCache) Get(key string) ([]byte, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	v, err := c.os.GetBytes(ctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrDigestMismatch) {
			c.os.Delete(ctx, key) //nolint:errcheck // recomputed and stored again
		}
		return nil, false
	}
	return v, true
}

// Put stores value under key. The object store checks the value's
// SHA-256 digest on every read; the key is a hash of the call, so a
// second Put of a key stores the same value again.
func (c *ObjectCache) Put(key string, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if _, err := c.os.PutBytes(ctx, key, value); err != nil {
		return fmt.Errorf("cluster cache: storing %.12s: %w", key, err)
	}
	return nil
}
