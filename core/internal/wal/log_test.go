package wal_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cidstore/cidstore/core/internal/wal"
)

const smallSize = wal.MinSizeBytes // 960 records

// openLog opens (creating) path with opts; the log is closed at cleanup
// unless the test closed it.
func openLog(t testing.TB, path string, opts wal.Options) *wal.Log {
	t.Helper()
	l, err := wal.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, wal.ErrClosed) {
			t.Errorf("Close at cleanup: %v", err)
		}
	})
	return l
}

func newPath(t testing.TB) string { return filepath.Join(t.TempDir(), "test.wal") }

// model is the expected content of a log: ids[i] is the testRec id of the
// record with LSN tail+i.
type model struct {
	tail uint64
	ids  []uint64
	next uint64 // next id
}

func (m *model) head() uint64 { return m.tail + uint64(len(m.ids)) }

func (m *model) batch(n int) []wal.Record {
	recs := make([]wal.Record, n)
	for i := range recs {
		recs[i] = testRec(m.next + uint64(i))
	}
	return recs
}

func (m *model) appended(n int) {
	for range n {
		m.ids = append(m.ids, m.next)
		m.next++
	}
}

func (m *model) truncate(upto uint64) {
	if upto < m.tail {
		return
	}
	drop := min(upto+1-m.tail, uint64(len(m.ids)))
	m.ids = m.ids[drop:]
	m.tail = upto + 1
}

func appendN(t testing.TB, l *wal.Log, m *model, n int) (first, last uint64) {
	t.Helper()
	first, last, err := l.Append(m.batch(n))
	if err != nil {
		t.Fatalf("Append(%d): %v", n, err)
	}
	if first != m.head() || last != first+uint64(n)-1 {
		t.Fatalf("Append(%d) = %d..%d, want %d..%d", n, first, last, m.head(), m.head()+uint64(n)-1)
	}
	m.appended(n)
	return first, last
}

// checkLog replays l and compares it with m.
func checkLog(t testing.TB, l *wal.Log, m *model) {
	t.Helper()
	if got := l.TailLSN(); got != m.tail {
		t.Fatalf("TailLSN = %d, want %d", got, m.tail)
	}
	if got := l.NextLSN(); got != m.head() {
		t.Fatalf("NextLSN = %d, want %d", got, m.head())
	}
	if got := l.UsedRecords(); got != int64(len(m.ids)) {
		t.Fatalf("UsedRecords = %d, want %d", got, len(m.ids))
	}
	i := 0
	last, err := l.Replay(0, func(lsn uint64, r wal.Record) error {
		if i >= len(m.ids) {
			t.Fatalf("replay: extra record at LSN %d", lsn)
		}
		if want := m.tail + uint64(i); lsn != want {
			t.Fatalf("replay: LSN %d, want %d", lsn, want)
		}
		if want := testRec(m.ids[i]); r != want {
			t.Fatalf("replay LSN %d: %+v, want %+v", lsn, r, want)
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if i != len(m.ids) {
		t.Fatalf("replay: %d records, want %d", i, len(m.ids))
	}
	if len(m.ids) > 0 && last != m.head()-1 {
		t.Fatalf("Replay returned last %d, want %d", last, m.head()-1)
	}
}

// slotOffset is the file offset of lsn's record (doc.go: slot (lsn-1) % capacity).
func slotOffset(capacity int64, lsn uint64) int64 {
	return wal.HeaderSizeBytes + int64((lsn-1)%uint64(capacity))*wal.RecordSize
}

// patchFile writes b at off in the closed log file.
func patchFile(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func crash(t testing.TB, l *wal.Log) {
	t.Helper()
	if err := l.Crash(); err != nil {
		t.Fatalf("Crash: %v", err)
	}
}

func TestCreateAppendReplay(t *testing.T) {
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize})
	if got, want := l.CapacityRecords(), (smallSize-wal.HeaderSizeBytes)/wal.RecordSize; got != want {
		t.Fatalf("CapacityRecords = %d, want %d", got, want)
	}
	if l.NextLSN() != 1 || l.TailLSN() != 1 || l.DurableLSN() != 0 {
		t.Fatalf("new log: next %d tail %d durable %d", l.NextLSN(), l.TailLSN(), l.DurableLSN())
	}
	m := &model{tail: 1}
	appendN(t, l, m, 3)
	appendN(t, l, m, 100)
	_, last := appendN(t, l, m, 1)
	if l.DurableLSN() != 0 {
		t.Fatalf("DurableLSN before sync = %d", l.DurableLSN())
	}
	if err := l.SyncTo(last); err != nil {
		t.Fatal(err)
	}
	if l.DurableLSN() != last {
		t.Fatalf("DurableLSN = %d, want %d", l.DurableLSN(), last)
	}
	checkLog(t, l, m)
	st := l.Stats()
	if st.Appends != 3 || st.AppendedRecords != 104 || st.UsedBytes != 104*64 || st.CapacityBytes != smallSize-wal.HeaderSizeBytes || st.Syncs == 0 {
		t.Fatalf("Stats = %+v", st)
	}
	if first, last, err := l.Append(nil); first != 0 || last != 0 || err != nil {
		t.Fatalf("Append(nil) = %d, %d, %v", first, last, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != smallSize {
		t.Fatalf("file size: %v, %v", fi, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left behind: %v", err)
	}
}

func TestReopenKeepsHeader(t *testing.T) {
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize})
	m := &model{tail: 1}
	appendN(t, l, m, 100)
	if err := l.Truncate(40); err != nil {
		t.Fatal(err)
	}
	m.truncate(40)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Options.SizeBytes of an existing log is ignored.
	l = openLog(t, path, wal.Options{SizeBytes: 2 * smallSize})
	if l.DurableLSN() != 100 || l.CapacityRecords() != 960 {
		t.Fatalf("DurableLSN %d CapacityRecords %d", l.DurableLSN(), l.CapacityRecords())
	}
	checkLog(t, l, m)
	appendN(t, l, m, 5)
	checkLog(t, l, m)
}

func TestWrapAroundManyLaps(t *testing.T) {
	const seed = 20260101
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize, Sync: wal.SyncNone})
	capacity := l.CapacityRecords()
	m := &model{tail: 1}
	for step := range 400 {
		n := 1 + rng.IntN(150)
		if l.FreeRecords() < int64(n) {
			if _, _, err := l.Append(m.batch(n)); !errors.Is(err, wal.ErrFull) {
				t.Fatalf("step %d: Append(%d) with %d free = %v, want ErrFull", step, n, l.FreeRecords(), err)
			}
			// Truncate a random prefix that frees enough.
			need := uint64(n) - uint64(l.FreeRecords())
			upto := m.tail + need - 1 + uint64(rng.IntN(len(m.ids)-int(need)+1))
			if err := l.Truncate(upto); err != nil {
				t.Fatal(err)
			}
			m.truncate(upto)
		}
		appendN(t, l, m, n)
		if rng.IntN(4) == 0 {
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		switch step % 50 {
		case 24: // clean reopen
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, path, wal.Options{Sync: wal.SyncNone})
			checkLog(t, l, m)
		case 49: // crash and reopen: everything appended survives a process crash
			crash(t, l)
			l = openLog(t, path, wal.Options{Sync: wal.SyncNone})
			checkLog(t, l, m)
		}
	}
	checkLog(t, l, m)
	if laps := int64(m.head()) / capacity; laps < 20 {
		t.Fatalf("only %d laps", laps)
	}
}

func TestFullNeverOverwrites(t *testing.T) {
	l := openLog(t, newPath(t), wal.Options{SizeBytes: smallSize})
	m := &model{tail: 1}
	capacity := int(l.CapacityRecords())
	appendN(t, l, m, capacity-10)
	if _, _, err := l.Append(m.batch(11)); !errors.Is(err, wal.ErrFull) {
		t.Fatalf("Append past capacity = %v, want ErrFull", err)
	}
	appendN(t, l, m, 10)
	if l.FreeRecords() != 0 {
		t.Fatalf("FreeRecords = %d", l.FreeRecords())
	}
	if _, _, err := l.Append(m.batch(1)); !errors.Is(err, wal.ErrFull) {
		t.Fatalf("Append to full log = %v, want ErrFull", err)
	}
	if _, _, err := l.Append(m.batch(capacity + 1)); !errors.Is(err, wal.ErrTooLarge) || errors.Is(err, wal.ErrFull) {
		t.Fatalf("Append larger than the log = %v, want ErrTooLarge", err)
	}
	checkLog(t, l, m)
	if err := l.Truncate(10); err != nil {
		t.Fatal(err)
	}
	m.truncate(10)
	appendN(t, l, m, 10) // wraps into the freed slots
	if _, _, err := l.Append(m.batch(1)); !errors.Is(err, wal.ErrFull) {
		t.Fatalf("Append = %v, want ErrFull", err)
	}
	checkLog(t, l, m)
}

func TestTornTailEndsLog(t *testing.T) {
	tests := []struct {
		name string
		tear func(b []byte) // damages the encoded last record
	}{
		{"half written", func(b []byte) { clear(b[32:]) }},
		{"never written", func(b []byte) { clear(b) }},
		{"garbage", func(b []byte) {
			for i := range b {
				b[i] = byte(i * 37)
			}
		}},
		{"future version", func(b []byte) { copy(b, encodeRaw(testRec(1), 15, 3<<6|1)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := newPath(t)
			l := openLog(t, path, wal.Options{SizeBytes: smallSize})
			m := &model{tail: 1}
			_, last := appendN(t, l, m, 10)
			if err := l.SyncTo(last); err != nil {
				t.Fatal(err)
			}
			appendN(t, l, m, 5) // 11..15, not synced
			capacity := l.CapacityRecords()
			crash(t, l)

			b := make([]byte, wal.RecordSize)
			rec := testRec(m.ids[14])
			rec.Encode(b, 15)
			tc.tear(b)
			patchFile(t, path, slotOffset(capacity, 15), b)
			m.ids = m.ids[:14]

			l = openLog(t, path, wal.Options{})
			checkLog(t, l, m)
			if l.DurableLSN() != 14 {
				t.Fatalf("DurableLSN = %d, want 14", l.DurableLSN())
			}
			appendN(t, l, m, 3) // continues at LSN 15
			checkLog(t, l, m)
		})
	}
}

func TestCorruptMiddleThenRepair(t *testing.T) {
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize})
	m := &model{tail: 1}
	appendN(t, l, m, 20)
	capacity := l.CapacityRecords()
	crash(t, l)
	patchFile(t, path, slotOffset(capacity, 7)+30, []byte{0xff})

	_, err := wal.Open(path, wal.Options{})
	var ce *wal.CorruptError
	if !errors.Is(err, wal.ErrCorrupt) || !errors.As(err, &ce) || ce.LSN != 7 || !errors.Is(err, wal.ErrChecksum) {
		t.Fatalf("Open = %v, want corrupt record at LSN 7", err)
	}
	if !strings.Contains(err.Error(), "wal: corrupt record at LSN 7 (followed by valid records") {
		t.Fatalf("message %q", err)
	}

	n, err := wal.Repair(path)
	if err != nil || n != 6 {
		t.Fatalf("Repair = %d, %v; want 6", n, err)
	}
	m.ids = m.ids[:6]
	l = openLog(t, path, wal.Options{})
	checkLog(t, l, m)
	// The discarded records 8..20 were zeroed: after new appends and a
	// crash they must not reappear as if they followed the new ones.
	appendN(t, l, m, 3) // LSN 7..9
	crash(t, l)
	l = openLog(t, path, wal.Options{})
	checkLog(t, l, m)
}

func TestCorruptBelowSyncedLSN(t *testing.T) {
	// After a clean close the header says every record up to the head was
	// synced: a bad last record is then damage, not a torn tail.
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize})
	m := &model{tail: 1}
	appendN(t, l, m, 10)
	capacity := l.CapacityRecords()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	patchFile(t, path, slotOffset(capacity, 10), make([]byte, wal.RecordSize))
	_, err := wal.Open(path, wal.Options{})
	var ce *wal.CorruptError
	if !errors.As(err, &ce) || ce.LSN != 10 || !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("Open = %v, want corrupt record at LSN 10", err)
	}
	if n, err := wal.Repair(path); n != 9 || err != nil {
		t.Fatalf("Repair = %d, %v", n, err)
	}
	m.ids = m.ids[:9]
	checkLog(t, openLog(t, path, wal.Options{}), m)
}

func TestRollingVersions(t *testing.T) {
	setup := func(t *testing.T) (string, int64, *model) {
		path := newPath(t)
		l := openLog(t, path, wal.Options{SizeBytes: smallSize})
		m := &model{tail: 1}
		appendN(t, l, m, 5)
		capacity := l.CapacityRecords()
		crash(t, l)
		return path, capacity, m
	}
	t.Run("version 2 is read", func(t *testing.T) {
		path, capacity, m := setup(t)
		rec := testRec(m.ids[2])
		patchFile(t, path, slotOffset(capacity, 3), encodeRaw(rec, 3, 2<<6|byte(rec.Op)))
		l := openLog(t, path, wal.Options{})
		var got wal.Record
		if _, err := l.Replay(3, func(lsn uint64, r wal.Record) error {
			if lsn == 3 {
				got = r
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		rec.Version = wal.VersionNext
		if got != rec {
			t.Fatalf("LSN 3 = %+v, want %+v", got, rec)
		}
	})
	for _, v := range []byte{0, 3} {
		t.Run("version "+string('0'+v)+" in the middle is corruption", func(t *testing.T) {
			path, capacity, _ := setup(t)
			patchFile(t, path, slotOffset(capacity, 2), encodeRaw(testRec(0), 2, v<<6|1))
			_, err := wal.Open(path, wal.Options{})
			var ce *wal.CorruptError
			if !errors.As(err, &ce) || ce.LSN != 2 || !errors.Is(err, wal.ErrVersion) {
				t.Fatalf("Open = %v, want version error at LSN 2", err)
			}
		})
		t.Run("version "+string('0'+v)+" at the tail ends the log", func(t *testing.T) {
			path, capacity, m := setup(t)
			patchFile(t, path, slotOffset(capacity, 5), encodeRaw(testRec(0), 5, v<<6|1))
			m.ids = m.ids[:4]
			checkLog(t, openLog(t, path, wal.Options{}), m)
		})
	}
}

func TestStaleLapRecordsDoNotValidate(t *testing.T) {
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize})
	m := &model{tail: 1}
	capacity := int(l.CapacityRecords())
	_, last := appendN(t, l, m, capacity) // every slot holds a valid record
	if err := l.Truncate(last); err != nil {
		t.Fatal(err)
	}
	m.truncate(last)
	appendN(t, l, m, 10) // second lap: slots 10.. still hold lap-one records
	crash(t, l)
	l = openLog(t, path, wal.Options{})
	checkLog(t, l, m)
	if l.NextLSN() != uint64(capacity)+11 {
		t.Fatalf("NextLSN = %d", l.NextLSN())
	}
}

func TestReplayFrom(t *testing.T) {
	l := openLog(t, newPath(t), wal.Options{SizeBytes: smallSize})
	m := &model{tail: 1}
	appendN(t, l, m, 50)
	if err := l.Truncate(9); err != nil {
		t.Fatal(err)
	}
	var lsns []uint64
	collect := func(lsn uint64, _ wal.Record) error { lsns = append(lsns, lsn); return nil }
	if last, err := l.Replay(45, collect); err != nil || last != 50 || !slices.Equal(lsns, []uint64{45, 46, 47, 48, 49, 50}) {
		t.Fatalf("Replay(45) = %d, %v, %v", last, err, lsns)
	}
	lsns = nil
	if last, err := l.Replay(51, collect); err != nil || last != 0 || lsns != nil {
		t.Fatalf("Replay(51) = %d, %v, %v", last, err, lsns)
	}
	if _, err := l.Replay(5, collect); !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("Replay before the tail = %v, want ErrCorrupt", err)
	}
	stop := errors.New("stop")
	lsns = nil
	last, err := l.Replay(0, func(lsn uint64, r wal.Record) error {
		if lsn == 12 {
			return stop
		}
		return collect(lsn, r)
	})
	if !errors.Is(err, stop) || last != 11 || !slices.Equal(lsns, []uint64{10, 11}) {
		t.Fatalf("Replay stopped = %d, %v, %v", last, err, lsns)
	}
}

func TestTruncateAheadOfLog(t *testing.T) {
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize})
	m := &model{tail: 1}
	appendN(t, l, m, 5)
	if err := l.Truncate(2); err != nil {
		t.Fatal(err)
	}
	if err := l.Truncate(1); err != nil { // behind the tail: no-op
		t.Fatal(err)
	}
	if err := l.Truncate(1000); err != nil {
		t.Fatal(err)
	}
	m.truncate(1000)
	if l.DurableLSN() != 1000 {
		t.Fatalf("DurableLSN = %d", l.DurableLSN())
	}
	checkLog(t, l, m)
	appendN(t, l, m, 7)
	crash(t, l)
	checkLog(t, openLog(t, path, wal.Options{}), m)
}

func TestSyncToContract(t *testing.T) {
	l := openLog(t, newPath(t), wal.Options{SizeBytes: smallSize})
	if err := l.SyncTo(0); err != nil {
		t.Fatalf("SyncTo(0) = %v", err)
	}
	if err := l.SyncTo(1); !errors.Is(err, wal.ErrInvalid) {
		t.Fatalf("SyncTo beyond the head = %v, want ErrInvalid", err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	syncs := l.Stats().Syncs
	m := &model{tail: 1}
	appendN(t, l, m, 2)
	if err := l.SyncTo(1); err != nil || l.DurableLSN() != 2 {
		t.Fatalf("SyncTo(1) = %v, DurableLSN %d (a sync covers all appended)", err, l.DurableLSN())
	}
	if err := l.SyncTo(2); err != nil || l.Stats().Syncs != syncs+1 {
		t.Fatalf("SyncTo of a durable LSN synced again: %v, %d syncs", err, l.Stats().Syncs-syncs)
	}
}

func TestClosedAndLocked(t *testing.T) {
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize})
	if _, err := wal.Open(path, wal.Options{}); !errors.Is(err, wal.ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if _, err := wal.Repair(path); !errors.Is(err, wal.ErrLocked) {
		t.Fatalf("Repair of an open log = %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if _, _, err := l.Append([]wal.Record{testRec(1)}); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Append = %v", err)
	}
	if err := l.Sync(); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Sync = %v", err)
	}
	if err := l.Truncate(1); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Truncate = %v", err)
	}
	if _, err := l.Replay(0, nil); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Replay = %v", err)
	}
}

func TestAppendRefusesUnknownOpcodes(t *testing.T) {
	l := openLog(t, newPath(t), wal.Options{SizeBytes: smallSize})
	for _, op := range []wal.Op{0, 12, wal.MaxOp, 200} {
		recs := []wal.Record{testRec(1), {Op: op}}
		if _, _, err := l.Append(recs); !errors.Is(err, wal.ErrInvalid) {
			t.Fatalf("Append with opcode %d = %v, want ErrInvalid", op, err)
		}
	}
	if l.NextLSN() != 1 {
		t.Fatalf("NextLSN = %d after refused appends", l.NextLSN())
	}
	// Append writes VersionCurrent whatever the caller set.
	r := testRec(1)
	r.Version = wal.VersionFuture
	if _, _, err := l.Append([]wal.Record{r}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Replay(0, func(_ uint64, got wal.Record) error {
		if got.Version != wal.VersionCurrent {
			t.Errorf("version %d", got.Version)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts wal.Options
		ok   bool
	}{
		{"defaults", wal.Options{}, true},
		{"minimum", wal.Options{SizeBytes: wal.MinSizeBytes}, true},
		{"too small", wal.Options{SizeBytes: wal.MinSizeBytes - 4096}, false},
		{"not page multiple", wal.Options{SizeBytes: wal.MinSizeBytes + 64}, false},
		{"too large", wal.Options{SizeBytes: wal.MaxSizeBytes + 4096}, false},
		{"bad mode", wal.Options{Sync: 7}, false},
		{"negative interval", wal.Options{SyncInterval: -time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.EnsureDefaults()
			err := tc.opts.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, wal.ErrInvalid)) {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	o := wal.Options{SizeBytes: 100, Sync: -1, SyncInterval: -1}
	if err := o.Validate(); err == nil || strings.Count(err.Error(), "\n") < 3 {
		t.Fatalf("Validate should report every problem: %v", err)
	}
}

func TestFailpoints(t *testing.T) {
	var got []string
	l := openLog(t, newPath(t), wal.Options{SizeBytes: smallSize, Failpoint: func(name string) { got = append(got, name) }})
	_, last, err := l.Append([]wal.Record{testRec(1), testRec(2)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SyncTo(last); err != nil {
		t.Fatal(err)
	}
	if err := l.Truncate(1); err != nil {
		t.Fatal(err)
	}
	want := []string{"wal.append.before-copy", "wal.append.after-copy", "wal.sync.before", "wal.sync.after",
		"wal.truncate.before-header", "wal.truncate.after-header"}
	if !slices.Equal(got, want) {
		t.Fatalf("failpoints %q, want %q", got, want)
	}
}

func TestSyncIntervalSyncsInBackground(t *testing.T) {
	synced := make(chan struct{}, 1)
	l := openLog(t, newPath(t), wal.Options{SizeBytes: smallSize, Sync: wal.SyncInterval, SyncInterval: time.Millisecond,
		Failpoint: func(name string) {
			if name == "wal.sync.after" {
				select {
				case synced <- struct{}{}:
				default:
				}
			}
		}})
	_, last, err := l.Append([]wal.Record{testRec(1)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for l.DurableLSN() < last {
		select {
		case <-synced:
		case <-deadline:
			t.Fatal("no background sync within 10s")
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryFaultIsAnError(t *testing.T) {
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize})
	m := &model{tail: 1}
	appendN(t, l, m, 10)
	if err := os.Truncate(path, wal.HeaderSizeBytes); err != nil { // the ring is gone under the mapping
		t.Fatal(err)
	}
	if _, err := l.Replay(0, func(uint64, wal.Record) error { return nil }); err == nil || !strings.Contains(err.Error(), "memory fault") {
		t.Fatalf("Replay of a truncated file = %v, want memory fault error", err)
	}
	if _, _, err := l.Append(m.batch(1)); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("Append after a fault = %v, want ErrFailed", err)
	}
	if err := l.Close(); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("Close = %v, want the sticky error", err)
	}
	if _, err := wal.Open(path, wal.Options{}); !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("Open of a truncated file = %v, want ErrCorrupt", err)
	}
}

func BenchmarkAppendSync(b *testing.B) {
	l := openLog(b, newPath(b), wal.Options{})
	m := &model{tail: 1}
	recs := m.batch(1000)
	b.SetBytes(int64(len(recs)) * wal.RecordSize)
	for b.Loop() {
		if l.FreeRecords() < int64(len(recs)) {
			if err := l.Truncate(l.NextLSN() - 1); err != nil {
				b.Fatal(err)
			}
		}
		_, last, err := l.Append(recs)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.SyncTo(last); err != nil {
			b.Fatal(err)
		}
	}
	st := l.Stats()
	b.ReportMetric(st.SyncSeconds/float64(st.Syncs)*1e6, "µs/sync")
}

// BenchmarkAppendSyncPipelined overlaps appending batch k+1 with the sync of
// batch k, as the core's writer is meant to.
func BenchmarkAppendSyncPipelined(b *testing.B) {
	l := openLog(b, newPath(b), wal.Options{})
	m := &model{tail: 1}
	recs := m.batch(1000)
	b.SetBytes(int64(len(recs)) * wal.RecordSize)
	toSync, synced := make(chan uint64, 1), make(chan error, 1)
	go func() {
		for lsn := range toSync {
			synced <- l.SyncTo(lsn)
		}
	}()
	defer close(toSync)
	inFlight := false
	for b.Loop() {
		if l.FreeRecords() < int64(len(recs)) {
			if err := l.Truncate(l.DurableLSN()); err != nil {
				b.Fatal(err)
			}
		}
		_, last, err := l.Append(recs)
		if err != nil {
			b.Fatal(err)
		}
		if inFlight {
			if err := <-synced; err != nil {
				b.Fatal(err)
			}
		}
		toSync <- last
		inFlight = true
	}
	if inFlight {
		if err := <-synced; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend measures Append alone (SyncNone), truncating the ring
// when it is full.
func BenchmarkAppend(b *testing.B) {
	l := openLog(b, newPath(b), wal.Options{Sync: wal.SyncNone})
	m := &model{tail: 1}
	recs := m.batch(1000)
	b.SetBytes(int64(len(recs)) * wal.RecordSize)
	for b.Loop() {
		if l.FreeRecords() < int64(len(recs)) {
			if err := l.Truncate(l.NextLSN() - 1); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := l.Append(recs); err != nil {
			b.Fatal(err)
		}
	}
	// The Truncate at each lap flushes the whole ring; report its share.
	b.ReportMetric(l.Stats().SyncSeconds/float64(b.N)*1e6, "sync-µs/op")
}

// BenchmarkOpenReplay1M measures recovery of a full 64 MiB log after a
// crash: the scan in Open (with the look-ahead) plus Replay.
func BenchmarkOpenReplay1M(b *testing.B) {
	path := newPath(b)
	l, err := wal.Open(path, wal.Options{Sync: wal.SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	m := &model{tail: 1}
	for l.FreeRecords() >= 1000 {
		appendN(b, l, m, 1000)
	}
	if err := l.Crash(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		l, err := wal.Open(path, wal.Options{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		if _, err := l.Replay(0, func(uint64, wal.Record) error { n++; return nil }); err != nil || n != len(m.ids) {
			b.Fatalf("replay: %d records, %v", n, err)
		}
		if err := l.Crash(); err != nil { // stay unclean so every Open does the full scan
			b.Fatal(err)
		}
	}
}

func TestConcurrentAppendSyncTruncate(t *testing.T) {
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize})
	m := &model{tail: 1}
	rng := rand.New(rand.NewPCG(7, 7))
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 { // syncers: every SyncTo of an appended LSN must succeed and cover it
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				next := l.NextLSN()
				if next == 1 {
					runtime.Gosched()
					continue
				}
				if err := l.SyncTo(next - 1); err != nil {
					t.Error(err)
					return
				}
				if l.DurableLSN() < next-1 {
					t.Errorf("DurableLSN %d after SyncTo(%d)", l.DurableLSN(), next-1)
					return
				}
			}
		})
	}
	wg.Go(func() { // observer
		for {
			select {
			case <-done:
				return
			default:
			}
			if u := l.UsedRecords(); u < 0 || u > l.CapacityRecords() {
				t.Errorf("UsedRecords = %d", u)
				return
			}
			_ = l.Stats()
			runtime.Gosched()
		}
	})
	for range 300 {
		n := 1 + rng.IntN(50)
		if l.FreeRecords() < int64(n) {
			upto := m.head() - 1 - uint64(rng.IntN(20))
			if err := l.Truncate(upto); err != nil {
				t.Fatal(err)
			}
			m.truncate(upto)
		}
		appendN(t, l, m, n)
		if rng.IntN(2) == 0 { // as core's writer does: the syncers collect it
			l.StartSync()
		}
	}
	close(done)
	wg.Wait()
	checkLog(t, l, m)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkLog(t, openLog(t, path, wal.Options{}), m)
}
