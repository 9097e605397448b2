package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	h5store "github.com/cidstore/cidstore/storage-hdf5"
)

// compact is `cidstore compact`: with the server stopped, it shrinks the
// HDF5 store in DATA_DIR. First core opens the store with its WAL (the WAL
// is replayed), runs its in-memory maintenance (Store.Compact: sort-merge
// buckets, compact value sets, demote small ones, merge buckets) and
// closes, which checkpoints. Then h5store.Compact rewrites the committed
// state into a right-sized file and swaps it in atomically, with a
// progress bar on stderr. The sizes before and after go to stdout.
func (c *CLI) compact(ctx context.Context, cfg Config, _ []string) error {
	return compactStore(ctx, cfg, c.Stdout, c.Stderr)
}

func compactStore(ctx context.Context, cfg Config, stdout, stderr io.Writer) (err error) {
	if cfg.Backend != "hdf5" {
		return usageError{fmt.Sprintf("compact needs backend hdf5 (backend is %q)", cfg.Backend)}
	}
	if cfg.Role != "writer" {
		return usageError{"compact rewrites the store: run it with role writer, with the server stopped"}
	}
	path := cfg.H5Path()
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no store to compact: %w", err)
	}
	_, size0, alloc0, err := h5store.DiskUsage(path)
	if err != nil {
		return err
	}

	zl := NewLogger(cfg, stderr)
	defer func() { _ = zl.Sync() }()
	st, err := openStore(cfg, newKVLogger(zl, "compact"), nil)
	if err != nil {
		return err
	}
	if err := st.Compact(ctx); err != nil {
		return errors.Join(fmt.Errorf("core maintenance: %w", err), st.Close())
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}

	bar := &progressBar{w: stderr, unit: "rows"}
	err = h5store.Compact(path, h5store.Options{CacheBytes: cfg.CacheBytes, Logger: newKVLogger(zl, "h5store")}, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	files, size1, alloc1, err := h5store.DiskUsage(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "before: %s (%s allocated)\n", humanBytes(size0), humanBytes(alloc0))
	fmt.Fprintf(stdout, "after:  %s (%s allocated) in %d file(s)\n", humanBytes(size1), humanBytes(alloc1), files)
	return nil
}

// progressBar draws `[#####.....] 52% 1.2M/2.3M rows` on one line,
// redrawn in place, and only when the shown percentage changes.
type progressBar struct {
	w     io.Writer
	unit  string
	shown int // last percentage drawn, -1 after done
	drawn bool
}

const barWidth = 30

func (b *progressBar) update(done, total int64) {
	pct := 100
	if total > 0 {
		pct = int(done * 100 / total)
	}
	if b.drawn && pct == b.shown {
		return
	}
	b.shown, b.drawn = pct, true
	fill := pct * barWidth / 100
	fmt.Fprintf(b.w, "\r[%s%s] %3d%% %s/%s %s", strings.Repeat("#", fill), strings.Repeat(".", barWidth-fill),
		pct, humanCount(done), humanCount(total), b.unit)
}

// done ends the bar's line, if one was drawn.
func (b *progressBar) done() {
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}

// humanCount prints n with a k/M/G suffix and one decimal.
func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// humanBytes prints n in binary units with one decimal.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
