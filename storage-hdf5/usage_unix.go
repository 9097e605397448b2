//go:build linux || darwin || freebsd || netbsd || openbsd

package h5store

import (
	"os"
	"syscall"
)

// allocatedBytes is the space the file system allocated to a file.
func allocatedBytes(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
