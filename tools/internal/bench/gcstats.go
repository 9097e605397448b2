package bench

import "runtime/metrics"

// gcSamples are the runtime metrics GCWork reads.
var gcSamples = []metrics.Sample{
	{Name: "/gc/cycles/total:gc-cycles"},
	{Name: "/cpu/classes/gc/total:cpu-seconds"},
}

// GCWork returns the garbage collection cycles the process has completed
// and the CPU seconds the collector has spent (the runtime's estimate,
// runtime/metrics), or zeros where the runtime does not report them.
func GCWork() (cycles uint64, cpuSeconds float64) {
	s := make([]metrics.Sample, len(gcSamples))
	copy(s, gcSamples)
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		cycles = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindFloat64 {
		cpuSeconds = s[1].Value.Float64()
	}
	return cycles, cpuSeconds
}
