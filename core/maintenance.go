package cidstore

import (
	"context"
	"time"
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
	now := time.Now().UnixNano()
	for _, b := range s.buckets {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b != nil {
			s.compactBucket(b, now)
		}
	}
	s.mergeAll()
	s.publish()
	return nil
}

// compactBucket sorts b, compacts its value sets and demotes small ones.
// Writer only.
func (s *Store) compactBucket(b *bucket, now int64) {
	threshold := int(s.promote.Load())
	changed := false
	b.mu.Lock()
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
			s.stats.demotions.Add(1)
			changed = true
			continue
		}
		if vs.compact() {
			s.markSetDirty(vs)
			s.stats.compactions.Add(1)
		}
	}
	if changed {
		b.lastCompacted = now
	}
	b.mu.Unlock()
	if changed {
		s.markDirty(b)
	}
}
