package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

var _ = register(EngineSpec{
	Name:        "cidstore-mem",
	Module:      "github.com/cidstore/cidstore/core",
	Durable:     func(sync bool) bool { return sync },
	Open:        openCIDStoreMem,
	OpenDurable: openCIDStoreMemDurable,
})

// cidstoreEngine runs the store in process. With sync, the backend is a
// durable memstore snapshot file and every batch is made durable by the WAL
// (SyncAlways); without, it is the volatile memstore and no WAL: the
// in-memory ceiling.
type cidstoreEngine struct {
	st  *cidstore.Store
	ctx context.Context

	// The split of the last Maintain, for engine_stats.
	compactDur, checkpointDur time.Duration
	// backendStats adds the backend's counters to engine_stats.
	backendStats func(map[string]any)
}

func openCIDStoreMem(dir string, sync bool) (Engine, error) {
	if !sync {
		st, err := cidstore.Open(memstore.New(), cidstore.Options{Sync: cidstore.SyncNone})
		if err != nil {
			return nil, err
		}
		return &cidstoreEngine{st: st, ctx: context.Background()}, nil
	}
	return openCIDStoreMemDurable(dir, cidstore.Options{Sync: cidstore.SyncAlways})
}

// CacheBytes is the cache budget (cidstore.Options.CacheBytes) of the
// durable cidstore engines; 0 means unbounded. cidbench sets it from
// --cache-bytes.
var CacheBytes int64

// IndexBytes, when positive, overrides cidstore-hdf5's index page budget
// (h5store.Options.IndexCacheBytes); cidbench sets it from --index-bytes.
var IndexBytes int64

// WALBytes, when positive, is the WAL size of the durable cidstore engines
// (cidstore.Options.WALSizeBytes) unless a workload sets its own (W5);
// cidbench sets it from --wal-bytes.
var WALBytes int64

// WholeBuckets sets cidstore.Options.WholeBuckets in the durable cidstore
// engines; cidbench sets it from --whole-buckets.
var WholeBuckets bool

// walSize applies WALBytes and WholeBuckets to opts.
func walSize(opts *cidstore.Options) {
	if WALBytes > 0 && opts.WALSizeBytes == 0 {
		opts.WALSizeBytes = WALBytes
	}
	opts.WholeBuckets = opts.WholeBuckets || WholeBuckets
}

// openCIDStoreMemDurable opens the durable layout in dir: the memstore
// snapshot file "snapshot" and the WAL "wal", with opts otherwise as given.
func openCIDStoreMemDurable(dir string, opts cidstore.Options) (Engine, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	backend, err := memstore.Open(filepath.Join(dir, "snapshot"))
	if err != nil {
		return nil, fmt.Errorf("open memstore: %w", err)
	}
	opts.WALPath = filepath.Join(dir, "wal")
	walSize(&opts)
	if opts.CacheBytes == 0 {
		opts.CacheBytes = CacheBytes
	}
	st, err := cidstore.Open(backend, opts)
	if err != nil {
		// cidstore.Open closes the backend when it fails.
		return nil, err
	}
	return &cidstoreEngine{st: st, ctx: context.Background()}, nil
}

func (e *cidstoreEngine) InsertBatch(pairs []Pair) error {
	return e.st.InsertBatch(e.ctx, pairs)
}

func (e *cidstoreEngine) Get(key E) ([]E, error) {
	return e.st.Get(e.ctx, key)
}

func (e *cidstoreEngine) DeleteBatch(dels []Deletion) error {
	return e.st.DeleteBatch(e.ctx, dels)
}

// Maintain is Compact (sort-merge, value-set compaction, demotion, bucket
// merges, directory halving) and a GC pass (orphaned space; both timed as
// maintain_compact_ms), followed by a Checkpoint that makes their result
// durable and lets the WAL drop what it covers.
func (e *cidstoreEngine) Maintain() error {
	t := time.Now()
	if err := e.st.Compact(e.ctx); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if _, err := e.st.GC(e.ctx); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	e.compactDur = time.Since(t)
	t = time.Now()
	if err := e.st.Checkpoint(e.ctx); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	e.checkpointDur = time.Since(t)
	return nil
}

// Checkpoint persists the current state (W5 starts its WAL fill after one).
func (e *cidstoreEngine) Checkpoint() error { return e.st.Checkpoint(e.ctx) }

func (e *cidstoreEngine) Close() error { return e.st.Close() }

func (e *cidstoreEngine) Stats() map[string]any {
	m := e.stats()
	if e.backendStats != nil {
		e.backendStats(m)
	}
	return m
}

func (e *cidstoreEngine) stats() map[string]any {
	s := e.st.Stats()
	return map[string]any{
		"buckets":                 s.Buckets,
		"global_depth":            s.GlobalDepth,
		"splits":                  s.Splits,
		"spilled_keys":            s.SpilledKeys,
		"cache_bytes":             s.CacheBytes,
		"cache_budget":            s.CacheBudget,
		"bucket_loads":            s.BucketLoads,
		"valueset_loads":          s.ValueSetLoads,
		"evictions":               s.Evictions,
		"cache_pinned_bytes":      s.CachePinnedBytes,
		"write_stalls":            s.WriteStalls,
		"wal_full_waits":          s.WALFullWaits,
		"wal_delays":              s.WALDelays,
		"wal_delay_ms":            s.WALDelayTotal.Milliseconds(),
		"mem_delays":              s.MemoryDelays,
		"mem_delay_ms":            s.MemoryDelayTotal.Milliseconds(),
		"ckpt_wait_max_ms":        float64(s.CheckpointWaitMax.Microseconds()) / 1000,
		"wal_syncs":               s.WALSyncs,
		"wal_sync_seconds":        s.WALSyncSeconds,
		"checkpoints":             s.Checkpoints,
		"last_checkpoint_ms":      s.LastCheckpointDuration.Milliseconds(),
		"last_checkpoint_bytes":   s.LastCheckpointBytes,
		"ckpt_bucket_bytes":       s.CheckpointBucketBytes,
		"ckpt_bucket_delta_bytes": s.CheckpointDeltaBytes,
		"ckpt_set_bytes":          s.CheckpointSetBytes,
		"keys":                    s.Keys,
		"values":                  s.Values,
		"merges":                  s.Merges,
		"directory_halvings":      s.DirectoryHalvings,
		"demotions":               s.Demotions,
		"compactions":             s.Compactions,
		"recovered_records":       s.RecoveredRecords,
		"wal_used_bytes":          s.WALUsedBytes,
		"wal_capacity_bytes":      s.WALCapacityBytes,
		"gc_scans":                s.Maintenance.GCScans,
		"gc_last_scan_ms":         s.Maintenance.GCLastScan.Milliseconds(),
		"gc_max_lock_hold_ms":     s.Maintenance.GCMaxLockHold.Milliseconds(),
		"maintain_compact_ms":     ms(e.compactDur),
		"maintain_checkpoint_ms":  ms(e.checkpointDur),
	}
}
