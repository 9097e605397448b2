module github.com/cidstore/cidstore/transport-zmq

go 1.26

require (
	github.com/cidstore/cidstore/core v0.0.0
	github.com/cidstore/cidstore/storage-mem v0.0.0
	github.com/pebbe/zmq4 v1.4.0
	github.com/shamaton/msgpack/v2 v2.4.0
)

replace (
	github.com/cidstore/cidstore/core => ../core
	github.com/cidstore/cidstore/storage-mem => ../storage-mem
)
