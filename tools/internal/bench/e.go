package bench

import cidstore "github.com/cidstore/cidstore/core"

// E is a 128-bit identifier, ordered by (High, Low): the store's own type,
// so that batches reach cidstore without a copy.
type E = cidstore.E

// Pair is one (key, value) association.
type Pair = cidstore.Pair

// less orders identifiers by (High, Low), the order of GET results.
func less(a, b E) bool { return a.High < b.High || (a.High == b.High && a.Low < b.Low) }

// cmpE is the three-way form of less, for slices.SortFunc.
func cmpE(a, b E) int {
	switch {
	case less(a, b):
		return -1
	case less(b, a):
		return 1
	}
	return 0
}
