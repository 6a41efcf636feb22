package cleanup

import (
	"slices"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

const (
	protectKey = "ami-housekeeper:keep"
	lockKey    = "ami-housekeeper:do-not-touch-before"
	variantWhy = " (matches protect_tag " + protectKey + " ignoring case/spaces)"
	lockWhy    = ", matches time_lock_tag " + lockKey + " ignoring case/spaces"
)

func TestTagKeysLike(t *testing.T) {
	tags := map[string]string{"b": "", " AMI-Housekeeper:Keep": "", "ami-housekeeper:keep": "", "AMI-HOUSEKEEPER:KEEP": "",
		"ami-housekeeper:keeper": "", "ami-housekeeper-keep": "", "ami-housekeeper: keep": ""}
	want := []string{"ami-housekeeper:keep", " AMI-Housekeeper:Keep", "AMI-HOUSEKEEPER:KEEP"} // exact first, then sorted
	if got := tagKeysLike(tags, protectKey); !slices.Equal(got, want) {
		t.Errorf("tagKeysLike = %q, want %q", got, want)
	}
	if got := tagKeysLike(map[string]string{"x": ""}, protectKey); got != nil {
		t.Errorf("no match: %q", got)
	}
}

// A keep tag written with another case or stray spaces is what its author
// meant: IAM's deny matches it ignoring case, so planning the AMI would
// only make every deregistration fail. Near misses (another key) do not
// keep. Each AMI is the older of a family of two, otherwise a candidate.
func TestKeepTagVariantsKeep(t *testing.T) {
	tests := []struct {
		name string
		img  Image
		want expect
	}{
		{"protect tag exact", ami("ami-1", "web-1", 40, tag(protectKey, "")),
			expect{"ami-1", ActionKeep, []string{"protected by tag " + protectKey}, nil}},
		{"protect tag, other case", ami("ami-1", "web-1", 40, tag("AMI-Housekeeper:Keep", "")),
			expect{"ami-1", ActionKeep, []string{`protected by tag "AMI-Housekeeper:Keep"` + variantWhy}, nil}},
		{"protect tag, spaces and a value", ami("ami-1", "web-1", 40, tag(" ami-housekeeper:keep ", "CHG-42")),
			expect{"ami-1", ActionKeep, []string{`protected by tag " ami-housekeeper:keep "="CHG-42"` + variantWhy}, nil}},
		{"protect tag exact and a variant: the exact one is named", ami("ami-1", "web-1", 40, tag("AMI-HOUSEKEEPER:KEEP", ""), tag(protectKey, "x")),
			expect{"ami-1", ActionKeep, []string{`protected by tag ` + protectKey + ` ("x")`}, []string{"ignoring case"}}},
		{"a marked AMI protected by a variant is unmarked", ami("ami-1", "web-1", 40, marked("2026-11-20"), tag("Ami-Housekeeper:KEEP", "")),
			expect{"ami-1", ActionUnmark, []string{`protected by tag "Ami-Housekeeper:KEEP"` + variantWhy}, nil}},
		{"not a variant: another key", ami("ami-1", "web-1", 40, tag("ami-housekeeper:keeper", ""), tag("ami-housekeeper-keep", ""), tag("ami-housekeeper: keep", "")),
			expect{"ami-1", ActionMark, nil, []string{"protected"}}},
		{"time lock, other case", ami("ami-1", "web-1", 40, tag("AMI-Housekeeper:Do-Not-Touch-Before", "2027-01-01")),
			expect{"ami-1", ActionKeep, []string{`time-locked until 2027-01-01 (tag "AMI-Housekeeper:Do-Not-Touch-Before"` + lockWhy + `)`}, nil}},
		{"time lock, spaces, not a date", ami("ami-1", "web-1", 40, tag(" ami-housekeeper:do-not-touch-before", "someday")),
			expect{"ami-1", ActionKeep, []string{`time-lock tag value "someday" is not a date (tag " ami-housekeeper:do-not-touch-before"` + lockWhy + `): kept to be safe`}, nil}},
		{"time lock exact expired, a variant holds", ami("ami-1", "web-1", 40, tag(lockKey, "2026-01-01"), tag("AMI-HOUSEKEEPER:DO-NOT-TOUCH-BEFORE", "2027-06-01")),
			expect{"ami-1", ActionKeep, []string{`time-locked until 2027-06-01 (tag "AMI-HOUSEKEEPER:DO-NOT-TOUCH-BEFORE"` + lockWhy + `)`}, nil}},
		{"time lock variant expired", ami("ami-1", "web-1", 40, tag("AMI-Housekeeper:Do-Not-Touch-Before", "2026-01-01")),
			expect{"ami-1", ActionMark, []string{"time lock 2026-01-01 expired"}, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := MakePlan(now, fleet(tt.img, ami("ami-2", "web-2", 1)), pol())
			check(t, p, tt.want)
		})
	}
}

// The same for the snapshots: an orphan, and the snapshot of an AMI that
// goes, carrying a variant of the protect tag are kept.
func TestKeepTagVariantsKeepSnapshots(t *testing.T) {
	inv := fleet(ami("ami-1", "web-1", 40, snaps("snap-a", "snap-b")))
	for i := range inv.Snapshots {
		if inv.Snapshots[i].ID == "snap-b" {
			inv.Snapshots[i].Tags = map[string]string{"AMI-Housekeeper:Keep": "db"}
		}
	}
	inv.Snapshots = append(inv.Snapshots, Snapshot{ID: "snap-o", SizeGiB: 8, State: "completed", StartTime: daysAgo(30),
		Description: "Created by CreateImage(i-0abc) for ami-0gone", Tags: map[string]string{"ami-housekeeper:KEEP ": ""}})
	p := MakePlan(now, inv, deregisterAll(func(r *policy.Retention) { r.OrphanedSnapshots.Delete = true }))
	d := find(t, p, "ami-1")
	if d.Action != ActionDeregister || !slices.Equal(d.DeleteSnapshots, []string{"snap-a"}) ||
		!slices.Equal(d.KeptSnapshots, []string{`snap-b protected by tag "AMI-Housekeeper:Keep"` + variantWhy}) {
		t.Errorf("%s del=%v kept=%q", d.Action, d.DeleteSnapshots, d.KeptSnapshots)
	}
	o, ok := findOrphan(p, "snap-o")
	if !ok || o.Action != ActionKeep || !slices.Contains(o.Reasons, `protected by tag "ami-housekeeper:KEEP "`+variantWhy) {
		t.Errorf("orphan %+v%s", o, dump(p))
	}
}

// The look right before removal reads the tags the same way.
func TestRecheckKeepTagVariants(t *testing.T) {
	planned := Decision{ImageID: "ami-1", Action: ActionDeregister, DeleteAfter: "2026-11-20"}
	for _, tt := range []struct {
		name string
		img  Image
		want string
	}{
		{"protect variant", ami("ami-1", "web-1", 40, marked("2026-11-20"), tag("AMI-Housekeeper:Keep", "ops")),
			`protected by tag "AMI-Housekeeper:Keep"="ops"` + variantWhy + " (since the plan)"},
		{"time lock variant", ami("ami-1", "web-1", 40, marked("2026-11-20"), tag(" AMI-housekeeper:do-not-touch-before", "2027-01-01")),
			`time-locked until 2027-01-01 (tag " AMI-housekeeper:do-not-touch-before"` + lockWhy + `) (since the plan)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := RecheckReasons(now, planned, &tt.img, nil, pol(), testKey)
			if !slices.Equal(got, []string{tt.want}) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
