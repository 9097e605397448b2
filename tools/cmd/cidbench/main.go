// Command cidbench runs the CIDStore benchmarks of docs BENCH.md (W1, W2)
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
	workloads string
	engines   string
	keys      int
	lookups   int
	batch     int
	sync      string
	seed      uint64
	out       string
	runs      int
	tmpdir    string
	readers   int
	quiet     bool

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
	fs.StringVar(&f.out, "out", "", "append the JSON lines to this file (they are printed to stdout too)")
	fs.IntVar(&f.runs, "runs", 1, "repeat the whole set this many times; each run is its own line")
	fs.StringVar(&f.tmpdir, "tmpdir", "", "parent of the engines' data directories (default $TMPDIR)")
	fs.IntVar(&f.readers, "readers", bench.DefaultReaders, "W2 reader goroutines")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines on stderr")
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
	var errs []error
	if f.keys < 1 {
		errs = append(errs, fmt.Errorf("--keys %d < 1", f.keys))
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
