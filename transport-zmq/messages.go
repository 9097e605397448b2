package zmqserver

import cidstore "github.com/cidstore/cidstore/core"

// op is a decoded op_code; aliases are resolved to their canonical op.
type op uint8

const (
	opUnknown op = iota
	opInsert
	opDeleteKey
	opDeleteValue
	opBatchInsert
	opBatchDelete
	opGet
	opMetrics
	opDelete // alias, resolved by decode to opDeleteKey or opDeleteValue
)

// opNames are the canonical op_codes, used on the wire and as metric labels.
var opNames = [...]string{
	opUnknown:     "unknown",
	opInsert:      "INSERT",
	opDeleteKey:   "DELETE_KEY",
	opDeleteValue: "DELETE_VALUE_FROM_KEY",
	opBatchInsert: "BATCH_INSERT",
	opBatchDelete: "BATCH_DELETE",
	opGet:         "GET",
	opMetrics:     "METRICS",
	opDelete:      "DELETE",
}

func (o op) String() string { return opNames[o] }

// mutates reports whether o changes data (503 on a read-only server).
func (o op) mutates() bool {
	switch o {
	case opInsert, opDeleteKey, opDeleteValue, opBatchInsert, opBatchDelete:
		return true
	}
	return false
}

// parseOp maps an op_code (case-sensitive) to an op; LOOKUP is GET and
// DELETE is resolved later, once we know whether a value was given.
func parseOp(b []byte) op {
	switch string(b) { // no allocation: the compiler converts in place
	case "INSERT":
		return opInsert
	case "DELETE_KEY":
		return opDeleteKey
	case "DELETE_VALUE_FROM_KEY":
		return opDeleteValue
	case "BATCH_INSERT":
		return opBatchInsert
	case "BATCH_DELETE":
		return opBatchDelete
	case "GET", "LOOKUP":
		return opGet
	case "METRICS":
		return opMetrics
	case "DELETE":
		return opDelete
	}
	return opUnknown
}

// Protocol versions (rolling_version) this server accepts.
const (
	versionCurrent = 1
	versionNext    = 2
)

// request is one decoded, validated request. Slices alias the frame or the
// decoder's scratch space: they are valid until the decoder's next decode.
type request struct {
	version int // 1 or 2; 1 when absent
	op      op
	id      []byte // request_id; nil when absent
	hasID   bool
	key     cidstore.E
	value   cidstore.E
	pairs   []cidstore.Pair     // BATCH_INSERT entries
	dels    []cidstore.Deletion // BATCH_DELETE entries; zero Value = whole key
}

// entries is the number of entries of a batch request (the reply's count).
func (r *request) entries() int {
	switch r.op {
	case opBatchInsert:
		return len(r.pairs)
	case opBatchDelete:
		return len(r.dels)
	}
	return 0
}

// metricsReply is the body of a METRICS reply (PROTOCOL.md §1.2).
type metricsReply struct {
	latencyP99Seconds    float64
	throughputOps        float64
	bufferOccupancy      int64
	flushDurationSeconds float64
	lockContentionRatio  float64
	errorRate            float64
}
