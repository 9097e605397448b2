package bench

// SplitMix64 is the splitmix64 generator of BENCH.md. The zero value is a
// stream seeded with 0.
type SplitMix64 struct{ s uint64 }

// NewSplitMix64 returns a stream seeded with seed.
func NewSplitMix64(seed uint64) *SplitMix64 { return &SplitMix64{s: seed} }

// Next returns the next 64-bit output.
func (r *SplitMix64) Next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// NonZero returns the next output, redrawn while zero.
func (r *SplitMix64) NonZero() uint64 {
	for {
		if v := r.Next(); v != 0 {
			return v
		}
	}
}

// E returns a random identifier (High then Low), each word redrawn while
// zero.
func (r *SplitMix64) E() E {
	hi := r.NonZero()
	return E{High: hi, Low: r.NonZero()}
}

// Mix is the first output of a splitmix64 stream seeded with j.
func Mix(j uint64) uint64 {
	r := SplitMix64{s: j}
	return r.Next()
}
