package handlers

import (
	"strings"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
)

// A sweep's report as a unit's result: the counts, and partial whenever
// the sweep stopped before the end of its plan, so the summary says so and
// the next sweep resumes.
func TestCleanupResult(t *testing.T) {
	u := fanout.Unit{Sweep: "cleanup/2026-11-29T03:00:00Z", Job: fanout.JobCleanup, Account: "111111111111", Region: "us-east-1"}
	plan := cleanup.Plan{Totals: cleanup.Totals{Considered: 12, Deregister: 3}}
	done := &execute.Results{Deregistered: 3, SnapshotsDeleted: 4, GiBFreed: 40}
	for _, tt := range []struct {
		name       string
		rep        sweep.Report
		status     string
		reason     string // substring
		blocked    bool
		dereg      int
		usd        float64
		amisSeenIs int
	}{
		{name: "audit", rep: sweep.Report{Plan: plan}, status: fanout.StatusDone, amisSeenIs: 12},
		{name: "enforced", rep: sweep.Report{Plan: plan, Results: done}, status: fanout.StatusDone, dereg: 3, usd: 2, amisSeenIs: 12},
		{name: "inventory blocked", rep: sweep.Report{Plan: cleanup.Plan{Totals: plan.Totals, Blocked: "inventory incomplete: DescribeInstances: AccessDenied"}},
			status: fanout.StatusPartial, reason: "nothing changed: inventory incomplete", blocked: true, amisSeenIs: 12},
		{name: "halted by the kill switch", rep: sweep.Report{Plan: plan, Results: &execute.Results{Deregistered: 1, GiBFreed: 10, NotStarted: 2, Halted: "kill switch engaged"}},
			status: fanout.StatusPartial, reason: "halted: kill switch engaged; the next sweep resumes", dereg: 1, usd: 0.5, amisSeenIs: 12},
		{name: "out of time", rep: sweep.Report{Plan: plan, Results: &execute.Results{Deregistered: 2, GiBFreed: 20, NotStarted: 1}},
			status: fanout.StatusPartial, reason: "1 actions not started: out of time", dereg: 2, usd: 1, amisSeenIs: 12},
		{name: "actions failed", rep: sweep.Report{Plan: plan, Results: &execute.Results{Deregistered: 2, GiBFreed: 20, Failed: 1}},
			status: fanout.StatusPartial, reason: "1 actions failed", dereg: 2, usd: 1, amisSeenIs: 12},
		{name: "plan refused", rep: sweep.Report{Plan: plan, Results: &execute.Results{Refused: "no records key"}},
			status: fanout.StatusPartial, reason: "plan refused: no records key", amisSeenIs: 12},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := tt.rep
			got := cleanupResult(u, &rep, 0.05)
			if got.Unit != u || got.Status != tt.status || !strings.Contains(got.Reason, tt.reason) || (got.Blocked != "") != tt.blocked ||
				got.Deregistered != tt.dereg || got.AMIsSeen != tt.amisSeenIs || got.USDPerMonthSaved != tt.usd {
				t.Errorf("got %+v\nwant status %s, reason ~%q, blocked %v, deregistered %d, usd %v", got, tt.status, tt.reason, tt.blocked, tt.dereg, tt.usd)
			}
			if tt.status == fanout.StatusDone && got.Reason != "" {
				t.Errorf("done with a reason: %q", got.Reason)
			}
		})
	}
}
