package cleanup

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

const (
	propertySeed   = 20261128
	propertyFleets = 10_000
)

// TestPlanProperties plans many random fleets under random policies and
// checks the safety invariants on each. Fleet i is generated from
// rand.NewPCG(propertySeed, i); a failure prints i, the fleet and the policy.
func TestPlanProperties(t *testing.T) {
	start := time.Now()
	var decisions, deregistered, deleted int
	var usageGone, usageMarked, usageHeld int // shared_usage check
	var sum Totals
	for i := range propertyFleets {
		r := rand.New(rand.NewPCG(propertySeed, uint64(i)))
		inv, p := randomFleet(r)
		plan := MakePlan(now, inv, p)
		if problems := checkInvariants(inv, p, plan); len(problems) > 0 {
			fleetJSON, _ := json.MarshalIndent(inv, "", " ")
			policyJSON, _ := json.MarshalIndent(p, "", " ")
			t.Fatalf("fleet %d (rand.NewPCG(%d, %d)):\n%s\npolicy: %s\nfleet: %s\nplan:%s",
				i, propertySeed, i, strings.Join(problems, "\n"), policyJSON, fleetJSON, dump(plan))
		}
		if again := MakePlan(now, inv, p); !reflect.DeepEqual(plan, again) {
			t.Fatalf("fleet %d (rand.NewPCG(%d, %d)): two plans of the same fleet differ", i, propertySeed, i)
		}
		for _, d := range plan.Decisions {
			switch {
			case d.Action == ActionDeregister && hasReason(d.Reasons, "~finds no account using it"):
				usageGone++
			case d.Action == ActionMark && hasReason(d.Reasons, "~finds no account using it"):
				usageMarked++
			case d.Action == ActionWait && hasReason(d.Reasons, "~stays marked until a usage report"):
				usageHeld++
			}
		}
		decisions += len(plan.Decisions)
		sum.Keep += plan.Totals.Keep
		sum.Skip += plan.Totals.Skip
		sum.Mark += plan.Totals.Mark
		sum.Unmark += plan.Totals.Unmark
		sum.Wait += plan.Totals.Wait
		sum.Pending += plan.Totals.Pending
		deregistered += plan.Totals.Deregister
		deleted += plan.Totals.SnapshotsDelete
	}
	// The generator must exercise the interesting paths, or the invariants
	// prove nothing.
	if deregistered < propertyFleets/2 || deleted < propertyFleets/2 {
		t.Errorf("generator too timid: %d deregistrations, %d snapshot deletions", deregistered, deleted)
	}
	if usageGone == 0 || usageMarked == 0 || usageHeld == 0 {
		t.Errorf("generator too timid for shared_usage check: %d deregistered, %d marked on a usage report, %d held", usageGone, usageMarked, usageHeld)
	}
	t.Logf("shared_usage check: %d deregistered, %d marked on a usage report, %d marks held", usageGone, usageMarked, usageHeld)
	t.Logf("%d fleets, %d decisions (keep %d, skip %d, mark %d, unmark %d, wait %d, pending %d, deregister %d), %d snapshot deletions in %v",
		propertyFleets, decisions, sum.Keep, sum.Skip, sum.Mark, sum.Unmark, sum.Wait, sum.Pending, deregistered, deleted, time.Since(start).Round(time.Millisecond))
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func chance(r *rand.Rand, pct int) bool { return r.IntN(100) < pct }

// randomFleet makes 0-40 images in 1-4 families with random states, tags,
// references, shared snapshots and marks, orphaned snapshots, sometimes an
// incomplete inventory, and a random policy of 1-3 rules.
func randomFleet(r *rand.Rand) (*Inventory, policy.Retention) {
	p := policy.Default().Retention
	p.GraceDays = pick(r, 0, 0, 0, 1, 7)
	p.MaxDeregistrationsPerRun = pick(r, 0, 1, 3, 10, 25, 25)
	p.MaxGiBPerRun = pick(r, 1, 100, 500, 1024, 1024)
	p.KeepShared = chance(r, 70)
	p.OrphanedSnapshots.Delete = chance(r, 50)
	p.Stages = policy.Stages{Deprecate: chance(r, 30), Disable: chance(r, 30)}
	for k := range 1 + r.IntN(3) {
		rule := policy.Rule{
			Name:                   fmt.Sprintf("rule-%d", k),
			KeepNewest:             pick(r, 0, 1, 1, 2, 3),
			MinAgeDays:             pick(r, 0, 7, 14, 30),
			KeepLaunchedWithinDays: pick(r, 0, 7, 30),
		}
		switch r.IntN(5) {
		case 0:
			rule.Match.Name = fmt.Sprintf("fam%d-*", r.IntN(4))
		case 1:
			rule.Match.Tags = map[string]string{"team": pick(r, "a", "b", "*")}
		case 2:
			rule.Match.Name = "[bad"
		}
		switch r.IntN(4) {
		case 0:
			rule.Family.Tag = "family"
		case 1:
			rule.Family.NamePattern = `^(fam\d)-`
		}
		if chance(r, 30) {
			v := chance(r, 50)
			rule.KeepShared = &v
		}
		p.Rules = append(p.Rules, rule)
	}
	if chance(r, 60) {
		p.Rules = append(p.Rules, policy.Rule{Name: "catch-all", KeepNewest: pick(r, 0, 1, 2), MinAgeDays: pick(r, 0, 14)})
	}

	inv := &Inventory{Account: "111111111111", Region: "eu-west-1", References: map[string][]Reference{}, Records: testKey}
	families := 1 + r.IntN(4)
	days := []float64{0.5, 3, 10, 13.9, 14.1, 20, 29, 31, 40, 90, 200}
	var used []string
	nextSnap := 0
	for k := range r.IntN(41) {
		fam := r.IntN(families)
		created := daysAgo(pick(r, days...) + float64(r.IntN(3))/24)
		if chance(r, 2) {
			created = time.Time{}
		}
		name := fmt.Sprintf("fam%d-%s", fam, created.Format("20060102"))
		switch r.IntN(6) {
		case 0:
			name = fmt.Sprintf("fam%d-v%d", fam, k)
		case 1:
			name = fmt.Sprintf("AwsBackup_fam%d_%d", fam, k)
			if !chance(r, 20) {
				name = fmt.Sprintf("fam%d_%d", fam, k)
			}
		}
		im := Image{
			ID:           fmt.Sprintf("ami-%04x", k),
			Name:         name,
			State:        "available",
			CreationDate: created,
			SharesKnown:  chance(r, 90),
			Public:       chance(r, 5),
			Tags:         map[string]string{},
		}
		if chance(r, 15) {
			im.State = pick(r, "disabled", "pending", "failed", "")
		}
		if chance(r, 35) {
			im.LastLaunched = daysAgo(pick(r, days...))
		}
		if im.SharesKnown && chance(r, 10) {
			im.SharedWith = []string{"222222222222"}
		}
		if chance(r, 8) {
			im.DeregistrationProtection = pick(r, "enabled", "enabled-with-cooldown", "disabled after 2026-11-29T00:00:00Z", "disabled")
		}
		if chance(r, 5) {
			im.Tags[p.ProtectTag] = ""
		}
		if chance(r, 6) {
			im.Tags[p.TimeLockTag] = pick(r, "2027-01-01", "2026-11-28T13:00:00Z", "2026-01-01", "2026-11-28", "never")
		}
		if chance(r, 3) {
			im.Tags[backupTag] = "arn"
		}
		if chance(r, 35) {
			v := pick(r, "2026-11-01", "2026-11-27", "2026-11-28", "2026-12-05", "garbage")
			if chance(r, 80) {
				v = testKey.Seal(TagDeleteAfter, im.ID, v)
			} // else forged: anyone can write a tag
			im.Tags[TagDeleteAfter] = v
		}
		if chance(r, 5) {
			markDate, _ := testKey.Open(TagDeleteAfter, im.ID, im.Tags[TagDeleteAfter])
			im.Tags[TagDisabledByUs] = pick(r, "true", testKey.Seal(TagDisabledByUs, im.ID, markDate), testKey.Seal(TagDisabledByUs, im.ID, "2025-01-01"))
		}
		if chance(r, 90) {
			im.Tags["family"] = fmt.Sprintf("f%d", fam)
		}
		if chance(r, 60) {
			im.Tags["team"] = pick(r, "a", "b")
		}
		for range 1 + r.IntN(3) {
			if len(used) > 0 && chance(r, 20) {
				im.SnapshotIDs = append(im.SnapshotIDs, pick(r, used...))
			} else {
				s := fmt.Sprintf("snap-%d", nextSnap)
				nextSnap++
				used = append(used, s)
				im.SnapshotIDs = append(im.SnapshotIDs, s)
			}
		}
		inv.Images = append(inv.Images, im)
		if chance(r, 12) {
			inv.References[im.ID] = []Reference{{Kind: pick(r, RefInstance, RefLaunchTemplate, RefSSMParameter), ID: fmt.Sprintf("x-%d", k), Detail: "running"}}
		}
	}
	inv.References["ami-ffff"] = []Reference{{Kind: RefInstance, ID: "i-gone"}}
	for _, s := range used {
		if chance(r, 90) {
			inv.Snapshots = append(inv.Snapshots, Snapshot{ID: s, SizeGiB: int64(1 + r.IntN(300)), StartTime: daysAgo(50),
				Description: "Created by CreateImage(i-1) for ami-0000"})
		}
	}
	for k := range r.IntN(6) {
		s := Snapshot{ID: fmt.Sprintf("snap-o%d", k), SizeGiB: int64(1 + r.IntN(300)), StartTime: daysAgo(pick(r, 0.5, 5, 50)), Tags: map[string]string{}}
		ami := pick(r, "ami-gone", "ami-0000", "ami-0001")
		switch r.IntN(4) {
		case 0:
			s.Description = "Created by CreateImage(i-1) for " + ami + " from vol-1"
		case 1:
			s.Description = "Copied for DestinationAmi " + ami + " from SourceAmi ami-src for SourceSnapshot snap-x"
		case 2:
			s.Tags[TagDeleteWith] = pick(r, ami, testKey.Seal(TagDeleteWith, s.ID, ami), testKey.Seal(TagDeleteWith, "snap-other", ami))
			if chance(r, 50) {
				s.Description = "Created by CreateImage(i-1) for " + pick(r, ami, "ami-other")
			}
		default:
			s.Description = "manual"
		}
		if chance(r, 20) {
			s.Tags[p.ProtectTag] = "x"
		}
		inv.Snapshots = append(inv.Snapshots, s)
	}
	if chance(r, 10) {
		inv.Incomplete = []string{"instances: throttled"}
	}
	if chance(r, 30) {
		inv.RecycleBin.ImageRetentionDays = 7
	}
	// Drawn last, so the fleets above stay as they were before the check.
	if chance(r, 30) {
		p.SharedUsage = policy.SharedUsageCheck
		if p.GraceDays == 0 && chance(r, 70) {
			p.GraceDays = pick(r, 1, 7) // the check removes nothing without a mark
		}
		inv.Usage = map[string]ImageUsage{}
		for k := range inv.Images {
			im := &inv.Images[k]
			if im.SharesKnown && len(im.SharedWith) == 0 && chance(r, 40) {
				im.SharedWith = []string{"222222222222"}
			}
			if len(im.SharedWith) > 0 && !chance(r, 10) {
				inv.Usage[im.ID] = randomUsage(r, im)
			}
		}
	}
	return inv, p
}

// randomUsage makes what the collector might have read about an AMI's usage
// reports: valid ones and every kind that must not count (narrowed, too
// shallow, too old, pending, in error, of another AMI), with or without
// users, and sometimes entries that do not match the report or an error.
func randomUsage(r *rand.Rand, im *Image) ImageUsage {
	if chance(r, 8) {
		return ImageUsage{Error: "throttled"}
	}
	var u ImageUsage
	for k := range r.IntN(4) {
		created := daysAgo(pick(r, 0.2, 2, 5, 8, 20, 40))
		rep := UsageReport{ID: fmt.Sprintf("r-%d", k), ImageID: im.ID, State: pick(r, "available", "available", "available", "pending", "error"),
			Created: created, Expires: created.Add(30 * day), ResourceTypes: []string{UsageInstance, UsageLaunchTemplate}, VersionDepth: UsageVersionDepth}
		switch r.IntN(8) {
		case 0:
			rep.AccountIDs = []string{"444444444444"}
		case 1:
			rep.ResourceTypes = []string{UsageInstance}
		case 2:
			rep.VersionDepth = pick(r, 0, 20)
		case 3:
			rep.ImageID = "ami-other"
		}
		u.Reports = append(u.Reports, rep)
	}
	// The report whose entries were read: usually the one the collector
	// would choose, sometimes another or none.
	notBefore := time.Time{}
	if v, ok := testKey.Open(TagDeleteAfter, im.ID, im.Tags[TagDeleteAfter]); ok {
		if d, err := time.Parse(DateLayout, v); err == nil && now.After(d.Add(day)) && now.Sub(d) <= 31*day {
			notBefore = d.Add(day)
		}
	}
	if use, _, _ := ChooseUsageReport(u.Reports, im.ID, notBefore, now); use != nil && chance(r, 80) {
		u.Report = use.ID
	} else if len(u.Reports) > 0 && chance(r, 50) {
		u.Report = pick(r, u.Reports...).ID
	}
	if u.Report != "" {
		for _, acct := range []string{"222222222222", "444444444444"} {
			if chance(r, 50) {
				e := UsageEntry{ReportID: u.Report, ImageID: im.ID, AccountID: acct, ResourceType: pick(r, UsageInstance, UsageLaunchTemplate), Count: pick[int64](r, 0, 0, 1, 3)}
				if chance(r, 5) {
					e.ImageID = "ami-other"
				}
				u.Entries = append(u.Entries, e)
			}
		}
	}
	return u
}

// checkInvariants checks a plan against the fleet it was made from, with
// logic written independently of the planner's.
func checkInvariants(inv *Inventory, p policy.Retention, plan Plan) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	byID := map[string]*Image{}
	for k := range inv.Images {
		byID[inv.Images[k].ID] = &inv.Images[k]
	}
	owned := map[string]int64{}
	for _, s := range inv.Snapshots {
		owned[s.ID] = s.SizeGiB
	}
	if len(plan.Decisions) != len(inv.Images) {
		bad("%d decisions for %d images", len(plan.Decisions), len(inv.Images))
	}
	action := map[string]Action{}
	for _, d := range plan.Decisions {
		if _, dup := action[d.ImageID]; dup {
			bad("%s: two decisions", d.ImageID)
		}
		action[d.ImageID] = d.Action
		if len(d.Reasons) == 0 {
			bad("%s: %s without a reason", d.ImageID, d.Action)
		}
		if d.Action != ActionDeregister && (len(d.DeleteSnapshots) > 0) {
			bad("%s: %s deletes snapshots %v", d.ImageID, d.Action, d.DeleteSnapshots)
		}
	}

	// Images that must not go: removal covers every step towards it.
	removal := func(a Action) bool {
		return a == ActionMark || a == ActionDeregister || a == ActionWait || a == ActionPending
	}
	now := plan.Now
	for k := range inv.Images {
		im := &inv.Images[k]
		a := action[im.ID]
		if !removal(a) {
			continue
		}
		if refs := inv.References[im.ID]; len(refs) > 0 {
			bad("%s: %s although %s", im.ID, a, refs[0])
		}
		if _, ok := im.Tags[p.ProtectTag]; ok {
			bad("%s: %s although protected", im.ID, a)
		}
		if v, ok := im.Tags[p.TimeLockTag]; ok {
			t, err := time.Parse(DateLayout, v)
			if err != nil {
				t, err = time.Parse(time.RFC3339, v)
			}
			if err != nil || now.Before(t) {
				bad("%s: %s although time-locked (%q)", im.ID, a, v)
			}
		}
		if im.State != "available" && im.State != "disabled" {
			bad("%s: %s although state %q", im.ID, a, im.State)
		}
		if _, ok := im.Tags[backupTag]; ok || strings.HasPrefix(im.Name, "AwsBackup") {
			bad("%s: %s although managed by AWS Backup", im.ID, a)
		}
		if v := im.DeregistrationProtection; v != "" && v != "disabled" {
			bad("%s: %s although deregistration protection is %q", im.ID, a, v)
		}
		if im.CreationDate.IsZero() {
			bad("%s: %s with an unknown creation date", im.ID, a)
		}
	}

	// keep_newest, by an independent ranking.
	type group struct {
		rule   int
		family string
	}
	groups := map[group][]*Image{}
	for k := range inv.Images {
		im := &inv.Images[k]
		ri := firstRule(p.Rules, im)
		if ri < 0 || (im.State != "available" && im.State != "disabled") {
			continue
		}
		fam, ok := FamilyOf(im, p.Rules[ri])
		if !ok {
			if removal(action[im.ID]) {
				bad("%s: %s although its family is unknown", im.ID, action[im.ID])
			}
			continue
		}
		g := group{ri, fam}
		groups[g] = append(groups[g], im)
	}
	for g, ims := range groups {
		slices.SortFunc(ims, func(a, b *Image) int {
			return cmp.Or(b.CreationDate.Compare(a.CreationDate), naturalOrder(b.Name, a.Name), strings.Compare(a.ID, b.ID))
		})
		for n, im := range ims[:min(len(ims), p.Rules[g.rule].KeepNewest)] {
			if removal(action[im.ID]) {
				bad("%s: %s although newest %d of (%s, %s)", im.ID, action[im.ID], n+1, p.Rules[g.rule].Name, g.family)
			}
		}
	}

	// Snapshots: deleted only when owned, once, and used by no image that stays.
	deleted := map[string]int{}
	var gib int64
	for _, d := range plan.Decisions {
		for _, s := range d.DeleteSnapshots {
			deleted[s]++
			gib += owned[s]
		}
	}
	for _, o := range plan.Orphans {
		if o.Action == ActionDeregister {
			deleted[o.SnapshotID]++
			gib += owned[o.SnapshotID]
		}
		if o.Action != ActionKeep && o.Action != ActionDeregister && o.Action != ActionPending {
			bad("orphan %s: action %s", o.SnapshotID, o.Action)
		}
	}
	desc := map[string]*Snapshot{}
	for k := range inv.Snapshots {
		desc[inv.Snapshots[k].ID] = &inv.Snapshots[k]
	}
	for s, n := range deleted {
		if n > 1 {
			bad("%s deleted %d times", s, n)
		}
		// Only a snapshot EC2 described as made for an AMI may go (the
		// policy does not opt into unproven ones here), whatever its tags.
		if sn := desc[s]; sn != nil && !strings.HasPrefix(sn.Description, "Created by CreateImage(") && !strings.HasPrefix(sn.Description, "Copied for DestinationAmi ") {
			bad("%s deleted but not proven an AMI's snapshot (description %q, tags %v)", s, sn.Description, sn.Tags)
		}
		if _, ok := owned[s]; !ok {
			bad("%s deleted but not owned", s)
		}
	}
	for k := range inv.Images {
		im := &inv.Images[k]
		if action[im.ID] == ActionDeregister {
			continue
		}
		for _, s := range im.SnapshotIDs {
			if deleted[s] > 0 {
				bad("%s deleted although %s (%s) uses it", s, im.ID, action[im.ID])
			}
		}
	}
	for _, s := range inv.Snapshots {
		if _, ok := s.Tags[p.ProtectTag]; ok && deleted[s.ID] > 0 {
			bad("%s deleted although protected", s.ID)
		}
	}

	// Caps and totals.
	if n := plan.Totals.Deregister; n > max(p.MaxDeregistrationsPerRun, 0) {
		bad("%d deregistrations, cap %d", n, p.MaxDeregistrationsPerRun)
	}
	if plan.Totals.GiBFreed > int64(p.MaxGiBPerRun) {
		bad("%d GiB freed, cap %d", plan.Totals.GiBFreed, p.MaxGiBPerRun)
	}
	if plan.Totals.GiBFreed != gib || plan.Totals.SnapshotsDelete != len(deleted) {
		bad("totals say %d snapshots / %d GiB, decisions say %d / %d", plan.Totals.SnapshotsDelete, plan.Totals.GiBFreed, len(deleted), gib)
	}

	// Marks: a kept image keeps no mark (unless the run is blocked); a wait
	// has a valid future mark.
	for k := range inv.Images {
		im := &inv.Images[k]
		v, marked := testKey.Open(TagDeleteAfter, im.ID, im.Tags[TagDeleteAfter])
		a := action[im.ID]
		if marked && (a == ActionKeep || a == ActionSkip) && len(inv.Incomplete) == 0 {
			bad("%s: %s but stays marked", im.ID, a)
		}
		if a == ActionWait {
			// A mark whose date passed stays only while a shared AMI's
			// usage is unknown (shared_usage check).
			t, err := time.Parse(DateLayout, v)
			held := p.SharedUsage == policy.SharedUsageCheck && len(im.SharedWith) > 0
			if err != nil || (t.Before(now.UTC().Truncate(day)) && !held) {
				bad("%s: waits on mark %q", im.ID, v)
			}
		}
	}

	// shared_usage check: a shared AMI (accounts, organizations, OUs) goes
	// towards removal only on a report that counts and names no user: EC2's
	// complete answer (available, this AMI, all accounts, instances and
	// launch templates at full depth, not expired), read in full, and for a
	// deregistration created after its mark's date. It is never disabled.
	for k := range inv.Images {
		im := &inv.Images[k]
		ri := firstRule(p.Rules, im)
		a := action[im.ID]
		if p.SharedUsage != policy.SharedUsageCheck || ri < 0 || !im.SharesKnown || len(im.SharedWith) == 0 || im.Public ||
			(a != ActionMark && a != ActionDeregister && a != ActionPending) {
			continue
		}
		keepShared := p.KeepShared
		if ks := p.Rules[ri].KeepShared; ks != nil {
			keepShared = *ks
		}
		if !keepShared {
			continue
		}
		if p.GraceDays <= 0 {
			bad("%s: %s, shared, with shared_usage check and grace 0", im.ID, a)
			continue
		}
		u, ok := inv.Usage[im.ID]
		var rep *UsageReport
		for j := range u.Reports {
			if u.Reports[j].ID == u.Report {
				rep = &u.Reports[j]
			}
		}
		if !ok || u.Error != "" || rep == nil {
			bad("%s: %s, shared, without a usage report read (%+v)", im.ID, a, u)
			continue
		}
		if rep.State != "available" || rep.ImageID != im.ID || len(rep.AccountIDs) > 0 || !slices.Contains(rep.ResourceTypes, UsageInstance) ||
			!slices.Contains(rep.ResourceTypes, UsageLaunchTemplate) || rep.VersionDepth < 10000 || rep.Created.After(now) || !now.Before(rep.Expires) {
			bad("%s: %s, shared, on a usage report that does not count: %+v", im.ID, a, *rep)
		}
		for _, e := range u.Entries {
			if e.ReportID != rep.ID || e.ImageID != im.ID || e.Count > 0 {
				bad("%s: %s, shared, although usage report %s has entry %+v", im.ID, a, rep.ID, e)
			}
		}
		if a != ActionMark {
			v, _ := testKey.Open(TagDeleteAfter, im.ID, im.Tags[TagDeleteAfter])
			d, err := time.Parse(DateLayout, v)
			if err != nil || rep.Created.Before(d.Add(day)) {
				bad("%s: %s, shared, on usage report %s created %s, not after its mark %q", im.ID, a, rep.ID, rep.Created, v)
			}
		}
		for _, d := range plan.Decisions {
			if d.ImageID == im.ID && d.Disable {
				bad("%s: shared under shared_usage check, disabled by its mark", im.ID)
			}
		}
	}

	// An incomplete inventory changes nothing.
	if len(inv.Incomplete) > 0 {
		if plan.Blocked == "" {
			bad("incomplete inventory, plan not blocked")
		}
		for _, d := range plan.Decisions {
			switch d.Action {
			case ActionMark, ActionDeregister, ActionUnmark, ActionPending:
				bad("%s: %s with an incomplete inventory", d.ImageID, d.Action)
			}
		}
		if len(deleted) > 0 {
			bad("snapshots deleted with an incomplete inventory")
		}
	}
	return problems
}

// firstRule is an independent reading of rule matching.
func firstRule(rules []policy.Rule, im *Image) int {
	for k, r := range rules {
		if ok, err := path.Match(r.Match.Name, im.Name); r.Match.Name != "" && (err != nil || !ok) {
			continue
		}
		match := true
		for tk, tv := range r.Match.Tags {
			if v, ok := im.Tags[tk]; !ok || (tv != "*" && v != tv) {
				match = false
			}
		}
		if match {
			return k
		}
	}
	return -1
}

// naturalOrder is the test's own version order of names (digit runs as
// numbers), written apart from the planner's so the check is independent.
func naturalOrder(a, b string) int {
	re := regexp.MustCompile(`\d+|\D+`)
	ta, tb := re.FindAllString(a, -1), re.FindAllString(b, -1)
	for k := 0; k < len(ta) && k < len(tb); k++ {
		x, xok := new(big.Int).SetString(ta[k], 10)
		y, yok := new(big.Int).SetString(tb[k], 10)
		if xok && yok {
			if c := x.Cmp(y); c != 0 {
				return c
			}
			continue
		}
		if c := strings.Compare(ta[k], tb[k]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(ta), len(tb))
}
