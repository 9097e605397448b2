module github.com/cidstore/cidstore/storage-mem

go 1.26

require github.com/cidstore/cidstore/core v0.0.0

replace github.com/cidstore/cidstore/core => ../core
