package bench

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

var _ = register(EngineSpec{
	Name:    "badger",
	Module:  "github.com/dgraph-io/badger/v4",
	Durable: always,
	Open:    openBadger,
})

// badgerEngine runs Badger with its default options (64 MiB memtables,
// 256 MiB block cache), SyncWrites per the sync mode, warnings only in the
// log. One batch is one read-write transaction.
type badgerEngine struct {
	db   *badger.DB
	keys compositeBatch
}

func openBadger(dir string, sync bool) (Engine, error) {
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(sync).
		WithLoggingLevel(badger.WARNING)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, err
	}
	return &badgerEngine{db: db}, nil
}

func (e *badgerEngine) InsertBatch(pairs []Pair) error {
	txn := e.db.NewTransaction(true)
	defer txn.Discard()
	// Badger keeps the key slices until the commit, and the encode buffer
	// is not reused before then.
	err := e.keys.encode(pairs, func(k []byte) error { return txn.Set(k, nil) })
	if err != nil {
		return err
	}
	return txn.Commit()
}

func (e *badgerEngine) Get(key E) ([]E, error) {
	var out []E
	var prefix [prefixLen]byte
	putPrefix(prefix[:], key)
	err := e.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix[:]})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, valueOf(it.Item().Key()))
		}
		return nil
	})
	return out, err
}

// DeleteBatch deletes in one read-write transaction; a whole key is found
// with a prefix scan inside it and each of its composite keys deleted.
func (e *badgerEngine) DeleteBatch(dels []Deletion) error {
	txn := e.db.NewTransaction(true)
	defer txn.Discard()
	for _, d := range dels {
		if d.Value.IsZero() {
			var prefix [prefixLen]byte
			putPrefix(prefix[:], d.Key)
			var keys [][]byte
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix[:]})
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			continue
		}
		// Badger keeps the key until the commit: one allocation per key.
		k := make([]byte, compositeLen)
		putComposite(k, Pair{Key: d.Key, Value: d.Value})
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return txn.Commit()
}

// Maintain flattens the LSM tree into one level (compactions drop deleted
// keys at the bottom) and runs value-log GC until nothing is left to
// rewrite. Composite keys carry empty values, so the value log holds
// little; the GC is there because a Badger user would run it.
func (e *badgerEngine) Maintain() error {
	if err := e.db.Flatten(2); err != nil {
		return fmt.Errorf("flatten: %w", err)
	}
	for {
		err := e.db.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("value log gc: %w", err)
		}
	}
}

func (e *badgerEngine) Close() error { return e.db.Close() }
