package zmqserver

import (
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/transport-zmq/internal/wire"
	zmq "github.com/pebbe/zmq4"
)

// Notification layout (PROTOCOL.md §1.4): two frames, the topic then a map.
//
//	frame 1  "insert" (OpInsert) or "delete" (OpDeleteKey, OpDeleteValue)
//	frame 2  {key: [high, low], value: [high, low], lsn: uint}
//	         value is absent for a whole-key delete (OpDeleteKey)
//
// One message per mutation, in the order Notify received them (LSN order),
// after the store reported them durable. PUB drops messages for a
// subscriber that is not keeping up (libzmq high-water mark); subscribers
// detect gaps by lsn. lsn is 0 when the store has no WAL.

var (
	topicInsert = []byte("insert")
	topicDelete = []byte("delete")
)

// appendNotification encodes the map frame of one mutation.
func appendNotification(b []byte, m *cidstore.Mutation) []byte {
	if m.Op == cidstore.OpDeleteKey {
		b = wire.AppendMapHeader(b, 2)
	} else {
		b = wire.AppendMapHeader(b, 3)
	}
	b = wire.AppendStr(b, "key")
	b = wire.AppendE(b, m.Key.High, m.Key.Low)
	if m.Op != cidstore.OpDeleteKey {
		b = wire.AppendStr(b, "value")
		b = wire.AppendE(b, m.Value.High, m.Value.Low)
	}
	b = wire.AppendStr(b, "lsn")
	return wire.AppendUint(b, m.LSN)
}

// runPub owns the PUB socket: it publishes the batches Notify queued. On
// Close it publishes what is already queued, then closes the socket.
func (s *Server) runPub() {
	defer s.owners.Done()
	sock := s.pub
	var buf []byte
	publish := func(muts []cidstore.Mutation) {
		s.notifyLen.Add(-int64(len(muts)))
		sent, dropped := 0, 0
		for i := range muts {
			m := &muts[i]
			topic := topicInsert
			if m.Op != cidstore.OpInsert {
				topic = topicDelete
			}
			buf = appendNotification(buf[:0], m)
			if _, err := sock.SendBytes(topic, zmq.SNDMORE|zmq.DONTWAIT); err != nil {
				dropped++
				continue
			}
			if _, err := sock.SendBytes(buf, zmq.DONTWAIT); err != nil {
				dropped++
				continue
			}
			sent++
		}
		if sent > 0 {
			s.obs.ObserveNotify(sent)
		}
		if dropped > 0 {
			s.obs.ObserveDropped("pub", dropped)
		}
	}
	for {
		select {
		case muts := <-s.notifyCh:
			publish(muts)
			continue
		case <-s.pubQuit:
		}
		for drained := false; !drained; {
			select {
			case muts := <-s.notifyCh:
				publish(muts)
			default:
				drained = true
			}
		}
		if d := min(time.Until(s.drainDeadline), 250*time.Millisecond); d > 0 {
			_ = sock.SetLinger(d) // let libzmq write out the last notifications
		}
		if err := sock.Close(); err != nil {
			s.log.Error("zmqserver: close pub", "err", err)
		}
		return
	}
}
