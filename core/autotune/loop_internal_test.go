package autotune

import (
	"context"
	"testing"
	"time"
)

// The loop takes one sample per tick and steps the controller with it; it
// returns when its context is done.
func TestRun(t *testing.T) {
	var decisions []Decision
	c, err := New(Options{Report: func(d Decision) { decisions = append(decisions, d) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ticks := make(chan time.Time) // unbuffered: a send returns once run took the tick
	done := make(chan struct{})
	collected := 0
	go func() {
		defer close(done)
		c.run(ctx, ticks, func() Sample {
			collected++
			return Sample{Pairs: 10, QueueDepth: 4, P99: 20 * time.Microsecond}
		})
	}()
	for range 3 {
		ticks <- time.Time{}
	}
	cancel()
	<-done
	if collected != 3 || len(decisions) != 3 {
		t.Fatalf("%d samples, %d decisions after 3 ticks, want 3 and 3", collected, len(decisions))
	}
	if decisions[2].Sample.QueueDepth != 4 {
		t.Fatalf("decision %+v does not carry the collected sample", decisions[2])
	}
}
