package memstore_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cidstore/cidstore/core/port"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

// FuzzOpenSnapshot feeds arbitrary bytes as a snapshot file: Open must
// either load it or fail with ErrCorrupt, never panic.
func FuzzOpenSnapshot(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "good.snapshot")
	s, err := memstore.Open(good)
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Commit(checkpoint(3)); err != nil {
		f.Fatal(err)
	}
	s.Close()
	data, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte("CIDSNAP1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "s.snapshot")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := memstore.Open(path)
		if err != nil {
			if !errors.Is(err, port.ErrCorrupt) {
				t.Fatalf("error %v does not wrap port.ErrCorrupt", err)
			}
			return
		}
		defer s.Close()
		if _, _, _, err := s.LoadMeta(); err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 && !bytes.HasPrefix(b, []byte("CIDSNAP1")) {
			t.Fatal("a file without the magic was accepted")
		}
	})
}
