module github.com/cidstore/cidstore/storage-hdf5

go 1.26

require (
	github.com/bits-and-blooms/bloom/v3 v3.7.1
	github.com/cidstore/cidstore/core v0.0.0
	gonum.org/v1/hdf5 v0.0.0-20210714002203-8c5d23bc6946
	pgregory.net/rapid v1.3.0
)

require github.com/bits-and-blooms/bitset v1.24.2 // indirect

replace github.com/cidstore/cidstore/core => ../core
