package port

import "bytes"

// EntrySize is the size of one encoded HashEntry.
const EntrySize = 64

// ValueSize is the size of one encoded value.
const ValueSize = 16

// Meta is the global metadata recorded by every checkpoint.
type Meta struct {
	FormatVersion   uint32 // core's on-disk format version
	GlobalDepth     uint8  // directory has 1<<GlobalDepth slots
	HashSeed        uint64 // seed of the directory hash
	BucketCapacity  uint32 // entries per bucket before a split
	CheckpointLSN   uint64 // last WAL LSN whose effects this checkpoint holds
	NumBuckets      uint32 // live buckets
	NextBucketID    uint32 // bucket ids below this may be in use
	NextValueSetID  uint64 // value set ids below this may be in use
	CreatedUnixNano int64  // creation time of the store
	// Live counts as of CheckpointLSN, so that a store opens without
	// reading its buckets.
	Keys        uint64 // keys
	Values      uint64 // live values
	SpilledKeys uint64 // keys whose values are in a value set
}

// KeySize is the size of one encoded key (high u64, low u64, little-endian),
// the first KeySize bytes of an encoded HashEntry.
const KeySize = 16

// BucketRecord is the persisted form of one bucket.
//
// A bucket is persisted whole (its base) or, by a backend that implements
// BucketDeltas, as a delta of its base: the rows of the keys added,
// changed or removed since that base, cumulatively (each delta of a
// bucket replaces the previous one, the base stays). ReadBucket always
// returns the bucket whole, the committed delta applied (ApplyBucketDelta),
// with DeltaKeys naming the keys the delta held, so that the caller can go
// on extending it.
type BucketRecord struct {
	ID            uint32
	LocalDepth    uint8
	SortedCount   uint32 // Entries[:SortedCount*EntrySize] are sorted by key
	LastCompacted int64  // Unix ns of the last sort-merge, 0 if never
	Entries       []byte // EntrySize bytes per entry
	// Delta marks a record passed to Commit that is a delta of the
	// committed base of bucket ID: Entries are then delta rows sorted by
	// key (SortedCount is their count): the current entry of each key
	// added or changed since the base, and a removal row (RemovalRow) for
	// each key removed since. The backend keeps the base, replaces any
	// previous delta of ID with this one, and takes LocalDepth and
	// LastCompacted from it. A whole record of ID drops its delta. Core
	// writes a delta only for a bucket the backend holds a base of.
	Delta bool
	// DeltaKeys, in a record ReadBucket returns, are the keys of the
	// delta applied to its base (KeySize bytes each, sorted), nil when
	// none was. A backend may fold a delta into its base while no Commit
	// runs (memstore's snapshot file and h5store's compaction hold
	// buckets merged): its DeltaKeys are then nil, and a later delta
	// written against the older base still applies to the folded one, as
	// it names every key changed since the older base.
	DeltaKeys []byte
}

// EntryCount is the number of entries in r.
func (r *BucketRecord) EntryCount() int { return len(r.Entries) / EntrySize }

// ValueSetRecord is the persisted form of the external value set of one key.
type ValueSetRecord struct {
	ID          uint64
	SortedCount uint32 // Values[:SortedCount*ValueSize] are sorted ascending
	Values      []byte // ValueSize bytes per value: sorted prefix, then tail
	Tombstones  []byte // ValueSize bytes per deleted value still in Values
}

// DeletionRecord tells garbage collection what a deletion left to reclaim.
type DeletionRecord struct {
	KeyHigh, KeyLow uint64
	ValueGroup      uint64 // value set id, or 0 for inline values
	UnixNano        int64
}

// Checkpoint is one atomic unit of persistence: the full metadata and
// directory, plus every bucket and value set written since the previous
// checkpoint and the ids freed since then. Slices are owned by the backend
// once Commit is called; core does not touch them again. Core never frees
// and writes the same id in one checkpoint; a backend applies frees before
// writes, so a write would win.
type Checkpoint struct {
	Meta           Meta
	Directory      []uint32 // bucket id per slot, len 1<<Meta.GlobalDepth
	Buckets        []BucketRecord
	FreedBuckets   []uint32
	ValueSets      []ValueSetRecord
	FreedValueSets []uint64
	Deletions      []DeletionRecord
	// TrimDeletions drops the oldest TrimDeletions records of the committed
	// deletion log (garbage collection has processed them) before
	// Deletions are appended. It never exceeds the committed log's length.
	TrimDeletions uint64
	// Full is set when Buckets and ValueSets (with what Stream yields) hold
	// the complete state; the backend may then drop everything it held
	// before.
	Full bool
	// Stream, when not nil, yields more of the checkpoint's buckets and
	// value sets, one at a time, after Buckets and ValueSets: core encodes
	// each from its cache as the backend asks, instead of holding an
	// encoded copy of everything a checkpoint writes. A Commit that
	// returns nil has called Stream exactly once and returned nil from it;
	// a sink's error ends the stream and Stream returns it. A record passed
	// to a sink is valid only during that call: the backend copies what it
	// keeps. Stream takes core's bucket locks, and core holds one while it
	// calls Loader methods, so Commit must not hold a lock that the Loader
	// methods take while Stream runs.
	Stream func(bucket func(*BucketRecord) error, set func(*ValueSetRecord) error) error
}

// Collect runs cp.Stream, if set, appending copies of what it yields to
// Buckets and ValueSets, and clears it: for a backend that wants the whole
// checkpoint in memory. Call it before taking locks the Loader methods
// take (see Stream).
func (cp *Checkpoint) Collect() error {
	if cp.Stream == nil {
		return nil
	}
	stream := cp.Stream
	cp.Stream = nil
	return stream(func(b *BucketRecord) error {
		c := *b
		c.Entries = bytes.Clone(b.Entries)
		cp.Buckets = append(cp.Buckets, c)
		return nil
	}, func(v *ValueSetRecord) error {
		c := *v
		c.Values, c.Tombstones = bytes.Clone(v.Values), bytes.Clone(v.Tombstones)
		cp.ValueSets = append(cp.ValueSets, c)
		return nil
	})
}
