package cidstore

import "time"

// Deletion names what one entry of a batch delete removes: the whole key
// when Value is zero, else that one value.
type Deletion struct{ Key, Value E }

// Op is the kind of a durable mutation reported to Options.Notify.
type Op uint8

const (
	OpInsert      Op = 1 // a pair was inserted
	OpDeleteKey   Op = 2 // a whole key was deleted
	OpDeleteValue Op = 3 // one value was deleted from a key
)

// Mutation is one durable change, reported to Options.Notify in LSN order.
// For OpDeleteKey, Value is zero. LSN is the WAL sequence number of the
// pair's record (0 when the store has no WAL).
type Mutation struct {
	Op         Op
	Key, Value E
	LSN        uint64
}

// Stats is a point-in-time snapshot of a Store's counters and gauges.
type Stats struct {
	Keys        uint64 // live keys
	Values      uint64 // live values over all keys
	SpilledKeys uint64 // keys whose values live in an external value set
	Buckets     int    // live buckets
	GlobalDepth int    // directory has 1<<GlobalDepth slots

	Splits             uint64
	Merges             uint64
	DirectoryDoublings uint64
	DirectoryHalvings  uint64
	Promotions         uint64
	Demotions          uint64
	Compactions        uint64 // value sets compacted

	LastLSN       uint64 // last LSN appended to the WAL
	CheckpointLSN uint64 // LSN of the last committed checkpoint

	WALCapacityBytes int64 // size of the WAL ring
	WALUsedBytes     int64 // bytes of records not yet checkpointed
	WALSyncs         uint64
	WALSyncSeconds   float64 // time spent waiting for fdatasyncs (an overlapped one counts from when the writer waits)

	Checkpoints            uint64
	LastCheckpointDuration time.Duration
	LastCheckpointBytes    int64
	// What the checkpoints committed since Open wrote: bucket rows,
	// whole buckets and deltas (CheckpointBucketBytes), the part of them
	// in deltas (CheckpointDeltaBytes: rows of the keys changed since a
	// bucket's last whole write, to a backend that takes deltas), and
	// value sets' values, written whole (CheckpointSetBytes).
	CheckpointBucketBytes int64
	CheckpointDeltaBytes  int64
	CheckpointSetBytes    int64
	RecoveredRecords      uint64 // WAL records replayed by Open

	CacheBytes    int64  // bytes charged by resident buckets and value sets (estimated between checkpoints)
	CacheBudget   int64  // Options.CacheBytes; 0 = unbounded
	BucketLoads   uint64 // buckets read from the backend on demand
	ValueSetLoads uint64 // value sets read from the backend on demand
	Evictions     uint64 // buckets evicted (with their value sets)
	// CachePinnedBytes estimates what only a checkpoint can make evictable
	// (changed since the last checkpoint, or frozen by the one running).
	CachePinnedBytes int64
	WriteStalls      uint64 // mutations that waited for a checkpoint to unpin memory
	WALFullWaits     uint64 // mutations that waited for a checkpoint to free WAL space
	// WALDelays counts mutations held back (delayed writes: paced while a
	// checkpoint runs so that the WAL does not fill) and WALDelayTotal is
	// the time they were held, since Open.
	WALDelays     uint64
	WALDelayTotal time.Duration
	// MemoryDelays counts mutations held back so that pinned memory would
	// not reach its limit before the running checkpoint ends (delayed
	// writes on memory; a batch held for both is counted where it waited
	// longer) and MemoryDelayTotal is the time they were held.
	MemoryDelays     uint64
	MemoryDelayTotal time.Duration
	// CheckpointWaitMax is the longest a mutation waited for a checkpoint,
	// for memory (WriteStalls) or WAL space (WALFullWaits), since Open.
	CheckpointWaitMax time.Duration
	Maintenance       MaintenanceStats // background maintenance and GC (scheduler.go)
}

// BucketInfo describes one bucket for the debug endpoint.
type BucketInfo struct {
	ID            uint32
	LocalDepth    int
	EntryCount    int
	SortedCount   int
	SpilledKeys   int
	LastCompacted time.Time // zero if never
	ChecksumOK    bool      // every entry's checksum verified
	DangerScore   float64   // maintenance danger score in [0, 1] (scheduler.go)
	LastMerge     time.Time // last maintenance pass; zero if never
}
