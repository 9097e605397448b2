// Package autotune is the feedback loop of DESIGN.md §8 that tunes the
// writer's batching: collect a sample of the write path → analyse it →
// adjust the batch size and the flush interval → sleep (100 ms–1 s).
//
// It is storage-agnostic and imports only the standard library: whatever
// batches writes (the app's server-side batcher) reads the two knobs
// (Controller.BatchSize, Controller.FlushInterval) on its hot path and
// hands a Sample per period to Controller.Step.
//
// # Model
//
// The batcher groups single-pair mutations into one WAL transaction of at
// most BatchSize pairs; a group is cut when full or when it has waited
// FlushInterval. Two signals describe it:
//
//   - demand (Sample.QueueDepth): the pairs available when a group was
//     cut — those in the group plus those that had to wait for the next
//     one. Groups can only be as large as the demand.
//   - batching delay (Sample.P99): how long a pair waited in the batcher
//     because of the knobs: from its arrival (or from the moment the store
//     finished the previous group, if it arrived while that group was in
//     the store) to the start of its group's store call; a pair that did
//     not fit in the previous group counts its whole wait. This is the
//     latency the knobs move. The store's own commit (append + fdatasync)
//     is deliberately left out: it is a floor no knob can lower (0.3–0.6
//     ms per fdatasync on the reference disk, several ms on a busy one),
//     and a breaker fed with it would stay open forever under
//     sync=always.
//
// Two PID controllers (Kp 0.5, Ki 0.1, Kd 0.3), both in the log2 domain so
// that a step is proportional to the relative error:
//
//   - batch size tracks Headroom × demand within [32, 1024]: the cap never
//     makes pairs queue behind a full group, and a burst cannot build a
//     group longer than the demand justifies;
//   - flush interval tracks the mode's p99 batching-delay setpoint within
//     [MinFlushInterval, MaxFlushInterval]. While the batch cap binds
//     (demand above the batch size) the delay measures queueing behind the
//     cap, not lingering, so the interval loop holds.
//
// The modes are operating points on the latency / pairs-per-fsync
// trade-off: throughput (headroom 2, delay setpoint 125 µs), hybrid (1.5,
// 100 µs) and latency (1.25, 50 µs).
//
// # Robustness
//
//   - Spike filtering: the controllers see the median of the last three
//     samples of each signal, so a single outlier never moves a knob.
//   - Hysteresis: a knob changes only after Hysteresis (3) consecutive
//     samples whose error is outside the dead band with the same sign.
//   - Circuit breaker: when the raw p99 stays above BreakerP99 (150 µs)
//     for BreakerFor (5 s), both knobs go back to their initial (safe)
//     values and stay there until the p99 has been back under the limit
//     for RecoverFor (5 s); then tuning resumes from the safe values.
//   - Manual setting: SetBatchSize sets the batch size (REST PUT
//     /config/batch_size); the loop continues from it.
//   - Disabled: Options.Disabled freezes both knobs (SetBatchSize still
//     works).
//
// Every Step and SetBatchSize yields a Decision holding the inputs, the
// knobs before and after and the reason, returned and passed to
// Options.Report, for the caller to log and export.
//
// # Concurrency
//
// Controller is safe for concurrent use. BatchSize and FlushInterval are
// single atomic loads (the batcher calls them per group); Step and
// SetBatchSize serialise on a mutex. Nothing here sleeps except Loop, a
// thin ticker around Step; tests drive Step with a simulated clock.
package autotune
