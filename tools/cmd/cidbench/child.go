package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/cidstore/cidstore/tools/internal/bench"
)

// runChild runs one workload on one engine in this process and writes its
// result line to stdout. Progress goes to stderr. A run that fails still
// writes its line, with the error field set, before returning the error.
func runChild(f *flags, stdout, stderr io.Writer) error {
	spec, err := bench.LookupEngine(f.child)
	if err != nil {
		return err
	}
	sync, err := parseSync(f.sync)
	if err != nil {
		return err
	}
	if strings.Contains(f.workloads, ",") {
		return fmt.Errorf("child runs one workload, got %q", f.workloads)
	}
	cfg := bench.Config{
		Workload:   f.workloads,
		Engine:     spec,
		Keys:       f.keys,
		Lookups:    f.lookups,
		Batch:      f.batch,
		Sync:       sync,
		Seed:       f.seed,
		Readers:    f.readers,
		BigValues:  f.bigValues,
		WALRecords: f.walRecords,
		Service:    f.service,
		Dir:        f.childDir,
		Run:        f.run,
	}
	if !f.quiet {
		cfg.Log = stderr
	}
	stop, err := bench.StartCPUProfile()
	if err != nil {
		return err
	}
	stopTrace, err := bench.StartMemTrace()
	if err != nil {
		stop()
		return err
	}
	r, runErr := bench.Workloads[cfg.Workload](cfg)
	stopTrace()
	stop()
	if runErr != nil {
		r.Error = runErr.Error()
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return err
	}
	return runErr
}
