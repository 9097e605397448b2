package cidstore

import (
	"context"
	"errors"
	"time"

	"github.com/cidstore/cidstore/core/port"
)

// Compact runs every maintenance task once, synchronously: it sort-merges
// every bucket's unsorted tail, compacts value sets (drops tombstones,
// sorts), demotes spilled keys with no more live values than the promotion
// threshold back to inline slots, merges buddy buckets under the low-water
// mark and halves the directory while it can. Readers keep running; writers
// wait. Every task is idempotent.
func (s *Store) Compact(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	now := time.Now().UnixNano()
	for _, b := range s.buckets {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b == nil {
			continue
		}
		if err := s.compactBucket(b, now); err != nil {
			s.publish()
			return err
		}
		if s.cache.over() {
			s.evict()
		}
	}
	err := s.mergeAll()
	s.publish()
	return err
}

// compactBucket sorts b, compacts its value sets and demotes small ones.
// Writer only.
func (s *Store) compactBucket(b *bucket, now int64) error {
	if err := s.loadBucket(b); err != nil {
		return err
	}
	for i := range b.entries {
		if e := &b.entries[i]; e.spilled() {
			if _, err := s.writerSet(b, e); err != nil {
				return err
			}
		}
	}
	threshold := int(s.promote.Load())
	changed := false
	var demoted []E
	s.lockBucket(b)
	if b.sorted != len(b.entries) {
		b.mergeTail()
		changed = true
	}
	for i := range b.entries {
		e := &b.entries[i]
		if !e.spilled() {
			continue
		}
		vs := s.sets.get(e.spillID())
		if vs.live() <= threshold {
			vals := vs.liveSorted()
			e.s0, e.s1 = vals[0], E{}
			if len(vals) == 2 {
				e.s1 = vals[1]
			}
			s.dropSet(vs, e.key)
			demoted = append(demoted, e.key)
			s.stats.demotions.Add(1)
			changed = true
			continue
		}
		if s.touchSet(vs); vs.compact() {
			s.markSetDirty(vs)
			s.stats.compactions.Add(1)
		}
	}
	if changed {
		b.lastCompacted = now
	}
	b.mu.Unlock()
	if changed {
		s.markMaintained(b, demoted)
	}
	return nil
}

// BucketInfo describes bucket id for operators (the REST debug endpoint).
// ChecksumOK reports whether every entry of the bucket's last committed copy
// in the backend verifies (true when the bucket was never committed). ok is
// false when no live bucket has that id.
func (s *Store) BucketInfo(id uint32) (info BucketInfo, ok bool) {
	s.wmu.Lock()
	if s.closed.Load() || int(id) >= len(s.buckets) || s.buckets[id] == nil {
		s.wmu.Unlock()
		return BucketInfo{}, false
	}
	b := s.buckets[id]
	if err := s.loadBucket(b); err != nil {
		s.wmu.Unlock()
		return BucketInfo{ID: id, LocalDepth: int(b.depth)}, true
	}
	info = BucketInfo{ID: id, LocalDepth: int(b.depth), EntryCount: len(b.entries), SortedCount: b.sorted, ChecksumOK: true}
	if b.lastCompacted != 0 {
		info.LastCompacted = time.Unix(0, b.lastCompacted)
	}
	info.DangerScore, info.LastMerge = s.bucketDanger(b)
	for i := range b.entries {
		if b.entries[i].spilled() {
			info.SpilledKeys++
		}
	}
	s.wmu.Unlock()
	// ckptMu keeps a Commit (which may be writing this very bucket) out of
	// the read. It is taken after wmu is released: checkpoints take ckptMu,
	// then wmu.
	s.ckptMu.Lock()
	rec, err := s.backend.ReadBucket(id)
	s.ckptMu.Unlock()
	if err == nil {
		for i := 0; i+port.EntrySize <= len(rec.Entries); i += port.EntrySize {
			if _, err := decodeEntry(rec.Entries[i : i+port.EntrySize]); err != nil {
				info.ChecksumOK = false
				break
			}
		}
	} else if !errors.Is(err, port.ErrNotFound) {
		info.ChecksumOK = false
	}
	return info, true
}
