package fake

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
)

// CrashMode says what happens at a Crash's crash point.
type CrashMode int

const (
	// CrashKill lets the first After mutating calls through; the process
	// then dies: call After+1 and every later one never reach EC2.
	CrashKill CrashMode = iota
	// CrashLanded lets call After reach EC2 (it takes effect) but loses its
	// answer, then the process dies: the write happened, the process never
	// learned it. Upstream this equals CrashKill at After; it differs in
	// what the dying process saw, so a compensating call it starts must not
	// land either.
	CrashLanded
	// CrashLoseAnswer lets call After reach EC2 and loses its answer, and
	// the process goes on: every later call passes. This is a dropped
	// connection, not a crash; the caller's retry must be idempotent.
	CrashLoseAnswer
)

func (m CrashMode) String() string {
	switch m {
	case CrashKill:
		return "kill"
	case CrashLanded:
		return "landed-then-kill"
	default:
		return "lose-answer"
	}
}

// Crash wraps the cleanup's EC2 client (awsapi.CleanupEC2) and simulates
// the process dying part-way through a run: it counts mutating calls, in
// the order they start, and at the crash point (see CrashMode) fails the
// calls and calls Kill once, which should cancel the run's context the way
// the Lambda runtime ending the process cuts everything short. A negative
// After never crashes (a counting pass-through for the reference run).
//
// A killed call returns a connection-reset error, which pkg/awserr
// classifies as retryable: the caller cannot tell whether it landed.
type Crash struct {
	EC2   awsapi.CleanupEC2
	After int
	Mode  CrashMode
	Kill  func()
	// KillAfter, when set and After is negative, picks the crash point by
	// the call instead of its number: the first call it matches becomes
	// call After. It lets a test hit a step that the order in which
	// concurrent lanes start their calls makes land at different numbers.
	KillAfter func(op, target string) bool

	mu     sync.Mutex
	n      int
	killed bool
	calls  []CrashCall
}

var _ awsapi.CleanupEC2 = (*Crash)(nil)

// CrashCall is one mutating call as the Crash saw it.
type CrashCall struct {
	// Seq is the call's number, from 1, in the order the calls started.
	Seq int
	// Op is the operation; Target the resources and, for tag calls, the
	// tag keys ("snap-1 ami-housekeeper:delete-with=ami-2").
	Op, Target string
	// Landed is true when the call reached EC2 (whatever it answered).
	Landed bool
	// Outcome is "ok", the error EC2 answered, "answer lost" or "killed".
	Outcome string
}

func (c CrashCall) String() string {
	return fmt.Sprintf("#%d %s %s: %s", c.Seq, c.Op, c.Target, c.Outcome)
}

// Calls returns every mutating call so far, in start order.
func (c *Crash) Calls() []CrashCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CrashCall(nil), c.calls...)
}

// Count returns the number of mutating calls started so far.
func (c *Crash) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Killed reports whether the crash point was reached in a killing mode.
func (c *Crash) Killed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killed
}

// errLostConnection is what a caller sees from a killed call or a lost
// answer: the connection broke after the request may have been sent.
var errLostConnection = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}

// what a call does at the crash point.
type verdict int

const (
	pass verdict = iota
	passLoseAnswer
	passThenKill
	kill
)

func (c *Crash) enter(op, target string) (int, verdict) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	k := c.n
	c.calls = append(c.calls, CrashCall{Seq: k, Op: op, Target: target})
	if c.After < 0 && c.KillAfter != nil && !c.killed && c.KillAfter(op, target) {
		c.After = k
	}
	switch {
	case c.killed:
		return k, kill
	case c.After < 0 || k < c.After:
		return k, pass
	case k == c.After && c.Mode == CrashLoseAnswer:
		return k, passLoseAnswer
	case k == c.After && c.Mode == CrashLanded:
		return k, passThenKill
	case k == c.After:
		return k, pass
	case c.Mode == CrashLoseAnswer:
		return k, pass
	}
	c.killed = true
	return k, kill
}

func (c *Crash) leave(k int, landed bool, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[k-1].Landed, c.calls[k-1].Outcome = landed, outcome
}

func (c *Crash) doKill() {
	c.mu.Lock()
	kill := c.Kill
	c.Kill, c.killed = nil, true
	c.mu.Unlock()
	if kill != nil {
		kill()
	}
}

// do runs one mutating call under the crash rules.
func do[T any](c *Crash, op, target string, call func() (*T, error)) (*T, error) {
	k, v := c.enter(op, target)
	if v == kill {
		c.doKill()
		c.leave(k, false, "killed")
		return nil, fmt.Errorf("crash: %s not sent, the process was killed: %w", op, errLostConnection)
	}
	out, err := call()
	outcome := "ok"
	if err != nil {
		outcome = err.Error()
	}
	switch v {
	case passLoseAnswer:
		c.leave(k, true, "answer lost (EC2 said: "+outcome+")")
		return nil, fmt.Errorf("crash: %s sent, its answer lost: %w", op, errLostConnection)
	case passThenKill:
		c.leave(k, true, "answer lost, then killed (EC2 said: "+outcome+")")
		c.doKill()
		return nil, fmt.Errorf("crash: %s sent, the process was killed before the answer: %w", op, errLostConnection)
	}
	c.leave(k, true, outcome)
	return out, err
}

func tagTarget(resources []string, tags []string) string {
	return strings.Join(resources, ",") + " " + strings.Join(tags, ",")
}

// CreateTags is counted.
func (c *Crash) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	var tags []string
	for _, t := range in.Tags {
		tags = append(tags, aws.ToString(t.Key)+"="+aws.ToString(t.Value))
	}
	return do(c, "CreateTags", tagTarget(in.Resources, tags), func() (*ec2.CreateTagsOutput, error) { return c.EC2.CreateTags(ctx, in, optFns...) })
}

// DeleteTags is counted.
func (c *Crash) DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, optFns ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error) {
	var tags []string
	for _, t := range in.Tags {
		tags = append(tags, aws.ToString(t.Key))
	}
	return do(c, "DeleteTags", tagTarget(in.Resources, tags), func() (*ec2.DeleteTagsOutput, error) { return c.EC2.DeleteTags(ctx, in, optFns...) })
}

// EnableImageDeprecation is counted.
func (c *Crash) EnableImageDeprecation(ctx context.Context, in *ec2.EnableImageDeprecationInput, optFns ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error) {
	return do(c, "EnableImageDeprecation", aws.ToString(in.ImageId), func() (*ec2.EnableImageDeprecationOutput, error) {
		return c.EC2.EnableImageDeprecation(ctx, in, optFns...)
	})
}

// DisableImageDeprecation is counted.
func (c *Crash) DisableImageDeprecation(ctx context.Context, in *ec2.DisableImageDeprecationInput, optFns ...func(*ec2.Options)) (*ec2.DisableImageDeprecationOutput, error) {
	return do(c, "DisableImageDeprecation", aws.ToString(in.ImageId), func() (*ec2.DisableImageDeprecationOutput, error) {
		return c.EC2.DisableImageDeprecation(ctx, in, optFns...)
	})
}

// DisableImage is counted.
func (c *Crash) DisableImage(ctx context.Context, in *ec2.DisableImageInput, optFns ...func(*ec2.Options)) (*ec2.DisableImageOutput, error) {
	return do(c, "DisableImage", aws.ToString(in.ImageId), func() (*ec2.DisableImageOutput, error) { return c.EC2.DisableImage(ctx, in, optFns...) })
}

// EnableImage is counted.
func (c *Crash) EnableImage(ctx context.Context, in *ec2.EnableImageInput, optFns ...func(*ec2.Options)) (*ec2.EnableImageOutput, error) {
	return do(c, "EnableImage", aws.ToString(in.ImageId), func() (*ec2.EnableImageOutput, error) { return c.EC2.EnableImage(ctx, in, optFns...) })
}

// DeregisterImage is counted.
func (c *Crash) DeregisterImage(ctx context.Context, in *ec2.DeregisterImageInput, optFns ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	return do(c, "DeregisterImage", aws.ToString(in.ImageId), func() (*ec2.DeregisterImageOutput, error) { return c.EC2.DeregisterImage(ctx, in, optFns...) })
}

// DeleteSnapshot is counted.
func (c *Crash) DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	return do(c, "DeleteSnapshot", aws.ToString(in.SnapshotId), func() (*ec2.DeleteSnapshotOutput, error) { return c.EC2.DeleteSnapshot(ctx, in, optFns...) })
}
