package cidstore

import (
	"context"
	"testing"

	"github.com/cidstore/cidstore/core/port"
)

// The delta projection (Stats.CheckpointDeltaBytes) counts one entry per
// mutation since a bucket's last capture, the whole bucket when it has no
// base, and folds back to a whole write when the deltas since the last
// one would pass half the bucket.
func TestCheckpointDeltaProjection(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{BucketCapacity: 1024, WALPath: t.TempDir() + "/wal", CheckpointInterval: -1})
	defer s.Close()
	if n := s.Stats().Buckets; n != 1 {
		t.Fatalf("a new store has %d buckets, want 1", n)
	}
	var last Stats
	step := func(what string, wantWhole, wantDelta int64) {
		t.Helper()
		if err := s.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		st := s.Stats()
		whole := st.CheckpointBucketBytes - last.CheckpointBucketBytes
		delta := st.CheckpointDeltaBytes - last.CheckpointDeltaBytes
		if whole != wantWhole*port.EntrySize || delta != wantDelta*port.EntrySize {
			t.Fatalf("%s: whole %d entries, delta %d; want %d and %d", what, whole/port.EntrySize, delta/port.EntrySize, wantWhole, wantDelta)
		}
		last = st
	}
	for i := uint64(1); i <= 100; i++ {
		mustInsert(t, s, e(i), e(1000+i))
	}
	// 100 changes to a bucket of 100 entries: past half, so whole.
	step("first data checkpoint", 100, 100)
	mustInsert(t, s, e(101), e(1101))
	step("one new key", 101, 1)
	mustInsert(t, s, e(5), e(2005)) // a second inline value
	mustInsert(t, s, e(6), e(2006))
	step("two second values", 101, 2)
	// Half of 101 entries is 50.5: the deltas so far are 3 entries, so 47
	// more single-entry checkpoints stay deltas and the 48th folds.
	for i := uint64(0); i < 47; i++ {
		mustInsert(t, s, e(10+i), e(3000+i))
		step("one more second value", 101, 1)
	}
	mustInsert(t, s, e(60), e(4000))
	step("the fold", 101, 101)
	mustInsert(t, s, e(61), e(4001))
	step("a delta after the fold", 101, 1)
	if err := s.Checkpoint(ctx); err != nil { // nothing changed: nothing counted
		t.Fatal(err)
	}
	if st := s.Stats(); st.CheckpointBucketBytes != last.CheckpointBucketBytes || st.CheckpointDeltaBytes != last.CheckpointDeltaBytes {
		t.Fatalf("an idle checkpoint counted %d whole and %d delta bytes", st.CheckpointBucketBytes-last.CheckpointBucketBytes, st.CheckpointDeltaBytes-last.CheckpointDeltaBytes)
	}
	// Value sets are counted whole: a third value promotes e(1)'s.
	mustInsert(t, s, e(1), e(5001))
	mustInsert(t, s, e(1), e(5002))
	step("promotion", 101, 2)
	if got := s.Stats().CheckpointSetBytes; got != 3*port.ValueSize {
		t.Fatalf("set bytes %d, want %d", got, 3*port.ValueSize)
	}
}

// A split leaves both buckets without a base to be a delta of.
func TestCheckpointDeltaProjectionSplit(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{BucketCapacity: 64, WALPath: t.TempDir() + "/wal", CheckpointInterval: -1})
	defer s.Close()
	// A full bucket, then the few inserts that split it: few changes for
	// the half that stays, which only the split makes whole.
	for i := uint64(1); i <= 60; i++ {
		mustInsert(t, s, e(i), e(100+i))
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	last := s.Stats()
	for i := uint64(61); s.Stats().Splits == last.Splits; i++ {
		mustInsert(t, s, e(i), e(100+i))
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	whole := st.CheckpointBucketBytes - last.CheckpointBucketBytes
	delta := st.CheckpointDeltaBytes - last.CheckpointDeltaBytes
	if want := int64(st.Keys) * port.EntrySize; whole != want || delta != whole {
		t.Fatalf("after a split: whole %d, delta %d; want both %d", whole, delta, want)
	}
}
