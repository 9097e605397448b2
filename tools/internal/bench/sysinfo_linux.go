package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
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

// DatasetRSSBytes returns the resident set size once a workload's data set
// is generated, and starts the peak (PeakRSSBytes) afresh from there: the
// generator's garbage (at 100M keys, 1.2 GB of temporary indices) is
// returned to the system first, so that it is neither counted in the data
// set nor freed later under the engine's figures, and the generator's own
// peak does not stand for the engine's (peak − data set is the engine's).
func DatasetRSSBytes() int64 {
	debug.FreeOSMemory()
	resetPeakRSS()
	return RSSBytes()
}

// resetPeakRSS resets VmHWM to the current RSS (proc(5): writing 5 to
// /proc/self/clear_refs, Linux 4.0+); without it the peak keeps counting
// from the process's start.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

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

// CPUSeconds returns the user and system CPU time the process has used
// (getrusage), or -1.
func CPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// IOBytes returns the bytes the process has read from and written to
// storage (read_bytes and write_bytes of /proc/self/io), or -1s when
// unreadable. read_bytes is what came from the block layer, not page-cache
// hits. write_bytes is charged when a write dirties a page-cache folio, for
// the whole folio: a small write into a large folio already cached (a
// zero-filled WAL, reused file space) counts up to 2 MiB, so it can exceed
// what reaches the disk many times over (session 14: 20× for 107 KB
// appends, each fdatasynced, to a prefilled file; 6× for a W1 ingest).
// WrittenChars and DeviceWrittenBytes are the figures to trust.
func IOBytes() (read, write int64) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1, -1
	}
	return ioField(data, "read_bytes:"), ioField(data, "write_bytes:")
}

// WrittenChars returns the bytes the process has passed to write system
// calls (wchar of /proc/self/io: what it asked to write, to any file), or
// -1 when unreadable.
func WrittenChars() int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	return ioField(data, "wchar:")
}

// DeviceWrittenBytes returns the bytes written so far to the block device
// that holds dir (sectors written, /proc/diskstats), by every process on
// the machine, or -1 when dir is not on a listed device (tmpfs, overlay).
func DeviceWrittenBytes(dir string) int64 {
	var st syscall.Stat_t
	if syscall.Stat(dir, &st) != nil {
		return -1
	}
	data, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return -1
	}
	return diskstatsWritten(data, unix.Major(st.Dev), unix.Minor(st.Dev))
}

// diskstatsWritten finds device major:minor in /proc/diskstats and
// returns its sectors written (the tenth field) in bytes, or -1.
func diskstatsWritten(data []byte, major, minor uint32) int64 {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[0] != strconv.FormatUint(uint64(major), 10) || f[1] != strconv.FormatUint(uint64(minor), 10) {
			continue
		}
		sectors, err := strconv.ParseInt(f[9], 10, 64)
		if err != nil {
			return -1
		}
		return sectors * 512 // diskstats sectors are 512 bytes whatever the device's
	}
	return -1
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
