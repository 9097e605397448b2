package cidstore

import (
	"context"
	"fmt"
)

// walState is the store's write-ahead log. Placeholder until the WAL lands.
type walState struct{}

func (s *Store) openWAL() error {
	return fmt.Errorf("%w: WAL support is not built yet", ErrInvalid)
}

func (s *Store) walAppend(ctx context.Context, ops []walOp, txn bool) (first, last uint64, err error) {
	return 0, 0, nil
}

func (s *Store) walWait(lsn uint64) error     { return nil }
func (s *Store) walTruncate(lsn uint64) error { return nil }
func (s *Store) closeWAL(clean bool) error    { return nil }
func (w *walState) fillStats(st *Stats)       {}
func (s *Store) appliedLSN() uint64           { return s.restoredLSN }
func (s *Store) startBackground()             {}

const minWALSizeBytes = 64 << 10
