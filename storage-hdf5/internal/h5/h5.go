//go:build cgo

package h5

/*
#cgo linux,amd64 CFLAGS: -I/usr/include/hdf5/serial
#cgo linux,amd64 LDFLAGS: -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5
#cgo linux,arm64 CFLAGS: -I/usr/include/hdf5/serial
#cgo linux,arm64 LDFLAGS: -L/usr/lib/aarch64-linux-gnu/hdf5/serial -lhdf5
#cgo darwin CFLAGS: -I/usr/local/include -I/opt/homebrew/include
#cgo darwin LDFLAGS: -L/usr/local/lib -L/opt/homebrew/lib -lhdf5
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CID_ERRCAP 512

typedef struct { char *buf; size_t cap; int n; } cid_errbuf;

static herr_t cid_walk(unsigned n, const H5E_error2_t *e, void *data) {
	cid_errbuf *b = (cid_errbuf *)data;
	size_t len = strlen(b->buf);
	if (b->n >= 3 || len + 8 >= b->cap) return 0;
	snprintf(b->buf + len, b->cap - len, "%s%s(): %s", len ? "; " : "",
		e->func_name ? e->func_name : "?", e->desc ? e->desc : "");
	b->n++;
	return 0;
}

// cid_errstr describes the calling thread's error stack, innermost first.
static void cid_errstr(char *buf) {
	cid_errbuf b = {buf, CID_ERRCAP, 0};
	buf[0] = 0;
	H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, cid_walk, &b);
}

// cid_silence turns off automatic error printing; it is per thread.
static void cid_silence(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static hid_t cid_fapl(int clear_status, long long mdc_bytes, char *err) {
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fapl < 0) { cid_errstr(err); return -1; }
	if (H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) goto fail;
	// Single-writer exclusion is h5store's own lock file: HDF5's flock would
	// make a restarted writer wait for every SWMR reader.
	if (H5Pset_file_locking(fapl, 0, 1) < 0) goto fail;
	// Page-align every object of 4 KiB or more: segments and commit slots.
	if (H5Pset_alignment(fapl, 4096, 4096) < 0) goto fail;
	if (H5Pset_sieve_buf_size(fapl, 0) < 0) goto fail;
	if (mdc_bytes > 0) {
		H5AC_cache_config_t c;
		memset(&c, 0, sizeof c);
		c.version = H5AC__CURR_CACHE_CONFIG_VERSION;
		if (H5Pget_mdc_config(fapl, &c) < 0) goto fail;
		size_t max = (size_t)mdc_bytes;
		if (max < (1u << 20)) max = 1u << 20;
		if (max > (128u << 20)) max = 128u << 20;
		c.max_size = max;
		if (c.initial_size > max) c.initial_size = max;
		if (c.min_size > c.initial_size) c.min_size = c.initial_size;
		c.set_initial_size = 1;
		if (H5Pset_mdc_config(fapl, &c) < 0) goto fail;
	}
	if (clear_status) {
		// Undocumented file-access property h5clear uses.
		hbool_t t = 1;
		if (H5Pset(fapl, "clear_status_flags", &t) < 0) goto fail;
	}
	return fapl;
fail:
	cid_errstr(err);
	H5Pclose(fapl);
	return -1;
}

static hid_t cid_create(const char *path, long long mdc, char *err) {
	hid_t fapl = cid_fapl(0, mdc, err);
	if (fapl < 0) return -1;
	hid_t f = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
	if (f < 0) cid_errstr(err);
	H5Pclose(fapl);
	return f;
}

static hid_t cid_open(const char *path, unsigned flags, long long mdc, char *err) {
	hid_t fapl = cid_fapl(0, mdc, err);
	if (fapl < 0) return -1;
	hid_t f = H5Fopen(path, flags, fapl);
	if (f < 0) cid_errstr(err);
	H5Pclose(fapl);
	return f;
}

// cid_recover clears the status flags a dead writer left and raises the
// end-of-allocation to the end of file, so closing does not truncate rows
// written after the last superblock flush (h5clear -s --increment=0).
static herr_t cid_recover(const char *path, long long mdc, char *err) {
	hid_t fapl = cid_fapl(1, mdc, err);
	if (fapl < 0) return -1;
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, fapl);
	if (f < 0) { cid_errstr(err); H5Pclose(fapl); return -1; }
	H5Pclose(fapl);
	if (H5Fincrement_filesize(f, 0) < 0) { cid_errstr(err); H5Fclose(f); return -1; }
	if (H5Fclose(f) < 0) { cid_errstr(err); return -1; }
	return 0;
}

static herr_t cid_start_swmr(hid_t f, char *err) {
	herr_t rc = H5Fstart_swmr_write(f);
	if (rc < 0) cid_errstr(err);
	return rc;
}

static herr_t cid_flush(hid_t f, char *err) {
	herr_t rc = H5Fflush(f, H5F_SCOPE_LOCAL);
	if (rc < 0) cid_errstr(err);
	return rc;
}

static herr_t cid_close(hid_t f, char *err) {
	herr_t rc = H5Fclose(f);
	if (rc < 0) cid_errstr(err);
	return rc;
}

// cid_contiguous makes a dataset-creation list contiguous, allocated at
// creation and never filled: the space exists at a fixed file offset from
// the start and costs nothing until written (the file is sparse there).
static herr_t cid_contiguous(hid_t dcpl, char *err) {
	if (H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
	    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
	    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0) {
		cid_errstr(err);
		return -1;
	}
	return 0;
}

static long long cid_offset(hid_t d, char *err) {
	haddr_t a = H5Dget_offset(d);
	if (a == HADDR_UNDEF) { cid_errstr(err); return -1; }
	return (long long)a;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"gonum.org/v1/hdf5"
)

// hdf5Err is an HDF5 failure with the library's error stack.
type hdf5Err struct {
	op    string
	stack string
}

func (e *hdf5Err) Error() string {
	if e.stack == "" {
		return "hdf5: " + e.op
	}
	return "hdf5: " + e.op + ": " + e.stack
}

func stackErr(op string, buf *C.char) error {
	return &hdf5Err{op: op, stack: C.GoString(buf)}
}

// locked runs fn on one OS thread: the HDF5 error stack and its auto-print
// setting are per thread, so a call and its error report must not migrate.
func locked(fn func(errbuf *C.char) error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	C.cid_silence()
	buf := (*C.char)(C.malloc(C.CID_ERRCAP))
	defer C.free(unsafe.Pointer(buf))
	*buf = 0
	return fn(buf)
}

// File is an open HDF5 file.
type File struct {
	mu sync.Mutex
	f  *hdf5.File
	id C.hid_t
}

// wrapFile turns a raw file id into the gonum type, whose only field is the
// hid_t (hdf5.File{CommonFG{Identifier{id}}} at the pinned version); the ID
// check catches a layout change of the binding.
func wrapFile(id C.hid_t) (*File, error) {
	gf := new(hdf5.File)
	*(*C.hid_t)(unsafe.Pointer(gf)) = id
	if gf.ID() != int64(id) {
		C.H5Fclose(id)
		return nil, fmt.Errorf("hdf5: gonum File layout changed: cannot wrap id %d", int64(id))
	}
	return &File{f: gf, id: id}, nil
}

// Create creates a new file (failing if it exists) with libver bounds
// LATEST, so it can be written in SWMR mode.
func Create(path string, cfg Config) (*File, error) {
	var id C.hid_t
	err := locked(func(eb *C.char) error {
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		id = C.cid_create(cpath, C.longlong(cfg.MetaCacheBytes), eb)
		if id < 0 {
			return stackErr("create "+path, eb)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return wrapFile(id)
}

// Open opens an existing file.
func Open(path string, mode Mode, cfg Config) (*File, error) {
	flags := C.uint(C.H5F_ACC_RDWR)
	switch mode {
	case SWMRRead:
		flags = C.H5F_ACC_RDONLY | C.H5F_ACC_SWMR_READ
	case ReadOnly:
		flags = C.H5F_ACC_RDONLY
	}
	var id C.hid_t
	err := locked(func(eb *C.char) error {
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		id = C.cid_open(cpath, flags, C.longlong(cfg.MetaCacheBytes), eb)
		if id < 0 {
			return stackErr("open "+path, eb)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return wrapFile(id)
}

// Recover clears the status flags of a file whose writer died and sets its
// end-of-allocation to at least the end of file. Only call it while holding
// the writer lock: it would also clear a live writer's flags.
func Recover(path string, cfg Config) error {
	return locked(func(eb *C.char) error {
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		if C.cid_recover(cpath, C.longlong(cfg.MetaCacheBytes), eb) < 0 {
			return stackErr("recover "+path, eb)
		}
		return nil
	})
}

// StartSWMRWrite switches the file to SWMR writing. No group or attribute
// may be open.
func (f *File) StartSWMRWrite() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return locked(func(eb *C.char) error {
		if C.cid_start_swmr(f.id, eb) < 0 {
			return stackErr("start swmr write", eb)
		}
		return nil
	})
}

// Flush writes HDF5's dirty metadata to the file. It does not fsync.
func (f *File) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return locked(func(eb *C.char) error {
		if C.cid_flush(f.id, eb) < 0 {
			return stackErr("flush", eb)
		}
		return nil
	})
}

// Close closes the file. Every object this package opened is already closed.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return nil
	}
	f.f = nil
	return locked(func(eb *C.char) error {
		if C.cid_close(f.id, eb) < 0 {
			return stackErr("close", eb)
		}
		return nil
	})
}

// CreateGroup creates the group at an absolute path.
func (f *File) CreateGroup(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return locked(func(eb *C.char) error {
		g, err := f.f.CreateGroup(name)
		if err != nil {
			C.cid_errstr(eb)
			return stackErr("create group "+name, eb)
		}
		return g.Close()
	})
}

// Exists reports whether an absolute path names an object.
func (f *File) Exists(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	ok := false
	_ = locked(func(*C.char) error {
		ok = f.f.LinkExists(name)
		return nil
	})
	return ok
}

// HasAttr reports whether a group has an attribute of that name.
func (f *File) HasAttr(group, name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ok := false
	err := locked(func(eb *C.char) error {
		g, err := f.f.OpenGroup(group)
		if err != nil {
			C.cid_errstr(eb)
			return stackErr("open group "+group, eb)
		}
		defer g.Close()
		cname := C.CString(name)
		defer C.free(unsafe.Pointer(cname))
		switch r := C.H5Aexists(C.hid_t(g.ID()), cname); {
		case r < 0:
			C.cid_errstr(eb)
			return stackErr("attribute exists "+name, eb)
		default:
			ok = r > 0
		}
		return nil
	})
	return ok, err
}

// List returns the names of the members of a group.
func (f *File) List(group string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	err := locked(func(eb *C.char) error {
		g, err := f.f.OpenGroup(group)
		if err != nil {
			C.cid_errstr(eb)
			return stackErr("open group "+group, eb)
		}
		defer g.Close()
		n, err := g.NumObjects()
		if err != nil {
			C.cid_errstr(eb)
			return stackErr("list group "+group, eb)
		}
		for i := uint(0); i < n; i++ {
			name, err := g.ObjectNameByIndex(i)
			if err != nil {
				C.cid_errstr(eb)
				return stackErr("list group "+group, eb)
			}
			names = append(names, name)
		}
		return nil
	})
	return names, err
}

func scalarType(k Kind) (*hdf5.Datatype, error) {
	switch k {
	case U8:
		return hdf5.T_STD_U8LE, nil
	case U16:
		return hdf5.T_STD_U16LE, nil
	case U32:
		return hdf5.T_STD_U32LE, nil
	case U64:
		return hdf5.T_STD_U64LE, nil
	case I64:
		return hdf5.T_STD_I64LE, nil
	case F64:
		return hdf5.T_IEEE_F64LE, nil
	}
	return nil, fmt.Errorf("hdf5: field kind %d has no scalar type", k)
}

// buildType makes the compound type of r with NewCompoundType+Insert, so
// member names are exactly the field names.
func buildType(r *Record) (*hdf5.Datatype, error) {
	ct, err := hdf5.NewCompoundType(r.Size)
	if err != nil {
		return nil, fmt.Errorf("hdf5: create compound %s: %w", r.Name, err)
	}
	for _, fd := range r.Fields {
		var (
			ft    *hdf5.Datatype
			owned []*hdf5.Datatype
		)
		if fd.Kind == Compound {
			ft, err = buildType(fd.Sub)
			owned = append(owned, ft)
		} else {
			ft, err = scalarType(fd.Kind)
		}
		if err == nil && fd.Len > 0 {
			var at *hdf5.ArrayType
			at, err = hdf5.NewArrayType(ft, []int{fd.Len})
			if err == nil {
				ft = &at.Datatype
				owned = append(owned, ft)
			}
		}
		if err == nil {
			err = ct.Insert(fd.Name, fd.Offset, ft)
		}
		for _, o := range owned {
			o.Close()
		}
		if err != nil {
			ct.Close()
			return nil, fmt.Errorf("hdf5: compound %s member %s: %w", r.Name, fd.Name, err)
		}
	}
	return &ct.Datatype, nil
}

// CreateDataset creates a 1-D contiguous dataset of n records of type rec,
// allocated at once and never filled, and returns where it lives.
func (f *File) CreateDataset(name string, rec *Record, n uint64) (Dataset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ds := Dataset{Name: name, Records: n, RecSize: rec.Size}
	err := locked(func(eb *C.char) error {
		dt, err := buildType(rec)
		if err != nil {
			return err
		}
		defer dt.Close()
		space, err := hdf5.CreateSimpleDataspace([]uint{uint(n)}, nil)
		if err != nil {
			C.cid_errstr(eb)
			return stackErr("dataspace for "+name, eb)
		}
		defer space.Close()
		dcpl, err := hdf5.NewPropList(hdf5.P_DATASET_CREATE)
		if err != nil {
			C.cid_errstr(eb)
			return stackErr("dcpl for "+name, eb)
		}
		defer dcpl.Close()
		if C.cid_contiguous(C.hid_t(dcpl.ID()), eb) < 0 {
			return stackErr("dcpl for "+name, eb)
		}
		d, err := f.f.CreateDatasetWith(name, dt, space, dcpl)
		if err != nil {
			C.cid_errstr(eb)
			return stackErr("create dataset "+name, eb)
		}
		off := C.cid_offset(C.hid_t(d.ID()), eb)
		if off < 0 {
			d.Close()
			return stackErr("offset of "+name, eb)
		}
		ds.Offset = int64(off)
		return d.Close()
	})
	return ds, err
}

// OpenDataset reports where an existing 1-D dataset lives.
func (f *File) OpenDataset(name string) (Dataset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ds := Dataset{Name: name}
	err := locked(func(eb *C.char) error {
		d, err := f.f.OpenDataset(name)
		if err != nil {
			C.cid_errstr(eb)
			return stackErr("open dataset "+name, eb)
		}
		defer d.Close()
		off := C.cid_offset(C.hid_t(d.ID()), eb)
		if off < 0 {
			return stackErr("offset of "+name, eb)
		}
		ds.Offset = int64(off)
		space := d.Space()
		if space == nil {
			return fmt.Errorf("hdf5: dataspace of %s", name)
		}
		defer space.Close()
		dims, _, err := space.SimpleExtentDims()
		if err != nil || len(dims) != 1 {
			return fmt.Errorf("hdf5: %s is not a 1-D dataset", name)
		}
		ds.Records = uint64(dims[0])
		dt, err := d.Datatype()
		if err != nil {
			return fmt.Errorf("hdf5: datatype of %s: %w", name, err)
		}
		ds.RecSize = int(dt.Size())
		return dt.Close()
	})
	return ds, err
}

// attrType returns the file and memory types of an attribute value. The
// caller closes them when owned is true.
func attrType(v any) (file, mem *hdf5.Datatype, owned bool, err error) {
	switch v.(type) {
	case uint8:
		return hdf5.T_STD_U8LE, hdf5.T_NATIVE_UINT8, false, nil
	case uint32:
		return hdf5.T_STD_U32LE, hdf5.T_NATIVE_UINT32, false, nil
	case uint64:
		return hdf5.T_STD_U64LE, hdf5.T_NATIVE_UINT64, false, nil
	case float64:
		return hdf5.T_IEEE_F64LE, hdf5.T_NATIVE_DOUBLE, false, nil
	case string:
		st, err := hdf5.T_C_S1.Copy()
		if err != nil {
			return nil, nil, false, err
		}
		if err := st.SetSize(StringAttrSize); err != nil {
			st.Close()
			return nil, nil, false, err
		}
		return st, st, true, nil
	}
	return nil, nil, false, fmt.Errorf("hdf5: unsupported attribute type %T", v)
}

func attrWrite(a *hdf5.Attribute, mem *hdf5.Datatype, v any) error {
	switch x := v.(type) {
	case uint8:
		return a.Write(&x, mem)
	case uint32:
		return a.Write(&x, mem)
	case uint64:
		return a.Write(&x, mem)
	case float64:
		return a.Write(&x, mem)
	case string:
		var b [StringAttrSize]byte
		copy(b[:StringAttrSize-1], x)
		return a.Write(&b, mem)
	}
	return fmt.Errorf("hdf5: unsupported attribute type %T", v)
}

// SetAttrs writes scalar attributes on a group, creating the missing ones.
// Creating attributes is a metadata change: do it before StartSWMRWrite.
// Rewriting existing ones in SWMR mode is supported.
func (f *File) SetAttrs(group string, attrs []Attr) error {
	if len(attrs) == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return locked(func(eb *C.char) error {
		g, err := f.f.OpenGroup(group)
		if err != nil {
			C.cid_errstr(eb)
			return stackErr("open group "+group, eb)
		}
		defer g.Close()
		for _, at := range attrs {
			if err := setAttr(g, at, eb); err != nil {
				return err
			}
		}
		return nil
	})
}

func setAttr(g *hdf5.Group, at Attr, eb *C.char) error {
	ft, mt, owned, err := attrType(at.Value)
	if err != nil {
		return err
	}
	if owned {
		defer ft.Close()
	}
	var a *hdf5.Attribute
	cname := C.CString(at.Name)
	exists := C.H5Aexists(C.hid_t(g.ID()), cname) > 0
	C.free(unsafe.Pointer(cname))
	if exists {
		a, err = g.OpenAttribute(at.Name)
	} else {
		var space *hdf5.Dataspace
		space, err = hdf5.CreateDataspace(hdf5.S_SCALAR)
		if err == nil {
			a, err = g.CreateAttribute(at.Name, ft, space)
			space.Close()
		}
	}
	if err != nil {
		C.cid_errstr(eb)
		return stackErr("attribute "+at.Name, eb)
	}
	if err := attrWrite(a, mt, at.Value); err != nil {
		C.cid_errstr(eb)
		a.Close()
		return stackErr("write attribute "+at.Name, eb)
	}
	return a.Close()
}
