package tests

import (
	"path/filepath"
	"testing"

	"github.com/cidstore/cidstore/core/port"
	h5store "github.com/cidstore/cidstore/storage-hdf5"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

// adapter opens a storage backend for the conformance suite. persistent
// adapters can be reopened on the same dir and must return what was
// committed.
type adapter struct {
	name       string
	persistent bool
	open       func(t *testing.T, dir string) port.Backend
	// cacheBytes is the store's Options.CacheBytes: a tiny budget makes
	// every checkpoint evict and every lookup read buckets back.
	cacheBytes int64
}

var adapters = []adapter{
	{name: "memstore", open: func(t *testing.T, dir string) port.Backend { return memstore.New() }},
	{name: "memstore-durable", persistent: true, open: func(t *testing.T, dir string) port.Backend {
		b, err := memstore.Open(filepath.Join(dir, "store.snapshot"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}},
	{name: "h5store", persistent: true, open: openH5},
	{name: "memstore-durable-tinycache", persistent: true, cacheBytes: 16 << 10, open: func(t *testing.T, dir string) port.Backend {
		b, err := memstore.Open(filepath.Join(dir, "store.snapshot"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}},
	// Both caches tiny: core evicts buckets and value sets, and h5store
	// keeps almost none of its index pages, so lookups read them back.
	{name: "h5store-tinycache", persistent: true, cacheBytes: 16 << 10, open: func(t *testing.T, dir string) port.Backend {
		return openH5Opts(t, dir, h5store.Options{IndexCacheBytes: tinyIndexBytes})
	}},
}

// tinyIndexBytes holds a few small index pages.
const tinyIndexBytes = 4 << 10

func openH5(t *testing.T, dir string) port.Backend { return openH5Opts(t, dir, h5store.Options{}) }

func openH5Opts(t *testing.T, dir string, opts h5store.Options) port.Backend {
	b, err := h5store.Open(filepath.Join(dir, "store.h5"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
