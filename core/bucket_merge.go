package cidstore

import "errors"

// mergeLowWater: two buddies merge when their entries together fit in this
// fraction of a bucket, so a merged bucket does not split again at once.
const mergeLowWaterDiv = 2

// tryMerge merges b with its buddy when both sit at the same local depth
// and together hold at most capacity/2 entries. It reports whether it
// merged. Writer only.
func (s *Store) tryMerge(b *bucket) (bool, error) {
	if b.retired || b.depth == 0 {
		return false, nil
	}
	d := s.dir.Load()
	lo, _ := d.slotRange(b.depth, b.prefix^1)
	buddy := d.slots[lo].Load()
	if buddy.depth != b.depth {
		return false, nil
	}
	if err := errors.Join(s.loadBucket(b), s.loadBucket(buddy)); err != nil {
		return false, err
	}
	if len(b.entries)+len(buddy.entries) > s.capacity/mergeLowWaterDiv {
		return false, nil
	}
	keep, gone := b, buddy
	if keep.prefix&1 == 1 {
		keep, gone = gone, keep
	}
	s.lockBucket(keep)
	s.lockBucket(gone)
	keep.mergeTail()
	gone.mergeTail()
	n := len(keep.entries) + len(gone.entries)
	merged, tags := make([]entry, 0, n), make([]byte, 0, n)
	i, j := 0, 0
	for i < len(keep.entries) || j < len(gone.entries) {
		if j == len(gone.entries) || (i < len(keep.entries) && keep.entries[i].key.Less(gone.entries[j].key)) {
			merged, tags = append(merged, keep.entries[i]), append(tags, keep.tags[i])
			i++
		} else {
			merged, tags = append(merged, gone.entries[j]), append(tags, gone.tags[j])
			j++
		}
	}
	keep.entries, keep.tags = merged, tags
	keep.adds++
	keep.sorted = len(merged)
	if keep.cold.Load() != 0 || gone.cold.Load() != 0 {
		keep.cold.Store(s.countCold(keep))
	}
	s.depthCount[keep.depth]--
	keep.depth--
	keep.prefix >>= 1
	s.depthCount[keep.depth]++
	s.freeBucket(gone)
	d.point(keep)
	gone.mu.Unlock()
	keep.mu.Unlock()
	s.markRewritten(keep)
	s.stats.merges.Add(1)
	return true, nil
}

// mergeAll merges buddies until none qualifies, then halves the directory
// while no bucket is as deep as it. Writer only.
func (s *Store) mergeAll() error {
	for changed := true; changed; {
		changed = false
		for _, b := range s.buckets {
			if b == nil {
				continue
			}
			merged, err := s.tryMerge(b)
			if err != nil {
				return err
			}
			changed = changed || merged
			if s.cache.over() {
				s.evict()
			}
		}
	}
	for {
		d := s.dir.Load()
		if d.depth == 0 || s.depthCount[d.depth] > 0 {
			return nil
		}
		s.setDir(d.halved())
		s.stats.halvings.Add(1)
	}
}
