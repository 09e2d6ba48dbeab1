// Package latency holds what the benchmarks share to summarise latencies,
// so that "p99" means the same in every one of them.
package latency

import (
	"math"
	"time"
)

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values at
// or below it. It returns 0 for no values; p <= 0 gives the minimum.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The epsilon keeps float rounding (1000*99.9/100 = 999.0000000000001)
	// from pushing an exact rank up by one.
	rank := int(math.Ceil(float64(n)*p/100 - 1e-9))
	return sorted[min(max(rank, 1), n)-1]
}
