package client

import (
	"fmt"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/transport-zmq/internal/wire"
)

// Requests are msgpack maps (PROTOCOL.md §1.2) in this field order:
// rolling_version, op_code, request_id, then key, value or entries. E is
// always sent as [high, low] with the smallest integer encodings.

// appendHeader starts a request map with fields op-specific fields to come.
func appendHeader(b []byte, version int, op, id string, fields int) []byte {
	b = wire.AppendMapHeader(b, 3+fields)
	b = wire.AppendStr(b, "rolling_version")
	b = wire.AppendUint(b, uint64(version))
	b = wire.AppendStr(b, "op_code")
	b = wire.AppendStr(b, op)
	b = wire.AppendStr(b, "request_id")
	return wire.AppendStr(b, id)
}

func appendE(b []byte, name string, e cidstore.E) []byte {
	b = wire.AppendStr(b, name)
	return wire.AppendE(b, e.High, e.Low)
}

// appendEntries encodes entries: [{key, value?}...]; a zero value with
// omitZero set is left out (BATCH_DELETE: whole key).
func appendEntries(b []byte, pairs []cidstore.Pair, omitZero bool) []byte {
	b = wire.AppendStr(b, "entries")
	b = wire.AppendArrayHeader(b, len(pairs))
	for i := range pairs {
		p := &pairs[i]
		if omitZero && p.Value.IsZero() {
			b = wire.AppendMapHeader(b, 1)
			b = appendE(b, "key", p.Key)
			continue
		}
		b = wire.AppendMapHeader(b, 2)
		b = appendE(b, "key", p.Key)
		b = appendE(b, "value", p.Value)
	}
	return b
}

// reply is a decoded reply map; fields the reply lacks are zero.
type reply struct {
	id       []byte // aliases the frame
	hasID    bool
	err      *Error
	ok       bool
	count    int64
	hasCount bool
	results  []cidstore.E
	hasRes   bool
	metrics  Metrics
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// decodeReply parses a reply. It never panics on malformed input.
func decodeReply(b []byte) (*reply, error) {
	var r wire.Reader
	r.Reset(b)
	n, err := r.MapHeader()
	if err != nil {
		return nil, protoErr("reply is not a map: %v", err)
	}
	rep := &reply{}
	var code int64
	var msg string
	hasCode := false
	for i := 0; i < n; i++ {
		name, err := r.StrBytes()
		if err != nil {
			return nil, protoErr("reply key: %v", err)
		}
		switch string(name) {
		case "request_id":
			rep.id, err = r.StrBytes()
			rep.hasID = err == nil
		case "error_code":
			code, err = r.Int()
			hasCode = err == nil
		case "error_msg":
			var s []byte
			s, err = r.StrBytes()
			msg = string(s)
		case "ok":
			rep.ok, err = r.Bool()
		case "count":
			rep.count, err = r.Int()
			rep.hasCount = err == nil
		case "results":
			rep.results, err = decodeEs(&r)
			rep.hasRes = err == nil
		case "latency_p99":
			rep.metrics.LatencyP99Seconds, err = r.Float()
		case "throughput_ops":
			rep.metrics.ThroughputOps, err = r.Float()
		case "buffer_occupancy":
			rep.metrics.BufferOccupancy, err = r.Int()
		case "flush_duration":
			rep.metrics.FlushDurationSeconds, err = r.Float()
		case "lock_contention_ratio":
			rep.metrics.LockContentionRatio, err = r.Float()
		case "error_rate":
			rep.metrics.ErrorRate, err = r.Float()
		default: // rolling_version and anything newer
			err = r.Skip()
		}
		if err != nil {
			return nil, protoErr("field %q: %v", name, err)
		}
	}
	if hasCode {
		rep.err = &Error{Code: int(code), Msg: msg}
	}
	return rep, nil
}

// decodeEs decodes an array of E ([high, low] or 16-byte bin).
func decodeEs(r *wire.Reader) ([]cidstore.E, error) {
	n, err := r.ArrayHeader()
	if err != nil {
		return nil, err
	}
	out := make([]cidstore.E, n) // n <= remaining bytes: checked by ArrayHeader
	for i := range out {
		if r.Kind() == wire.KindBin {
			p, err := r.BinBytes()
			if err != nil {
				return nil, err
			}
			if out[i], err = cidstore.EFromBytes16(p); err != nil {
				return nil, err
			}
			continue
		}
		m, err := r.ArrayHeader()
		if err != nil {
			return nil, err
		}
		if m != 2 {
			return nil, fmt.Errorf("E has %d elements", m)
		}
		if out[i].High, err = r.Uint(); err != nil {
			return nil, err
		}
		if out[i].Low, err = r.Uint(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
