package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cidstore/cidstore/transport-zmq/client"
	zmq "github.com/pebbe/zmq4"
)

// zmq-echo: the transport's floor. A ROUTER in a process of its own answers
// every request with the same tiny msgpack map, {rolling_version: 1,
// results: []}, without decoding it; the clients are those of cidstore-zmq
// and send the same bytes (GET of a key; BATCH_INSERT of --batch pairs).
//
// The server is built like cidstore's own ROUTER owner (NOTES-ZMQ.md): one
// goroutine owns the socket, waits on its ZMQ_FD in Go's netpoller, receives
// with DONTWAIT and replies inline with ROUTER_MANDATORY + DONTWAIT. It is
// this very executable (cidbench, or a test binary) started again with
// $CIDBENCH_ZMQ_ECHO set to the endpoint to bind: the init below runs the
// server instead of main.

var _ = registerService(serviceSpec{
	name:      "zmq-echo",
	sync:      func(bool) string { return "none" },
	verifies:  false,
	wire:      "ZeroMQ DEALER->ROUTER, tcp loopback; fixed 27-byte reply, request not decoded",
	available: func(ServiceOptions) error { return nil },
	version: func(ServiceOptions) string {
		ma, mi, pa := zmq.Version()
		return fmt.Sprintf("libzmq %d.%d.%d", ma, mi, pa)
	},
	start: startEcho,
})

// echoEnv names the variable that turns this executable into the echo
// server.
const echoEnv = "CIDBENCH_ZMQ_ECHO"

func init() {
	if ep := os.Getenv(echoEnv); ep != "" {
		if err := echoServe(ep, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "zmq-echo:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// echoReply is msgpack {"rolling_version": 1, "results": []}.
var echoReply = []byte("\x82\xafrolling_version\x01\xa7results\x90")

// echoServe binds a ROUTER to endpoint, prints the bound endpoint on a line
// of out, and echoes until SIGTERM or SIGINT.
func echoServe(endpoint string, out *os.File) (err error) {
	zctx, err := zmq.NewContext()
	if err != nil {
		return err
	}
	sock, err := zctx.NewSocket(zmq.ROUTER)
	if err != nil {
		return errors.Join(err, zctx.Term())
	}
	defer func() { err = errors.Join(err, sock.Close(), zctx.Term()) }()
	if err := errors.Join(
		sock.SetLinger(0),
		sock.SetRouterMandatory(1),
		sock.SetMaxmsgsize(16<<20),
		sock.SetRcvhwm(1024),
		sock.SetSndhwm(1024),
		sock.Bind(endpoint),
	); err != nil {
		return err
	}
	bound, err := sock.GetLastEndpoint()
	if err != nil {
		return err
	}
	fd, err := sock.GetFd()
	if err != nil {
		return err
	}
	dup, err := syscall.Dup(fd)
	if err != nil {
		return err
	}
	// libzmq's signaler fd is non-blocking: os.NewFile puts the dup in the
	// netpoller, where deadlines work.
	f := os.NewFile(uintptr(dup), "zmq-fd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var stop atomic.Bool
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		stop.Store(true)
		_ = f.SetReadDeadline(time.Unix(1, 0)) // wakes the wait below
	}()
	if _, err := fmt.Fprintln(out, bound); err != nil {
		return err
	}
	ready := func(uintptr) bool {
		if stop.Load() {
			return true
		}
		ev, err := sock.GetEvents()
		return err != nil || ev&zmq.POLLIN != 0
	}
	for !stop.Load() {
		for {
			msg, err := sock.RecvMessageBytes(zmq.DONTWAIT)
			if err != nil {
				if zmq.AsErrno(err) != zmq.Errno(syscall.EAGAIN) {
					return fmt.Errorf("receive: %w", err)
				}
				break
			}
			if len(msg) < 2 {
				continue
			}
			// [id, payload] from a DEALER, [id, "", payload] from a REQ.
			_, err = sock.SendBytes(msg[0], zmq.SNDMORE|zmq.DONTWAIT)
			if err == nil && len(msg) == 3 {
				_, err = sock.SendBytes(nil, zmq.SNDMORE|zmq.DONTWAIT)
			}
			if err == nil {
				_, err = sock.SendBytes(echoReply, zmq.DONTWAIT)
			}
			_ = err // a peer gone or not reading: dropped, as the server does
		}
		if err := rc.Read(ready); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("wait: %w", err)
		}
	}
	return nil
}

type echoService struct {
	proc     *serverProc
	endpoint string
}

func startEcho(cfg Config, _ ServiceOptions) (service, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = envWithout(echoEnv+"=", echoEnv+"=tcp://127.0.0.1:*")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p, err := startProc(cmd, filepath.Join(cfg.Dir, "zmq-echo.log"))
	if err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	select {
	case ep, ok := <-line:
		if ok && strings.HasPrefix(ep, "tcp://") {
			return &echoService{proc: p, endpoint: ep}, nil
		}
		p.kill()
		return nil, fmt.Errorf("echo server printed %q, not its endpoint%s", ep, p.tail())
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, fmt.Errorf("echo server did not start in 30s%s", p.tail())
	}
}

func (s *echoService) ingest(pairs []Pair, batch, window int) error {
	c, err := client.Dial(s.endpoint, client.Options{Timeout: serviceRequestTimeout, Window: window, BatchEntries: batch})
	if err != nil {
		return err
	}
	err = c.InsertBatch(context.Background(), pairs)
	return errors.Join(err, c.Close())
}

func (s *echoService) dial() (serviceConn, error) { return dialZMQ(s.endpoint) }
func (s *echoService) pid() int                   { return s.proc.pid() }
func (s *echoService) kill()                      { s.proc.kill() }
func (s *echoService) dataDir() string            { return "" }
func (s *echoService) stop() (int, error)         { return s.proc.stop(10 * time.Second) }
