package h5store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// backupDir is the directory the backup of the store at path, of format
// version format, goes to before this build writes its own version to it.
func backupDir(path string, format uint32) string {
	return fmt.Sprintf("%s.format%d-backup", path, format)
}

// backupStore copies the store at path (its .h5 file and its segment
// files, not the lock) into backupDir(path, format), unless that directory
// exists, and returns the directory and whether it made the copy. The copy
// is built in a .tmp directory (replaced if a crash left one), every file
// and the directory fsynced, then renamed into place and the parent
// directory fsynced: the backup exists complete or not at all. The caller
// holds the writer lock and has the store file closed in HDF5, so nothing
// changes the files meanwhile. Runs of zero bytes are left as holes, so a
// store's sparse datasets stay sparse in the copy.
func backupStore(path string, format uint32) (dir string, made bool, err error) {
	dir = backupDir(path, format)
	if _, err := os.Stat(dir); err == nil {
		return dir, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return dir, false, err
	}
	segs, err := segmentFiles(path)
	if err != nil {
		return dir, false, err
	}
	files := []string{path}
	for _, f := range segs {
		if filepath.Ext(f) == ".h5" { // not a half-made .h5.tmp
			files = append(files, f)
		}
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return dir, false, err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return dir, false, err
	}
	buf := make([]byte, 1<<20)
	for _, f := range files {
		if err := copySparse(f, filepath.Join(tmp, filepath.Base(f)), buf); err != nil {
			return dir, false, errors.Join(fmt.Errorf("back up %s: %w", f, err), os.RemoveAll(tmp))
		}
	}
	if err := syncDir(tmp); err != nil {
		return dir, false, errors.Join(err, os.RemoveAll(tmp))
	}
	if err := os.Rename(tmp, dir); err != nil {
		return dir, false, errors.Join(err, os.RemoveAll(tmp))
	}
	return dir, true, syncDir(filepath.Dir(dir))
}

// copySparse copies src to a new file dst, skipping blocks of zeros (the
// file keeps its size), and fsyncs it.
func copySparse(src, dst string, buf []byte) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	err = func() error {
		var off int64
		for {
			n, err := in.ReadAt(buf, off)
			if n > 0 && !allZero(buf[:n]) {
				if _, werr := out.WriteAt(buf[:n], off); werr != nil {
					return werr
				}
			}
			off += int64(n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
		}
		if err := out.Truncate(off); err != nil {
			return err
		}
		return out.Sync()
	}()
	return errors.Join(err, out.Close())
}

var zeroBlock = make([]byte, 64<<10)

func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:n], zeroBlock[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
