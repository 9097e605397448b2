package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// redis-always and redis-everysec: redis-server (the Debian package) with
// AOF on, appendfsync always or everysec, RDB snapshots off (save ""; the
// AOF is the durability; automatic AOF rewrites stay at Redis's defaults),
// one process per run on a free loopback port with its files in the run's
// directory.
//
// A pair is one SADD key member where key and member are the 16-byte
// big-endian binary forms of E (High then Low), so that Redis holds the
// same 32 bytes per pair as the other engines; a GET is SMEMBERS key, whose
// answer is decoded and sorted by the client. The client is a hand-written
// RESP pipeline (no client library: nothing between the socket and the
// commands): ingest writes --batch SADDs, flushes them as one pipeline and
// keeps up to Window pipelines unanswered, as cidstore-zmq keeps Window
// BATCH_INSERT messages. With appendfsync always Redis writes and fsyncs
// the AOF before it sends the replies of an event-loop iteration, so an
// acknowledged pipeline is durable.

func init() {
	for _, mode := range []string{"always", "everysec"} {
		registerService(serviceSpec{
			name:      "redis-" + mode,
			sync:      func(bool) string { return mode },
			verifies:  true,
			wire:      "RESP over tcp loopback; one SADD per pair, 16-byte binary key and member; SMEMBERS",
			available: func(ServiceOptions) error { _, err := redisServerPath(); return err },
			version:   func(ServiceOptions) string { return redisVersion() },
			start: func(cfg Config, _ ServiceOptions) (service, error) {
				return startRedis(cfg, mode)
			},
		})
	}
}

// RedisServerEnv names the variable that may locate redis-server.
const RedisServerEnv = "REDIS_SERVER"

// redisServerPath finds redis-server: $REDIS_SERVER, else on $PATH, else
// /usr/bin/redis-server.
func redisServerPath() (string, error) {
	if p := os.Getenv(RedisServerEnv); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server", nil
	}
	return "", errors.New("redis-server not found (make deps installs it; or set $" + RedisServerEnv + ")")
}

var redisVersionRE = regexp.MustCompile(`v=([0-9.]+)`)

func redisVersion() string {
	p, err := redisServerPath()
	if err != nil {
		return ""
	}
	out, err := exec.Command(p, "--version").Output()
	if err != nil {
		return ""
	}
	if m := redisVersionRE.FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return string(bytes.TrimSpace(out))
}

type redisService struct {
	proc *serverProc
	addr string
	dir  string
}

func startRedis(cfg Config, fsync string) (service, error) {
	bin, err := redisServerPath()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Join(cfg.Dir, "redis"))
	if err != nil {
		return nil, err
	}
	var last error
	for attempt := 1; attempt <= 3; attempt++ {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		s := &redisService{addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), dir: dir}
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(ports[0]),
			"--bind", "127.0.0.1",
			"--protected-mode", "yes",
			"--daemonize", "no",
			"--dir", dir,
			"--appendonly", "yes",
			"--appendfsync", fsync,
			"--save", "",
			"--loglevel", "notice",
		)
		logPath := filepath.Join(cfg.Dir, "redis-"+strconv.Itoa(attempt)+".log")
		if s.proc, err = startProc(cmd, logPath); err != nil {
			return nil, err
		}
		last = s.proc.waitUntil(time.Minute, func() error {
			c, err := dialRESP(s.addr)
			if err != nil {
				return err
			}
			defer c.close()
			return c.ping()
		})
		if last == nil {
			return s, nil
		}
		s.proc.kill()
		_ = os.RemoveAll(dir)
	}
	return nil, last
}

func (s *redisService) ingest(pairs []Pair, batch, window int) error {
	c, err := dialRESP(s.addr)
	if err != nil {
		return err
	}
	defer c.close()
	var queue []int // commands of the pipelines sent and not yet answered
	for lo := 0; lo < len(pairs); lo += batch {
		for _, p := range pairs[lo:min(lo+batch, len(pairs))] {
			c.sadd(p.Key, p.Value)
		}
		if err := c.w.Flush(); err != nil {
			return err
		}
		queue = append(queue, min(batch, len(pairs)-lo))
		for len(queue) >= window || (lo+batch >= len(pairs) && len(queue) > 0) {
			for range queue[0] {
				if _, err := c.readInt(); err != nil {
					return fmt.Errorf("SADD: %w", err)
				}
			}
			queue = queue[1:]
		}
	}
	return nil
}

func (s *redisService) dial() (serviceConn, error) { return dialRESP(s.addr) }
func (s *redisService) pid() int                   { return s.proc.pid() }
func (s *redisService) kill()                      { s.proc.kill() }
func (s *redisService) dataDir() string            { return s.dir }
func (s *redisService) stop() (int, error)         { return s.proc.stop(2 * time.Minute) }

// respConn is a minimal RESP2 client: the commands W6 needs, pipelined by
// the caller through the buffered writer.
type respConn struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	cmd  [60]byte // the SADD being encoded
}

func dialRESP(addr string) (*respConn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &respConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriterSize(conn, 64<<10)}, nil
}

func (c *respConn) close() error { return c.conn.Close() }

// deadline bounds the next exchange.
func (c *respConn) deadline() { _ = c.conn.SetDeadline(time.Now().Add(serviceRequestTimeout)) }

func (c *respConn) ping() error {
	c.deadline()
	if _, err := c.w.WriteString("*1\r\n$4\r\nPING\r\n"); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	line, err := c.line()
	if err != nil {
		return err
	}
	if string(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// sadd buffers SADD key member (60 bytes).
func (c *respConn) sadd(key, member E) {
	b := c.cmd[:0]
	b = append(b, "*3\r\n$4\r\nSADD\r\n$16\r\n"...)
	b = binary.BigEndian.AppendUint64(b, key.High)
	b = binary.BigEndian.AppendUint64(b, key.Low)
	b = append(b, "\r\n$16\r\n"...)
	b = binary.BigEndian.AppendUint64(b, member.High)
	b = binary.BigEndian.AppendUint64(b, member.Low)
	b = append(b, "\r\n"...)
	c.w.Write(b) // a write error comes back from Flush
}

// get is SMEMBERS key, decoded and sorted.
func (c *respConn) get(key E) ([]E, error) {
	c.deadline()
	b := c.cmd[:0]
	b = append(b, "*2\r\n$8\r\nSMEMBERS\r\n$16\r\n"...)
	b = binary.BigEndian.AppendUint64(b, key.High)
	b = binary.BigEndian.AppendUint64(b, key.Low)
	b = append(b, "\r\n"...)
	if _, err := c.w.Write(b); err != nil {
		return nil, err
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	line, err := c.line()
	if err != nil {
		return nil, err
	}
	if len(line) == 0 || line[0] != '*' {
		return nil, respErr(line)
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("SMEMBERS: bad array header %q", line)
	}
	out := make([]E, n)
	var v [16 + 2]byte
	for i := range out {
		line, err := c.line()
		if err != nil {
			return nil, err
		}
		if string(line) != "$16" {
			return nil, fmt.Errorf("SMEMBERS: member header %q, want $16", line)
		}
		if _, err := io.ReadFull(c.r, v[:]); err != nil {
			return nil, err
		}
		if v[16] != '\r' || v[17] != '\n' {
			return nil, errors.New("SMEMBERS: member not followed by CRLF")
		}
		out[i] = E{High: binary.BigEndian.Uint64(v[:8]), Low: binary.BigEndian.Uint64(v[8:16])}
	}
	slices.SortFunc(out, cmpE)
	return out, nil
}

// readInt reads an integer reply.
func (c *respConn) readInt() (int64, error) {
	c.deadline()
	line, err := c.line()
	if err != nil {
		return 0, err
	}
	if len(line) == 0 || line[0] != ':' {
		return 0, respErr(line)
	}
	return strconv.ParseInt(string(line[1:]), 10, 64)
}

// line reads one reply line without its CRLF; it aliases the reader's
// buffer until the next read.
func (c *respConn) line() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("RESP line %q lacks CRLF", line)
	}
	return line[:len(line)-2], nil
}

// respErr turns an unexpected reply line into an error.
func respErr(line []byte) error {
	if len(line) > 0 && line[0] == '-' {
		return fmt.Errorf("redis: %s", line[1:])
	}
	return fmt.Errorf("redis: unexpected reply %q", line)
}
