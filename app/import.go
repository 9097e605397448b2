package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/transport-zmq/client"
)

// importFile inserts the pairs of a file of "KEY VALUE" lines (32 hex digits
// or UUIDs, separated by blanks; blank lines and lines starting with '#' are
// skipped) with BATCH_INSERT requests of import_batch pairs. The first
// malformed line stops the import: the pairs of the batches sent before it
// are in the store, none after. On a terminal, a progress line is kept up
// to date on stderr; the summary goes to stdout.
func (c *CLI) importFile(ctx context.Context, cfg Config, args []string) error {
	name := args[0]
	var in io.Reader = c.Stdin
	var total int64 // bytes, 0 when unknown
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			total = fi.Size()
		}
		in = f
	}
	cl, err := dial(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()

	p := newProgress(c.Stderr, total)
	// The client splits what it is given into BATCH_INSERT requests of
	// import_batch pairs and keeps a window of them in flight; hand it
	// several at a time so that the window fills.
	chunk := cfg.ImportBatch * client.DefaultWindow
	requests := 0
	send := func(pairs []cidstore.Pair) error {
		requests += (len(pairs) + cfg.ImportBatch - 1) / cfg.ImportBatch
		return cl.InsertBatch(ctx, pairs)
	}
	res, err := importPairs(in, chunk, send, p.update)
	p.done()
	if err != nil {
		fmt.Fprintf(c.Stdout, "imported %d pairs before the error (%d lines read)\n", res.pairs, res.lines)
		return err
	}
	secs := res.elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(res.pairs) / secs
	}
	fmt.Fprintf(c.Stdout, "imported %d pairs from %s with %d BATCH_INSERT requests in %s (%.0f pairs/s); %d lines, %d skipped\n",
		res.pairs, name, requests, res.elapsed.Round(time.Millisecond), rate, res.lines, res.skipped)
	return nil
}

// importResult counts what importPairs did.
type importResult struct {
	lines, skipped, pairs, batches int64
	bytes                          int64
	elapsed                        time.Duration
}

// importPairs reads "KEY VALUE" lines from r and sends them with send in
// batches of batch pairs, calling progress after each batch.
func importPairs(r io.Reader, batch int, send func([]cidstore.Pair) error, progress func(importResult)) (importResult, error) {
	t0 := time.Now()
	var res importResult
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	pairs := make([]cidstore.Pair, 0, batch)
	flush := func() error {
		if len(pairs) == 0 {
			return nil
		}
		if err := send(pairs); err != nil {
			return fmt.Errorf("batch %d (lines up to %d): %w", res.batches+1, res.lines, err)
		}
		res.pairs += int64(len(pairs))
		res.batches++
		pairs = pairs[:0]
		res.elapsed = time.Since(t0)
		progress(res)
		return nil
	}
	for sc.Scan() {
		res.lines++
		res.bytes += int64(len(sc.Bytes())) + 1
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			res.skipped++
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return res, fmt.Errorf("line %d: want KEY VALUE, got %d fields", res.lines, len(f))
		}
		k, err := cidstore.ParseE(f[0])
		if err != nil {
			return res, fmt.Errorf("line %d: key: %w", res.lines, err)
		}
		v, err := cidstore.ParseE(f[1])
		if err != nil {
			return res, fmt.Errorf("line %d: value: %w", res.lines, err)
		}
		pairs = append(pairs, cidstore.Pair{Key: k, Value: v})
		if len(pairs) == batch {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("read line %d: %w", res.lines+1, err)
	}
	err := flush()
	res.elapsed = time.Since(t0)
	return res, err
}

// progress draws a one-line progress display on a terminal; elsewhere it
// does nothing, so that logs and pipes get only the summary.
type progress struct {
	w     io.Writer
	on    bool
	total int64
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer, total int64) *progress {
	return &progress{w: w, on: isTerminal(w), total: total}
}

// update redraws at most four times a second.
func (p *progress) update(r importResult) {
	if !p.on || time.Since(p.last) < 250*time.Millisecond {
		return
	}
	p.last = time.Now()
	rate := 0.0
	if s := r.elapsed.Seconds(); s > 0 {
		rate = float64(r.pairs) / s
	}
	line := fmt.Sprintf("importing: %d pairs, %.0f pairs/s", r.pairs, rate)
	if p.total > 0 {
		pct := min(100*float64(r.bytes)/float64(p.total), 100)
		const width = 30
		n := int(pct / 100 * width)
		line = fmt.Sprintf("[%s%s] %5.1f%% %s", strings.Repeat("=", n), strings.Repeat(" ", width-n), pct, line)
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	p.drawn = true
}

// done clears the progress line.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
