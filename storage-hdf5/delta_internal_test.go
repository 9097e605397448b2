package h5store

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cidstore/cidstore/core/port"
	"github.com/cidstore/cidstore/storage-hdf5/internal/h5"
)

// deltaStore is a writer, a Reader that follows it, and the model both
// must show.
type deltaStore struct {
	t    *testing.T
	path string
	opts Options
	s    *Store
	r    *Reader
	w    *workload
	rng  *rand.Rand
}

func newDeltaStore(t *testing.T, opts Options) *deltaStore {
	t.Helper()
	d := &deltaStore{t: t, path: filepath.Join(t.TempDir(), "d.h5"), opts: opts, w: newWorkload(11), rng: rand.New(rand.NewPCG(11, 1))}
	var err error
	if d.s, err = Open(d.path, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.r != nil {
			d.r.Close()
		}
		if d.s != nil {
			d.s.Close()
		}
	})
	return d
}

// commit seals cp, commits it and checks the writer, the Reader after a
// Refresh, and Check.
func (d *deltaStore) commit(cp *port.Checkpoint) {
	d.t.Helper()
	if err := d.s.Commit(d.w.seal(cp)); err != nil {
		d.t.Fatal(err)
	}
	d.verify()
}

func (d *deltaStore) verify() {
	d.t.Helper()
	if err := verifyState(d.s, d.w); err != nil {
		d.t.Fatalf("writer: %v", err)
	}
	if err := d.s.Check(); err != nil {
		d.t.Fatalf("check: %v", err)
	}
	if d.r == nil {
		var err error
		if d.r, err = OpenReader(d.path, ReaderOptions{}); err != nil {
			d.t.Fatal(err)
		}
	} else if _, err := d.r.Refresh(); err != nil {
		d.t.Fatal(err)
	}
	if err := verifyState(d.r, d.w); err != nil {
		d.t.Fatalf("reader: %v", err)
	}
}

func (d *deltaStore) reopen() {
	d.t.Helper()
	mustClose(d.t, d.s)
	var err error
	if d.s, err = Open(d.path, d.opts); err != nil {
		d.t.Fatal(err)
	}
	d.verify()
}

// base makes bucket id a new sorted base of at least min entries in the
// model and returns its record.
func (d *deltaStore) base(id uint32, min int) port.BucketRecord {
	for {
		b := d.w.sortedBucket(d.rng, id, 2*min)
		if b.EntryCount() >= min {
			d.w.setWhole(b, true)
			d.w.nextB = max(d.w.nextB, id+1)
			return b
		}
	}
}

// row returns a new row for key (the key of an existing row, or a new one
// when key is nil).
func (d *deltaStore) row(key []byte) []byte {
	r := make([]byte, port.EntrySize)
	fillRandom(d.rng, r)
	if key != nil {
		copy(r, key[:port.KeySize])
	}
	return r
}

func (d *deltaStore) change(id uint32, row []byte) {
	d.w.bases[id].changes()[[port.KeySize]byte(row)] = row
}

func (d *deltaStore) remove(id uint32, key []byte) {
	d.w.bases[id].changes()[[port.KeySize]byte(key)] = nil
}

func (b *deltaBase) changes() map[[port.KeySize]byte][]byte {
	if b.changed == nil {
		b.changed = map[[port.KeySize]byte][]byte{}
	}
	return b.changed
}

// deltaOf returns bucket id's cumulative delta record (the model updated).
func (d *deltaStore) deltaOf(id uint32) port.BucketRecord {
	return d.w.deltaRecord(id, uint8(d.rng.IntN(20)), d.rng.Int64N(1<<60))
}

func (d *deltaStore) deltas() int { return d.s.st.tabs[kindBucketDelta].live }

func hasKey(rows, key []byte) bool {
	for o := 0; o < len(rows); o += port.EntrySize {
		if bytes.Equal(rows[o:o+port.KeySize], key[:port.KeySize]) {
			return true
		}
	}
	return false
}

// TestBucketDeltaRoundTrip commits bases, cumulative deltas (changed,
// added and removed keys), a smaller delta replacing a larger one, whole
// rewrites and frees, checking the writer, an SWMR Reader following it
// and a reopened writer after every step.
func TestBucketDeltaRoundTrip(t *testing.T) {
	d := newDeltaStore(t, workloadOptions())
	cp := &port.Checkpoint{}
	for id := range uint32(8) {
		cp.Buckets = append(cp.Buckets, d.base(id, 4))
	}
	d.commit(cp)

	// A delta changes one key, removes one and adds one.
	base1 := bytes.Clone(d.w.bases[1].rows)
	changed := d.row(base1[0:])
	added := d.row(nil)
	d.change(1, changed)
	d.remove(1, base1[port.EntrySize:])
	d.change(1, added)
	d.change(2, d.row(nil))
	d.change(3, d.row(d.w.bases[3].rows[2*port.EntrySize:]))
	d.commit(&port.Checkpoint{Buckets: []port.BucketRecord{d.deltaOf(1), d.deltaOf(2), d.deltaOf(3)}})
	got, err := d.s.ReadBucket(1)
	if err != nil {
		t.Fatal(err)
	}
	n := len(base1) / port.EntrySize
	if got.EntryCount() != n || int(got.SortedCount) != n || len(got.DeltaKeys) != 3*port.KeySize ||
		!hasKey(got.Entries, changed) || !hasKey(got.Entries, added) || hasKey(got.Entries, base1[port.EntrySize:]) {
		t.Fatalf("bucket 1 with a delta: %d entries (sorted %d), %d delta keys; want %d, 3", got.EntryCount(), got.SortedCount, len(got.DeltaKeys)/port.KeySize, n)
	}
	if d.deltas() != 3 {
		t.Fatalf("%d deltas live, want 3", d.deltas())
	}

	// The next delta of 1 is cumulative and replaces the first: it also
	// removes the key the first added (a removal of a key the base lacks).
	d.remove(1, added)
	d.commit(&port.Checkpoint{Buckets: []port.BucketRecord{d.deltaOf(1)}})
	if got, _ := d.s.ReadBucket(1); got.EntryCount() != n-1 || len(got.DeltaKeys) != 3*port.KeySize || hasKey(got.Entries, added) {
		t.Fatalf("bucket 1 after its second delta: %d entries, %d delta keys", got.EntryCount(), len(got.DeltaKeys)/port.KeySize)
	}
	// A delta replaces the previous one whatever it holds: a smaller one
	// leaves only its own changes on the base.
	d.w.bases[3].changed = nil
	d.change(3, d.row(nil))
	d.commit(&port.Checkpoint{Buckets: []port.BucketRecord{d.deltaOf(3)}})
	if got, _ := d.s.ReadBucket(3); len(got.DeltaKeys) != port.KeySize || got.EntryCount() != len(d.w.bases[3].rows)/port.EntrySize+1 {
		t.Fatalf("bucket 3 after a smaller delta: %d entries, %d delta keys", got.EntryCount(), len(got.DeltaKeys)/port.KeySize)
	}
	d.reopen()

	// A whole record drops the delta; a freed bucket loses both.
	whole := d.w.buckets[1]
	whole.Entries, whole.DeltaKeys = bytes.Clone(whole.Entries), nil
	d.w.setWhole(whole, true)
	delete(d.w.buckets, 2)
	delete(d.w.bases, 2)
	d.commit(&port.Checkpoint{Buckets: []port.BucketRecord{whole}, FreedBuckets: []uint32{2}})
	if got, _ := d.s.ReadBucket(1); got.DeltaKeys != nil {
		t.Fatalf("bucket 1 written whole still has %d delta keys", len(got.DeltaKeys)/port.KeySize)
	}
	if _, err := d.s.ReadBucket(2); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("freed bucket 2: %v", err)
	}
	if _, ok, _ := d.s.st.tabs[kindBucketDelta].get(2); ok {
		t.Fatal("freed bucket 2 kept its delta")
	}
	if d.deltas() != 1 {
		t.Fatalf("%d deltas live, want 1", d.deltas())
	}

	// In one checkpoint: a whole base then its delta (the delta applies to
	// the new base); a delta then a whole record (the whole one wins); a
	// delta of a bucket the checkpoint creates.
	b4 := d.base(4, 4)
	d.change(4, d.row(nil))
	d4 := d.deltaOf(4)
	d.change(5, d.row(nil))
	d5 := d.deltaOf(5)
	b5 := d.base(5, 4)
	b9 := d.base(9, 2)
	d.remove(9, b9.Entries)
	d9 := d.deltaOf(9)
	d.commit(&port.Checkpoint{Buckets: []port.BucketRecord{b4, d4, d5, b5, b9, d9}})
	if got, _ := d.s.ReadBucket(5); got.DeltaKeys != nil {
		t.Fatal("bucket 5: the delta before its whole record survived")
	}
	if d.deltas() != 3 {
		t.Fatalf("%d deltas live, want 3 (buckets 3, 4 and 9)", d.deltas())
	}
	// Streamed records take the same path.
	d.change(6, d.row(nil))
	d.change(7, d.row(d.w.bases[7].rows))
	streamedRecs := []port.BucketRecord{d.deltaOf(6), d.deltaOf(7)}
	d.commit(&port.Checkpoint{Stream: func(bucket func(*port.BucketRecord) error, _ func(*port.ValueSetRecord) error) error {
		for i := range streamedRecs {
			if err := bucket(&streamedRecs[i]); err != nil {
				return err
			}
		}
		return nil
	}})
	d.reopen()
	if ids, _ := d.s.BucketIDs(); !slices.Equal(ids, []uint32{0, 1, 3, 4, 5, 6, 7, 9}) {
		t.Fatalf("BucketIDs = %v", ids)
	}
	if st := d.s.Stats(); st.IndexExtents < 3 || st.FormatBackup != "" {
		t.Fatalf("stats: %d index extents, backup %q", st.IndexExtents, st.FormatBackup)
	}
	// A full checkpoint replaces everything: whole buckets, no deltas.
	full := &port.Checkpoint{Full: true}
	for _, id := range d.w.liveBuckets() {
		b := d.w.buckets[id]
		b.Entries, b.DeltaKeys = bytes.Clone(b.Entries), nil
		d.w.setWhole(b, true)
		full.Buckets = append(full.Buckets, b)
	}
	d.commit(full)
	if d.deltas() != 0 {
		t.Fatalf("%d deltas live after a full checkpoint", d.deltas())
	}
	d.reopen()
}

// A delta of a bucket without a base (never committed, freed by the same
// checkpoint) or with rows out of key order fails the Commit and leaves
// the committed state and the Store as they were.
func TestBucketDeltaErrors(t *testing.T) {
	d := newDeltaStore(t, workloadOptions())
	cp := &port.Checkpoint{}
	for id := range uint32(4) {
		cp.Buckets = append(cp.Buckets, d.base(id, 4))
	}
	d.commit(cp)
	d.change(1, d.row(nil))
	d.commit(&port.Checkpoint{Buckets: []port.BucketRecord{d.deltaOf(1)}})

	bad := func(name string, cp *port.Checkpoint) {
		t.Helper()
		gen := d.s.st.root.gen
		w := d.w
		d.w = w.clone()
		err := d.s.Commit(d.w.seal(cp))
		d.w = w
		if err == nil {
			t.Fatalf("%s: Commit accepted it", name)
		}
		t.Logf("%s: %v", name, err)
		if d.s.st.root.gen != gen {
			t.Fatalf("%s: generation moved", name)
		}
		d.verify()
	}
	orphan := &deltaBase{rows: nil, changed: map[[port.KeySize]byte][]byte{}}
	r := d.row(nil)
	orphan.changed[[port.KeySize]byte(r)] = r
	other := d.w.clone()
	other.bases[1].changes()[[port.KeySize]byte(r)] = r
	good := other.deltaRecord(1, 3, 4)
	noBase := port.BucketRecord{ID: 42, SortedCount: 1, Entries: rowsOf(orphan.changed), Delta: true}
	bad("no base", &port.Checkpoint{Buckets: []port.BucketRecord{good, noBase}})
	bad("no base, streamed", &port.Checkpoint{Buckets: []port.BucketRecord{good}, Stream: func(bucket func(*port.BucketRecord) error, _ func(*port.ValueSetRecord) error) error {
		return bucket(&noBase)
	}})
	freed := good
	freed.ID = 2
	bad("freed by the same checkpoint", &port.Checkpoint{FreedBuckets: []uint32{2}, Buckets: []port.BucketRecord{freed}})
	two := other.clone()
	for range 3 {
		r := d.row(nil)
		two.bases[1].changes()[[port.KeySize]byte(r)] = r
	}
	unsorted := two.deltaRecord(1, 3, 4)
	e := unsorted.Entries
	tmp := bytes.Clone(e[:port.EntrySize])
	copy(e, e[len(e)-port.EntrySize:])
	copy(e[len(e)-port.EntrySize:], tmp)
	bad("unsorted", &port.Checkpoint{Buckets: []port.BucketRecord{unsorted}})

	// The Store goes on: a good delta commits, the bad ones left nothing.
	d.change(1, d.row(nil))
	d.commit(&port.Checkpoint{Buckets: []port.BucketRecord{d.deltaOf(1)}})
	if d.deltas() != 1 {
		t.Fatalf("%d deltas live, want 1", d.deltas())
	}
	d.reopen()
}

// TestCorruptDeltaNamesBucket flips a byte of a committed delta's rows: a
// read of its bucket reports corruption naming the bucket, from the
// writer, Check and a Reader; other buckets read fine. A delta that does
// not apply to its base (Commit does not read the base) is corruption too.
func TestCorruptDeltaNamesBucket(t *testing.T) {
	s, w, path := commitN(t, 30, workloadOptions())
	var victim uint32
	var l loc
	for _, id := range w.liveBuckets() {
		dl, ok, err := s.st.tabs[kindBucketDelta].get(uint64(id))
		if err != nil {
			t.Fatal(err)
		}
		if ok && dl.live() && dl.count > 1 {
			victim, l = id, dl
			break
		}
	}
	if l.count == 0 {
		t.Fatal("the workload made no delta of two rows")
	}
	f, off, err := s.st.pools[poolRows].locate(l.ref, l.count)
	if err != nil {
		t.Fatal(err)
	}
	file := f.Name()
	mustClose(t, s)
	flip(t, file, off+port.EntrySize+20) // a slot of the delta's second row

	name := "bucket " + strconv.FormatUint(uint64(victim), 10) + ":"
	s, err = Open(path, workloadOptions())
	if err != nil {
		t.Fatalf("open with a corrupt delta: %v", err)
	}
	defer mustClose(t, s)
	r, err := OpenReader(path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, r)
	for _, b := range []port.Loader{s, r} {
		_, err = b.ReadBucket(victim)
		if !errors.Is(err, port.ErrCorrupt) || errors.Is(err, ErrStale) || !strings.Contains(err.Error(), name) {
			t.Fatalf("ReadBucket(%d) with a flipped delta row: %v, want ErrCorrupt naming %q", victim, err, name)
		}
	}
	t.Logf("corrupt delta: %v", err)
	if err := s.Check(); !errors.Is(err, port.ErrCorrupt) || !strings.Contains(err.Error(), name) {
		t.Fatalf("Check: %v", err)
	}
	for _, id := range w.liveBuckets() {
		if _, err := s.ReadBucket(id); id != victim && err != nil {
			t.Fatalf("bucket %d next to the corrupt one: %v", id, err)
		}
	}

	// A base that is not sorted: the delta commits, its reads fail.
	id := w.nextB
	rng := rand.New(rand.NewPCG(3, 3))
	var base port.BucketRecord
	for {
		base = w.bucket(rng, id, 16)
		if e := base.Entries; len(e) >= 2*port.EntrySize && keyCmp(e, e[port.EntrySize:]) > 0 {
			break
		}
	}
	w.nextB++
	w.setWhole(base, false)
	cp := w.seal(&port.Checkpoint{Buckets: []port.BucketRecord{base}})
	if err := s.Commit(cp); err != nil {
		t.Fatal(err)
	}
	row := make([]byte, port.EntrySize)
	fillRandom(rng, row)
	cp = w.seal(&port.Checkpoint{Buckets: []port.BucketRecord{{ID: id, SortedCount: 1, Entries: row, Delta: true}}})
	if err := s.Commit(cp); err != nil {
		t.Fatal(err)
	}
	_, err = s.ReadBucket(id)
	name = "bucket " + strconv.FormatUint(uint64(id), 10) + ":"
	if !errors.Is(err, port.ErrCorrupt) || !errors.Is(err, port.ErrBadDelta) || !strings.Contains(err.Error(), name) {
		t.Fatalf("ReadBucket of a delta on an unsorted base: %v", err)
	}
	t.Logf("delta on an unsorted base: %v", err)
}

// TestDeltaReuseDelay replaces every bucket's delta commit after commit
// while a Reader stays at an older generation: within the reuse delay it
// reads every bucket of its generation exactly; beyond it (and always with
// no delay) a read returns its generation's bucket or ErrStale, never
// other rows.
func TestDeltaReuseDelay(t *testing.T) {
	for _, delay := range []int{0, -1} {
		t.Run("delay="+strconv.Itoa(delay), func(t *testing.T) {
			d := newDeltaStore(t, Options{SegmentBytes: minSegmentBytes, ReuseDelayCommits: delay})
			cp := &port.Checkpoint{}
			for id := range uint32(24) {
				cp.Buckets = append(cp.Buckets, d.base(id, 8))
			}
			d.commit(cp)
			next := func() *port.Checkpoint {
				cp := &port.Checkpoint{}
				for _, id := range d.w.liveBuckets() {
					// The same number of rows each time: a later delta of
					// the same bucket fits where an earlier one was.
					b := d.w.bases[id]
					b.changed = nil
					for i := range 3 {
						d.change(id, d.row(b.rows[i*port.EntrySize:]))
					}
					cp.Buckets = append(cp.Buckets, d.deltaOf(id))
				}
				return cp
			}
			d.commit(next())
			r, err := OpenReader(d.path, ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer mustClose(t, r)
			at := d.w.clone()
			// Commits after r's generation that cannot reuse its space: the
			// first frees it, ReuseDelayCommits more pass before it is
			// released.
			safe := d.s.opts.ReuseDelayCommits + 1
			stale := 0
			for i := 1; i <= 8; i++ {
				d.commit(next())
				for _, id := range at.liveBuckets() {
					got, err := r.ReadBucket(id)
					want := at.buckets[id]
					switch {
					case errors.Is(err, ErrStale) && i > safe:
						stale++
					case err != nil:
						t.Fatalf("%d commits behind, ReadBucket(%d): %v", i, id, err)
					case !bytes.Equal(got.Entries, want.Entries) || !bytes.Equal(got.DeltaKeys, want.DeltaKeys) || got.LocalDepth != want.LocalDepth:
						t.Fatalf("%d commits behind, ReadBucket(%d) returned rows that are not its generation's", i, id)
					}
				}
			}
			if delay < 0 && stale == 0 {
				t.Fatal("no read noticed that the writer reused the space")
			}
			if _, err := r.Refresh(); err != nil {
				t.Fatal(err)
			}
			if err := verifyState(r, d.w); err != nil {
				t.Fatal(err)
			}
			t.Logf("reuse delay %d: %d stale reads of %d", d.s.opts.ReuseDelayCommits, stale, 8*len(at.buckets))
		})
	}
}

// downgrade turns the commit records of the closed store at path into
// format version v (v < 3: no bucket delta index), as a build of that
// version would have written them, and its /config version attributes.
func downgrade(t *testing.T, path string, v uint32) {
	t.Helper()
	h, err := h5.Open(path, h5.ReadWrite, h5config(defaultCacheBytes))
	if err != nil {
		t.Fatal(err)
	}
	cds, err := h.OpenDataset("/commit")
	if err == nil {
		err = h.SetAttrs("/config", []h5.Attr{{Name: "format_version", Value: v},
			{Name: "version_string", Value: "cidstore h5store layout " + strconv.Itoa(int(v))}})
	}
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, f)
	for slot := range 2 {
		b := make([]byte, commitSize)
		o := cds.Offset + int64(slot)*commitSize
		if _, err := f.ReadAt(b, o); err != nil {
			t.Fatal(err)
		}
		if le.Uint64(b) != commitMagic {
			continue
		}
		if n := le.Uint32(b[coBucketDeltaDeltaN:]); n > 0 || getExtent(b[coBucketDeltaSnap:]).count > 0 {
			t.Fatalf("slot %d has a bucket delta index: not a history a format %d store can hold", slot, v)
		}
		le.PutUint32(b[coFormat:], v)
		clear(b[coBucketDeltaDeltaN : coBucketDeltaDeltas+maxDeltas*recExtent.Size])
		le.PutUint32(b[coChecksum:], crc32c(b[:coChecksum]))
		if _, err := f.WriteAt(b, o); err != nil {
			t.Fatal(err)
		}
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// TestFormatVersion2Upgrade opens a format 2 store (with segment files):
// Open backs it up into <path>.format2-backup before anything is written,
// the data survive, the next commit writes format 3 and deltas; the
// backup opens (format 2) with the old state; an existing backup is kept.
// Compact backs a format 2 store up too.
func TestFormatVersion2Upgrade(t *testing.T) {
	w := newWorkload(5)
	w.noDeltas = true
	s, w, path := commitWorkload(t, 40, workloadOptions(), w)
	mustClose(t, s)
	segs, err := segmentFiles(path)
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment files (%v): the backup would not copy any", err)
	}
	downgrade(t, path, 2)
	old := w.clone()
	backup := path + ".format2-backup"
	if _, err := os.Stat(backup); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("backup before Open: %v", err)
	}

	// Open without committing: the backup is made; a second Open keeps it.
	s, err = Open(path, workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().FormatBackup; got != backup {
		t.Fatalf("Stats.FormatBackup = %q, want %q", got, backup)
	}
	if err := verifyState(s, w); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	marker := filepath.Join(backup, "marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{path}, segs...) {
		if _, err := os.Stat(filepath.Join(backup, filepath.Base(f))); err != nil {
			t.Fatalf("backup lacks %s: %v", filepath.Base(f), err)
		}
	}
	if _, err := os.Stat(backup + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("backup's temporary directory left: %v", err)
	}

	s, err = Open(path, workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().FormatBackup; got != backup {
		t.Fatalf("second Open: Stats.FormatBackup = %q, want %q", got, backup)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("second Open replaced the backup: %v", err)
	}
	w.noDeltas = false
	for range 20 {
		if err := s.Commit(w.next()); err != nil {
			t.Fatal(err)
		}
	}
	if err := verifyState(s, w); err != nil {
		t.Fatal(err)
	}
	if s.st.tabs[kindBucketDelta].live == 0 {
		t.Fatal("no bucket delta after the upgrade")
	}
	mustClose(t, s)
	s, err = Open(path, workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	if s.st.root.format != FormatVersion || s.Stats().FormatBackup != "" {
		t.Fatalf("after commits: format %d, backup %q", s.st.root.format, s.Stats().FormatBackup)
	}
	if err := verifyState(s, w); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)

	// The backup is the format 2 store as it was.
	r, err := OpenReader(filepath.Join(backup, filepath.Base(path)), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.st.root.format != 2 {
		t.Fatalf("backup has format %d", r.st.root.format)
	}
	if err := verifyState(r, old); err != nil {
		t.Fatalf("backup: %v", err)
	}
	if err := checkState(r.st); err != nil {
		t.Fatal(err)
	}
	mustClose(t, r)

	// Compact of a format 2 store backs it up first.
	w2 := newWorkload(6)
	w2.noDeltas = true
	s, w2, path2 := commitWorkload(t, 30, workloadOptions(), w2)
	mustClose(t, s)
	downgrade(t, path2, 2)
	if err := Compact(path2, workloadOptions(), nil); err != nil {
		t.Fatal(err)
	}
	r, err = OpenReader(filepath.Join(path2+".format2-backup", filepath.Base(path2)), ReaderOptions{})
	if err != nil {
		t.Fatalf("backup made by Compact: %v", err)
	}
	if err := verifyState(r, w2); err != nil {
		t.Fatalf("backup made by Compact: %v", err)
	}
	mustClose(t, r)
	w2.dels = nil
	s, err = Open(path2, workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	if s.st.root.format != FormatVersion || s.Stats().FormatBackup != "" {
		t.Fatalf("compacted: format %d, backup %q", s.st.root.format, s.Stats().FormatBackup)
	}
	if err := verifyState(s, w2); err != nil {
		t.Fatal(err)
	}
}

// TestDeltaSamePlace commits delta after delta of one bucket, with no
// reuse delay, until one lands on the rows of the delta a Reader's
// generation has, with as many rows: the Reader's checksum of them must
// fail, ErrStale, not pass the later delta as its own.
func TestDeltaSamePlace(t *testing.T) {
	d := newDeltaStore(t, Options{SegmentBytes: minSegmentBytes, ReuseDelayCommits: -1, NoSync: true})
	d.commit(&port.Checkpoint{Buckets: []port.BucketRecord{d.base(0, 16)}})
	next := func() *port.Checkpoint {
		b := d.w.bases[0]
		b.changed = nil
		d.change(0, d.row(b.rows))
		return d.w.seal(&port.Checkpoint{Buckets: []port.BucketRecord{d.deltaOf(0)}})
	}
	if err := d.s.Commit(next()); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(d.path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, r)
	mine, _, _ := r.st.tabs[kindBucketDelta].get(0)
	want := d.w.buckets[0]
	for i := range 2000 {
		if err := d.s.Commit(next()); err != nil {
			t.Fatal(err)
		}
		l, _, err := d.s.st.tabs[kindBucketDelta].get(0)
		if err != nil {
			t.Fatal(err)
		}
		if l.ref != mine.ref {
			continue
		}
		got, err := r.ReadBucket(0)
		if !errors.Is(err, ErrStale) {
			t.Fatalf("after %d commits the writer's delta is where the Reader's was: ReadBucket = %v (same rows: %v), want ErrStale",
				i+1, err, bytes.Equal(got.Entries, want.Entries))
		}
		t.Logf("after %d commits: %v", i+1, err)
		return
	}
	t.Fatal("no delta landed where the Reader's was")
}
