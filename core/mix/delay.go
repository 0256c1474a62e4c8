package mix

import (
	"math"
	"math/rand/v2"
	"time"
)

// ExpDelay draws a mixing delay from the exponential distribution with mean
// 1/mu seconds (rate mu per second), as a Loopix sender does for each hop.
// A mu ≤ 0 or NaN means no mixing delay and gives 0. The result is capped
// at maxDelay when maxDelay > 0, so that a draw deep in the tail cannot
// outlive a packet's epoch key.
func ExpDelay(r *rand.Rand, mu float64, maxDelay time.Duration) time.Duration {
	if !(mu > 0) || math.IsInf(mu, 1) {
		return 0
	}
	sec := r.ExpFloat64() / mu
	d := time.Duration(sec * float64(time.Second))
	if sec*float64(time.Second) > float64(math.MaxInt64) {
		d = math.MaxInt64
	}
	if maxDelay > 0 && d > maxDelay {
		d = maxDelay
	}
	return d
}
