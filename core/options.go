package cidstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/cidstore/cidstore/core/port"
)

// SyncPolicy says when WAL records are made durable.
type SyncPolicy int

const (
	// SyncAlways makes every mutation durable (one fdatasync per batch,
	// shared by concurrent callers) before it returns. The default.
	SyncAlways SyncPolicy = iota
	// SyncInterval syncs the WAL every Options.SyncInterval; a crash may
	// lose the mutations of the last interval.
	SyncInterval
	// SyncNone never syncs; for benchmarks and tests only.
	SyncNone
)

// String returns "always", "interval" or "none".
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// ParseSyncPolicy parses "always", "interval" or "none".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch s {
	case "always", "":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("%w: sync policy %q (want always, interval or none)", ErrInvalid, s)
}

// Defaults of Options, applied by EnsureDefaults.
const (
	DefaultWALSizeBytes        = 128 << 20
	DefaultSyncInterval        = 100 * time.Millisecond
	DefaultCheckpointInterval  = 5 * time.Second
	DefaultCheckpointFillRatio = 0.75
	DefaultBucketCapacity      = 256
	DefaultPromotionThreshold  = 2
	DefaultMaxGlobalDepth      = 28
)

// Options configure a Store. The zero value is valid: no WAL, SyncAlways,
// defaults below.
type Options struct {
	// WALPath is the write-ahead log file. Empty means no WAL: mutations
	// are then durable only at checkpoints (periodic, and on Close).
	WALPath string
	// Sync is the WAL sync policy. Default SyncAlways.
	Sync SyncPolicy
	// SyncInterval is the period of SyncInterval. Default 100ms.
	SyncInterval time.Duration
	// WALSizeBytes is the WAL file size, fixed at creation. Default 128 MiB
	// (about two million records): with 64 MiB, uniform ingest filled it
	// faster than a checkpoint could free it, and writers waited (W1 at 1M
	// keys, docs/BENCHMARKS.md: 787k pairs/s, 1.06M with 128 MiB).
	WALSizeBytes int64
	// CheckpointInterval is the time between periodic checkpoints when a
	// WAL is configured. Default 5s; negative disables periodic checkpoints.
	CheckpointInterval time.Duration
	// CheckpointFillRatio forces a checkpoint when the WAL is this full.
	// Default 0.75.
	CheckpointFillRatio float64
	// BucketCapacity is the number of entries in a bucket before it
	// splits; used when a store is created. Default 256.
	BucketCapacity int
	// PromotionThreshold is the number of values kept inline before a key
	// spills to a value set: 1 or 2. Default 2.
	PromotionThreshold int
	// HashSeed seeds the directory hash of a new store; 0 picks a random
	// seed. An existing store keeps the seed it was created with.
	HashSeed uint64
	// MaxGlobalDepth caps directory doubling; a bucket that would need a
	// deeper directory grows past its capacity instead. Default 28.
	MaxGlobalDepth int
	// CacheBytes bounds the memory held by buckets and value sets read
	// from the backend: clean ones are evicted past it (least recently
	// used first, by CLOCK) and read again on demand. What changed since
	// the last checkpoint stays resident until a checkpoint captures it:
	// with a WAL, once the cache nears its budget the store asks for a
	// checkpoint when that passes a quarter of the budget, and once the
	// cache is over budget a mutation that finds it past half the budget
	// (at least 1 MiB) waits for one (Stats.WriteStalls), so a writer
	// faster than the checkpoints cannot grow memory past the budget.
	// 0 means unbounded. A read-only store ignores it and loads everything
	// at Open.
	CacheBytes int64
	// Logger receives recovery and checkpoint events. Default: discard.
	Logger port.Logger
	// Notify, when set, is called after mutations are durable, in LSN
	// order, from the goroutine that made them. It must not block for long
	// and must not call back into the Store.
	Notify func([]Mutation)
	// ReadOnly opens the store on a read-only backend (for example an
	// h5store SWMR reader): no WAL, every mutation, Compact and Checkpoint
	// return ErrReadOnly, and Close writes nothing.
	ReadOnly bool
	// WholeBuckets makes checkpoints write every changed bucket whole,
	// even to a backend that takes bucket deltas (port.BucketDeltas),
	// where by default a bucket with few changes since its last whole
	// write is written as a delta of it. For comparisons and tests.
	WholeBuckets bool
	// Failpoint, when set, is called with a step name at each crash point
	// of the WAL (wal.*), of checkpoints (checkpoint.*), of directory
	// doubling and of promotion (store.*), and inside maintenance tasks
	// (maint.merge, maint.compact, maint.demote, maint.buddy, maint.gc,
	// and gc.walk before a full scan reads each evicted bucket); crash tests make it kill the process there. Never set it in production.
	Failpoint func(name string)

	// MaintenanceInterval is the period of the background maintenance
	// scheduler (scheduler.go). Default 100ms; negative disables it.
	MaintenanceInterval time.Duration
	// MaintenanceIngestLimit is the ingest rate, in mutations per second,
	// above which maintenance is throttled to one bucket per tick (buckets
	// above danger 0.9 are still merged). Default 100 000.
	MaintenanceIngestLimit int
	// MaintenanceAgeSaturation is the time since a bucket's last
	// maintenance pass at which the age term of its danger score reaches
	// its maximum. Default 30s.
	MaintenanceAgeSaturation time.Duration
	// GCInterval is the period of background garbage collection by the
	// scheduler (gc.go); every tenth pass includes a full scan. Default
	// 1m; negative disables it.
	GCInterval time.Duration

	// hash overrides the directory hash; tests use it to force collisions.
	hash func(E) uint64
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.WALSizeBytes == 0 {
		o.WALSizeBytes = DefaultWALSizeBytes
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.CheckpointFillRatio == 0 {
		o.CheckpointFillRatio = DefaultCheckpointFillRatio
	}
	if o.BucketCapacity == 0 {
		o.BucketCapacity = DefaultBucketCapacity
	}
	if o.PromotionThreshold == 0 {
		o.PromotionThreshold = DefaultPromotionThreshold
	}
	if o.MaxGlobalDepth == 0 {
		o.MaxGlobalDepth = DefaultMaxGlobalDepth
	}
	if o.Logger == nil {
		o.Logger = port.NopLogger{}
	}
	if o.MaintenanceInterval == 0 {
		o.MaintenanceInterval = DefaultMaintenanceInterval
	}
	if o.MaintenanceIngestLimit == 0 {
		o.MaintenanceIngestLimit = DefaultMaintenanceIngestLimit
	}
	if o.MaintenanceAgeSaturation <= 0 {
		o.MaintenanceAgeSaturation = DefaultMaintenanceAgeSaturation
	}
	if o.GCInterval == 0 {
		o.GCInterval = DefaultGCInterval
	}
}

// Validate reports every problem with o at once; each wraps ErrInvalid.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if o.Sync < SyncAlways || o.Sync > SyncNone {
		bad("sync policy %d", int(o.Sync))
	}
	if o.SyncInterval < 0 {
		bad("sync interval %v < 0", o.SyncInterval)
	}
	if o.WALSizeBytes < minWALSizeBytes {
		bad("WAL size %d < %d", o.WALSizeBytes, minWALSizeBytes)
	}
	if o.CheckpointFillRatio <= 0 || o.CheckpointFillRatio > 1 {
		bad("checkpoint fill ratio %v not in (0, 1]", o.CheckpointFillRatio)
	}
	if o.BucketCapacity < 4 || o.BucketCapacity > 1<<20 {
		bad("bucket capacity %d not in [4, 1048576]", o.BucketCapacity)
	}
	if o.PromotionThreshold < 1 || o.PromotionThreshold > 2 {
		bad("promotion threshold %d not in [1, 2]", o.PromotionThreshold)
	}
	if o.ReadOnly && o.WALPath != "" {
		bad("a read-only store has no WAL")
	}
	if o.CacheBytes < 0 {
		bad("cache budget %d < 0", o.CacheBytes)
	}
	if o.MaintenanceIngestLimit < 0 {
		bad("maintenance ingest limit %d < 0", o.MaintenanceIngestLimit)
	}
	if o.MaxGlobalDepth < 1 || o.MaxGlobalDepth > 32 {
		bad("max global depth %d not in [1, 32]", o.MaxGlobalDepth)
	}
	return errors.Join(errs...)
}

// GoMemoryLimit is the Go soft memory limit (runtime/debug.SetMemoryLimit)
// for a process whose store has the cache budget cacheBytes, so that its
// RSS stays within the budget plus 1 GiB: the budget, plus 1 GiB for what
// the budget does not cover (backend indexes, copies the writer makes
// while a checkpoint commits, buffers, the collector's headroom), minus
// 128 MiB for memory the Go runtime does not manage and its limit does not
// count (HDF5's C caches, thread stacks, the binary). Measured at 10M keys
// with a 2 GiB budget, a limit of budget + 1 GiB left the RSS ~30 MiB above
// budget + 1 GiB.
func GoMemoryLimit(cacheBytes int64) int64 { return cacheBytes + 1<<30 - 128<<20 }
