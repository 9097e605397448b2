package bench

import (
	"context"
	"errors"
	"log"

	"github.com/cockroachdb/pebble/v2"
)

var _ = register(EngineSpec{
	Name:    "pebble",
	Module:  "github.com/cockroachdb/pebble/v2",
	Durable: always,
	Open:    openPebble,
})

// pebbleEngine runs Pebble with its default options (8 MiB block cache,
// 4 MiB memtable) but a quieter log: the configuration a user gets, and the one of the
// BENCH.md reference figures.
type pebbleEngine struct {
	db   *pebble.DB
	wo   *pebble.WriteOptions
	keys compositeBatch
}

func openPebble(dir string, sync bool) (Engine, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{}})
	if err != nil {
		return nil, err
	}
	e := &pebbleEngine{db: db, wo: pebble.NoSync}
	if sync {
		e.wo = pebble.Sync
	}
	return e, nil
}

func (e *pebbleEngine) InsertBatch(pairs []Pair) error {
	b := e.db.NewBatch()
	// Batch.Set copies the key, so the encode buffer can be reused.
	err := e.keys.encode(pairs, func(k []byte) error { return b.Set(k, nil, nil) })
	if err == nil {
		err = b.Commit(e.wo)
	}
	return errors.Join(err, b.Close())
}

func (e *pebbleEngine) Get(key E) ([]E, error) {
	var lo [prefixLen]byte
	putPrefix(lo[:], key)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo[:], UpperBound: prefixEnd(key)})
	if err != nil {
		return nil, err
	}
	var out []E
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, valueOf(it.Key()))
	}
	return out, it.Close()
}

// DeleteBatch removes a whole key with one range tombstone over its prefix
// and a single value with a point tombstone, all in one batch.
func (e *pebbleEngine) DeleteBatch(dels []Deletion) error {
	b := e.db.NewBatch()
	var err error
	for _, d := range dels {
		if d.Value.IsZero() {
			var lo [prefixLen]byte
			putPrefix(lo[:], d.Key)
			err = b.DeleteRange(lo[:], prefixUpper(d.Key), nil)
		} else {
			var k [compositeLen]byte
			putComposite(k[:], Pair{Key: d.Key, Value: d.Value})
			err = b.Delete(k[:], nil) // copies the key
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		err = b.Commit(e.wo)
	}
	return errors.Join(err, b.Close())
}

// Maintain is a manual compaction of the whole key space, which flushes the
// memtable first and drops the tombstones with what they cover.
func (e *pebbleEngine) Maintain() error {
	return e.db.Compact(context.Background(), []byte{0}, prefixUpper(E{High: ^uint64(0), Low: ^uint64(0)}), true)
}

func (e *pebbleEngine) Close() error { return e.db.Close() }

func (e *pebbleEngine) Stats() map[string]any {
	m := e.db.Metrics()
	return map[string]any{
		"compactions":   m.Compact.Count,
		"flushes":       m.Flush.Count,
		"read_amp":      m.ReadAmp(),
		"wal_bytes_in":  m.WAL.BytesIn,
		"wal_bytes_out": m.WAL.BytesWritten,
	}
}

// pebbleLogger drops Pebble's informational lines (WAL replay, one per
// file) so that they do not bury the harness's progress.
type pebbleLogger struct{}

func (pebbleLogger) Infof(string, ...any)              {}
func (pebbleLogger) Errorf(format string, args ...any) { log.Printf("pebble: "+format, args...) }
func (pebbleLogger) Fatalf(format string, args ...any) { log.Fatalf("pebble: "+format, args...) }
