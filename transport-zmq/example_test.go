package zmqserver_test

import (
	"log"
	"sync/atomic"

	cidstore "github.com/cidstore/cidstore/core"
	memstore "github.com/cidstore/cidstore/storage-mem"
	zmqserver "github.com/cidstore/cidstore/transport-zmq"
)

// The store needs Notify when it opens, and the server needs the store:
// close over an atomic pointer (Notify on a nil *Server is a no-op).
func Example() {
	var srv atomic.Pointer[zmqserver.Server]
	st, err := cidstore.Open(memstore.New(), cidstore.Options{
		Notify: func(m []cidstore.Mutation) { srv.Load().Notify(m) },
	})
	if err != nil {
		log.Fatal(err)
	}
	cfg := zmqserver.DefaultConfig()
	cfg.PubEndpoint = zmqserver.DefaultPubEndpoint
	s, err := zmqserver.New(st, cfg, nil, nil) // the app passes its Prometheus Observer and zap Logger
	if err != nil {
		log.Fatal(err)
	}
	srv.Store(s)
	if err := s.Start(); err != nil {
		log.Fatal(err)
	}
	// ... serve until SIGTERM, then, in this order:
	if err := s.Close(); err != nil { // stop accepting, drain, close sockets
		log.Print(err)
	}
	if err := st.Close(); err != nil { // final checkpoint
		log.Print(err)
	}
}
