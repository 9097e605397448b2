package tests

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/core/port"
	h5store "github.com/cidstore/cidstore/storage-hdf5"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

// The crash tests run a child process (this test binary, re-executed into
// TestCrashChild) that applies a deterministic sequence of batches to a
// durable store and prints "ACK n" after batch n returns. The parent kills
// it with SIGKILL at a random moment, or the child kills itself at a named
// failpoint; the parent then reopens the store and checks that every
// acknowledged batch is there, that the batch in flight is all there or
// not at all, that nothing later is, and that Validate passes.

const (
	envChild     = "CIDSTORE_CRASH_CHILD"     // data dir: run as the child
	envBackend   = "CIDSTORE_CRASH_BACKEND"   // adapter name
	envFailpoint = "CIDSTORE_CRASH_FAILPOINT" // "name:n": die at the n-th hit
	envSeed      = "CIDSTORE_CRASH_SEED"
	crashWALSize = 256 << 10 // ~4000 records: the ring wraps every ~20 batches
	crashKeys    = 3000
)

// crashOp returns batch n of the sequence for seed: inserts mostly, and
// every fifth batch deletes (whole keys and single values).
func crashOp(seed uint64, n int) (ins []cidstore.Pair, dels []cidstore.Deletion) {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	key := func() cidstore.E { return cidstore.E{High: 0xC0FFEE, Low: uint64(r.IntN(crashKeys)) + 1} }
	if n%5 == 4 {
		for i := 0; i < 20; i++ {
			d := cidstore.Deletion{Key: key()}
			if i%2 == 0 {
				d.Value = cidstore.E{High: d.Key.Low, Low: uint64(r.IntN(8)) + 1}
			}
			dels = append(dels, d)
		}
		return nil, dels
	}
	size := 50 + r.IntN(250)
	for i := 0; i < size; i++ {
		k := key()
		ins = append(ins, cidstore.Pair{Key: k, Value: cidstore.E{High: k.Low, Low: uint64(r.IntN(8)) + 1}})
	}
	return ins, nil
}

func crashOpts(dir string) cidstore.Options {
	return cidstore.Options{
		WALPath:            filepath.Join(dir, "store.wal"),
		WALSizeBytes:       crashWALSize,
		Sync:               cidstore.SyncAlways,
		CheckpointInterval: 30 * time.Millisecond,
		BucketCapacity:     16,
		HashSeed:           11,
		CacheBytes:         32 << 10, // evicts and reloads between kills
		// Maintenance runs hard, so that kills land inside its tasks too.
		MaintenanceInterval:      2 * time.Millisecond,
		MaintenanceAgeSaturation: 5 * time.Millisecond,
		MaintenanceIngestLimit:   1 << 30,
		GCInterval:               10 * time.Millisecond,
	}
}

type crashBackend struct {
	name string
	open func(dir string) (port.Backend, error)
}

var crashBackends = []crashBackend{
	{"memstore", func(dir string) (port.Backend, error) { return memstore.Open(filepath.Join(dir, "store.snapshot")) }},
	{"h5store", func(dir string) (port.Backend, error) {
		return h5store.Open(filepath.Join(dir, "store.h5"), h5store.Options{IndexCacheBytes: tinyIndexBytes})
	}},
}

func findCrashBackend(name string) crashBackend {
	for _, b := range crashBackends {
		if b.name == name {
			return b
		}
	}
	panic("unknown crash backend " + name)
}

// TestCrashChild is the child process; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envChild)
	if dir == "" {
		t.Skip("crash child: run by the crash tests")
	}
	seed, _ := strconv.ParseUint(os.Getenv(envSeed), 10, 64)
	opts := crashOpts(dir)
	if fp := os.Getenv(envFailpoint); fp != "" {
		if strings.HasPrefix(fp, "maint.") {
			// Maintenance passes over resident buckets only: keep them
			// all resident so that its tasks (and their kill points) run.
			opts.CacheBytes = 0
		}
		name, nth, _ := strings.Cut(fp, ":")
		n, _ := strconv.Atoi(nth)
		hits := 0
		opts.Failpoint = func(step string) {
			if step == name {
				if hits++; hits == n {
					fmt.Println("FAILPOINT", step)
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
		}
	}
	b, err := findCrashBackend(os.Getenv(envBackend)).open(dir)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	st, err := cidstore.Open(b, opts)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	// Continue after what is already applied: the parent passes the next n.
	start, _ := strconv.Atoi(os.Getenv("CIDSTORE_CRASH_START"))
	out := bufio.NewWriter(os.Stdout)
	ctx := context.Background()
	for n := start; ; n++ {
		ins, dels := crashOp(seed, n)
		if ins != nil {
			err = st.InsertBatch(ctx, ins)
		} else {
			err = st.DeleteBatch(ctx, dels)
		}
		if err != nil {
			fmt.Fprintln(out, "ERR", err)
			out.Flush()
			os.Exit(4)
		}
		fmt.Fprintln(out, "ACK", n)
		out.Flush()
	}
}

// crashModel replays batches [0, n) into a model.
func crashModel(seed uint64, n int) model {
	m := model{}
	for i := 0; i < n; i++ {
		ins, dels := crashOp(seed, i)
		for _, p := range ins {
			m.insert(p.Key, p.Value)
		}
		for _, d := range dels {
			if d.Value.IsZero() {
				delete(m, d.Key)
			} else {
				m.deleteValue(d.Key, d.Value)
			}
		}
	}
	return m
}

// runChild starts the child and returns the last acknowledged batch (-1 if
// none) after it dies: killed by us after killAfter, or by its failpoint.
func runChild(t *testing.T, backend, dir string, seed uint64, start int, failpoint string, killAfter time.Duration) (acked int, failpointHit bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+dir, envBackend+"="+backend, envSeed+"="+strconv.FormatUint(seed, 10),
		"CIDSTORE_CRASH_START="+strconv.Itoa(start), envFailpoint+"="+failpoint)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var timer *time.Timer
	if killAfter > 0 {
		timer = time.AfterFunc(killAfter, func() { cmd.Process.Kill() })
	}
	last := start - 1
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ACK "):
			n, _ := strconv.Atoi(line[4:])
			if n != last+1 {
				t.Fatalf("child acknowledged %d after %d", n, last)
			}
			last = n
		case strings.HasPrefix(line, "ERR"):
			t.Fatalf("child: %s", line)
		case strings.HasPrefix(line, "FAILPOINT "):
			failpointHit = true
		}
	}
	if timer != nil {
		timer.Stop()
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v", err)
	}
	return last, failpointHit
}

// verifyCrash reopens the store and checks it against the model: all
// batches < acked+1 applied, batch acked+1 all or nothing, none later. It
// returns the number of batches applied.
func verifyCrash(t *testing.T, backend, dir string, seed uint64, acked int) int {
	t.Helper()
	b, err := findCrashBackend(backend).open(dir)
	if err != nil {
		t.Fatalf("reopen backend: %v", err)
	}
	st, err := cidstore.Open(b, crashOpts(dir))
	if err != nil {
		t.Fatalf("reopen after crash (acked %d): %v", acked, err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}()
	if err := st.Validate(); err != nil {
		t.Fatalf("Validate after crash: %v", err)
	}
	ctx := context.Background()
	// Space accounting: a GC pass and a checkpoint free whatever the crash
	// orphaned; a second pass then finds nothing.
	if _, err := st.GC(ctx); err != nil {
		t.Fatalf("GC after crash: %v", err)
	}
	if err := st.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if gs, err := st.GC(ctx); err != nil || gs.OrphanValueSets != 0 || gs.OrphanBuckets != 0 {
		t.Fatalf("second GC after crash: %+v, %v", gs, err)
	}
	matches := func(m model) bool {
		for i := uint64(1); i <= crashKeys; i++ {
			k := cidstore.E{High: 0xC0FFEE, Low: i}
			got, err := st.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, m.get(k)) {
				return false
			}
		}
		return true
	}
	if matches(crashModel(seed, acked+1)) {
		return acked + 1
	}
	if matches(crashModel(seed, acked+2)) {
		return acked + 2
	}
	t.Fatalf("seed %d: store after crash matches neither the %d acknowledged batches nor those plus the one in flight", seed, acked+1)
	return 0
}

// crashScenario runs kills rounds on one data dir, each restarting the
// child where the recovered store left off.
func crashScenario(t *testing.T, backend string, seed uint64, rounds int, failpoint func(round int) string, kill func(r *rand.Rand) time.Duration) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(seed, 77))
	next := 0
	for round := 0; round < rounds; round++ {
		fp := ""
		if failpoint != nil {
			fp = failpoint(round)
		}
		acked, hit := runChild(t, backend, dir, seed, next, fp, kill(r))
		if fp != "" && !hit {
			t.Fatalf("round %d: failpoint %s never fired (the child was killed by the timeout)", round, fp)
		}
		next = verifyCrash(t, backend, dir, seed, acked)
		if next < acked+1 {
			t.Fatalf("round %d: lost acknowledged batches", round)
		}
	}
	t.Logf("%d kills, %d batches applied", rounds, next)
}

// crashRounds is n, or CIDSTORE_CRASH_ROUNDS when set (make crash).
func crashRounds(n int) int {
	if v, err := strconv.Atoi(os.Getenv("CIDSTORE_CRASH_ROUNDS")); err == nil && v > 0 {
		return v
	}
	if testing.Short() {
		return max(1, n/5)
	}
	return n
}

func TestCrashRandomKills(t *testing.T) {
	rounds := crashRounds(20)
	for _, b := range crashBackends {
		t.Run(b.name, func(t *testing.T) {
			crashScenario(t, b.name, 1, rounds, nil, func(r *rand.Rand) time.Duration {
				return time.Duration(50+r.IntN(400)) * time.Millisecond
			})
		})
	}
}

func TestCrashFailpoints(t *testing.T) {
	steps := []string{
		"wal.append.before-copy", "wal.append.after-copy", "wal.sync.before", "wal.sync.after",
		"wal.truncate.before-header", "wal.truncate.after-header",
		"checkpoint.before-commit", "checkpoint.after-commit",
		"store.split", "store.promote",
		"maint.merge", "maint.compact", "maint.gc",
	}
	rounds := crashRounds(4)
	for _, b := range crashBackends {
		for i, step := range steps {
			t.Run(b.name+"/"+step, func(t *testing.T) {
				crashScenario(t, b.name, uint64(100+i), rounds, func(round int) string {
					return fmt.Sprintf("%s:%d", step, 3+7*round)
				}, func(*rand.Rand) time.Duration { return 20 * time.Second }) // the failpoint kills first
			})
		}
		// Directory doublings become rare as the store grows, and this
		// workload rarely leaves a spilled key quiet at two values (the
		// demotion hysteresis): kill at the first few hits, each on a
		// fresh store. It never gets sparse enough for buddy merges:
		// core's TestMaintenanceCrash kills inside those.
		for _, fp := range []struct {
			step    string
			hits    int
			timeout time.Duration
		}{
			{"store.split.doubling", 3, 20 * time.Second},
			{"maint.demote", 2, time.Minute}, // seconds to tens of thousands of batches
		} {
			for hit := 1; hit <= fp.hits; hit++ {
				t.Run(fmt.Sprintf("%s/%s:%d", b.name, fp.step, hit), func(t *testing.T) {
					crashScenario(t, b.name, uint64(200+hit), 1, func(int) string {
						return fmt.Sprintf("%s:%d", fp.step, hit)
					}, func(*rand.Rand) time.Duration { return fp.timeout })
				})
			}
		}
	}
}
