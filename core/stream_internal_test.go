package cidstore

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/cidstore/cidstore/core/port"
)

// streamBackend runs a checkpoint's stream itself: it can fail the stream
// after failAfter records (-1: never) and call during after the first
// record, while the stream is half done.
type streamBackend struct {
	*testBackend
	failAfter int
	during    func()
	records   int // records the last Commit received
}

var errStreamBoom = errors.New("backend failed mid-stream")

func (b *streamBackend) Commit(cp *port.Checkpoint) error {
	b.records = 0
	if cp.Stream != nil {
		stream := cp.Stream
		cp.Stream = nil
		step := func() error {
			b.records++
			if b.records == 1 && b.during != nil {
				b.during()
			}
			if b.failAfter >= 0 && b.records > b.failAfter {
				return errStreamBoom
			}
			return nil
		}
		err := stream(func(r *port.BucketRecord) error {
			if err := step(); err != nil {
				return err
			}
			c := *r
			c.Entries = slices.Clone(r.Entries)
			cp.Buckets = append(cp.Buckets, c)
			return nil
		}, func(r *port.ValueSetRecord) error {
			if err := step(); err != nil {
				return err
			}
			c := *r
			c.Values, c.Tombstones = slices.Clone(r.Values), slices.Clone(r.Tombstones)
			cp.ValueSets = append(cp.ValueSets, c)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return b.testBackend.Commit(cp)
}

// snapshot copies the committed data, to open a store on it later.
func (b *testBackend) snapshot() *testBackend {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	d := &testData{has: b.d.has, meta: b.d.meta, dir: slices.Clone(b.d.dir),
		buckets: maps.Clone(b.d.buckets), sets: maps.Clone(b.d.sets), deltas: maps.Clone(b.d.deltas)}
	return &testBackend{d: d}
}

// moreValues adds values to every third key of want, spread over all
// buckets, so that a writer touches many frozen buckets and sets.
func moreValues(t *testing.T, s *Store, want map[E][]E, tag uint64) {
	t.Helper()
	var batch []Pair
	for k := range want {
		if k.Low%3 == tag%3 {
			v := E{High: 1<<40 + tag, Low: k.Low} // never one of cacheModel's values
			batch = append(batch, Pair{k, v})
			want[k] = append(want[k], v)
		}
	}
	if err := s.InsertBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

// checkSets is checkModel for values added out of order: it compares sets.
func checkSets(t *testing.T, s *Store, want map[E][]E) {
	t.Helper()
	cmp := func(x, y E) int { return x.Compare(y) }
	for k, vals := range want {
		got, err := s.Get(context.Background(), k)
		if err != nil {
			t.Fatalf("get %v: %v", k, err)
		}
		slices.SortFunc(got, cmp)
		w := slices.SortedFunc(slices.Values(vals), cmp)
		if !slices.Equal(got, w) {
			t.Fatalf("get %v: %v, want %v", k, got, w)
		}
	}
}

func cloneModel(m map[E][]E) map[E][]E {
	out := make(map[E][]E, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

func openStream(t *testing.T, b port.Backend) *Store {
	t.Helper()
	s, err := Open(b, Options{BucketCapacity: 16, HashSeed: 7, MaintenanceInterval: -1, CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A checkpoint commits the state as of its freeze, even when the writer
// changes frozen buckets and value sets while the backend pulls the
// stream (the writer's copies are handed over too); the changes go into
// the next checkpoint.
func TestStreamWithWriter(t *testing.T) {
	ctx := context.Background()
	b := &streamBackend{testBackend: newTestBackend(), failAfter: -1}
	s := openStream(t, b)
	want := cacheModel(t, s, 3000, 4, 21)
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// What freeze counted for the writer's pacing (walDelay) is what the
	// stream encoded.
	progress := func() {
		t.Helper()
		if c := s.capt; c.todo <= 0 || c.bytes.Load() != c.todo {
			t.Fatalf("checkpoint encoded %d bytes, freeze counted %d", c.bytes.Load(), c.todo)
		}
	}
	progress()
	moreValues(t, s, want, 1) // dirty again, then frozen by the next checkpoint
	cut := cloneModel(want)
	b.during = func() {
		b.during = nil
		moreValues(t, s, want, 2) // the writer runs while the stream is half done
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if b.records < 100 {
		t.Fatalf("the checkpoint streamed %d records; the test needs many", b.records)
	}
	progress() // the writer's copies count too
	snap := b.snapshot()
	checkSets(t, s, want)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // checkpoints the writer's changes
		t.Fatal(err)
	}
	atCut := openStream(t, snap)
	checkSets(t, atCut, cut)
	if err := atCut.Validate(); err != nil {
		t.Fatal(err)
	}
	s2 := openStream(t, &streamBackend{testBackend: b.reopen(), failAfter: -1})
	checkSets(t, s2, want)
	if err := s2.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A backend that fails in the middle of the stream leaves the previous
// checkpoint; what the failed one carried, including the buckets and sets
// the stream never reached (still frozen) and the copies the writer made,
// goes into the next, and nothing is lost.
func TestStreamFailureRequeues(t *testing.T) {
	ctx := context.Background()
	b := &streamBackend{testBackend: newTestBackend(), failAfter: -1}
	s := openStream(t, b)
	want := cacheModel(t, s, 3000, 4, 22)
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	committed := cloneModel(want)
	moreValues(t, s, want, 1)
	b.failAfter = 50
	b.during = func() {
		b.during = nil
		moreValues(t, s, want, 2)
	}
	if err := s.Checkpoint(ctx); !errors.Is(err, errStreamBoom) {
		t.Fatalf("checkpoint with a failing stream: err = %v", err)
	}
	atFail := openStream(t, b.snapshot())
	checkSets(t, atFail, committed)
	// Nothing is frozen any more: the writer changes everything again.
	moreValues(t, s, want, 3)
	b.failAfter = -1
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	checkSets(t, s, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStream(t, &streamBackend{testBackend: b.reopen(), failAfter: -1})
	checkSets(t, s2, want)
	if err := s2.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A backend that commits without running the stream would drop what it
// carried: the checkpoint reports an error and requeues it.
func TestStreamNotRun(t *testing.T) {
	ctx := context.Background()
	b := &lazyBackend{testBackend: newTestBackend()}
	s := openStream(t, b)
	want := cacheModel(t, s, 200, 3, 23)
	b.skip = true
	if err := s.Checkpoint(ctx); err == nil {
		t.Fatal("checkpoint on a backend that ignored the stream: err = nil")
	}
	b.skip = false
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStream(t, b.reopen())
	checkSets(t, s2, want)
}

// lazyBackend commits without running the stream while skip is set.
type lazyBackend struct {
	*testBackend
	skip bool
}

func (b *lazyBackend) Commit(cp *port.Checkpoint) error {
	if b.skip {
		cp.Stream = nil
	}
	return b.testBackend.Commit(cp)
}
