// Package porttest is the contract suite for storage adapters: every
// port.Backend (storage-mem, storage-hdf5, ...) runs the same cases.
//
//	func TestContract(t *testing.T) {
//		open := func(t *testing.T, path string) port.Backend { ... }
//		porttest.Run(t, open, open) // durable: reopen with the same function
//	}
//
// A volatile backend passes no reopen function and the cases that close and
// reopen a store are skipped.
package porttest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cidstore/cidstore/core/port"
)

// OpenFunc opens the backend stored at path, creating it when it does not
// exist. path is a file name inside a fresh t.TempDir(). A volatile backend
// may ignore it.
type OpenFunc func(t *testing.T, path string) port.Backend

// Run runs the contract cases. reopen, if given, opens a backend that was
// closed at path again (usually the same function as open); without it the
// durability cases are skipped.
//
// Every case uses a fixed seed, so a failure replays exactly.
func Run(t *testing.T, open OpenFunc, reopen ...OpenFunc) {
	s := &suite{open: open}
	if len(reopen) > 0 {
		s.reopen = reopen[0]
	}
	for _, c := range []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"EmptyLoadMeta", s.emptyLoadMeta},
		{"RoundTrip", s.roundTrip},
		{"MetaCounts", s.metaCounts},
		{"Incremental", s.incremental},
		{"MetaOnlyCommit", s.metaOnly},
		{"FullReplaces", s.fullReplaces},
		{"NotFound", s.notFound},
		{"ReturnedSlicesOwned", s.returnedSlicesOwned},
		{"ReopenEmpty", s.reopenEmpty},
		{"ReopenLastCommit", s.reopenLastCommit},
		{"LargeValueSet", s.largeValueSet},
		{"ManyBuckets", s.manyBuckets},
		{"RandomCommits", s.randomCommits},
		{"DeletionLog", s.deletionLog},
		{"DeletionLogLarge", s.deletionLogLarge},
		{"DeletionLogTrimTooLarge", s.trimTooLarge},
		{"AfterClose", s.afterClose},
		{"Stream", s.stream},
		{"StreamReadsDuring", s.streamReadsDuring},
		{"StreamError", s.streamError},
		{"BucketDeltas", s.bucketDeltas},
		{"BucketDeltaErrors", s.bucketDeltaErrors},
	} {
		t.Run(c.name, c.fn)
	}
}

type suite struct {
	open, reopen OpenFunc
}

// handle is a backend under test; the test's cleanup closes it unless the
// test already did.
type handle struct {
	port.Backend
	path   string
	closed bool
}

// newBackend opens a fresh backend in a new directory.
func (s *suite) newBackend(t *testing.T) *handle {
	t.Helper()
	h := &handle{path: filepath.Join(t.TempDir(), "store")}
	h.Backend = s.open(t, h.path)
	if h.Backend == nil {
		t.Fatal("open returned a nil backend")
	}
	t.Cleanup(func() {
		if !h.closed {
			if err := h.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	})
	return h
}

// close closes the backend; cleanup will not close it again.
func (h *handle) close(t *testing.T) {
	t.Helper()
	h.closed = true
	if err := h.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// reopened closes the backend and opens the store at the same path again.
func (s *suite) reopened(t *testing.T, h *handle) {
	t.Helper()
	h.close(t)
	h.Backend = s.reopen(t, h.path)
	if h.Backend == nil {
		t.Fatal("reopen returned a nil backend")
	}
	h.closed = false
}

func (s *suite) needReopen(t *testing.T) {
	t.Helper()
	if s.reopen == nil {
		t.Skip("volatile backend: no reopen function")
	}
}

// gen makes well-formed records from a seeded generator.
type gen struct{ r *rand.Rand }

func newGen(seed uint64) *gen { return &gen{r: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))} }

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func (g *gen) nonzero() uint64 {
	for {
		if v := g.r.Uint64(); v != 0 {
			return v
		}
	}
}

// entries returns n HashEntries: key, two slots, CRC32C of bytes 0..47.
func (g *gen) entries(n int) []byte {
	if n == 0 {
		return nil
	}
	b := make([]byte, n*port.EntrySize)
	for i := range n {
		e := b[i*port.EntrySize : (i+1)*port.EntrySize]
		for w := range 6 {
			binary.LittleEndian.PutUint64(e[w*8:], g.nonzero())
		}
		binary.LittleEndian.PutUint64(e[48:], uint64(crc32.Checksum(e[:48], crcTable)))
	}
	return b
}

func (g *gen) values(n int) []byte {
	if n == 0 {
		return nil
	}
	b := make([]byte, n*port.ValueSize)
	for i := range 2 * n {
		binary.LittleEndian.PutUint64(b[i*8:], g.nonzero())
	}
	return b
}

func (g *gen) bucket(id uint32, n int) port.BucketRecord {
	return port.BucketRecord{
		ID:            id,
		LocalDepth:    uint8(g.r.IntN(8)),
		SortedCount:   uint32(g.r.IntN(n + 1)),
		LastCompacted: g.r.Int64N(1 << 62),
		Entries:       g.entries(n),
	}
}

func (g *gen) valueSet(id uint64, n, tombs int) port.ValueSetRecord {
	return port.ValueSetRecord{
		ID:          id,
		SortedCount: uint32(g.r.IntN(n + 1)),
		Values:      g.values(n),
		Tombstones:  g.values(tombs),
	}
}

func (g *gen) meta(depth uint8, lsn uint64) port.Meta {
	return port.Meta{
		FormatVersion:   1,
		GlobalDepth:     depth,
		HashSeed:        g.nonzero(),
		BucketCapacity:  256,
		CheckpointLSN:   lsn,
		NumBuckets:      uint32(g.r.IntN(1 << 20)),
		NextBucketID:    uint32(g.r.IntN(1 << 20)),
		NextValueSetID:  g.r.Uint64N(1 << 40),
		CreatedUnixNano: g.r.Int64N(1 << 62),
		Keys:            g.r.Uint64N(1 << 40),
		Values:          g.r.Uint64(),
		SpilledKeys:     g.r.Uint64N(1 << 30),
	}
}

// model is what the backend must hold after the commits applied to it.
type model struct {
	committed bool
	meta      port.Meta
	dir       []uint32
	buckets   map[uint32]port.BucketRecord // as ReadBucket returns them
	bases     map[uint32]port.BucketRecord // the last whole record of each bucket
	sets      map[uint64]port.ValueSetRecord
	goneB     map[uint32]bool // ids that were committed once and are now gone
	goneV     map[uint64]bool
	dels      []port.DeletionRecord // the deletion log after trimming
}

func newModel() *model {
	return &model{buckets: map[uint32]port.BucketRecord{}, bases: map[uint32]port.BucketRecord{}, sets: map[uint64]port.ValueSetRecord{},
		goneB: map[uint32]bool{}, goneV: map[uint64]bool{}}
}

func cloneBucket(b port.BucketRecord) port.BucketRecord {
	b.Entries = bytes.Clone(b.Entries)
	return b
}

func cloneSet(v port.ValueSetRecord) port.ValueSetRecord {
	v.Values = bytes.Clone(v.Values)
	v.Tombstones = bytes.Clone(v.Tombstones)
	return v
}

// apply records cp in the model (copying it: the backend owns cp's slices)
// and commits it.
func (m *model) commit(t *testing.T, b port.Backend, cp *port.Checkpoint) {
	t.Helper()
	m.commitAs(t, b, cp, nil)
}

// commitAs records cp in the model and commits sent, an equivalent
// checkpoint (streamed), or cp itself when sent is nil.
func (m *model) commitAs(t *testing.T, b port.Backend, cp, sent *port.Checkpoint) {
	t.Helper()
	if cp.Full {
		for id := range m.buckets {
			m.goneB[id] = true
		}
		for id := range m.sets {
			m.goneV[id] = true
		}
		clear(m.buckets)
		clear(m.bases)
		clear(m.sets)
	}
	for _, id := range cp.FreedBuckets {
		if _, ok := m.buckets[id]; ok {
			m.goneB[id] = true
		}
		delete(m.buckets, id)
		delete(m.bases, id)
	}
	for _, id := range cp.FreedValueSets {
		if _, ok := m.sets[id]; ok {
			m.goneV[id] = true
		}
		delete(m.sets, id)
	}
	for _, r := range cp.Buckets {
		if r.Delta {
			base, ok := m.bases[r.ID]
			if !ok {
				t.Fatalf("model: a delta of bucket %d, which has no base", r.ID)
			}
			merged, keys, err := port.ApplyBucketDelta(nil, nil, base.Entries, r.Entries)
			if err != nil {
				t.Fatalf("model: bucket %d: %v", r.ID, err)
			}
			m.buckets[r.ID] = port.BucketRecord{ID: r.ID, LocalDepth: r.LocalDepth, SortedCount: uint32(len(merged) / port.EntrySize),
				LastCompacted: r.LastCompacted, Entries: merged, DeltaKeys: keys}
			continue
		}
		m.buckets[r.ID] = cloneBucket(r)
		m.bases[r.ID] = cloneBucket(r)
		delete(m.goneB, r.ID)
	}
	for _, r := range cp.ValueSets {
		m.sets[r.ID] = cloneSet(r)
		delete(m.goneV, r.ID)
	}
	m.meta = cp.Meta
	m.dir = slices.Clone(cp.Directory)
	m.committed = true
	if cp.TrimDeletions > uint64(len(m.dels)) {
		t.Fatalf("model: trim %d of a %d-record log", cp.TrimDeletions, len(m.dels))
	}
	m.dels = append(slices.Clone(m.dels[cp.TrimDeletions:]), cp.Deletions...)
	if sent == nil {
		sent = cp
	}
	if err := b.Commit(sent); err != nil {
		t.Fatalf("commit lsn %d: %v", cp.Meta.CheckpointLSN, err)
	}
}

// streamed returns cp with its buckets and value sets moved into Stream.
// Each record is handed over in one buffer that is overwritten after the
// sink returns, so a backend that keeps a reference instead of a copy
// ends up with garbage. during, if set, runs when the stream starts.
func streamed(cp *port.Checkpoint, during func()) *port.Checkpoint {
	out := *cp
	bs, vs := cp.Buckets, cp.ValueSets
	out.Buckets, out.ValueSets = nil, nil
	out.Stream = func(putBucket func(*port.BucketRecord) error, putSet func(*port.ValueSetRecord) error) error {
		if during != nil {
			during()
		}
		var buf []byte
		scribble := func() {
			for i := range buf {
				buf[i] = 0xEE
			}
		}
		for _, b := range bs {
			buf = append(buf[:0], b.Entries...)
			r := b
			r.Entries = buf[:len(b.Entries):len(b.Entries)]
			if err := putBucket(&r); err != nil {
				return err
			}
			scribble()
		}
		for _, v := range vs {
			buf = append(append(buf[:0], v.Values...), v.Tombstones...)
			r := v
			r.Values = buf[:len(v.Values):len(v.Values)]
			if v.Tombstones != nil {
				r.Tombstones = buf[len(v.Values):]
			}
			if err := putSet(&r); err != nil {
				return err
			}
			scribble()
		}
		return nil
	}
	return &out
}

// verify checks that b holds exactly the model's state.
func (m *model) verify(t *testing.T, b port.Backend) {
	t.Helper()
	meta, dir, ok, err := b.LoadMeta()
	if err != nil {
		t.Fatalf("LoadMeta: %v", err)
	}
	if ok != m.committed {
		t.Fatalf("LoadMeta ok = %v, want %v", ok, m.committed)
	}
	if !ok {
		return
	}
	if meta != m.meta {
		t.Fatalf("LoadMeta meta = %+v, want %+v", meta, m.meta)
	}
	if !slices.Equal(dir, m.dir) {
		t.Fatalf("LoadMeta directory differs: %d slots, want %d", len(dir), len(m.dir))
	}
	for id, want := range m.buckets {
		got, err := b.ReadBucket(id)
		if err != nil {
			t.Fatalf("ReadBucket(%d): %v", id, err)
		}
		if err := sameBucket(got, want); err != nil {
			t.Fatalf("ReadBucket(%d): %v", id, err)
		}
	}
	for id, want := range m.sets {
		got, err := b.ReadValueSet(id)
		if err != nil {
			t.Fatalf("ReadValueSet(%d): %v", id, err)
		}
		if err := sameSet(got, want); err != nil {
			t.Fatalf("ReadValueSet(%d): %v", id, err)
		}
	}
	for id := range m.goneB {
		if _, err := b.ReadBucket(id); !errors.Is(err, port.ErrNotFound) {
			t.Fatalf("ReadBucket(%d) of a freed bucket: err = %v, want ErrNotFound", id, err)
		}
	}
	for id := range m.goneV {
		if _, err := b.ReadValueSet(id); !errors.Is(err, port.ErrNotFound) {
			t.Fatalf("ReadValueSet(%d) of a freed value set: err = %v, want ErrNotFound", id, err)
		}
	}
	if r, ok := b.(port.DeletionLogReader); ok {
		dels, err := r.DeletionLog()
		if err != nil {
			t.Fatalf("DeletionLog: %v", err)
		}
		if len(dels) != len(m.dels) {
			t.Fatalf("DeletionLog has %d records, want %d", len(dels), len(m.dels))
		}
		for i := range dels {
			if dels[i] != m.dels[i] {
				t.Fatalf("DeletionLog[%d] = %+v, want %+v", i, dels[i], m.dels[i])
			}
		}
	}
	if l, ok := b.(port.Lister); ok {
		bids, err := l.BucketIDs()
		if err != nil {
			t.Fatalf("BucketIDs: %v", err)
		}
		slices.Sort(bids)
		want := make([]uint32, 0, len(m.buckets))
		for id := range m.buckets {
			want = append(want, id)
		}
		slices.Sort(want)
		if !slices.Equal(bids, want) {
			t.Fatalf("BucketIDs: %d ids, want %d", len(bids), len(want))
		}
		vids, err := port.ListValueSetIDs(l)
		if err != nil {
			t.Fatalf("ValueSetIDs: %v", err)
		}
		wantV := make([]uint64, 0, len(m.sets))
		for id := range m.sets {
			wantV = append(wantV, id)
		}
		slices.Sort(wantV)
		if !slices.Equal(vids, wantV) {
			t.Fatalf("ValueSetIDs: %d ids, want %d", len(vids), len(wantV))
		}
		checkIDPages(t, l, wantV)
	}
}

// checkIDPages checks ValueSetIDs' pages against want (sorted): small
// pages walked from 0 give want, a page after an id or between ids starts
// at the next id, and a limit below 1 is an error.
func checkIDPages(t *testing.T, l port.Lister, want []uint64) {
	t.Helper()
	for _, limit := range []int{1, 3} {
		var got []uint64
		after := uint64(0)
		for {
			ids, err := l.ValueSetIDs(after, limit)
			if err != nil {
				t.Fatalf("ValueSetIDs(%d, %d): %v", after, limit, err)
			}
			if len(ids) > limit {
				t.Fatalf("ValueSetIDs(%d, %d) returned %d ids", after, limit, len(ids))
			}
			got = append(got, ids...)
			if len(ids) < limit {
				break
			}
			after = ids[len(ids)-1]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ValueSetIDs in pages of %d: %v, want %v", limit, got, want)
		}
	}
	for i, id := range want {
		for _, after := range []uint64{id, id - 1} {
			ids, err := l.ValueSetIDs(after, 2)
			if err != nil {
				t.Fatalf("ValueSetIDs(%d, 2): %v", after, err)
			}
			from, found := slices.BinarySearch(want, after)
			if found {
				from++
			}
			if exp := want[from:min(len(want), from+2)]; !slices.Equal(ids, exp) {
				t.Fatalf("ValueSetIDs(%d, 2) = %v, want %v", after, ids, exp)
			}
		}
		if i == 8 {
			break // enough positions; each costs the backend a walk
		}
	}
	if len(want) > 0 {
		if ids, err := l.ValueSetIDs(want[len(want)-1], 1); err != nil || len(ids) != 0 {
			t.Fatalf("ValueSetIDs after the last id = %v, %v; want none", ids, err)
		}
	}
	if _, err := l.ValueSetIDs(0, 0); err == nil {
		t.Fatalf("ValueSetIDs(0, 0): no error")
	}
}

func sameBucket(got, want port.BucketRecord) error {
	switch {
	case got.ID != want.ID:
		return fmt.Errorf("ID %d, want %d", got.ID, want.ID)
	case got.LocalDepth != want.LocalDepth:
		return fmt.Errorf("LocalDepth %d, want %d", got.LocalDepth, want.LocalDepth)
	case got.SortedCount != want.SortedCount:
		return fmt.Errorf("SortedCount %d, want %d", got.SortedCount, want.SortedCount)
	case got.LastCompacted != want.LastCompacted:
		return fmt.Errorf("LastCompacted %d, want %d", got.LastCompacted, want.LastCompacted)
	case !bytes.Equal(got.Entries, want.Entries):
		return fmt.Errorf("entries differ (%d bytes, want %d)", len(got.Entries), len(want.Entries))
	case got.Delta:
		return fmt.Errorf("read as a delta")
	case !bytes.Equal(got.DeltaKeys, want.DeltaKeys):
		return fmt.Errorf("delta keys differ (%d bytes, want %d)", len(got.DeltaKeys), len(want.DeltaKeys))
	}
	return nil
}

func sameSet(got, want port.ValueSetRecord) error {
	switch {
	case got.ID != want.ID:
		return fmt.Errorf("ID %d, want %d", got.ID, want.ID)
	case got.SortedCount != want.SortedCount:
		return fmt.Errorf("SortedCount %d, want %d", got.SortedCount, want.SortedCount)
	case !bytes.Equal(got.Values, want.Values):
		return fmt.Errorf("values differ (%d bytes, want %d)", len(got.Values), len(want.Values))
	case !bytes.Equal(got.Tombstones, want.Tombstones):
		return fmt.Errorf("tombstones differ (%d bytes, want %d)", len(got.Tombstones), len(want.Tombstones))
	}
	return nil
}

// dirFor spreads 1<<depth slots over ids.
func dirFor(depth uint8, ids []uint32) []uint32 {
	d := make([]uint32, 1<<depth)
	for i := range d {
		d[i] = ids[i%len(ids)]
	}
	return d
}

func ids(lo, hi uint32) []uint32 {
	var out []uint32
	for id := lo; id < hi; id++ {
		out = append(out, id)
	}
	return out
}

// baseCheckpoint: buckets 1..8 (bucket 8 empty), value sets 1..4 (with
// tombstones in two), some deletion records.
func baseCheckpoint(g *gen, lsn uint64) *port.Checkpoint {
	cp := &port.Checkpoint{Meta: g.meta(3, lsn), Directory: dirFor(3, ids(1, 9))}
	for id := uint32(1); id <= 8; id++ {
		n := 1 + g.r.IntN(20)
		if id == 8 {
			n = 0
		}
		cp.Buckets = append(cp.Buckets, g.bucket(id, n))
	}
	for id := uint64(1); id <= 4; id++ {
		cp.ValueSets = append(cp.ValueSets, g.valueSet(id, 3+g.r.IntN(50), int(id%2)*3))
	}
	for range 3 {
		cp.Deletions = append(cp.Deletions, port.DeletionRecord{KeyHigh: g.nonzero(), KeyLow: g.nonzero(),
			ValueGroup: g.r.Uint64N(5), UnixNano: g.r.Int64N(1 << 62)})
	}
	return cp
}

func (s *suite) emptyLoadMeta(t *testing.T) {
	b := s.newBackend(t)
	_, dir, ok, err := b.LoadMeta()
	if err != nil || ok || dir != nil {
		t.Fatalf("LoadMeta on a new store = (dir %v, ok %v, err %v), want (nil, false, nil)", dir, ok, err)
	}
	if _, err := b.ReadBucket(0); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("ReadBucket(0) on a new store: err = %v, want ErrNotFound", err)
	}
	if _, err := b.ReadValueSet(1); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("ReadValueSet(1) on a new store: err = %v, want ErrNotFound", err)
	}
	newModel().verify(t, b.Backend)
}

func (s *suite) roundTrip(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(1)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 100))
	m.verify(t, b.Backend)
}

func (s *suite) incremental(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(2)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 10))
	// Change buckets 2 and 5, free 7, add 9; change value set 2, free 4,
	// add 5. Only the changes cross the port.
	cp := &port.Checkpoint{
		Meta:           g.meta(3, 20),
		Directory:      dirFor(3, []uint32{1, 2, 3, 4, 5, 6, 8, 9}),
		Buckets:        []port.BucketRecord{g.bucket(2, 30), g.bucket(5, 1), g.bucket(9, 7)},
		FreedBuckets:   []uint32{7},
		ValueSets:      []port.ValueSetRecord{g.valueSet(2, 100, 10), g.valueSet(5, 3, 0)},
		FreedValueSets: []uint64{4},
	}
	m.commit(t, b, cp)
	m.verify(t, b.Backend)
	// Grow a bucket to many entries, shrink another to none, and free an id
	// that does not exist (a no-op).
	cp = &port.Checkpoint{
		Meta:         g.meta(3, 30),
		Directory:    dirFor(3, []uint32{1, 2, 3, 4, 5, 6, 8, 9}),
		Buckets:      []port.BucketRecord{g.bucket(3, 600), g.bucket(1, 0)},
		FreedBuckets: []uint32{777},
	}
	m.commit(t, b, cp)
	m.verify(t, b.Backend)
}

// metaCounts checks that the live counts of Meta round-trip, including
// their extremes, through commits that write nothing else and a reopen.
func (s *suite) metaCounts(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(13)
	m := newModel()
	cp := baseCheckpoint(g, 1)
	cp.Meta.Keys, cp.Meta.Values, cp.Meta.SpilledKeys = 0, 0, 0
	m.commit(t, b, cp)
	m.verify(t, b.Backend)
	for i, c := range []struct{ keys, values, spilled uint64 }{
		{1, 1, 0},
		{^uint64(0), ^uint64(0), ^uint64(0)},
		{1_000_000_007, 3_000_000_019, 12_345},
	} {
		meta := g.meta(3, uint64(2+i))
		meta.Keys, meta.Values, meta.SpilledKeys = c.keys, c.values, c.spilled
		m.commit(t, b, &port.Checkpoint{Meta: meta, Directory: slices.Clone(m.dir)})
		m.verify(t, b.Backend)
		if got, _, _, _ := b.LoadMeta(); got.Keys != c.keys || got.Values != c.values || got.SpilledKeys != c.spilled {
			t.Fatalf("counts = %d/%d/%d, want %d/%d/%d", got.Keys, got.Values, got.SpilledKeys, c.keys, c.values, c.spilled)
		}
	}
	if s.reopen != nil {
		s.reopened(t, b)
		m.verify(t, b.Backend)
	}
}

func (s *suite) metaOnly(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(3)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 5))
	for lsn := uint64(6); lsn < 9; lsn++ {
		m.commit(t, b, &port.Checkpoint{Meta: g.meta(3, lsn), Directory: slices.Clone(m.dir)})
		m.verify(t, b.Backend)
	}
}

func (s *suite) fullReplaces(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(4)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 1))
	cp := &port.Checkpoint{
		Meta:      g.meta(1, 2),
		Directory: []uint32{1, 20},
		Buckets:   []port.BucketRecord{g.bucket(1, 5), g.bucket(20, 9)},
		ValueSets: []port.ValueSetRecord{g.valueSet(3, 8, 1), g.valueSet(30, 4, 0)},
		Full:      true,
	}
	m.commit(t, b, cp)
	m.verify(t, b.Backend)
	for _, id := range []uint32{2, 3, 4, 5, 6, 7, 8} {
		if !m.goneB[id] {
			t.Fatalf("model: bucket %d should be gone after a Full checkpoint", id)
		}
	}
	// An incremental commit after a full one builds on it.
	m.commit(t, b, &port.Checkpoint{Meta: g.meta(1, 3), Directory: []uint32{1, 20},
		Buckets: []port.BucketRecord{g.bucket(20, 2)}, FreedValueSets: []uint64{3}})
	m.verify(t, b.Backend)
}

func (s *suite) notFound(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(5)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 1))
	for _, id := range []uint32{0, 9, 1 << 20, ^uint32(0)} {
		if _, err := b.ReadBucket(id); !errors.Is(err, port.ErrNotFound) {
			t.Fatalf("ReadBucket(%d): err = %v, want ErrNotFound", id, err)
		}
	}
	for _, id := range []uint64{0, 5, 1 << 40, ^uint64(0)} {
		if _, err := b.ReadValueSet(id); !errors.Is(err, port.ErrNotFound) {
			t.Fatalf("ReadValueSet(%d): err = %v, want ErrNotFound", id, err)
		}
	}
}

func (s *suite) returnedSlicesOwned(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(6)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 1))
	br, err := b.ReadBucket(2)
	if err != nil {
		t.Fatal(err)
	}
	clear(br.Entries)
	vs, err := b.ReadValueSet(1)
	if err != nil {
		t.Fatal(err)
	}
	clear(vs.Values)
	clear(vs.Tombstones)
	_, dir, _, err := b.LoadMeta()
	if err != nil {
		t.Fatal(err)
	}
	clear(dir)
	m.verify(t, b.Backend)
}

func (s *suite) reopenEmpty(t *testing.T) {
	s.needReopen(t)
	b := s.newBackend(t)
	s.reopened(t, b)
	newModel().verify(t, b.Backend)
	// A store reopened before its first commit takes commits normally.
	m := newModel()
	m.commit(t, b, baseCheckpoint(newGen(7), 1))
	s.reopened(t, b)
	m.verify(t, b.Backend)
}

func (s *suite) reopenLastCommit(t *testing.T) {
	s.needReopen(t)
	b := s.newBackend(t)
	g := newGen(8)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 1))
	m.commit(t, b, &port.Checkpoint{Meta: g.meta(3, 2), Directory: dirFor(3, ids(1, 9)),
		Buckets: []port.BucketRecord{g.bucket(4, 12)}, ValueSets: []port.ValueSetRecord{g.valueSet(9, 5, 2)},
		FreedValueSets: []uint64{1}})
	s.reopened(t, b)
	m.verify(t, b.Backend)
	// Commits after a reopen build on the reopened state.
	m.commit(t, b, &port.Checkpoint{Meta: g.meta(3, 3), Directory: dirFor(3, ids(1, 9)),
		Buckets: []port.BucketRecord{g.bucket(5, 3)}, FreedValueSets: []uint64{9}})
	m.verify(t, b.Backend)
	s.reopened(t, b)
	m.verify(t, b.Backend)
}

func (s *suite) largeValueSet(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(9)
	m := newModel()
	cp := baseCheckpoint(g, 1)
	big := g.valueSet(1000, 1_000_000, 1000)
	big.SortedCount = 600_000
	cp.ValueSets = append(cp.ValueSets, big)
	m.commit(t, b, cp)
	m.verify(t, b.Backend)
	// Rewrite it with a larger tail.
	big = g.valueSet(1000, 1_000_500, 2000)
	m.commit(t, b, &port.Checkpoint{Meta: g.meta(3, 2), Directory: dirFor(3, ids(1, 9)),
		ValueSets: []port.ValueSetRecord{big}})
	m.verify(t, b.Backend)
	if s.reopen != nil {
		s.reopened(t, b)
		m.verify(t, b.Backend)
	}
}

func (s *suite) manyBuckets(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(10)
	m := newModel()
	const n = 50_000
	const depth = 16
	cp := &port.Checkpoint{Meta: g.meta(depth, 1), Directory: dirFor(depth, ids(0, n))}
	for id := range uint32(n) {
		cp.Buckets = append(cp.Buckets, g.bucket(id, g.r.IntN(5)))
	}
	for id := range uint64(5000) {
		cp.ValueSets = append(cp.ValueSets, g.valueSet(id+1, 3+g.r.IntN(10), g.r.IntN(2)))
	}
	m.commit(t, b, cp)
	m.verify(t, b.Backend)
	// Touch 1000 buckets and free the last 100 (their slots move to 0).
	cp = &port.Checkpoint{Meta: g.meta(depth, 2), Directory: dirFor(depth, ids(0, n-100))}
	for range 1000 {
		cp.Buckets = append(cp.Buckets, g.bucket(uint32(g.r.IntN(n-100)), 1+g.r.IntN(8)))
	}
	cp.FreedBuckets = ids(n-100, n)
	m.commit(t, b, cp)
	m.verify(t, b.Backend)
	if s.reopen != nil {
		s.reopened(t, b)
		m.verify(t, b.Backend)
	}
}

// randomCommits runs seeded random checkpoints against the model and
// verifies after each, reopening now and then.
func (s *suite) randomCommits(t *testing.T) {
	b := s.newBackend(t)
	const seed = 11
	g := newGen(seed)
	m := newModel()
	next := uint32(0)
	nextV := uint64(1)
	live := []uint32{}
	liveV := []uint64{}
	for step := range 60 {
		cp := &port.Checkpoint{}
		full := step > 0 && g.r.IntN(15) == 0
		if full {
			cp.Full = true
			keepB := live[:0:0]
			for _, id := range live {
				if g.r.IntN(3) > 0 {
					keepB = append(keepB, id)
					cp.Buckets = append(cp.Buckets, g.bucket(id, g.r.IntN(40)))
				}
			}
			keepV := liveV[:0:0]
			for _, id := range liveV {
				if g.r.IntN(3) > 0 {
					keepV = append(keepV, id)
					cp.ValueSets = append(cp.ValueSets, g.valueSet(id, 3+g.r.IntN(40), g.r.IntN(3)))
				}
			}
			live, liveV = keepB, keepV
		} else {
			for range g.r.IntN(6) {
				cp.Buckets = append(cp.Buckets, g.bucket(next, g.r.IntN(40)))
				live = append(live, next)
				next++
			}
			for range g.r.IntN(6) {
				if len(live) > 0 {
					id := live[g.r.IntN(len(live))]
					cp.Buckets = append(cp.Buckets, g.bucket(id, g.r.IntN(300)))
				}
			}
			if len(live) > 2 && g.r.IntN(3) == 0 {
				i := g.r.IntN(len(live))
				cp.FreedBuckets = append(cp.FreedBuckets, live[i])
				live = slices.Delete(live, i, i+1)
			}
			for range g.r.IntN(4) {
				cp.ValueSets = append(cp.ValueSets, g.valueSet(nextV, 3+g.r.IntN(200), g.r.IntN(5)))
				liveV = append(liveV, nextV)
				nextV++
			}
			if len(liveV) > 1 && g.r.IntN(2) == 0 {
				i := g.r.IntN(len(liveV))
				cp.FreedValueSets = append(cp.FreedValueSets, liveV[i])
				liveV = slices.Delete(liveV, i, i+1)
			}
		}
		if len(live) == 0 {
			cp.Buckets = append(cp.Buckets, g.bucket(next, 1))
			live = append(live, next)
			next++
		}
		depth := uint8(g.r.IntN(6))
		cp.Meta = g.meta(depth, uint64(step+1))
		cp.Directory = dirFor(depth, live)
		m.commit(t, b, cp)
		m.verify(t, b.Backend)
		if s.reopen != nil && step%20 == 19 {
			s.reopened(t, b)
			m.verify(t, b.Backend)
		}
	}
}

func (g *gen) deletions(n int) []port.DeletionRecord {
	var out []port.DeletionRecord
	for range n {
		out = append(out, port.DeletionRecord{KeyHigh: g.nonzero(), KeyLow: g.nonzero(),
			ValueGroup: g.r.Uint64N(1 << 40), UnixNano: g.r.Int64N(1 << 62)})
	}
	return out
}

// metaCommit is a checkpoint that changes only Meta (and the deletion log).
func (m *model) metaCommit(g *gen, lsn uint64) *port.Checkpoint {
	return &port.Checkpoint{Meta: g.meta(m.meta.GlobalDepth, lsn), Directory: slices.Clone(m.dir)}
}

func (s *suite) needLog(t *testing.T, b port.Backend) {
	t.Helper()
	if _, ok := b.(port.DeletionLogReader); !ok {
		t.Skip("backend does not implement port.DeletionLogReader")
	}
}

// deletionLog appends, trims, trims and appends in one commit, trims the
// whole log and appends again, reopening in between.
func (s *suite) deletionLog(t *testing.T) {
	b := s.newBackend(t)
	s.needLog(t, b.Backend)
	g := newGen(14)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 1)) // 3 records
	m.verify(t, b.Backend)
	lsn := uint64(1)
	step := func(trim uint64, add int) {
		t.Helper()
		lsn++
		cp := m.metaCommit(g, lsn)
		cp.TrimDeletions, cp.Deletions = trim, g.deletions(add)
		m.commit(t, b, cp)
		m.verify(t, b.Backend)
	}
	step(0, 5) // 8
	step(0, 0) // a commit without deletions keeps the log
	step(2, 0) // trim only: 6
	step(4, 3) // trim and append in one commit: 5
	if s.reopen != nil {
		s.reopened(t, b)
		m.verify(t, b.Backend)
	}
	step(5, 0) // the whole log: empty
	step(0, 2) // append to an emptied log
	step(2, 4) // trim all and append in one commit
	step(4, 1) // again: a backend may reuse the space now
	step(0, 0)
	if s.reopen != nil {
		s.reopened(t, b)
		m.verify(t, b.Backend)
	}
	step(1, 7)
	step(0, 1)
	// A Full checkpoint replaces buckets and value sets, not the log.
	lsn++
	cp := baseCheckpoint(g, lsn)
	cp.Full, cp.TrimDeletions = true, 3
	m.commit(t, b, cp)
	m.verify(t, b.Backend)
	if s.reopen != nil {
		s.reopened(t, b)
		m.verify(t, b.Backend)
	}
}

// deletionLogLarge grows the log past any first allocation, then trims it
// in steps while appending, so that the log's start and end move through
// several segments of a pooled backend.
func (s *suite) deletionLogLarge(t *testing.T) {
	b := s.newBackend(t)
	s.needLog(t, b.Backend)
	g := newGen(15)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 1))
	lsn := uint64(1)
	for i := range 12 {
		lsn++
		cp := m.metaCommit(g, lsn)
		cp.Deletions = g.deletions(1000 + 100*i)
		if i >= 4 {
			cp.TrimDeletions = uint64(len(m.dels)) * uint64(g.r.IntN(4)) / 4
		}
		if i == 9 {
			cp.TrimDeletions = uint64(len(m.dels))
		}
		m.commit(t, b, cp)
		m.verify(t, b.Backend)
		if s.reopen != nil && i%4 == 3 {
			s.reopened(t, b)
			m.verify(t, b.Backend)
		}
	}
}

// trimTooLarge: a TrimDeletions beyond the committed log fails and changes
// nothing; the store keeps taking commits.
func (s *suite) trimTooLarge(t *testing.T) {
	b := s.newBackend(t)
	s.needLog(t, b.Backend)
	g := newGen(16)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 1)) // 3 records
	for _, trim := range []uint64{4, 1 << 40, ^uint64(0)} {
		cp := baseCheckpoint(g, 2)
		cp.TrimDeletions = trim
		if err := b.Commit(cp); err == nil {
			t.Fatalf("Commit with TrimDeletions %d of a 3-record log succeeded", trim)
		}
		m.verify(t, b.Backend)
	}
	cp := m.metaCommit(g, 2)
	cp.TrimDeletions, cp.Deletions = 3, g.deletions(2)
	m.commit(t, b, cp)
	m.verify(t, b.Backend)
	cp = m.metaCommit(g, 3)
	cp.TrimDeletions = 3
	if err := b.Commit(cp); err == nil {
		t.Fatal("Commit with TrimDeletions 3 of a 2-record log succeeded")
	}
	m.verify(t, b.Backend)
	if s.reopen != nil {
		s.reopened(t, b)
		m.verify(t, b.Backend)
	}
}

func (s *suite) afterClose(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(12)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 1))
	b.close(t)
	if _, _, _, err := b.LoadMeta(); err == nil {
		t.Error("LoadMeta after Close: err = nil")
	}
	if _, err := b.ReadBucket(1); err == nil {
		t.Error("ReadBucket after Close: err = nil")
	}
	if _, err := b.ReadValueSet(1); err == nil {
		t.Error("ReadValueSet after Close: err = nil")
	}
	if err := b.Commit(baseCheckpoint(g, 2)); err == nil {
		t.Error("Commit after Close: err = nil")
	}
	if err := b.Close(); err == nil {
		t.Error("second Close: err = nil")
	}
}

// A checkpoint's records may arrive through Stream, in buffers the
// producer reuses; mixed with records in Buckets and ValueSets.
func (s *suite) stream(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(13)
	m := newModel()
	cp := baseCheckpoint(g, 1)
	sent := streamed(cp, nil)
	sent.Buckets = append(sent.Buckets, cp.Buckets[0]) // one bucket in the slice, the rest streamed
	m.commitAs(t, b, cp, sent)
	m.verify(t, b.Backend)
	next := &port.Checkpoint{Meta: g.meta(3, 2), Directory: dirFor(3, ids(1, 9)),
		Buckets:   []port.BucketRecord{g.bucket(3, 9), g.bucket(6, 0)},
		ValueSets: []port.ValueSetRecord{g.valueSet(2, 70, 4), g.valueSet(9, 5, 0)}, FreedValueSets: []uint64{1}}
	m.commitAs(t, b, next, streamed(next, nil))
	m.verify(t, b.Backend)
	if s.reopen != nil {
		s.reopened(t, b)
		m.verify(t, b.Backend)
	}
}

// Loader methods work while the backend runs a checkpoint's Stream (core
// reads evicted buckets while it streams) and return the committed
// version of what the checkpoint does not write.
func (s *suite) streamReadsDuring(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(14)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 1))
	wantB, wantV := cloneBucket(m.buckets[4]), cloneSet(m.sets[3])
	next := &port.Checkpoint{Meta: g.meta(3, 2), Directory: dirFor(3, ids(1, 9)),
		Buckets: []port.BucketRecord{g.bucket(2, 5)}, ValueSets: []port.ValueSetRecord{g.valueSet(1, 8, 0)}}
	var during error
	read := func() {
		done := make(chan error, 1)
		go func() {
			rb, err := b.ReadBucket(4)
			if err == nil && !bytes.Equal(rb.Entries, wantB.Entries) {
				err = errors.New("ReadBucket(4) during the stream: entries differ from the committed ones")
			}
			if err == nil {
				var rv port.ValueSetRecord
				rv, err = b.ReadValueSet(3)
				if err == nil && !bytes.Equal(rv.Values, wantV.Values) {
					err = errors.New("ReadValueSet(3) during the stream: values differ from the committed ones")
				}
			}
			done <- err
		}()
		select {
		case during = <-done:
		case <-time.After(10 * time.Second):
			during = errors.New("a read waited for the commit running the stream")
		}
	}
	m.commitAs(t, b, next, streamed(next, read))
	if during != nil {
		t.Fatal(during)
	}
	m.verify(t, b.Backend)
}

// A stream that fails fails the Commit, and the previous checkpoint stays.
func (s *suite) streamError(t *testing.T) {
	b := s.newBackend(t)
	g := newGen(15)
	m := newModel()
	m.commit(t, b, baseCheckpoint(g, 1))
	bad := &port.Checkpoint{Meta: g.meta(3, 2), Directory: dirFor(3, ids(1, 9)),
		Buckets: []port.BucketRecord{g.bucket(2, 5), g.bucket(5, 3)}, FreedValueSets: []uint64{2}}
	sent := streamed(bad, nil)
	inner := sent.Stream
	boom := errors.New("producer failed")
	sent.Stream = func(putBucket func(*port.BucketRecord) error, putSet func(*port.ValueSetRecord) error) error {
		n := 0
		err := inner(func(r *port.BucketRecord) error {
			if n++; n == 2 {
				return boom
			}
			return putBucket(r)
		}, putSet)
		return err
	}
	if err := b.Commit(sent); !errors.Is(err, boom) {
		t.Fatalf("Commit with a failing stream: err = %v, want it to wrap the stream's error", err)
	}
	m.verify(t, b.Backend)
	m.commit(t, b, baseCheckpoint(g, 3)) // still usable
	m.verify(t, b.Backend)
}
