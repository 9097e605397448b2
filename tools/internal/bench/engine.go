package bench

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	cidstore "github.com/cidstore/cidstore/core"
)

// Engine is one store under test.
//
// InsertBatch returns when the batch is durable under the engine's sync
// mode (one durable commit per batch). Get returns every value of key,
// ascending, empty when absent; the caller owns the slice. Both are safe for
// one writer concurrent with many readers (W2). Close releases everything;
// data written before a clean Close is there on the next Open of a durable
// engine.
type Engine interface {
	InsertBatch(pairs []Pair) error
	Get(key E) ([]E, error)
	Close() error
}

// Statser is implemented by engines that export internal counters; they go
// to the result line's engine_stats field.
type Statser interface {
	Stats() map[string]any
}

// Deletion names what one entry of a delete batch removes: the whole key
// when Value is zero, else that one value (W3, W4).
type Deletion = cidstore.Deletion

// Deleter is implemented by engines that can delete (W3, W4 need it).
// DeleteBatch applies dels in order as one durable commit under the
// engine's sync mode, like InsertBatch; deleting what is absent is a no-op.
type Deleter interface {
	DeleteBatch(dels []Deletion) error
}

// Maintainer is implemented by engines that can reclaim space on demand.
// Maintain runs the engine's compaction or garbage collection once,
// synchronously, and returns when the result is durable (W3, W4 time it);
// engines without one simply lack the method.
type Maintainer interface {
	Maintain() error
}

// EngineSpec describes an engine that cidbench can run.
type EngineSpec struct {
	// Name is the engine name of BENCH.md ("pebble", "cidstore-mem", ...).
	Name string
	// Module is the Go module whose version is reported, empty for none.
	Module string
	// Durable reports whether Open on the directory of a closed engine
	// finds its data again (reopen_ms is measured) under sync mode sync.
	Durable func(sync bool) bool
	// Open opens the engine on an empty or previously used directory dir.
	// sync selects one durable commit per batch (true) or the engine's
	// non-syncing mode (false).
	Open func(dir string, sync bool) (Engine, error)
	// OpenDurable, set for cidstore engines only, opens the durable layout
	// (backend and WAL in dir) whatever the sync mode, with opts as the
	// store's options; the engine fills in the paths. W5 uses it to size
	// the WAL and turn periodic checkpoints off.
	OpenDurable func(dir string, opts cidstore.Options) (Engine, error)
	// CompactFiles, if set, rewrites the files of a closed engine in dir
	// into their smallest form (cidstore-hdf5: h5store.Compact, what
	// `cidstore compact` does after core's maintenance). W4 runs it after
	// the maintenance and reports the disk usage it leaves.
	CompactFiles func(dir string) error
}

var engines []EngineSpec

// register adds an engine; called from each adapter's file-level var.
func register(s EngineSpec) bool {
	engines = append(engines, s)
	return true
}

// Engines returns the known engines, by name.
func Engines() []EngineSpec {
	s := slices.Clone(engines)
	slices.SortFunc(s, func(a, b EngineSpec) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// LookupEngine returns the engine called name.
func LookupEngine(name string) (EngineSpec, error) {
	for _, s := range append(slices.Clone(engines), ServiceEngines()...) {
		if s.Name == name {
			return s, nil
		}
	}
	var names []string
	for _, s := range append(Engines(), ServiceEngines()...) {
		names = append(names, s.Name)
	}
	return EngineSpec{}, fmt.Errorf("unknown engine %q (have %s)", name, strings.Join(names, ", "))
}

// Helpers for EngineSpec.Durable.
func always(bool) bool { return true }
func never(bool) bool  { return false }

// DiskBytes returns the space allocated to the files under dir (st_blocks,
// so sparse or preallocated files count for what they really use) and
// their apparent size. The harness measures every engine this way, after a
// clean Close, so the figures mean the same thing for all of them.
func DiskBytes(dir string) (allocated, apparent int64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		apparent += info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			allocated += st.Blocks * 512
		} else {
			allocated += info.Size()
		}
		return nil
	})
	return allocated, apparent, err
}
