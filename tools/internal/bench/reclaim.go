package bench

import (
	"errors"
	"fmt"
	"time"
)

// ReclaimFigures are the fields of the workloads that delete and then
// reclaim space (W3, W4). Disk figures are taken after a clean Close, like
// every disk_bytes of cidbench; they stay zero for engines that keep
// nothing.
type ReclaimFigures struct {
	DeletedPairs      int     `json:"deleted_pairs"`      // pairs the deletions removed
	Deletions         int     `json:"deletions"`          // entries of the delete batches (a whole key is one)
	DeleteSeconds     float64 `json:"delete_s"`           // time of every delete batch, back to back
	DeletePairsPerS   float64 `json:"delete_pairs_per_s"` // DeletedPairs / DeleteSeconds
	DeleteBatchP99Ms  float64 `json:"delete_batch_p99_ms"`
	DiskBytesBefore   int64   `json:"disk_bytes_before"` // after the inserts, before any delete
	DiskBytesAfter    int64   `json:"disk_bytes_after"`  // after the deletes and the maintenance
	DiskApparentAfter int64   `json:"disk_apparent_bytes_after"`
	ReopenMsBefore    float64 `json:"reopen_ms_before"` // reopen after the inserts (reopen_ms is the last one)
}

// deleteAll applies dels in batches of cfg.Batch, each one durable commit,
// and fills the delete figures of f; pairs is how many pairs they remove.
func deleteAll(cfg Config, eng Engine, dels []Deletion, pairs int, f *ReclaimFigures) error {
	d, ok := eng.(Deleter)
	if !ok {
		return fmt.Errorf("engine %s cannot delete", cfg.Engine.Name)
	}
	bl := NewLatency()
	t0 := time.Now()
	for lo := 0; lo < len(dels); lo += cfg.Batch {
		tb := time.Now()
		if err := d.DeleteBatch(dels[lo:min(lo+cfg.Batch, len(dels))]); err != nil {
			return fmt.Errorf("delete batch %d: %w", lo/cfg.Batch, err)
		}
		bl.Record(time.Since(tb))
	}
	el := time.Since(t0)
	f.DeletedPairs += pairs
	f.Deletions += len(dels)
	f.DeleteSeconds = round3(el.Seconds())
	f.DeletePairsPerS = float64(int64(float64(pairs) / el.Seconds()))
	f.DeleteBatchP99Ms = ms(bl.Quantile(0.99))
	cfg.logf("deleted %d pairs (%d deletions) in %v: %.0f pairs/s",
		pairs, len(dels), el.Round(time.Millisecond), f.DeletePairsPerS)
	return nil
}

// maintain runs the engine's maintenance once and returns its duration in
// milliseconds; 0 for engines that have none.
func maintain(cfg Config, eng Engine) (float64, error) {
	m, ok := eng.(Maintainer)
	if !ok {
		cfg.logf("no maintenance to run")
		return 0, nil
	}
	t := time.Now()
	if err := m.Maintain(); err != nil {
		return 0, fmt.Errorf("maintain: %w", err)
	}
	el := ms(time.Since(t))
	cfg.logf("maintenance in %.1f ms", el)
	return el, nil
}

// cycled is what cycle measured.
type cycled struct {
	allocated, apparent int64 // DiskBytes after the Close
	closeMs, reopenMs   float64
}

// cycle closes eng, measures its directory and opens it again, for engines
// that keep their data across Close (others are returned as they are, with
// zero figures). It returns the engine to carry on with; on error the old
// one is closed and nil is returned.
func cycle(cfg Config, eng Engine) (Engine, cycled, error) {
	return cycleWith(cfg, eng, nil)
}

// cycleWith is cycle with between, if not nil, run on the closed engine's
// directory after the measurement and before the reopen.
func cycleWith(cfg Config, eng Engine, between func(c *cycled) error) (Engine, cycled, error) {
	var c cycled
	if !cfg.Engine.Durable(cfg.Sync) || cfg.Dir == "" {
		return eng, c, nil
	}
	t := time.Now()
	if err := eng.Close(); err != nil {
		return nil, c, fmt.Errorf("close: %w", err)
	}
	c.closeMs = ms(time.Since(t))
	var err error
	if c.allocated, c.apparent, err = DiskBytes(cfg.Dir); err != nil {
		return nil, c, fmt.Errorf("disk usage: %w", err)
	}
	if between != nil {
		if err := between(&c); err != nil {
			return nil, c, err
		}
	}
	t = time.Now()
	if eng, err = cfg.Engine.Open(cfg.Dir, cfg.Sync); err != nil {
		return nil, c, fmt.Errorf("reopen: %w", err)
	}
	c.reopenMs = ms(time.Since(t))
	return eng, c, nil
}

// setCycled copies the figures of the last cycle into r: disk, close and
// reopen times, as W1's finish reports them.
func (r *Result) setCycled(cfg Config, c cycled) {
	r.DiskBytes, r.DiskApparentBytes, r.CloseMs = c.allocated, c.apparent, c.closeMs
	if cfg.Engine.Durable(cfg.Sync) && cfg.Dir != "" {
		r.ReopenMs = &c.reopenMs
	}
	r.ReclaimFigures.DiskBytesAfter, r.ReclaimFigures.DiskApparentAfter = c.allocated, c.apparent
}

// closeWith closes eng unless it is nil and joins the error to err.
func closeWith(eng Engine, err error) error {
	if eng == nil {
		return err
	}
	return errors.Join(err, eng.Close())
}

// mismatch counts one wrong answer on r and keeps the first description.
func (r *Result) mismatch(format string, args ...any) {
	r.Mismatches++
	if r.FirstMismatch == "" {
		r.FirstMismatch = fmt.Sprintf(format, args...)
	}
}
