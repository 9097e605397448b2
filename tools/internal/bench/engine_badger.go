package bench

import (
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

func (e *badgerEngine) Close() error { return e.db.Close() }
