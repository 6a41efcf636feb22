package sharing_test

// Integration tests and the benchmark: the real SDK, the real wire protocol,
// moto server as the AWS account (started by the tests, see pkg/emulator).
// Every Test/BenchmarkMoto* here uses moto; nothing in this file uses the
// fake. The fake (pkg/fake) is used by enforce_test.go only, for what moto
// cannot do (throttling, partial removals, disabled AMIs); decide_test.go is
// pure.
//
// moto quirks this file works around:
//   - ModifySnapshotAttribute applies only the legacy OperationType +
//     UserIds/GroupNames form (the enforcer uses it; so does the seeding);
//   - a deregistered AMI is an empty DescribeImages answer, not an error;
//   - cross-account sharing is not modelled: the stranger and the
//     organizations are just strings in the permission lists.

import (
	"context"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}

type motoWorld struct {
	ctx   context.Context
	api   awsapi.EC2API // counted: what the enforcer uses
	calls *awsapi.CallCounter
	seed  emulator.Seeder // not counted: setup and checks
	inst  string
}

func newMotoWorld(tb testing.TB) *motoWorld {
	tb.Helper()
	ctx := context.Background()
	moto := emulator.SharedMoto(tb)
	cfg, err := moto.Config(ctx, region)
	if err != nil {
		tb.Fatal(err)
	}
	w := &motoWorld{ctx: ctx, calls: awsapi.NewCallCounter()}
	w.api = awsapi.NewClients(w.calls.Attach(cfg)).EC2(region)
	w.seed = emulator.Seeder{EC2: ec2.NewFromConfig(cfg)}
	if w.inst, err = w.seed.Instance(ctx, emulator.ForeignImageID); err != nil {
		tb.Fatal(err)
	}
	return w
}

func (w *motoWorld) enforcer(mode policy.Mode, now time.Time) *sharing.Enforcer {
	p := testPolicy()
	p.Mode = mode
	p.AllowedOrganizationalUnits = []string{ouOK}
	return &sharing.Enforcer{EC2: w.api, Policy: p, Now: func() time.Time { return now }}
}

// image creates an AMI and returns it with its one snapshot.
func (w *motoWorld) image(tb testing.TB, name string, tags ...string) (string, string) {
	tb.Helper()
	id, err := w.seed.CreateImage(w.ctx, w.inst, name, tags...)
	if err != nil {
		tb.Fatal(err)
	}
	snaps, err := w.seed.Snapshots(w.ctx, id)
	if err != nil || len(snaps) != 1 {
		tb.Fatalf("snapshots of %s: %v %v", id, snaps, err)
	}
	return id, snaps[0]
}

// shareImage adds launch permissions with the structured form.
func (w *motoWorld) shareImage(tb testing.TB, id string, perms ...types.LaunchPermission) {
	tb.Helper()
	_, err := w.seed.EC2.ModifyImageAttribute(w.ctx, &ec2.ModifyImageAttributeInput{
		ImageId: aws.String(id), LaunchPermission: &types.LaunchPermissionModifications{Add: perms}})
	if err != nil {
		tb.Fatal(err)
	}
}

// shareSnapshot adds create-volume permissions with the legacy form (moto
// ignores the structured one).
func (w *motoWorld) shareSnapshot(tb testing.TB, id string, public bool, users ...string) {
	tb.Helper()
	in := &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(id), Attribute: types.SnapshotAttributeNameCreateVolumePermission,
		OperationType: types.OperationTypeAdd, UserIds: users}
	if public {
		in.GroupNames = []string{"all"}
	}
	if _, err := w.seed.EC2.ModifySnapshotAttribute(w.ctx, in); err != nil {
		tb.Fatal(err)
	}
}

func (w *motoWorld) imagePerms(tb testing.TB, id string) []string {
	tb.Helper()
	out, err := w.seed.EC2.DescribeImageAttribute(w.ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(id), Attribute: types.ImageAttributeNameLaunchPermission})
	if err != nil {
		tb.Fatal(err)
	}
	return texts(sharing.PrincipalsOfImage(out.LaunchPermissions))
}

func (w *motoWorld) snapshotPerms(tb testing.TB, id string) []string {
	tb.Helper()
	out, err := w.seed.EC2.DescribeSnapshotAttribute(w.ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(id), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil {
		tb.Fatal(err)
	}
	return texts(sharing.PrincipalsOfSnapshot(out.CreateVolumePermissions))
}

func (w *motoWorld) tags(tb testing.TB, id string) map[string]string {
	tb.Helper()
	m, err := w.seed.Tags(w.ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func (w *motoWorld) modifies() int {
	c := w.calls.Counts()
	return c["ModifyImageAttribute"] + c["ModifySnapshotAttribute"] + c["CreateTags"]
}

func texts(ps []sharing.Principal) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	sort.Strings(out)
	return out
}

func sorted(s ...string) []string { sort.Strings(s); return s }

// sharedEverywhere is an AMI shared publicly, with a stranger, an allowed
// account, an allowed and a foreign organization, an allowed and a foreign
// OU; its snapshot publicly, with the stranger and the allowed account.
func (w *motoWorld) sharedEverywhere(tb testing.TB, name string, tags ...string) (string, string) {
	tb.Helper()
	ami, snap := w.image(tb, name, tags...)
	w.shareImage(tb, ami, lpGroupAll(), lpUser(stranger), lpUser(allowed), lpOrg(orgOK), lpOrg(orgBad),
		types.LaunchPermission{OrganizationalUnitArn: aws.String(ouOK)}, types.LaunchPermission{OrganizationalUnitArn: aws.String(ouBad)})
	w.shareSnapshot(tb, snap, true, stranger, allowed)
	return ami, snap
}

var (
	allImagePrincipals = sorted("public", "account "+stranger, "account "+allowed, "organization "+orgOK,
		"organization "+orgBad, "ou "+ouOK, "ou "+ouBad)
	allSnapshotPrincipals = sorted("public", "account "+stranger, "account "+allowed)
)

func TestMotoAuditChangesNothing(t *testing.T) {
	w := newMotoWorld(t)
	ami, snap := w.sharedEverywhere(t, "web-audit")
	res, err := w.enforcer(policy.ModeAudit, fakeNow).CheckImage(w.ctx, acct, region, ami, actor)
	if err != nil || res.Outcome != sharing.OutcomeWouldRevoke || len(res.Findings) != 2 || len(res.Verdicts) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if got := texts(res.Findings[0].Removed); !reflect.DeepEqual(got, sorted("public", "account "+stranger, "organization "+orgBad, "ou "+ouBad)) {
		t.Errorf("would remove %v", got)
	}
	if w.modifies() != 0 || w.calls.Total() != 3 {
		t.Errorf("audit calls %v", w.calls.Counts())
	}
	// Re-read: nothing changed.
	if got := w.imagePerms(t, ami); !reflect.DeepEqual(got, allImagePrincipals) {
		t.Errorf("image now %v", got)
	}
	if got := w.snapshotPerms(t, snap); !reflect.DeepEqual(got, allSnapshotPrincipals) {
		t.Errorf("snapshot now %v", got)
	}
	if tags := w.tags(t, ami); tags[sharing.TagViolationAt] != "" {
		t.Errorf("audit tagged: %v", tags)
	}
}

func TestMotoEnforceThenCompliant(t *testing.T) {
	w := newMotoWorld(t)
	ami, snap := w.sharedEverywhere(t, "web-enforce")
	e := w.enforcer(policy.ModeEnforce, fakeNow)
	res, err := e.CheckImage(w.ctx, acct, region, ami, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked || len(res.Findings) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if got, want := w.imagePerms(t, ami), sorted("account "+allowed, "organization "+orgOK, "ou "+ouOK); !reflect.DeepEqual(got, want) {
		t.Errorf("image keeps %v, want %v", got, want)
	}
	if got, want := w.snapshotPerms(t, snap), []string{"account " + allowed}; !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot keeps %v, want %v", got, want)
	}
	img := res.Findings[0]
	if img.Action != sharing.ActionRevoked || len(img.Remaining) != 0 || img.Actor != actor || len(img.Shadowed) != 1 ||
		!strings.HasPrefix(img.Shadowed[0], "account "+stranger+" removed, but it keeps access if it is a member of organization "+orgOK+" or ou "+ouOK) {
		t.Errorf("image finding %+v", img)
	}
	if f := res.Findings[1]; f.ResourceID != snap || f.ImageID != ami || f.Action != sharing.ActionRevoked {
		t.Errorf("snapshot finding %+v", f)
	}
	tags := w.tags(t, ami)
	if tags[sharing.TagViolationAt] != "2026-10-01T12:00:00Z" ||
		tags[sharing.TagViolationRemoved] != "public, organization "+orgBad+", ou "+ouBad+", account "+stranger {
		t.Errorf("AMI tags %v", tags)
	}
	// The budget: 8 calls for an AMI and its snapshot that both need revoking.
	want := map[string]int{"DescribeImages": 1, "DescribeImageAttribute": 2, "ModifyImageAttribute": 1,
		"DescribeSnapshotAttribute": 2, "ModifySnapshotAttribute": 1, "CreateTags": 1}
	if got := w.calls.Counts(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}

	// A second run is compliant and changes nothing.
	w.calls.Reset()
	res, err = e.CheckImage(w.ctx, acct, region, ami, actor)
	if err != nil || res.Outcome != sharing.OutcomeCompliant || len(res.Findings) != 0 || len(res.Verdicts) != 2 {
		t.Fatalf("second run %+v %v", res, err)
	}
	if w.modifies() != 0 || w.calls.Total() != 3 {
		t.Errorf("second run calls %v", w.calls.Counts())
	}
}

func TestMotoException(t *testing.T) {
	w := newMotoWorld(t)
	ami, snap := w.image(t, "web-exception", exTag, "CHG-1234;until=2026-10-01;principals="+stranger)
	w.shareImage(t, ami, lpGroupAll(), lpUser(stranger))
	w.shareSnapshot(t, snap, true, stranger)

	// On the until day the stranger stays (image and snapshot); public goes.
	res, err := w.enforcer(policy.ModeEnforce, day("2026-10-01T23:00:00Z")).CheckImage(w.ctx, acct, region, ami, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked {
		t.Fatalf("%+v %v", res, err)
	}
	if got := w.imagePerms(t, ami); !reflect.DeepEqual(got, []string{"account " + stranger}) {
		t.Errorf("image before expiry %v", got)
	}
	if got := w.snapshotPerms(t, snap); !reflect.DeepEqual(got, []string{"account " + stranger}) {
		t.Errorf("snapshot before expiry %v", got)
	}
	if !slices.Contains(res.Verdicts[0].Reasons, "account "+stranger+" allowed until 2026-10-01 by exception CHG-1234") {
		t.Errorf("reasons %q", res.Verdicts[0].Reasons)
	}

	// The day after, it is enforced.
	res, err = w.enforcer(policy.ModeEnforce, day("2026-10-02T00:00:00Z")).CheckImage(w.ctx, acct, region, ami, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked || len(res.Findings) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if got := w.imagePerms(t, ami); len(got) != 0 {
		t.Errorf("image after expiry %v", got)
	}
	if got := w.snapshotPerms(t, snap); len(got) != 0 {
		t.Errorf("snapshot after expiry %v", got)
	}
	if r := res.Findings[0].Reasons; len(r) == 0 || r[0] != "exception CHG-1234 expired on 2026-10-01: enforced" {
		t.Errorf("reasons %q", r)
	}
	if tags := w.tags(t, ami); tags[sharing.TagViolationAt] != "2026-10-02T00:00:00Z" || tags[sharing.TagViolationRemoved] != "account "+stranger {
		t.Errorf("tags %v", tags)
	}
}

// Issue 7 item 4, on moto: an exception anyone could write (no until, public
// named) kept the AMI and its snapshot public forever. It is ignored now,
// and the finding says why.
func TestMotoSelfServiceExceptionIgnored(t *testing.T) {
	w := newMotoWorld(t)
	ami, snap := w.image(t, "web-self-service", exTag, "x;principals=public,"+stranger)
	w.shareImage(t, ami, lpGroupAll(), lpUser(stranger))
	w.shareSnapshot(t, snap, true, stranger)
	res, err := w.enforcer(policy.ModeEnforce, fakeNow).CheckImage(w.ctx, acct, region, ami, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked || len(res.Findings) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if got := w.imagePerms(t, ami); len(got) != 0 {
		t.Errorf("image still shared: %v", got)
	}
	if got := w.snapshotPerms(t, snap); len(got) != 0 {
		t.Errorf("snapshot still shared: %v", got)
	}
	for _, f := range res.Findings {
		if len(f.Reasons) == 0 || !strings.HasPrefix(f.Reasons[0], "exception x ignored: it has no until date") {
			t.Errorf("%s: reasons %q", f.ResourceID, f.Reasons)
		}
	}
	if len(res.Exceptions) != 1 || res.Exceptions[0].State != sharing.ExceptionIgnored || res.Exceptions[0].ResourceID != ami {
		t.Errorf("exceptions %+v", res.Exceptions)
	}
}

func TestMotoNotOwned(t *testing.T) {
	w := newMotoWorld(t)
	// The foreign AMI is public and owned by Canonical.
	res, err := w.enforcer(policy.ModeEnforce, fakeNow).CheckImage(w.ctx, acct, region, emulator.ForeignImageID, actor)
	if err != nil || res.Outcome != sharing.OutcomeNotOwned || len(res.Findings) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if w.modifies() != 0 || w.calls.Total() != 1 {
		t.Errorf("calls %v", w.calls.Counts())
	}
	if got := w.imagePerms(t, emulator.ForeignImageID); !reflect.DeepEqual(got, []string{"public"}) {
		t.Errorf("foreign AMI now %v", got)
	}
}

func TestMotoGone(t *testing.T) {
	w := newMotoWorld(t)
	ami, _ := w.sharedEverywhere(t, "web-gone")
	if _, err := w.seed.EC2.DeregisterImage(w.ctx, &ec2.DeregisterImageInput{ImageId: aws.String(ami)}); err != nil {
		t.Fatal(err)
	}
	e := w.enforcer(policy.ModeEnforce, fakeNow)
	for _, id := range []string{ami, "ami-0123456789abcdef0"} { // deregistered, never existed
		res, err := e.CheckImage(w.ctx, acct, region, id, actor)
		if err != nil || res.Outcome != sharing.OutcomeGone {
			t.Errorf("%s: %+v %v", id, res, err)
		}
	}
	if w.modifies() != 0 {
		t.Errorf("calls %v", w.calls.Counts())
	}
	if res, err := e.CheckSnapshot(w.ctx, acct, region, "snap-0123456789abcdef0", actor); err != nil || res.Outcome != sharing.OutcomeGone {
		t.Errorf("missing snapshot: %+v %v", res, err)
	}
}

func TestMotoCheckSnapshot(t *testing.T) {
	w := newMotoWorld(t)
	// A snapshot behind an AMI, found through its description; the AMI's
	// exception keeps the stranger.
	ami, snap := w.image(t, "web-snap", exTag, "CHG-7;until=2026-10-31;principals="+stranger)
	w.shareSnapshot(t, snap, true, stranger)
	e := w.enforcer(policy.ModeEnforce, fakeNow)
	res, err := e.CheckSnapshot(w.ctx, acct, region, snap, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked || len(res.Findings) != 1 || res.Findings[0].ImageID != ami {
		t.Fatalf("%+v %v", res, err)
	}
	if got := w.snapshotPerms(t, snap); !reflect.DeepEqual(got, []string{"account " + stranger}) {
		t.Errorf("snapshot keeps %v", got)
	}
	if tags := w.tags(t, snap); tags[sharing.TagViolationRemoved] != "public" {
		t.Errorf("snapshot tags %v", tags)
	}

	// A standalone snapshot is checked when check_all_snapshots is on.
	alone, err := w.seed.Snapshot(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.shareSnapshot(t, alone, true)
	e.Policy.CheckAllSnapshots = true
	res, err = e.CheckSnapshot(w.ctx, acct, region, alone, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked || len(w.snapshotPerms(t, alone)) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	// Idempotent.
	res, err = e.CheckSnapshot(w.ctx, acct, region, alone, actor)
	if err != nil || res.Outcome != sharing.OutcomeCompliant {
		t.Fatalf("%+v %v", res, err)
	}
}

// BenchmarkCheckImageEvent is the event path against moto: per iteration a
// fresh AMI whose image and snapshot are shared publicly and with a stranger
// (set up untimed), then one CheckImage in enforce mode (timed). It reports
// the median latency (p50-ms) and the EC2 calls per check.
func BenchmarkCheckImageEvent(b *testing.B) {
	w := newMotoWorld(b)
	e := w.enforcer(policy.ModeEnforce, fakeNow)
	e.Now = nil
	setup := func() string {
		ami, snap := w.image(b, "bench")
		w.shareImage(b, ami, lpGroupAll(), lpUser(stranger))
		w.shareSnapshot(b, snap, true, stranger)
		return ami
	}
	// One warm-up check (connections, moto's first backend use).
	if _, err := e.CheckImage(w.ctx, acct, region, setup(), ""); err != nil {
		b.Fatal(err)
	}
	w.calls.Reset()
	var durations []time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		ami := setup()
		b.StartTimer()
		start := time.Now()
		res, err := e.CheckImage(w.ctx, acct, region, ami, "")
		durations = append(durations, time.Since(start))
		if err != nil || res.Outcome != sharing.OutcomeRevoked {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.StopTimer()
	slices.Sort(durations)
	p50 := durations[len(durations)/2]
	calls := float64(w.calls.Total()) / float64(len(durations))
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(calls, "ec2-calls/op")
	if calls > 10 {
		b.Errorf("%.1f EC2 calls per check, budget 10", calls)
	}
}
