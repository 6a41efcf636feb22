package org_test

// An organization cleanup sweep, end to end, with the real binaries: the
// dispatcher (under the runtime emulator, invoked with the schedule's
// input) sends one unit per account × region to the FIFO units queue and
// begins the sweep in the ledger (moto's DynamoDB); the event source
// mapping emulator (pkg/emulator ESM: FIFO queue, batch size 1, two
// instances) feeds the units to two instances of the cleanup binary in
// organization mode, which run each unit in its account through the member
// role (moto selects the account from the assumed role's credentials) and
// record it; the worker recording the last unit publishes the summary.
// Every call of the functions goes through the fault proxy, which refuses
// AssumeRole of one account's member role: moto's STS assumes any role, so
// the proxy emulates the missing role that moto cannot.
//
// The organization: OU workloads holds w1, w2, w3 and norole (its role is
// refused) and the sandbox OU (s1, s2), whose override makes the retention
// audit-only; "outside" sits under the root, out of the scope. The scope
// is the workloads OU in us-east-1 and eu-west-1 (6 accounts × 2 regions =
// 12 units); us-west-2 is outside it. Every account owns, in every region,
// two stale AMIs and one fresh one of the same family.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/killswitch"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

const (
	swHome       = emulator.MotoAccount // the central account (the organization's management account here)
	swRegion     = "us-east-1"          // the central stack's region, and a scope region
	swRegion2    = "eu-west-1"
	swOutRegion  = "us-west-2" // not in the scope
	swRole       = "ami-housekeeper-member"
	swTable      = "hk-ledger"
	swQueue      = "hk-cleanup-units.fifo"
	swMaxReceive = 3
	swSchedule   = `{"job":"cleanup","time":"2026-11-29T03:00:00Z"}`
	swSweep      = "cleanup/2026-11-29T03:00:00Z"
	// swVisibility is the units queue's visibility timeout (the stack's is
	// the cleanup's timeout and a minute).
	swVisibility = 60 * time.Second
)

var (
	swScopeRegions = []string{swRegion2, swRegion} // sorted
	swAllRegions   = []string{swRegion, swRegion2, swOutRegion}
	swWorkloads    = []string{"w1", "w2", "w3"}
	swSandbox      = []string{"s1", "s2"}
)

// swWorld is the organization, its AMIs, the central account's queues and
// ledger, and the proxy the functions call through (emulator.OrgSweep).
type swWorld struct {
	ctx   context.Context
	world *emulator.OrgSweep
	moto  *emulator.Moto
	proxy *emulator.FaultProxy
	seed  *emulator.OrgSeed
	sqs   *sqs.Client
	units emulator.Queue
	// summaries and reports are the queues the summary and the units'
	// report events land in (rules on the central bus).
	summaries, reports string
	ledger             *fanout.Ledger
	// amis are each account's AMIs (the same in every region), stale first.
	amis   map[string][]emulator.SeedAMI
	policy string
	scope  org.Scope
	// extraEnv is added to the functions' environment.
	extraEnv []string
}

func (w *swWorld) id(name string) string { return w.seed.Accounts[name] }

func newSweepWorld(t *testing.T) *swWorld {
	t.Helper()
	ctx := context.Background()
	spec := emulator.OrgSpec{OUs: []emulator.OUSpec{{Name: "workloads"}, {Name: "sandbox", Parent: "workloads"}}}
	for _, n := range append(slices.Clone(swWorkloads), "norole") {
		spec.Accounts = append(spec.Accounts, emulator.AccountSpec{Name: n, OU: "workloads"})
	}
	for _, n := range swSandbox {
		spec.Accounts = append(spec.Accounts, emulator.AccountSpec{Name: n, OU: "sandbox"})
	}
	spec.Accounts = append(spec.Accounts, emulator.AccountSpec{Name: "outside"})
	amis := map[string][]emulator.SeedAMI{}
	// Two stale AMIs and the fresh newest of family app-, per account.
	seedAMIs := func(seed *emulator.OrgSeed) []emulator.SeedAMI {
		var all []emulator.SeedAMI
		for i, id := range seed.IDs {
			created := []time.Time{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), time.Now().Add(-24 * time.Hour)}
			for k, c := range created {
				a := emulator.SeedAMI{ID: emulator.OrgAMIID(id, i*8+k), Name: fmt.Sprintf("app-%s-%d", id, k), Owner: id, Created: c}
				amis[id] = append(amis[id], a)
				all = append(all, a)
			}
		}
		return all
	}
	world, err := emulator.StartOrgSweep(ctx, emulator.OrgSweepOptions{Region: swRegion, Spec: spec, AMIs: seedAMIs, RoleName: swRole,
		Refused: []string{"norole"}, LedgerTable: swTable, UnitsQueue: swQueue, Visibility: swVisibility, MaxReceive: swMaxReceive})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(world.Stop)
	seed := world.Seed
	if seed.Management != swHome {
		t.Fatalf("management account %s, want the central account %s", seed.Management, swHome)
	}
	w := &swWorld{ctx: ctx, world: world, moto: world.Moto, proxy: world.Proxy, seed: seed, sqs: world.SQS, units: world.Units,
		summaries: world.Summaries, reports: world.Reports, ledger: world.Ledger, amis: amis,
		scope: org.Scope{OUs: []string{seed.OUs["workloads"]}, Regions: swScopeRegions}}
	w.policy = emulator.OrgSweepPolicy(seed.OUs["sandbox"])
	return w
}

// env is the central functions' environment in organization mode, as the
// stack sets it, reaching moto through the proxy.
func (w *swWorld) env(t *testing.T) []string {
	t.Helper()
	if emulator.EnvUnitsMaxReceive != handlers.EnvUnitsMaxReceive {
		t.Fatalf("emulator.EnvUnitsMaxReceive %s, the workers read %s", emulator.EnvUnitsMaxReceive, handlers.EnvUnitsMaxReceive)
	}
	env, err := w.world.Env(w.ctx, w.scope, w.policy, w.extraEnv...)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (w *swWorld) start(t *testing.T, function string) *emulator.RIE {
	t.Helper()
	rie, err := w.world.Start(w.ctx, function, w.env(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s:\n%s", function, rie.Logs())
		}
		rie.Stop()
	})
	return rie
}

// dispatch invokes the dispatcher with the schedule's input.
func (w *swWorld) dispatch(t *testing.T, rie *emulator.RIE) map[string]any {
	t.Helper()
	r, err := emulator.Dispatch(w.ctx, rie, swSchedule)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// drain runs the mapping over the units queue until it is empty.
func (w *swWorld) drain(t *testing.T, workers []*emulator.RIE) *emulator.ESM {
	t.Helper()
	e, err := w.world.Drain(w.ctx, w.units.URL, workers, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// owned returns the AMIs account owns in region now, straight from moto.
func (w *swWorld) owned(t *testing.T, account, region string) []string {
	t.Helper()
	ids, err := emulator.OwnedImages(w.ctx, w.client(t, account, region))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func (w *swWorld) client(t *testing.T, account, region string) *ec2.Client {
	t.Helper()
	c, err := w.world.EC2(w.ctx, account, region)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (w *swWorld) ids(account string, which ...int) []string {
	var out []string
	for _, k := range which {
		out = append(out, w.amis[account][k].ID)
	}
	slices.Sort(out)
	return out
}

// messages receives every message a queue holds.
func (w *swWorld) messages(t *testing.T, url string) []string {
	t.Helper()
	bodies, err := emulator.ReceiveAll(w.ctx, w.sqs, url)
	if err != nil {
		t.Fatal(err)
	}
	return bodies
}

// logLines returns the functions' log lines with message msg.
func logLines(t *testing.T, msg string, ries ...*emulator.RIE) []map[string]any {
	t.Helper()
	out, err := emulator.LogLines(msg, ries...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSweepOverTheOrganization(t *testing.T) {
	w := newSweepWorld(t)
	// The stale AMIs' snapshots, which go with them.
	staleSnaps := map[string][]string{} // account/region -> snapshots
	for _, n := range swWorkloads {
		for _, region := range swScopeRegions {
			for _, a := range w.amis[w.id(n)][:2] {
				snaps, err := emulator.Seeder{EC2: w.client(t, w.id(n), region)}.Snapshots(w.ctx, a.ID)
				if err != nil || len(snaps) != 1 {
					t.Fatalf("snapshots of %s in %s: %v %v", a.ID, region, snaps, err)
				}
				staleSnaps[w.id(n)+"/"+region] = append(staleSnaps[w.id(n)+"/"+region], snaps...)
			}
		}
	}

	dispatcher := w.start(t, "dispatcher")
	r := w.dispatch(t, dispatcher)
	if r["units"] != 12.0 || r["sent"] != 12.0 || r["sweep"] != swSweep {
		t.Fatalf("dispatch %v; want 12 units (6 accounts × 2 regions) sent", r)
	}
	workers := []*emulator.RIE{w.start(t, "cleanup"), w.start(t, "cleanup")}
	e := w.drain(t, workers)

	// Each unit invoked once and settled: nothing retried, nothing dead.
	if tot := e.Totals(); tot.Records != 12 || tot.Deleted != 12 || tot.Failures != 0 || tot.Errors != 0 || tot.Redelivered != 0 {
		t.Errorf("mapping totals %+v; want 12 units each run once and deleted", tot)
	}
	if d, err := emulator.QueueDepthOf(w.ctx, w.sqs, w.units.DLQURL); err != nil || d.Total() != 0 {
		t.Errorf("DLQ %s %v", d, err)
	}

	// The right result in each account and region, and nothing elsewhere.
	for _, n := range append(append(append(slices.Clone(swWorkloads), swSandbox...), "norole"), "outside") {
		for _, region := range swAllRegions {
			want := w.ids(w.id(n), 0, 1, 2)
			why := "kept everything"
			if slices.Contains(swWorkloads, n) && region != swOutRegion {
				want, why = w.ids(w.id(n), 2), "stale AMIs removed, the fresh one kept"
			}
			if got := w.owned(t, w.id(n), region); !slices.Equal(got, want) {
				t.Errorf("%s (%s) in %s owns %v; want %v (%s)", n, w.id(n), region, got, want, why)
			}
		}
	}
	for key, snaps := range staleSnaps {
		account, region, _ := strings.Cut(key, "/")
		for _, s := range snaps {
			if _, err := w.client(t, account, region).DescribeSnapshots(w.ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{s}}); err == nil {
				t.Errorf("snapshot %s of a removed AMI of %s in %s is still there", s, account, region)
			}
		}
	}

	// The ledger's summary lists every unit.
	sum, err := w.ledger.Summary(w.ctx, swSweep)
	if err != nil {
		t.Fatal(err)
	}
	tot := sum.Totals
	if !sum.Complete || sum.Expected != 12 || tot.Units != 12 || tot.Done != 10 || tot.Unreachable != 2 || tot.Failed != 0 || tot.Partial != 0 ||
		tot.Deregistered != 12 || tot.AMIsSeen != 30 {
		t.Errorf("summary totals %+v (complete %v, expected %d); want 12 units: 10 done, 2 unreachable, 12 AMIs removed of 30 seen", tot, sum.Complete, sum.Expected)
	}
	var covered []string
	for _, n := range append(slices.Clone(swWorkloads), swSandbox...) {
		covered = append(covered, w.id(n))
	}
	sort.Strings(covered)
	if !slices.Equal(sum.Accounts, covered) || !slices.Equal(sum.Regions, swScopeRegions) {
		t.Errorf("covered %v in %v; want %v in %v", sum.Accounts, sum.Regions, covered, swScopeRegions)
	}
	if len(sum.Unreachable) != 2 {
		t.Errorf("unreachable %+v; want norole in both regions", sum.Unreachable)
	}
	for _, p := range sum.Unreachable {
		if p.Account != w.id("norole") || !strings.Contains(p.Reason, "AccessDenied") || !strings.Contains(p.Reason, "role/"+swRole) {
			t.Errorf("unreachable %+v; want norole, refused by STS", p)
		}
	}
	byAccount := map[string]fanout.AccountSummary{}
	for _, a := range sum.ByAccount {
		byAccount[a.Account] = a
	}
	for _, n := range swWorkloads {
		if a := byAccount[w.id(n)]; a.Totals.Deregistered != 4 || a.OU != w.seed.OUs["workloads"] || !slices.Equal(a.Regions, swScopeRegions) {
			t.Errorf("%s in the summary: %+v; want 4 removed in both regions", n, a)
		}
	}
	for _, n := range swSandbox {
		if a := byAccount[w.id(n)]; a.Totals.Deregistered != 0 || a.Totals.AMIsSeen != 6 || a.OU != w.seed.OUs["sandbox"] {
			t.Errorf("%s in the summary: %+v; want 6 AMIs seen, none removed (audit by its OU's override)", n, a)
		}
	}
	if _, ok := byAccount[w.id("outside")]; ok {
		t.Errorf("the account outside the scope is in the summary")
	}

	// Published once, by the worker that recorded the last unit.
	events := w.messages(t, w.summaries)
	if len(events) != 1 {
		t.Fatalf("%d summary events, want 1", len(events))
	}
	var ev struct {
		Detail fanout.Summary `json:"detail"`
	}
	if err := json.Unmarshal([]byte(events[0]), &ev); err != nil || ev.Detail.Sweep != swSweep || ev.Detail.Totals != sum.Totals || len(ev.Detail.Unreachable) != 2 {
		t.Errorf("summary event %s (%v)", events[0], err)
	}
	if n := len(w.messages(t, w.reports)); n != 10 {
		t.Errorf("%d unit reports on the bus, want one per reached unit (10)", n)
	}
	if n := len(logLines(t, "cleanup summary", workers...)); n != 10 {
		t.Errorf("%d sweeps ran, want 10 (one per reached unit)", n)
	}

	// A duplicate of a unit already recorded (SQS delivers at least once;
	// moto's deduplication forgets deleted messages) and a retried dispatch
	// run nothing again and publish nothing again.
	w1 := fanout.Unit{Sweep: swSweep, Job: fanout.JobCleanup, Account: w.id("w1"), Region: swRegion, OU: w.seed.OUs["workloads"], Dispatched: time.Now()}
	body, _ := json.Marshal(w1)
	if err := emulator.SendFIFO(w.ctx, w.sqs, w.units.URL, []emulator.FIFOMessage{{Body: string(body), Group: w1.Account + "/" + w1.Region, DeduplicationID: "again"}}); err != nil {
		t.Fatal(err)
	}
	if again := w.dispatch(t, dispatcher); again["sent"] != 0.0 {
		t.Errorf("retried dispatch sent %v units; every unit is done", again["sent"])
	}
	e = w.drain(t, workers)
	if tot := e.Totals(); tot.Records != 1 || tot.Deleted != 1 {
		t.Errorf("mapping totals %+v; want the one duplicate, settled", tot)
	}
	if n := len(logLines(t, "cleanup summary", workers...)); n != 10 {
		t.Errorf("%d sweeps ran; the duplicate ran again", n)
	}
	dups := 0
	for _, l := range logLines(t, "unit", workers...) {
		if l["status"] == fanout.StatusDuplicate && l["unit"] == w1.ID() {
			dups++
		}
	}
	if dups != 1 {
		t.Errorf("%d duplicate lines for %s, want 1", dups, w1.ID())
	}
	after, err := w.ledger.Summary(w.ctx, swSweep)
	if err != nil || after.Totals != sum.Totals {
		t.Errorf("ledger after the duplicate: %+v %v; want it unchanged %+v", after.Totals, err, sum.Totals)
	}
	if n := len(w.messages(t, w.summaries)); n != 0 {
		t.Errorf("%d more summary events after the duplicate", n)
	}
}

// The kill switch, engaged in the central account, holds in every account:
// each unit sweeps in audit mode, whatever the account's effective policy,
// and the sweep still completes and is summarized.
func TestSweepUnderTheKillSwitch(t *testing.T) {
	w := newSweepWorld(t)
	const param = "/ami-housekeeper/kill-switch"
	cfg, err := w.moto.Config(w.ctx, swRegion)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ssm.NewFromConfig(cfg).PutParameter(w.ctx, &ssm.PutParameterInput{Name: aws.String(param), Value: aws.String("incident 7"),
		Type: ssmtypes.ParameterTypeString}); err != nil {
		t.Fatal(err)
	}
	w.extraEnv = []string{killswitch.EnvParameter + "=" + param}
	w.dispatch(t, w.start(t, "dispatcher"))
	workers := []*emulator.RIE{w.start(t, "cleanup"), w.start(t, "cleanup")}
	w.drain(t, workers)

	for _, n := range append(slices.Clone(swWorkloads), swSandbox...) {
		for _, region := range swScopeRegions {
			if got := w.owned(t, w.id(n), region); !slices.Equal(got, w.ids(w.id(n), 0, 1, 2)) {
				t.Errorf("%s in %s owns %v under the kill switch; want all three", n, region, got)
			}
		}
	}
	sum, err := w.ledger.Summary(w.ctx, swSweep)
	if err != nil {
		t.Fatal(err)
	}
	if tot := sum.Totals; !sum.Complete || tot.Done != 10 || tot.Unreachable != 2 || tot.Deregistered != 0 || tot.AMIsSeen != 30 {
		t.Errorf("summary %+v (complete %v); want 10 units done in audit, none removed", tot, sum.Complete)
	}
	lines := logLines(t, "cleanup summary", workers...)
	if len(lines) != 10 {
		t.Fatalf("%d sweeps, want 10", len(lines))
	}
	for _, l := range lines {
		if l["mode"] != "audit" || l["mode_reason"] != "kill switch "+param+": incident 7" {
			t.Errorf("sweep ran with mode %v (%v); want audit by the kill switch", l["mode"], l["mode_reason"])
		}
	}
	engaged := 0
	for _, r := range workers {
		_, metrics, err := emulator.SplitLines(r.SettledLogs())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metrics {
			if m["KillSwitchEngaged"] == 1.0 {
				engaged++
			}
		}
	}
	if engaged != 12 {
		t.Errorf("%d KillSwitchEngaged lines, want one per invocation (12)", engaged)
	}
}

// The sharing guard's audit swept over the organization the same way: the
// dispatcher sends one sharing-audit unit per account × region to the
// audit units queue, two sharing binaries run them, each in its account
// with its effective policy, keeping its cursor in the central account.
func TestAuditSweepOverTheOrganization(t *testing.T) {
	w := newSweepWorld(t)
	const (
		queue    = "hk-audit-units.fifo"
		cursor   = "/hk/audit-cursor"
		stranger = "111122223333"
		schedule = `{"job":"sharing-audit","time":"2026-11-29T04:00:00Z"}`
		sweep    = "sharing-audit/2026-11-29T04:00:00Z"
	)
	w.policy += "sharing:\n  mode: enforce\n"
	audits, err := emulator.CreateFIFOQueueWithDLQ(w.ctx, w.sqs, queue, swVisibility, swMaxReceive)
	if err != nil {
		t.Fatal(err)
	}
	w.extraEnv = []string{fanout.EnvUnitsQueueSharingAudit + "=" + queue, "HOUSEKEEPER_AUDIT_CURSOR_PARAMETER=" + cursor}
	// Every account shares its fresh AMI with a stranger in us-east-1.
	names := append(append(append(slices.Clone(swWorkloads), swSandbox...), "norole"), "outside")
	shared := func(n string) []string {
		out, err := w.client(t, w.id(n), swRegion).DescribeImageAttribute(w.ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(w.amis[w.id(n)][2].ID),
			Attribute: ec2types.ImageAttributeNameLaunchPermission})
		if err != nil {
			t.Fatal(err)
		}
		var who []string
		for _, p := range out.LaunchPermissions {
			who = append(who, aws.ToString(p.UserId))
		}
		return who
	}
	for _, n := range names {
		if _, err := w.client(t, w.id(n), swRegion).ModifyImageAttribute(w.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(w.amis[w.id(n)][2].ID),
			LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{UserId: aws.String(stranger)}}}}); err != nil {
			t.Fatal(err)
		}
	}

	dispatcher := w.start(t, "dispatcher")
	body, err := dispatcher.Invoke(w.ctx, []byte(schedule))
	if err != nil || !strings.Contains(string(body), `"outcome":"dispatched"`) || !strings.Contains(string(body), `"sent":12`) {
		t.Fatalf("dispatch: %s %v", body, err)
	}
	workers := []*emulator.RIE{w.start(t, "sharing"), w.start(t, "sharing")}
	e, err := emulator.NewESM(w.ctx, emulator.ESMConfig{SQS: w.sqs, QueueURL: audits.URL, BatchSize: 1, Instances: []emulator.Invoker{workers[0], workers[1]}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(w.ctx, 3*time.Minute)
	defer cancel()
	if err := e.RunUntilEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	if tot := e.Totals(); tot.Records != 12 || tot.Deleted != 12 || tot.Errors != 0 {
		t.Errorf("mapping totals %+v", tot)
	}

	for _, n := range names {
		want := []string{stranger}
		if n != "norole" && n != "outside" {
			want = nil
		}
		if got := shared(n); !slices.Equal(got, want) {
			t.Errorf("%s's AMI is shared with %v; want %v", n, got, want)
		}
	}
	sum, err := w.ledger.Summary(w.ctx, sweep)
	if err != nil {
		t.Fatal(err)
	}
	if tot := sum.Totals; !sum.Complete || tot.Units != 12 || tot.Done != 10 || tot.Unreachable != 2 || tot.Violations != 5 || tot.Revoked != 5 || tot.AMIsSeen != 30 {
		t.Errorf("audit summary %+v (complete %v); want 10 done, 2 unreachable, 5 violations revoked in 30 AMIs", tot, sum.Complete)
	}
	cfg, err := w.moto.Config(w.ctx, swRegion)
	if err != nil {
		t.Fatal(err)
	}
	central := ssm.NewFromConfig(cfg)
	for _, n := range names {
		for _, region := range swScopeRegions {
			name := handlers.UnitCursorName(cursor, w.id(n), region)
			p, err := central.GetParameter(w.ctx, &ssm.GetParameterInput{Name: aws.String(name)})
			reached := n != "norole" && n != "outside"
			switch {
			case reached && (err != nil || aws.ToString(p.Parameter.Value) != "-"):
				t.Errorf("cursor %s: %v %v; want the complete pass's \"-\"", name, p, err)
			case !reached && err == nil:
				t.Errorf("cursor %s written for an account the sweep did not reach", name)
			}
		}
	}
	if n := len(w.messages(t, w.summaries)); n != 1 {
		t.Errorf("%d summary events, want 1", n)
	}
}
