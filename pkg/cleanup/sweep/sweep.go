// Package sweep runs one cleanup sweep of an account and region: collect the
// inventory, read launch permissions of the candidates, plan, and (in
// enforce mode) apply. It is the engine the Lambda handler and, later, the
// CLI call; it knows nothing of Lambda or EventBridge.
package sweep

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// reportReserve is the time kept, at the end of an invocation, for the report.
const reportReserve = 15 * time.Second

// Sweeper wires the three stages for one account and region.
type Sweeper struct {
	Collector *collect.Collector
	Executor  *execute.Executor
	// Now is the planning clock (time.Now when nil).
	Now func() time.Time
	// Records seals and opens the cleanup's record tags (pkg/records); nil
	// trusts no record and refuses to apply.
	Records *records.Key
	// Approved, when set, is what an operator confirmed (the CLI's apply):
	// a change the new plan makes that it does not approve is kept.
	Approved *cleanup.Approval
	// Tagging, when set (WatchTagger), has the sweep count the recent AMIs
	// the tagger did not reach (Report.Tagger).
	Tagging *policy.Tagging
}

// Report is everything one sweep found, decided and did.
type Report struct {
	Account    string           `json:"account"`
	Region     string           `json:"region"`
	Mode       policy.Mode      `json:"mode"`
	Plan       cleanup.Plan     `json:"plan"`
	Results    *execute.Results `json:"results,omitempty"`
	Problems   []string         `json:"problems,omitempty"`
	Incomplete []string         `json:"incomplete,omitempty"`
	// UsageReportsRequested counts the usage reports requested this run
	// (shared_usage: check, enforce mode).
	UsageReportsRequested int `json:"usage_reports_requested,omitempty"`
	// Tagger is the tagger's coverage of recent AMIs; nil when not watched.
	Tagger   *TaggerCoverage `json:"tagger,omitempty"`
	Duration time.Duration   `json:"-"`
}

// Run sweeps once. Audit mode (and a blocked plan) stops after planning.
func (s *Sweeper) Run(ctx context.Context, account, region string, p policy.Retention) *Report {
	start := time.Now()
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	inv := s.Collector.Collect(ctx, account, region, p.InUse)
	inv.Records = s.Records
	// Enforcing, the launch permissions of what would go now are read by
	// the recheck, paced alongside the deregistrations, rather than all
	// before planning (at 20 reads a second that held up 1,000 removals by
	// 46 s). An audit reads them first, so its plan is exact.
	// The usage reports of shared AMIs (shared_usage: check) are read
	// before planning, so their launch permissions must be too.
	inv.SharesAtRemoval = p.Mode == policy.ModeEnforce && p.SharedUsage != policy.SharedUsageCheck
	at := now().UTC()
	// Launch permissions cost one call per AMI, so only the AMIs that would
	// otherwise be removed are read.
	if ids := cleanup.SharesToCheck(at, inv, p); len(ids) > 0 {
		s.Collector.ReadShares(ctx, inv, ids)
	}
	// Then, for the shared ones nothing else keeps, who else uses them.
	// (An incomplete inventory changes nothing: no need to ask.)
	if qs := cleanup.UsageToCheck(at, inv, p); len(qs) > 0 && len(inv.Incomplete) == 0 {
		s.Collector.ReadUsage(ctx, inv, at, qs)
	}
	plan := cleanup.MakePlan(at, inv, p)
	if s.Approved != nil {
		plan.Restrict(*s.Approved)
	}
	rep := &Report{Account: account, Region: region, Mode: p.Mode, Plan: plan, Problems: inv.Problems, Incomplete: inv.Incomplete}
	if p.Mode == policy.ModeEnforce && plan.Blocked == "" {
		s.requestUsage(ctx, rep, at)
	}
	if s.Tagging != nil && plan.Blocked == "" {
		rep.Tagger = taggerCoverage(at, inv.Images, *s.Tagging)
	}
	if p.Mode == policy.ModeEnforce && plan.Blocked == "" {
		tags := make(map[string]map[string]string, len(inv.Images))
		for _, img := range inv.Images {
			tags[img.ID] = img.Tags
		}
		ex := *s.Executor
		ex.ImageTags = func(id string) map[string]string { return tags[id] }
		ex.Records = s.Records
		// EC2's reference check looks at the most recent launch template
		// versions; unless the policy counts every version as use, only the
		// latest (which the policy always counts) may keep an AMI, or an
		// old version the policy ignores on purpose would keep it forever.
		if !slices.Contains(p.InUse.LaunchTemplateVersions, policy.LaunchTemplateAll) {
			s.Collector.ReferencesVersionDepth = 1
		}
		ex.Recheck = recheck{c: s.Collector, now: func() time.Time { return now().UTC() }, p: p, records: s.Records}
		// Stop starting actions a little before the invocation's deadline,
		// so the report is still written; the next run resumes.
		actx := ctx
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			actx, cancel = context.WithDeadline(ctx, dl.Add(-reportReserve))
			defer cancel()
		}
		res := ex.Apply(actx, &rep.Plan)
		rep.Results = &res
	}
	rep.Duration = time.Since(start)
	return rep
}

// MaxUsageRequestsPerRun bounds the usage reports one run requests; the
// others are requested by the next runs (EC2's quota on reports is
// UNVERIFIED).
const MaxUsageRequestsPerRun = 100

// requestUsage asks EC2 for a usage report of each AMI whose plan needs
// one (shared_usage: check), in plan order, and records the outcome in
// its reasons. Only enforce mode requests: a report is a new resource in
// the account, and an audit changes nothing. A failed request keeps the
// AMI, as every missing report does, and is a problem of the run.
func (s *Sweeper) requestUsage(ctx context.Context, rep *Report, at time.Time) {
	for k := range rep.Plan.Decisions {
		d := &rep.Plan.Decisions[k]
		if !d.RequestUsageReport {
			continue
		}
		if rep.UsageReportsRequested >= MaxUsageRequestsPerRun {
			d.UsageRequested("", fmt.Errorf("cap of %d usage report requests per run reached", MaxUsageRequestsPerRun))
			continue
		}
		id, err := s.Collector.RequestUsageReport(ctx, d.ImageID, at)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("image %s: %v", d.ImageID, err))
		} else {
			rep.UsageReportsRequested++
		}
		d.UsageRequested(id, err)
	}
}
