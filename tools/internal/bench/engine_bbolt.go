package bench

import (
	"bytes"
	"errors"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

var _ = register(EngineSpec{
	Name:    "bbolt",
	Module:  "go.etcd.io/bbolt",
	Durable: always,
	Open:    openBBolt,
})

var bboltBucket = []byte("pairs")

// bboltEngine runs bbolt with its default options; one batch is one Update
// transaction (fdatasync at commit unless sync is off, then NoSync).
type bboltEngine struct {
	db   *bolt.DB
	keys compositeBatch
}

func openBBolt(dir string, sync bool) (Engine, error) {
	db, err := bolt.Open(filepath.Join(dir, "bench.db"), 0o600, &bolt.Options{NoSync: !sync})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bboltBucket)
		return err
	})
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return &bboltEngine{db: db}, nil
}

var empty = []byte{}

func (e *bboltEngine) InsertBatch(pairs []Pair) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bboltBucket)
		// Put copies the key.
		return e.keys.encode(pairs, func(k []byte) error { return b.Put(k, empty) })
	})
}

func (e *bboltEngine) Get(key E) ([]E, error) {
	var out []E
	var prefix [prefixLen]byte
	putPrefix(prefix[:], key)
	err := e.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bboltBucket).Cursor()
		for k, _ := c.Seek(prefix[:]); k != nil && bytes.HasPrefix(k, prefix[:]); k, _ = c.Next() {
			out = append(out, valueOf(k))
		}
		return nil
	})
	return out, err
}

// DeleteBatch deletes in one Update transaction; a whole key's composite
// keys are collected with a cursor first, then deleted (deleting under a
// moving cursor skips keys). bbolt has no compaction to offer in place: its
// file keeps its size and reuses freed pages, so it implements no Maintain.
func (e *bboltEngine) DeleteBatch(dels []Deletion) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bboltBucket)
		var k [compositeLen]byte
		for _, d := range dels {
			if !d.Value.IsZero() {
				putComposite(k[:], Pair{Key: d.Key, Value: d.Value})
				if err := b.Delete(k[:]); err != nil {
					return err
				}
				continue
			}
			var prefix [prefixLen]byte
			putPrefix(prefix[:], d.Key)
			var keys [][]byte
			c := b.Cursor()
			for ck, _ := c.Seek(prefix[:]); ck != nil && bytes.HasPrefix(ck, prefix[:]); ck, _ = c.Next() {
				keys = append(keys, bytes.Clone(ck))
			}
			for _, ck := range keys {
				if err := b.Delete(ck); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (e *bboltEngine) Close() error { return e.db.Close() }
