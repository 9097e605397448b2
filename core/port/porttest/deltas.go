package porttest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"maps"
	"slices"
	"testing"

	"github.com/cidstore/cidstore/core/port"
)

// takesDeltas skips the test unless b takes bucket deltas.
func takesDeltas(t *testing.T, b port.Backend) {
	t.Helper()
	if d, ok := b.(port.BucketDeltas); !ok || !d.BucketDeltas() {
		t.Skip("backend takes no bucket deltas")
	}
}

// deltaBucket is the test's view of one bucket: its base and the rows of
// the keys changed since (nil for a removed key), from which each
// cumulative delta is built.
type deltaBucket struct {
	id      uint32
	depth   uint8
	base    map[[port.KeySize]byte][]byte
	changed map[[port.KeySize]byte][]byte
}

// row returns an entry row for key with fresh slots.
func (g *gen) row(key [port.KeySize]byte) []byte {
	r := g.entries(1)
	copy(r, key[:])
	binary.LittleEndian.PutUint64(r[48:], uint64(crc32.Checksum(r[:48], crcTable)))
	return r
}

func newDeltaBucket(g *gen, id uint32, n int) *deltaBucket {
	d := &deltaBucket{id: id, depth: uint8(g.r.IntN(8)), base: map[[port.KeySize]byte][]byte{}}
	rows := g.entries(n)
	for i := 0; i < len(rows); i += port.EntrySize {
		d.base[[port.KeySize]byte(rows[i:])] = rows[i : i+port.EntrySize]
	}
	return d
}

// sortedRows returns rows' values sorted by key; a nil value becomes a
// removal row.
func sortedRows(rows map[[port.KeySize]byte][]byte) []byte {
	keys := slices.SortedFunc(maps.Keys(rows), func(a, b [port.KeySize]byte) int {
		if c := cmpWord(a[:8], b[:8]); c != 0 {
			return c
		}
		return cmpWord(a[8:], b[8:])
	})
	out := make([]byte, 0, len(keys)*port.EntrySize)
	for _, k := range keys {
		if r := rows[k]; r != nil {
			out = append(out, r...)
			continue
		}
		var rm [port.EntrySize]byte
		port.PutRemovalRow(rm[:], binary.LittleEndian.Uint64(k[:]), binary.LittleEndian.Uint64(k[8:]))
		out = append(out, rm[:]...)
	}
	return out
}

func cmpWord(a, b []byte) int {
	x, y := binary.LittleEndian.Uint64(a), binary.LittleEndian.Uint64(b)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// whole returns d's current content as a new base record.
func (d *deltaBucket) whole(g *gen) port.BucketRecord {
	cur := maps.Clone(d.base)
	for k, r := range d.changed {
		if r == nil {
			delete(cur, k)
		} else {
			cur[k] = r
		}
	}
	d.base, d.changed = cur, map[[port.KeySize]byte][]byte{}
	rows := sortedRows(cur)
	return port.BucketRecord{ID: d.id, LocalDepth: d.depth, SortedCount: uint32(len(rows) / port.EntrySize),
		LastCompacted: g.r.Int64N(1 << 62), Entries: rows}
}

// delta changes n random keys of d (new values, new keys, removals) and
// returns the cumulative delta since its base.
func (d *deltaBucket) delta(g *gen, n int) port.BucketRecord {
	if d.changed == nil {
		d.changed = map[[port.KeySize]byte][]byte{}
	}
	keys := slices.Collect(maps.Keys(d.base))
	for range n {
		switch op := g.r.IntN(3); {
		case op == 0 || len(keys) == 0:
			var k [port.KeySize]byte
			binary.LittleEndian.PutUint64(k[:], g.nonzero())
			binary.LittleEndian.PutUint64(k[8:], g.nonzero())
			d.changed[k] = g.row(k)
		case op == 1:
			k := keys[g.r.IntN(len(keys))]
			d.changed[k] = g.row(k)
		default:
			d.changed[keys[g.r.IntN(len(keys))]] = nil
		}
	}
	rows := sortedRows(d.changed)
	return port.BucketRecord{ID: d.id, LocalDepth: d.depth, SortedCount: uint32(len(rows) / port.EntrySize),
		LastCompacted: g.r.Int64N(1 << 62), Entries: rows, Delta: true}
}

// bucketDeltas commits buckets as bases and cumulative deltas of them,
// some streamed, with whole rewrites and frees between, and checks that
// every read returns the base with the latest delta applied, before and
// after a reopen.
func (s *suite) bucketDeltas(t *testing.T) {
	b := s.newBackend(t)
	takesDeltas(t, b.Backend)
	g := newGen(41)
	m := newModel()
	const nb = 24
	bs := make([]*deltaBucket, nb)
	cp := &port.Checkpoint{Meta: g.meta(5, 10), Directory: dirFor(5, ids(0, nb))}
	for i := range bs {
		bs[i] = newDeltaBucket(g, uint32(i), g.r.IntN(200))
		cp.Buckets = append(cp.Buckets, bs[i].whole(g))
	}
	m.commit(t, b, cp)
	m.verify(t, b.Backend)
	deltas := 0 // buckets read back with a delta, over the rounds
	for round := range 30 {
		cp := &port.Checkpoint{Meta: g.meta(5, uint64(20+round)), Directory: dirFor(5, ids(0, nb))}
		for _, d := range bs {
			if _, live := m.buckets[d.id]; !live {
				if g.r.IntN(4) == 0 { // a freed id used again: a new base
					d.base, d.changed = map[[port.KeySize]byte][]byte{}, nil
					cp.Buckets = append(cp.Buckets, d.whole(g))
				}
				continue
			}
			switch op := g.r.IntN(10); {
			case op < 5:
				cp.Buckets = append(cp.Buckets, d.delta(g, 1+g.r.IntN(6)))
			case op < 6:
				cp.Buckets = append(cp.Buckets, d.whole(g))
			case op < 7 && round%5 == 4:
				cp.FreedBuckets = append(cp.FreedBuckets, d.id)
			}
		}
		// The directory names the buckets live after the checkpoint (a
		// backend may refuse one that names a freed bucket).
		var live []uint32
		for _, d := range bs {
			_, was := m.buckets[d.id]
			freed := slices.Contains(cp.FreedBuckets, d.id)
			written := slices.ContainsFunc(cp.Buckets, func(r port.BucketRecord) bool { return r.ID == d.id })
			if (was && !freed) || written {
				live = append(live, d.id)
			}
		}
		cp.Directory = dirFor(5, live)
		if round%2 == 0 {
			m.commitAs(t, b, cp, streamed(cp, nil))
		} else {
			m.commit(t, b, cp)
		}
		m.verify(t, b.Backend)
		for _, r := range m.buckets {
			if len(r.DeltaKeys) > 0 {
				deltas++
			}
		}
		if round%10 == 9 && s.reopen != nil {
			s.reopened(t, b)
			m.folded(t, b.Backend)
			m.verify(t, b.Backend)
		}
	}
	if deltas == 0 {
		t.Fatal("no bucket read back with a delta: the test tested nothing")
	}
}

// bucketDeltaErrors: a delta of a bucket without a base, or with rows out
// of order, fails the Commit and leaves the committed state.
func (s *suite) bucketDeltaErrors(t *testing.T) {
	b := s.newBackend(t)
	takesDeltas(t, b.Backend)
	g := newGen(43)
	m := newModel()
	d := newDeltaBucket(g, 1, 50)
	cp := &port.Checkpoint{Meta: g.meta(1, 10), Directory: []uint32{1, 1}}
	cp.Buckets = append(cp.Buckets, d.whole(g))
	m.commit(t, b, cp)
	m.commit(t, b, &port.Checkpoint{Meta: g.meta(1, 11), Directory: []uint32{1, 1}, Buckets: []port.BucketRecord{d.delta(g, 5)}})
	good := d.delta(g, 3)

	orphan := newDeltaBucket(g, 2, 10).delta(g, 2)
	unsorted := d.delta(g, 4)
	unsorted.Entries = bytes.Clone(unsorted.Entries)
	n := len(unsorted.Entries)
	a, z := slices.Clone(unsorted.Entries[:port.EntrySize]), slices.Clone(unsorted.Entries[n-port.EntrySize:])
	copy(unsorted.Entries, z)
	copy(unsorted.Entries[n-port.EntrySize:], a)
	for _, c := range []struct {
		name string
		rec  port.BucketRecord
	}{{"no base", orphan}, {"unsorted", unsorted}} {
		bad := &port.Checkpoint{Meta: g.meta(1, 12), Directory: []uint32{1, 1}, Buckets: []port.BucketRecord{good, c.rec}}
		if err := b.Commit(bad); err == nil {
			t.Fatalf("%s: Commit accepted a bad delta", c.name)
		}
		m.verify(t, b.Backend)
	}
	if s.reopen != nil {
		s.reopened(t, b)
		m.folded(t, b.Backend)
		m.verify(t, b.Backend)
	}
}

// folded accepts, after a reopen, buckets whose delta the backend folded
// into their base (port.BucketRecord: memstore's snapshot file holds
// buckets merged): the same entries with no delta keys. The folded record
// becomes the model's base.
func (m *model) folded(t *testing.T, b port.Backend) {
	t.Helper()
	for id, want := range m.buckets {
		if len(want.DeltaKeys) == 0 {
			continue
		}
		got, err := b.ReadBucket(id)
		if err != nil {
			t.Fatalf("ReadBucket(%d): %v", id, err)
		}
		if len(got.DeltaKeys) == 0 && bytes.Equal(got.Entries, want.Entries) {
			want.DeltaKeys = nil
			m.buckets[id] = want
			m.bases[id] = cloneBucket(want)
		}
	}
}
