package execute

import (
	"math"
	"sync"
	"time"
)

// limiter is a client-side token bucket: perSec tokens a second, at most
// burst saved up, starting full. It has the call shape of
// golang.org/x/time/rate.Limiter (ReserveN(now, n), then DelayFrom(now) on
// the reservation) so the caller drives it with its own clock, and simulated
// time works. golang.org/x/time is not required by go.mod, which this package
// may not change; swapping in rate.NewLimiter(rate.Limit(perSec), burst) is a
// two-line change once it is.
type limiter struct {
	mu      sync.Mutex
	perSec  float64
	burst   float64
	tokens  float64
	last    time.Time
	started bool
}

func newLimiter(perSec float64, burst int) *limiter {
	return &limiter{perSec: perSec, burst: float64(burst), tokens: float64(burst)}
}

// reservation is the time at which a reserved call may go.
type reservation struct{ at time.Time }

// ReserveN takes n tokens at now, going into debt when there are too few;
// the debt is the wait the reservation reports.
func (l *limiter) ReserveN(now time.Time, n int) reservation {
	l.mu.Lock()
	defer l.mu.Unlock()
	if math.IsInf(l.perSec, 1) {
		return reservation{at: now}
	}
	if !l.started {
		l.started, l.last = true, now
	}
	if now.After(l.last) {
		l.tokens = math.Min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.perSec)
		l.last = now
	}
	l.tokens -= float64(n)
	if l.tokens >= 0 {
		return reservation{at: now}
	}
	wait := time.Duration(math.Ceil(-l.tokens / l.perSec * float64(time.Second)))
	return reservation{at: now.Add(wait)}
}

// DelayFrom is how long after now the reserved call must wait.
func (r reservation) DelayFrom(now time.Time) time.Duration {
	if d := r.at.Sub(now); d > 0 {
		return d
	}
	return 0
}
