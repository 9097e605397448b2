package wal

import (
	"errors"
	"fmt"
	"time"
)

// SyncMode says whether the Log syncs by itself. The Log never decides when
// a caller's records must be durable: with SyncAlways the caller calls
// SyncTo after Append before acknowledging.
type SyncMode int

const (
	// SyncAlways: no background syncing; the caller calls SyncTo (group
	// commit shares one fdatasync among concurrent callers). The default.
	SyncAlways SyncMode = iota
	// SyncInterval: a background goroutine syncs every SyncInterval when
	// records were appended since the last sync. SyncTo still works.
	SyncInterval
	// SyncNone: no background syncing (benchmarks and tests). SyncTo still
	// syncs when called; Truncate and Close always sync.
	SyncNone
)

// String returns "always", "interval" or "none".
func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncMode(%d)", int(m))
}

// Size limits and defaults.
const (
	// DefaultSizeBytes is the file size of a new log: 64 MiB, about one
	// million records.
	DefaultSizeBytes int64 = 64 << 20
	// MinSizeBytes is the smallest log: 64 KiB, 960 records.
	MinSizeBytes int64 = 64 << 10
	// MaxSizeBytes is the largest log: 1 TiB.
	MaxSizeBytes int64 = 1 << 40
	// DefaultSyncInterval is the period of SyncInterval.
	DefaultSyncInterval = 100 * time.Millisecond
)

// Options configure Open. The zero value is valid.
type Options struct {
	// SizeBytes is the file size of a new log, header included; a multiple
	// of 4096 in [MinSizeBytes, MaxSizeBytes]. Default DefaultSizeBytes.
	// An existing log keeps the size it was created with.
	SizeBytes int64
	// Sync is the sync mode. Default SyncAlways.
	Sync SyncMode
	// SyncInterval is the period of SyncInterval. Default 100ms.
	SyncInterval time.Duration
	// FS is the file system. Default OSFS(). Tests wrap it to inject
	// short writes, fsync errors and ENOSPC.
	FS FS
	// Failpoint, when set, is called with a step name at each crash point:
	//	wal.append.before-copy   wal.append.after-copy
	//	wal.sync.before          wal.sync.after
	//	wal.truncate.before-header  wal.truncate.after-header
	// Crash tests make it kill the process at a chosen step. It is called
	// with the Log's internal locks held and must not call the Log.
	Failpoint func(name string)
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.SizeBytes == 0 {
		o.SizeBytes = DefaultSizeBytes
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.FS == nil {
		o.FS = OSFS()
	}
}

// Validate reports every problem with o at once; each wraps ErrInvalid.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if o.SizeBytes < MinSizeBytes || o.SizeBytes > MaxSizeBytes {
		bad("size %d bytes not in [%d, %d]", o.SizeBytes, MinSizeBytes, MaxSizeBytes)
	}
	if o.SizeBytes%HeaderSizeBytes != 0 {
		bad("size %d bytes not a multiple of %d", o.SizeBytes, HeaderSizeBytes)
	}
	if o.Sync < SyncAlways || o.Sync > SyncNone {
		bad("sync mode %d", int(o.Sync))
	}
	if o.SyncInterval <= 0 {
		bad("sync interval %v <= 0", o.SyncInterval)
	}
	if o.FS == nil {
		bad("nil FS")
	}
	return errors.Join(errs...)
}
