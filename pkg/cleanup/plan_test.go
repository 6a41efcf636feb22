package cleanup

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// now is a fixed clock: 2026-11-28, noon UTC.
var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func daysAgo(n float64) time.Time { return now.Add(-time.Duration(n * float64(day))) }

// pol is the default retention with one catch-all rule keeping the newest
// image of each family, 14 days minimum age, launched within 30 days.
func pol(muts ...func(*policy.Retention)) policy.Retention {
	r := policy.Default().Retention
	r.Rules = []policy.Rule{{Name: "all", KeepNewest: 1, MinAgeDays: 14, KeepLaunchedWithinDays: 30}}
	for _, m := range muts {
		m(&r)
	}
	return r
}

// ami builds an available, unshared, never launched image with one snapshot
// snap-<id without "ami-">.
func ami(id, name string, age float64, opts ...func(*Image)) Image {
	im := Image{ID: id, Name: name, OwnerID: "111111111111", State: "available", CreationDate: daysAgo(age),
		SharesKnown: true, SnapshotIDs: []string{"snap-" + strings.TrimPrefix(id, "ami-")}, SizeGiB: 8}
	for _, o := range opts {
		o(&im)
	}
	return im
}

func tag(k, v string) func(*Image) {
	return func(im *Image) {
		if im.Tags == nil {
			im.Tags = map[string]string{}
		}
		im.Tags[k] = v
	}
}
func state(s string) func(*Image)       { return func(im *Image) { im.State = s } }
func launched(age float64) func(*Image) { return func(im *Image) { im.LastLaunched = daysAgo(age) } }
func snaps(ids ...string) func(*Image)  { return func(im *Image) { im.SnapshotIDs = ids } }
func marked(date string) func(*Image)   { return sealed(TagDeleteAfter, date) }

// testKey seals the record tags the tests write as if an earlier run of the
// cleanup had (fleet puts it in the inventory).
var testKey = records.NewKey([]byte("ami-housekeeper test records key"))

// sealed sets a record tag sealed for the image, as the cleanup writes it.
func sealed(k, v string) func(*Image) {
	return func(im *Image) { tag(k, testKey.Seal(k, im.ID, v))(im) }
}

// deleteWith is the cleanup's delete-with record for ami on snapshot.
func deleteWith(snapshot, ami string) string { return testKey.Seal(TagDeleteWith, snapshot, ami) }

// fleet builds an inventory owning every snapshot its images use (8 GiB
// each unless sizes says otherwise), described as CreateImage made them.
func fleet(images ...Image) *Inventory {
	inv := &Inventory{Account: "111111111111", Region: "eu-west-1", Images: images, References: map[string][]Reference{}, Records: testKey}
	seen := map[string]bool{}
	for _, im := range images {
		for _, s := range im.SnapshotIDs {
			if !seen[s] {
				seen[s] = true
				inv.Snapshots = append(inv.Snapshots, Snapshot{ID: s, SizeGiB: 8, State: "completed",
					Description: "Created by CreateImage(i-0123) for " + im.ID, StartTime: im.CreationDate})
			}
		}
	}
	return inv
}

func sized(inv *Inventory, sizes map[string]int64) *Inventory {
	for k := range inv.Snapshots {
		if n, ok := sizes[inv.Snapshots[k].ID]; ok {
			inv.Snapshots[k].SizeGiB = n
		}
	}
	return inv
}

func find(t *testing.T, p Plan, id string) Decision {
	t.Helper()
	for _, d := range p.Decisions {
		if d.ImageID == id {
			return d
		}
	}
	t.Fatalf("no decision for %s in %s", id, dump(p))
	return Decision{}
}

func findOrphan(p Plan, id string) (SnapshotDecision, bool) {
	for _, o := range p.Orphans {
		if o.SnapshotID == id {
			return o, true
		}
	}
	return SnapshotDecision{}, false
}

func dump(p Plan) string {
	var b strings.Builder
	for _, d := range p.Decisions {
		fmt.Fprintf(&b, "\n  %s %s rule=%q family=%q after=%q del=%v kept=%v gib=%d %q", d.ImageID, d.Action, d.Rule, d.Family, d.DeleteAfter, d.DeleteSnapshots, d.KeptSnapshots, d.SizeGiB, d.Reasons)
	}
	for _, o := range p.Orphans {
		fmt.Fprintf(&b, "\n  %s (%s) %s %d GiB %q", o.SnapshotID, o.ImageID, o.Action, o.SizeGiB, o.Reasons)
	}
	fmt.Fprintf(&b, "\n  totals %+v blocked %q", p.Totals, p.Blocked)
	return b.String()
}

// expect is one image's expected action and reasons; a reason starting with
// "~" need only be a substring of one reason, others must be equal to one.
type expect struct {
	id      string
	action  Action
	reasons []string
	not     []string // substrings no reason may contain
}

func check(t *testing.T, p Plan, ws ...expect) {
	t.Helper()
	for _, w := range ws {
		d := find(t, p, w.id)
		if d.Action != w.action {
			t.Errorf("%s: action %s, want %s; reasons %q%s", w.id, d.Action, w.action, d.Reasons, dump(p))
		}
		for _, r := range w.reasons {
			if !hasReason(d.Reasons, r) {
				t.Errorf("%s: no reason %q in %q", w.id, r, d.Reasons)
			}
		}
		for _, n := range w.not {
			if hasReason(d.Reasons, "~"+n) {
				t.Errorf("%s: unexpected reason containing %q in %q", w.id, n, d.Reasons)
			}
		}
		if len(d.Reasons) == 0 {
			t.Errorf("%s: no reasons", w.id)
		}
	}
}

func hasReason(reasons []string, want string) bool {
	if sub, ok := strings.CutPrefix(want, "~"); ok {
		return slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, sub) })
	}
	return slices.Contains(reasons, want)
}

func TestPlanSkip(t *testing.T) {
	tests := []struct {
		name string
		img  Image
		want expect
	}{
		{"pending state", ami("ami-1", "web-1", 40, state("pending")),
			expect{"ami-1", ActionSkip, []string{"state pending"}, nil}},
		{"failed state", ami("ami-1", "web-1", 40, state("failed")),
			expect{"ami-1", ActionSkip, []string{"state failed"}, nil}},
		{"unknown state", ami("ami-1", "web-1", 40, state("")),
			expect{"ami-1", ActionSkip, []string{"state unknown"}, nil}},
		{"disabled state is ours", ami("ami-1", "web-1", 40, state("disabled")),
			expect{"ami-1", ActionMark, []string{"not in use"}, nil}},
		{"AWS Backup tag", ami("ami-1", "web-1", 40, tag("aws:backup:source-resource", "arn:aws:ec2:eu-west-1:1:instance/i-1")),
			expect{"ami-1", ActionSkip, []string{"managed by AWS Backup (tag aws:backup:source-resource)"}, nil}},
		{"AWS Backup name", ami("ami-1", "AwsBackup_i-0abc_2026", 40),
			expect{"ami-1", ActionSkip, []string{"managed by AWS Backup (name AwsBackup_i-0abc_2026)"}, nil}},
		{"deregistration protection", ami("ami-1", "web-1", 40, func(im *Image) { im.DeregistrationProtection = "enabled-with-cooldown" }),
			expect{"ami-1", ActionSkip, []string{"deregistration protection: enabled-with-cooldown"}, nil}},
		{"protection cooldown", ami("ami-1", "web-1", 40, func(im *Image) { im.DeregistrationProtection = "disabled after 2026-11-29T10:00:00Z" }),
			expect{"ami-1", ActionSkip, []string{"deregistration protection: disabled after 2026-11-29T10:00:00Z"}, nil}},
		{"protection disabled is off", ami("ami-1", "web-1", 40, func(im *Image) { im.DeregistrationProtection = "disabled" }),
			expect{"ami-1", ActionMark, nil, []string{"protection"}}},
		{"every skip reason, and a mark is removed", ami("ami-1", "AwsBackup_x", 40, state("failed"), marked("2026-12-01"),
			func(im *Image) { im.DeregistrationProtection = "enabled" }),
			expect{"ami-1", ActionUnmark, []string{"state failed", "managed by AWS Backup (name AwsBackup_x)",
				"deregistration protection: enabled", "was marked for removal after 2026-12-01"}, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An older sibling would be a candidate next to a newer one; with
			// a single image per family, keep_newest 0 makes it a candidate.
			p := pol(func(r *policy.Retention) { r.Rules[0].KeepNewest = 0 })
			check(t, MakePlan(now, fleet(tt.img), p), tt.want)
		})
	}
}

func TestPlanRuleMatching(t *testing.T) {
	yes := true
	rules := []policy.Rule{
		{Name: "web", Match: policy.Match{Name: "web-*"}, KeepNewest: 0, MinAgeDays: 1},
		{Name: "team-a", Match: policy.Match{Tags: map[string]string{"team": "a", "env": "*"}}, KeepNewest: 0, MinAgeDays: 1},
		{Name: "bad-glob", Match: policy.Match{Name: "[oops"}, KeepNewest: 0},
		{Name: "shared-ok", Match: policy.Match{Name: "lib-*"}, KeepNewest: 0, KeepShared: &yes},
	}
	inv := fleet(
		ami("ami-1", "web-1", 40),
		ami("ami-2", "app-1", 40, tag("team", "a"), tag("env", "prod")),
		ami("ami-3", "app-2", 40, tag("team", "a")),                  // env missing
		ami("ami-4", "app-3", 40, tag("team", "b"), tag("env", "x")), // team differs
		ami("ami-5", "web-2", 40, tag("team", "a"), tag("env", "x")), // both: first wins
		ami("ami-6", "[oops", 40),
	)
	p := MakePlan(now, inv, pol(func(r *policy.Retention) { r.Rules = rules }))
	check(t, p,
		expect{"ami-1", ActionMark, nil, nil},
		expect{"ami-2", ActionMark, nil, nil},
		expect{"ami-3", ActionKeep, []string{"no retention rule matches"}, nil},
		expect{"ami-4", ActionKeep, []string{"no retention rule matches"}, nil},
		expect{"ami-5", ActionMark, nil, nil},
		expect{"ami-6", ActionKeep, []string{"no retention rule matches"}, nil},
	)
	for id, rule := range map[string]string{"ami-1": "web", "ami-2": "team-a", "ami-3": "", "ami-5": "web"} {
		if d := find(t, p, id); d.Rule != rule {
			t.Errorf("%s: rule %q, want %q", id, d.Rule, rule)
		}
	}
}

func TestPlanKeepReasons(t *testing.T) {
	tests := []struct {
		name  string
		pol   func(*policy.Retention)
		refs  map[string][]Reference
		imgs  []Image
		wants []expect
	}{
		{
			name: "in use by every reference",
			refs: map[string][]Reference{"ami-1": {
				{Kind: RefInstance, ID: "i-0abc", Detail: "stopped"},
				{Kind: RefLaunchTemplate, ID: "lt-0abc", Detail: "version 3"},
				{Kind: RefSSMParameter, ID: "/golden/web"},
			}},
			imgs: []Image{ami("ami-1", "web-1", 40), ami("ami-2", "web-2", 1)},
			wants: []expect{{"ami-1", ActionKeep, []string{"in use by instance i-0abc (stopped)",
				"in use by launch template lt-0abc (version 3)", "in use by ssm parameter /golden/web"}, []string{"not in use"}}},
		},
		{
			name:  "protect tag, any value",
			imgs:  []Image{ami("ami-1", "web-1", 40, tag("ami-housekeeper:keep", "")), ami("ami-2", "web-2", 39, tag("ami-housekeeper:keep", "CHG-42")), ami("ami-3", "web-3", 1)},
			wants: []expect{{"ami-1", ActionKeep, []string{"protected by tag ami-housekeeper:keep"}, nil}, {"ami-2", ActionKeep, []string{`protected by tag ami-housekeeper:keep ("CHG-42")`}, nil}},
		},
		{
			name: "time lock: future date, future RFC 3339, today's date has begun, past, garbage",
			imgs: []Image{
				ami("ami-1", "web-1", 40, tag("ami-housekeeper:do-not-touch-before", "2026-12-24")),
				ami("ami-2", "web-2", 40, tag("ami-housekeeper:do-not-touch-before", "2026-11-28T13:00:00Z")),
				ami("ami-3", "web-3", 40, tag("ami-housekeeper:do-not-touch-before", "2026-11-28")),
				ami("ami-4", "web-4", 40, tag("ami-housekeeper:do-not-touch-before", "2026-01-01")),
				ami("ami-5", "web-5", 40, tag("ami-housekeeper:do-not-touch-before", "next tuesday")),
				ami("ami-6", "web-6", 1),
			},
			wants: []expect{
				{"ami-1", ActionKeep, []string{"time-locked until 2026-12-24 (tag ami-housekeeper:do-not-touch-before)"}, nil},
				{"ami-2", ActionKeep, []string{"time-locked until 2026-11-28T13:00:00Z (tag ami-housekeeper:do-not-touch-before)"}, nil},
				{"ami-3", ActionMark, []string{"time lock 2026-11-28 expired"}, nil},
				{"ami-4", ActionMark, []string{"time lock 2026-01-01 expired"}, nil},
				{"ami-5", ActionKeep, []string{`time-lock tag value "next tuesday" is not a date: kept to be safe`}, nil},
			},
		},
		{
			name: "shared: public, accounts, unknown",
			imgs: []Image{
				ami("ami-1", "web-1", 40, func(im *Image) { im.Public = true }),
				ami("ami-2", "web-2", 40, func(im *Image) {
					im.SharedWith = []string{"222222222222", "arn:aws:organizations::1:organization/o-abc"}
				}),
				ami("ami-3", "web-3", 40, func(im *Image) { im.SharesKnown = false }),
				ami("ami-4", "web-4", 40),
				ami("ami-5", "web-5", 1),
			},
			wants: []expect{
				{"ami-1", ActionKeep, []string{"public"}, nil},
				{"ami-2", ActionKeep, []string{"shared with 222222222222, arn:aws:organizations::1:organization/o-abc"}, nil},
				{"ami-3", ActionKeep, []string{"launch permissions not read: kept"}, nil},
				{"ami-4", ActionMark, []string{"not shared"}, nil},
			},
		},
		{
			name: "keep_shared off at rule level overrides the policy",
			pol: func(r *policy.Retention) {
				off := false
				r.Rules[0].KeepShared = &off
			},
			imgs: []Image{
				ami("ami-1", "web-1", 40, func(im *Image) { im.Public = true }),
				ami("ami-2", "web-2", 40, func(im *Image) { im.SharedWith = []string{"222222222222"} }),
				ami("ami-3", "web-3", 40, func(im *Image) { im.SharesKnown = false }),
				ami("ami-5", "web-5", 1),
			},
			wants: []expect{
				{"ami-1", ActionMark, []string{"public, but keep_shared is off"}, nil},
				{"ami-2", ActionMark, []string{"shared with 222222222222, but keep_shared is off"}, nil},
				{"ami-3", ActionMark, []string{"launch permissions not read (keep_shared is off)"}, nil},
			},
		},
		{
			name: "keep_shared on at rule level overrides a policy that is off",
			pol: func(r *policy.Retention) {
				on := true
				r.KeepShared = false
				r.Rules[0].KeepShared = &on
			},
			imgs:  []Image{ami("ami-1", "web-1", 40, func(im *Image) { im.SharedWith = []string{"222222222222"} }), ami("ami-2", "web-2", 1)},
			wants: []expect{{"ami-1", ActionKeep, []string{"shared with 222222222222"}, nil}},
		},
		{
			name: "newest 3 of a family, ranked by creation date then ID; other states not ranked",
			pol:  func(r *policy.Retention) { r.Rules[0].KeepNewest = 3 },
			imgs: []Image{
				ami("ami-5", "web-base-20261001", 58),
				ami("ami-2", "web-base-20261020", 40),
				ami("ami-1", "web-base-20261021", 38),
				ami("ami-3", "web-base-20261020b", 40, func(im *Image) { im.Name = "web-base-1.2.3" }),
				ami("ami-0", "web-base-20261101", 27, state("failed")),
				ami("ami-4", "web-base-20260901", 88, state("disabled")),
			},
			wants: []expect{
				{"ami-1", ActionKeep, []string{"newest 3 of family web-base (1st)"}, nil},
				{"ami-2", ActionKeep, []string{"newest 3 of family web-base (2nd)"}, nil},
				{"ami-3", ActionKeep, []string{"newest 3 of family web-base (3rd)"}, nil},
				{"ami-5", ActionMark, []string{"not among the newest 3 of family web-base (4th)"}, nil},
				{"ami-4", ActionMark, []string{"not among the newest 3 of family web-base (5th)"}, nil},
				{"ami-0", ActionSkip, []string{"state failed"}, nil},
			},
		},
		{
			name: "families are separate",
			imgs: []Image{ami("ami-1", "web-20261001", 58), ami("ami-2", "api-20261001", 58), ami("ami-3", "api-20261002", 57)},
			wants: []expect{
				{"ami-1", ActionKeep, []string{"newest 1 of family web (1st)"}, nil},
				{"ami-3", ActionKeep, []string{"newest 1 of family api (1st)"}, nil},
				{"ami-2", ActionMark, []string{"not among the newest 1 of family api (2nd)"}, nil},
			},
		},
		{
			name: "younger than min age",
			imgs: []Image{ami("ami-1", "web-1", 3.5), ami("ami-2", "web-2", 0.2), ami("ami-3", "web-3", 13.9), ami("ami-4", "web-4", 14)},
			wants: []expect{
				{"ami-1", ActionKeep, []string{"younger than 14 days (created 3 days ago)"}, nil},
				{"ami-3", ActionKeep, []string{"younger than 14 days (created 13 days ago)"}, nil},
				{"ami-4", ActionMark, []string{"older than 14 days (created 14 days ago)"}, nil},
			},
		},
		{
			name: "created in the future or at an unknown time",
			imgs: []Image{ami("ami-1", "web-1", -2), ami("ami-2", "web-2", 40, func(im *Image) { im.CreationDate = time.Time{} }), ami("ami-3", "web-3", 1)},
			wants: []expect{
				{"ami-1", ActionKeep, []string{"younger than 14 days (created in the future (2026-11-30T12:00:00Z))"}, nil},
				{"ami-2", ActionKeep, []string{"creation date unknown: kept to be safe"}, nil},
			},
		},
		{
			name: "launched within the window, plus one day of EC2 reporting lag",
			imgs: []Image{
				ami("ami-1", "web-1", 100, launched(4)),
				ami("ami-2", "web-2", 100, launched(30.5)), // within 30+1 days
				ami("ami-3", "web-3", 100, launched(31.5)),
				ami("ami-4", "web-4", 100),
				ami("ami-5", "web-5", 1),
			},
			wants: []expect{
				{"ami-1", ActionKeep, []string{"launched 4 days ago"}, nil},
				{"ami-2", ActionKeep, []string{"launched 30 days ago"}, nil},
				{"ami-3", ActionMark, []string{"last launched 31 days ago"}, nil},
				{"ami-4", ActionMark, []string{"never launched"}, nil},
			},
		},
		{
			name:  "keep_launched_within_days 0 disables the check",
			pol:   func(r *policy.Retention) { r.Rules[0].KeepLaunchedWithinDays = 0 },
			imgs:  []Image{ami("ami-1", "web-1", 100, launched(0.5)), ami("ami-2", "web-2", 1)},
			wants: []expect{{"ami-1", ActionMark, []string{"last launched less than a day ago"}, nil}},
		},
		{
			name: "family underivable",
			pol:  func(r *policy.Retention) { r.Rules[0].Family = policy.Family{Tag: "family"} },
			imgs: []Image{ami("ami-1", "web-1", 40), ami("ami-2", "web-2", 40, tag("family", "")), ami("ami-3", "web-3", 40, tag("family", "web")), ami("ami-4", "web-4", 39, tag("family", "web"))},
			wants: []expect{
				{"ami-1", ActionKeep, []string{"family tag family missing: family unknown, kept"}, nil},
				{"ami-2", ActionKeep, []string{"family tag family is empty: family unknown, kept"}, nil},
				{"ami-3", ActionMark, []string{"not among the newest 1 of family web (2nd)"}, nil},
				{"ami-4", ActionKeep, []string{"newest 1 of family web (1st)"}, nil},
			},
		},
		{
			name: "a candidate says why it may go",
			imgs: []Image{ami("ami-1", "web-base-20261001", 40, launched(40)), ami("ami-2", "web-base-20261101", 30)},
			wants: []expect{{"ami-1", ActionMark, []string{"older than 14 days (created 40 days ago)",
				"not among the newest 1 of family web-base (2nd)", "last launched 40 days ago", "not in use", "not shared",
				"marked for removal after 2026-12-05 (grace 7 days)"}, nil}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pol()
			if tt.pol != nil {
				tt.pol(&p)
			}
			inv := fleet(tt.imgs...)
			if tt.refs != nil {
				inv.References = tt.refs
			}
			check(t, MakePlan(now, inv, p), tt.wants...)
		})
	}
}

func TestPlanCollectsEveryKeepReason(t *testing.T) {
	inv := fleet(ami("ami-1", "web-1", 3, tag("ami-housekeeper:keep", ""), launched(1),
		tag("ami-housekeeper:do-not-touch-before", "2027-01-01"), func(im *Image) { im.Public = true }))
	inv.References["ami-1"] = []Reference{{Kind: RefInstance, ID: "i-0abc", Detail: "stopped"}, {Kind: RefAutoScalingGroup, ID: "web-asg"}}
	d := find(t, MakePlan(now, inv, pol()), "ami-1")
	want := []string{
		"in use by instance i-0abc (stopped)",
		"in use by auto scaling group web-asg",
		"protected by tag ami-housekeeper:keep",
		"time-locked until 2027-01-01 (tag ami-housekeeper:do-not-touch-before)",
		"public",
		"newest 1 of family web (1st)",
		"younger than 14 days (created 3 days ago)",
		"launched 1 day ago",
	}
	if d.Action != ActionKeep || !reflect.DeepEqual(d.Reasons, want) {
		t.Errorf("got %s %q\nwant keep %q", d.Action, d.Reasons, want)
	}
}

func TestPlanStages(t *testing.T) {
	inUse := map[string][]Reference{"ami-1": {{Kind: RefInstance, ID: "i-0abc", Detail: "running"}}}
	tests := []struct {
		name   string
		pol    func(*policy.Retention)
		img    Image
		refs   map[string][]Reference
		want   expect
		after  string
		stages [2]bool // deprecate, disable
	}{
		{name: "candidate, not marked: mark with the grace period and the stages",
			pol: func(r *policy.Retention) { r.Stages = policy.Stages{Deprecate: true, Disable: true} },
			img: ami("ami-1", "web-1", 40), want: expect{"ami-1", ActionMark, []string{"marked for removal after 2026-12-05 (grace 7 days)"}, nil},
			after: "2026-12-05", stages: [2]bool{true, true}},
		{name: "candidate, grace 0: deregister now",
			pol: func(r *policy.Retention) { r.GraceDays = 0 },
			img: ami("ami-1", "web-1", 40), want: expect{"ami-1", ActionDeregister, []string{"grace_days is 0: deregistered without marking"}, nil},
			after: "2026-11-28"},
		{name: "candidate, marked, date to come: wait",
			img:  ami("ami-1", "web-1", 40, marked("2026-12-01")),
			want: expect{"ami-1", ActionWait, []string{"marked; may be removed after 2026-12-01"}, nil}, after: "2026-12-01"},
		{name: "candidate, marked today: wait for the date to pass",
			img:  ami("ami-1", "web-1", 40, marked("2026-11-28")),
			want: expect{"ami-1", ActionWait, []string{"marked; may be removed after 2026-11-28"}, nil}, after: "2026-11-28"},
		{name: "candidate, date passed: deregister",
			img:  ami("ami-1", "web-1", 40, marked("2026-11-27")),
			want: expect{"ami-1", ActionDeregister, []string{"marked for removal after 2026-11-27; that date has passed"}, nil}, after: "2026-11-27"},
		{name: "candidate, unparseable mark: mark again",
			img: ami("ami-1", "web-1", 40, marked("soon")),
			want: expect{"ami-1", ActionMark, []string{`mark ami-housekeeper:delete-after="soon" is not a date (YYYY-MM-DD): treated as not marked`,
				"marked for removal after 2026-12-05 (grace 7 days)"}, nil}, after: "2026-12-05"},
		{name: "no longer a candidate: unmark with every reason",
			img: ami("ami-1", "web-1", 40, marked("2026-11-01"), tag("ami-housekeeper:keep", "")), refs: inUse,
			want: expect{"ami-1", ActionUnmark, []string{"in use by instance i-0abc (running)", "protected by tag ami-housekeeper:keep",
				"was marked for removal after 2026-11-01"}, nil}},
		{name: "no rule any more: unmark",
			pol:  func(r *policy.Retention) { r.Rules = nil },
			img:  ami("ami-1", "web-1", 40, marked("2026-11-01")),
			want: expect{"ami-1", ActionUnmark, []string{"no retention rule matches", "was marked for removal after 2026-11-01"}, nil}},
		{name: "kept with a garbled mark: unmark",
			img: ami("ami-1", "web-1", 40, marked("soon")), refs: inUse,
			want: expect{"ami-1", ActionUnmark, []string{`was marked for removal after "soon" (not a date)`}, nil}},
		{name: "kept with a stage an interrupted unmark could not undo: unmark",
			img: ami("ami-1", "web-1", 40, marked("2026-11-01"), sealed(TagDisabledByUs, "2026-11-01"), state("disabled")), refs: inUse,
			want: expect{"ami-1", ActionUnmark, []string{"was disabled when marked (tag ami-housekeeper:disabled-by-cleanup)"}, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pol(func(r *policy.Retention) { r.Rules[0].KeepNewest = 0 })
			if tt.pol != nil {
				tt.pol(&p)
			}
			inv := fleet(tt.img)
			if tt.refs != nil {
				inv.References = tt.refs
			}
			plan := MakePlan(now, inv, p)
			check(t, plan, tt.want)
			d := find(t, plan, tt.img.ID)
			if d.DeleteAfter != tt.after || d.Deprecate != tt.stages[0] || d.Disable != tt.stages[1] {
				t.Errorf("delete after %q deprecate %v disable %v, want %q %v %v", d.DeleteAfter, d.Deprecate, d.Disable, tt.after, tt.stages[0], tt.stages[1])
			}
		})
	}
}

// deregisterAll is a policy under which every image that is not kept for a
// reason of its own is deregistered now.
func deregisterAll(muts ...func(*policy.Retention)) policy.Retention {
	return pol(append([]func(*policy.Retention){func(r *policy.Retention) {
		r.GraceDays = 0
		r.Rules[0].KeepNewest = 0
	}}, muts...)...)
}

func TestPlanSnapshots(t *testing.T) {
	t.Run("owned snapshots are deleted with their AMI", func(t *testing.T) {
		inv := sized(fleet(ami("ami-1", "web-1", 40, snaps("snap-a", "snap-b", "snap-a", ""))), map[string]int64{"snap-a": 8, "snap-b": 100})
		d := find(t, MakePlan(now, inv, deregisterAll()), "ami-1")
		if d.Action != ActionDeregister || !reflect.DeepEqual(d.DeleteSnapshots, []string{"snap-a", "snap-b"}) || d.SizeGiB != 108 || d.KeptSnapshots != nil {
			t.Errorf("%s del=%v kept=%v gib=%d", d.Action, d.DeleteSnapshots, d.KeptSnapshots, d.SizeGiB)
		}
	})
	t.Run("a snapshot not owned is kept", func(t *testing.T) {
		inv := fleet(ami("ami-1", "web-1", 40, snaps("snap-a", "snap-other")))
		inv.Snapshots = inv.Snapshots[:1]
		d := find(t, MakePlan(now, inv, deregisterAll()), "ami-1")
		if !reflect.DeepEqual(d.DeleteSnapshots, []string{"snap-a"}) || !reflect.DeepEqual(d.KeptSnapshots, []string{"snap-other not owned by this account"}) {
			t.Errorf("del=%v kept=%v", d.DeleteSnapshots, d.KeptSnapshots)
		}
	})
	t.Run("a snapshot shared with an AMI that stays is kept", func(t *testing.T) {
		inv := fleet(ami("ami-1", "web-1", 40, snaps("snap-a", "snap-s")), ami("ami-2", "web-2", 40, snaps("snap-s")))
		inv.References["ami-2"] = []Reference{{Kind: RefLaunchTemplate, ID: "lt-1", Detail: "$Default"}}
		p := MakePlan(now, inv, deregisterAll())
		d := find(t, p, "ami-1")
		if !reflect.DeepEqual(d.DeleteSnapshots, []string{"snap-a"}) || !reflect.DeepEqual(d.KeptSnapshots, []string{"snap-s also used by ami-2"}) || d.SizeGiB != 8 {
			t.Errorf("del=%v kept=%v gib=%d", d.DeleteSnapshots, d.KeptSnapshots, d.SizeGiB)
		}
		check(t, p, expect{"ami-2", ActionKeep, nil, nil})
	})
	t.Run("a snapshot shared with a skipped AMI is kept", func(t *testing.T) {
		inv := fleet(ami("ami-1", "web-1", 40, snaps("snap-s")), ami("ami-2", "web-2", 40, snaps("snap-s"), state("failed")))
		d := find(t, MakePlan(now, inv, deregisterAll()), "ami-1")
		if d.DeleteSnapshots != nil || !reflect.DeepEqual(d.KeptSnapshots, []string{"snap-s also used by ami-2"}) {
			t.Errorf("del=%v kept=%v", d.DeleteSnapshots, d.KeptSnapshots)
		}
	})
	t.Run("a snapshot shared by AMIs that all go is deleted with the last in plan order", func(t *testing.T) {
		inv := fleet(ami("ami-1", "web-20260101", 300, snaps("snap-s", "snap-1")), ami("ami-2", "web-20260201", 270, snaps("snap-s")),
			ami("ami-3", "web-20260301", 240, snaps("snap-s")))
		p := MakePlan(now, inv, deregisterAll())
		// Plan order is newest first: ami-3, ami-2, ami-1.
		var order []string
		for _, d := range p.Decisions {
			order = append(order, d.ImageID)
		}
		if !reflect.DeepEqual(order, []string{"ami-3", "ami-2", "ami-1"}) {
			t.Fatalf("order %v", order)
		}
		d3, d2, d1 := find(t, p, "ami-3"), find(t, p, "ami-2"), find(t, p, "ami-1")
		if d3.DeleteSnapshots != nil || !reflect.DeepEqual(d3.KeptSnapshots, []string{"snap-s also used by ami-1; deleted with it"}) ||
			d2.DeleteSnapshots != nil || !reflect.DeepEqual(d2.KeptSnapshots, []string{"snap-s also used by ami-1; deleted with it"}) ||
			!reflect.DeepEqual(d1.DeleteSnapshots, []string{"snap-s", "snap-1"}) || d1.SizeGiB != 16 {
			t.Errorf("%s", dump(p))
		}
		if p.Totals.SnapshotsDelete != 2 || p.Totals.GiBFreed != 16 || p.Totals.Deregister != 3 {
			t.Errorf("totals %+v", p.Totals)
		}
	})
	t.Run("a snapshot shared with an AMI left pending by a cap is kept", func(t *testing.T) {
		inv := fleet(ami("ami-1", "web-1", 300, snaps("snap-s", "snap-1")), ami("ami-2", "web-2", 200, snaps("snap-s", "snap-2")))
		p := MakePlan(now, inv, deregisterAll(func(r *policy.Retention) { r.MaxDeregistrationsPerRun = 1 }))
		d1, d2 := find(t, p, "ami-1"), find(t, p, "ami-2")
		if d1.Action != ActionDeregister || !reflect.DeepEqual(d1.DeleteSnapshots, []string{"snap-1"}) ||
			!reflect.DeepEqual(d1.KeptSnapshots, []string{"snap-s also used by ami-2"}) {
			t.Errorf("%s", dump(p))
		}
		if d2.Action != ActionPending || d2.DeleteSnapshots != nil || d2.SizeGiB != 16 || p.Totals.PendingGiB != 16 {
			t.Errorf("%s", dump(p))
		}
	})
}

func TestPlanCaps(t *testing.T) {
	five := func() *Inventory {
		var imgs []Image
		for k := range 5 {
			imgs = append(imgs, ami(fmt.Sprintf("ami-%d", k), fmt.Sprintf("web-%d", k), float64(100-k)))
		}
		return fleet(imgs...)
	}
	t.Run("by count, oldest first", func(t *testing.T) {
		p := MakePlan(now, five(), deregisterAll(func(r *policy.Retention) { r.MaxDeregistrationsPerRun = 3 }))
		check(t, p,
			expect{"ami-0", ActionDeregister, nil, nil}, expect{"ami-1", ActionDeregister, nil, nil}, expect{"ami-2", ActionDeregister, nil, nil},
			expect{"ami-3", ActionPending, []string{"cap of 3 deregistrations per run reached; next run"}, nil},
			expect{"ami-4", ActionPending, []string{"cap of 3 deregistrations per run reached; next run"}, nil})
		if p.Totals.Deregister != 3 || p.Totals.Pending != 2 || p.Totals.PendingGiB != 16 || p.Totals.GiBFreed != 24 || p.Totals.SnapshotsDelete != 3 {
			t.Errorf("totals %+v", p.Totals)
		}
		if d := find(t, p, "ami-4"); d.DeleteSnapshots != nil || d.SizeGiB != 8 {
			t.Errorf("pending: del=%v gib=%d", d.DeleteSnapshots, d.SizeGiB)
		}
	})
	t.Run("by GiB: the rest wait once the cap would be exceeded", func(t *testing.T) {
		inv := sized(five(), map[string]int64{"snap-0": 10, "snap-1": 20, "snap-2": 30, "snap-3": 1, "snap-4": 1})
		p := MakePlan(now, inv, deregisterAll(func(r *policy.Retention) { r.MaxGiBPerRun = 35 }))
		check(t, p,
			expect{"ami-0", ActionDeregister, nil, nil}, expect{"ami-1", ActionDeregister, nil, nil},
			expect{"ami-2", ActionPending, []string{"cap of 35 GiB per run reached (30 GiB already planned, this frees 30 GiB); next run"}, nil},
			expect{"ami-3", ActionPending, []string{"cap of 35 GiB per run reached; next run"}, nil},
			expect{"ami-4", ActionPending, nil, nil})
		if p.Totals.GiBFreed != 30 || p.Totals.PendingGiB != 32 {
			t.Errorf("totals %+v", p.Totals)
		}
	})
	t.Run("an AMI bigger than the whole GiB cap is passed over", func(t *testing.T) {
		inv := sized(five(), map[string]int64{"snap-0": 100})
		p := MakePlan(now, inv, deregisterAll(func(r *policy.Retention) { r.MaxGiBPerRun = 50 }))
		check(t, p, expect{"ami-0", ActionPending, []string{"frees 100 GiB, more than max_gib_per_run 50 on its own; raise the cap to remove it"}, nil})
		if p.Totals.Deregister != 4 || p.Totals.GiBFreed != 32 {
			t.Errorf("totals %+v", p.Totals)
		}
	})
	t.Run("orphan deletions count against the GiB cap, not the count cap", func(t *testing.T) {
		inv := sized(five(), map[string]int64{"snap-0": 10, "snap-1": 10, "snap-2": 10, "snap-3": 10, "snap-4": 10})
		inv.Snapshots = append(inv.Snapshots,
			Snapshot{ID: "snap-o1", SizeGiB: 5, StartTime: daysAgo(90), Description: "Created by CreateImage(i-1) for ami-gone1"},
			Snapshot{ID: "snap-o2", SizeGiB: 5, StartTime: daysAgo(80), Description: "Created by CreateImage(i-1) for ami-gone2"},
			Snapshot{ID: "snap-o3", SizeGiB: 50, StartTime: daysAgo(70), Description: "Created by CreateImage(i-1) for ami-gone3"},
			Snapshot{ID: "snap-f", SizeGiB: 7, StartTime: daysAgo(1), Description: "Created by CreateImage(i-1) for ami-gone4", Tags: map[string]string{TagDeleteWith: deleteWith("snap-f", "ami-gone4")}},
		)
		p := MakePlan(now, inv, deregisterAll(func(r *policy.Retention) {
			r.MaxGiBPerRun = 70
			r.MaxDeregistrationsPerRun = 5
			r.OrphanedSnapshots.Delete = true
		}))
		// Finishing first (7), AMIs oldest first (5 x 10 = 57), orphans
		// oldest first: 5 more fits (62), the next 5 too (67), 50 does not.
		if p.Totals.Deregister != 5 || p.Totals.GiBFreed != 67 || p.Totals.PendingGiB != 50 || p.Totals.SnapshotsDelete != 8 {
			t.Errorf("totals %+v%s", p.Totals, dump(p))
		}
		if o, _ := findOrphan(p, "snap-o3"); o.Action != ActionPending || !hasReason(o.Reasons, "~cap of 70 GiB per run reached") {
			t.Errorf("snap-o3: %+v", o)
		}
	})
	t.Run("a snapshot shared by two AMIs counts once against the GiB cap", func(t *testing.T) {
		inv := sized(fleet(ami("ami-1", "web-1", 300, snaps("snap-s", "snap-1")), ami("ami-2", "web-2", 200, snaps("snap-s", "snap-2"))),
			map[string]int64{"snap-s": 100, "snap-1": 1, "snap-2": 1})
		p := MakePlan(now, inv, deregisterAll(func(r *policy.Retention) { r.MaxGiBPerRun = 102 }))
		if p.Totals.Deregister != 2 || p.Totals.GiBFreed != 102 || p.Totals.SnapshotsDelete != 3 {
			t.Errorf("totals %+v%s", p.Totals, dump(p))
		}
	})
	t.Run("a zero cap deregisters nothing", func(t *testing.T) {
		p := MakePlan(now, five(), deregisterAll(func(r *policy.Retention) { r.MaxDeregistrationsPerRun = 0 }))
		if p.Totals.Deregister != 0 || p.Totals.Pending != 5 {
			t.Errorf("totals %+v", p.Totals)
		}
	})
}

func TestPlanOrphans(t *testing.T) {
	live := ami("ami-live", "web-1", 1, snaps("snap-live"))
	snap := func(id, desc string, tags map[string]string) Snapshot {
		return Snapshot{ID: id, SizeGiB: 8, Description: desc, StartTime: daysAgo(30), State: "completed", Tags: tags}
	}
	tests := []struct {
		name   string
		delete bool
		snap   Snapshot
		want   *SnapshotDecision // nil: not an orphan
	}{
		{"CreateImage description", true, snap("snap-1", "Created by CreateImage(i-0abc) for ami-0def", nil),
			&SnapshotDecision{"snap-1", "ami-0def", ActionDeregister, []string{"orphaned: ami-0def no longer exists"}, 8}},
		{"CreateImage description with a volume", true, snap("snap-1", "Created by CreateImage(i-0abc) for ami-0def from vol-0123", nil),
			&SnapshotDecision{"snap-1", "ami-0def", ActionDeregister, []string{"orphaned: ami-0def no longer exists"}, 8}},
		{"CopyImage description", true, snap("snap-1", "Copied for DestinationAmi ami-0def from SourceAmi ami-0abc for SourceSnapshot snap-0 . Task created on 1,700,000,000.", nil),
			&SnapshotDecision{"snap-1", "ami-0def", ActionDeregister, []string{"orphaned: ami-0def no longer exists"}, 8}},
		{"orphaned_snapshots.delete off", false, snap("snap-1", "Created by CreateImage(i-0abc) for ami-0def", nil),
			&SnapshotDecision{"snap-1", "ami-0def", ActionKeep, []string{"orphaned snapshot of ami-0def; orphaned_snapshots.delete is off"}, 8}},
		{"delete-with tag finishes an earlier run, even with delete off", false, snap("snap-1", "Created by CreateImage(i-0abc) for ami-0def", map[string]string{TagDeleteWith: deleteWith("snap-1", "ami-0def")}),
			&SnapshotDecision{"snap-1", "ami-0def", ActionDeregister, []string{"ami-0def deregistered by a previous run; finishing (tag ami-housekeeper:delete-with, and its description names ami-0def)"}, 8}},
		// The confused deputy: anyone with ec2:CreateTags could tag any
		// snapshot delete-with=<some AMI> and have the cleanup delete it.
		{"delete-with tag on a snapshot not made for an AMI approves nothing", true, Snapshot{ID: "snap-1", SizeGiB: 500, StartTime: now.Add(-time.Minute),
			Description: "prod database nightly backup", Tags: map[string]string{TagDeleteWith: deleteWith("snap-1", "ami-0def")}},
			&SnapshotDecision{"snap-1", "ami-0def", ActionKeep, []string{fmt.Sprintf(`tagged ami-housekeeper:delete-with=%q, but its description does not show it was made for an AMI: not proven to be an AMI's snapshot, kept`, deleteWith("snap-1", "ami-0def"))}, 500}},
		{"delete-with tag naming another AMI than the description approves nothing", false, snap("snap-1", "Created by CreateImage(i-0abc) for ami-0def", map[string]string{TagDeleteWith: deleteWith("snap-1", "ami-0aaa")}),
			&SnapshotDecision{"snap-1", "ami-0def", ActionKeep, []string{fmt.Sprintf(`tag ami-housekeeper:delete-with=%q is not the cleanup's sealed record for ami-0def, the AMI its description names: the tag approves nothing`, deleteWith("snap-1", "ami-0aaa")), "orphaned snapshot of ami-0def; orphaned_snapshots.delete is off"}, 8}},
		// The owner deregistered the AMI and kept its snapshot on purpose;
		// someone with ec2:CreateTags writes the tag a crashed run would leave.
		{"a forged (unsealed) delete-with tag approves nothing", false, snap("snap-1", "Created by CreateImage(i-0abc) for ami-0def", map[string]string{TagDeleteWith: "ami-0def"}),
			&SnapshotDecision{"snap-1", "ami-0def", ActionKeep, []string{`tag ami-housekeeper:delete-with="ami-0def" is not the cleanup's sealed record for ami-0def, the AMI its description names: the tag approves nothing`, "orphaned snapshot of ami-0def; orphaned_snapshots.delete is off"}, 8}},
		{"a young snapshot is not finished by a foreign delete-with tag", true, Snapshot{ID: "snap-1", SizeGiB: 8, StartTime: daysAgo(0.1),
			Description: "Created by CreateImage(i-0abc) for ami-0def", Tags: map[string]string{TagDeleteWith: deleteWith("snap-1", "ami-0aaa")}},
			&SnapshotDecision{"snap-1", "ami-0def", ActionKeep, []string{fmt.Sprintf(`tag ami-housekeeper:delete-with=%q is not the cleanup's sealed record for ami-0def, the AMI its description names: the tag approves nothing`, deleteWith("snap-1", "ami-0aaa")), "orphaned snapshot of ami-0def, but started less than a day ago: its AMI may still be being created"}, 8}},
		{"Data Lifecycle Manager", true, snap("snap-1", "Created by CreateImage(i-0abc) for ami-0def", map[string]string{"aws:dlm:lifecycle-policy-id": "policy-1"}),
			&SnapshotDecision{"snap-1", "ami-0def", ActionKeep, []string{"managed by Data Lifecycle Manager (tag aws:dlm:lifecycle-policy-id)"}, 8}},
		{"protected", true, snap("snap-1", "Created by CreateImage(i-0abc) for ami-0def", map[string]string{"ami-housekeeper:keep": ""}),
			&SnapshotDecision{"snap-1", "ami-0def", ActionKeep, []string{"protected by tag ami-housekeeper:keep"}, 8}},
		{"protected beats delete-with", true, snap("snap-1", "Created by CreateImage(i-0abc) for ami-0def", map[string]string{TagDeleteWith: deleteWith("snap-1", "ami-0def"), "ami-housekeeper:keep": "x"}),
			&SnapshotDecision{"snap-1", "ami-0def", ActionKeep, []string{`protected by tag ami-housekeeper:keep ("x")`}, 8}},
		{"time-locked", true, snap("snap-1", "Created by CreateImage(i-0abc) for ami-0def", map[string]string{"ami-housekeeper:do-not-touch-before": "2027-01-01"}),
			&SnapshotDecision{"snap-1", "ami-0def", ActionKeep, []string{"time-locked until 2027-01-01 (tag ami-housekeeper:do-not-touch-before)"}, 8}},
		{"AWS Backup", true, snap("snap-1", "Created by CreateImage(i-0abc) for ami-0def", map[string]string{"aws:backup:source-resource": "x"}),
			&SnapshotDecision{"snap-1", "ami-0def", ActionKeep, []string{"managed by AWS Backup (tag aws:backup:source-resource)"}, 8}},
		{"young: its AMI may be being created", true, Snapshot{ID: "snap-1", SizeGiB: 8, StartTime: daysAgo(0.1), Description: "Created by CreateImage(i-0abc) for ami-0def"},
			&SnapshotDecision{"snap-1", "ami-0def", ActionKeep, []string{"orphaned snapshot of ami-0def, but started less than a day ago: its AMI may still be being created"}, 8}},
		{"its AMI still exists", true, snap("snap-1", "Created by CreateImage(i-0abc) for ami-live", nil),
			&SnapshotDecision{"snap-1", "ami-live", ActionKeep, []string{"ami-live still exists but does not list this snapshot: kept to be safe"}, 8}},
		{"not an AMI snapshot", true, snap("snap-1", "nightly backup of vol-0123", nil), nil},
		{"AWS Backup description", true, snap("snap-1", "This snapshot is created by the AWS Backup service.", nil), nil},
		{"malformed CreateImage description", true, snap("snap-1", "Created by CreateImage(i-0abc) for something", nil), nil},
		{"no description", true, snap("snap-1", "", nil), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := fleet(live)
			inv.Snapshots = append(inv.Snapshots, tt.snap)
			p := MakePlan(now, inv, pol(func(r *policy.Retention) { r.OrphanedSnapshots.Delete = tt.delete }))
			if _, ok := findOrphan(p, "snap-live"); ok {
				t.Errorf("a snapshot in use is an orphan: %s", dump(p))
			}
			got, ok := findOrphan(p, "snap-1")
			switch {
			case tt.want == nil && ok:
				t.Errorf("not an AMI snapshot, yet an orphan: %+v", got)
			case tt.want != nil && !reflect.DeepEqual(got, *tt.want):
				t.Errorf("got  %+v\nwant %+v", got, *tt.want)
			}
		})
	}
}

func TestPlanIncompleteInventoryChangesNothing(t *testing.T) {
	inv := fleet(
		ami("ami-mark", "a-1", 40),
		ami("ami-dereg", "b-1", 40, marked("2026-11-01")),
		ami("ami-wait", "c-1", 40, marked("2026-12-01")),
		ami("ami-unmark", "d-1", 40, marked("2026-12-01"), tag("ami-housekeeper:keep", "")),
		ami("ami-pend", "e-1", 50, marked("2026-11-01")),
	)
	inv.Snapshots = append(inv.Snapshots, Snapshot{ID: "snap-o", SizeGiB: 5, StartTime: daysAgo(9), Description: "Created by CreateImage(i-1) for ami-gone", Tags: map[string]string{TagDeleteWith: deleteWith("snap-o", "ami-gone")}})
	inv.Incomplete = []string{"instances: throttled", "launch templates: AccessDenied"}
	p := MakePlan(now, inv, pol(func(r *policy.Retention) {
		r.Rules[0].KeepNewest = 0
		r.MaxDeregistrationsPerRun = 1
	}))
	why := "inventory incomplete: instances: throttled; launch templates: AccessDenied; nothing is changed this run"
	if p.Blocked != why {
		t.Errorf("blocked %q", p.Blocked)
	}
	check(t, p,
		expect{"ami-mark", ActionKeep, []string{why, "would otherwise mark"}, nil},
		expect{"ami-dereg", ActionKeep, []string{why, "would otherwise deregister"}, nil},
		expect{"ami-pend", ActionKeep, []string{why, "would otherwise deregister"}, nil},
		expect{"ami-unmark", ActionKeep, []string{why, "would otherwise unmark", "protected by tag ami-housekeeper:keep"}, nil},
		expect{"ami-wait", ActionWait, nil, []string{"inventory incomplete"}},
	)
	for _, d := range p.Decisions {
		if d.DeleteSnapshots != nil || d.Deprecate || d.Disable {
			t.Errorf("%s still changes something: %+v", d.ImageID, d)
		}
	}
	if o, _ := findOrphan(p, "snap-o"); o.Action != ActionKeep || o.Reasons[0] != why {
		t.Errorf("orphan %+v", o)
	}
	tt := p.Totals
	if tt.Mark+tt.Unmark+tt.Deregister+tt.Pending+tt.SnapshotsDelete != 0 || tt.GiBFreed != 0 || tt.Keep != 4 || tt.Wait != 1 {
		t.Errorf("totals %+v", tt)
	}
}

func TestPlanOrderTotalsAndMetadata(t *testing.T) {
	rules := []policy.Rule{
		{Name: "web", Match: policy.Match{Name: "web-*"}, KeepNewest: 1, MinAgeDays: 0},
		{Name: "rest", KeepNewest: 1, MinAgeDays: 0},
	}
	inv := fleet(
		ami("ami-z", "zzz-1", 10, state("pending")), // rest/zzz
		ami("ami-a", "web-b-1", 30, marked("2026-11-01")),
		ami("ami-b", "web-a-1", 20),
		ami("ami-c", "web-a-2", 10),
		ami("ami-d", "web-b-2", 10),
		ami("ami-e", "api-1", 5),
		ami("ami-f", "api-2", 5),
	)
	inv.RecycleBin = RecycleBin{ImageRetentionDays: 10, SnapshotRetentionDays: 12}
	p := MakePlan(now, inv, pol(func(r *policy.Retention) {
		r.Rules = rules
		r.Mode = policy.ModeEnforce
		r.PricePerGiBMonth = 0.05
	}))
	var order []string
	for _, d := range p.Decisions {
		order = append(order, d.ImageID+"/"+d.Rule+"/"+d.Family)
	}
	// api-1 and api-2 were created in the same second: the name's version
	// orders them, not the (random) AMI ID.
	want := []string{"ami-c/web/web-a", "ami-b/web/web-a", "ami-d/web/web-b", "ami-a/web/web-b", "ami-f/rest/api", "ami-e/rest/api", "ami-z/rest/zzz"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order %v\nwant  %v", order, want)
	}
	if p.Mode != policy.ModeEnforce || !p.Now.Equal(now) || p.RecoverableUntil != "2026-12-08" {
		t.Errorf("mode %q now %v recoverable %q", p.Mode, p.Now, p.RecoverableUntil)
	}
	wantTotals := Totals{Considered: 7, Keep: 3, Skip: 1, Mark: 2, Deregister: 1, SnapshotsDelete: 1, GiBFreed: 8, MonthlySavingUSD: 0.4}
	if p.Totals != wantTotals {
		t.Errorf("totals %+v\nwant   %+v", p.Totals, wantTotals)
	}
	if MakePlan(now, fleet(), pol()).RecoverableUntil != "" {
		t.Error("recoverable until set without a Recycle Bin rule")
	}
	// An AMI restored without its snapshots cannot be launched.
	imagesOnly := fleet()
	imagesOnly.RecycleBin.ImageRetentionDays = 10
	if got := MakePlan(now, imagesOnly, pol()).RecoverableUntil; got != "" {
		t.Errorf("recoverable until %q with no Recycle Bin rule for snapshots", got)
	}

	// Images no rule matches go last, by ID.
	p = MakePlan(now, fleet(ami("ami-3", "x", 1), ami("ami-1", "y", 9), ami("ami-2", "web-1", 1)), pol(func(r *policy.Retention) { r.Rules = rules[:1] }))
	order = order[:0]
	for _, d := range p.Decisions {
		order = append(order, d.ImageID)
	}
	if !reflect.DeepEqual(order, []string{"ami-2", "ami-1", "ami-3"}) {
		t.Errorf("order %v", order)
	}
}

func TestPlanNilAndEmpty(t *testing.T) {
	for _, inv := range []*Inventory{nil, {}} {
		p := MakePlan(now, inv, pol())
		if len(p.Decisions) != 0 || len(p.Orphans) != 0 || p.Totals != (Totals{}) {
			t.Errorf("%+v", p)
		}
		if SharesToCheck(now, inv, pol()) != nil {
			t.Error("shares to check in an empty inventory")
		}
	}
}

func TestSharesToCheck(t *testing.T) {
	unknown := func(im *Image) { im.SharesKnown = false }
	inv := fleet(
		ami("ami-9", "web-1", 40, unknown),                       // would be marked
		ami("ami-2", "web-2", 40, unknown, marked("2026-12-01")), // waiting: would be unmarked without them
		ami("ami-3", "web-3", 40, unknown, func(im *Image) { im.Public = true }),
		ami("ami-4", "web-4", 40),                                           // known
		ami("ami-5", "web-5", 40, unknown, tag("ami-housekeeper:keep", "")), // kept anyway
		ami("ami-6", "web-6", 3, unknown),                                   // young
		ami("ami-7", "web-7", 40, unknown, state("pending")),
		ami("ami-8", "other", 40, unknown), // kept anyway: no rule
	)
	inv.References["ami-1"] = []Reference{{Kind: RefInstance, ID: "i-1"}}
	inv.Images = append(inv.Images, ami("ami-1", "web-0", 40, unknown)) // in use
	p := pol(func(r *policy.Retention) {
		r.Rules[0].KeepNewest = 0
		r.Rules[0].Match.Name = "web-*"
	})
	got := SharesToCheck(now, inv, p)
	if want := []string{"ami-2", "ami-9"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	off := false
	p.Rules[0].KeepShared = &off
	if got := SharesToCheck(now, inv, p); got != nil {
		t.Errorf("keep_shared off: got %v", got)
	}
}

func TestFamilyOf(t *testing.T) {
	def := policy.Rule{Name: "r"}
	byTag := policy.Rule{Name: "r", Family: policy.Family{Tag: "family"}}
	byPattern := policy.Rule{Name: "r", Family: policy.Family{NamePattern: `^(.+)-build-\d+$`}}
	tests := []struct {
		name string
		rule policy.Rule
		tags map[string]string
		want string
		ok   bool
	}{
		{"web-base-20261128", def, nil, "web-base", true},
		{"web-base-1.2.3", def, nil, "web-base", true},
		{"web-base-v1.2.3", def, nil, "web-base", true},
		{"app_v42", def, nil, "app", true},
		{"api-2026-11-28T10-00-00Z", def, nil, "api", true},
		{"api-20261128T100000Z", def, nil, "api", true},
		{"api 2026-11-28 10.00.00", def, nil, "api", true},
		{"packer-example-1764324000", def, nil, "packer-example", true},
		{"ubuntu-22.04-20261128", def, nil, "ubuntu-22.04", true},
		{"golden", def, nil, "golden", true},
		{"web-base-rc", def, nil, "web-base-rc", true},
		{"20261128", def, nil, "20261128", true},
		{"", def, nil, "", false},
		{"anything", byTag, map[string]string{"family": "web"}, "web", true},
		{"anything", byTag, nil, "", false},
		{"anything", byTag, map[string]string{"family": ""}, "", false},
		{"web-build-42", byPattern, nil, "web", true},
		{"web-42", byPattern, nil, "", false},
		{"web-build-42", policy.Rule{Family: policy.Family{NamePattern: `^(.*)-build-\d+$`}}, nil, "web", true},
		{"-build-42", policy.Rule{Family: policy.Family{NamePattern: `^(.*)-build-\d+$`}}, nil, "", false},
		{"web-build-42", policy.Rule{Family: policy.Family{NamePattern: `^.*-build-\d+$`}}, nil, "", false},
		{"web-build-42", policy.Rule{Family: policy.Family{NamePattern: `^(.*`}}, nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.rule.Family.Tag+tt.rule.Family.NamePattern, func(t *testing.T) {
			got, ok := FamilyOf(&Image{Name: tt.name, Tags: tt.tags}, tt.rule)
			if got != tt.want || ok != tt.ok {
				t.Errorf("FamilyOf(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestPlanFamilyPatternReasons(t *testing.T) {
	p := pol(func(r *policy.Retention) { r.Rules[0].Family = policy.Family{NamePattern: `^(.+)-build-\d+$`} })
	check(t, MakePlan(now, fleet(ami("ami-1", "web-42", 40), ami("ami-2", "web-build-1", 40), ami("ami-3", "web-build-2", 39)), p),
		expect{"ami-1", ActionKeep, []string{`name "web-42" does not match family name_pattern "^(.+)-build-\\d+$": family unknown, kept`}, nil},
		expect{"ami-2", ActionMark, []string{"not among the newest 1 of family web (2nd)"}, nil},
		expect{"ami-3", ActionKeep, []string{"newest 1 of family web (1st)"}, nil})
	p.Rules[0].Family.NamePattern = "(a)(b)"
	check(t, MakePlan(now, fleet(ami("ami-1", "ab", 40)), p),
		expect{"ami-1", ActionKeep, []string{`family name_pattern "(a)(b)" is unusable (2 capture groups, not 1): family unknown, kept`}, nil})
}

func TestOrdinal(t *testing.T) {
	for n, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 22: "22nd", 101: "101st", 111: "111th"} {
		if got := Ordinal(n); got != want {
			t.Errorf("Ordinal(%d) = %q, want %q", n, got, want)
		}
	}
}

// Snapshot-level protection holds even when its AMI goes, and a snapshot two
// departing AMIs share names the other user, so the executor can wait for it.
func TestPlanSnapshotProtectionAndUsers(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	old := now.AddDate(0, 0, -100)
	p := policy.Default().Retention
	p.GraceDays = 0
	p.Rules = []policy.Rule{{Name: "all", KeepNewest: 0, MinAgeDays: 1}}
	inv := &Inventory{
		Account: "123456789012", Region: "us-east-1",
		Images: []Image{
			{ID: "ami-00000001", Name: "web-1", State: "available", CreationDate: old, SnapshotIDs: []string{"snap-a", "snap-shared", "snap-kept"}, SharesKnown: true},
			{ID: "ami-00000002", Name: "web-2", State: "available", CreationDate: old.Add(time.Hour), SnapshotIDs: []string{"snap-b", "snap-shared"}, SharesKnown: true},
		},
		Snapshots: []Snapshot{
			{ID: "snap-a", SizeGiB: 8, Description: "Created by CreateImage(i-1) for ami-00000001"},
			{ID: "snap-b", SizeGiB: 8, Description: "Created by CreateImage(i-1) for ami-00000002"},
			{ID: "snap-shared", SizeGiB: 8, Description: "Created by CreateImage(i-1) for ami-00000001"},
			{ID: "snap-kept", SizeGiB: 8, Description: "Created by CreateImage(i-1) for ami-00000001", Tags: map[string]string{p.ProtectTag: "legal hold"}},
		},
	}
	plan := MakePlan(now, inv, p)
	byID := map[string]Decision{}
	for _, d := range plan.Decisions {
		byID[d.ImageID] = d
	}
	first, second := byID["ami-00000001"], byID["ami-00000002"]
	if first.Action != ActionDeregister || second.Action != ActionDeregister {
		t.Fatalf("actions %s %s", first.Action, second.Action)
	}
	if slices.Contains(first.DeleteSnapshots, "snap-kept") || slices.Contains(second.DeleteSnapshots, "snap-kept") {
		t.Errorf("a protected snapshot is planned for deletion: %v %v", first.DeleteSnapshots, second.DeleteSnapshots)
	}
	if !slices.ContainsFunc(first.KeptSnapshots, func(s string) bool { return strings.HasPrefix(s, "snap-kept protected by tag") }) {
		t.Errorf("kept snapshots lack the protection reason: %v", first.KeptSnapshots)
	}
	owner, other := first, second
	if slices.Contains(second.DeleteSnapshots, "snap-shared") {
		owner, other = second, first
	}
	if !slices.Contains(owner.DeleteSnapshots, "snap-shared") || !slices.Equal(owner.SnapshotUsers["snap-shared"], []string{other.ImageID}) {
		t.Errorf("shared snapshot: delete %v users %v", owner.DeleteSnapshots, owner.SnapshotUsers)
	}
}

func TestPlanClearsStaleDeleteWith(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	p := policy.Default().Retention
	p.Rules = []policy.Rule{{Name: "all", KeepNewest: 0, MinAgeDays: 1}}
	inv := &Inventory{
		Images: []Image{{ID: "ami-00000001", Name: "web-1", State: "available", CreationDate: now.AddDate(0, 0, -100),
			SnapshotIDs: []string{"snap-a"}, SharesKnown: true}},
		Snapshots:  []Snapshot{{ID: "snap-a", SizeGiB: 8, Tags: map[string]string{TagDeleteWith: deleteWith("snap-a", "ami-00000001")}}},
		References: map[string][]Reference{"ami-00000001": {{Kind: RefInstance, ID: "i-1", Detail: "running"}}},
		Records:    testKey,
	}
	d := MakePlan(now, inv, p).Decisions[0]
	if d.Action != ActionKeep || !slices.Equal(d.ClearDeleteWith, []string{"snap-a"}) {
		t.Errorf("decision %+v", d)
	}
	inv.Incomplete = []string{"instances: boom"}
	if d := MakePlan(now, inv, p).Decisions[0]; len(d.ClearDeleteWith) != 0 {
		t.Errorf("a blocked plan changes nothing, not even tags: %+v", d)
	}
}
