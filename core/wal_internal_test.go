package cidstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// abandon stops s the way a crash would: no final checkpoint, the WAL left
// with its un-checkpointed records.
func (s *Store) abandon() {
	s.closed.Store(true)
	close(s.stop)
	s.bg.Wait()
	if s.wal != nil {
		s.wal.log.Close()
	}
	s.backend.Close()
}

func TestWALReplayAfterCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := newTestBackend()
	opts := Options{WALPath: filepath.Join(dir, "wal"), WALSizeBytes: 1 << 20, CheckpointInterval: -1}
	s := openTest(t, b, opts)
	for i := uint64(1); i <= 50; i++ {
		if err := s.InsertBatch(ctx, []Pair{{e(i), e(100 + i)}, {e(i), e(200 + i)}, {e(i), e(300 + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Checkpoint(ctx); err != nil { // half the history in the checkpoint
		t.Fatal(err)
	}
	for i := uint64(1); i <= 50; i += 2 {
		if err := s.Delete(ctx, e(i)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteValue(ctx, e(i+1), e(101+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Insert(ctx, e(1000), e(1)); err != nil {
		t.Fatal(err)
	}
	s.abandon()

	s2 := openTest(t, b.reopen(), opts)
	defer s2.Close()
	if err := s2.Validate(); err != nil {
		t.Fatal(err)
	}
	if st := s2.Stats(); st.RecoveredRecords != 51 {
		t.Fatalf("recovered %d records, want 51", st.RecoveredRecords)
	}
	for i := uint64(1); i <= 50; i++ {
		var want []E
		switch {
		case i%2 == 1:
		default:
			want = []E{e(200 + i), e(300 + i)}
		}
		slices.SortFunc(want, E.Compare)
		mustGet(t, s2, e(i), want...)
	}
	mustGet(t, s2, e(1000), e(1))
}

func TestWALBackpressureCheckpoints(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := newTestBackend()
	// A 64 KiB WAL holds 960 records: 100 batches of 102 records must wrap
	// it many times, each time forcing a checkpoint.
	opts := Options{WALPath: filepath.Join(dir, "wal"), WALSizeBytes: 64 << 10, CheckpointInterval: -1, Sync: SyncNone}
	s := openTest(t, b, opts)
	for i := uint64(0); i < 100; i++ {
		batch := make([]Pair, 100)
		for j := range batch {
			batch[j] = Pair{e(i*100 + uint64(j) + 1), e(7)}
		}
		if err := s.InsertBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Checkpoints < 5 {
		t.Fatalf("only %d checkpoints for 10 WAL laps", st.Checkpoints)
	}
	if st.LastLSN < 10_000 {
		t.Fatalf("last LSN %d", st.LastLSN)
	}
	s.abandon()
	s2 := openTest(t, b.reopen(), opts)
	defer s2.Close()
	if got := s2.Stats().Keys; got != 10_000 {
		t.Fatalf("%d keys after reopen, want 10000", got)
	}
	huge := make([]Pair, 2000)
	for j := range huge {
		huge[j] = Pair{e(uint64(j) + 1), e(8)}
	}
	if err := s2.InsertBatch(ctx, huge); !errors.Is(err, ErrInvalid) {
		t.Fatalf("batch larger than the WAL: %v", err)
	}
}

func TestWALCorruptionRefusedThenRepaired(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "wal")
	b := newTestBackend()
	opts := Options{WALPath: path, WALSizeBytes: 1 << 20, CheckpointInterval: -1}
	s := openTest(t, b, opts)
	for i := uint64(1); i <= 20; i++ {
		if err := s.Insert(ctx, e(i), e(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.abandon()
	// Damage record 5 of 20 (header page 4096, 64-byte records).
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xff, 0xff}, 4096+4*64+30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open(b.reopen(), opts); !IsCorruption(err) {
		t.Fatalf("Open on a corrupt WAL: %v, want a corruption error", err)
	}
	n, err := RepairWAL(path)
	if err != nil || n != 4 {
		t.Fatalf("RepairWAL = %d, %v; want 4 records kept", n, err)
	}
	s2 := openTest(t, b.reopen(), opts)
	defer s2.Close()
	for i := uint64(1); i <= 20; i++ {
		if i <= 4 {
			mustGet(t, s2, e(i), e(i))
		} else {
			mustGet(t, s2, e(i))
		}
	}
}

func TestNotifyReportsLSNs(t *testing.T) {
	ctx := context.Background()
	var got []Mutation
	opts := Options{WALPath: filepath.Join(t.TempDir(), "wal"), WALSizeBytes: 1 << 20, Notify: func(m []Mutation) { got = append(got, m...) }}
	s := openTest(t, newTestBackend(), opts)
	defer s.Close()
	s.Insert(ctx, e(1), e(2))
	s.InsertBatch(ctx, []Pair{{e(3), e(4)}, {e(5), e(6)}})
	s.Delete(ctx, e(1))
	want := []Mutation{{OpInsert, e(1), e(2), 1}, {OpInsert, e(3), e(4), 3}, {OpInsert, e(5), e(6), 4}, {OpDeleteKey, e(1), E{}, 6}}
	if !slices.Equal(got, want) {
		t.Fatalf("notified %+v\nwant %+v", got, want)
	}
}
