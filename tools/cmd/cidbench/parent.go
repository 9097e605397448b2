package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/cidstore/cidstore/tools/internal/bench"
)

// job is one child process: a workload on an engine in a sync mode.
type job struct {
	workload string
	engine   string
	sync     string
	run      int
}

// engineJob parses an --engines item, NAME or NAME:SYNC. Engines that keep
// nothing run with sync none whatever was asked.
func engineJob(item, defSync string) (engine, sync string, err error) {
	name, s, ok := strings.Cut(item, ":")
	if !ok {
		s = defSync
	}
	if _, err := parseSync(s); err != nil {
		return "", "", fmt.Errorf("engine %q: %w", item, err)
	}
	spec, err := bench.LookupEngine(name)
	if err != nil {
		return "", "", err
	}
	if !spec.Durable(true) {
		s = "none"
	}
	return name, s, nil
}

func plan(f *flags) ([]job, error) {
	var jobs []job
	var errs []error
	for run := 1; run <= f.runs; run++ {
		for _, wl := range splitList(f.workloads) {
			for _, item := range splitList(f.engines) {
				name, sync, err := engineJob(item, f.sync)
				if err == nil && (wl == "W6") != bench.IsServiceEngine(name) {
					err = fmt.Errorf("engine %s does not run workload %s (W6 runs only the servers %s)", name, wl, bench.DefaultServiceEngines)
				}
				if err != nil {
					if run == 1 {
						errs = append(errs, err)
					}
					continue
				}
				if wl == "W5" && !persists(name) {
					continue // nothing to recover (gomap): skipped, not an error
				}
				jobs = append(jobs, job{workload: wl, engine: name, sync: sync, run: run})
			}
		}
	}
	if len(jobs) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no engines"))
	}
	return jobs, errors.Join(errs...)
}

// runParent runs every job in a child process, one at a time, relays the
// JSON lines to stdout and --out, and ends with the summary table.
func runParent(ctx context.Context, f *flags, stdout, stderr io.Writer) error {
	jobs, err := plan(f)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	var out *os.File
	if f.out != "" {
		out, err = os.OpenFile(f.out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
	}
	var results []bench.Result
	var errs []error
	for _, j := range jobs {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		lines, err := runJob(ctx, f, self, j, len(jobs) > 1, stderr)
		if err != nil {
			err = fmt.Errorf("%s %s sync=%s run %d: %w", j.workload, j.engine, j.sync, j.run, err)
			fmt.Fprintln(stderr, "cidbench:", err)
			errs = append(errs, err)
		}
		for _, line := range lines {
			fmt.Fprintf(stdout, "%s\n", line)
			if out != nil {
				if _, err := fmt.Fprintf(out, "%s\n", line); err != nil {
					errs = append(errs, err)
				}
			}
			var r bench.Result
			if err := json.Unmarshal(line, &r); err == nil {
				results = append(results, r)
			}
		}
	}
	if out != nil {
		errs = append(errs, out.Close())
	}
	fmt.Fprintln(stdout)
	writeSummary(stdout, results)
	writeServiceSummary(stdout, results)
	writeW345Summary(stdout, results)
	return errors.Join(errs...)
}

// runJob runs one child in a fresh data directory, removed afterwards, and
// returns the JSON lines it printed. many says that other jobs run too
// (childEnv).
func runJob(ctx context.Context, f *flags, self string, j job, many bool, stderr io.Writer) ([][]byte, error) {
	dir, err := os.MkdirTemp(f.tmpdir, "cidbench-"+j.engine+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	args := []string{
		"--child", j.engine,
		"--child-dir", dir,
		"--workload", j.workload,
		"--sync", j.sync,
		"--run", strconv.Itoa(j.run),
		"--keys", strconv.Itoa(f.keys),
		"--lookups", strconv.Itoa(f.lookups),
		"--batch", strconv.Itoa(f.batch),
		"--seed", strconv.FormatUint(f.seed, 10),
		"--cache-bytes", strconv.FormatInt(bench.CacheBytes, 10),
		"--index-bytes", strconv.FormatInt(bench.IndexBytes, 10),
		"--wal-bytes", strconv.FormatInt(bench.WALBytes, 10),
		"--whole-buckets=" + strconv.FormatBool(bench.WholeBuckets),
		"--readers", strconv.Itoa(f.readers),
		"--big-values", strconv.Itoa(f.bigValues),
		"--wal-records", strconv.Itoa(f.walRecords),
		"--cidstore-bin", f.service.CidstoreBin,
		"--window", strconv.Itoa(f.service.Window),
		"--clients", strconv.Itoa(f.service.Clients),
		"--service-lookups", strconv.Itoa(f.service.Lookups),
	}
	if f.quiet {
		args = append(args, "--quiet")
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = childEnv(os.Environ(), j, many)
	cmd.Stderr = stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var lines [][]byte
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		if json.Valid(line) {
			lines = append(lines, line)
		} else {
			fmt.Fprintf(stderr, "%s: %s\n", j.engine, line)
		}
	}
	scanErr := sc.Err()
	waitErr := cmd.Wait()
	if len(lines) == 0 && waitErr != nil {
		// The child died before reporting (killed, out of memory): report
		// what the kernel knows.
		lines = append(lines, crashLine(f, j, cmd.ProcessState, waitErr))
	}
	return lines, errors.Join(scanErr, waitErr)
}

// diagVars name a child's diagnostic output files (bench/profile.go).
var diagVars = []string{"CIDBENCH_CPUPROFILE", "CIDBENCH_EXECTRACE", "CIDBENCH_HEAPPROFILE", "CIDBENCH_HEAPPEAK", "CIDBENCH_MEMTRACE", "CIDBENCH_COLDTRACE"}

// childEnv is the environment of job j's child. When other jobs run too,
// each diagnostic file gets the job's name before its extension
// (/tmp/p.prof → /tmp/p.W1-pebble-always-1.prof): every child writes its
// own, where the last child's used to replace the others' unseen.
func childEnv(env []string, j job, many bool) []string {
	if !many {
		return env
	}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); v != "" && slices.Contains(diagVars, k) {
			ext := filepath.Ext(v)
			kv = fmt.Sprintf("%s=%s.%s-%s-%s-%d%s", k, strings.TrimSuffix(v, ext), j.workload, j.engine, j.sync, j.run, ext)
		}
		out = append(out, kv)
	}
	return out
}

func crashLine(f *flags, j job, ps *os.ProcessState, err error) []byte {
	m := map[string]any{
		"workload": j.workload, "engine": j.engine, "keys": f.keys, "batch": f.batch,
		"sync": j.sync, "run": j.run, "seed": f.seed, "error": err.Error(),
	}
	if ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			m["peak_rss_bytes"] = ru.Maxrss * 1024
		}
	}
	b, _ := json.Marshal(m)
	return b
}
