package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cidstore/cidstore/transport-zmq/client"
)

// cidstore-zmq: bin/cidstore serve, started as PROTOCOL.md §4 says, on free
// loopback ports with its data in the run's directory, driven through the
// project's Go client.

var _ = registerService(serviceSpec{
	name: "cidstore-zmq",
	sync: func(requested bool) string {
		if requested {
			return "always"
		}
		return "none"
	},
	verifies: true,
	wire:     "ZeroMQ DEALER->ROUTER, tcp loopback; msgpack, E as [high, low]",
	available: func(opts ServiceOptions) error {
		_, err := ResolveCidstoreBin(opts.CidstoreBin)
		return err
	},
	version: func(ServiceOptions) string { return "(devel)" },
	start:   startCidstore,
})

// Timeouts of the cidstore server.
const (
	cidstoreStartTimeout = 2 * time.Minute
	cidstoreStopTimeout  = 2 * time.Minute
	// serviceRequestTimeout bounds one request (a batch includes its WAL
	// sync; a shared machine can stall for a while).
	serviceRequestTimeout = 30 * time.Second
)

type cidstoreService struct {
	proc   *serverProc
	router string
	data   string
}

func startCidstore(cfg Config, opts ServiceOptions) (service, error) {
	bin, err := ResolveCidstoreBin(opts.CidstoreBin)
	if err != nil {
		return nil, err
	}
	sync := "none"
	if cfg.Sync {
		sync = "always"
	}
	data := filepath.Join(cfg.Dir, "data")
	var last error
	// A port found free may be taken before the server binds it: retry.
	for attempt := 1; attempt <= 3; attempt++ {
		ports, err := freePorts(3)
		if err != nil {
			return nil, err
		}
		s := &cidstoreService{router: fmt.Sprintf("tcp://127.0.0.1:%d", ports[0]), data: data}
		rest := fmt.Sprintf("127.0.0.1:%d", ports[2])
		cmd := exec.Command(bin, "serve")
		// Only our settings: a CIDSTORE_* of the caller's environment (a
		// config file, another data dir) must not change the run.
		cmd.Env = envWithout("CIDSTORE_",
			"CIDSTORE_DATA_DIR="+data,
			"CIDSTORE_ROUTER_ENDPOINT="+s.router,
			"CIDSTORE_PULL_ENDPOINT="+fmt.Sprintf("tcp://127.0.0.1:%d", ports[1]),
			"CIDSTORE_REST_ADDR="+rest,
			"CIDSTORE_SYNC="+sync,
			"CIDSTORE_LOG_FORMAT=json",
		)
		logPath := filepath.Join(cfg.Dir, "cidstore-"+strconv.Itoa(attempt)+".log")
		if s.proc, err = startProc(cmd, logPath); err != nil {
			return nil, err
		}
		hc := &http.Client{Timeout: time.Second}
		last = s.proc.waitUntil(cidstoreStartTimeout, func() error {
			resp, err := hc.Get("http://" + rest + "/ready")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /ready: %s", resp.Status)
			}
			return nil
		})
		if last == nil {
			return s, nil
		}
		s.proc.kill()
		_ = os.RemoveAll(data)
	}
	return nil, last
}

func (s *cidstoreService) ingest(pairs []Pair, batch, window int) error {
	c, err := client.Dial(s.router, client.Options{Timeout: serviceRequestTimeout, Window: window, BatchEntries: batch})
	if err != nil {
		return err
	}
	err = c.InsertBatch(context.Background(), pairs)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *cidstoreService) dial() (serviceConn, error) { return dialZMQ(s.router) }

func (s *cidstoreService) pid() int        { return s.proc.pid() }
func (s *cidstoreService) kill()           { s.proc.kill() }
func (s *cidstoreService) dataDir() string { return s.data }
func (s *cidstoreService) stop() (int, error) {
	return s.proc.stop(cidstoreStopTimeout)
}

// zmqConn is one client of a ZeroMQ engine (cidstore-zmq or zmq-echo).
type zmqConn struct{ c *client.Client }

func dialZMQ(endpoint string) (serviceConn, error) {
	c, err := client.Dial(endpoint, client.Options{Timeout: serviceRequestTimeout})
	if err != nil {
		return nil, err
	}
	return zmqConn{c}, nil
}

func (z zmqConn) get(key E) ([]E, error) { return z.c.Get(context.Background(), key) }
func (z zmqConn) close() error           { return z.c.Close() }
