package h5store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cidstore/cidstore/core/port"
	"github.com/cidstore/cidstore/storage-hdf5/internal/h5"
)

// Failpoints of Compact (see commit.go for Commit's): the crash tests kill
// the process there.
const (
	fpCompactWritten = "h5.compact.written" // new file complete and fsynced, not yet renamed
	fpCompactRenamed = "h5.compact.renamed" // renamed over the store, old segment files not yet removed
)

// compactSuffix names the file Compact rewrites into, next to the store.
const compactSuffix = ".compact"

// Rewrite writes the last committed state of the store at src into a new,
// compact store file at dst: the same Meta (checkpoint LSN, hash seed,
// counts, ...), directory, buckets and value sets (every id the state
// lists, with their ids, depths, sorted counts and timestamps; a bucket
// with a delta is written whole, the delta applied, so the new file has no
// bucket deltas), and no deletion log (core records deletions for garbage collection it has
// already done; nothing reads the log back). dst is replaced if it exists.
//
// The new file holds each pool in one dataset sized to the state plus
// headroom (a quarter for rows and values, room for a few more copies of
// the directory and indexes), so it has no segment files and the first
// commits after it do not grow it; opts.SegmentBytes is not used. Objects
// are streamed: read from src, written to dst sequentially and forgotten,
// so memory is the per-object index of both files (~32 bytes per value
// set and ~48 per bucket each) plus the write buffer. The new state is
// committed once, fsynced, and the file fsynced again after HDF5 closes it.
//
// src is read as a Reader: nothing may commit to it meanwhile (a writer
// reusing space makes Rewrite fail with ErrStale); Compact holds its lock.
// progress, if not nil, is called with the records (bucket entries and
// delta rows, values and tombstones) copied so far and their total, at most about a thousand
// times, and once at the end.
func Rewrite(src, dst string, opts Options, progress func(done, total int64)) error {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return err
	}
	if filepath.Clean(src) == filepath.Clean(dst) {
		return fmt.Errorf("rewrite %s: the destination is the source", src)
	}
	r, err := OpenReader(src, ReaderOptions{CacheBytes: opts.CacheBytes, Logger: opts.Logger})
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", src, err)
	}
	err = rewrite(r, dst, &opts, progress)
	if cerr := r.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("rewrite %s into %s: %w", src, dst, errors.Join(err, removeStore(dst)))
	}
	return nil
}

func rewrite(r *Reader, dst string, opts *Options, progress func(done, total int64)) (err error) {
	if err := removeStore(dst); err != nil {
		return err
	}
	meta, dir, ok, err := r.LoadMeta()
	if err != nil {
		return err
	}
	st := r.st
	var ids [numKinds][]uint64 // buckets and value sets; deltas go with their buckets
	for _, k := range []int{kindBucket, kindValueSet} {
		if ids[k], err = st.tabs[k].ids(); err != nil {
			return err
		}
	}
	recs, total, err := rewriteSizes(st, ids, len(dir), opts)
	if err != nil {
		return err
	}
	if err := create(dst, opts, &recs); err != nil {
		return err
	}
	s, err := Open(dst, *opts)
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, s.Close(), os.Remove(dst+".lock"))
		if err == nil {
			// HDF5 rewrote its superblock on close (status flags).
			err = syncFile(dst, 0)
		}
	}()
	if !ok {
		return nil // never committed: the new file is empty too
	}
	var done, reported int64
	report := func(force bool) {
		if progress != nil && (force || done-reported >= max(total/1000, 1)) {
			progress(done, total)
			reported = done
		}
	}
	report(true)
	// Full: the new file's tables are built resident as the objects
	// stream in (the old store's Reader holds its whole index anyway).
	cp := &port.Checkpoint{Meta: meta, Directory: dir, Full: true}
	err = s.commitStream(cp, func(tx *txn) error {
		for _, id := range ids[kindBucket] {
			// Whole: the base with its delta applied, if it has one.
			b, err := r.ReadBucket(uint32(id))
			if err != nil {
				return err
			}
			b.DeltaKeys = nil
			if err := tx.putBucket(&b); err != nil {
				return err
			}
			recycleEntries(b.Entries)
			n, err := bucketRecords(st, id)
			if err != nil {
				return err
			}
			done += int64(n)
			report(false)
		}
		for _, id := range ids[kindValueSet] {
			v, err := r.ReadValueSet(id)
			if err != nil {
				return err
			}
			if err := tx.putValueSet(&v); err != nil {
				return err
			}
			done += int64((len(v.Values) + len(v.Tombstones)) / port.ValueSize)
			report(false)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n := s.Stats().SegmentsCreated; n > 0 {
		return fmt.Errorf("rewrite grew %d segment files: the sizes computed for the new file are wrong", n)
	}
	report(true)
	return nil
}

// bucketRecords returns the rows of bucket id and of its delta, if it has
// one: an upper bound of the rows of the merged bucket.
func bucketRecords(st *state, id uint64) (uint64, error) {
	var n uint64
	for _, k := range []int{kindBucket, kindBucketDelta} {
		l, ok, err := st.tabs[k].get(id)
		if err != nil {
			return 0, err
		}
		if ok && l.live() {
			n += l.records()
		}
	}
	return n, nil
}

// rewriteSizes returns the records of every pool of a rewritten file and
// the records to copy (for buckets, base and delta rows). Allocation
// rounds each object to the pool's granule, and a new file packs objects
// from record 0, so need is exact but for buckets with a delta, which are
// written merged: their need counts base and delta rows, at least the
// merged bucket's. The new file has no bucket deltas.
func rewriteSizes(st *state, ids [numKinds][]uint64, slots int, opts *Options) (recs [numPools]uint64, total int64, err error) {
	var need [numPools]uint64
	for _, k := range []int{kindBucket, kindValueSet} {
		p := st.pools[dataPool[k]]
		for _, id := range ids[k] {
			var n uint64
			if k == kindBucket {
				n, err = bucketRecords(st, id)
			} else {
				var l loc
				l, _, err = st.tabs[k].get(id)
				n = l.records()
			}
			if err != nil {
				return recs, 0, err
			}
			need[dataPool[k]] += p.granules(n) * p.granule
			total += int64(n)
		}
		need[metaPool[k]] = uint64(len(ids[k]))
	}
	need[poolDirectory] = uint64(slots)
	// Every commit writes a new directory copy and, now and then, a new
	// index snapshot next to the old one, which is freed ReuseDelayCommits
	// commits later: leave room for that many more copies.
	copies := uint64(opts.ReuseDelayCommits) + 2
	for pi := range numPools {
		sp := poolSpecs[pi]
		g := max(sp.granule, 64)
		n := need[pi]
		switch pi {
		case poolRows, poolValues:
			n += n / 4
		case poolDirectory, poolBucketMeta, poolValueMeta:
			n = (n + g) * copies
		}
		n = max(n, 4*g) // a few granules even for an empty pool
		recs[pi] = (n + g - 1) / g * g
	}
	return recs, total, nil
}

// Compact rewrites the store at path into a compact file (Rewrite) and
// swaps it in: it takes the store's writer lock (ErrLocked, with advice,
// while a writer has it open), backs a store of an older format version
// up as Open does (backupStore: the new file is of FormatVersion),
// rewrites into path+".compact", renames that
// over path, fsyncs the directory, and only then removes the old segment
// files. A crash at any point leaves a store that opens: before the rename
// the old one (a leftover .compact file is replaced by the next Compact),
// after it the new one (segment files the crash left are adopted as free
// space by the next Open; compact again to drop them). The deletion log is
// not kept; see Rewrite. progress is passed to Rewrite.
func Compact(path string, opts Options, progress func(done, total int64)) error {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("compact %s: %w", path, err)
	}
	lock, err := lockFile(path + ".lock")
	if errors.Is(err, ErrLocked) {
		return fmt.Errorf("compact %s: a writer has the store open; stop it first: %w", path, err)
	}
	if err != nil {
		return fmt.Errorf("compact %s: %w", path, err)
	}
	err = compact(path, &opts, progress)
	if cerr := lock.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("compact %s: %w", path, err)
	}
	return nil
}

func compact(path string, opts *Options, progress func(done, total int64)) error {
	// A store of an older format is replaced by one of FormatVersion:
	// back it up first, as Open does before its first commit.
	format, err := storeFormat(path, opts.CacheBytes)
	if err != nil {
		return err
	}
	if format < FormatVersion {
		dir, made, err := backupStore(path, format)
		if err != nil {
			return fmt.Errorf("back up the format %d store before rewriting it in format %d: %w", format, FormatVersion, err)
		}
		if made {
			opts.Logger.Info("h5store: backed up a store of an older format before compacting it into the new one",
				"path", path, "format", format, "new_format", FormatVersion, "backup", dir)
		}
	}
	old, err := segmentFiles(path)
	if err != nil {
		return err
	}
	tmp := path + compactSuffix
	if err := Rewrite(path, tmp, *opts, progress); err != nil {
		return err
	}
	opts.fire(fpCompactWritten)
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(err, removeStore(tmp))
	}
	opts.fire(fpCompactRenamed)
	dir := filepath.Dir(path)
	if err := syncDir(dir); err != nil {
		return err
	}
	var errs []error
	for _, f := range old {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(old) > 0 {
		errs = append(errs, syncDir(dir))
	}
	return errors.Join(errs...)
}

// storeFormat returns the format version of the newest commit record of
// the store at path, which no writer has open.
func storeFormat(path string, cacheBytes int64) (uint32, error) {
	h, err := h5.Open(path, h5.SWMRRead, h5config(cacheBytes))
	if err != nil {
		return 0, err
	}
	cds, err := h.OpenDataset("/commit")
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("not an h5store file: %w", err)
	}
	fd, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	root, err := readRoot(fd, cds.Offset)
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	return root.format, err
}

// segmentFiles lists the segment files of the store at path (and any
// half-made .tmp ones), whatever commit record names them.
func segmentFiles(path string) ([]string, error) {
	var out []string
	for pi := range numPools {
		base := strings.TrimSuffix(segmentFile(path, pi, 1), "0001.h5")
		for _, pat := range []string{base + "[0-9][0-9][0-9][0-9].h5", base + "[0-9][0-9][0-9][0-9].h5.tmp"} {
			m, err := filepath.Glob(pat)
			if err != nil {
				return nil, err
			}
			out = append(out, m...)
		}
	}
	return out, nil
}

// removeStore removes the store file at path with its segment and lock
// files, if they exist.
func removeStore(path string) error {
	files, err := segmentFiles(path)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range append(files, path, path+".tmp", path+".lock") {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DiskUsage reports the store at path as it occupies the file system: the
// store file and its segment files, their apparent size (what ls shows)
// and the bytes allocated to them (what du shows; datasets are allocated
// in the file at once but stay sparse until written).
func DiskUsage(path string) (files int, size, allocated int64, err error) {
	segs, err := segmentFiles(path)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, f := range append([]string{path}, segs...) {
		fi, err := os.Stat(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, 0, 0, err
		}
		files++
		size += fi.Size()
		allocated += allocatedBytes(fi)
	}
	return files, size, allocated, nil
}
