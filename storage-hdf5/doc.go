// Package h5store is the HDF5 storage backend of CIDStore: it implements
// port.Backend and port.Lister over one HDF5 file, copy-on-write, with an
// atomic, durable Commit and out-of-process SWMR readers.
//
//	s, err := h5store.Open("data/cidstore.h5", h5store.Options{}) // the writer
//	r, err := h5store.OpenReader("data/cidstore.h5", h5store.ReaderOptions{})
//
// HDF5 holds the structure, so h5ls, h5dump and h5py show every record with
// named fields; rows are read and written with pread/pwrite at the file
// offsets of large contiguous datasets (H5Dget_offset), never through
// H5Dread/H5Dwrite. The cgo layer is internal/h5 (gonum.org/v1/hdf5 plus a
// small shim for what the binding lacks).
//
// # Layout
//
// A new store file, after one commit (h5ls -r):
//
//	/buckets                 Group
//	/buckets/meta            Dataset {87424}    BucketMeta: per-bucket and per-bucket-delta tables
//	/buckets/rows            Dataset {1048576}  HashEntry rows of buckets and bucket deltas
//	/commit                  Dataset {2}        CommitRecord: the two commit slots
//	/config                  Group              attributes, see below
//	/deletion_log            Dataset {32768}    DeletionRecord
//	/directory               Dataset {349568}   BucketPointer {bucket_id, hdf5_ref}
//	/values                  Group
//	/values/data             Dataset {2097152}  Value {high, low}
//	/values/meta             Dataset {74944}    ValueSetMeta: per-value-set table
//	/wal                     Group              checkpoint_lsn, record_size: the WAL itself is core's sidecar file
//
// /config carries format_version (u32), version_string, created_timestamp
// (f64, Unix seconds), global_depth (u8), num_buckets (u32), hash_seed (u64),
// bucket_capacity (u32), checkpoint_lsn (u64), and core_format_version,
// next_bucket_id, next_value_set_id, generation, and the live counts
// num_keys, num_values, num_spilled_keys (u64, port.Meta's Keys, Values,
// SpilledKeys). They mirror the newest commit record for people and tools;
// h5store itself never reads them: LoadMeta, and a Reader's LoadMeta,
// return the commit record's copy. A file made by version 1 lacks the count
// attributes and keeps lacking them (attributes are created only with the
// file); its commit records carry the counts from its first commit on.
// Field names, types and offsets of every record are in layout.go.
//
// Each record dataset except /commit is a pool: objects occupy runs of
// records, addressed by a ref = segment<<48 | record. A pool starts as one
// dataset (its segment 0) and grows by segments in sidecar files (see
// Growth). The live state is what the newest valid commit record points
// to:
//
//   - a bucket is entry_count rows in /buckets/rows at rows_ref; a value set
//     is value_count values then tombstone_count tombstones in /values/data
//     at values_ref;
//   - a bucket may also have a delta (version 3; port.BucketRecord.Delta):
//     the rows, sorted by key, of the keys changed since its rows were
//     written whole, a removal row (slots zero) for each key removed,
//     entry_count rows in /buckets/rows at rows_ref. It is cumulative: a
//     bucket has at most one, which its next delta replaces. A read merges
//     it into the bucket (port.ApplyBucketDelta: a delta row replaces or
//     adds its key, a removal row drops it) and takes local_depth and
//     last_compacted from it; the bucket comes back whole, with DeltaKeys;
//   - three index tables, one per kind of object: buckets and bucket
//     deltas in /buckets/meta (BucketMeta records, keyed by bucket_id),
//     value sets in /values/meta. An index record holds the id, counts,
//     ref, CRC32C of the rows (seeded with the id and the row count), the
//     generation that wrote it and a deleted flag. For each table the
//     commit record names one snapshot extent of every live id, plus up to
//     16 delta extents of ids changed since, applied in order (index
//     deltas, nothing to do with bucket deltas): bucket_meta_snapshot and
//     bucket_meta_deltas, value_meta_…, and, after deletion_start,
//     bucket_delta_meta_snapshot, bucket_delta_meta_delta_count and
//     bucket_delta_meta_deltas. Every extent is sorted by id (deltas
//     written before this build may not be; they are sorted in memory
//     when loaded, until the next snapshot or merge replaces them). A
//     commit writes a delta of what it changed; a full delta list is
//     merged into one; a snapshot is rewritten when changes since the last
//     reach half the live ids. That keeps commit cost proportional to the
//     change and load cost proportional to the live ids;
//   - the directory is one extent of /directory, one BucketPointer per slot;
//     hdf5_ref is the slot's bucket rows_ref as of that commit;
//   - the deletion log is the records [deletion_start, deletion_count) of
//     /deletion_log and its later segments, oldest first (see Deletion
//     log).
//
// Records that no commit record names are free space or older versions.
// An h5py reader picks the /commit slot with the higher generation (and a
// valid checksum: CRC32C of its first 4092 bytes) and follows the refs.
//
// # Commit
//
// Commit never overwrites what the committed state uses. It writes every
// new bucket, bucket delta, value set, index extent and the directory to
// free space (a next-fit bitmap allocator per segment; 512-byte granules
// for rows, 64-byte for values, so that a value set of 3–4 values takes
// one granule and consecutive small sets are one pwrite), fsyncs every
// file it wrote, writes the new commit record into the /commit slot
// that does not hold the current one (one 4 KiB, page aligned pwrite; its
// CRC catches a torn write), and fsyncs again. The
// newer valid slot wins on load, so a crash at any moment leaves either the
// previous checkpoint or, once the record is written, the new one. Space
// superseded by a commit becomes reusable only after that commit is durable
// and ReuseDelayCommits (default 2) more commits, which gives SWMR readers
// a grace period. H5Fflush never fsyncs; h5store fsyncs the files itself
// (Options.NoSync turns that off for tests and benchmarks).
//
// Bucket deltas: a delta record replaces the bucket's delta (the previous
// one's rows are freed like a superseded bucket's) and needs the bucket
// live in the committed state or earlier in the same checkpoint (a whole
// record of it, in record order), else the Commit fails; its rows must be
// in strictly ascending key order (the base is not read at commit: a
// delta that does not apply to it is reported as corruption of the
// bucket when read). A whole record of a bucket, and freeing it, drop its
// delta. A full checkpoint replaces all three tables. Store implements
// port.BucketDeltas, so core sends deltas; a Reader reads them.
//
// A Commit error before the commit record is written rolls everything back
// in memory and the store stays usable; an error writing or syncing the
// record leaves the durable state unknown and later commits return
// ErrFailed until the store is reopened.
//
// Measured on the project's 2-core machine (shared, page cache warm):
// committing 1000 buckets × 256 entries (16 MiB) takes ~14 ms with fsync
// (~1.2 GB/s), a 10-bucket checkpoint ~0.3 ms (two fsyncs); a random
// ReadBucket of 256 entries (16 KiB) is one pread and a CRC, ~7 µs (a
// bucket with a delta takes a second pread, a CRC and the merge).
//
// # Deletion log
//
// Commit appends a checkpoint's Deletions after the committed records and
// honours TrimDeletions by advancing deletion_start, both in the same
// commit record, so a trim and an append are one atomic step; a trim
// longer than the log fails the Commit before anything is written.
// Store.DeletionLog (port.DeletionLogReader) reads the records back; a
// Reader does not offer it. Trimmed space is reclaimed in two ways: once a
// commit leaves the log empty, the log restarts at record 0 as soon as the
// records appended fit below the committed log's start (they must not
// overwrite records the current commit record names: a crash before the
// new record lands loads that one); and Compact rewrites the store without
// a log. The log's segments never shrink otherwise.
//
// # Crash recovery
//
// The writer holds an exclusive flock on <path>.lock (HDF5's own file
// locking is turned off: it would keep a restarted writer out while SWMR
// readers have the file open). The kernel drops the lock when a process
// dies, so Open knows that HDF5 status flags left on the file belong to a
// dead writer: it reopens the file with the clear_status_flags file-access
// property and H5Fincrement_filesize(f, 0) (end of allocation = max(EOA,
// EOF); without it closing would truncate rows written after the last
// superblock flush), closes it and opens it normally. No h5clear is needed.
// Stats.Recovered reports it.
//
// Open reads and checks the index extents (checksums, fences, filters)
// but does not walk their entries: a goroutine it starts builds the index
// pages the budget keeps, then rebuilds the data pools' free space (every
// live object's extent marked used, which refuses overlapping or
// out-of-range extents) and the tables' counts from a merge of the
// extents. Reads are served meanwhile; Commit and Check wait for it and
// return its error, Close stops it. Stats.FreeSpaceScan reports its
// length.
//
// The crash tests SIGKILL a writer process at random moments and at the
// failpoints h5.commit.rows-written, h5.commit.before-root,
// h5.commit.after-root, h5.grow.segment-created and h5.grow.segment-ready,
// and check that the reopened store holds exactly the last acknowledged
// checkpoint or the one whose commit record made it. Their workload sends
// bucket deltas in every incremental checkpoint, so the kills at
// h5.commit.rows-written and h5.commit.before-root fall between a delta's
// rows and its commit record.
//
// # Growth
//
// When no segment of a pool has room, a new segment as large as the whole
// pool so far is created in a sidecar HDF5 file next to the store,
// <path>.<group>-<dataset>_NNNN.h5 (cidstore.h5.buckets-rows_0001.h5 holds
// /buckets/rows_0001): built under a .tmp name, closed, fsynced and renamed,
// so it exists complete or not at all; an unreferenced one left by a crash
// is adopted as free space. The store file's HDF5 structure is never
// changed after creation (only the /config and /wal attribute values are
// rewritten): HDF5 1.10 cannot create objects in SWMR-write mode (flushing
// fails with "slist not empty"), and its metadata writes are not
// crash-consistent — a kill while linking a dataset into a group tore the
// group's header in testing, after which nothing could be added to it. A
// store is its .h5 file, the .lock file and any segment files; copy or
// delete them together. A commit record names at most 64 segments over all
// pools; Options.SegmentBytes sizes the first ones (default 64 MiB of rows;
// datasets are allocated at once but stay sparse until written).
//
// # Compaction
//
// Pools grow by doubling and never shrink, and freed space stays in the
// file. Compact(path, opts, progress) takes the writer lock, rewrites the
// last committed state into path+".compact" (Rewrite: every listed bucket
// and value set streamed in id order into one right-sized dataset per
// pool, buckets whole with their deltas applied, so the new file has no
// bucket deltas, no segment files, one commit, fsynced, deletion log dropped),
// renames it over path, fsyncs the directory and then removes the old
// segment files. A crash leaves the old store (before the rename) or the
// new one (after it; old segment files left by the crash are adopted as
// free space by the next Open). The crash test kills it at
// h5.compact.written, h5.compact.renamed and inside the new file's commit.
// DiskUsage reports a store's files, apparent size and allocated bytes.
//
// # SWMR readers
//
// The writer opens the store file read-write, then calls
// H5Fstart_swmr_write. A Reader (OpenReader) opens it RDONLY|SWMR_READ to
// locate /commit and to check segments against their datasets, then reads
// everything with pread, so it needs no H5Drefresh: Refresh reads the
// commit slots and, if the generation changed, applies the new index
// deltas (or a new snapshot) of each table and opens segment files it has
// not seen. Readers see whole checkpoints only, and buckets whole (their
// deltas applied), as the writer returns them. A Reader that falls more than
// ReuseDelayCommits commits behind may find its rows reused: the checksum
// fails and it returns ErrStale (never other data); Refresh and retry.
// While the writer runs, h5dump and h5ls cannot open the store file (HDF5
// marks it open for SWMR writing); h5py can, with swmr=True.
//
// # Memory
//
// The backend keeps no rows in memory. Its index, one loc per bucket,
// per bucket delta and per value set, is paged: entries are packed in
// pages of 1024 ids (32.4 bytes per value set with dense ids,
// TestTableMemory; 48 per bucket or bucket delta), and
// Options.IndexCacheBytes bounds the resident pages of the three tables
// (default 64 MiB; SplitBudget gives it an eighth of the service's
// budget, at most 256 MiB; buckets and bucket deltas keep an eighth of
// it each, value sets the rest).
// The committed index extents (the snapshot and deltas above) are sorted
// by id, and fences, the id of every 64th record of each extent, stay in
// memory (0.125 bytes per record). A read whose page is not resident looks
// its id up in the extents, newest first: one pread of at most 64 records
// per extent until one holds it (a delta's Bloom filter is tried before
// its fences). A commit rebuilds the pages it touches from the extents
// (one pread per extent) and keeps them while the resident pages stay
// under 7/8 of the budget (where eviction brings them); a page above that
// is not built: the commit's ids in it are
// looked up in the same extent blocks, decoding only their records. The
// directory's refs are looked up only for the buckets a commit changed
// (the others' are remembered from earlier commits). Pages are dropped by
// a CLOCK hand once their bytes pass the budget, to 7/8 of it; every
// resident page equals what the extents give, so any page can go.
// A commit does not change pages while it runs: its new locs wait in an
// overlay that reads consult first, are compared with the committed
// entries page by page in id order (resolve: each page the commit touches
// is read once, built or not), and enter the resident pages when the
// commit is durable. So the index takes the budget plus the overlay of one
// commit (per object it writes: a 64-byte entry, a map slot of id → index
// and 4 bytes of sorted order; ~90 bytes by Go's map layout, not
// measured), whatever the size of the file. SWMR Readers
// and Rewrite keep their whole index resident.
//
// Besides: one bit per granule of each pool (rows: 1 bit per 8 entries,
// values: 1 bit per 4 values), and the commit write buffer
// (Options.CacheBytes/4, at most 8 MiB). HDF5's metadata cache is capped
// at CacheBytes/2. Repeated reads are served by the kernel page cache.
// Writing an index snapshot streams it in 64 KiB chunks. A checkpoint's
// records arrive one at a time through its Stream and go straight into
// the write buffer.
//
// # Format version
//
// FormatVersion (3) is stored in every commit record and in /config
// (format_version, version_string "cidstore h5store layout 3"). Open and
// OpenReader refuse a file of a newer version ("upgrade cidstore") and of
// one older than 1 (the message says how to move the data), with errors
// wrapping ErrFormatVersion that name the file. Version 2 added num_keys,
// num_values, num_spilled_keys and deletion_start to the commit record, in
// bytes version 1 always wrote as zero: a version 1 file opens with counts
// 0 and its whole deletion log live. Version 3 added the bucket delta
// index (bucket_delta_meta_delta_count at byte 2792,
// bucket_delta_meta_snapshot at 2800, bucket_delta_meta_deltas at 2832 to
// 3344), in bytes versions 1 and 2 wrote as zero: their files open with no
// deltas. Each build refuses the versions after its own, which it would
// misread (a version 1 build would ignore deletion_start, a version 2
// build the bucket deltas).
//
// An older file becomes version 3 at its next commit, so before that a
// writer's Open copies it, the .h5 file and its segment files, into the
// directory <path>.format<N>-backup (N its version; built as .tmp, every
// file and the directory fsynced, renamed; zero blocks left as holes),
// with the file closed in HDF5, and logs the path; Stats.FormatBackup
// names it. A backup directory already there is kept, not replaced.
// Compact backs an older store up the same way. The backup opens with the
// build that wrote it (or this one) as it was; delete it once the upgraded
// store is trusted.
//
// # Concurrency
//
// Store methods are safe for concurrent use. Reads share a lock that
// Commit takes exclusively only to change the in-memory tables and segment
// lists, a batch of up to 1024 new versions at a time, after their rows
// are written: not while it writes rows, reads index pages, fsyncs or
// writes the commit record (TestReadDuringCommit). The tables have their
// own lock, so reads that load index pages proceed together. A read during a commit returns the
// committed version of every object the commit does not write; one it
// writes may read as either version (core never reads those). LoadMeta
// and Check wait for a commit in progress; a full checkpoint (a new
// store's first) holds the lock throughout. Commit runs a checkpoint's
// Stream (port.Checkpoint) without the lock, so core may read evicted
// buckets while it streams. One Store per file (ErrLocked otherwise). A
// Reader in the same process as the Store works; it briefly shares HDF5's
// file object when it opens the file.
package h5store
