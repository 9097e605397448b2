package cidstore

import "sync/atomic"

// directory maps the top depth bits of a key's directory hash to a bucket.
// Several slots point to one bucket when its local depth is below depth:
// a bucket at local depth d owns the 1<<(depth-d) consecutive slots that
// start at prefix<<(depth-d).
//
// The writer changes slots in place (atomically, one by one, while holding
// the lock of the bucket whose ownership changes) and replaces the whole
// directory when doubling or halving. Readers load the directory and a slot
// without locks and validate ownership on the bucket they reach.
type directory struct {
	depth uint8
	slots []atomic.Pointer[bucket]
}

func newDirectory(depth uint8) *directory {
	return &directory{depth: depth, slots: make([]atomic.Pointer[bucket], 1<<depth)}
}

// lookup returns the bucket the directory points to for hash h.
func (d *directory) lookup(h uint64) *bucket {
	return d.slots[topBits(h, d.depth)].Load()
}

// slotRange returns the slots [lo, hi) owned by a bucket at (depth, prefix).
func (d *directory) slotRange(depth uint8, prefix uint64) (lo, hi uint64) {
	shift := d.depth - depth
	return prefix << shift, (prefix + 1) << shift
}

// point makes every slot owned by b point to b.
func (d *directory) point(b *bucket) {
	lo, hi := d.slotRange(b.depth, b.prefix)
	for i := lo; i < hi; i++ {
		d.slots[i].Store(b)
	}
}

// doubled returns a copy of d with twice the slots, each old slot duplicated.
func (d *directory) doubled() *directory {
	nd := newDirectory(d.depth + 1)
	for i := range d.slots {
		b := d.slots[i].Load()
		nd.slots[2*i].Store(b)
		nd.slots[2*i+1].Store(b)
	}
	return nd
}

// halved returns a copy of d with half the slots; valid only when no bucket
// has local depth d.depth.
func (d *directory) halved() *directory {
	nd := newDirectory(d.depth - 1)
	for i := range nd.slots {
		nd.slots[i].Store(d.slots[2*i].Load())
	}
	return nd
}
