package app

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	h5store "github.com/cidstore/cidstore/storage-hdf5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// TestReplicaFollowsWriter drives the replica's poll by hand against an
// in-process HDF5 writer that reuses freed space at once, so that loads
// race commits that overwrite the generation being loaded (ErrStale).
func TestReplicaFollowsWriter(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Role: "reader", Backend: "hdf5", CheckpointInterval: time.Second}
	h := newStoreHandle(cfg)
	r := newReplica(cfg, h, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	view := replicaView{h}
	ctx := context.Background()
	key := func(i int) cidstore.E { return cidstore.DeriveString("k" + strconv.Itoa(i)) }
	val := func(i int) cidstore.E { return cidstore.DeriveString("v" + strconv.Itoa(i)) }

	// No file yet: the replica waits, serves nothing and creates nothing.
	r.poll()
	if h.store() != nil {
		t.Fatal("store before the writer created the file")
	}
	if _, err := view.Get(ctx, key(0)); !errors.Is(err, cidstore.ErrClosed) {
		t.Fatalf("Get before load: %v", err)
	}
	if ents, err := os.ReadDir(cfg.DataDir); err != nil || len(ents) != 0 {
		t.Fatalf("reader touched the data dir: %v %v", ents, err)
	}

	hs, err := h5store.Open(cfg.H5Path(), h5store.Options{ReuseDelayCommits: -1, NoSync: true, SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := cidstore.Open(hs, cidstore.Options{CheckpointInterval: -1, BucketCapacity: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	r.poll()
	if h.store() == nil {
		t.Fatal("no store after the writer created the file")
	}

	// The writer inserts and checkpoints while the replica polls. Key i
	// only ever gets values j with j%nkeys == i.
	const nkeys, total = 200, 30000
	var (
		mu        sync.Mutex
		committed int // pairs 0..committed-1 are in a checkpoint
	)
	writerDone := make(chan error, 1)
	go func() {
		for i := range total {
			if err := ws.Insert(ctx, key(i%nkeys), val(i)); err != nil {
				writerDone <- err
				return
			}
			if i%20 == 19 {
				if err := ws.Checkpoint(ctx); err != nil {
					writerDone <- err
					return
				}
				mu.Lock()
				committed = i + 1
				mu.Unlock()
			}
		}
		writerDone <- nil
	}()
	check := func(atLeast int) {
		t.Helper()
		for i := range nkeys {
			got, err := view.Get(ctx, key(i))
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			seen := map[cidstore.E]bool{}
			for _, v := range got {
				seen[v] = true
			}
			for j := i; j < total; j += nkeys {
				if j < atLeast && !seen[val(j)] {
					t.Fatalf("key %d lacks value %d (checkpointed before the load)", i, j)
				}
				delete(seen, val(j))
			}
			if len(seen) != 0 {
				t.Fatalf("key %d has values never inserted: %v", i, seen)
			}
		}
	}
	polls := 0
	for done := false; !done; polls++ {
		select {
		case err := <-writerDone:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		default:
		}
		mu.Lock()
		before := committed
		mu.Unlock()
		failed := r.errs.Load()
		r.poll()
		if polls%20 == 0 && r.errs.Load() == failed { // the store is the newest commit
			check(before)
		}
	}
	r.poll()
	check(total)

	t.Logf("%d polls, %d loads, %d retried loads, %d failed polls, replica at generation %d",
		polls, r.loads.Load(), r.retries.Load(), r.errs.Load(), r.gen.Load())

	// Closing the replica closes its store and Reader, never the writer's.
	r.start()
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	if h.store() != nil {
		t.Fatal("store left after close")
	}
	if err := ws.Insert(ctx, key(0), val(total)); err != nil {
		t.Fatalf("writer after the replica closed: %v", err)
	}
}

// TestReaderBackendCloseKeepsReader checks that a core store's Close
// detaches from the shared Reader instead of closing it.
func TestReaderBackendCloseKeepsReader(t *testing.T) {
	path := t.TempDir() + "/cidstore.h5"
	hs, err := h5store.Open(path, h5store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	rd, err := h5store.OpenReader(path, h5store.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for range 2 {
		st, err := cidstore.Open(&readerBackend{r: rd}, cidstore.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Insert(context.Background(), cidstore.DeriveString("a"), cidstore.DeriveString("b")); !errors.Is(err, cidstore.ErrReadOnly) {
			t.Fatalf("Insert on a replica store: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rd.Refresh(); err != nil {
		t.Fatalf("Reader after two stores closed: %v", err)
	}
	b := &readerBackend{r: rd}
	_ = b.Close()
	if _, _, _, err := b.LoadMeta(); !errors.Is(err, h5store.ErrClosed) {
		t.Fatalf("LoadMeta after Close: %v", err)
	}
}

// TestReplicaSkipsIdleCheckpoints checks that idle checkpoints of the writer
// do not make the replica reload, and that the next real change does.
func TestReplicaSkipsIdleCheckpoints(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Role: "reader", Backend: "hdf5", CheckpointInterval: time.Second}
	h := newStoreHandle(cfg)
	r := newReplica(cfg, h, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	view := replicaView{h}
	ctx := context.Background()
	k, v1, v2 := cidstore.DeriveString("k"), cidstore.DeriveString("v1"), cidstore.DeriveString("v2")
	hs, err := h5store.Open(cfg.H5Path(), h5store.Options{NoSync: true, SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := cidstore.Open(hs, cidstore.Options{WALPath: cfg.WALPath(), Sync: cidstore.SyncNone, CheckpointInterval: -1, WALSizeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, step := range []func() error{
		func() error { return ws.Insert(ctx, k, v1) },
		func() error { return ws.Checkpoint(ctx) },
		func() error { r.poll(); return nil },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := view.Get(ctx, k); err != nil || !slices.Equal(got, []cidstore.E{v1}) {
		t.Fatalf("Get = %v, %v", got, err)
	}
	loads, gen := r.loads.Load(), r.gen.Load()
	for range 3 {
		if err := ws.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		r.poll()
	}
	// Core skips idle checkpoints, so the file does not even change; the
	// replica's own same-LSN check covers writers that do commit them.
	if r.loads.Load() != loads || r.gen.Load() != gen || r.pending {
		t.Fatalf("idle checkpoints: loads %d → %d, generation %d → %d, pending %v", loads, r.loads.Load(), gen, r.gen.Load(), r.pending)
	}
	if err := ws.Insert(ctx, k, v2); err != nil {
		t.Fatal(err)
	}
	if err := ws.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	r.poll()
	if got, _ := view.Get(ctx, k); len(got) != 2 || r.loads.Load() != loads+1 {
		t.Fatalf("after a new pair: %d loads, values %v", r.loads.Load(), got)
	}
	r.start()
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
}
