package h5store

import (
	"errors"
	"fmt"
	"math"

	"github.com/cidstore/cidstore/core/port"
)

// Options configures a writer Store. The zero value is valid.
type Options struct {
	// CacheBytes bounds the memory the backend uses besides its indexes:
	// the HDF5 metadata cache and the commit write buffer (a quarter of it,
	// at most 8 MiB). The backend never caches rows; repeated reads are
	// served by the kernel page cache. Default 16 MiB.
	CacheBytes int64
	// IndexCacheBytes bounds the memory of the indexes that locate each
	// bucket, bucket delta and value set in the file (about 32-48 bytes
	// per object):
	// pages of 1024 ids beyond it are read back from the file's index
	// extents when needed. A commit in progress also holds its changed
	// entries. Default 64 MiB.
	IndexCacheBytes int64
	// SegmentBytes is the size of the first dataset of bucket rows; the
	// other pools start at a fraction of it (values 1/2, directory and
	// index tables 1/16, deletion log 1/64). A full pool grows by a new
	// dataset as large as all of its datasets so far. The space is
	// allocated in the file at once but stays sparse until written.
	// Default 64 MiB.
	SegmentBytes int64
	// ReuseDelayCommits is how many further commits space freed by a
	// commit waits before it is reused, so that SWMR readers still reading
	// an older generation see intact rows. Default 2; a negative value
	// means reuse from the next commit.
	ReuseDelayCommits int
	// NoSync skips fsync. Tests and benchmarks only: a machine crash can
	// then lose or tear any commit.
	NoSync bool
	// Logger receives recovery and growth events. Default: no-op.
	Logger port.Logger

	// failpoint, when set, is called at named steps of Commit, growth and
	// Compact; crash tests kill the process there.
	failpoint func(name string)
}

func (o *Options) fire(name string) {
	if o.failpoint != nil {
		o.failpoint(name)
	}
}

const (
	defaultCacheBytes   = 16 << 20
	defaultIndexBytes   = 64 << 20
	defaultSegmentBytes = 64 << 20
	minSegmentBytes     = 64 << 10
	maxWriteBuffer      = 8 << 20
)

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.CacheBytes == 0 {
		o.CacheBytes = defaultCacheBytes
	}
	if o.IndexCacheBytes == 0 {
		o.IndexCacheBytes = defaultIndexBytes
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = defaultSegmentBytes
	}
	if o.ReuseDelayCommits == 0 {
		o.ReuseDelayCommits = 2
	} else if o.ReuseDelayCommits < 0 {
		o.ReuseDelayCommits = 0
	}
	if o.Logger == nil {
		o.Logger = port.NopLogger{}
	}
}

// Validate reports every invalid field.
func (o *Options) Validate() error {
	var errs []error
	if o.CacheBytes < 0 {
		errs = append(errs, fmt.Errorf("h5store: CacheBytes %d is negative", o.CacheBytes))
	}
	if o.IndexCacheBytes < 0 {
		errs = append(errs, fmt.Errorf("h5store: IndexCacheBytes %d is negative", o.IndexCacheBytes))
	}
	if o.SegmentBytes != 0 && o.SegmentBytes < minSegmentBytes {
		errs = append(errs, fmt.Errorf("h5store: SegmentBytes %d is below %d", o.SegmentBytes, minSegmentBytes))
	}
	return errors.Join(errs...)
}

func (o *Options) writeBuffer() int {
	return int(min(max(o.CacheBytes/4, 64<<10), maxWriteBuffer))
}

// SplitBudget sizes h5store for a store whose cache budget (buckets, value
// sets and the index that finds them) is total: a sixteenth of it, at most
// 64 MiB, goes to h5store's CacheBytes (HDF5's caches, the commit buffer),
// an eighth, at most 256 MiB, to IndexCacheBytes (the index pages), and
// core's Options.CacheBytes is the rest. (Until session 7 the index pages
// came on top of the budget; at 20M keys under 2 GiB that put the live
// heap ~800 MiB past the budget and the RSS past budget + 1 GiB.) The
// service and the benchmarks use it. A total of 0 (core: no bound) leaves
// the index unbounded too.
func SplitBudget(total int64) (opts Options, coreBytes int64) {
	if total <= 0 {
		return Options{IndexCacheBytes: math.MaxInt64}, total
	}
	opts.CacheBytes = min(total/16, 64<<20)
	opts.IndexCacheBytes = max(min(total/8, 256<<20), 1)
	return opts, total - opts.CacheBytes - opts.IndexCacheBytes
}

// ReaderOptions configures a Reader. The zero value is valid.
type ReaderOptions struct {
	// CacheBytes bounds the HDF5 metadata cache. Default 16 MiB.
	CacheBytes int64
	// Logger receives refresh events. Default: no-op.
	Logger port.Logger
}

// EnsureDefaults fills unset fields with their defaults.
func (o *ReaderOptions) EnsureDefaults() {
	if o.CacheBytes == 0 {
		o.CacheBytes = defaultCacheBytes
	}
	if o.Logger == nil {
		o.Logger = port.NopLogger{}
	}
}

// Validate reports every invalid field.
func (o *ReaderOptions) Validate() error {
	if o.CacheBytes < 0 {
		return fmt.Errorf("h5store: CacheBytes %d is negative", o.CacheBytes)
	}
	return nil
}
