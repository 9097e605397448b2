module github.com/cidstore/cidstore/tests

go 1.26

require (
	github.com/cidstore/cidstore/core v0.0.0
	github.com/cidstore/cidstore/storage-hdf5 v0.0.0
	github.com/cidstore/cidstore/storage-mem v0.0.0
)

require pgregory.net/rapid v1.3.0

require (
	github.com/bits-and-blooms/bitset v1.24.2 // indirect
	github.com/bits-and-blooms/bloom/v3 v3.7.1 // indirect
	gonum.org/v1/hdf5 v0.0.0-20210714002203-8c5d23bc6946 // indirect
)

replace (
	github.com/cidstore/cidstore/core => ../core
	github.com/cidstore/cidstore/storage-hdf5 => ../storage-hdf5
	github.com/cidstore/cidstore/storage-mem => ../storage-mem
)
