package wal

// Crash simulates kill -9 for tests: the mapping and the file are released
// without syncing and without writing the header. Records copied into the
// mapping stay in the page cache and reach the file, as they would when the
// process dies.
func (l *Log) Crash() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.closed = true
	if l.stop != nil {
		close(l.stop)
		<-l.done
	}
	return l.release()
}
