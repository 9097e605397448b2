// Command cidbench runs the CIDStore benchmarks of docs BENCH.md (W1–W6)
// against cidstore and its peers, each engine in a subprocess of its own so
// that peak RSS is per engine, and prints one JSON line per (workload,
// engine, run) followed by a summary table with ratios to gomap and to the
// best peer.
//
//	cidbench --workload W1 --engines cidstore-mem,cidstore-mem:none,gomap,pebble,badger,bbolt
//
// An engine may carry its own sync mode after a colon (cidstore-mem:none);
// otherwise --sync applies. Engines that keep nothing (gomap) always run
// with sync none.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cidstore/cidstore/tools/internal/bench"
)

// flags holds the command line. The child-only flags are hidden from the
// usage text.
type flags struct {
	workloads  string
	engines    string
	keys       int
	lookups    int
	batch      int
	sync       string
	seed       uint64
	out        string
	runs       int
	tmpdir     string
	readers    int
	quiet      bool
	service    bench.ServiceOptions // W6
	bigValues  int                  // W3
	walRecords int                  // W5

	child    string // engine name: run one workload in this process
	childDir string
	run      int
}

var hidden = map[string]bool{"child": true, "child-dir": true, "run": true}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("cidbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.workloads, "workload", "W1", "comma-separated workloads: "+strings.Join(bench.WorkloadNames(), ", "))
	fs.StringVar(&f.engines, "engines", "cidstore-mem,gomap,pebble,badger,bbolt",
		"comma-separated engines, each optionally NAME:always or NAME:none; known: "+engineNames())
	fs.IntVar(&f.keys, "keys", 1_000_000, "keys K")
	fs.IntVar(&f.lookups, "lookups", 1_000_000, "W1 lookups L (L + L/10 GETs are made)")
	fs.IntVar(&f.batch, "batch", 1000, "pairs per insert batch")
	fs.StringVar(&f.sync, "sync", "always", "default sync mode: always (one durable commit per batch) or none")
	fs.Uint64Var(&f.seed, "seed", 42, "generator seed")
	fs.Int64Var(&bench.CacheBytes, "cache-bytes", 0, "cache budget in bytes of the durable cidstore engines (0 = unbounded)")
	fs.Int64Var(&bench.IndexBytes, "index-bytes", 0, "cidstore-hdf5's index page budget in bytes (0 = what the service derives from --cache-bytes)")
	fs.BoolVar(&bench.WholeBuckets, "whole-buckets", false, "durable cidstore engines write every bucket whole at checkpoints, no deltas (cidstore.Options.WholeBuckets)")
	fs.Int64Var(&bench.WALBytes, "wal-bytes", 0, "WAL size in bytes of the durable cidstore engines (0 = the default; W5 sizes its own)")
	fs.StringVar(&f.out, "out", "", "append the JSON lines to this file (they are printed to stdout too)")
	fs.IntVar(&f.runs, "runs", 1, "repeat the whole set this many times; each run is its own line")
	fs.StringVar(&f.tmpdir, "tmpdir", "", "parent of the engines' data directories (default $TMPDIR)")
	fs.IntVar(&f.readers, "readers", bench.DefaultReaders, "W2 reader goroutines")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&f.service.CidstoreBin, "cidstore-bin", "", "W6: the cidstore binary (default $CIDSTORE_BIN, else bin/cidstore beside cidbench or in the nearest parent directory: ../bin/cidstore from tools/)")
	fs.IntVar(&f.service.Window, "window", bench.DefaultServiceWindow, "W6: insert messages (Redis: pipelines of --batch SADDs) in flight")
	fs.IntVar(&f.service.Clients, "clients", bench.DefaultServiceClients, "W6: concurrent clients of the second GET phase")
	fs.IntVar(&f.service.Lookups, "service-lookups", bench.DefaultServiceLookups, "W6: lookups L of each GET phase (L + L/10 GETs, W1's stream)")
	fs.IntVar(&f.bigValues, "big-values", bench.DefaultBigValues, "W3: values of the big key (--keys is the number of light keys of 1000 values; BENCH.md: 10000)")
	fs.IntVar(&f.walRecords, "wal-records", bench.DefaultWALRecords, "W5: pairs logged past the last checkpoint before the kill -9 (W5 derives its keys from this; --keys does not apply)")
	fs.StringVar(&f.child, "child", "", "internal: run one engine in this process")
	fs.StringVar(&f.childDir, "child-dir", "", "internal: the child's data directory")
	fs.IntVar(&f.run, "run", 1, "internal: run number")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: cidbench [flags]\n\nRuns the CIDStore benchmarks (docs BENCH.md); each engine runs in its own process.\n\n")
		fs.VisitAll(func(fl *flag.Flag) {
			if hidden[fl.Name] {
				return
			}
			name, usage := flag.UnquoteUsage(fl)
			fmt.Fprintf(stderr, "  --%s %s\n    \t%s", fl.Name, name, usage)
			if fl.DefValue != "" && fl.DefValue != "false" {
				fmt.Fprintf(stderr, " (default %s)", fl.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	enginesSet := false
	fs.Visit(func(fl *flag.Flag) { enginesSet = enginesSet || fl.Name == "engines" })
	if !enginesSet && strings.Join(splitList(f.workloads), ",") == "W6" {
		f.engines = bench.DefaultServiceEngines // W6 runs servers, not the store engines
	}
	var errs []error
	if f.service.Window < 1 || f.service.Clients < 1 || f.service.Lookups < 1 {
		errs = append(errs, fmt.Errorf("--window %d, --clients %d, --service-lookups %d: each must be >= 1",
			f.service.Window, f.service.Clients, f.service.Lookups))
	}
	if f.keys < 1 {
		errs = append(errs, fmt.Errorf("--keys %d < 1", f.keys))
	}
	if f.bigValues < 1 || f.walRecords < 1 {
		errs = append(errs, fmt.Errorf("--big-values %d, --wal-records %d: each must be >= 1", f.bigValues, f.walRecords))
	}
	if f.lookups < 0 {
		errs = append(errs, fmt.Errorf("--lookups %d < 0", f.lookups))
	}
	if f.batch < 1 {
		errs = append(errs, fmt.Errorf("--batch %d < 1", f.batch))
	}
	if f.runs < 1 {
		errs = append(errs, fmt.Errorf("--runs %d < 1", f.runs))
	}
	if _, err := parseSync(f.sync); err != nil {
		errs = append(errs, err)
	}
	for _, w := range splitList(f.workloads) {
		if _, ok := bench.Workloads[w]; !ok {
			errs = append(errs, fmt.Errorf("unknown workload %q (have %s)", w, strings.Join(bench.WorkloadNames(), ", ")))
		}
	}
	return f, errors.Join(errs...)
}

func engineNames() string {
	var s []string
	for _, e := range bench.Engines() {
		s = append(s, e.Name)
	}
	return strings.Join(s, ", ")
}

func parseSync(s string) (bool, error) {
	switch s {
	case "always":
		return true, nil
	case "none":
		return false, nil
	}
	return false, fmt.Errorf("sync mode %q (want always or none)", s)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func main() {
	bench.Subprocess() // W5's filler is this binary, started again
	f, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cidbench:", err)
		os.Exit(2)
	}
	if f.child != "" {
		err = runChild(f, os.Stdout, os.Stderr)
	} else {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = runParent(ctx, f, os.Stdout, os.Stderr)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cidbench:", err)
		os.Exit(1)
	}
}
