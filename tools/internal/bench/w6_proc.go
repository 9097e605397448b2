package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process plumbing of the W6 servers: free ports, start, graceful stop, and
// the /proc figures of a child process.

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago. Another process may take one before the server binds it; callers
// retry a start that fails.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// serverProc is a server child process.
type serverProc struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has been waited for
	waitErr error
	logPath string // its stdout and stderr, "" if not kept
	logFile *os.File
}

// startProc starts cmd with stdout and stderr going to logPath (when not
// empty and cmd.Stdout is unset) and reaps it in the background.
func startProc(cmd *exec.Cmd, logPath string) (*serverProc, error) {
	p := &serverProc{cmd: cmd, done: make(chan struct{}), logPath: logPath}
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		p.logFile = f
		if cmd.Stdout == nil {
			cmd.Stdout = f
		}
		cmd.Stderr = f
	}
	// Its own process group: a Ctrl-C at the terminal reaches cidbench,
	// which then stops the server itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		if p.logFile != nil {
			p.logFile.Close()
		}
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		if p.logFile != nil {
			p.logFile.Close()
		}
		close(p.done)
	}()
	return p, nil
}

func (p *serverProc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *serverProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode is the exit status once exited: -1 for a death by signal.
func (p *serverProc) exitCode() int { return p.cmd.ProcessState.ExitCode() }

// stop sends SIGTERM and waits up to timeout for the exit, then kills. It
// returns the exit code, and an error unless the process exited 0 in time.
func (p *serverProc) stop(timeout time.Duration) (int, error) {
	if p.exited() {
		return p.exitCode(), fmt.Errorf("server had already exited (%v)%s", p.waitErr, p.tail())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return -1, fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		return -1, fmt.Errorf("no exit %v after SIGTERM: killed%s", timeout, p.tail())
	}
	if code := p.exitCode(); code != 0 {
		return code, fmt.Errorf("exit after SIGTERM: %v%s", p.waitErr, p.tail())
	}
	return 0, nil
}

// kill ends the process at once and waits for it.
func (p *serverProc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the end of the process's log, for error messages.
func (p *serverProc) tail() string {
	if p.logPath == "" {
		return ""
	}
	b, err := os.ReadFile(p.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "; log " + p.logPath + " ends:\n" + string(bytes.TrimSpace(b))
}

// waitUntil polls ready every 10 ms until it returns nil, the process exits
// or timeout passes.
func (p *serverProc) waitUntil(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = ready(); last == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("server exited before it was ready (%v)%s", p.waitErr, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v (last: %v)%s", timeout, last, p.tail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ProcPeakRSSBytes returns the peak resident set size (VmHWM) of process
// pid, 0 if unreadable.
func ProcPeakRSSBytes(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	return kBField(data, "VmHWM:")
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procCPUSeconds returns the user + system CPU time of process pid.
func procCPUSeconds(pid int) (float64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clockTicks, nil
}

// selfCPUSeconds returns this process's user + system CPU time.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// cpuMeter measures the CPU seconds of a server and of this process between
// laps.
type cpuMeter struct {
	pid          int
	server, self float64
}

func newCPUMeter(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid}
	m.server, _ = procCPUSeconds(pid)
	m.self = selfCPUSeconds()
	return m
}

// lap returns the CPU seconds of the server and of this process since the
// previous lap.
func (m *cpuMeter) lap() (server, self float64) {
	s, _ := procCPUSeconds(m.pid)
	c := selfCPUSeconds()
	server, self = round3(s-m.server), round3(c-m.self)
	m.server, m.self = s, c
	return server, self
}

// envWithout returns the environment without the variables whose names
// start with prefix, then extra.
func envWithout(prefix string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// CidstoreBinEnv names the variable that locates the cidstore binary.
const CidstoreBinEnv = "CIDSTORE_BIN"

// ResolveCidstoreBin finds the cidstore binary: path when not empty, else
// $CIDSTORE_BIN, else bin/cidstore next to this executable (make puts
// cidbench and cidstore in bin/), else bin/cidstore in the working directory
// or its nearest parent that has one (../bin/cidstore from tools/). The
// result is absolute; an error says where it looked.
func ResolveCidstoreBin(path string) (string, error) {
	check := func(p string) (string, error) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		st, err := os.Stat(abs)
		if err != nil {
			return "", err
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s is not an executable file", abs)
		}
		return abs, nil
	}
	if path != "" {
		return check(path)
	}
	if p := os.Getenv(CidstoreBinEnv); p != "" {
		abs, err := check(p)
		if err != nil {
			return "", fmt.Errorf("$%s: %w", CidstoreBinEnv, err)
		}
		return abs, nil
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "cidstore")
		if abs, err := check(p); err == nil {
			return abs, nil
		}
		tried = append(tried, p)
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			p := filepath.Join(dir, "bin", "cidstore")
			if abs, err := check(p); err == nil {
				return abs, nil
			}
			tried = append(tried, p)
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("cidstore binary not found (run make build, or set --cidstore-bin or $%s); looked for %s",
		CidstoreBinEnv, strings.Join(tried, ", "))
}
