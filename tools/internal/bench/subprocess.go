package bench

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// subprocessEnv, when set in a process's environment to "STEP ARG", makes
// Subprocess run that step of a workload instead of the program. W5 uses it
// to fill a store in a process that it then kills.
const subprocessEnv = "CIDBENCH_SUBPROCESS"

// subprocessUnhandled is the only argument a step's process gets: a program
// that forgot to call Subprocess fails on it at once (an unknown flag)
// rather than running its own work, cidbench's default benchmark included.
const subprocessUnhandled = "--cidbench-subprocess-not-handled"

// Subprocess runs the workload step this process was started for, then
// exits; in any other process it returns at once. W5 starts its filler as a
// copy of the running program, so a program that runs W5 (cidbench, the
// package's tests through TestMain) must call Subprocess first thing.
func Subprocess() {
	v, ok := os.LookupEnv(subprocessEnv)
	if !ok {
		return
	}
	step, arg, _ := strings.Cut(v, " ")
	var err error
	switch step {
	case w5FillStep:
		err = w5Fill([]byte(arg), os.Stdout, os.Stderr)
	default:
		err = fmt.Errorf("unknown step %q", step)
	}
	fmt.Fprintf(os.Stderr, "cidbench subprocess %s: %v\n", step, err)
	os.Exit(3)
}

// runSubprocess runs step with arg in a copy of this program and returns
// what it wrote to stdout and how it ended (an *exec.ExitError for a
// signal). Its stderr goes to log, or is kept for the error when log is
// nil.
func runSubprocess(step string, arg []byte, log io.Writer) (stdout []byte, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	cmd := exec.Command(exe, subprocessUnhandled)
	cmd.Env = append(os.Environ(), subprocessEnv+"="+step+" "+string(arg))
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if log != nil {
		cmd.Stderr = io.MultiWriter(log, &errb)
	}
	err = cmd.Run()
	if err != nil && errb.Len() > 0 {
		tail := errb.Bytes()[max(0, errb.Len()-2000):]
		err = fmt.Errorf("%w; its stderr ends: %s", err, bytes.TrimSpace(tail))
	}
	return out.Bytes(), err
}
