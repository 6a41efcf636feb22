package audit_test

// The kill switch halting an audit mid-pass. Fakes (see audit_test.go):
// listEC2 lists the AMIs, stubChecker stands in for the per-AMI engine
// (each check "revokes" one finding), memSSM holds the cursor and, in the
// last test, the kill switch parameter, on the simulated clock.

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/killswitch"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

const haltReason = "kill switch /test/kill-switch: incident 42"

// revokingSetup is an enforcing audit of n AMIs, each of whose checks
// revokes one principal.
func revokingSetup(n int) *setup {
	s := newSetup(n, 1000)
	s.a.Policy = policy.Sharing{Mode: policy.ModeEnforce}
	for _, id := range s.ids {
		s.stub.findings[id] = []sharing.Finding{{Account: account, Region: region, ResourceType: sharing.KindImage, ResourceID: id,
			Action: sharing.ActionRevoked}}
	}
	return s
}

// The switch is engaged right after the 20th AMI's check: no check starts
// after it (one worker: exactly the first 20 were checked), the cursor is
// saved, the report says halted and why and is not complete nor an error;
// the next run, the switch off, resumes after the 20th and checks each
// remaining AMI once.
func TestAuditHaltedMidPassRevokesNothingAfter(t *testing.T) {
	for _, tt := range []struct {
		name        string
		concurrency int
	}{
		{name: "one worker", concurrency: 1},
		{name: "eight workers", concurrency: 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := revokingSetup(60)
			s.a.Concurrency = tt.concurrency
			var engaged, fired atomic.Bool
			var late atomic.Int64 // checks started with the switch engaged
			s.stub.block = func(_ context.Context, id string) error {
				if engaged.Load() {
					late.Add(1)
				}
				if id == s.ids[19] && fired.CompareAndSwap(false, true) {
					engaged.Store(true)
				}
				return nil
			}
			var asked atomic.Int64
			s.a.Halt = func(context.Context) (string, bool) {
				asked.Add(1)
				if engaged.Load() {
					return haltReason, true
				}
				return "", false
			}
			first := s.run(s.ctxUntil(t, time.Hour))
			if first.Halted != haltReason || first.Complete || first.Err() != nil {
				t.Fatalf("halted run: halted %q complete %v err %v", first.Halted, first.Complete, first.Err())
			}
			// A worker may have passed its Halt before the switch was
			// engaged: at most the others in flight.
			if n := late.Load(); n > int64(tt.concurrency-1) {
				t.Errorf("%d checks started after the switch was engaged, want at most %d", n, tt.concurrency-1)
			}
			if first.Revoked != s.stub.total() {
				t.Errorf("revoked %d, checks %d", first.Revoked, s.stub.total())
			}
			// The cursor covers exactly the checked prefix: what the halt
			// skipped is checked next time.
			if got := s.ssm.get(); got != first.ResumeFrom {
				t.Errorf("cursor %q, report %q", got, first.ResumeFrom)
			}
			for i, id := range s.ids {
				if id > first.ResumeFrom {
					if s.stub.count(id) != 0 && (i == 0 || s.ids[i-1] == first.ResumeFrom) {
						t.Errorf("the cursor %s stops before %s, which was checked", first.ResumeFrom, id)
					}
					break
				}
				if s.stub.count(id) != 1 {
					t.Errorf("%s is behind the cursor %s but was checked %d times", id, first.ResumeFrom, s.stub.count(id))
				}
			}
			if tt.concurrency == 1 {
				// Asked once before starting, then before each check.
				if !slices.Equal(s.stub.order, s.ids[:20]) || first.ResumeFrom != s.ids[19] || asked.Load() != 22 {
					t.Errorf("checked %v (Halt asked %d times), cursor %s; want the first 20, Halt asked 1+21 times",
						s.stub.order, asked.Load(), first.ResumeFrom)
				}
			}

			before := map[string]int{}
			for _, id := range s.ids {
				before[id] = s.stub.count(id)
			}
			engaged.Store(false)
			second := s.run(s.ctxUntil(t, time.Hour))
			if !second.Complete || second.Halted != "" || second.ResumedFrom != first.ResumeFrom {
				t.Fatalf("second run: complete %v halted %q resumed from %q", second.Complete, second.Halted, second.ResumedFrom)
			}
			// It resumes after the cursor: each AMI past it once more
			// (those finished out of order too: at least once), none
			// before it.
			for _, id := range s.ids {
				if got, want := s.stub.count(id)-before[id], b2i(id > first.ResumeFrom); got != want {
					t.Errorf("%s checked %d times by the second run, want %d", id, got, want)
				}
			}
		})
	}
}

// Halted before it starts (the switch engaged between the invocation's
// mode read and the audit): no guardrail change, no listing, no check, the
// cursor untouched.
func TestAuditHaltedBeforeItStarts(t *testing.T) {
	s := revokingSetup(5)
	s.a.Policy.EnableImageBlockPublicAccess = true
	s.gr.SetImageBlockPublicAccess(audit.StateUnblocked)
	s.ssm.values[cursorName] = s.ids[2]
	s.a.Halt = func(context.Context) (string, bool) { return haltReason, true }
	r := s.run(s.ctxUntil(t, time.Hour))
	if r.Halted != haltReason || r.Complete || r.Err() != nil || r.ResumeFrom != s.ids[2] || r.ResumedFrom != s.ids[2] {
		t.Errorf("report %+v", r)
	}
	if s.gr.Calls["EnableImageBlockPublicAccess"] != 0 || r.Guardrail.Enabled {
		t.Error("the guardrail was turned on while halted")
	}
	if s.ec2.calls["DescribeImages"] != 0 || s.stub.total() != 0 || len(s.ssm.puts) != 0 {
		t.Errorf("listings %v, checks %d, cursor writes %v; want none", s.ec2.calls, s.stub.total(), s.ssm.puts)
	}
}

// With the real kill switch (on a fake SSM, on the simulated clock), as the
// function wires it: no check starts more than killswitch.HaltTTL after the
// switch is engaged, and SSM is read about once per HaltTTL, not per check.
func TestAuditHaltsOnTheKillSwitchWithinHaltTTL(t *testing.T) {
	const param = "/test/kill-switch"
	s := revokingSetup(200)
	s.a.Concurrency = 1
	ks := &countingSSM{memSSM: newSSM()}
	s.a.Halt = killswitch.New(ks, param, s.clock.Now).Halt
	var mu sync.Mutex
	var engagedAt time.Time
	var after []time.Duration // start of each check after the engagement
	s.stub.block = func(_ context.Context, id string) error {
		mu.Lock()
		defer mu.Unlock()
		if !engagedAt.IsZero() {
			after = append(after, s.clock.Now().Sub(engagedAt))
		}
		if id == s.ids[29] {
			ks.put(param, "incident 42")
			engagedAt = s.clock.Now()
		}
		return nil
	}
	start := s.clock.Now()
	r := s.run(s.ctxUntil(t, time.Hour))
	if r.Halted != "kill switch "+param+": incident 42" || r.Complete {
		t.Fatalf("halted %q complete %v", r.Halted, r.Complete)
	}
	// One worker: a check starts at most one pacing step (0.1 s) after
	// its Halt.
	for _, d := range after {
		if d >= killswitch.HaltTTL+200*time.Millisecond {
			t.Errorf("a check started %v after the switch was engaged", d)
		}
	}
	elapsed := s.clock.Now().Sub(start)
	if reads := ks.reads.Load(); reads > int64(elapsed/killswitch.HaltTTL)+2 || reads >= int64(s.stub.total()) {
		t.Errorf("%d reads of the switch for %d checks over %v", reads, s.stub.total(), elapsed)
	}
}

// countingSSM is memSSM counting reads, with puts that need no Type.
type countingSSM struct {
	*memSSM
	reads atomic.Int64
}

func (c *countingSSM) GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	c.reads.Add(1)
	return c.memSSM.GetParameter(ctx, in, opts...)
}

func (c *countingSSM) put(name, value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.values[name] = value
}
