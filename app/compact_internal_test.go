package app

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/core/port"
	h5store "github.com/cidstore/cidstore/storage-hdf5"
)

// compactValues is the value list of key i in TestCompactStore: every
// third key has more values than fit inline, so it has a value set.
func compactValues(i int) []cidstore.E {
	n := 1
	if i%3 == 0 {
		n = 6
	}
	var out []cidstore.E
	for j := range n {
		out = append(out, cidstore.E{High: uint64(i), Low: uint64(j + 1)})
	}
	return out
}

// TestCompactStore runs the compact command's code path on a store made
// through core and h5store, with most keys deleted: the store must shrink
// and every remaining pair read back.
func TestCompactStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	env := map[string]string{"CIDSTORE_DATA_DIR": dir, "CIDSTORE_LOG_FORMAT": "json"}
	cfg, err := Load(Sources{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	const keys = 6000
	key := func(i int) cidstore.E { return cidstore.E{High: uint64(i) + 1, Low: 0xc0ffee} }
	kept := func(i int) bool { return i%10 == 0 }

	st, err := openStore(cfg, port.NopLogger{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []cidstore.Pair
	for i := range keys {
		for _, v := range compactValues(i) {
			pairs = append(pairs, cidstore.Pair{Key: key(i), Value: v})
		}
	}
	if err := st.InsertBatch(ctx, pairs); err != nil {
		t.Fatal(err)
	}
	if err := st.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if !kept(i) {
			if err := st.Delete(ctx, key(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Closing checkpoints; the last deletions could also stay in the WAL
	// only: compact replays it.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, size0, alloc0, err := h5store.DiskUsage(cfg.H5Path())
	if err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if err := compactStore(ctx, cfg, &out, &errb); err != nil {
		t.Fatalf("compact: %v\n%s", err, errb.String())
	}
	t.Logf("stdout:\n%sstderr (last line): %q", out.String(), lastLine(errb.String()))
	if !strings.Contains(errb.String(), "\r[") || !strings.Contains(errb.String(), "100% ") || !strings.Contains(errb.String(), " rows") {
		t.Errorf("no progress bar on stderr: %q", errb.String())
	}
	if !strings.Contains(out.String(), "before: ") || !strings.Contains(out.String(), "after:  ") {
		t.Errorf("no sizes on stdout: %q", out.String())
	}
	files, size1, alloc1, err := h5store.DiskUsage(cfg.H5Path())
	if err != nil {
		t.Fatal(err)
	}
	if files != 1 || size1 >= size0 || alloc1 >= alloc0 {
		t.Fatalf("store did not shrink: %d/%d bytes allocated before, %d/%d after in %d files", alloc0, size0, alloc1, size1, files)
	}

	if st, err = openStore(cfg, port.NopLogger{}, nil); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}()
	for i := range keys {
		got, err := st.Get(ctx, key(i))
		if err != nil {
			t.Fatal(err)
		}
		want := []cidstore.E{}
		if kept(i) {
			want = compactValues(i)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("key %d: %v, want %v", i, got, want)
		}
	}
}

func TestCompactNeedsHDF5(t *testing.T) {
	cfg := Config{Backend: "mem", Role: "writer", DataDir: t.TempDir()}
	var out, errb bytes.Buffer
	err := compactStore(context.Background(), cfg, &out, &errb)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "backend hdf5") {
		t.Fatalf("err = %v, want a usage error", err)
	}
	cfg.Backend = "hdf5"
	if err := compactStore(context.Background(), cfg, &out, &errb); err == nil || !strings.Contains(err.Error(), "no store") {
		t.Fatalf("compact of an empty data dir: %v", err)
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexAny(s, "\r\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}
