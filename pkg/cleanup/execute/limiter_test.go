package execute

import (
	"testing"
	"time"
)

func TestLimiterPacesAtRateAfterBurst(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		perSec float64
		burst  int
		want   []time.Duration // delay of each reservation, made at t0 without sleeping
	}{
		{5, 1, []time.Duration{0, 200 * time.Millisecond, 400 * time.Millisecond}},
		{10, 2, []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond}},
	} {
		l := newLimiter(c.perSec, c.burst)
		for i, want := range c.want {
			if got := l.ReserveN(t0, 1).DelayFrom(t0); got != want {
				t.Errorf("%v/s burst %d: reservation %d waits %v, want %v", c.perSec, c.burst, i, got, want)
			}
		}
	}
	// Tokens come back with time, up to the burst only.
	l := newLimiter(5, 1)
	l.ReserveN(t0, 1)
	if d := l.ReserveN(t0.Add(time.Hour), 1).DelayFrom(t0.Add(time.Hour)); d != 0 {
		t.Errorf("after an idle hour: %v", d)
	}
	if d := l.ReserveN(t0.Add(time.Hour), 1).DelayFrom(t0.Add(time.Hour)); d != 200*time.Millisecond {
		t.Errorf("burst exceeded: %v", d)
	}
}
