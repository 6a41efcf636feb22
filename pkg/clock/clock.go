// Package clock is the one injectable clock: the real one for Lambda, a
// simulated one (pkg/fake) for tests and benchmarks of paced work.
package clock

import (
	"context"
	"fmt"
	"time"
)

// Clock is injectable so tests and benchmarks run on simulated time.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or fails with the context's error when the context
	// ends first (and at once when it has already ended, even for d <= 0).
	Sleep(ctx context.Context, d time.Duration) error
}

// Real returns the wall clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Sleep does not start a wait that would outlast the context's deadline: it
// fails at once, so the time left goes to reporting instead of sleeping.
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return fmt.Errorf("waiting %v would pass the deadline: %w", d, context.DeadlineExceeded)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
