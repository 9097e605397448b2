//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package h5store

import (
	"fmt"
	"os"
)

// lockFile is unsupported here: without flock a dead writer cannot be told
// from a live one.
func lockFile(path string) (*os.File, error) {
	return nil, fmt.Errorf("lock %s: h5store needs flock", path)
}
