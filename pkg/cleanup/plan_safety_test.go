package cleanup

import (
	"slices"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Regression tests for defects an adversarial review found in the planner
// (issue 7). Each failed before its fix.

// CreationDate has whole-second resolution: builds of one pipeline tie, and
// the random AMI ID used to decide which one is "newest".
func TestPlanSameSecondTiesFollowTheNameVersion(t *testing.T) {
	same := 40.0
	inv := fleet(
		ami("ami-0000000c", "web-0039", same), // AMI IDs are random: the newest build got the largest
		ami("ami-0000000b", "web-0038", same),
		ami("ami-0000000a", "web-0037", same),
	)
	p := MakePlan(now, inv, deregisterAll(func(r *policy.Retention) { r.Rules[0].KeepNewest = 1 }))
	check(t, p,
		expect{"ami-0000000c", ActionKeep, []string{"newest 1 of family web (1st)"}, nil},
		expect{"ami-0000000b", ActionDeregister, []string{"~(2nd)"}, nil},
		expect{"ami-0000000a", ActionDeregister, []string{"~(3rd)"}, nil},
	)
	// Under a cap, the oldest build goes first, whatever the IDs.
	p = MakePlan(now, fleet(ami("ami-0000000f", "web-0037", same), ami("ami-0000000e", "web-0038", same)),
		deregisterAll(func(r *policy.Retention) { r.MaxDeregistrationsPerRun = 1 }))
	check(t, p,
		expect{"ami-0000000f", ActionDeregister, nil, nil},
		expect{"ami-0000000e", ActionPending, []string{"~cap of 1 deregistrations"}, nil},
	)
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"web-0039", "web-0038", 1},
		{"web-10", "web-9", 1},
		{"web-v10", "web-v9", 1},
		{"app-1.10.0", "app-1.9.3", 1},
		{"app-2026-11-28T10-00-00Z", "app-2026-11-28T09-59-59Z", 1},
		{"web-007", "web-7", 0},
		{"web-1", "web-1", 0},
		{"web-1a", "web-1", 1},
		{"web-a", "web-1", 1},                       // letters after digits, as bytes
		{"", "web", -1},                             // a missing name sorts first
		{"web-99999999999999999999999", "web-1", 1}, // beyond int64
	}
	for _, tt := range tests {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := compareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
		}
	}
}

// AWS Backup, Data Lifecycle Manager and Image Builder lifecycle policies
// own the removal of their AMIs; a catch-all rule used to deregister the
// last two.
func TestPlanSkipsLifecycleManagedAMIs(t *testing.T) {
	inv := fleet(
		ami("ami-dlm", "dlm-1", 90, tag("aws:dlm:lifecycle-policy-id", "policy-0abc"), tag("aws:dlm:lifecycle-schedule-name", "daily")),
		ami("ami-ib1", "ib-1", 90, tag("Ec2ImageBuilderArn", "arn:aws:imagebuilder:eu-west-1:111111111111:image/web/1.0.0/1")),
		ami("ami-ib2", "ib2-1", 90, tag("CreatedBy", "EC2 Image Builder")),
		ami("ami-plain", "plain-1", 90),
	)
	p := MakePlan(now, inv, deregisterAll())
	check(t, p,
		expect{"ami-dlm", ActionSkip, []string{"managed by Data Lifecycle Manager (tag aws:dlm:lifecycle-policy-id)"}, nil},
		expect{"ami-ib1", ActionSkip, []string{"built by EC2 Image Builder (tag Ec2ImageBuilderArn); manage_image_builder_amis is off"}, nil},
		expect{"ami-ib2", ActionSkip, []string{"built by EC2 Image Builder (tag CreatedBy=EC2 Image Builder); manage_image_builder_amis is off"}, nil},
		expect{"ami-plain", ActionDeregister, nil, nil},
	)
	// Opting in hands Image Builder AMIs to the rules; DLM stays skipped.
	p = MakePlan(now, inv, deregisterAll(func(r *policy.Retention) { r.ManageImageBuilderAMIs = true }))
	check(t, p,
		expect{"ami-dlm", ActionSkip, nil, nil},
		expect{"ami-ib1", ActionDeregister, nil, nil},
		expect{"ami-ib2", ActionDeregister, nil, nil},
	)
	if ids := SharesToCheck(now, &Inventory{Images: []Image{ami("ami-dlm", "dlm-1", 90, tag("aws:dlm:x", "y"), func(im *Image) { im.SharesKnown = false })}},
		deregisterAll()); len(ids) != 0 {
		t.Errorf("SharesToCheck reads permissions of a skipped AMI: %v", ids)
	}
}

// A deprecation time or a disable the owner set is theirs: marking used to
// overwrite the deprecation and record it as ours, so the unmark removed it.
func TestPlanLeavesOwnerStagesAlone(t *testing.T) {
	deprecated := func(im *Image) { im.DeprecationTime = now.Add(30 * 24 * time.Hour) }
	stages := func(r *policy.Retention) { r.Stages = policy.Stages{Deprecate: true, Disable: true} }
	tests := []struct {
		name               string
		img                Image
		deprecate, disable bool
		reason             string
	}{
		{"owner deprecated", ami("ami-1", "web-1", 40, deprecated), false, true, "already deprecated by its owner (at 2026-12-28T12:00:00Z): left as is"},
		{"owner disabled", ami("ami-1", "web-1", 40, state("disabled")), true, false, "already disabled by its owner: left as is"},
		{"neither", ami("ami-1", "web-1", 40), true, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := MakePlan(now, fleet(tt.img, ami("ami-9", "web-9", 1)), pol(stages))
			d := find(t, p, "ami-1")
			if d.Action != ActionMark || d.Deprecate != tt.deprecate || d.Disable != tt.disable {
				t.Fatalf("action %s deprecate %v disable %v, want mark %v %v; %q", d.Action, d.Deprecate, d.Disable, tt.deprecate, tt.disable, d.Reasons)
			}
			if tt.reason != "" && !hasReason(d.Reasons, tt.reason) {
				t.Errorf("no reason %q in %q", tt.reason, d.Reasons)
			}
		})
	}
}

// The cleanup's record tags are sealed: a forged mark, stage record or
// delete-with tag (anyone with ec2:CreateTags can write one) unlocks nothing.
func TestPlanIgnoresForgedRecords(t *testing.T) {
	t.Run("a forged past mark does not skip the grace period", func(t *testing.T) {
		p := MakePlan(now, fleet(ami("ami-1", "web-1", 40, tag(TagDeleteAfter, "2000-01-01")), ami("ami-9", "web-9", 1)), pol())
		check(t, p, expect{"ami-1", ActionMark, []string{
			"marked for removal after 2026-12-05 (grace 7 days)",
			`record tag ami-housekeeper:delete-after="2000-01-01" is not sealed by the cleanup (anyone can write a tag): ignored`}, nil})
	})
	t.Run("a mark sealed for another AMI does not open", func(t *testing.T) {
		copied := testKey.Seal(TagDeleteAfter, "ami-other", "2000-01-01")
		p := MakePlan(now, fleet(ami("ami-1", "web-1", 40, tag(TagDeleteAfter, copied)), ami("ami-9", "web-9", 1)), pol())
		check(t, p, expect{"ami-1", ActionMark, nil, nil})
	})
	t.Run("forged stage records do not undo the owner's disable and deprecation", func(t *testing.T) {
		golden := ami("ami-1", "golden-1", 40, state("disabled"), tag("ami-housekeeper:keep", "cve"),
			tag(TagDisabledByUs, "true"), tag(TagDeprecatedByUs, "true"))
		p := MakePlan(now, fleet(golden), pol())
		check(t, p, expect{"ami-1", ActionKeep, []string{"~is not sealed by the cleanup"}, nil})
	})
	t.Run("sealed stage records are undone", func(t *testing.T) {
		p := MakePlan(now, fleet(ami("ami-1", "golden-1", 40, state("disabled"), tag("ami-housekeeper:keep", ""), marked("2026-11-20"), sealed(TagDisabledByUs, "2026-11-20"))), pol())
		check(t, p, expect{"ami-1", ActionUnmark, []string{"was disabled when marked (tag ami-housekeeper:disabled-by-cleanup)"}, nil})
	})
	t.Run("without the key no record is trusted", func(t *testing.T) {
		inv := fleet(ami("ami-1", "web-1", 40, marked("2026-11-01")), ami("ami-9", "web-9", 1))
		inv.Records = nil
		check(t, MakePlan(now, inv, pol()), expect{"ami-1", ActionMark, []string{"~is not sealed by the cleanup"}, nil})
	})
}

// An AMI registered from an existing snapshot (a database backup, say) must
// not take that snapshot with it: only a snapshot EC2 described as made for
// an AMI goes with one, unless the policy opts in.
func TestPlanKeepsSnapshotsNotProvenAnAMIs(t *testing.T) {
	inv := fleet(ami("ami-1", "web-1", 90, snaps("snap-made", "snap-backup")), ami("ami-9", "web-9", 1))
	for k := range inv.Snapshots {
		if inv.Snapshots[k].ID == "snap-backup" {
			inv.Snapshots[k].Description = "prod database nightly backup"
		}
	}
	p := MakePlan(now, inv, deregisterAll())
	d := find(t, p, "ami-1")
	if d.Action != ActionDeregister || !slices.Equal(d.DeleteSnapshots, []string{"snap-made"}) ||
		!hasReason(d.KeptSnapshots, "~snap-backup not proven to be an AMI's snapshot") {
		t.Fatalf("decision %+v", d)
	}
	p = MakePlan(now, inv, deregisterAll(func(r *policy.Retention) { r.DeleteUnprovenSnapshots = true }))
	if d := find(t, p, "ami-1"); !slices.Equal(d.DeleteSnapshots, []string{"snap-made", "snap-backup"}) {
		t.Fatalf("with delete_unproven_snapshots: %+v", d)
	}
}

// Write-ahead: a run that stopped between recording a stage and applying it
// left the record alone; the next run applies the stage, keeping the date.
func TestPlanResumesRecordedStages(t *testing.T) {
	stages := func(r *policy.Retention) { r.Stages = policy.Stages{Deprecate: true, Disable: true} }
	img := ami("ami-1", "web-1", 40, marked("2026-12-01"), sealed(TagDeprecatedByUs, "2026-12-01"), sealed(TagDisabledByUs, "2026-12-01"))
	p := MakePlan(now, fleet(img, ami("ami-9", "web-9", 1)), pol(stages))
	d := find(t, p, "ami-1")
	if d.Action != ActionMark || d.DeleteAfter != "2026-12-01" || !d.Deprecate || !d.Disable ||
		!hasReason(d.Reasons, "a recorded stage is not applied (an earlier run stopped before it): applied again") {
		t.Fatalf("decision %+v", d)
	}
	// Applied already: just wait.
	img.State, img.DeprecationTime = "disabled", now.Add(time.Hour)
	if d := find(t, MakePlan(now, fleet(img, ami("ami-9", "web-9", 1)), pol(stages)), "ami-1"); d.Action != ActionWait {
		t.Fatalf("decision %+v", d)
	}
}

// Enforcing, the launch permissions of what would go now are read right
// before removal (the recheck), not before planning; a mark still needs
// them first, since its stages may disable the AMI.
func TestPlanSharesAtRemoval(t *testing.T) {
	unread := func(im *Image) { im.SharesKnown = false }
	inv := fleet(ami("ami-due", "web-1", 90, unread), ami("ami-mark", "api-1", 90, unread),
		ami("ami-9", "web-9", 1), ami("ami-8", "api-9", 1))
	for k := range inv.Images {
		if inv.Images[k].ID == "ami-due" {
			sealed(TagDeleteAfter, "2026-11-01")(&inv.Images[k])
		}
	}
	inv.SharesAtRemoval = true
	p := MakePlan(now, inv, pol())
	due, mark := find(t, p, "ami-due"), find(t, p, "ami-mark")
	if due.Action != ActionDeregister || !due.CheckShares || !hasReason(due.Reasons, "launch permissions are read right before removal") {
		t.Errorf("due: %+v", due)
	}
	if mark.Action != ActionKeep || mark.CheckShares || !hasReason(mark.Reasons, "launch permissions not read: kept") {
		t.Errorf("mark: %+v", mark)
	}
	if got := SharesToCheck(now, inv, pol()); !slices.Equal(got, []string{"ami-mark"}) {
		t.Errorf("SharesToCheck = %v, want only the mark", got)
	}
	inv.SharesAtRemoval = false
	if got := SharesToCheck(now, inv, pol()); !slices.Equal(got, []string{"ami-due", "ami-mark"}) {
		t.Errorf("SharesToCheck without deferral = %v", got)
	}
}

// A sealed delete-with record is bound to its snapshot: copied onto another
// snapshot of the same AMI (one kept on purpose), it approves nothing.
func TestPlanDeleteWithCopiedToAnotherSnapshot(t *testing.T) {
	inv := fleet(ami("ami-9", "web-9", 1))
	inv.Snapshots = append(inv.Snapshots,
		Snapshot{ID: "snap-a", SizeGiB: 8, StartTime: daysAgo(30), Description: "Created by CreateImage(i-1) for ami-0x",
			Tags: map[string]string{TagDeleteWith: deleteWith("snap-a", "ami-0x")}},
		Snapshot{ID: "snap-b", SizeGiB: 8, StartTime: daysAgo(30), Description: "Created by CreateImage(i-1) for ami-0x",
			Tags: map[string]string{TagDeleteWith: deleteWith("snap-a", "ami-0x")}}) // copied from snap-a
	p := MakePlan(now, inv, pol()) // orphaned_snapshots.delete off
	if a, _ := findOrphan(p, "snap-a"); a.Action != ActionDeregister {
		t.Errorf("snap-a (its own record): %+v", a)
	}
	if b, _ := findOrphan(p, "snap-b"); b.Action != ActionKeep || !hasReason(b.Reasons, "~is not the cleanup's sealed record") {
		t.Errorf("snap-b (a copied record): %+v", b)
	}
}

// Every sealed value the cleanup wrote is in CloudTrail, so it can be
// written back later. A mark long past does not let an AMI go (it is marked
// again), and a stage record of an earlier mark undoes nothing.
func TestPlanReplayedRecords(t *testing.T) {
	t.Run("a mark more than 30 days past is marked again", func(t *testing.T) {
		p := MakePlan(now, fleet(ami("ami-1", "web-1", 400, marked("2025-04-01")), ami("ami-9", "web-9", 1)), pol())
		check(t, p, expect{"ami-1", ActionMark, []string{
			"mark 2025-04-01 is more than 30 days past (an old record may have been written back): marked again",
			"marked for removal after 2026-12-05 (grace 7 days)"}, nil})
	})
	t.Run("a mark 30 days past still holds", func(t *testing.T) {
		p := MakePlan(now, fleet(ami("ami-1", "web-1", 400, marked("2026-10-29")), ami("ami-9", "web-9", 1)), pol())
		check(t, p, expect{"ami-1", ActionDeregister, nil, nil})
	})
	t.Run("a stage record of an earlier mark undoes nothing", func(t *testing.T) {
		// Marked and disabled in 2025, unmarked; the owner disables it now;
		// someone writes back the old mark and the old record.
		golden := ami("ami-1", "golden-1", 40, state("disabled"), tag("ami-housekeeper:keep", "cve"),
			marked("2026-11-20"), sealed(TagDisabledByUs, "2025-06-01"))
		check(t, MakePlan(now, fleet(golden), pol()), expect{"ami-1", ActionUnmark, []string{
			"stage record ami-housekeeper:disabled-by-cleanup was sealed for another mark (written back?): ignored"},
			[]string{"was disabled when marked"}})
	})
}

// A plan made again after an operator confirmed an earlier one (the CLI's
// apply) changes only what was confirmed.
func TestPlanRestrict(t *testing.T) {
	inv := fleet(ami("ami-1", "web-1", 90), ami("ami-2", "web-2", 80), ami("ami-3", "web-3", 70), ami("ami-9", "web-9", 1))
	inv.Snapshots = append(inv.Snapshots, Snapshot{ID: "snap-o", SizeGiB: 5, StartTime: daysAgo(30), Description: "Created by CreateImage(i-1) for ami-gone"})
	p := deregisterAll(func(r *policy.Retention) { r.OrphanedSnapshots.Delete = true })
	shown := MakePlan(now, inv, p)
	approved := ApprovalOf(&shown)
	delete(approved.Images, "ami-2") // say ami-2 was not a candidate when shown
	approved.Orphans = map[string]bool{}
	again := MakePlan(now, inv, p)
	if n := again.Restrict(approved); n != 2 {
		t.Fatalf("kept %d, want 2%s", n, dump(again))
	}
	check(t, again,
		expect{"ami-1", ActionDeregister, nil, nil},
		expect{"ami-2", ActionKeep, []string{"not in the plan you confirmed (the account changed since): kept; run plan again", "would now deregister"}, nil},
	)
	if o, _ := findOrphan(again, "snap-o"); o.Action != ActionKeep {
		t.Errorf("orphan %+v", o)
	}
	if again.Totals.Deregister != shown.Totals.Deregister-1 || again.Totals.Keep != shown.Totals.Keep+1 {
		t.Errorf("totals not recomputed: %+v vs %+v", again.Totals, shown.Totals)
	}
}
