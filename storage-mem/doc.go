// Package memstore is the in-memory reference backend of CIDStore: the
// oracle every other backend is compared with.
//
// # Modes
//
// New returns a volatile backend: checkpoints are kept in memory and vanish
// with the process. Open(path) returns a durable backend: every checkpoint
// is also written as a complete snapshot file, atomically (write a
// temporary file, fsync it, rename it over path, fsync the directory), so
// that the snapshot plus the core's WAL make a durable store without HDF5.
//
// # Snapshot file format (version 2, little-endian)
//
//	magic "CIDSNAP1" | u32 version | u32 reserved
//	meta: u32 format_version, u8 global_depth, 3 pad, u64 hash_seed,
//	      u32 bucket_capacity, u32 num_buckets, u64 checkpoint_lsn,
//	      u32 next_bucket_id, u32 pad, u64 next_value_set_id, i64 created,
//	      u64 keys, u64 values, u64 spilled_keys
//	u64 n_slots, n_slots × u32 bucket id
//	u64 n_buckets, each: u32 id, u8 local_depth, 3 pad, u32 sorted_count,
//	      i64 last_compacted, u64 n_bytes, entries (64 bytes each)
//	u64 n_sets, each: u64 id, u32 sorted_count, u32 pad, u64 n_value_bytes,
//	      values, u64 n_tombstone_bytes, tombstones
//	u64 n_deletions, each: u64 key_high, u64 key_low, u64 value_group,
//	      i64 unix_nano (the deletion log after trimming, oldest first)
//	u32 CRC32C of everything before it
//
// Version 1 snapshots (no keys/values/spilled_keys, no deletion log) are
// still read: their counts load as 0 and their deletion log as empty; the
// next commit writes version 2. A snapshot whose CRC does not match, or of
// another version, is reported as port.ErrCorrupt.
//
// # Concurrency
//
// All methods are safe for concurrent use.
package memstore
