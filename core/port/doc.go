// Package port defines what the CIDStore core needs from a storage backend:
// the persisted forms of buckets and value sets, the global metadata, and one
// atomic checkpoint commit. Adapters (storage-mem, storage-hdf5) implement
// Backend; core never imports an adapter.
//
// # Persisted forms
//
// Records cross the port as plain bytes in fixed little-endian layouts, so a
// backend can store them without interpreting them:
//
//   - a HashEntry is 64 bytes: key (high u64, low u64), slot0 (high, low),
//     slot1 (high, low), checksum (u64 CRC32C of bytes 0..47, u64 reserved 0);
//     see EntrySize.
//   - a value is 16 bytes: high u64, low u64; see ValueSize.
//
// Core encodes and verifies these; a backend only copies them.
//
// # Checkpoints
//
// The core calls Commit with the changes since the previous successful
// Commit. A backend must apply a Checkpoint atomically: after a crash at any
// moment, Load returns either the previous committed state or the new one,
// never a mix. Commit is called by one goroutine at a time.
package port
