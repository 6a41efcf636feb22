package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

// The sharing handler's contract, on the stateful EC2 fake: which events
// reach the engine, and what is logged and returned. The wire path is tested
// against moto in pkg/sharing and functions/sharing.

const (
	sharedAMI  = "ami-0123456789abcdef0"
	sharedSnap = "snap-0123456789abcdef0"
)

// sharingHandler is the guard over the stateful EC2 fake: one owned AMI,
// public and shared with a stranger, whose snapshot is public too.
func sharingHandler(t *testing.T) (*handlers.Sharing, *fake.EC2, *bytes.Buffer) {
	f := fake.NewEC2()
	f.Images[sharedAMI] = &types.Image{ImageId: aws.String(sharedAMI), OwnerId: aws.String("123456789012"),
		State:               types.ImageStateAvailable,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(sharedSnap)}}}}
	f.Snapshots[sharedSnap] = &types.Snapshot{SnapshotId: aws.String(sharedSnap), OwnerId: aws.String("123456789012"),
		Description: aws.String("Created by CreateImage(i-0123456789abcdef0) for " + sharedAMI)}
	f.SetLaunchPermissions(sharedAMI, types.LaunchPermission{Group: types.PermissionGroupAll}, types.LaunchPermission{UserId: aws.String("999988887777")})
	f.SetCreateVolumePermissions(sharedSnap, types.CreateVolumePermission{Group: types.PermissionGroupAll})
	p := policy.Default().Sharing
	p.Mode = policy.ModeEnforce
	var logs bytes.Buffer
	return &handlers.Sharing{
		Enforcer: func(string) *sharing.Enforcer { return &sharing.Enforcer{EC2: f, Policy: p} },
		Auditor:  func(string) *audit.Auditor { t.Fatal("no audit expected"); return nil },
		Account:  "123456789012",
		Log:      logging.New(&logs, "info"),
	}, f, &logs
}

// sharingEvent loads a fixture with every placeholder the guard's events use.
func sharingEvent(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return emulator.Fill(raw, map[string]string{"IMAGE_ID": sharedAMI, "SNAPSHOT_ID": sharedSnap, "STRANGER": "999988887777", "INSTANCE_ID": "i-0123456789abcdef0"})
}

func TestSharingRevokesAndLogsFindings(t *testing.T) {
	h, f, logs := sharingHandler(t)
	resp, err := h.Handle(context.Background(), event(t, "valid/cloudtrail-modifyimageattribute.json"))
	if err != nil || resp.Outcome != sharing.OutcomeRevoked || len(resp.Findings) != 2 {
		t.Fatalf("%+v %v", resp, err)
	}
	if got := f.LaunchPermissions("ami-0123456789abcdef0"); len(got) != 0 {
		t.Errorf("still shared: %v", got)
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), `"findings"`) {
		t.Errorf("a revocation must be logged as a finding: %s", logs)
	}
}

// Issue 7 item 6: the guard acted only on request shapes it parsed. Every
// successful permission change on a valid resource, whatever its request
// looks like (another attribute, an unknown operation type, fields of an
// unexpected type), and every restore (Recycle Bin, EnableImage) is now
// re-checked from what EC2 says: the AMI and its snapshot end private.
// Before the fix the first three were ignored or rejected, the restores
// rejected (unknown eventName), and the AMI stayed public.
func TestSharingReChecksEveryTrigger(t *testing.T) {
	tests := []struct {
		file, note string
		snapshot   bool
	}{
		{"valid/cloudtrail-modifyimageattribute-description.json", "attribute description changed", false},
		{"valid/cloudtrail-modifyimageattribute-unknown-operation-type.json", "unexpected shape", false},
		{"valid/cloudtrail-modifyimageattribute-unexpected-shape.json", "unexpected shape", false},
		{"valid/cloudtrail-modifysnapshotattribute-unexpected-shape.json", "unexpected shape", true},
		{"valid/cloudtrail-restoreimagefromrecyclebin.json", "RestoreImageFromRecycleBin: a restore can bring sharing back", false},
		{"valid/cloudtrail-enableimage.json", "EnableImage", false},
		{"valid/cloudtrail-restoresnapshotfromrecyclebin.json", "RestoreSnapshotFromRecycleBin", true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			h, f, logs := sharingHandler(t)
			resp, err := h.Handle(context.Background(), sharingEvent(t, tt.file))
			if err != nil || resp.Outcome != sharing.OutcomeRevoked || !strings.Contains(resp.Reason, tt.note) {
				t.Fatalf("%+v %v\n%s", resp, err, logs)
			}
			if got := f.CreateVolumePermissions(sharedSnap); len(got) != 0 {
				t.Errorf("snapshot still shared: %v", got)
			}
			if tt.snapshot {
				// A snapshot event checks the snapshot only.
				if resp.ResourceID != sharedSnap || len(f.LaunchPermissions(sharedAMI)) != 2 {
					t.Errorf("resource %q, image %v", resp.ResourceID, f.LaunchPermissions(sharedAMI))
				}
				return
			}
			if got := f.LaunchPermissions(sharedAMI); len(got) != 0 || resp.ResourceID != sharedAMI {
				t.Errorf("resource %q, image still shared: %v", resp.ResourceID, got)
			}
		})
	}
}

// Malformed trigger events are still rejected, naming the field, with no
// AWS call and no error (a retry cannot help).
func TestSharingRejectsMalformedTriggers(t *testing.T) {
	for file, field := range map[string]string{
		"invalid/restoreimagefromrecyclebin-bad-image-id.json":           "detail.requestParameters.RestoreImageFromRecycleBinRequest.ImageId",
		"invalid/restoresnapshotfromrecyclebin-missing-snapshot-id.json": "detail.requestParameters.RestoreSnapshotFromRecycleBinRequest.SnapshotId",
		"invalid/enableimage-failed-call.json":                           "detail.errorCode",
		"invalid/modifysnapshotattribute-failed-call.json":               "detail.errorCode",
		"invalid/modifyimageattribute-image-id-not-string.json":          "detail.requestParameters.imageId",
		"invalid/restoreimagefromrecyclebin-recipient-mismatch.json":     "detail.recipientAccountId",
		"invalid/other-account.json":                                     "account",
	} {
		t.Run(file, func(t *testing.T) {
			h, f, _ := sharingHandler(t)
			resp, err := h.Handle(context.Background(), sharingEvent(t, file))
			if err != nil || resp.Outcome != handlers.OutcomeRejected || !strings.Contains(resp.Reason, field) || total(f.Calls) != 0 {
				t.Errorf("%+v %v, calls %v", resp, err, f.Calls)
			}
		})
	}
}

func total(calls map[string]int) int {
	n := 0
	for _, c := range calls {
		n += c
	}
	return n
}

// eventRecorder is the EventBridge API of the notifier: it records the
// detail types published.
type eventRecorder struct{ published []string }

func (r *eventRecorder) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	for _, e := range in.Entries {
		r.published = append(r.published, aws.ToString(e.DetailType)+" "+aws.ToString(e.Detail))
	}
	return &eventbridge.PutEventsOutput{}, nil
}

// Issue 7 item 7: a partial revocation returned success, so Lambda never
// retried. Now the invocation fails (Lambda retries; removal is
// idempotent), the response and the log name the principal left and why,
// and what was removed is still published. Fake: EC2 accepts the removal
// of the stranger and keeps it.
func TestSharingPartialRevocationFails(t *testing.T) {
	h, f, logs := sharingHandler(t)
	rec := &eventRecorder{}
	h.Notifier = func(string) notify.Notifier { return notify.Notifier{Events: rec} }
	f.StickLaunchPermission(sharedAMI, types.LaunchPermission{UserId: aws.String("999988887777")})
	resp, err := h.Handle(context.Background(), event(t, "valid/cloudtrail-modifyimageattribute.json"))
	var pe *sharing.PartialError
	if !errors.As(err, &pe) || resp.Outcome != sharing.OutcomePartial {
		t.Fatalf("%+v %v", resp, err)
	}
	if !strings.Contains(err.Error(), "account 999988887777") || !strings.Contains(logs.String(), `"failed":[{"principal":{"kind":"account","value":"999988887777"}`) {
		t.Errorf("error %v / log %s must name the principal left", err, logs)
	}
	if len(rec.published) != 2 || !strings.Contains(rec.published[0], `"action":"partial"`) {
		t.Errorf("published %v", rec.published)
	}
	// Lambda's retry: the stuck principal is still reported, the rest done.
	if _, err := h.Handle(context.Background(), event(t, "valid/cloudtrail-modifyimageattribute.json")); !errors.As(err, &pe) {
		t.Errorf("retry: %v", err)
	}
}

// Issue 7 item 7: a sharing audit that could not do its job returned
// success, so no alarm fired. It now fails the invocation, after the report
// is logged and its findings published. Fake: the AMI listing fails.
func TestSharingAuditFailureFailsTheInvocation(t *testing.T) {
	h, f, logs := sharingHandler(t)
	p := policy.Default().Sharing
	h.Auditor = func(string) *audit.Auditor {
		return &audit.Auditor{EC2: f, Checker: h.Enforcer("us-east-1"), Policy: p, Clock: clock.Real()}
	}
	f.Errors["DescribeImages"] = []error{fake.APIError("UnauthorizedOperation")}
	resp, err := h.Handle(context.Background(), event(t, "valid/scheduled.json"))
	if err == nil || !strings.Contains(err.Error(), "listing images") || resp.Outcome != handlers.OutcomeAuditFailed {
		t.Fatalf("%+v %v", resp, err)
	}
	if resp.Audit == nil || len(resp.Audit.Errors) != 1 {
		t.Errorf("report %+v", resp.Audit)
	}
	line := logs.String()
	if !strings.Contains(line, `"level":"ERROR"`) || !strings.Contains(line, `"errors":["listing images`) || !strings.Contains(line, `"images_checked":0`) {
		t.Errorf("the report must be logged with the error: %s", line)
	}
}
