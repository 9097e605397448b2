package cidstore

import "math/bits"

// splitFor makes room for a new key with hash h in the full bucket b. It
// reports whether it split b (the caller then looks the bucket up again);
// false means the keys of b and h share so many hash bits that separating
// them would need a directory deeper than MaxGlobalDepth, and b must grow
// past its capacity instead. Writer only.
func (s *Store) splitFor(b *bucket, h uint64) bool {
	var diff uint64
	for i := range b.entries {
		diff |= s.hash(b.entries[i].key) ^ h
	}
	common := uint8(bits.LeadingZeros64(diff)) // 64 when all hashes are equal
	if common >= s.maxDepth || b.depth >= s.maxDepth {
		return false
	}
	s.split(b)
	return true
}

// split divides b into itself (next hash bit 0) and a new buddy (bit 1),
// doubling the directory first when b is as deep as the directory.
// Writer only.
func (s *Store) split(b *bucket) {
	s.failpoint("store.split")
	d := s.dir.Load()
	if b.depth == d.depth {
		s.failpoint("store.split.doubling")
		d = d.doubled()
		s.setDir(d)
		s.stats.doublings.Add(1)
	}
	depth := b.depth + 1
	nb := s.newBucket(depth, b.prefix<<1|1)

	s.lockBucket(b)
	// A stable partition keeps each half's sorted region sorted and its
	// tail a tail; value sets stay where they are (the set table is global).
	// Each half gets arrays a quarter larger than what it holds
	// (bucketGrowth), not the capacity.
	// Each entry's side is hashed once, into the writer's scratch bitmap.
	side := s.splitSide[:0]
	ones := 0
	for i := range b.entries {
		if i%64 == 0 {
			side = append(side, 0)
		}
		bit := s.hash(b.entries[i].key) >> (64 - depth) & 1
		side[i/64] |= bit << (i % 64)
		ones += int(bit)
	}
	s.splitSide = side
	c := bucketGrowth(ones, s.capacity)
	nb.entries, nb.tags = make([]entry, 0, c), make([]byte, 0, c)
	keep, keepSorted := 0, 0
	for i, e := range b.entries {
		if side[i/64]>>(i%64)&1 == 0 {
			b.entries[keep], b.tags[keep] = e, b.tags[i]
			keep++
			if i < b.sorted {
				keepSorted++
			}
			continue
		}
		nb.entries = append(nb.entries, e)
		nb.tags = append(nb.tags, b.tags[i])
		if i < b.sorted {
			nb.sorted++
		}
	}
	if c := bucketGrowth(keep, s.capacity); c < cap(b.entries) {
		b.realloc(keep, c)
	} else {
		clear(b.entries[keep:])
		b.entries, b.tags = b.entries[:keep], b.tags[:keep]
	}
	b.sorted = keepSorted
	s.depthCount[b.depth]--
	s.depthCount[depth]++
	b.depth = depth
	b.prefix <<= 1
	if b.cold.Load() != 0 {
		b.cold.Store(s.countCold(b))
		nb.cold.Store(s.countCold(nb))
	}
	// Publish the buddy before b's lock is released: a reader that waited
	// on b and finds it no longer owns its hash finds the buddy instead.
	d.point(nb)
	b.mu.Unlock()
	s.markRewritten(b)
	s.stats.splits.Add(1)
}
