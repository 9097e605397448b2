package memstore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/cidstore/cidstore/core/port"
)

const (
	snapMagic   = "CIDSNAP1"
	snapVersion = 2 // 2 added the live counts and the deletion log
	delSize     = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapWriter writes little-endian fields and checksums them.
type snapWriter struct {
	w   *bufio.Writer
	crc uint32
	buf [8]byte
}

func (w *snapWriter) bytes(b []byte) {
	w.crc = crc32.Update(w.crc, castagnoli, b)
	w.w.Write(b) // bufio errors are sticky; Flush reports them
}
func (w *snapWriter) u8(v uint8)   { w.bytes([]byte{v}) }
func (w *snapWriter) u32(v uint32) { binary.LittleEndian.PutUint32(w.buf[:4], v); w.bytes(w.buf[:4]) }
func (w *snapWriter) u64(v uint64) { binary.LittleEndian.PutUint64(w.buf[:8], v); w.bytes(w.buf[:8]) }
func (w *snapWriter) blob(b []byte) {
	w.u64(uint64(len(b)))
	w.bytes(b)
}

// writeSnapshot writes the complete state to path atomically: temp file,
// fsync, rename, fsync of the directory.
func writeSnapshot(path string, meta *port.Meta, dir []uint32, buckets map[uint32]port.BucketRecord, sets map[uint64]port.ValueSetRecord, dels []port.DeletionRecord) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Close(), os.Remove(tmp))
		}
	}()
	w := &snapWriter{w: bufio.NewWriterSize(f, 1<<20)}
	w.bytes([]byte(snapMagic))
	w.u32(snapVersion)
	w.u32(0)
	w.u32(meta.FormatVersion)
	w.bytes([]byte{meta.GlobalDepth, 0, 0, 0})
	w.u64(meta.HashSeed)
	w.u32(meta.BucketCapacity)
	w.u32(meta.NumBuckets)
	w.u64(meta.CheckpointLSN)
	w.u32(meta.NextBucketID)
	w.u32(0)
	w.u64(meta.NextValueSetID)
	w.u64(uint64(meta.CreatedUnixNano))
	w.u64(meta.Keys)
	w.u64(meta.Values)
	w.u64(meta.SpilledKeys)
	w.u64(uint64(len(dir)))
	for _, id := range dir {
		w.u32(id)
	}
	w.u64(uint64(len(buckets)))
	for _, b := range buckets { // any order: the reader keys them by id
		w.u32(b.ID)
		w.bytes([]byte{b.LocalDepth, 0, 0, 0})
		w.u32(b.SortedCount)
		w.u64(uint64(b.LastCompacted))
		w.blob(b.Entries)
	}
	w.u64(uint64(len(sets)))
	for _, v := range sets {
		w.u64(v.ID)
		w.u32(v.SortedCount)
		w.u32(0)
		w.blob(v.Values)
		w.blob(v.Tombstones)
	}
	w.u64(uint64(len(dels)))
	for _, d := range dels {
		w.u64(d.KeyHigh)
		w.u64(d.KeyLow)
		w.u64(d.ValueGroup)
		w.u64(uint64(d.UnixNano))
	}
	binary.LittleEndian.PutUint32(w.buf[:4], w.crc)
	w.w.Write(w.buf[:4])
	if err = w.w.Flush(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		f = nil
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// snapReader parses a snapshot held in memory; the first error sticks.
type snapReader struct {
	b   []byte
	off int
	err error
}

func (r *snapReader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.err = fmt.Errorf("%w: truncated snapshot", port.ErrCorrupt)
		return nil
	}
	b := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return b
}
func (r *snapReader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}
func (r *snapReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}
func (r *snapReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// blob returns a length-prefixed field; it aliases the snapshot buffer.
func (r *snapReader) blob() []byte { return r.take(r.u64()) }

// readSnapshot loads s.path if it exists: one read of the whole file, one
// checksum over it, then parsing without copying (records alias the
// buffer; ReadBucket and ReadValueSet hand out copies).
func (s *Store) readSnapshot() error {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(data) < 4 {
		return fmt.Errorf("%w: snapshot of %d bytes", port.ErrCorrupt, len(data))
	}
	body := data[:len(data)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[len(body):]) {
		return fmt.Errorf("%w: snapshot checksum mismatch", port.ErrCorrupt)
	}
	r := &snapReader{b: body}
	if string(r.take(8)) != snapMagic {
		return fmt.Errorf("%w: not a cidstore snapshot", port.ErrCorrupt)
	}
	// Version 1 lacks the counts (they load as 0) and the deletion log.
	version := r.u32()
	if version != 1 && version != snapVersion {
		return fmt.Errorf("%w: snapshot version %d, want %d", port.ErrCorrupt, version, snapVersion)
	}
	r.u32()
	var m port.Meta
	m.FormatVersion = r.u32()
	m.GlobalDepth = r.u8()
	r.take(3)
	m.HashSeed = r.u64()
	m.BucketCapacity = r.u32()
	m.NumBuckets = r.u32()
	m.CheckpointLSN = r.u64()
	m.NextBucketID = r.u32()
	r.u32()
	m.NextValueSetID = r.u64()
	m.CreatedUnixNano = int64(r.u64())
	if version >= 2 {
		m.Keys = r.u64()
		m.Values = r.u64()
		m.SpilledKeys = r.u64()
	}
	n := r.u64()
	if n > uint64(len(body))/4 {
		return fmt.Errorf("%w: directory of %d slots", port.ErrCorrupt, n)
	}
	dir := make([]uint32, n)
	for i := range dir {
		dir[i] = r.u32()
	}
	nb := r.u64()
	if nb > uint64(len(body)) {
		return fmt.Errorf("%w: %d buckets", port.ErrCorrupt, nb)
	}
	buckets := make(map[uint32]port.BucketRecord, nb)
	for i := uint64(0); i < nb && r.err == nil; i++ {
		var b port.BucketRecord
		b.ID = r.u32()
		b.LocalDepth = r.u8()
		r.take(3)
		b.SortedCount = r.u32()
		b.LastCompacted = int64(r.u64())
		b.Entries = r.blob()
		buckets[b.ID] = b
	}
	ns := r.u64()
	if ns > uint64(len(body)) {
		return fmt.Errorf("%w: %d value sets", port.ErrCorrupt, ns)
	}
	sets := make(map[uint64]port.ValueSetRecord, ns)
	for i := uint64(0); i < ns && r.err == nil; i++ {
		var v port.ValueSetRecord
		v.ID = r.u64()
		v.SortedCount = r.u32()
		r.u32()
		v.Values = r.blob()
		v.Tombstones = r.blob()
		sets[v.ID] = v
	}
	var dels []port.DeletionRecord
	if version >= 2 {
		nd := r.u64()
		if nd > uint64(len(body))/delSize {
			return fmt.Errorf("%w: deletion log of %d records", port.ErrCorrupt, nd)
		}
		dels = make([]port.DeletionRecord, nd)
		for i := range dels {
			dels[i] = port.DeletionRecord{KeyHigh: r.u64(), KeyLow: r.u64(), ValueGroup: r.u64(), UnixNano: int64(r.u64())}
		}
	}
	if r.err != nil {
		return r.err
	}
	if r.off != len(body) {
		return fmt.Errorf("%w: %d trailing bytes in snapshot", port.ErrCorrupt, len(body)-r.off)
	}
	s.has, s.meta, s.dir, s.buckets, s.sets, s.dels = true, m, dir, buckets, sets, dels
	return nil
}
