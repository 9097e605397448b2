//go:build !cgo

package h5

// File is an open HDF5 file; without cgo none can be opened.
type File struct{}

// Create returns ErrNoCgo.
func Create(string, Config) (*File, error) { return nil, ErrNoCgo }

// Open returns ErrNoCgo.
func Open(string, Mode, Config) (*File, error) { return nil, ErrNoCgo }

// Recover returns ErrNoCgo.
func Recover(string, Config) error { return ErrNoCgo }

// StartSWMRWrite returns ErrNoCgo.
func (*File) StartSWMRWrite() error { return ErrNoCgo }

// Flush returns ErrNoCgo.
func (*File) Flush() error { return ErrNoCgo }

// Close returns nil.
func (*File) Close() error { return nil }

// CreateGroup returns ErrNoCgo.
func (*File) CreateGroup(string) error { return ErrNoCgo }

// Exists returns false.
func (*File) Exists(string) bool { return false }

// HasAttr returns ErrNoCgo.
func (*File) HasAttr(string, string) (bool, error) { return false, ErrNoCgo }

// List returns ErrNoCgo.
func (*File) List(string) ([]string, error) { return nil, ErrNoCgo }

// CreateDataset returns ErrNoCgo.
func (*File) CreateDataset(string, *Record, uint64) (Dataset, error) { return Dataset{}, ErrNoCgo }

// OpenDataset returns ErrNoCgo.
func (*File) OpenDataset(string) (Dataset, error) { return Dataset{}, ErrNoCgo }

// SetAttrs returns ErrNoCgo.
func (*File) SetAttrs(string, []Attr) error { return ErrNoCgo }
