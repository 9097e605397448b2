package bench

import (
	"fmt"
	"time"
)

// w4VerifyKeys is the size of W4's verification sample: every key when K
// is at most this, else every ceil(K/w4VerifyKeys)-th key.
const w4VerifyKeys = 100_000

// W4Figures are the fields of W4 (deletes and reclamation). The result
// line's lookup_* fields are the GETs after the deletes and the
// maintenance, checked against the reduced data set.
type W4Figures struct {
	DeletedKeys         int     `json:"deleted_keys"`          // whole-key deletions
	DeletedValues       int     `json:"deleted_values"`        // single-value deletions
	VerifiedKeys        int     `json:"deleted_verified_keys"` // keys checked right after the deletes
	GCMs                float64 `json:"gc_ms"`                 // the engine's maintenance (cidstore: Compact + Checkpoint)
	LookupP50UsBefore   float64 `json:"lookup_p50_us_before"`
	LookupP99UsBefore   float64 `json:"lookup_p99_us_before"`
	LookupP999UsBefore  float64 `json:"lookup_p999_us_before"`
	LookupAvgUsBefore   float64 `json:"lookup_avg_us_before"`
	LookupP99UsAfter    float64 `json:"lookup_p99_us_after"`
	LookupP999UsAfter   float64 `json:"lookup_p999_us_after"`
	LookupMismatchesPre int64   `json:"lookup_mismatches_before"` // part of mismatches
	// Engines with a file compaction (EngineSpec.CompactFiles) run it on
	// the closed store after the maintenance; the lookups after are made
	// on the compacted store.
	FileCompactMs         float64 `json:"file_compact_ms,omitempty"`
	DiskBytesCompacted    int64   `json:"disk_bytes_compacted,omitempty"`
	DiskApparentCompacted int64   `json:"disk_apparent_bytes_compacted,omitempty"`
	DiskCompactedRatio    float64 `json:"disk_compacted_ratio,omitempty"` // disk_bytes_compacted / disk_bytes_before
}

// W4Deletes is W4's choice of deletions over a W1 data set: half of the
// pairs, a quarter of them as whole keys and a quarter as single values of
// other keys, applied in a shuffled order. All of it comes from one
// splitmix64 stream seeded with seed ^ Mix(0x5734_0000):
//
//	Fisher-Yates over the key indices (i = K-1 … 1, swap i with next() mod (i+1));
//	whole keys: the keys in that order until their pairs reach P/2/2;
//	single values: a partial Fisher-Yates over the values of the other keys,
//	  in key order (i = 0 … n-1, swap i with i + next() mod (len-i)), the
//	  first P/2 − (whole-key pairs) of them;
//	the deletions (whole keys first, then values) shuffled by Fisher-Yates.
//
// A single-value deletion may empty a key; it then reads as absent.
type W4Deletes struct {
	Dels   []Deletion
	Gone   []bool // Gone[v]: W1.Vals[v] is deleted
	Keys   int    // whole keys deleted
	Values int    // single values deleted
	Pairs  int    // pairs removed
}

// NewW4Deletes chooses W4's deletions over w.
func NewW4Deletes(w *W1, seed uint64) *W4Deletes {
	rng := NewSplitMix64(seed ^ Mix(0x5734_0000))
	k, p := w.K(), w.P()
	target := p / 2
	d := &W4Deletes{Gone: make([]bool, p)}

	perm := make([]uint32, k)
	for i := range perm {
		perm[i] = uint32(i)
	}
	for i := k - 1; i >= 1; i-- {
		s := rng.Next() % uint64(i+1)
		perm[i], perm[s] = perm[s], perm[i]
	}
	whole := make([]bool, k)
	for _, j := range perm {
		if d.Pairs >= target/2 {
			break
		}
		whole[j] = true
		d.Dels = append(d.Dels, Deletion{Key: w.Keys[j]})
		for v := w.Off[j]; v < w.Off[j+1]; v++ {
			d.Gone[v] = true
		}
		d.Pairs += int(w.Off[j+1] - w.Off[j])
		d.Keys++
	}

	// Candidates: key index << 32 | value index.
	var cand []uint64
	for j := range k {
		if !whole[j] {
			for v := w.Off[j]; v < w.Off[j+1]; v++ {
				cand = append(cand, uint64(j)<<32|uint64(v))
			}
		}
	}
	need := min(max(target-d.Pairs, 0), len(cand))
	for i := range need {
		s := i + int(rng.Next()%uint64(len(cand)-i))
		cand[i], cand[s] = cand[s], cand[i]
		j, v := int(cand[i]>>32), int(uint32(cand[i]))
		d.Dels = append(d.Dels, Deletion{Key: w.Keys[j], Value: w.Vals[v]})
		d.Gone[v] = true
	}
	d.Values = need
	d.Pairs += need

	for i := len(d.Dels) - 1; i >= 1; i-- {
		s := rng.Next() % uint64(i+1)
		d.Dels[i], d.Dels[s] = d.Dels[s], d.Dels[i]
	}
	return d
}

// Check compares a GET result with the exact answer after the deletions:
// the sorted values of key j that are not gone, or nothing for an absent
// key (j < 0).
func (d *W4Deletes) Check(w *W1, j int, got []E) bool {
	if j < 0 {
		return len(got) == 0
	}
	g := 0
	for v := w.Off[j]; v < w.Off[j+1]; v++ {
		if d.Gone[v] {
			continue
		}
		if g == len(got) || got[g] != w.Vals[v] {
			return false
		}
		g++
	}
	return g == len(got)
}

// runW4 is BENCH.md's W4: W1's inserts, timed lookups, deletion of half the
// pairs, verification, maintenance, timed lookups again. Disk usage is
// measured after a clean Close once the inserts are done and once the
// maintenance is; each Close is followed by a reopen, so both lookup runs
// start on a freshly opened engine.
func runW4(cfg Config) (Result, error) {
	w, eng, r, err := prepare(cfg)
	if err != nil {
		return r, err
	}
	f, rf := &W4Figures{}, &ReclaimFigures{}
	r.W4Figures, r.ReclaimFigures = f, rf
	err = runW4Phases(cfg, w, eng, &r)
	r.PeakRSSBytes = PeakRSSBytes()
	return r, err
}

func runW4Phases(cfg Config, w *W1, eng Engine, r *Result) (err error) {
	f, rf := r.W4Figures, r.ReclaimFigures
	defer func() { err = closeWith(eng, err) }()
	if err := insertAll(cfg, w, eng, r, func(int) {}); err != nil {
		return err
	}
	var c cycled
	if eng, c, err = cycle(cfg, eng); err != nil {
		return err
	}
	rf.DiskBytesBefore, rf.ReopenMsBefore = c.allocated, c.reopenMs

	before := w4Lookups(cfg, w, eng, r, w.Check)
	f.LookupMismatchesPre = r.Mismatches
	f.LookupAvgUsBefore = us(before.Mean())
	f.LookupP50UsBefore = us(before.Quantile(0.50))
	f.LookupP99UsBefore = us(before.Quantile(0.99))
	f.LookupP999UsBefore = us(before.Quantile(0.999))
	cfg.logf("lookups before the deletes: p50 %.2fµs p99 %.2fµs", f.LookupP50UsBefore, f.LookupP99UsBefore)

	t := time.Now()
	d := NewW4Deletes(w, cfg.Seed)
	f.DeletedKeys, f.DeletedValues = d.Keys, d.Values
	cfg.logf("chose %d whole keys and %d single values (%d pairs) in %v",
		d.Keys, d.Values, d.Pairs, time.Since(t).Round(time.Millisecond))
	if err := deleteAll(cfg, eng, d.Dels, d.Pairs, rf); err != nil {
		return err
	}
	check := func(j int, got []E) bool { return d.Check(w, j, got) }

	step := max(1, (w.K()+w4VerifyKeys-1)/w4VerifyKeys)
	for j := 0; j < w.K(); j += step {
		got, err := eng.Get(w.Keys[j])
		if err != nil || !check(j, got) {
			r.mismatch("after the deletes, key index %d: %d values, err %v", j, len(got), err)
		}
		f.VerifiedKeys++
	}
	cfg.logf("verified %d keys after the deletes: %d mismatches", f.VerifiedKeys, r.Mismatches)

	if f.GCMs, err = maintain(cfg, eng); err != nil {
		return err
	}
	if s, ok := eng.(Statser); ok {
		r.EngineStats = s.Stats()
	}
	var compactFiles func(c *cycled) error
	if cfg.Engine.CompactFiles != nil && cfg.Dir != "" {
		compactFiles = func(c *cycled) error {
			t := time.Now()
			if err := cfg.Engine.CompactFiles(cfg.Dir); err != nil {
				return fmt.Errorf("compact files: %w", err)
			}
			f.FileCompactMs = ms(time.Since(t))
			var err error
			if f.DiskBytesCompacted, f.DiskApparentCompacted, err = DiskBytes(cfg.Dir); err != nil {
				return fmt.Errorf("disk usage: %w", err)
			}
			if rf.DiskBytesBefore > 0 {
				f.DiskCompactedRatio = round3(float64(f.DiskBytesCompacted) / float64(rf.DiskBytesBefore))
			}
			cfg.logf("file compaction in %.1f ms: disk %d → %d bytes (%.3f of the %d before the deletes)",
				f.FileCompactMs, c.allocated, f.DiskBytesCompacted, f.DiskCompactedRatio, rf.DiskBytesBefore)
			return nil
		}
	}
	if eng, c, err = cycleWith(cfg, eng, compactFiles); err != nil {
		return err
	}
	r.setCycled(cfg, c)

	after := w4Lookups(cfg, w, eng, r, check)
	r.setLookups(after)
	f.LookupP99UsAfter, f.LookupP999UsAfter = r.LookupP99Us, r.LookupP999Us
	cfg.logf("lookups after the deletes and maintenance: p50 %.2fµs p99 %.2fµs; disk %d → %d bytes; %d mismatches",
		r.LookupP50Us, r.LookupP99Us, rf.DiskBytesBefore, rf.DiskBytesAfter, r.Mismatches)
	return nil
}

// w4Lookups makes W1's T = L + L/10 GETs (the same stream each call), each
// timed alone and checked with check.
func w4Lookups(cfg Config, w *W1, eng Engine, r *Result, check func(j int, got []E) bool) *Latency {
	lat := NewLatency()
	ls := w.Lookups()
	for range cfg.Lookups + cfg.Lookups/10 {
		lk := ls.Next()
		s := time.Now()
		got, err := eng.Get(lk.Key)
		lat.Record(time.Since(s))
		if err != nil || !check(lk.J, got) {
			r.mismatch("get key %v (index %d): %d values, err %v", lk.Key, lk.J, len(got), err)
		}
	}
	return lat
}
