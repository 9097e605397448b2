package port

// Loader reads the last committed checkpoint.
//
// Returned slices belong to the caller. Core calls the methods from many
// goroutines at once (lookups read evicted buckets back), also while a
// Commit runs: a read must then return the committed version of an object
// the commit does not write. A read of a bucket the commit writes (only
// garbage collection's scan makes one, and discards the result) may return
// either version or an error, but must not crash or block the commit.
type Loader interface {
	// LoadMeta returns the committed metadata and directory. ok is false
	// when nothing was ever committed (a new store); err is then nil.
	LoadMeta() (meta Meta, directory []uint32, ok bool, err error)
	// ReadBucket returns a committed bucket, or ErrNotFound.
	ReadBucket(id uint32) (BucketRecord, error)
	// ReadValueSet returns a committed value set, or ErrNotFound.
	ReadValueSet(id uint64) (ValueSetRecord, error)
}

// Committer persists checkpoints.
type Committer interface {
	// Commit applies cp atomically and durably (for a durable backend):
	// when it returns nil, a crash leaves cp's state loadable; when it
	// returns an error, the previously committed state is still intact.
	// Commit on a read-only backend returns ErrReadOnly.
	Commit(cp *Checkpoint) error
}

// Backend is what a storage adapter implements.
type Backend interface {
	Loader
	Committer
	// Close releases the backend. Calls after Close return errors.
	Close() error
}

// Lister is implemented by backends that can enumerate what they hold;
// garbage collection uses it to find orphans. Optional.
type Lister interface {
	// BucketIDs returns the ids of all committed buckets (at most one per
	// directory slot: a list of them is small).
	BucketIDs() ([]uint32, error)
	// ValueSetIDs returns, in ascending order, the committed value set ids
	// greater than after, at most limit (> 0) of them; fewer than limit
	// means there are no more. There may be millions of value sets, so
	// callers walk them a page at a time (ListValueSetIDs collects them
	// all, for tests and tools) and a page costs the backend memory in
	// proportion to limit, not to the number of sets.
	ValueSetIDs(after uint64, limit int) ([]uint64, error)
}

// EntriesRecycler is implemented by backends that can reuse the memory of
// the Entries a ReadBucket returned: a caller that has decoded the record
// and keeps no reference to its Entries may hand them back, once, and the
// backend may then read another bucket into them. Optional; it spares a
// read of a bucket from the file an allocation of the bucket's size.
type EntriesRecycler interface {
	RecycleEntries(entries []byte)
}

// ListValueSetIDs returns every committed value set id of l, in ascending
// order, walking ValueSetIDs a page at a time. Its result grows with the
// store: for tests and tools, not for the engine.
func ListValueSetIDs(l Lister) ([]uint64, error) {
	const page = 4096
	var all []uint64
	after := uint64(0)
	for {
		ids, err := l.ValueSetIDs(after, page)
		if err != nil {
			return nil, err
		}
		all = append(all, ids...)
		if len(ids) < page {
			return all, nil
		}
		after = ids[len(ids)-1]
	}
}

// DeletionLogReader is implemented by backends whose deletion log
// (DESIGN.md §7) can be read back for garbage collection. Optional.
type DeletionLogReader interface {
	// DeletionLog returns the committed deletion records, oldest first,
	// after the ones a checkpoint trimmed (Checkpoint.TrimDeletions).
	DeletionLog() ([]DeletionRecord, error)
}

// Volatile is implemented by backends that keep nothing across a restart
// (memstore.New). Core then skips the checkpoint it would write on Close:
// nobody can ever load it. Optional.
type Volatile interface {
	// Volatile reports whether committed checkpoints are lost when the
	// backend is closed.
	Volatile() bool
}
