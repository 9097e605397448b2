// Package h5 is the thin HDF5 layer under h5store: file create/open with the
// property lists the gonum binding cannot pass (libver bounds, SWMR, status-flag
// recovery, alignment, no file locking), contiguous early-allocated datasets and
// their file offsets, groups and scalar attributes. Every cgo call lives in
// files with the cgo build tag; without cgo every function returns ErrNoCgo.
//
// Only metadata goes through HDF5. Rows are read and written by h5store with
// pread/pwrite at the offsets this package reports.
package h5

import "errors"

// ErrNoCgo is returned by every function of a build without cgo.
var ErrNoCgo = errors.New("cidstore: h5store needs cgo and libhdf5 (build with CGO_ENABLED=1)")

// Kind is the storage type of one record field. All kinds are little-endian.
type Kind uint8

// Field kinds.
const (
	U8 Kind = iota + 1
	U16
	U32
	U64
	I64
	F64
	Compound // Field.Sub describes the members
)

// Size is the width of one element of kind k (not of Compound).
func (k Kind) Size() int {
	switch k {
	case U8:
		return 1
	case U16:
		return 2
	case U32:
		return 4
	case U64, I64, F64:
		return 8
	}
	return 0
}

// Field is one member of a compound record.
type Field struct {
	Name   string
	Offset int
	Kind   Kind
	Len    int     // array length; 0 for a scalar
	Sub    *Record // members when Kind is Compound
}

// Record is a fixed-size compound type. Size may exceed the sum of the
// members: the gaps are padding that HDF5 does not show.
type Record struct {
	Name   string // for error messages
	Size   int
	Fields []Field
}

// Attr is one scalar attribute. Value is a uint8, uint32, uint64, float64 or
// string (stored as a fixed 64-byte NUL-padded string).
type Attr struct {
	Name  string
	Value any
}

// StringAttrSize is the width of string attributes.
const StringAttrSize = 64

// Dataset describes a contiguous dataset of records.
type Dataset struct {
	Name    string
	Offset  int64  // file offset of record 0
	Records uint64 // number of records
	RecSize int    // bytes per record
}

// Config holds the file-access settings shared by every open.
type Config struct {
	// MetaCacheBytes caps the HDF5 metadata cache; 0 keeps the library default.
	MetaCacheBytes int64
}

// Mode selects how Open opens a file.
type Mode uint8

// Open modes.
const (
	ReadWrite Mode = iota // RDWR; call StartSWMRWrite afterwards
	SWMRRead              // RDONLY|SWMR_READ
	ReadOnly              // RDONLY, for files no writer has open in HDF5
)
