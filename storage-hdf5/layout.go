package h5store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/cidstore/cidstore/core/port"
	"github.com/cidstore/cidstore/storage-hdf5/internal/h5"
)

// FormatVersion is the on-disk layout version this code writes. It is
// stored in every commit record and as /config format_version. Version 2
// added the live counts and deletion_start to the commit record, in bytes
// that version 1 always wrote as zero, so version 1 files are read as they
// are (counts 0, the whole log live). Version 3 added the bucket delta
// index (kindBucketDelta) in bytes versions 1 and 2 wrote as zero: their
// files read as having no deltas. An older file becomes version 3 at its
// next commit, after Open has backed it up (backupStore).
const FormatVersion = 3

// minFormatVersion is the oldest layout this code reads.
const minFormatVersion = 1

// formatBucketDeltas is the first version with the bucket delta index.
const formatBucketDeltas = 3

const versionString = "cidstore h5store layout 3"

var le = binary.LittleEndian

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// On-disk records. Every field is little-endian; offsets are bytes. The HDF5
// compound types below are built from these tables, so h5dump and h5py show
// each record with these member names. Changing any of them is a new
// FormatVersion.

// HashEntry rows, 64 bytes, exactly port's encoding (h5store copies them).
var recHashEntry = &h5.Record{Name: "HashEntry", Size: port.EntrySize, Fields: []h5.Field{
	{Name: "key_high", Offset: 0, Kind: h5.U64},
	{Name: "key_low", Offset: 8, Kind: h5.U64},
	{Name: "slot0_high", Offset: 16, Kind: h5.U64},
	{Name: "slot0_low", Offset: 24, Kind: h5.U64},
	{Name: "slot1_high", Offset: 32, Kind: h5.U64},
	{Name: "slot1_low", Offset: 40, Kind: h5.U64},
	{Name: "checksum", Offset: 48, Kind: h5.U64},
	{Name: "reserved", Offset: 56, Kind: h5.U64},
}}

// Value records, 16 bytes: a value set's values, then its tombstones.
var recValue = &h5.Record{Name: "Value", Size: port.ValueSize, Fields: []h5.Field{
	{Name: "high", Offset: 0, Kind: h5.U64},
	{Name: "low", Offset: 8, Kind: h5.U64},
}}

// BucketPointer, 12 bytes (packed): one directory slot. hdf5_ref is the
// bucket's row ref at the commit that wrote this directory copy.
var recBucketPointer = &h5.Record{Name: "BucketPointer", Size: 12, Fields: []h5.Field{
	{Name: "bucket_id", Offset: 0, Kind: h5.U32},
	{Name: "hdf5_ref", Offset: 4, Kind: h5.U64},
}}

// BucketMeta, 48 bytes: one bucket version in /buckets/meta.
var recBucketMeta = &h5.Record{Name: "BucketMeta", Size: 48, Fields: []h5.Field{
	{Name: "bucket_id", Offset: 0, Kind: h5.U32},
	{Name: "local_depth", Offset: 4, Kind: h5.U8},
	{Name: "flags", Offset: 5, Kind: h5.U8},
	{Name: "sorted_count", Offset: 8, Kind: h5.U32},
	{Name: "entry_count", Offset: 12, Kind: h5.U32},
	{Name: "last_compacted", Offset: 16, Kind: h5.I64},
	{Name: "rows_ref", Offset: 24, Kind: h5.U64},
	{Name: "generation", Offset: 32, Kind: h5.U64},
	{Name: "checksum", Offset: 40, Kind: h5.U32},
}}

// ValueSetMeta, 56 bytes: one value set version in /values/meta.
var recValueSetMeta = &h5.Record{Name: "ValueSetMeta", Size: 56, Fields: []h5.Field{
	{Name: "value_set_id", Offset: 0, Kind: h5.U64},
	{Name: "value_count", Offset: 8, Kind: h5.U64},
	{Name: "tombstone_count", Offset: 16, Kind: h5.U64},
	{Name: "values_ref", Offset: 24, Kind: h5.U64},
	{Name: "generation", Offset: 32, Kind: h5.U64},
	{Name: "sorted_count", Offset: 40, Kind: h5.U32},
	{Name: "flags", Offset: 44, Kind: h5.U32},
	{Name: "checksum", Offset: 48, Kind: h5.U32},
}}

// DeletionRecord, 32 bytes.
var recDeletion = &h5.Record{Name: "DeletionRecord", Size: 32, Fields: []h5.Field{
	{Name: "key_high", Offset: 0, Kind: h5.U64},
	{Name: "key_low", Offset: 8, Kind: h5.U64},
	{Name: "value_group", Offset: 16, Kind: h5.U64},
	{Name: "timestamp", Offset: 24, Kind: h5.I64},
}}

// Extent, 32 bytes: a run of records in a pool with its CRC32C.
var recExtent = &h5.Record{Name: "Extent", Size: 32, Fields: []h5.Field{
	{Name: "ref", Offset: 0, Kind: h5.U64},
	{Name: "count", Offset: 8, Kind: h5.U64},
	{Name: "generation", Offset: 16, Kind: h5.U64},
	{Name: "checksum", Offset: 24, Kind: h5.U32},
}}

// Segment, 24 bytes: one dataset of a pool.
var recSegment = &h5.Record{Name: "Segment", Size: 24, Fields: []h5.Field{
	{Name: "offset", Offset: 0, Kind: h5.U64},
	{Name: "capacity", Offset: 8, Kind: h5.U64},
	{Name: "pool", Offset: 16, Kind: h5.U32},
	{Name: "index", Offset: 20, Kind: h5.U32},
}}

const (
	maxDeltas   = 16 // index delta extents per kind in a commit record
	maxSegments = 64 // segments over all pools
	commitSize  = 4096
	commitMagic = 0x31544d4335484443 // "CDH5CMT1" little-endian
	flagHasMeta = 1                  // commit record holds a checkpoint
	flagDeleted = 1                  // index record: the id was freed
)

// Commit record field offsets.
const (
	coMagic          = 0
	coFormat         = 8
	coFlags          = 12
	coGeneration     = 16
	coLSN            = 24
	coHashSeed       = 32
	coNextValueSet   = 40
	coCreated        = 48
	coCoreFormat     = 56
	coBucketCapacity = 60
	coNumBuckets     = 64
	coNextBucket     = 68
	coGlobalDepth    = 72
	coDirectory      = 80  // Extent
	coDeletions      = 112 // u64
	coBucketDeltaN   = 120 // u32
	coValueDeltaN    = 124 // u32
	coSegmentN       = 128 // u32
	coBucketSnap     = 136 // Extent
	coBucketDeltas   = 168 // Extent[maxDeltas]
	coValueSnap      = 680
	coValueDeltas    = 712
	coSegments       = 1224 // Segment[maxSegments]
	coNumKeys        = 2760 // u64, version 2
	coNumValues      = 2768 // u64, version 2
	coNumSpilled     = 2776 // u64, version 2
	coDeletionStart  = 2784 // u64, version 2
	// The bucket delta index, version 3 (zero in older records).
	coBucketDeltaDeltaN = 2792 // u32
	coBucketDeltaSnap   = 2800 // Extent
	coBucketDeltaDeltas = 2832 // Extent[maxDeltas], up to 3344
	coChecksum          = commitSize - 4
)

// recCommit is the commit record; /commit holds two of them (slots 0 and 1)
// and the valid one with the higher generation is the committed state.
var recCommit = &h5.Record{Name: "CommitRecord", Size: commitSize, Fields: []h5.Field{
	{Name: "magic", Offset: coMagic, Kind: h5.U64},
	{Name: "format_version", Offset: coFormat, Kind: h5.U32},
	{Name: "flags", Offset: coFlags, Kind: h5.U32},
	{Name: "generation", Offset: coGeneration, Kind: h5.U64},
	{Name: "checkpoint_lsn", Offset: coLSN, Kind: h5.U64},
	{Name: "hash_seed", Offset: coHashSeed, Kind: h5.U64},
	{Name: "next_value_set_id", Offset: coNextValueSet, Kind: h5.U64},
	{Name: "created_unix_nano", Offset: coCreated, Kind: h5.I64},
	{Name: "core_format_version", Offset: coCoreFormat, Kind: h5.U32},
	{Name: "bucket_capacity", Offset: coBucketCapacity, Kind: h5.U32},
	{Name: "num_buckets", Offset: coNumBuckets, Kind: h5.U32},
	{Name: "next_bucket_id", Offset: coNextBucket, Kind: h5.U32},
	{Name: "global_depth", Offset: coGlobalDepth, Kind: h5.U8},
	{Name: "directory", Offset: coDirectory, Kind: h5.Compound, Sub: recExtent},
	{Name: "deletion_count", Offset: coDeletions, Kind: h5.U64},
	{Name: "bucket_meta_delta_count", Offset: coBucketDeltaN, Kind: h5.U32},
	{Name: "value_meta_delta_count", Offset: coValueDeltaN, Kind: h5.U32},
	{Name: "segment_count", Offset: coSegmentN, Kind: h5.U32},
	{Name: "bucket_meta_snapshot", Offset: coBucketSnap, Kind: h5.Compound, Sub: recExtent},
	{Name: "bucket_meta_deltas", Offset: coBucketDeltas, Kind: h5.Compound, Sub: recExtent, Len: maxDeltas},
	{Name: "value_meta_snapshot", Offset: coValueSnap, Kind: h5.Compound, Sub: recExtent},
	{Name: "value_meta_deltas", Offset: coValueDeltas, Kind: h5.Compound, Sub: recExtent, Len: maxDeltas},
	{Name: "segments", Offset: coSegments, Kind: h5.Compound, Sub: recSegment, Len: maxSegments},
	{Name: "num_keys", Offset: coNumKeys, Kind: h5.U64},
	{Name: "num_values", Offset: coNumValues, Kind: h5.U64},
	{Name: "num_spilled_keys", Offset: coNumSpilled, Kind: h5.U64},
	{Name: "deletion_start", Offset: coDeletionStart, Kind: h5.U64},
	{Name: "bucket_delta_meta_delta_count", Offset: coBucketDeltaDeltaN, Kind: h5.U32},
	{Name: "bucket_delta_meta_snapshot", Offset: coBucketDeltaSnap, Kind: h5.Compound, Sub: recExtent},
	{Name: "bucket_delta_meta_deltas", Offset: coBucketDeltaDeltas, Kind: h5.Compound, Sub: recExtent, Len: maxDeltas},
	{Name: "checksum", Offset: coChecksum, Kind: h5.U32},
}}

// ref addresses a run of records in a pool: the segment's index within the
// pool in the top 16 bits, the record number in the low 48.
type ref uint64

// nilRef is the ref of an object with no records.
const nilRef = ref(^uint64(0))

func mkRef(seg int, rec uint64) ref { return ref(uint64(seg)<<48 | rec) }
func (r ref) seg() int              { return int(r >> 48) }
func (r ref) rec() uint64           { return uint64(r) & (1<<48 - 1) }
func (r ref) String() string        { return fmt.Sprintf("%d:%d", r.seg(), r.rec()) }

// extent is a checksummed run of records (an index or directory blob).
type extent struct {
	ref   ref
	count uint64
	gen   uint64
	crc   uint32
}

func putExtent(b []byte, e extent) {
	le.PutUint64(b[0:], uint64(e.ref))
	le.PutUint64(b[8:], e.count)
	le.PutUint64(b[16:], e.gen)
	le.PutUint32(b[24:], e.crc)
	le.PutUint32(b[28:], 0)
}

func getExtent(b []byte) extent {
	return extent{ref: ref(le.Uint64(b[0:])), count: le.Uint64(b[8:]), gen: le.Uint64(b[16:]), crc: le.Uint32(b[24:])}
}

// segRec is one row of the commit record's segment table.
type segRec struct {
	offset   int64
	capacity uint64
	pool     int
	index    int
}

// commitRec is the decoded commit record.
type commitRec struct {
	format    uint32
	flags     uint32
	gen       uint64
	meta      port.Meta
	dir       extent
	delStart  uint64 // the deletion log is records [delStart, deletions)
	deletions uint64
	snap      [numKinds]extent
	deltas    [numKinds][]extent
	segments  []segRec
	hasSnap   [numKinds]bool
	slot      int // which /commit slot it came from
}

func (c *commitRec) hasMeta() bool { return c.flags&flagHasMeta != 0 }

func (c *commitRec) encode() []byte {
	b := make([]byte, commitSize)
	le.PutUint64(b[coMagic:], commitMagic)
	le.PutUint32(b[coFormat:], FormatVersion)
	le.PutUint32(b[coFlags:], c.flags)
	le.PutUint64(b[coGeneration:], c.gen)
	m := &c.meta
	le.PutUint64(b[coLSN:], m.CheckpointLSN)
	le.PutUint64(b[coHashSeed:], m.HashSeed)
	le.PutUint64(b[coNextValueSet:], m.NextValueSetID)
	le.PutUint64(b[coCreated:], uint64(m.CreatedUnixNano))
	le.PutUint32(b[coCoreFormat:], m.FormatVersion)
	le.PutUint32(b[coBucketCapacity:], m.BucketCapacity)
	le.PutUint32(b[coNumBuckets:], m.NumBuckets)
	le.PutUint32(b[coNextBucket:], m.NextBucketID)
	b[coGlobalDepth] = m.GlobalDepth
	putExtent(b[coDirectory:], c.dir)
	le.PutUint64(b[coDeletions:], c.deletions)
	le.PutUint64(b[coDeletionStart:], c.delStart)
	le.PutUint64(b[coNumKeys:], m.Keys)
	le.PutUint64(b[coNumValues:], m.Values)
	le.PutUint64(b[coNumSpilled:], m.SpilledKeys)
	for k := range numKinds {
		le.PutUint32(b[deltaCountOff[k]:], uint32(len(c.deltas[k])))
	}
	le.PutUint32(b[coSegmentN:], uint32(len(c.segments)))
	for k := range numKinds {
		putExtent(b[snapOff[k]:], c.snap[k])
		for i, d := range c.deltas[k] {
			putExtent(b[deltaOff[k]+i*recExtent.Size:], d)
		}
	}
	for i, s := range c.segments {
		o := coSegments + i*recSegment.Size
		le.PutUint64(b[o:], uint64(s.offset))
		le.PutUint64(b[o+8:], s.capacity)
		le.PutUint32(b[o+16:], uint32(s.pool))
		le.PutUint32(b[o+20:], uint32(s.index))
	}
	le.PutUint32(b[coChecksum:], crc32.Checksum(b[:coChecksum], castagnoli))
	return b
}

// Where the commit record keeps each kind's index extents.
var (
	deltaCountOff = [numKinds]int{coBucketDeltaN, coValueDeltaN, coBucketDeltaDeltaN}
	snapOff       = [numKinds]int{coBucketSnap, coValueSnap, coBucketDeltaSnap}
	deltaOff      = [numKinds]int{coBucketDeltas, coValueDeltas, coBucketDeltaDeltas}
)

// decodeCommit parses a commit slot of the file at path. ok is false for a
// slot that holds no valid record (never written, torn, or corrupt); err
// reports a valid-looking record this code must not use (another format
// version).
func decodeCommit(b []byte, path string) (c commitRec, ok bool, err error) {
	if len(b) != commitSize || le.Uint64(b[coMagic:]) != commitMagic {
		return c, false, nil
	}
	c.format = le.Uint32(b[coFormat:])
	if c.format < minFormatVersion || c.format > FormatVersion {
		if crc32.Checksum(b[:coChecksum], castagnoli) != le.Uint32(b[coChecksum:]) && c.format < minFormatVersion {
			return c, false, nil
		}
		return c, false, versionError(path, c.format)
	}
	if crc32.Checksum(b[:coChecksum], castagnoli) != le.Uint32(b[coChecksum:]) {
		return c, false, nil
	}
	c.flags = le.Uint32(b[coFlags:])
	c.gen = le.Uint64(b[coGeneration:])
	m := &c.meta
	m.CheckpointLSN = le.Uint64(b[coLSN:])
	m.HashSeed = le.Uint64(b[coHashSeed:])
	m.NextValueSetID = le.Uint64(b[coNextValueSet:])
	m.CreatedUnixNano = int64(le.Uint64(b[coCreated:]))
	m.FormatVersion = le.Uint32(b[coCoreFormat:])
	m.BucketCapacity = le.Uint32(b[coBucketCapacity:])
	m.NumBuckets = le.Uint32(b[coNumBuckets:])
	m.NextBucketID = le.Uint32(b[coNextBucket:])
	m.GlobalDepth = b[coGlobalDepth]
	c.dir = getExtent(b[coDirectory:])
	c.deletions = le.Uint64(b[coDeletions:])
	c.delStart = le.Uint64(b[coDeletionStart:])
	m.Keys = le.Uint64(b[coNumKeys:])
	m.Values = le.Uint64(b[coNumValues:])
	m.SpilledKeys = le.Uint64(b[coNumSpilled:])
	kinds := numKinds
	if c.format < formatBucketDeltas {
		kinds = kindBucketDelta // the last kind, which older records lack (their bytes are zero)
	}
	var nd [numKinds]uint32
	for k := range kinds {
		if nd[k] = le.Uint32(b[deltaCountOff[k]:]); nd[k] > maxDeltas {
			return c, false, nil
		}
	}
	ns := le.Uint32(b[coSegmentN:])
	if ns > maxSegments {
		return c, false, nil
	}
	for k := range kinds {
		c.snap[k] = getExtent(b[snapOff[k]:])
		c.hasSnap[k] = c.snap[k].gen != 0
		for i := range int(nd[k]) {
			c.deltas[k] = append(c.deltas[k], getExtent(b[deltaOff[k]+i*recExtent.Size:]))
		}
	}
	for i := range int(ns) {
		o := coSegments + i*recSegment.Size
		c.segments = append(c.segments, segRec{
			offset:   int64(le.Uint64(b[o:])),
			capacity: le.Uint64(b[o+8:]),
			pool:     int(le.Uint32(b[o+16:])),
			index:    int(le.Uint32(b[o+20:])),
		})
	}
	return c, true, nil
}

// kinds of indexed objects. A bucket delta (version 3) is the cumulative
// delta of the bucket of the same id (port.BucketRecord.Delta): its rows
// are in /buckets/rows and its index records, BucketMeta like a bucket's,
// in /buckets/meta, under their own snapshot and delta extents.
const (
	kindBucket = iota
	kindValueSet
	kindBucketDelta
	numKinds
)

var kindName = [numKinds]string{"bucket", "value set", "bucket delta"}

// loc is where one bucket, bucket delta or value set version lives, with
// the metadata LoadMeta/ReadBucket return. It is the per-object memory
// cost of the backend (56 bytes).
type loc struct {
	ref           ref
	gen           uint64 // commit that wrote this version
	count         uint64 // entries (bucket) or values (value set)
	tombs         uint64 // value set tombstones
	lastCompacted int64
	sorted        uint32
	crc           uint32
	depth         uint8
	state         uint8
}

// loc.state bits.
const (
	stLive  = 1 // present in the committed state
	stDirty = 2 // changed since the index snapshot: belongs in a merged delta
)

func (l *loc) live() bool { return l.state&stLive != 0 }

// records returns how many pool records the object occupies.
func (l *loc) records() uint64 { return l.count + l.tombs }

func encodeBucketMeta(b []byte, id uint64, l *loc) {
	le.PutUint32(b[0:], uint32(id))
	b[4] = l.depth
	b[5] = 0
	if !l.live() {
		b[5] = flagDeleted
	}
	b[6], b[7] = 0, 0
	le.PutUint32(b[8:], l.sorted)
	le.PutUint32(b[12:], uint32(l.count))
	le.PutUint64(b[16:], uint64(l.lastCompacted))
	le.PutUint64(b[24:], uint64(l.ref))
	le.PutUint64(b[32:], l.gen)
	le.PutUint32(b[40:], l.crc)
	le.PutUint32(b[44:], 0)
}

func decodeBucketMeta(b []byte) (uint64, loc) {
	l := loc{
		depth:         b[4],
		sorted:        le.Uint32(b[8:]),
		count:         uint64(le.Uint32(b[12:])),
		lastCompacted: int64(le.Uint64(b[16:])),
		ref:           ref(le.Uint64(b[24:])),
		gen:           le.Uint64(b[32:]),
		crc:           le.Uint32(b[40:]),
	}
	if b[5]&flagDeleted == 0 {
		l.state = stLive
	}
	return uint64(le.Uint32(b[0:])), l
}

func encodeValueSetMeta(b []byte, id uint64, l *loc) {
	le.PutUint64(b[0:], id)
	le.PutUint64(b[8:], l.count)
	le.PutUint64(b[16:], l.tombs)
	le.PutUint64(b[24:], uint64(l.ref))
	le.PutUint64(b[32:], l.gen)
	le.PutUint32(b[40:], l.sorted)
	var flags uint32
	if !l.live() {
		flags = flagDeleted
	}
	le.PutUint32(b[44:], flags)
	le.PutUint32(b[48:], l.crc)
	le.PutUint32(b[52:], 0)
}

func decodeValueSetMeta(b []byte) (uint64, loc) {
	l := loc{
		count:  le.Uint64(b[8:]),
		tombs:  le.Uint64(b[16:]),
		ref:    ref(le.Uint64(b[24:])),
		gen:    le.Uint64(b[32:]),
		sorted: le.Uint32(b[40:]),
		crc:    le.Uint32(b[48:]),
	}
	if le.Uint32(b[44:])&flagDeleted == 0 {
		l.state = stLive
	}
	return le.Uint64(b[0:]), l
}

var metaRecord = [numKinds]*h5.Record{recBucketMeta, recValueSetMeta, recBucketMeta}
var encodeMeta = [numKinds]func([]byte, uint64, *loc){encodeBucketMeta, encodeValueSetMeta, encodeBucketMeta}
var decodeMeta = [numKinds]func([]byte) (uint64, loc){decodeBucketMeta, decodeValueSetMeta, decodeBucketMeta}

// objectCRC is the CRC32C of a bucket's, bucket delta's or value set's
// rows, seeded with its id and record count so that rows of another
// object, or a shorter run of the same rows, never verify. (A Reader
// compares it with the checksum of its own generation's index record, so
// rows the writer reused for a later version fail it unless they are the
// same bytes.)
func objectCRC(id, count uint64, parts ...[]byte) uint32 {
	var h [16]byte
	le.PutUint64(h[0:], id)
	le.PutUint64(h[8:], count)
	c := crc32.Update(0, castagnoli, h[:])
	for _, p := range parts {
		c = crc32.Update(c, castagnoli, p)
	}
	return c
}

// versionError reports the file at path, of format version v, as one this
// build cannot open.
func versionError(path string, v uint32) error {
	if v > FormatVersion {
		return fmt.Errorf("%w: %s: file format version %d is newer than this build supports (%d): upgrade cidstore to open it",
			ErrFormatVersion, path, v, FormatVersion)
	}
	return fmt.Errorf("%w: %s: file format version %d is older than this build supports (%d) and no migration exists: "+
		"export it with the build that wrote it (cidstore dump) and load it into a new store",
		ErrFormatVersion, path, v, minFormatVersion)
}
