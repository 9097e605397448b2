// Package app is the cidstore binary's wiring: settings (config.go), the
// fx module of `cidstore serve` (module.go), logging (logging.go), metrics
// (metrics.go), the store's construction (store.go) and the command line
// (cli.go, import.go). It is the only package that imports fx, zap and
// Prometheus together with every adapter; the libraries take small ports.
//
// # Settings
//
// Every setting has a YAML key, a flag and an environment variable
// (Settings lists them; `cidstore help settings` prints the table).
// Precedence: flag > environment (CIDSTORE_*) > YAML file (--config /
// CIDSTORE_CONFIG) > default. An environment variable set to the empty
// string counts as unset.
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
// # Backends
//
// openStore is the one place that chooses the backend: today the durable
// memory backend (DATA_DIR/cidstore.snapshot plus DATA_DIR/cidstore.wal).
// The reader role needs the HDF5 backend and fails clearly until it lands.
package app
