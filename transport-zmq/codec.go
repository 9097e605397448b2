package zmqserver

import (
	"encoding/binary"
	"errors"
	"fmt"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/transport-zmq/internal/wire"
)

// Wire layout (PROTOCOL.md §1, versions 1 and 2 are identical).
//
// Request: one msgpack map in the last frame. Field order is free; unknown
// fields are ignored; a field given twice is a 400. A nil value counts as
// absent for the optional fields (request_id, rolling_version, value).
//
//	rolling_version  int            optional, default 1; 1 or 2 else 426
//	op_code          str            required, case-sensitive
//	request_id       str            optional, echoed
//	key, value       E              per op_code
//	entries          [ {key, value?}, ... ]   BATCH_INSERT / BATCH_DELETE
//
// E is [high, low] with each element any msgpack integer encoding of a value
// in 0..2^64-1, or a 16-byte bin (big-endian high then low). A negative
// element is 422 "E out of range"; a float, a str, an array of another length
// or a bin of another length is 400 (mistyped); [0, 0] is 422.
//
// Reply: one msgpack map, fields in this order:
//
//	rolling_version  uint   the request's version if accepted, else 1
//	request_id       str    when the request had one
//	then per op:     ok: true [, count: uint]  |  results: [E...]  |
//	                 the six METRICS fields    |  error_code: uint, error_msg: str
//
// Replies encode E as [high, low] with the smallest integer encodings.
//
// Errors are reported in this order, so a request with several problems
// gets a stable answer: malformed msgpack / not a map / duplicate field
// (400); mistyped request_id (400, not echoed); rolling_version (426, or 400
// when not an integer); op_code (400); the op's fields in the order key,
// value, entries (400 missing or mistyped, 413 too many entries, 422 zero or
// negative, first bad entry by index); then the server's state (503); then
// the store (422/503/500).

// field is one known top-level request field, as a bit for duplicate checks.
type field uint8

const (
	fieldVersion field = 1 << iota
	fieldOp
	fieldID
	fieldKey
	fieldValue
	fieldEntries
)

func fieldOf(name []byte) field {
	switch string(name) {
	case "rolling_version":
		return fieldVersion
	case "op_code":
		return fieldOp
	case "request_id":
		return fieldID
	case "key":
		return fieldKey
	case "value":
		return fieldValue
	case "entries":
		return fieldEntries
	}
	return 0
}

// decoder decodes requests. It owns scratch space reused across requests,
// so one decoder belongs to one goroutine. It never panics on any input
// (fuzzed); callers still guard it with recover, as defence in depth.
type decoder struct {
	r          wire.Reader
	maxEntries int
	slow       bool // tests: skip the fast paths, to compare both
	pairs      []cidstore.Pair
	dels       []cidstore.Deletion
}

func newDecoder(maxEntries int) *decoder { return &decoder{maxEntries: maxEntries} }

// malformed is the 400 for input that is not valid msgpack where a value was
// expected.
func malformed(err error, where string) *wireError {
	if errors.Is(err, wire.ErrTruncated) {
		return errorf(codeBadRequest, "malformed msgpack: truncated %s", where)
	}
	return errorf(codeBadRequest, "malformed msgpack in %s: %v", where, err)
}

// clip bounds client-controlled text echoed in error messages.
func clip(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// decode parses and validates p into req. On error req.version and req.id
// are still set when they could be decoded, so the error reply can echo them.
func (d *decoder) decode(p []byte, req *request) *wireError {
	*req = request{version: versionCurrent}
	r := &d.r
	r.Reset(p)
	if len(p) == 0 {
		return errorf(codeBadRequest, "empty frame: want a msgpack map")
	}
	n, err := r.MapHeader()
	if err != nil {
		var te *wire.TypeError
		if errors.As(err, &te) {
			return errorf(codeBadRequest, "request is not a msgpack map (got %s)", te.Got)
		}
		return malformed(err, "request map")
	}
	var (
		seen                                           field
		opName                                         []byte
		hasOp, hasKey, hasValue, hasEntries            bool
		idErr, verErr, opErr, keyErr, valErr, entryErr *wireError
		missing                                        = -1 // first entry without a value
	)
	for i := 0; i < n; i++ {
		name, err := r.StrBytes()
		if err != nil {
			var te *wire.TypeError
			if errors.As(err, &te) {
				return errorf(codeBadRequest, "request map key %d is a %s, want str", i, te.Got)
			}
			return malformed(err, "request map key")
		}
		f := fieldOf(name)
		if f == 0 {
			if err := r.Skip(); err != nil {
				return malformed(err, fmt.Sprintf("field %q", clip(name)))
			}
			continue
		}
		if seen&f != 0 {
			return errorf(codeBadRequest, "duplicate field %q", name)
		}
		seen |= f
		start := r.Offset()
		var ferr *wireError
		switch f {
		case fieldVersion:
			ferr = d.decodeVersion(req)
		case fieldOp:
			var err error
			if opName, err = r.StrBytes(); err != nil {
				ferr = errorf(codeBadRequest, "op_code must be a str")
			}
			hasOp = err == nil
		case fieldID:
			ferr = d.decodeID(req)
		case fieldKey:
			req.key, hasKey, ferr = d.decodeE("key", -1)
		case fieldValue:
			req.value, hasValue, ferr = d.decodeE("value", -1)
		case fieldEntries:
			if !r.IsNil() {
				hasEntries = true
				missing, ferr = d.decodeEntries()
			}
		}
		if ferr == nil {
			continue
		}
		// Keep going past a bad field so that a later request_id can still
		// be echoed and errors keep their documented precedence.
		r.Seek(start)
		if err := r.Skip(); err != nil {
			return malformed(err, string(name))
		}
		switch f {
		case fieldVersion:
			verErr = ferr
		case fieldOp:
			opErr = ferr
		case fieldID:
			idErr = ferr
		case fieldKey:
			keyErr = ferr
		case fieldValue:
			valErr = ferr
		case fieldEntries:
			entryErr = ferr
		}
	}
	if r.Remaining() != 0 {
		return errorf(codeBadRequest, "%d bytes after the request map", r.Remaining())
	}
	switch {
	case idErr != nil:
		return idErr
	case verErr != nil:
		return verErr
	case opErr != nil:
		return opErr
	case !hasOp:
		return errorf(codeBadRequest, "missing op_code")
	}
	o := parseOp(opName)
	switch o {
	case opUnknown:
		return errorf(codeBadRequest, "unknown op_code %q", clip(opName))
	case opDelete:
		o = opDeleteKey
		if hasValue || valErr != nil {
			o = opDeleteValue
		}
	}
	req.op = o
	switch o {
	case opInsert, opDeleteValue:
		if werr := requireE("key", req.key, hasKey, keyErr); werr != nil {
			return werr
		}
		return requireE("value", req.value, hasValue, valErr)
	case opDeleteKey, opGet:
		return requireE("key", req.key, hasKey, keyErr)
	case opBatchInsert, opBatchDelete:
		// An entry without a value comes before any entry error (decoding
		// stopped there), so for BATCH_INSERT it is the first problem.
		if o == opBatchInsert && missing >= 0 {
			return errorf(codeBadRequest, "entries[%d]: missing value", missing)
		}
		if entryErr != nil {
			return entryErr
		}
		if !hasEntries {
			return errorf(codeBadRequest, "missing entries")
		}
		if o == opBatchInsert {
			req.pairs = d.pairs
			return nil
		}
		dels := d.dels[:0]
		for _, p := range d.pairs {
			dels = append(dels, cidstore.Deletion(p))
		}
		d.dels, req.dels = dels, dels
	}
	return nil
}

// requireE checks a required E field: decode error, presence, then zero.
func requireE(name string, e cidstore.E, has bool, ferr *wireError) *wireError {
	switch {
	case ferr != nil:
		return ferr
	case !has:
		return errorf(codeBadRequest, "missing %s", name)
	case e.IsZero():
		return errorf(codeInvalid, "zero %s: [0, 0] is reserved", name)
	}
	return nil
}

func (d *decoder) decodeVersion(req *request) *wireError {
	r := &d.r
	if r.IsNil() {
		return nil
	}
	v, err := r.Int()
	switch {
	case errors.Is(err, wire.ErrRange):
		return errorf(codeVersion, "unsupported rolling_version (accepted: 1, 2)")
	case err != nil:
		return errorf(codeBadRequest, "rolling_version must be an integer")
	case v != versionCurrent && v != versionNext:
		return errorf(codeVersion, "unsupported rolling_version %d (accepted: 1, 2)", v)
	}
	req.version = int(v)
	return nil
}

func (d *decoder) decodeID(req *request) *wireError {
	r := &d.r
	if r.IsNil() {
		return nil
	}
	id, err := r.StrBytes()
	if err != nil {
		return errorf(codeBadRequest, "request_id must be a str")
	}
	req.id, req.hasID = id, true
	return nil
}

// decodeE decodes an E field; nil means absent. idx >= 0 names a batch
// entry in error messages. Zero is not checked here.
func (d *decoder) decodeE(name string, idx int) (cidstore.E, bool, *wireError) {
	r := &d.r
	b, off := peekE(r)
	if off > 0 && !d.slow { // fast path: [uint, uint] with canonical encodings
		r.Seek(r.Offset() + off)
		return b, true, nil
	}
	switch r.Kind() {
	case wire.KindNil:
		r.IsNil()
		return cidstore.E{}, false, nil
	case wire.KindBin:
		p, err := r.BinBytes()
		if err != nil {
			return cidstore.E{}, false, eError(name, idx, codeBadRequest, "truncated")
		}
		if len(p) != 16 {
			return cidstore.E{}, false, eError(name, idx, codeBadRequest, fmt.Sprintf("bin must be 16 bytes, got %d", len(p)))
		}
		e, _ := cidstore.EFromBytes16(p)
		return e, true, nil
	case wire.KindArray:
		n, err := r.ArrayHeader()
		if err != nil {
			return cidstore.E{}, false, eError(name, idx, codeBadRequest, "truncated")
		}
		if n != 2 {
			return cidstore.E{}, false, eError(name, idx, codeBadRequest, fmt.Sprintf("must be [high, low], got %d elements", n))
		}
		var w [2]uint64
		for i := range w {
			v, err := r.Uint()
			switch {
			case errors.Is(err, wire.ErrNegative):
				return cidstore.E{}, false, eError(name, idx, codeInvalid, "out of range: negative integer")
			case err != nil:
				return cidstore.E{}, false, eError(name, idx, codeBadRequest, "elements must be unsigned integers")
			}
			w[i] = v
		}
		return cidstore.E{High: w[0], Low: w[1]}, true, nil
	}
	return cidstore.E{}, false, eError(name, idx, codeBadRequest, fmt.Sprintf("must be [high, low] or a 16-byte bin, got %s", r.Kind()))
}

func eError(name string, idx, code int, msg string) *wireError {
	if idx >= 0 {
		return errorf(code, "entries[%d]: %s: %s", idx, name, msg)
	}
	return errorf(code, "%s: %s", name, msg)
}

// peekE recognises the common encodings of an E without a Reader call per
// byte: a 16-byte bin8, or a fixarray of two elements, each a positive
// fixint or a uint8..64. It returns the E and the bytes it spans, or 0 to
// take the general path.
func peekE(r *wire.Reader) (cidstore.E, int) {
	return parseE(r.Peek(19)) // 0x92 + 2 × (0xcf + 8 bytes)
}

func parseE(b []byte) (cidstore.E, int) {
	if len(b) >= 18 && b[0] == 0xc4 && b[1] == 16 { // bin8 of 16 bytes
		return cidstore.E{High: binary.BigEndian.Uint64(b[2:10]), Low: binary.BigEndian.Uint64(b[10:18])}, 18
	}
	if len(b) < 3 || b[0] != 0x92 {
		return cidstore.E{}, 0
	}
	hi, n1 := peekUint(b[1:])
	if n1 == 0 {
		return cidstore.E{}, 0
	}
	lo, n2 := peekUint(b[1+n1:])
	if n2 == 0 {
		return cidstore.E{}, 0
	}
	return cidstore.E{High: hi, Low: lo}, 1 + n1 + n2
}

// fastEntry parses the canonical batch entry {"key": E, "value": E} (in
// that order, E as in parseE, both non-zero) straight from the bytes: the
// shape every client library produces, decoded at a fraction of the cost.
// It returns 0 for anything else, which then takes the general path.
func fastEntry(b []byte) (cidstore.Pair, int) {
	const keyTag, valueTag = "\x82\xa3key", "\xa5value"
	if len(b) < len(keyTag) || string(b[:len(keyTag)]) != keyTag {
		return cidstore.Pair{}, 0
	}
	n := len(keyTag)
	k, m := parseE(b[n:])
	if m == 0 || k.IsZero() {
		return cidstore.Pair{}, 0
	}
	n += m
	if len(b) < n+len(valueTag) || string(b[n:n+len(valueTag)]) != valueTag {
		return cidstore.Pair{}, 0
	}
	n += len(valueTag)
	v, m := parseE(b[n:])
	if m == 0 || v.IsZero() {
		return cidstore.Pair{}, 0
	}
	return cidstore.Pair{Key: k, Value: v}, n + m
}

// peekUint decodes a positive fixint or uint8/16/32/64 at the start of b,
// returning its length, or 0 if b starts with anything else or is short.
func peekUint(b []byte) (uint64, int) {
	if len(b) == 0 {
		return 0, 0
	}
	switch c := b[0]; {
	case c <= 0x7f:
		return uint64(c), 1
	case c == 0xcf && len(b) >= 9:
		return binary.BigEndian.Uint64(b[1:9]), 9
	case c == 0xce && len(b) >= 5:
		return uint64(binary.BigEndian.Uint32(b[1:5])), 5
	case c == 0xcd && len(b) >= 3:
		return uint64(binary.BigEndian.Uint16(b[1:3])), 3
	case c == 0xcc && len(b) >= 2:
		return uint64(b[1]), 2
	}
	return 0, 0
}

// maxFastEntry is the largest entry fastEntry accepts: map header, "key",
// E, "value", E.
const maxFastEntry = 1 + 4 + 19 + 6 + 19

// decodeEntries decodes a batch's entries into d.pairs (a missing value is
// left zero). It returns the index of the first entry without a value, or
// -1, also on error (entries before the bad one were decoded). Errors name
// the first bad entry.
func (d *decoder) decodeEntries() (int, *wireError) {
	r := &d.r
	n, err := r.ArrayHeader()
	if err != nil {
		if errors.Is(err, wire.ErrTruncated) {
			return -1, malformed(err, "entries")
		}
		return -1, errorf(codeBadRequest, "entries must be an array of {key, value} maps")
	}
	if n > d.maxEntries {
		return -1, errorf(codeTooLarge, "batch of %d entries exceeds the limit of %d", n, d.maxEntries)
	}
	pairs := d.pairs[:0]
	if cap(pairs) < n {
		pairs = make([]cidstore.Pair, 0, n)
	}
	missing := -1
	for i := 0; i < n; i++ {
		if p, size := fastEntry(r.Peek(maxFastEntry)); size > 0 && !d.slow {
			r.Seek(r.Offset() + size)
			pairs = append(pairs, p)
			continue
		}
		m, err := r.MapHeader()
		if err != nil {
			return missing, errorf(codeBadRequest, "entries[%d]: not a {key, value} map", i)
		}
		var p cidstore.Pair
		var hasK, hasV, seenK, seenV bool
		for j := 0; j < m; j++ {
			name, err := r.StrBytes()
			if err != nil {
				return missing, errorf(codeBadRequest, "entries[%d]: map key %d is not a str", i, j)
			}
			var werr *wireError
			switch string(name) {
			case "key":
				if seenK {
					return missing, errorf(codeBadRequest, "entries[%d]: duplicate field \"key\"", i)
				}
				seenK = true
				p.Key, hasK, werr = d.decodeE("key", i)
			case "value":
				if seenV {
					return missing, errorf(codeBadRequest, "entries[%d]: duplicate field \"value\"", i)
				}
				seenV = true
				p.Value, hasV, werr = d.decodeE("value", i)
			default:
				if err := r.Skip(); err != nil {
					return missing, malformed(err, fmt.Sprintf("entries[%d]", i))
				}
			}
			if werr != nil {
				return missing, werr
			}
		}
		switch {
		case !hasK:
			return missing, errorf(codeBadRequest, "entries[%d]: missing key", i)
		case p.Key.IsZero():
			return missing, errorf(codeInvalid, "entries[%d]: zero key: [0, 0] is reserved", i)
		case hasV && p.Value.IsZero():
			return missing, errorf(codeInvalid, "entries[%d]: zero value: [0, 0] is reserved", i)
		case !hasV && missing < 0:
			missing = i
		}
		pairs = append(pairs, p)
	}
	d.pairs = pairs
	return missing, nil
}

// peekRequest is what an error reply to an undecoded frame echoes: its
// rolling_version, request_id and op (aliases resolved, for the metrics).
func peekRequest(p []byte) request {
	version, id, hasID, o := peekHeader(p)
	if o == opDelete {
		o = opDeleteKey
	}
	return request{version: version, op: o, id: id, hasID: hasID}
}

// peekHeader extracts rolling_version, request_id and op_code from a
// request without decoding the rest, for replies the server makes before
// (or instead of) a full decode, such as 503 "overloaded". Anything it
// cannot read is left at its default.
func peekHeader(p []byte) (version int, id []byte, hasID bool, o op) {
	version = versionCurrent
	var r wire.Reader
	r.Reset(p)
	n, err := r.MapHeader()
	if err != nil {
		return
	}
	for i := 0; i < n; i++ {
		name, err := r.StrBytes()
		if err != nil {
			return
		}
		switch fieldOf(name) {
		case fieldVersion:
			if v, err := r.Int(); err == nil && (v == versionCurrent || v == versionNext) {
				version = int(v)
				continue
			}
		case fieldID:
			if s, err := r.StrBytes(); err == nil {
				id, hasID = s, true
				continue
			}
		case fieldOp:
			if s, err := r.StrBytes(); err == nil {
				o = parseOp(s)
				continue
			}
		}
		if err := r.Skip(); err != nil {
			return
		}
	}
	return
}

// Reply encoders. Each appends a complete reply map to b.

func appendReplyHeader(b []byte, fields, version int, id []byte, hasID bool) []byte {
	n := fields + 1
	if hasID {
		n++
	}
	b = wire.AppendMapHeader(b, n)
	b = wire.AppendStr(b, "rolling_version")
	b = wire.AppendUint(b, uint64(version))
	if hasID {
		b = wire.AppendStr(b, "request_id")
		b = wire.AppendStrBytes(b, id)
	}
	return b
}

// appendOK encodes {ok: true} and, for batches, count.
func appendOK(b []byte, req *request) []byte {
	if req.op == opBatchInsert || req.op == opBatchDelete {
		b = appendReplyHeader(b, 2, req.version, req.id, req.hasID)
		b = wire.AppendStr(b, "ok")
		b = wire.AppendBool(b, true)
		b = wire.AppendStr(b, "count")
		return wire.AppendUint(b, uint64(req.entries()))
	}
	b = appendReplyHeader(b, 1, req.version, req.id, req.hasID)
	b = wire.AppendStr(b, "ok")
	return wire.AppendBool(b, true)
}

// appendResults encodes {results: [E...]}; an empty or nil slice is [].
func appendResults(b []byte, req *request, vals []cidstore.E) []byte {
	b = appendReplyHeader(b, 1, req.version, req.id, req.hasID)
	b = wire.AppendStr(b, "results")
	b = wire.AppendArrayHeader(b, len(vals))
	for _, v := range vals {
		b = wire.AppendE(b, v.High, v.Low)
	}
	return b
}

func appendMetrics(b []byte, req *request, m metricsReply) []byte {
	b = appendReplyHeader(b, 6, req.version, req.id, req.hasID)
	b = wire.AppendStr(b, "latency_p99")
	b = wire.AppendFloat(b, m.latencyP99Seconds)
	b = wire.AppendStr(b, "throughput_ops")
	b = wire.AppendFloat(b, m.throughputOps)
	b = wire.AppendStr(b, "buffer_occupancy")
	b = wire.AppendInt(b, m.bufferOccupancy)
	b = wire.AppendStr(b, "flush_duration")
	b = wire.AppendFloat(b, m.flushDurationSeconds)
	b = wire.AppendStr(b, "lock_contention_ratio")
	b = wire.AppendFloat(b, m.lockContentionRatio)
	b = wire.AppendStr(b, "error_rate")
	return wire.AppendFloat(b, m.errorRate)
}

func appendError(b []byte, version int, id []byte, hasID bool, e *wireError) []byte {
	b = appendReplyHeader(b, 2, version, id, hasID)
	b = wire.AppendStr(b, "error_code")
	b = wire.AppendUint(b, uint64(e.code))
	b = wire.AppendStr(b, "error_msg")
	return wire.AppendStr(b, e.msg)
}
