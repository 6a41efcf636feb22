package cleanup

// Pure tests of retention.shared_usage: check (usage.go): which usage
// report counts, and what the plan does with it. No AWS, no fake.

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

const (
	consumer = "333333333333" // an account the AMIs are shared with
	other    = "444444444444"
)

func sharedWith(ids ...string) func(*Image) { return func(im *Image) { im.SharedWith = ids } }

// checkUsage: shared_usage check, enforce mode, grace 7 days (pol's).
func checkUsage(r *policy.Retention) {
	r.SharedUsage = policy.SharedUsageCheck
	r.Mode = policy.ModeEnforce
}

// report is a usage report that counts for image, created at created.
func report(id, image string, created time.Time, opts ...func(*UsageReport)) UsageReport {
	r := UsageReport{ID: id, ImageID: image, State: "available", Created: created, Expires: created.Add(30 * day),
		ResourceTypes: []string{UsageInstance, UsageLaunchTemplate}, VersionDepth: UsageVersionDepth}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// read is what the collector hands the planner when it read report use's
// entries (use "" when none counted).
func read(use string, entries []UsageEntry, reports ...UsageReport) ImageUsage {
	return ImageUsage{Reports: reports, Report: use, Entries: entries}
}

func entry(report, image, account, rt string, n int64) UsageEntry {
	return UsageEntry{ReportID: report, ImageID: image, AccountID: account, ResourceType: rt, Count: n}
}

func TestPlanSharedUsage(t *testing.T) {
	day10 := daysAgo(10) // after ami-1 would have been marked, before the due date below
	due := "2026-11-20"  // passed: reports must be created from 2026-11-21T00:00:00Z
	afterDue := time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		pol     func(*policy.Retention)
		img     Image
		usage   *ImageUsage // nil: not read
		action  Action
		request bool
		report  string
		reasons []string
		not     []string
		disable bool // the mark disables it
	}{
		{
			name: "keep (the default): shared is kept, no report asked",
			pol:  func(r *policy.Retention) { r.Mode = policy.ModeEnforce },
			img:  ami("ami-1", "web-1", 40, sharedWith(consumer)), action: ActionKeep,
			reasons: []string{"shared with " + consumer},
		},
		{
			name: "no report yet: kept, one requested (enforce)",
			img:  ami("ami-1", "web-1", 40, sharedWith(consumer)), usage: &ImageUsage{},
			action: ActionKeep, request: true,
			reasons: []string{"shared with " + consumer + ": no usage report that counts; one is requested now, read in a later run"},
		},
		{
			name: "no report yet, audit mode: kept, none requested by the sweep (it says so)",
			pol:  func(r *policy.Retention) { checkUsage(r); r.Mode = policy.ModeAudit },
			img:  ami("ami-1", "web-1", 40, sharedWith(consumer)), usage: &ImageUsage{},
			action: ActionKeep, request: true,
			reasons: []string{"shared with " + consumer + ": no usage report that counts; audit mode requests none (enforce mode requests one and reads it in a later run)"},
		},
		{
			name:    "reports not read: kept, nothing requested",
			img:     ami("ami-1", "web-1", 40, sharedWith(consumer)),
			action:  ActionKeep,
			reasons: []string{"shared with " + consumer + ": its usage reports were not read: kept"},
		},
		{
			name:    "reading failed: kept, nothing requested",
			img:     ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:   &ImageUsage{Error: "usage reports of [ami-1]: RequestLimitExceeded"},
			action:  ActionKeep,
			reasons: []string{"shared with " + consumer + ": its usage reports could not be read (usage reports of [ami-1]: RequestLimitExceeded): kept"},
		},
		{
			name:   "a report that counts names users: kept, with the accounts and counts",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer, other)),
			usage:  usageOf(read("r-1", []UsageEntry{entry("r-1", "ami-1", consumer, UsageInstance, 2), entry("r-1", "ami-1", consumer, UsageLaunchTemplate, 1), entry("r-1", "ami-1", other, UsageInstance, 1)}, report("r-1", "ami-1", day10))),
			action: ActionKeep, report: "r-1",
			reasons: []string{"shared with " + consumer + ", " + other + ": used by account " + consumer + " (2 instances, 1 launch template), account " + other + " (1 instance) per usage report r-1 (created 2026-11-18T12:00:00Z)"},
		},
		{
			name: "a report that counts names no user: marked, not disabled",
			pol: func(r *policy.Retention) {
				checkUsage(r)
				r.Stages = policy.Stages{Deprecate: true, Disable: true}
			},
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:  usageOf(read("r-1", []UsageEntry{entry("r-1", "ami-1", consumer, UsageInstance, 0)}, report("r-1", "ami-1", day10))),
			action: ActionMark, report: "r-1",
			reasons: []string{"shared with " + consumer + ", but usage report r-1 (created 2026-11-18T12:00:00Z) finds no account using it (all accounts, instances and launch templates)",
				"not disabled: it is shared, and disabling would remove its launch permissions for good (EnableImage does not restore them)"},
		},
		{
			name:   "pending: kept, waited for",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:  usageOf(read("", nil, report("r-2", "ami-1", now.Add(-2*time.Hour), func(r *UsageReport) { r.State = "pending" }))),
			action: ActionKeep, report: "r-2",
			reasons: []string{"shared with " + consumer + ": usage report r-2 (created 2026-11-28T10:00:00Z) is pending: read in a later run"},
		},
		{
			name:   "pending for too long: another requested",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:  usageOf(read("", nil, report("r-2", "ami-1", daysAgo(3), func(r *UsageReport) { r.State = "pending" }))),
			action: ActionKeep, request: true,
			reasons: []string{"~no usage report that counts"},
		},
		{
			name:   "a report narrowed to some accounts does not count",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:  usageOf(read("", nil, report("r-3", "ami-1", day10, func(r *UsageReport) { r.AccountIDs = []string{other} }))),
			action: ActionKeep, request: true,
			reasons: []string{"usage report r-3 (created 2026-11-18T12:00:00Z) does not count: it covers only account " + other + " (a report must cover all accounts)"},
		},
		{
			name:   "a report without launch templates does not count",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:  usageOf(read("", nil, report("r-3", "ami-1", day10, func(r *UsageReport) { r.ResourceTypes = []string{UsageInstance} }))),
			action: ActionKeep, request: true,
			reasons: []string{"~it covers ec2:Instance (a report must cover ec2:Instance and ec2:LaunchTemplate)"},
		},
		{
			name:   "a report at EC2's default version depth does not count",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:  usageOf(read("", nil, report("r-3", "ami-1", day10, func(r *UsageReport) { r.VersionDepth = 0 }))),
			action: ActionKeep, request: true,
			reasons: []string{"~it looks at EC2's default of 20 launch template versions (a report must look at 10000)"},
		},
		{
			name:   "an expired report does not count",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:  usageOf(read("", nil, report("r-3", "ami-1", daysAgo(31)))),
			action: ActionKeep, request: true,
			reasons: []string{"~it has expired"},
		},
		{
			name:   "a report of another AMI does not count",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:  usageOf(read("", nil, report("r-3", "ami-2", day10))),
			action: ActionKeep, request: true,
			reasons: []string{"~it is for ami-2"},
		},
		{
			name:   "a report in error is passed over for an older one that counts",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:  usageOf(read("r-1", nil, report("r-1", "ami-1", day10), report("r-9", "ami-1", daysAgo(1), func(r *UsageReport) { r.State = "error" }))),
			action: ActionMark, report: "r-1",
		},
		{
			name:   "entries of another report than the one that counts: kept",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:  usageOf(read("r-0", nil, report("r-1", "ami-1", day10))),
			action: ActionKeep, report: "r-1",
			reasons: []string{`shared with ` + consumer + `: the entries of usage report r-1 were not read (read: "r-0"): kept`},
		},
		{
			name:   "an entry of another AMI: kept",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:  usageOf(read("r-1", []UsageEntry{entry("r-1", "ami-2", consumer, UsageInstance, 0)}, report("r-1", "ami-1", day10))),
			action: ActionKeep, report: "r-1",
			reasons: []string{"shared with " + consumer + ": usage report r-1 has an entry of report r-1, AMI ami-2: kept"},
		},
		{
			name:   "due, only a report from before its date: stays marked, another requested",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer), marked(due)),
			usage:  usageOf(read("", nil, report("r-1", "ami-1", day10))),
			action: ActionWait, request: true,
			reasons: []string{"shared with " + consumer + ": no usage report that counts created after its mark's date 2026-11-20; one is requested now, read in a later run",
				"usage report r-1 (created 2026-11-18T12:00:00Z) does not count: it was created before 2026-11-21T00:00:00Z, so uses up to the mark may be missing from it",
				"stays marked until a usage report says whether another account uses it"},
		},
		{
			name:   "due, a report from after its date names no user: deregistered",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer), marked(due)),
			usage:  usageOf(read("r-2", nil, report("r-1", "ami-1", day10), report("r-2", "ami-1", afterDue))),
			action: ActionDeregister, report: "r-2",
			reasons: []string{"~but usage report r-2 (created 2026-11-21T06:00:00Z) finds no account using it"},
		},
		{
			name:   "due, a report from after its date names a user: unmarked",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer), marked(due)),
			usage:  usageOf(read("r-2", []UsageEntry{entry("r-2", "ami-1", consumer, UsageLaunchTemplate, 1)}, report("r-2", "ami-1", afterDue))),
			action: ActionUnmark, report: "r-2",
			reasons: []string{"shared with " + consumer + ": used by account " + consumer + " (1 launch template) per usage report r-2 (created 2026-11-21T06:00:00Z)"},
		},
		{
			name:   "waiting, its report gone: stays marked, nothing requested before the date",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer), marked("2026-12-01")),
			usage:  &ImageUsage{},
			action: ActionWait,
			reasons: []string{"shared with " + consumer + ": no usage report that counts; one is requested once the mark's date has passed",
				"stays marked until a usage report says whether another account uses it"},
		},
		{
			name:   "waiting, a user appears: unmarked",
			img:    ami("ami-1", "web-1", 40, sharedWith(consumer), marked("2026-12-01")),
			usage:  usageOf(read("r-1", []UsageEntry{entry("r-1", "ami-1", consumer, UsageInstance, 1)}, report("r-1", "ami-1", day10))),
			action: ActionUnmark, report: "r-1",
		},
		{
			name:    "grace 0: kept, a report could never be made after a mark",
			pol:     func(r *policy.Retention) { checkUsage(r); r.GraceDays = 0 },
			img:     ami("ami-1", "web-1", 40, sharedWith(consumer)),
			usage:   usageOf(read("r-1", nil, report("r-1", "ami-1", day10))),
			action:  ActionKeep,
			reasons: []string{"~needs grace_days > 0"},
		},
		{
			name:    "public: kept as before, usage not asked",
			img:     ami("ami-1", "web-1", 40, sharedWith(consumer), func(im *Image) { im.Public = true }),
			usage:   usageOf(read("r-1", nil, report("r-1", "ami-1", day10))),
			action:  ActionKeep,
			reasons: []string{"public", "shared with " + consumer + " (its usage is checked once nothing else keeps it)"},
			not:     []string{"usage report"},
		},
		{
			name:    "kept for another reason: usage not asked",
			img:     ami("ami-1", "web-1", 40, sharedWith(consumer), tag("ami-housekeeper:keep", "")),
			usage:   usageOf(read("r-1", nil, report("r-1", "ami-1", day10))),
			action:  ActionKeep,
			reasons: []string{"protected by tag ami-housekeeper:keep", "shared with " + consumer + " (its usage is checked once nothing else keeps it)"},
			not:     []string{"usage report"},
		},
		{
			name:   "not shared: the check does not apply",
			img:    ami("ami-1", "web-1", 40),
			action: ActionMark, reasons: []string{"not shared"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mut := tt.pol
			if mut == nil {
				mut = checkUsage
			}
			inv := fleet(tt.img, ami("ami-9", "web-9", 1))
			if tt.usage != nil {
				inv.Usage = map[string]ImageUsage{"ami-1": *tt.usage}
			}
			p := MakePlan(now, inv, pol(mut))
			check(t, p, expect{"ami-1", tt.action, tt.reasons, tt.not})
			d := find(t, p, "ami-1")
			if d.RequestUsageReport != tt.request || d.UsageReport != tt.report {
				t.Errorf("request %v report %q, want %v %q", d.RequestUsageReport, d.UsageReport, tt.request, tt.report)
			}
			if d.Disable {
				t.Errorf("a shared AMI is disabled by its mark: %+v", d)
			}
			if d.Action == ActionWait && d.DeleteAfter == "" {
				t.Errorf("a wait without its mark's date: %+v", d)
			}
		})
	}
}

func TestUsageToCheck(t *testing.T) {
	inv := fleet(
		ami("ami-1", "web-1", 40, sharedWith(consumer)),
		ami("ami-2", "web-2", 40, sharedWith(consumer), marked("2026-11-20")),
		ami("ami-3", "web-3", 40, sharedWith(consumer), tag("ami-housekeeper:keep", "")), // kept anyway
		ami("ami-4", "web-4", 40, sharedWith(consumer), func(im *Image) { im.Public = true }),
		ami("ami-5", "web-5", 40), // not shared
		ami("ami-6", "web-6", 40, sharedWith(consumer), func(im *Image) { im.SharesKnown = false }),
		ami("ami-7", "web-7", 40, sharedWith(consumer), marked("2026-12-01")), // waiting: any report
		ami("ami-9", "web-9", 1, sharedWith(consumer)),                        // newest: kept
	)
	got := UsageToCheck(now, inv, pol(checkUsage))
	want := []UsageQuery{
		{ImageID: "ami-1"},
		{ImageID: "ami-2", NotBefore: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)},
		{ImageID: "ami-7"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("UsageToCheck = %+v, want %+v", got, want)
	}
	for name, mut := range map[string]func(*policy.Retention){
		"keep":          func(r *policy.Retention) { r.Mode = policy.ModeEnforce },
		"grace 0":       func(r *policy.Retention) { checkUsage(r); r.GraceDays = 0 },
		"keep_shared 0": func(r *policy.Retention) { checkUsage(r); r.KeepShared = false },
	} {
		if got := UsageToCheck(now, inv, pol(mut)); len(got) != 0 {
			t.Errorf("%s: UsageToCheck = %+v, want none", name, got)
		}
	}
}

func TestDecisionUsageRequested(t *testing.T) {
	inv := fleet(ami("ami-1", "web-1", 40, sharedWith(consumer)), ami("ami-9", "web-9", 1))
	inv.Usage = map[string]ImageUsage{"ami-1": {}}
	d := find(t, MakePlan(now, inv, pol(checkUsage)), "ami-1")
	ok, failed := d, d
	ok.Reasons, failed.Reasons = slices.Clone(d.Reasons), slices.Clone(d.Reasons)
	ok.UsageRequested("amiur-1", nil)
	if want := "shared with " + consumer + ": no usage report that counts; usage report amiur-1 requested, read in a later run"; ok.Reasons[0] != want || ok.UsageReport != "amiur-1" {
		t.Errorf("requested: %q %q", ok.Reasons, ok.UsageReport)
	}
	failed.UsageRequested("", errors.New("UnauthorizedOperation"))
	if want := "shared with " + consumer + ": no usage report that counts; requesting one failed (UnauthorizedOperation): the next run tries again"; failed.Reasons[0] != want || failed.UsageReport != "" || failed.Action != ActionKeep {
		t.Errorf("failed: %q %q %s", failed.Reasons, failed.UsageReport, failed.Action)
	}
}

func usageOf(u ImageUsage) *ImageUsage { return &u }
