package bench

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// PeakRSSBytes returns the process's peak resident set size: VmHWM from
// /proc/self/status, or getrusage's ru_maxrss when that is unreadable.
func PeakRSSBytes() int64 {
	if v := procStatusBytes("VmHWM:"); v > 0 {
		return v
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		return ru.Maxrss * 1024 // kilobytes on Linux
	}
	return 0
}

// RSSBytes returns the process's current resident set size (VmRSS).
func RSSBytes() int64 { return procStatusBytes("VmRSS:") }

// procStatusBytes reads a "Name:   123 kB" line of /proc/self/status.
func procStatusBytes(name string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return kBField(data, name)
}

func kBField(data []byte, name string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0
			}
			return v * 1024
		}
	}
	return 0
}

// MinorFaults returns the page faults the process has taken that needed
// no I/O (getrusage's ru_minflt), or -1. On a virtual machine that backs
// guest memory lazily, each can cost microseconds.
func MinorFaults() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return ru.Minflt
}

// IOBytes returns the bytes the process has read from and written to
// storage (read_bytes and write_bytes of /proc/self/io: what reached the
// block layer, not page-cache hits), or -1s when unreadable.
func IOBytes() (read, write int64) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1, -1
	}
	return ioField(data, "read_bytes:"), ioField(data, "write_bytes:")
}

func ioField(data []byte, name string) int64 {
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			if v, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64); err == nil {
				return v
			}
		}
	}
	return -1
}

// MemTotalBytes returns the machine's memory (MemTotal of /proc/meminfo).
func MemTotalBytes() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return kBField(data, "MemTotal:")
}

// LoadAvg1 returns the one-minute load average, -1 when unknown. The
// machines are shared; the load puts a figure in context.
func LoadAvg1() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
