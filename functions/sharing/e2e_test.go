package main_test

// End-to-end: the real sharing binary (built for this machine by
// `make build-host`) under the AWS Lambda Runtime Interface Emulator,
// recorded-shape CloudTrail events for both attributes in both request forms,
// a scheduled audit, and moto server as the account.
//
// moto applies snapshot create-volume permissions only in the legacy request
// form (OperationType + UserIds/GroupNames), so the test shares snapshots that
// way; the guard removes them the same way.

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

const (
	account  = "123456789012"
	allowed  = "111122223333"
	stranger = "999988887777"
	orgARN   = "arn:aws:organizations::123456789012:organization/o-exampleorgid"
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}

func policyYAML(mode string) string {
	return `
version: 1
sharing:
  mode: ` + mode + `
  allowed_accounts: ["` + allowed + `"]
`
}

type world struct {
	ctx  context.Context
	moto *emulator.Moto
	ec2  *ec2.Client
	sqs  *sqs.Client
	seed emulator.Seeder
	inst string
	q    string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	moto := emulator.SharedMoto(t)
	cfg, err := moto.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{ctx: ctx, moto: moto, ec2: ec2.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg)}
	w.seed = emulator.Seeder{EC2: w.ec2}
	if w.inst, err = w.seed.Instance(ctx, emulator.ForeignImageID); err != nil {
		t.Fatal(err)
	}
	q, err := w.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("findings")})
	if err != nil {
		t.Fatal(err)
	}
	w.q = aws.ToString(q.QueueUrl)
	eb := eventbridge.NewFromConfig(cfg)
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("findings"), EventPattern: aws.String(`{"source":["ami-housekeeper"],"detail-type":["AMI Sharing Violation"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("findings"), Targets: []ebtypes.Target{{Id: aws.String("q"),
		Arn: aws.String("arn:aws:sqs:us-east-1:" + account + ":findings")}}}); err != nil {
		t.Fatal(err)
	}
	return w
}

// sharedImage makes an AMI shared publicly, with the stranger, the allowed
// account and an organization, and its snapshot shared publicly and with the
// stranger.
func (w *world) sharedImage(t *testing.T) (string, string) {
	t.Helper()
	ami, err := w.seed.CreateImage(w.ctx, w.inst, "shared")
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := w.seed.Snapshots(w.ctx, ami)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("%v %v", snaps, err)
	}
	w.shareImage(t, ami)
	w.shareSnapshot(t, snaps[0])
	return ami, snaps[0]
}

func (w *world) shareImage(t *testing.T, ami string) {
	t.Helper()
	if _, err := w.ec2.ModifyImageAttribute(w.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{
			{Group: types.PermissionGroupAll}, {UserId: aws.String(stranger)}, {UserId: aws.String(allowed)}, {OrganizationArn: aws.String(orgARN)},
		}}}); err != nil {
		t.Fatal(err)
	}
}

func (w *world) shareSnapshot(t *testing.T, snap string) {
	t.Helper()
	if _, err := w.ec2.ModifySnapshotAttribute(w.ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snap),
		Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeAdd,
		UserIds: []string{stranger}, GroupNames: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
}

func (w *world) launchPermissions(t *testing.T, ami string) []string {
	t.Helper()
	out, err := w.ec2.DescribeImageAttribute(w.ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(ami), Attribute: types.ImageAttributeNameLaunchPermission})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range out.LaunchPermissions {
		got = append(got, aws.ToString(p.UserId)+string(p.Group)+aws.ToString(p.OrganizationArn)+aws.ToString(p.OrganizationalUnitArn))
	}
	sort.Strings(got)
	return got
}

func (w *world) volumePermissions(t *testing.T, snap string) []string {
	t.Helper()
	out, err := w.ec2.DescribeSnapshotAttribute(w.ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range out.CreateVolumePermissions {
		got = append(got, aws.ToString(p.UserId)+string(p.Group))
	}
	sort.Strings(got)
	return got
}

func (w *world) start(t *testing.T, mode string, env ...string) *emulator.RIE {
	t.Helper()
	bin, err := emulator.FunctionBinary("sharing")
	if err != nil {
		t.Fatal(err)
	}
	rie, err := emulator.StartRIE(w.ctx, emulator.RIEOptions{Bootstrap: bin, Env: append(append(w.moto.Env("us-east-1"),
		"HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+policyYAML(mode), "HOUSEKEEPER_REPORT_EVENT_BUS=default"), env...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rie.Stop()
		if t.Failed() {
			t.Logf("function output:\n%s", rie.Logs())
		}
	})
	return rie
}

type response struct {
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason"`
	ResourceID string `json:"resource_id"`
	Findings   []struct {
		Action  string `json:"action"`
		Actor   string `json:"actor"`
		Removed []struct{ Kind, Value string }
	} `json:"findings"`
	ErrorType string `json:"errorType"`
}

func (w *world) send(t *testing.T, rie *emulator.RIE, fixture string, values map[string]string) response {
	t.Helper()
	raw, err := emulator.Fixture("events/" + fixture)
	if err != nil {
		t.Fatal(err)
	}
	body, err := rie.Invoke(w.ctx, emulator.Fill(raw, values))
	if err != nil {
		t.Fatal(err)
	}
	var r response
	if err := json.Unmarshal(body, &r); err != nil || r.ErrorType != "" {
		t.Fatalf("%s: %s (%v)", fixture, body, err)
	}
	return r
}

// Both attributes, both request forms: the guard removes exactly what the
// policy does not allow, and the allowed account keeps access.
func TestE2EPermissionEvents(t *testing.T) {
	w := newWorld(t)
	rie := w.start(t, "enforce")
	for _, fixture := range []string{"valid/cloudtrail-modifyimageattribute.json", "valid/cloudtrail-modifyimageattribute-legacy.json"} {
		t.Run(fixture, func(t *testing.T) {
			ami, snap := w.sharedImage(t)
			r := w.send(t, rie, fixture, map[string]string{"IMAGE_ID": ami, "STRANGER": stranger})
			if r.Outcome != "revoked" || len(r.Findings) == 0 || r.Findings[0].Actor != "arn:aws:sts::123456789012:assumed-role/developer/mallory" {
				t.Fatalf("%+v", r)
			}
			if got := w.launchPermissions(t, ami); !slices.Equal(got, []string{allowed}) {
				t.Errorf("launch permissions after the guard: %v, want only %s", got, allowed)
			}
			if got := w.volumePermissions(t, snap); len(got) != 0 {
				t.Errorf("snapshot still shared: %v", got)
			}
			tags, _ := w.seed.Tags(w.ctx, ami)
			if tags["ami-housekeeper:sharing-revoked-at"] == "" || !strings.Contains(tags["ami-housekeeper:sharing-revoked"], stranger) {
				t.Errorf("violation tags: %v", tags)
			}
			// A replay finds nothing to do.
			if r := w.send(t, rie, fixture, map[string]string{"IMAGE_ID": ami, "STRANGER": stranger}); r.Outcome != "compliant" {
				t.Errorf("replay: %+v", r)
			}
		})
	}
	for _, fixture := range []string{"valid/cloudtrail-modifysnapshotattribute.json", "valid/cloudtrail-modifysnapshotattribute-legacy.json"} {
		t.Run(fixture, func(t *testing.T) {
			ami, snap := w.sharedImage(t)
			r := w.send(t, rie, fixture, map[string]string{"SNAPSHOT_ID": snap, "STRANGER": stranger})
			if r.Outcome != "revoked" {
				t.Fatalf("%+v", r)
			}
			if got := w.volumePermissions(t, snap); len(got) != 0 {
				t.Errorf("snapshot still shared: %v", got)
			}
			_ = ami
		})
	}
	// Issue 7 item 6: any successful permission event, whatever its
	// request shape or attribute, and any restore is re-checked from what
	// EC2 says (moto has no Recycle Bin: the event stands for the restore).
	for _, fixture := range []string{"valid/cloudtrail-modifyimageattribute-description.json",
		"valid/cloudtrail-modifyimageattribute-unknown-operation-type.json", "valid/cloudtrail-modifyimageattribute-unexpected-shape.json",
		"valid/cloudtrail-restoreimagefromrecyclebin.json", "valid/cloudtrail-enableimage.json"} {
		t.Run(fixture, func(t *testing.T) {
			ami, snap := w.sharedImage(t)
			if r := w.send(t, rie, fixture, map[string]string{"IMAGE_ID": ami}); r.Outcome != "revoked" || r.ResourceID != ami {
				t.Errorf("%+v", r)
			}
			if got := w.launchPermissions(t, ami); !slices.Equal(got, []string{allowed}) {
				t.Errorf("launch permissions after the guard: %v, want only %s", got, allowed)
			}
			if got := w.volumePermissions(t, snap); len(got) != 0 {
				t.Errorf("snapshot still shared: %v", got)
			}
		})
	}
	for _, fixture := range []string{"valid/cloudtrail-modifysnapshotattribute-unexpected-shape.json", "valid/cloudtrail-restoresnapshotfromrecyclebin.json"} {
		t.Run(fixture, func(t *testing.T) {
			_, snap := w.sharedImage(t)
			if r := w.send(t, rie, fixture, map[string]string{"SNAPSHOT_ID": snap}); r.Outcome != "revoked" || r.ResourceID != snap {
				t.Errorf("%+v", r)
			}
			if got := w.volumePermissions(t, snap); len(got) != 0 {
				t.Errorf("snapshot still shared: %v", got)
			}
		})
	}
	// Findings reached EventBridge subscribers.
	msgs, err := w.sqs.ReceiveMessage(w.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(w.q), MaxNumberOfMessages: 10})
	if err != nil || len(msgs.Messages) == 0 {
		t.Errorf("no AMI Sharing Violation event: %v", err)
	}
}

func TestE2EAuditModeChangesNothing(t *testing.T) {
	w := newWorld(t)
	rie := w.start(t, "audit")
	ami, snap := w.sharedImage(t)
	before, beforeSnap := w.launchPermissions(t, ami), w.volumePermissions(t, snap)
	r := w.send(t, rie, "valid/cloudtrail-modifyimageattribute.json", map[string]string{"IMAGE_ID": ami, "STRANGER": stranger})
	if r.Outcome != "would-revoke" || len(r.Findings) == 0 {
		t.Fatalf("%+v", r)
	}
	if !slices.Equal(before, w.launchPermissions(t, ami)) || !slices.Equal(beforeSnap, w.volumePermissions(t, snap)) {
		t.Errorf("audit mode changed permissions")
	}
}

// The scheduled audit finds sharing that predates the deployment.
func TestE2EScheduledAudit(t *testing.T) {
	w := newWorld(t)
	rie := w.start(t, "enforce")
	ami1, snap1 := w.sharedImage(t)
	ami2, _ := w.sharedImage(t)
	raw, err := emulator.Fixture("events/valid/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	// ami2 carries a self-service exception (no until): it keeps nothing,
	// and the audit lists it with why.
	if _, err := w.ec2.CreateTags(w.ctx, &ec2.CreateTagsInput{Resources: []string{ami2},
		Tags: []types.Tag{{Key: aws.String("ami-housekeeper:sharing-exception"), Value: aws.String("x;principals=public," + stranger)}}}); err != nil {
		t.Fatal(err)
	}
	body, err := rie.Invoke(w.ctx, raw)
	if err != nil || !strings.Contains(string(body), `"outcome":"audited"`) {
		t.Fatalf("%s %v", body, err)
	}
	var r struct {
		Audit struct {
			Exceptions []struct {
				ResourceID string `json:"resource_id"`
				Ticket     string `json:"ticket"`
				State      string `json:"state"`
				Reason     string `json:"reason"`
			} `json:"exceptions"`
		} `json:"audit"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if x := r.Audit.Exceptions; len(x) != 1 || x[0].ResourceID != ami2 || x[0].Ticket != "x" || x[0].State != "ignored" ||
		!strings.Contains(x[0].Reason, "no until date") {
		t.Errorf("audit exceptions %+v", x)
	}
	for _, ami := range []string{ami1, ami2} {
		if got := w.launchPermissions(t, ami); !slices.Equal(got, []string{allowed}) {
			t.Errorf("%s after the audit: %v", ami, got)
		}
	}
	if got := w.volumePermissions(t, snap1); len(got) != 0 {
		t.Errorf("snapshot still shared: %v", got)
	}
}

func TestE2EBadEvents(t *testing.T) {
	w := newWorld(t)
	rie := w.start(t, "enforce")
	for _, name := range []string{"invalid/malformed-json.json", "invalid/modifyimageattribute-missing-image-id.json",
		"invalid/modifysnapshotattribute-bad-snapshot-id.json", "invalid/other-account.json",
		"invalid/restoreimagefromrecyclebin-bad-image-id.json", "invalid/enableimage-failed-call.json",
		"invalid/modifysnapshotattribute-failed-call.json", "invalid/restoresnapshotfromrecyclebin-missing-snapshot-id.json"} {
		if r := w.send(t, rie, name, map[string]string{"IMAGE_ID": "ami-0123456789abcdef0", "INSTANCE_ID": w.inst}); r.Outcome != "rejected" {
			t.Errorf("%s: %+v", name, r)
		}
	}
}

// Issue 7 item 7: a scheduled audit that cannot do its job fails the
// invocation (the function's Errors alarm), after doing what it could and
// logging its report. On moto the failure is a cursor parameter holding
// something that is not an ID (a listing or enforcement failure goes the
// same way: see pkg/sharing/audit).
func TestE2EFailedAuditFailsTheInvocation(t *testing.T) {
	w := newWorld(t)
	cfg, err := w.moto.Config(w.ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	const cursor = "/e2e/sharing-audit-cursor"
	if _, err := ssm.NewFromConfig(cfg).PutParameter(w.ctx, &ssm.PutParameterInput{Name: aws.String(cursor), Value: aws.String("garbage"),
		Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	rie := w.start(t, "enforce", "HOUSEKEEPER_AUDIT_CURSOR_PARAMETER="+cursor)
	ami, _ := w.sharedImage(t)
	raw, err := emulator.Fixture("events/valid/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	body, err := rie.Invoke(w.ctx, raw)
	if err != nil || !strings.Contains(string(body), `"errorType"`) || !strings.Contains(string(body), "sharing audit of account "+account) {
		t.Fatalf("want a failed invocation, got %s %v", body, err)
	}
	// The audit still did its job before failing, and logged its report.
	if got := w.launchPermissions(t, ami); !slices.Equal(got, []string{allowed}) {
		t.Errorf("%s after the audit: %v", ami, got)
	}
	if logs := rie.SettledLogs(); !strings.Contains(logs, `"outcome":"audit-failed"`) || !strings.Contains(logs, "garbage") {
		t.Errorf("report not logged:\n%s", logs)
	}
}
