package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
)

// DefaultWALRecords is W5's N: the pairs logged past the last checkpoint
// before the crash.
const DefaultWALRecords = 1_000_000

// walRecordBytes is the size of one cidstore WAL record; a batch also logs
// a TXN_START and a TXN_COMMIT record.
const walRecordBytes = 64

// w5ReopenSample is the number of keys verified after the final clean
// reopen.
const w5ReopenSample = 1000

// W5Figures are the fields of W5 (recovery). The result line's lookup_*
// fields are the verification GETs, one per key, right after recovery;
// insert_* are the filler's (batches of Config.Batch, one durable commit
// each); reopen_ms is a clean reopen once the recovered store is closed.
type W5Figures struct {
	WALRecords   int   `json:"wal_records"`              // pairs logged past the last checkpoint, all acknowledged before the kill
	WALSizeBytes int64 `json:"wal_size_bytes,omitempty"` // cidstore: the WAL file's fixed size
	// RecoveryMs runs from the start of Open in a fresh process to the
	// first GET answered (the key of the last acknowledged pair).
	RecoveryMs       float64        `json:"recovery_ms"`
	RecoveredRecords *uint64        `json:"recovered_records,omitempty"` // cidstore: WAL records replayed (Stats)
	VerifiedKeys     int            `json:"recovery_verified_keys"`
	FillEngineStats  map[string]any `json:"fill_engine_stats,omitempty"` // the filler's, just before the kill
}

// W5's data set is W1's for the fewest keys that give at least N pairs
// (w5Keys), and its first N pairs in W1's shuffled order are inserted: so
// --keys does not apply, and the keys field reports that K.
func w5Keys(n int) int {
	k, p := 0, 0
	for p < n {
		p += 1 + int(Mix(uint64(k))%5)
		k++
	}
	return max(k, 1)
}

// w5WALBytes sizes the WAL for n pairs in batches of batch with a 30 %
// margin and at least the default size, so that it never fills (which
// would force a checkpoint) during the fill: 80 MiB for 1M pairs.
func w5WALBytes(n, batch int) int64 {
	recs := int64(n) + 2*int64((n+batch-1)/batch)
	b := int64(float64(recs*walRecordBytes) * 1.3)
	b = (b + 1<<20 - 1) &^ (1<<20 - 1)
	return max(b, cidstore.DefaultWALSizeBytes)
}

// w5Open opens the engine for W5. Cidstore engines get their durable layout
// whatever the sync mode (the WAL is written in both; only fdatasync is
// skipped with none, and a killed process loses nothing the kernel has),
// a WAL of walBytes, no periodic checkpoint and no early one on WAL fill.
// Peers are opened as usual.
func w5Open(spec EngineSpec, dir string, sync bool, walBytes int64) (Engine, error) {
	if spec.OpenDurable == nil {
		return spec.Open(dir, sync)
	}
	policy := cidstore.SyncNone
	if sync {
		policy = cidstore.SyncAlways
	}
	return spec.OpenDurable(dir, cidstore.Options{
		Sync:                policy,
		WALSizeBytes:        walBytes,
		CheckpointInterval:  -1,
		CheckpointFillRatio: 1,
	})
}

// w5FillStep is the Subprocess step of W5's filler.
const w5FillStep = "w5-fill"

// w5FillArgs is what the filler is told (JSON in its environment).
type w5FillArgs struct {
	Engine       string `json:"engine"`
	Dir          string `json:"dir"`
	Sync         bool   `json:"sync"`
	Seed         uint64 `json:"seed"`
	Keys         int    `json:"keys"`
	Batch        int    `json:"batch"`
	Records      int    `json:"records"`
	WALSizeBytes int64  `json:"wal_size_bytes"`
	Quiet        bool   `json:"quiet"`
}

// w5FillReport is the filler's one stdout line, written after its last
// acknowledged batch and right before it kills itself.
type w5FillReport struct {
	AckedPairs      int            `json:"acked_pairs"`
	InsertSeconds   float64        `json:"insert_s"`
	InsertPairsPerS float64        `json:"insert_pairs_per_s"`
	BatchP50Ms      float64        `json:"batch_p50_ms"`
	BatchP99Ms      float64        `json:"batch_p99_ms"`
	BatchMaxMs      float64        `json:"batch_max_ms"`
	EngineStats     map[string]any `json:"engine_stats,omitempty"`
}

// checkpointer is implemented by cidstore engines: the filler starts after
// a checkpoint, so that every record it logs is past the last one.
type checkpointer interface{ Checkpoint() error }

// w5Fill is the filler process: it opens the engine, checkpoints it,
// inserts the first Records pairs of the data set in batches, each
// acknowledged (durable under the sync mode) before the next, reports, and
// sends itself SIGKILL: no Close, no final checkpoint, nothing flushed that
// the engine had not already written.
func w5Fill(arg []byte, stdout, stderr io.Writer) error {
	var a w5FillArgs
	if err := json.Unmarshal(arg, &a); err != nil {
		return fmt.Errorf("w5 fill arguments: %w", err)
	}
	spec, err := LookupEngine(a.Engine)
	if err != nil {
		return err
	}
	cfg := Config{Workload: "W5", Engine: spec, Batch: a.Batch}
	if !a.Quiet {
		cfg.Log = stderr
	}
	w, err := NewW1(a.Seed, a.Keys, a.Batch)
	if err != nil {
		return err
	}
	if a.Records > w.P() {
		return fmt.Errorf("w5 fill: %d records but only %d pairs", a.Records, w.P())
	}
	eng, err := w5Open(spec, a.Dir, a.Sync, a.WALSizeBytes)
	if err != nil {
		return fmt.Errorf("open %s: %w", a.Engine, err)
	}
	if c, ok := eng.(checkpointer); ok {
		if err := c.Checkpoint(); err != nil {
			return fmt.Errorf("checkpoint before the fill: %w", err)
		}
	}
	bl := NewLatency()
	t0 := time.Now()
	var buf []Pair
	for lo := 0; lo < a.Records; lo += a.Batch {
		batch := w.PairsIn(lo, min(lo+a.Batch, a.Records), buf)
		buf = batch[:0]
		tb := time.Now()
		if err := eng.InsertBatch(batch); err != nil {
			return fmt.Errorf("insert batch %d: %w", lo/a.Batch, err)
		}
		bl.Record(time.Since(tb))
	}
	el := time.Since(t0)
	rep := w5FillReport{
		AckedPairs:      a.Records,
		InsertSeconds:   round3(el.Seconds()),
		InsertPairsPerS: float64(int64(float64(a.Records) / el.Seconds())),
		BatchP50Ms:      ms(bl.Quantile(0.50)),
		BatchP99Ms:      ms(bl.Quantile(0.99)),
		BatchMaxMs:      ms(bl.Max()),
	}
	if s, ok := eng.(Statser); ok {
		rep.EngineStats = s.Stats()
	}
	line, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return err
	}
	cfg.logf("filled %d pairs in %v (%.0f pairs/s); kill -9", a.Records, el.Round(time.Millisecond), rep.InsertPairsPerS)
	if err := syscall.Kill(os.Getpid(), syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill -9 self: %w", err)
	}
	time.Sleep(time.Minute) // the signal is on its way
	return errors.New("survived SIGKILL")
}

// runW5 is BENCH.md's W5: a filler process logs N pairs past the last
// checkpoint and is killed with SIGKILL; this process then times the
// recovery (Open to the first GET answered), checks the GET of every key
// against the acknowledged pairs, closes, and times a clean reopen. It
// needs an engine that persists; cidstore engines are opened by w5Open.
func runW5(cfg Config) (Result, error) {
	r := newResult(cfg)
	n := cfg.WALRecords
	if n == 0 {
		n = DefaultWALRecords
	}
	if n < 1 {
		return r, fmt.Errorf("w5: %d WAL records", n)
	}
	if !cfg.Engine.Durable(true) {
		return r, fmt.Errorf("w5: engine %s keeps nothing across a crash", cfg.Engine.Name)
	}
	if cfg.Dir == "" {
		return r, errors.New("w5: no data directory")
	}
	keys := w5Keys(n)
	w, err := NewW1(cfg.Seed, keys, cfg.Batch)
	if err != nil {
		return r, err
	}
	r.Keys, r.Pairs = keys, n
	f := &W5Figures{WALRecords: n}
	r.W5Figures = f
	// Pairs the filler does not insert: the tail of the last key's set.
	notAcked := make(map[Pair]bool, w.P()-n)
	for i := n; i < w.P(); i++ {
		notAcked[w.Pair(i)] = true
	}
	check := func(j int, got []E) bool {
		g := 0
		for _, v := range w.Values(j) {
			if notAcked[Pair{Key: w.Keys[j], Value: v}] {
				continue
			}
			if g == len(got) || got[g] != v {
				return false
			}
			g++
		}
		return g == len(got)
	}

	walBytes := w5WALBytes(n, cfg.Batch)
	if cfg.Engine.OpenDurable != nil {
		f.WALSizeBytes = walBytes
	}
	rep, err := w5RunFiller(cfg, w5FillArgs{
		Engine: cfg.Engine.Name, Dir: cfg.Dir, Sync: cfg.Sync, Seed: cfg.Seed,
		Keys: keys, Batch: cfg.Batch, Records: n, WALSizeBytes: walBytes, Quiet: cfg.Log == nil,
	})
	if err != nil {
		return r, err
	}
	r.InsertSeconds, r.InsertPairsPerS = rep.InsertSeconds, rep.InsertPairsPerS
	r.BatchP50Ms, r.BatchP99Ms, r.BatchMaxMs = rep.BatchP50Ms, rep.BatchP99Ms, rep.BatchMaxMs
	f.FillEngineStats = rep.EngineStats

	// Recovery, in this process, which has never opened the store.
	r.DatasetRSSBytes = DatasetRSSBytes()
	j := int(w.PairKey[n-1])
	t := time.Now()
	eng, err := w5Open(cfg.Engine, cfg.Dir, cfg.Sync, walBytes)
	if err != nil {
		return r, fmt.Errorf("recover %s: %w", cfg.Engine.Name, err)
	}
	got, gerr := eng.Get(w.Keys[j])
	f.RecoveryMs = ms(time.Since(t))
	if gerr != nil || !check(j, got) {
		r.mismatch("first GET after recovery, key index %d: %d values, err %v", j, len(got), gerr)
	}
	if s, ok := eng.(Statser); ok {
		r.EngineStats = s.Stats()
		if v, ok := r.EngineStats["recovered_records"].(uint64); ok {
			f.RecoveredRecords = &v
			if v != uint64(n) {
				cfg.logf("warning: %d WAL records replayed, %d pairs logged past the checkpoint", v, n)
			}
		}
	}
	cfg.logf("recovered in %.1f ms", f.RecoveryMs)

	// Every acknowledged pair, key by key.
	lat := NewLatency()
	for j := range keys {
		t := time.Now()
		got, err := eng.Get(w.Keys[j])
		lat.Record(time.Since(t))
		if err != nil || !check(j, got) {
			r.mismatch("after recovery, key index %d: %d values, err %v", j, len(got), err)
		}
	}
	f.VerifiedKeys = keys
	r.setLookups(lat)
	cfg.logf("verified %d keys (%d pairs): p50 %.2fµs p99 %.2fµs, %d mismatches",
		keys, n, r.LookupP50Us, r.LookupP99Us, r.Mismatches)

	// A clean close (cidstore: a checkpoint of everything replayed) and a
	// clean reopen.
	t = time.Now()
	if err := eng.Close(); err != nil {
		return r, fmt.Errorf("close after recovery: %w", err)
	}
	r.CloseMs = ms(time.Since(t))
	if r.DiskBytes, r.DiskApparentBytes, err = DiskBytes(cfg.Dir); err != nil {
		return r, fmt.Errorf("disk usage: %w", err)
	}
	t = time.Now()
	eng, err = w5Open(cfg.Engine, cfg.Dir, cfg.Sync, walBytes)
	if err != nil {
		return r, fmt.Errorf("reopen: %w", err)
	}
	got, gerr = eng.Get(w.Keys[j])
	reopen := ms(time.Since(t))
	r.ReopenMs = &reopen
	if gerr != nil || !check(j, got) {
		r.mismatch("after a clean reopen, key index %d: %d values, err %v", j, len(got), gerr)
	}
	rng := NewSplitMix64(cfg.Seed ^ 0xD1B54A32D192ED03)
	for range min(w5ReopenSample, keys) {
		j := int(rng.Next() % uint64(keys))
		if got, err := eng.Get(w.Keys[j]); err != nil || !check(j, got) {
			r.mismatch("after a clean reopen, key index %d: %d values, err %v", j, len(got), err)
		}
	}
	if err := eng.Close(); err != nil {
		return r, fmt.Errorf("close after reopen: %w", err)
	}
	r.PeakRSSBytes = PeakRSSBytes()
	return r, nil
}

// w5RunFiller runs the filler and checks that it reported and then died of
// SIGKILL.
func w5RunFiller(cfg Config, a w5FillArgs) (w5FillReport, error) {
	var rep w5FillReport
	arg, err := json.Marshal(a)
	if err != nil {
		return rep, err
	}
	cfg.logf("filler: %d pairs (%d keys) in batches of %d, then kill -9", a.Records, a.Keys, a.Batch)
	out, err := runSubprocess(w5FillStep, arg, cfg.Log)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err == nil {
			err = errors.New("exited normally")
		}
		return rep, fmt.Errorf("w5 filler: %w (want death by SIGKILL)", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return rep, fmt.Errorf("w5 filler: %w, want death by SIGKILL (does main call bench.Subprocess first?)", err)
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return rep, fmt.Errorf("w5 filler died before reporting (stdout %q): %w", out, err)
	}
	if rep.AckedPairs != a.Records {
		return rep, fmt.Errorf("w5 filler acknowledged %d pairs, want %d", rep.AckedPairs, a.Records)
	}
	return rep, nil
}
