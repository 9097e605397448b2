package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	cidstore "github.com/cidstore/cidstore/core"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

var _ = register(EngineSpec{
	Name:    "cidstore-mem",
	Module:  "github.com/cidstore/cidstore/core",
	Durable: func(sync bool) bool { return sync },
	Open:    openCIDStoreMem,
})

// cidstoreEngine runs the store in process. With sync, the backend is a
// durable memstore snapshot file and every batch is made durable by the WAL
// (SyncAlways); without, it is the volatile memstore and no WAL: the
// in-memory ceiling.
type cidstoreEngine struct {
	st  *cidstore.Store
	ctx context.Context
}

func openCIDStoreMem(dir string, sync bool) (Engine, error) {
	if !sync {
		st, err := cidstore.Open(memstore.New(), cidstore.Options{Sync: cidstore.SyncNone})
		if err != nil {
			return nil, err
		}
		return &cidstoreEngine{st: st, ctx: context.Background()}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	backend, err := memstore.Open(filepath.Join(dir, "snapshot"))
	if err != nil {
		return nil, fmt.Errorf("open memstore: %w", err)
	}
	st, err := cidstore.Open(backend, cidstore.Options{
		WALPath: filepath.Join(dir, "wal"),
		Sync:    cidstore.SyncAlways,
	})
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

func (e *cidstoreEngine) Close() error { return e.st.Close() }

func (e *cidstoreEngine) Stats() map[string]any {
	s := e.st.Stats()
	return map[string]any{
		"buckets":               s.Buckets,
		"global_depth":          s.GlobalDepth,
		"splits":                s.Splits,
		"spilled_keys":          s.SpilledKeys,
		"wal_syncs":             s.WALSyncs,
		"wal_sync_seconds":      s.WALSyncSeconds,
		"checkpoints":           s.Checkpoints,
		"last_checkpoint_ms":    s.LastCheckpointDuration.Milliseconds(),
		"last_checkpoint_bytes": s.LastCheckpointBytes,
	}
}
