// Package bench is the benchmark harness behind cidbench: the deterministic
// workload generators of docs BENCH.md, one Engine adapter per store under
// test (cidstore, a Go map, Pebble, Badger, bbolt), exact latency
// histograms, and the JSON result line.
//
// # Workloads
//
// W1 (ingest then lookup) and W2 (lookups under ingest) are generated from
// one splitmix64 stream seeded with --seed, exactly as BENCH.md specifies,
// so that figures are comparable across harnesses: NewW1 with K = 1 000 000
// yields 2 998 416 pairs. A new workload is a RunFunc added to Workloads.
//
// W3 (heavy keys) regenerates its 11M pairs from their positions instead of
// storing them; W4 (deletes) deletes half of W1's pairs, chosen from the
// seed (W4Deletes); both need engines that implement Deleter, and time the
// engine's Maintainer. W5 (recovery) inserts W1's first N pairs in a copy of
// the running program that then kills itself with SIGKILL, so a program
// that runs W5 must call Subprocess first in main (TestMain for tests).
// Workload-specific figures are embedded pointer structs of Result
// (W3Figures, ...): absent from the JSON line of other workloads.
// W6 (the service) sends W1's pairs and GETs to servers in processes of
// their own (cidstore-zmq, zmq-echo, redis-always, redis-everysec): see w6.go.
//
// # Engines
//
// Every engine is opened on its own directory and sees the same batches in
// the same order. Peers store a pair as the 32-byte composite key
// key‖value (big-endian) with an empty value, commit one batch per durable
// commit, and answer a GET with a prefix scan over the 16-byte key, so
// their results come out ascending like cidstore's. Each adapter registers
// itself from its own file (engine_NAME.go); cidstore-hdf5 will be one more
// such file, behind the cgo build tag, with storage-hdf5 required in
// tools/go.mod.
//
// # Measurement
//
// Latencies are exact: Latency counts every operation at nanosecond
// resolution, with an overflow list above 1 ms, so percentiles are computed
// from all samples, never a sample of them. Peak RSS is the process's
// VmHWM, which is why cidbench runs each engine in a subprocess of its own;
// the peak starts afresh once the data set is generated and its RSS taken
// (dataset_rss_bytes, DatasetRSSBytes), so peak_rss_bytes −
// dataset_rss_bytes is what the engine held at most.
package bench
