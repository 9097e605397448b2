package bench

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReaders is the number of W2 reader goroutines of BENCH.md.
const DefaultReaders = 4

// runW2 is BENCH.md's W2: one writer inserts the W1 batches at full speed
// while Readers goroutines GET keys of batches already inserted. The writer
// publishes a high-water mark of fully inserted batches after each commit; a
// reader picks a random pair below it and checks the GET of that pair's key
// with CheckPartial against the mark it read before the GET. Readers spin
// (yielding) until the first batch is in.
func runW2(cfg Config) (Result, error) {
	readers := cfg.Readers
	if readers <= 0 {
		readers = DefaultReaders
	}
	w, eng, r, err := prepare(cfg)
	if err != nil {
		return r, err
	}
	r.Readers = readers

	var (
		hw       atomic.Uint32 // batches fully inserted
		stop     atomic.Bool
		wg       sync.WaitGroup
		ready    sync.WaitGroup // the writer starts once every reader runs
		lats     = make([]*Latency, readers)
		mism     = make([]int64, readers)
		firstErr = make([]error, readers)
	)
	ready.Add(readers)
	for i := range readers {
		lats[i] = NewLatency()
		wg.Go(func() {
			rng := NewSplitMix64(cfg.Seed ^ Mix(uint64(i)+0x57A4))
			lat := lats[i]
			ready.Done()
			// A reader stops with the writer, but not before its first GET,
			// so that a tiny data set still exercises the readers.
			for lat.Count() == 0 || !stop.Load() {
				h := hw.Load()
				if h == 0 {
					runtime.Gosched()
					continue
				}
				n := min(uint64(h)*uint64(w.Batch), uint64(w.P()))
				j := int(w.PairKey[rng.Next()%n])
				s := time.Now()
				got, err := eng.Get(w.Keys[j])
				lat.Record(time.Since(s))
				if err != nil || !w.CheckPartial(j, h, got) {
					mism[i]++
					if firstErr[i] == nil {
						firstErr[i] = fmt.Errorf("reader %d: get key index %d after %d batches: %d values, err %v", i, j, h, len(got), err)
					}
				}
			}
		})
	}
	ready.Wait()
	t0 := time.Now()
	err = insertAll(cfg, w, eng, &r, func(done int) { hw.Store(uint32(done)) })
	stop.Store(true)
	wg.Wait()
	el := time.Since(t0)
	if err != nil {
		return r, errors.Join(err, eng.Close())
	}

	all := NewLatency()
	for i := range readers {
		all.Merge(lats[i])
		r.Mismatches += mism[i]
		if firstErr[i] != nil && r.FirstMismatch == "" {
			r.FirstMismatch = firstErr[i].Error()
		}
	}
	r.setLookups(all)
	r.ReaderOpsPerS = float64(int64(float64(all.Count()) / el.Seconds()))
	cfg.logf("%d reader GETs: p50 %.2fµs p99 %.2fµs p999 %.2fµs, %d mismatches",
		all.Count(), r.LookupP50Us, r.LookupP99Us, r.LookupP999Us, r.Mismatches)
	return r, finish(cfg, w, eng, &r)
}
