package fake

import (
	"context"
	"sync"
	"time"
)

// Clock is a simulated clock: Sleep advances it at once, so code paced by
// rate limiters and backoffs runs minutes of simulated time in microseconds.
// It satisfies clock.Clock (Now, Sleep) structurally.
type Clock struct {
	mu  sync.Mutex
	now time.Time
	// slept is the total simulated time spent in Sleep.
	slept time.Duration
}

// NewClock returns a clock that starts at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the simulated time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep advances the clock by d without waiting. Like a real sleep it fails
// with the context's error when the context is already done.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

// Advance moves the clock forward by d (nothing happens for d <= 0).
func (c *Clock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept += d
}

// Slept returns the total simulated time spent sleeping.
func (c *Clock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

// Bucket is EC2's request token bucket for one API action: it holds up to
// capacity tokens, refills at refill tokens per second of the clock's time,
// and each call takes one token. It starts full, as an idle account's does.
type Bucket struct {
	mu       sync.Mutex
	clock    *Clock
	capacity float64
	refill   float64
	tokens   float64
	last     time.Time
	allowed  int
	limited  int
}

// NewBucket returns a full bucket on clock. EC2's numbers for DeregisterImage
// and DeleteSnapshot are NewBucket(clock, 100, 5).
func NewBucket(clock *Clock, capacity int, refillPerSec float64) *Bucket {
	if clock == nil || capacity < 1 || refillPerSec <= 0 {
		panic("fake.NewBucket: needs a clock, capacity >= 1 and a positive refill")
	}
	return &Bucket{clock: clock, capacity: float64(capacity), refill: refillPerSec,
		tokens: float64(capacity), last: clock.Now()}
}

// Take refills the bucket for the time passed since the last call and takes
// one token; false means the bucket is empty (EC2 answers RequestLimitExceeded).
func (b *Bucket) Take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	if now.After(b.last) {
		b.tokens += now.Sub(b.last).Seconds() * b.refill
		if b.tokens > b.capacity {
			b.tokens = b.capacity
		}
		b.last = now
	}
	if b.tokens < 1 {
		b.limited++
		return false
	}
	b.tokens--
	b.allowed++
	return true
}

// Allowed is the number of calls the bucket let through.
func (b *Bucket) Allowed() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.allowed
}

// Limited is the number of calls the bucket refused.
func (b *Bucket) Limited() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limited
}
