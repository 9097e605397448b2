//go:build cgo

package h5

import (
	"os"
	"path/filepath"
	"testing"
)

var testRec = &Record{Name: "pair", Size: 16, Fields: []Field{
	{Name: "high", Offset: 0, Kind: U64},
	{Name: "low", Offset: 8, Kind: U64},
}}

// TestCreateOpenSWMR walks the calls h5store makes: create with libver
// LATEST, a page-aligned early-allocated dataset, attributes, reopen,
// SWMR writing, attribute rewrite, and an SWMR read open next to the writer.
func TestCreateOpenSWMR(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.h5")
	f, err := Create(path, Config{MetaCacheBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CreateGroup("/g"); err != nil {
		t.Fatal(err)
	}
	ds, err := f.CreateDataset("/g/a", testRec, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Offset <= 0 || ds.Offset%4096 != 0 {
		t.Fatalf("offset %d not page aligned", ds.Offset)
	}
	if err := f.SetAttrs("/g", []Attr{{"u8", uint8(3)}, {"s", "hello"}, {"f", 1.5}, {"u64", uint64(7)}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = Open(path, ReadWrite, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.StartSWMRWrite(); err != nil {
		t.Fatal(err)
	}
	if err := f.SetAttrs("/g", []Attr{{"u64", uint64(8)}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := f.OpenDataset("/g/a")
	if err != nil || got.Offset != ds.Offset || got.Records != 1000 || got.RecSize != 16 {
		t.Fatalf("reopen dataset: %+v %v", got, err)
	}
	names, err := f.List("/g")
	if err != nil || len(names) != 1 || names[0] != "a" {
		t.Fatalf("list: %v %v", names, err)
	}
	if _, err := f.OpenDataset("/g/missing"); err == nil {
		t.Fatal("missing dataset opened")
	} else {
		t.Logf("expected error: %v", err)
	}
	r, err := Open(path, SWMRRead, Config{})
	if err != nil {
		t.Fatalf("swmr read open in-process: %v", err)
	}
	got2, err := r.OpenDataset("/g/a")
	if err != nil || got2 != got {
		t.Fatalf("reader sees %+v, %v; writer %+v", got2, err, got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() < ds.Offset+1000*16 {
		t.Fatalf("file %v (%v) does not cover the dataset at %d", st, err, ds.Offset)
	}
}

func TestRecoverClearsStatusFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.h5")
	f, err := Create(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Recover(path, Config{}); err != nil {
		t.Fatalf("recover a clean file: %v", err)
	}
	f, err = Open(path, ReadWrite, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
