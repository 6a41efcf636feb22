package ratelimit

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/time/rate"
)

// Reserve is the end of an invocation the limiter never waits into: the
// time to answer the batch and move its failed records back in the queue.
const Reserve = 3 * time.Second

// serviceEC2 is the SDK's service ID of EC2: only its calls are limited.
const serviceEC2 = "EC2"

// NoTimeError is a call the limiter did not send because its turn would
// come after the invocation's deadline less Reserve. It is the queue's job
// to wait, not Lambda's: the record goes back with a visibility timeout.
type NoTimeError struct {
	Action string
	Reason string
}

func (e *NoTimeError) Error() string {
	return fmt.Sprintf("rate limit: %s not sent: no turn before the invocation's deadline less %s: %s", e.Action, Reserve, e.Reason)
}

// RetryLater tells pkg/awserr that the same call may succeed later: the
// record waits in its queue (error_kind "throttled"), it is not permanent.
// It is a method, not an Unwrap to context.DeadlineExceeded, because the
// SDK's retryer takes a deadline error for a temporary one and would send
// the refused call again, at once and in vain.
func (e *NoTimeError) RetryLater() bool { return true }

// Set is one instance's limiters, one per EC2 action of its function's
// share, and the counters of what its calls cost: calls per operation
// (every attempt, every service), throttled answers, time waited.
type Set struct {
	limiters map[string]*rate.Limiter
	reserve  time.Duration

	mu        sync.Mutex
	calls     map[string]int
	throttled int
	waited    time.Duration
}

// New returns the limiters of function for maxConcurrency instances (see
// Shares). A function without shares is counted but never limited.
func New(function string, maxConcurrency int) (*Set, error) {
	limits, err := Limits(function, maxConcurrency)
	if err != nil {
		return nil, err
	}
	s := &Set{limiters: map[string]*rate.Limiter{}, reserve: Reserve, calls: map[string]int{}}
	for action, l := range limits {
		s.limiters[action] = rate.NewLimiter(l.Rate, l.Burst)
	}
	return s, nil
}

// FromEnv reads HOUSEKEEPER_MAX_CONCURRENCY and returns function's limiters
// and the concurrency they are sized for.
func FromEnv(function string, getenv func(string) string) (*Set, int, error) {
	n, err := ParseMaxConcurrency(getenv)
	if err != nil {
		return nil, 0, err
	}
	s, err := New(function, n)
	return s, n, err
}

// Attach returns a copy of cfg whose every client goes through the set.
func (s *Set) Attach(cfg aws.Config) aws.Config {
	cfg = cfg.Copy()
	cfg.APIOptions = append(cfg.APIOptions, s.Register)
	return cfg
}

// Register adds the middleware to an SDK stack. It sits after the retry
// middleware, so every attempt (retries too, each costs EC2 a token) waits
// for its turn and is counted.
func (s *Set) Register(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("ami-housekeeper/rate-limit",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			op := awsmiddleware.GetOperationName(ctx)
			if awsmiddleware.GetServiceID(ctx) == serviceEC2 {
				if err := s.wait(ctx, op); err != nil {
					return middleware.FinalizeOutput{}, middleware.Metadata{}, err
				}
			}
			out, md, err := next.HandleFinalize(ctx, in)
			throttled := err != nil && retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool()
			s.mu.Lock()
			s.calls[op]++
			if throttled {
				s.throttled++
			}
			s.mu.Unlock()
			return out, md, err
		}), middleware.After)
}

// wait takes op's token, waiting at most until the context's deadline less
// the reserve.
func (s *Set) wait(ctx context.Context, op string) error {
	lim, ok := s.limiters[op]
	if !ok {
		return nil
	}
	wctx := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, dl.Add(-s.reserve))
		defer cancel()
	}
	start := time.Now()
	// Wait refuses at once when the turn would come after the deadline.
	err := lim.Wait(wctx)
	s.mu.Lock()
	s.waited += time.Since(start)
	s.mu.Unlock()
	if err != nil {
		return &NoTimeError{Action: op, Reason: err.Error()}
	}
	return nil
}

// Usage is what the calls of an instance cost, so far or between two
// snapshots (Since).
type Usage struct {
	// Calls counts attempts per operation, every service.
	Calls map[string]int
	// Throttled counts throttling answers (RequestLimitExceeded and the
	// like) the SDK received, before its retries.
	Throttled int
	// Waited is the time calls waited for the limiter.
	Waited time.Duration
}

// Usage returns a snapshot of the counters. A nil set has none.
func (s *Set) Usage() Usage {
	if s == nil {
		return Usage{Calls: map[string]int{}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return Usage{Calls: maps.Clone(s.calls), Throttled: s.throttled, Waited: s.waited}
}

// Since returns u less an earlier snapshot: the cost of what ran between.
func (u Usage) Since(before Usage) Usage {
	d := Usage{Calls: map[string]int{}, Throttled: u.Throttled - before.Throttled, Waited: u.Waited - before.Waited}
	for op, n := range u.Calls {
		if n -= before.Calls[op]; n > 0 {
			d.Calls[op] = n
		}
	}
	return d
}

// Limit returns the limit of action in this set (zero when unlimited).
func (s *Set) Limit(action string) Limit {
	if lim, ok := s.limiters[action]; ok {
		return Limit{Rate: lim.Limit(), Burst: lim.Burst()}
	}
	return Limit{}
}
