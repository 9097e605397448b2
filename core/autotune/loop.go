package autotune

import (
	"context"
	"time"
)

// Run is the loop: every Options.Interval it takes a sample from collect
// and passes it to Step, until ctx is done. collect is called from Run's
// goroutine only; it typically returns and resets the batcher's window.
func (c *Controller) Run(ctx context.Context, collect func() Sample) {
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	c.run(ctx, t.C, collect)
}

// run is Run on an injected tick channel (tests).
func (c *Controller) run(ctx context.Context, ticks <-chan time.Time, collect func() Sample) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			c.Step(collect())
		}
	}
}
