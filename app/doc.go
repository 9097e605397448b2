// Package app is the cidstore binary's wiring: settings (config.go), the
// fx module of `cidstore serve` (module.go), logging (logging.go), metrics
// (metrics.go), the store's construction (store.go), role reader's replica
// (replica.go) and the command line (cli.go, import.go). It is the only
// package that imports fx, zap and Prometheus together with every adapter;
// the libraries take small ports.
//
// # Settings
//
// Every setting has a YAML key, a flag and an environment variable
// (Settings lists them; `cidstore help settings` prints the table).
// Precedence: flag > environment (CIDSTORE_*) > YAML file (--config /
// CIDSTORE_CONFIG) > default. An environment variable set to the empty
// string counts as unset, except for the settings whose empty value means
// off (pull_endpoint, pub_endpoint, jwt_secret): CIDSTORE_PULL_ENDPOINT=
// turns the PULL socket off.
//
// # Lifecycle
//
// `serve` starts REST first (so /health answers and /ready reports 503
// while the WAL is replayed), then opens the store, binds the ZeroMQ data
// plane and only then reports ready. On SIGTERM or SIGINT it reverses: not
// ready, close the data plane (draining in-flight requests), close the
// store (final checkpoint and WAL sync), stop REST, exit 0. A second signal
// exits at once with status 1.
//
// # Roles
//
// Role writer (the default) owns DATA_DIR: it opens the backend read-write,
// logs every mutation to the WAL (DATA_DIR/cidstore.wal) before it
// acknowledges it, checkpoints every checkpoint_interval and serves the
// whole protocol.
//
// Role reader (`serve --role reader`, CIDSTORE_ROLE=reader) is a read-only
// replica of a writer's HDF5 store on the same DATA_DIR (DESIGN.md §6/§9):
// it answers GET and METRICS, answers every mutation 503 (PULL messages
// are rejected), and /ready is 200 once it has loaded the writer's file.
// It opens DATA_DIR/cidstore.h5 and its segment files read-only (an HDF5
// SWMR reader; no lock, no WAL, never creates or writes a file, not even
// DATA_DIR) and waits, not ready, until the writer has created the file.
// Every reader_refresh (default min(checkpoint_interval, 1s)) it moves to
// the writer's newest commit; when there is one, it loads it into a new
// read-only core store, swaps that in atomically and closes the old one.
// Readers therefore see whole checkpoints, never a torn state, and lag the
// writer by at most checkpoint_interval + reader_refresh + the load time. A
// load that the writer overtakes (it reused the space of that commit,
// h5store.ErrStale) is retried on the newest commit; while loads fail the
// reader keeps serving the previous checkpoint. cidstore_replica_* metrics
// expose the lag: cidstore_replica_checkpoint_lsn,
// cidstore_replica_refresh_age_seconds (time since the reader last found
// it serves the newest commit), cidstore_replica_generation and counters of
// loads, retried loads and errors. Any number of readers may follow one
// writer; a reader keeps serving after its writer stops.
//
// # Backends
//
// openStore is the one place that chooses the writer's backend (setting
// backend):
//
//   - hdf5 (default): h5store on DATA_DIR/cidstore.h5 (plus its .lock file
//     and segment files cidstore.h5.*), copy-on-write commits, recovery of
//     a killed writer without h5clear. It flocks cidstore.h5.lock, so a
//     second writer on the same DATA_DIR fails to start (h5store.ErrLocked).
//     cache_bytes sizes its HDF5 metadata cache and commit buffer.
//   - mem: the durable memory backend, DATA_DIR/cidstore.snapshot written
//     whole at every checkpoint; role reader cannot follow it (the WAL's
//     flock still keeps a second writer out).
//
// Both keep the WAL in DATA_DIR/cidstore.wal; core holds the whole store
// in memory either way (the backend is what checkpoints and recovery read
// and write).
package app
