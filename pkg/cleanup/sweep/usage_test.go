package sweep_test

// retention.shared_usage: check across runs, through the real Sweeper:
// moto holds the account (the AMIs, their launch permissions, instances,
// templates, parameters; the deregistrations), and the stateful
// fake.ImageUsage answers the usage report calls, which moto does not
// implement (HTTP 500). Both run on one simulated clock for the reports;
// the AMIs' ages come from moto's CreationDate (now) and the planning clock
// a month later.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

const (
	usageConsumer = "333333333333" // shares app-005 and app-006; runs app-006
	usageStranger = "444444444444"
)

func usagePolicy(t *testing.T, mode policy.Mode) policy.Retention {
	t.Helper()
	p, err := policy.Parse([]byte(fmt.Sprintf(`version: 1
retention:
  mode: %s
  grace_days: 3
  second_opinion: disabled
  shared_usage: check
  rules:
    - name: app
      match: {name: "app-*"}
      keep_newest: 1
      min_age_days: 7
`, mode)), "usage test")
	if err != nil {
		t.Fatal(err)
	}
	return p.Retention
}

// usageRun is one sweep at the simulated clock's time.
func usageRun(t *testing.T, w *motoWorld, f *fake.ImageUsage, clk *fake.Clock, p policy.Retention) *sweep.Report {
	t.Helper()
	return w.run(context.Background(), t, p, clk.Now, nil, f)
}

func decisionOf(t *testing.T, rep *sweep.Report, id string) cleanup.Decision {
	t.Helper()
	for _, d := range rep.Plan.Decisions {
		if d.ImageID == id {
			return d
		}
	}
	t.Fatalf("no decision for %s", id)
	return cleanup.Decision{}
}

func reasonsHave(d cleanup.Decision, sub string) bool {
	for _, r := range d.Reasons {
		if strings.Contains(r, sub) {
			return true
		}
	}
	return false
}

// TestSharedUsageAcrossRuns: app-005 and app-006 are shared with a
// consumer account, which runs app-006. Audit requests nothing; the first
// enforce run requests a report of each and keeps both; the next reads
// them: app-006 stays (used), app-005 is marked. When its date has passed,
// the old report no longer counts, nor does a report someone narrowed to
// one account: another is requested, the mark held. The report after the
// date names no user, but listing the reports fails once: kept, mark held. The run
// after deregisters it.
func TestSharedUsageAcrossRuns(t *testing.T) {
	m := fleetMoto(t)
	w := seedMoto(t, m)
	ctx := context.Background()
	app5, app6, app7 := w.ids["app-005"], w.ids["app-006"], w.ids["app-007"]
	for _, id := range []string{app5, app6} {
		if _, err := w.ec2.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id),
			LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(usageConsumer)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Noon of a day a month on: the mark's date and the reports' lag are
	// whole days.
	t0 := planClock().Truncate(24 * time.Hour).Add(12 * time.Hour)
	clk := fake.NewClock(t0)
	f := &fake.ImageUsage{Clock: clk, ReadyAfter: 10 * time.Minute, Images: map[string]bool{},
		Uses: []fake.ImageUse{{Account: usageConsumer, ImageID: app6, ResourceType: "ec2:Instance", Count: 2, Since: t0.AddDate(0, -1, 0)}}}
	for _, id := range w.ids {
		f.Images[id] = true
	}
	enforce := usagePolicy(t, policy.ModeEnforce)

	// Audit: kept, nothing requested, and it says why.
	rep := usageRun(t, w, f, clk, usagePolicy(t, policy.ModeAudit))
	if d := decisionOf(t, rep, app5); d.Action != cleanup.ActionKeep || !reasonsHave(d, "audit mode requests none") || len(f.Created) != 0 {
		t.Fatalf("audit: %s %q, %d reports requested", d.Action, d.Reasons, len(f.Created))
	}

	// Run 1: one report requested per shared AMI; both kept.
	rep = usageRun(t, w, f, clk, enforce)
	if len(f.Created) != 2 || rep.UsageReportsRequested != 2 {
		t.Fatalf("run 1 requested %d reports (reported %d), want 2", len(f.Created), rep.UsageReportsRequested)
	}
	for _, id := range []string{app5, app6} {
		d := decisionOf(t, rep, id)
		if d.Action != cleanup.ActionKeep || d.UsageReport == "" || !reasonsHave(d, "usage report "+d.UsageReport+" requested, read in a later run") {
			t.Errorf("run 1, %s: %s %q (report %q)", w.name(id), d.Action, d.Reasons, d.UsageReport)
		}
	}
	if d := decisionOf(t, rep, app7); d.Action != cleanup.ActionMark {
		t.Errorf("run 1, unshared app-007: %s %q", d.Action, d.Reasons)
	}

	// Run 2, a day later: the reports are in.
	clk.Advance(24 * time.Hour)
	rep = usageRun(t, w, f, clk, enforce)
	d5, d6 := decisionOf(t, rep, app5), decisionOf(t, rep, app6)
	if d5.Action != cleanup.ActionMark || d5.Disable || !reasonsHave(d5, "finds no account using it") {
		t.Errorf("run 2, app-005: %s %q", d5.Action, d5.Reasons)
	}
	if d6.Action != cleanup.ActionKeep || !reasonsHave(d6, "used by account "+usageConsumer+" (2 instances) per usage report") {
		t.Errorf("run 2, app-006: %s %q", d6.Action, d6.Reasons)
	}
	if len(f.Created) != 2 {
		t.Errorf("run 2 requested reports: %d in all", len(f.Created))
	}

	// Run 3, once app-005's date has passed: its report is older than the
	// date, and a report narrowed to one account, made since, proves
	// nothing. Held, and a new report requested. app-007 goes.
	clk.Advance(4*24*time.Hour - time.Hour)
	if _, err := f.CreateImageUsageReport(ctx, &ec2.CreateImageUsageReportInput{ImageId: aws.String(app5), AccountIds: []string{usageStranger},
		ResourceTypes: []types.ImageUsageResourceTypeRequest{{ResourceType: aws.String("ec2:Instance")}, {ResourceType: aws.String("ec2:LaunchTemplate"),
			ResourceTypeOptions: []types.ImageUsageResourceTypeOptionRequest{{OptionName: aws.String("version-depth"), OptionValues: []string{"10000"}}}}}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	rep = usageRun(t, w, f, clk, enforce)
	d5 = decisionOf(t, rep, app5)
	if d5.Action != cleanup.ActionWait || !reasonsHave(d5, "covers only account "+usageStranger) || !reasonsHave(d5, "created before") ||
		!reasonsHave(d5, "usage report "+d5.UsageReport+" requested") || len(f.Created) != 4 {
		t.Errorf("run 3, app-005: %s %q, %d reports requested in all", d5.Action, d5.Reasons, len(f.Created))
	}
	if d := decisionOf(t, rep, app7); d.Action != cleanup.ActionDeregister || rep.Results == nil || rep.Results.Deregistered != 1 {
		t.Errorf("run 3, app-007: %s %q; results %+v", d.Action, d.Reasons, rep.Results)
	}
	assertRegistered(t, w, app5, true)

	// Run 4: the report after the date is in, but listing fails: kept,
	// still marked, and nothing requested again.
	clk.Advance(24 * time.Hour)
	f.Errors = map[string][]error{"DescribeImageUsageReports": {fake.APIError("RequestLimitExceeded")}}
	rep = usageRun(t, w, f, clk, enforce)
	if d5 = decisionOf(t, rep, app5); d5.Action != cleanup.ActionWait || !reasonsHave(d5, "could not be read") || len(f.Created) != 4 {
		t.Errorf("run 4, app-005: %s %q", d5.Action, d5.Reasons)
	}
	assertRegistered(t, w, app5, true)

	// Run 5: read; nobody uses it: deregistered. app-006 stays.
	clk.Advance(24 * time.Hour)
	rep = usageRun(t, w, f, clk, enforce)
	if d5 = decisionOf(t, rep, app5); d5.Action != cleanup.ActionDeregister || !reasonsHave(d5, "finds no account using it") {
		t.Errorf("run 5, app-005: %s %q", d5.Action, d5.Reasons)
	}
	assertRegistered(t, w, app5, false)
	assertRegistered(t, w, app6, true)
}

// TestSharedUsageRequestFailureKeeps: a refused request (no permission)
// keeps the AMI, says so, and is a problem of the run.
func TestSharedUsageRequestFailureKeeps(t *testing.T) {
	m := fleetMoto(t)
	w := seedMoto(t, m)
	ctx := context.Background()
	app5 := w.ids["app-005"]
	if _, err := w.ec2.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(app5),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(usageConsumer)}}}}); err != nil {
		t.Fatal(err)
	}
	clk := fake.NewClock(planClock())
	f := &fake.ImageUsage{Clock: clk, Images: map[string]bool{app5: true},
		Errors: map[string][]error{"CreateImageUsageReport": {fake.APIError("UnauthorizedOperation")}}}
	rep := usageRun(t, w, f, clk, usagePolicy(t, policy.ModeEnforce))
	d := decisionOf(t, rep, app5)
	if d.Action != cleanup.ActionKeep || !reasonsHave(d, "requesting one failed") || rep.UsageReportsRequested != 0 ||
		len(rep.Problems) == 0 || !strings.Contains(strings.Join(rep.Problems, "; "), "UnauthorizedOperation") {
		t.Errorf("%s %q; problems %q", d.Action, d.Reasons, rep.Problems)
	}
}

func assertRegistered(t *testing.T, w *motoWorld, id string, want bool) {
	t.Helper()
	out, err := w.ec2.DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
	got := err == nil && len(out.Images) == 1
	if got != want {
		t.Errorf("%s registered: %v, want %v (%v)", w.name(id), got, want, err)
	}
}
