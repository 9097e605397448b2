package h5store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/cidstore/cidstore/core/port"
	"github.com/cidstore/cidstore/core/port/porttest"
	h5store "github.com/cidstore/cidstore/storage-hdf5"
)

// checked runs the fsck-style Check before every Close.
type checked struct {
	*h5store.Store
	t *testing.T
}

func (c checked) Close() error {
	if err := c.Check(); err != nil && !errors.Is(err, h5store.ErrClosed) {
		c.t.Errorf("check before close: %v", err)
	}
	return c.Store.Close()
}

// openStore opens a store with small segments, so that the contract cases
// also exercise pool growth.
func openStore(t *testing.T, path string) port.Backend {
	t.Helper()
	s, err := h5store.Open(path, h5store.Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return checked{s, t}
}

func TestContract(t *testing.T) {
	porttest.Run(t, openStore, openStore)
}

func benchStore(b *testing.B, opts h5store.Options) *h5store.Store {
	b.Helper()
	s, err := h5store.Open(filepath.Join(b.TempDir(), "bench.h5"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	return s
}

// buckets1000 is a checkpoint rewriting 1000 buckets of 256 entries.
func buckets1000(n, entries int) *port.Checkpoint {
	r := rand.New(rand.NewPCG(1, 2))
	cp := &port.Checkpoint{Meta: port.Meta{FormatVersion: 1, GlobalDepth: 10, BucketCapacity: uint32(entries)}}
	for id := range uint32(n) {
		e := make([]byte, entries*port.EntrySize)
		for i := 0; i < len(e); i += 8 {
			binary.LittleEndian.PutUint64(e[i:], r.Uint64())
		}
		cp.Buckets = append(cp.Buckets, port.BucketRecord{ID: id, LocalDepth: 10, SortedCount: uint32(entries), Entries: e})
	}
	cp.Directory = make([]uint32, 1<<10)
	for i := range cp.Directory {
		cp.Directory[i] = uint32(i % n)
	}
	return cp
}

// BenchmarkCommit commits 1000 buckets × 256 entries (16 MiB of rows) per
// op, copy-on-write over the previous version.
func BenchmarkCommit(b *testing.B) {
	for _, c := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(c.name, func(b *testing.B) {
			s := benchStore(b, h5store.Options{NoSync: c.noSync})
			cp := buckets1000(1000, 256)
			b.SetBytes(int64(1000 * 256 * port.EntrySize))
			b.ResetTimer()
			for i := range b.N {
				cp.Meta.CheckpointLSN = uint64(i + 1)
				if err := s.Commit(cp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadBucket reads random 256-entry buckets (16 KiB, one pread
// each) from a warm page cache.
func BenchmarkReadBucket(b *testing.B) {
	const n = 2000
	s := benchStore(b, h5store.Options{NoSync: true})
	if err := s.Commit(buckets1000(n, 256)); err != nil {
		b.Fatal(err)
	}
	ids := make([]uint32, 4096)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range ids {
		ids[i] = uint32(r.IntN(n))
	}
	b.SetBytes(256 * port.EntrySize)
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(256 * port.EntrySize)
		for i := range b.N {
			if _, err := s.ReadBucket(ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(256 * port.EntrySize)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := s.ReadBucket(ids[i%len(ids)]); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

// BenchmarkCommitSmall commits 10 buckets × 64 entries: the fixed cost of a
// checkpoint (two fsyncs, commit record, /config mirror).
func BenchmarkCommitSmall(b *testing.B) {
	for _, c := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(c.name, func(b *testing.B) {
			s := benchStore(b, h5store.Options{NoSync: c.noSync})
			cp := buckets1000(10, 64)
			for i := range b.N {
				cp.Meta.CheckpointLSN = uint64(i + 1)
				if err := s.Commit(cp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSplitBudget checks the shares of a service budget: h5store's caches,
// its index pages and core's add up to it, the first two capped.
func TestSplitBudget(t *testing.T) {
	for _, c := range []struct {
		total, cache, index int64
	}{
		{2 << 30, 64 << 20, 256 << 20},
		{512 << 20, 32 << 20, 64 << 20},
		{64 << 30, 64 << 20, 256 << 20},
		{16, 1, 2},
	} {
		o, core := h5store.SplitBudget(c.total)
		if o.CacheBytes != c.cache || o.IndexCacheBytes != c.index || o.CacheBytes+o.IndexCacheBytes+core != c.total {
			t.Errorf("SplitBudget(%d) = cache %d, index %d, core %d; want %d, %d and the rest",
				c.total, o.CacheBytes, o.IndexCacheBytes, core, c.cache, c.index)
		}
	}
	if o, core := h5store.SplitBudget(0); core != 0 || o.IndexCacheBytes < 1<<60 {
		t.Errorf("SplitBudget(0) = index %d, core %d; want both unbounded", o.IndexCacheBytes, core)
	}
}

// A bucket read may land in Entries handed back by RecycleEntries; what it
// returns is still exactly the committed rows.
func TestRecycleEntries(t *testing.T) {
	s, err := h5store.Open(filepath.Join(t.TempDir(), "s.h5"), h5store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cp := buckets1000(64, 256)
	if err := s.Commit(cp); err != nil {
		t.Fatal(err)
	}
	handed := map[*byte]bool{}
	reused := 0
	for round := range 4 {
		for id := range uint32(64) {
			rec, err := s.ReadBucket(id)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec.Entries, cp.Buckets[id].Entries) {
				t.Fatalf("round %d: bucket %d read back different rows", round, id)
			}
			if handed[&rec.Entries[0]] {
				reused++
			}
			handed[&rec.Entries[0]] = true
			s.RecycleEntries(rec.Entries)
		}
	}
	if reused == 0 {
		t.Fatal("no read reused recycled Entries")
	}
	t.Logf("%d of 256 reads reused recycled Entries", reused)
}

// BenchmarkOpen opens (and closes) a store of 2M value sets of 3 values
// and 20k buckets of 64 entries, written by four commits (an index
// snapshot and deltas). Open reads and checks every index extent; the
// free space is rebuilt after it, in the background (DESIGN-NOTES, step
// 13), and that scan's length is reported apart as scan-ns/op: both are
// O(objects).
func BenchmarkOpen(b *testing.B) {
	const (
		sets     = 2_000_000
		buckets  = 20_000
		commits  = 4
		setVals  = 3
		bEntries = 64
	)
	path := filepath.Join(b.TempDir(), "open.h5")
	s, err := h5store.Open(path, h5store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	vals := make([]byte, setVals*port.ValueSize)
	for c := range commits {
		cp := buckets1000(buckets/commits, bEntries)
		for i := range cp.Buckets {
			cp.Buckets[i].ID += uint32(c * buckets / commits)
		}
		cp.Meta.CheckpointLSN = uint64(c + 1)
		cp.Meta.NextBucketID = uint32((c + 1) * buckets / commits)
		for id := uint64(c * sets / commits); id < uint64((c+1)*sets/commits); id++ {
			for i := 0; i < len(vals); i += 8 {
				binary.LittleEndian.PutUint64(vals[i:], r.Uint64())
			}
			cp.ValueSets = append(cp.ValueSets, port.ValueSetRecord{ID: id + 1, SortedCount: setVals, Values: bytes.Clone(vals)})
		}
		cp.Meta.NextValueSetID = uint64((c+1)*sets/commits) + 1
		if err := s.Commit(cp); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var scan time.Duration
	for range b.N {
		s, err := h5store.Open(path, h5store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		// The free-space scan Open starts: reported apart (scan-ns/op),
		// as it runs while the store serves reads.
		for s.Stats().FreeSpaceScan == 0 {
			time.Sleep(time.Millisecond)
		}
		scan += s.Stats().FreeSpaceScan
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(scan.Nanoseconds())/float64(b.N), "scan-ns/op")
}
