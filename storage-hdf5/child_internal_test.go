package h5store

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Crash and SWMR tests run the writer in a child process: the test binary
// re-executed with envChild set. The child reports on stdout:
//
//	ready <lsn>   store open, model replayed to the committed lsn
//	ack <lsn>     Commit of lsn returned nil
//	done          store closed cleanly
const (
	envChild     = "H5STORE_TEST_CHILD" // child mode: "writer" or "compact"
	envPath      = "H5STORE_TEST_PATH"
	envSeed      = "H5STORE_TEST_SEED"
	envFailpoint = "H5STORE_TEST_FAILPOINT" // name:n kills the child at the n-th time name fires
	envCommits   = "H5STORE_TEST_COMMITS"   // stop after this many commits
	envPace      = "H5STORE_TEST_PACE"      // after every lsn divisible by it, wait for a line on stdin
	envReuse     = "H5STORE_TEST_REUSE"     // Options.ReuseDelayCommits
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// workloadOptions are the options of every workload store: small segments
// so the pools grow (the one HDF5 metadata change after Open) many times,
// and an index cache of a few pages, so index pages are read back.
func workloadOptions() Options {
	return Options{SegmentBytes: minSegmentBytes, IndexCacheBytes: 4 << 10}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// failpointFromEnv returns a failpoint hook that kills the process at the
// n-th firing of the failpoint envFailpoint names, or nil.
func failpointFromEnv() func(string) {
	fp := os.Getenv(envFailpoint)
	if fp == "" {
		return nil
	}
	name, at, _ := strings.Cut(fp, ":")
	n := 0
	want, _ := strconv.Atoi(at)
	return func(got string) {
		if got == name {
			if n++; n == want {
				syscall.Kill(syscall.Getpid(), syscall.SIGKILL)
			}
		}
	}
}

func runChild(mode string) int {
	switch mode {
	case "writer":
	case "compact":
		opts := workloadOptions()
		opts.failpoint = failpointFromEnv()
		if err := Compact(os.Getenv(envPath), opts, nil); err != nil {
			fmt.Fprintln(os.Stderr, "compact:", err)
			return 3
		}
		fmt.Println("done")
		return 0
	default:
		fmt.Fprintln(os.Stderr, "unknown child mode", mode)
		return 2
	}
	opts := workloadOptions()
	opts.ReuseDelayCommits = envInt(envReuse, 0)
	s, err := Open(os.Getenv(envPath), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	meta, _, ok, err := s.LoadMeta()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 2
	}
	w := newWorkload(uint64(envInt(envSeed, 1)))
	if ok {
		if err := w.advanceTo(meta.CheckpointLSN); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	if fp := failpointFromEnv(); fp != nil {
		s.failpoint = fp
	}
	fmt.Printf("ready %d\n", w.lsn)
	pace := envInt(envPace, 0)
	in := bufio.NewScanner(os.Stdin)
	for range envInt(envCommits, 1000) {
		cp := w.next()
		if err := s.Commit(cp); err != nil {
			fmt.Fprintln(os.Stderr, "commit:", err)
			return 3
		}
		fmt.Printf("ack %d\n", w.lsn)
		if pace > 0 && w.lsn%uint64(pace) == 0 && !in.Scan() {
			break
		}
	}
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		return 3
	}
	fmt.Println("done")
	return 0
}

// child is a running child process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *bytes.Buffer
}

func startChild(t *testing.T, path string, seed uint64, env ...string) *child {
	t.Helper()
	return startChildMode(t, "writer", path, seed, env...)
}

func startChildMode(t *testing.T, mode, path string, seed uint64, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+mode, envPath+"="+path, fmt.Sprintf("%s=%d", envSeed, seed))
	cmd.Env = append(cmd.Env, env...)
	c := &child{cmd: cmd, lines: make(chan string, 1024), stderr: new(bytes.Buffer)}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c
}

// parse splits a child line into its word and lsn.
func parseLine(t *testing.T, line string) (string, uint64) {
	t.Helper()
	word, num, _ := strings.Cut(line, " ")
	if word == "done" {
		return word, 0
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		t.Fatalf("child said %q", line)
	}
	return word, n
}

// wait reaps the child; killed reports whether SIGKILL ended it.
func (c *child) wait(t *testing.T) (killed bool) {
	t.Helper()
	c.stdin.Close()
	err := c.cmd.Wait()
	if err == nil {
		return false
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	t.Fatalf("child: %v\n%s", err, c.stderr)
	return false
}
