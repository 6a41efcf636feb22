package execute

import (
	"math"

	"golang.org/x/time/rate"
)

// newLimiter is a client-side token bucket per EC2 action bucket: perSec
// tokens a second, at most burst saved up, starting full. Callers reserve
// with their own clock (ReserveN(now, 1), then DelayFrom(now)), so simulated
// time works in tests and benchmarks.
func newLimiter(perSec float64, burst int) *rate.Limiter {
	if math.IsInf(perSec, 1) {
		return rate.NewLimiter(rate.Inf, burst)
	}
	return rate.NewLimiter(rate.Limit(perSec), burst)
}
