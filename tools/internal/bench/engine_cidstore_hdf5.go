package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	cidstore "github.com/cidstore/cidstore/core"
	h5store "github.com/cidstore/cidstore/storage-hdf5"
)

var _ = register(EngineSpec{
	Name:        "cidstore-hdf5",
	Module:      "github.com/cidstore/cidstore/storage-hdf5",
	Durable:     func(bool) bool { return true },
	Open:        openCIDStoreHDF5,
	OpenDurable: openCIDStoreHDF5Durable,
	CompactFiles: func(dir string) error {
		return h5store.Compact(filepath.Join(dir, "store.h5"), h5store.Options{}, nil)
	},
})

// openCIDStoreHDF5 runs the store on the HDF5 backend, as the service does:
// the file "store.h5" and the WAL "wal" in dir. It is always durable; with
// sync false the WAL is not synced per batch (SyncNone).
func openCIDStoreHDF5(dir string, sync bool) (Engine, error) {
	policy := cidstore.SyncAlways
	if !sync {
		policy = cidstore.SyncNone
	}
	return openCIDStoreHDF5Durable(dir, cidstore.Options{Sync: policy})
}

func openCIDStoreHDF5Durable(dir string, opts cidstore.Options) (Engine, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	total := opts.CacheBytes
	if total == 0 {
		total = CacheBytes
	}
	// As the service does (h5store.SplitBudget).
	ho, coreBytes := h5store.SplitBudget(total)
	if IndexBytes > 0 {
		ho.IndexCacheBytes = IndexBytes
	}
	backend, err := h5store.Open(filepath.Join(dir, "store.h5"), ho)
	if err != nil {
		return nil, fmt.Errorf("open h5store: %w", err)
	}
	opts.WALPath = filepath.Join(dir, "wal")
	walSize(&opts)
	opts.CacheBytes = coreBytes
	st, err := cidstore.Open(backend, opts)
	if err != nil {
		return nil, err // cidstore.Open closes the backend when it fails
	}
	return &cidstoreEngine{st: st, ctx: context.Background(), backendStats: func(m map[string]any) {
		hs := backend.Stats()
		m["index_bytes"] = hs.IndexBytes
		m["index_loads"] = hs.IndexLoads
		m["index_evictions"] = hs.IndexEvictions
		m["index_lookups"] = hs.IndexLookups
		m["index_finds"] = hs.IndexFinds
		m["index_lookup_reads"] = hs.IndexLookupReads
		m["index_extent_bytes"] = hs.IndexExtentBytes
		m["index_extents"] = hs.IndexExtents
	}}, nil
}
