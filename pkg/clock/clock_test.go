package clock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
)

func TestRealClockDoesNotSleepPastTheDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := clock.Real().Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
	if err := clock.Real().Sleep(ctx, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := clock.Real().Sleep(ctx, 0); err == nil {
		t.Fatal("a cancelled context should fail even a zero sleep")
	}
}
