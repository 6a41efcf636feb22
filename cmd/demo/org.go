package main

// Part 5: one central deployment across an organization. A second moto
// server holds the organization (emulator.OrgSweep, the world test/org
// runs in): the real dispatcher binary sends one unit per account × region
// to the FIFO units queue, an event source mapping feeds them to two
// cleanup binaries in organization mode, each unit runs in its account
// through the member role, and the last one publishes the sweep's summary.
// Every call of the functions goes through the fault proxy, which refuses
// one member's role as STS refuses a role that is missing. Then one event
// from a member account goes through the tagger in organization mode.
// Every result printed is also checked: a wrong one fails the demo.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

const (
	orgRole     = "ami-housekeeper-member"
	orgSchedule = `{"job":"cleanup","time":"2026-11-29T03:00:00Z"}`
	orgSweepID  = "cleanup/2026-11-29T03:00:00Z"
	orgForged   = "999988887777" // in no organization
	orgRegion2  = "eu-west-1"
	// orgWorkers is the cleanup's instances (the mapping's maximum
	// concurrency).
	orgWorkers = 2
)

// orgRegions are the scope's regions, sorted.
var orgRegions = []string{orgRegion2, region}

// orgAccount is one account of the demo's organization and what the sweep
// must do there.
type orgAccount struct {
	name, ou string
	// ages of its AMIs app-<name>-v1, v2, ..., in days, oldest first.
	ages []int
	// removed are the indexes into ages the sweep removes.
	removed []int
	// refused: the proxy refuses its member role.
	refused bool
	// audit: its OU's override makes the cleanup report only; wouldRemove
	// are the indexes it reports.
	audit       bool
	wouldRemove []int
	id          string
}

// orgAccounts: the central (management) account in the root, two members
// in OU workloads (analytics' member role is missing), one in OU sandbox.
// The rule keeps the newest AMI and any younger than 7 days.
func orgAccounts() []*orgAccount {
	return []*orgAccount{
		{name: "central", ages: []int{60, 3}, removed: []int{0}},
		{name: "payments", ou: "workloads", ages: []int{400, 90, 2}, removed: []int{0, 1}},
		{name: "analytics", ou: "workloads", ages: []int{400, 90, 2}, refused: true},
		{name: "playground", ou: "sandbox", ages: []int{400, 90, 2}, audit: true, wouldRemove: []int{0, 1}},
	}
}

func (a *orgAccount) amiName(i int) string { return fmt.Sprintf("app-%s-v%d", a.name, i+1) }

// amiID is stable per account: OrgAMIID over the account's index.
func (a *orgAccount) amiID(i int) string { return emulator.OrgAMIID(a.id, i) }

// problems collects what did not come out as the demo says; any fails it.
type problems []string

func (p *problems) expect(ok bool, format string, args ...any) {
	if !ok {
		*p = append(*p, fmt.Sprintf(format, args...))
	}
}

func (p problems) err(what string) error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %d results differ from what the demo shows:\n  %s", what, len(p), strings.Join(p, "\n  "))
}

func organization(ctx context.Context) (err error) {
	say("\n== Part 5: across an organization ==")
	start := time.Now()
	accounts := orgAccounts()
	spec := emulator.OrgSpec{OUs: []emulator.OUSpec{{Name: "workloads"}, {Name: "sandbox"}}}
	var refused []string
	for _, a := range accounts[1:] {
		spec.Accounts = append(spec.Accounts, emulator.AccountSpec{Name: a.name, OU: a.ou})
		if a.refused {
			refused = append(refused, a.name)
		}
	}
	now := time.Now().UTC()
	seedAMIs := func(seed *emulator.OrgSeed) []emulator.SeedAMI {
		var all []emulator.SeedAMI
		for _, a := range accounts {
			a.id = seed.Management
			if a.name != "central" {
				a.id = seed.Accounts[a.name]
			}
			for i, days := range a.ages {
				all = append(all, emulator.SeedAMI{ID: a.amiID(i), Name: a.amiName(i), Owner: a.id, Created: now.AddDate(0, 0, -days)})
			}
		}
		return all
	}
	say("Starting a second moto server holding an organization, and the fault proxy the functions call through ...")
	w, err := emulator.StartOrgSweep(ctx, emulator.OrgSweepOptions{Region: region, Spec: spec, AMIs: seedAMIs, RoleName: orgRole,
		Refused: refused, LedgerTable: "ami-housekeeper-ledger", UnitsQueue: "ami-housekeeper-cleanup-units.fifo",
		Visibility: 60 * time.Second, MaxReceive: 3})
	if err != nil {
		return err
	}
	defer w.Stop()
	if w.Seed.Management != account {
		return fmt.Errorf("the organization's management account is %s, want the central account %s", w.Seed.Management, account)
	}
	ouName := map[string]string{w.Seed.RootID: "root"}
	for n, id := range w.Seed.OUs {
		ouName[id] = n
	}
	byID := map[string]*orgAccount{}
	for _, a := range accounts {
		byID[a.id] = a
	}
	scope := org.Scope{OUs: []string{w.Seed.OUs["workloads"], w.Seed.OUs["sandbox"]}, Accounts: []string{account}, Regions: orgRegions}
	policy := emulator.OrgSweepPolicy(w.Seed.OUs["sandbox"])

	say("Organization %s, managed by the central account %s, where the stack runs:", w.Seed.OrgID, account)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ACCOUNT\tNAME\tOU\tREACHED THROUGH\tAMIs (the same in both regions), age in days")
	for _, a := range accounts {
		ou, how := a.ou, "role "+orgRole
		if ou == "" {
			ou, how = "root", "its own credentials (home account)"
		}
		if a.refused {
			how = "role " + orgRole + ": refused by STS"
		}
		var amis []string
		for i, d := range a.ages {
			amis = append(amis, fmt.Sprintf("%s %d", a.amiName(i), d))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", a.id, a.name, ou, how, strings.Join(amis, ", "))
	}
	_ = tw.Flush()
	say("Scope: OUs workloads (%s) and sandbox (%s) and the central account (in the root, %s), in %s.",
		scope.OUs[0], scope.OUs[1], w.Seed.RootID, strings.Join(orgRegions, " and "))
	say("Policy: rule \"app\" keeps the newest 1 of app-* and anything younger than 7 days, mode enforce,")
	say("grace_days 0; override \"sandbox-audits\" for OU sandbox: retention mode audit (report only).")

	env, err := w.Env(ctx, scope, policy)
	if err != nil {
		return err
	}
	var ries []*emulator.RIE
	defer func() {
		for _, r := range ries {
			r.Stop()
		}
	}()
	startFn := func(function string) (*emulator.RIE, error) {
		r, err := w.Start(ctx, function, env)
		if err == nil {
			ries = append(ries, r)
		}
		return r, err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, keepLogs(ries))
		}
	}()

	// Snapshots of the AMIs the sweep removes: they go with them.
	staleSnaps := map[string][]string{} // account/region -> snapshot IDs
	for _, a := range accounts {
		for _, r := range orgRegions {
			c, err := w.EC2(ctx, a.id, r)
			if err != nil {
				return err
			}
			for _, i := range a.removed {
				snaps, err := emulator.Seeder{EC2: c}.Snapshots(ctx, a.amiID(i))
				if err != nil || len(snaps) != 1 {
					return fmt.Errorf("snapshots of %s in %s/%s: %v %w", a.amiID(i), a.name, r, snaps, err)
				}
				staleSnaps[a.id+"/"+r] = append(staleSnaps[a.id+"/"+r], snaps...)
			}
		}
	}

	var bad problems
	wantUnits := len(accounts) * len(orgRegions)
	dispatcher, err := startFn("dispatcher")
	if err != nil {
		return err
	}
	say("\nThe schedule invokes the dispatcher binary with %s ...", orgSchedule)
	d, err := emulator.Dispatch(ctx, dispatcher, orgSchedule)
	if err != nil {
		return err
	}
	say("  -> sweep %v: %v units (%d accounts × %d regions) sent to the FIFO units queue, one message group per account/region",
		d["sweep"], d["sent"], len(accounts), len(orgRegions))
	bad.expect(d["sweep"] == orgSweepID && d["units"] == float64(wantUnits) && d["sent"] == float64(wantUnits),
		"dispatch %v; want %d units of %s sent", d, wantUnits, orgSweepID)

	var workers []*emulator.RIE
	for range orgWorkers {
		r, err := startFn("cleanup")
		if err != nil {
			return err
		}
		workers = append(workers, r)
	}
	say("An event source mapping (batch size 1, at most %d instances of the cleanup binary) drains the queue ...", orgWorkers)
	drained := time.Now()
	e, err := w.Drain(ctx, w.Units.URL, workers, 2*time.Minute)
	if err != nil {
		return err
	}
	t := e.Totals()
	dlq, err := emulator.QueueDepthOf(ctx, w.SQS, w.Units.DLQURL)
	if err != nil {
		return err
	}
	say("  drained in %.1f s: %d invocations, %d units, %d retried, %d in the DLQ", time.Since(drained).Seconds(), t.Invocations, t.Records, t.Failures, dlq.Total())
	bad.expect(t.Records == wantUnits && t.Deleted == wantUnits && t.Failures == 0 && t.Errors == 0 && dlq.Total() == 0,
		"mapping totals %+v, DLQ %s; want %d units each run once", t, dlq, wantUnits)

	// The units, from the ledger (the central account's DynamoDB), with
	// the mode each ran in and what it planned (its "AMI Cleanup Report").
	results, err := w.Ledger.Results(ctx, orgSweepID)
	if err != nil {
		return err
	}
	reports, err := cleanupReports(ctx, w)
	if err != nil {
		return err
	}
	// In the demo's account order (moto draws the IDs), then by region.
	order := map[string]int{}
	for i, a := range accounts {
		order[a.id] = i
	}
	sort.SliceStable(results, func(i, j int) bool {
		a, b := results[i].Unit, results[j].Unit
		if order[a.Account] != order[b.Account] {
			return order[a.Account] < order[b.Account]
		}
		return a.Region < b.Region
	})
	say("\nThe units, as the ledger recorded them (the mode and the plan from each unit's report):")
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ACCOUNT\tNAME\tREGION\tOU\tSTATUS\tMODE\tAMIs SEEN\tREMOVED\tSNAPSHOTS DELETED")
	seen := map[string]bool{}
	for _, r := range results {
		a := byID[r.Unit.Account]
		name := "?"
		if a != nil {
			name = a.name
		}
		rep, hasRep := reports[r.Unit.Account+"/"+r.Unit.Region]
		mode, removed := "-", fmt.Sprint(r.Deregistered)
		if hasRep {
			mode = rep.Mode
			if rep.Mode == "audit" {
				removed = fmt.Sprintf("0 (would %d)", rep.Totals.Deregister)
			}
		}
		seenN, snaps := fmt.Sprint(r.AMIsSeen), fmt.Sprint(r.SnapshotsDeleted)
		if r.Status == fanout.StatusUnreachable {
			seenN, removed, snaps = "-", "-", "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Unit.Account, name, r.Unit.Region, ouName[r.Unit.OU], r.Status, mode,
			seenN, removed, snaps)
		seen[r.Unit.Account+"/"+r.Unit.Region] = true
		if a == nil {
			bad.expect(false, "unit %s of an account not in the demo's organization", r.Unit.ID())
			continue
		}
		switch {
		case a.refused:
			bad.expect(r.Status == fanout.StatusUnreachable && strings.Contains(r.Reason, "AccessDenied") && strings.Contains(r.Reason, w.RoleARN(a.id)) && !hasRep,
				"%s in %s: %s %q (report %v); want unreachable, its role %s refused", a.name, r.Unit.Region, r.Status, r.Reason, hasRep, w.RoleARN(a.id))
		case a.audit:
			bad.expect(r.Status == fanout.StatusDone && hasRep && rep.Mode == "audit" && rep.Totals.Deregister == len(a.wouldRemove) && r.Deregistered == 0 && r.AMIsSeen == len(a.ages),
				"%s in %s: %s, %s; want done in audit, %d AMIs seen, %d to remove reported, none removed", a.name, r.Unit.Region, unitLine(r), reportLine(rep, hasRep),
				len(a.ages), len(a.wouldRemove))
		default:
			bad.expect(r.Status == fanout.StatusDone && hasRep && rep.Mode == "enforce" && r.Deregistered == len(a.removed) && r.SnapshotsDeleted == len(a.removed) && r.AMIsSeen == len(a.ages),
				"%s in %s: %s, %s; want done in enforce, %d AMIs seen, %d removed with their snapshots", a.name, r.Unit.Region, unitLine(r), reportLine(rep, hasRep),
				len(a.ages), len(a.removed))
		}
	}
	_ = tw.Flush()
	for _, a := range accounts {
		for _, r := range orgRegions {
			bad.expect(seen[a.id+"/"+r], "no unit recorded for %s in %s", a.name, r)
		}
		if a.refused {
			say("%s (%s) is unreachable in both regions: STS refused AssumeRole of %s (AccessDenied;", a.name, a.id, w.RoleARN(a.id))
			say("the full reason is in the summary below). Its units are recorded, not retried; the other accounts complete.")
		}
	}

	// What moto holds now, account by account: the truth the table claims.
	say("\nWhat changed, read back from each account's EC2 (in moto):")
	for _, a := range accounts {
		for _, r := range orgRegions {
			c, err := w.EC2(ctx, a.id, r)
			if err != nil {
				return err
			}
			left, err := emulator.OwnedImages(ctx, c)
			if err != nil {
				return err
			}
			var gone, want []string
			for i := range a.ages {
				if slices.Contains(a.removed, i) {
					continue
				}
				want = append(want, a.amiID(i))
			}
			for i := range a.ages {
				if !slices.Contains(left, a.amiID(i)) {
					gone = append(gone, fmt.Sprintf("%s (%s, %d days)", a.amiID(i), a.amiName(i), a.ages[i]))
				}
			}
			what := "removed " + strings.Join(gone, ", ") + " and its snapshot"
			if len(gone) > 1 {
				what = "removed " + strings.Join(gone, ", ") + " and their snapshots"
			}
			switch {
			case a.refused:
				what = "nothing: unreachable"
			case a.audit:
				var would, wantWould []string
				for _, dec := range reports[a.id+"/"+r].Decisions {
					if dec.Action == "deregister" {
						would = append(would, dec.ImageID)
					}
				}
				for _, i := range a.wouldRemove {
					wantWould = append(wantWould, a.amiID(i))
				}
				slices.Sort(would)
				bad.expect(slices.Equal(would, wantWould), "%s in %s: the audit would deregister %v; want %v", a.name, r, would, wantWould)
				var named []string
				for i := range a.ages {
					if slices.Contains(would, a.amiID(i)) {
						named = append(named, fmt.Sprintf("%s (%s, %d days)", a.amiID(i), a.amiName(i), a.ages[i]))
					}
				}
				what = "nothing (the sandbox override: audit); its report would deregister " + strings.Join(named, ", ")
			case len(gone) == 0:
				what = "nothing"
			}
			say("  %-10s %-9s %s; AMIs left: %d", a.name, r, what, len(left))
			bad.expect(slices.Equal(left, want), "%s in %s owns %v; want %v", a.name, r, left, want)
			for _, s := range staleSnaps[a.id+"/"+r] {
				_, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{s}})
				bad.expect(err != nil, "snapshot %s of a removed AMI of %s in %s is still there", s, a.name, r)
			}
		}
	}

	// The summary: published once, by the worker that recorded the last unit.
	events, err := emulator.ReceiveAll(ctx, w.SQS, w.Summaries)
	if err != nil {
		return err
	}
	if len(events) != 1 {
		return errors.Join(bad.err("organization sweep"), fmt.Errorf("%d summary events on the central bus, want 1", len(events)))
	}
	var ev struct {
		Detail fanout.Summary `json:"detail"`
	}
	if err := json.Unmarshal([]byte(events[0]), &ev); err != nil {
		return fmt.Errorf("summary event %s: %w", events[0], err)
	}
	s := ev.Detail
	say("\nThe sweep's summary: one \"%s\" event on the central bus; the topic gets this text:", fanout.DetailTypeSummary)
	for _, line := range strings.Split(strings.TrimRight(s.Text(), "\n"), "\n") {
		say("  | %s", line)
	}
	removed, seenAMIs := 0, 0
	var unreachable []string
	for _, a := range accounts {
		switch {
		case a.refused:
			unreachable = append(unreachable, a.id, a.id)
		default:
			removed += len(a.removed) * len(orgRegions)
			seenAMIs += len(a.ages) * len(orgRegions)
		}
	}
	var gotUnreachable []string
	for _, p := range s.Unreachable {
		gotUnreachable = append(gotUnreachable, p.Account)
	}
	tot := s.Totals
	bad.expect(s.Sweep == orgSweepID && s.Complete && s.Expected == wantUnits && tot.Units == wantUnits && tot.Done == wantUnits-len(unreachable) &&
		tot.Unreachable == len(unreachable) && tot.Failed == 0 && tot.Partial == 0 && tot.Deregistered == removed && tot.SnapshotsDeleted == removed &&
		tot.AMIsSeen == seenAMIs && slices.Equal(gotUnreachable, unreachable) && slices.Equal(s.Regions, orgRegions),
		"summary %s %+v (complete %v, expected %d, unreachable %v, regions %v); want %d units, %d unreachable, %d removed of %d seen",
		s.Sweep, tot, s.Complete, s.Expected, gotUnreachable, s.Regions, wantUnits, len(unreachable), removed, seenAMIs)
	if lines, err := emulator.LogLines("dispatch", dispatcher); err == nil && len(lines) > 0 {
		say("The dispatcher logs one line per invocation, e.g.:\n  %s", lines[0]["_raw"])
	}
	if err := bad.err("organization sweep"); err != nil {
		return err
	}

	if err := memberEvent(ctx, w, startFn, byName(accounts)); err != nil {
		return err
	}
	say("\nPart 5 took %.1f s.", time.Since(start).Seconds())
	return nil
}

func byName(accounts []*orgAccount) map[string]*orgAccount {
	m := map[string]*orgAccount{}
	for _, a := range accounts {
		m[a.name] = a
	}
	return m
}

// unitLine and reportLine render a unit's result and report for a failure.
func unitLine(r fanout.UnitResult) string {
	return fmt.Sprintf("unit %s %q: seen %d, removed %d, snapshots deleted %d", r.Status, r.Reason, r.AMIsSeen, r.Deregistered, r.SnapshotsDeleted)
}

func reportLine(rep sweep.EventDetail, ok bool) string {
	if !ok {
		return "no report"
	}
	return fmt.Sprintf("report mode %s, to deregister %d", rep.Mode, rep.Totals.Deregister)
}

// cleanupReports are the units' "AMI Cleanup Report" events on the central
// bus, by account/region.
func cleanupReports(ctx context.Context, w *emulator.OrgSweep) (map[string]sweep.EventDetail, error) {
	bodies, err := emulator.ReceiveAll(ctx, w.SQS, w.Reports)
	if err != nil {
		return nil, err
	}
	out := map[string]sweep.EventDetail{}
	for _, b := range bodies {
		var ev struct {
			Detail sweep.EventDetail `json:"detail"`
		}
		if err := json.Unmarshal([]byte(b), &ev); err != nil {
			return nil, fmt.Errorf("cleanup report event %s: %w", b, err)
		}
		key := ev.Detail.Account + "/" + ev.Detail.Region
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("two cleanup reports for %s", key)
		}
		out[key] = ev.Detail
	}
	return out, nil
}

// memberEvent: an AMI created in a member account, in the second region;
// its CloudTrail event (forwarded by the member's rule to the central bus)
// reaches the tagger in organization mode, which tags it there, through
// the member role; then the same event naming an account outside the
// organization is rejected with no call at all.
func memberEvent(ctx context.Context, w *emulator.OrgSweep, startFn func(string) (*emulator.RIE, error), accounts map[string]*orgAccount) error {
	payments := accounts["payments"]
	say("\nAn event from a member account: payments creates an AMI in %s; its CreateImage event, forwarded to", orgRegion2)
	say("the central bus, reaches the tagger binary in organization mode:")
	c, err := w.EC2(ctx, payments.id, orgRegion2)
	if err != nil {
		return err
	}
	seed := emulator.Seeder{EC2: c}
	inst, err := seed.Instance(ctx, emulator.ForeignImageID, "team", "payments")
	if err != nil {
		return err
	}
	ami, err := seed.CreateImage(ctx, inst, "payments-api-2026-11-29")
	if err != nil {
		return err
	}
	tagger, err := startFn("tagger")
	if err != nil {
		return err
	}
	raw, err := emulator.Fixture("events/valid/cloudtrail-createimage.json")
	if err != nil {
		return err
	}
	values := map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": inst}
	stats := func() (assumed, denied, total int) {
		st := w.Proxy.Stats()
		return st.Actions["sts:AssumeRole"].Requests, st.Actions["sts:AssumeRole"].Denied, st.Total().Requests
	}
	var bad problems
	assumed0, denied0, _ := stats()
	r, err := invokeTagger(ctx, tagger, emulator.FromAccount(emulator.Fill(raw, values), payments.id, orgRegion2))
	if err != nil {
		return err
	}
	assumed1, denied1, total1 := stats()
	say("  account %s (payments), %s -> %s; AssumeRole calls: %d (payments' member role)", payments.id, orgRegion2, r.Outcome, assumed1-assumed0)
	bad.expect(r.Outcome == "tagged" && assumed1-assumed0 == 1 && denied1 == denied0, "payments' event: %+v, %d AssumeRole (%d denied); want tagged through one role",
		r, assumed1-assumed0, denied1-denied0)
	tags, err := seed.Tags(ctx, ami)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		say("    %s  %s = %s", ami, k, tags[k])
	}
	wantBy := "arn:aws:sts::" + payments.id + ":assumed-role/image-builder/packer-build-42"
	bad.expect(tags["ami-housekeeper:created-by"] == wantBy && tags["team"] == "payments" && tags["managed-by"] == "ami-housekeeper",
		"tags of %s in payments: %v; want created-by %s, team and managed-by", ami, tags, wantBy)

	// Nothing tagged anywhere else: every other account's AMIs, in both regions.
	elsewhere := 0
	for _, a := range accounts {
		for _, rg := range orgRegions {
			ec, err := w.EC2(ctx, a.id, rg)
			if err != nil {
				return err
			}
			ids, err := emulator.OwnedImages(ctx, ec)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if id == ami {
					continue
				}
				t, err := (emulator.Seeder{EC2: ec}).Tags(ctx, id)
				if err != nil {
					return err
				}
				if t["ami-housekeeper:created-by"] != "" {
					elsewhere++
					bad.expect(false, "%s of %s in %s was tagged by payments' event: %v", id, a.name, rg, t)
				}
			}
		}
	}
	say("  no other AMI, in any account or region, got a tag (%d tagged elsewhere)", elsewhere)

	forged := emulator.FromAccount(emulator.Fill(raw, values), orgForged, orgRegion2)
	f, err := invokeTagger(ctx, tagger, forged)
	if err != nil {
		return err
	}
	_, _, total2 := stats()
	say("  the same event naming account %s, outside the organization -> %s (%s); calls made: %d", orgForged, f.Outcome, short(f.Reason), total2-total1)
	bad.expect(f.Outcome == "rejected" && strings.Contains(f.Reason, "not a member of the organization") && total2 == total1,
		"forged event: %+v with %d calls; want rejected with none", f, total2-total1)
	return bad.err("event from a member account")
}

type taggerResponse struct {
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason"`
	ErrorType string `json:"errorType"`
}

func invokeTagger(ctx context.Context, rie *emulator.RIE, payload []byte) (taggerResponse, error) {
	body, err := rie.Invoke(ctx, payload)
	if err != nil {
		return taggerResponse{}, err
	}
	var r taggerResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("tagger response %s: %w", body, err)
	}
	if r.ErrorType != "" {
		return r, fmt.Errorf("the tagger failed: %s", body)
	}
	return r, nil
}

// keepLogs writes the functions' output to files, for a failed demo, and
// says where.
func keepLogs(ries []*emulator.RIE) string {
	dir, err := os.MkdirTemp("", "ami-housekeeper-demo-org-logs")
	if err != nil {
		return "(function logs not kept: " + err.Error() + ")"
	}
	for i, r := range ries {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("function-%d.log", i)), []byte(r.SettledLogs()), 0o600)
	}
	return "the functions' output is in " + dir + " (function-0: dispatcher, then the cleanups, then the tagger)"
}
