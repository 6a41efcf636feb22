package handlers_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

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

func sharingHandler(t *testing.T) (*handlers.Sharing, *fake.EC2, *bytes.Buffer) {
	f := fake.NewEC2()
	f.Images["ami-0123456789abcdef0"] = &types.Image{ImageId: aws.String("ami-0123456789abcdef0"), OwnerId: aws.String("123456789012"),
		State: types.ImageStateAvailable}
	f.SetLaunchPermissions("ami-0123456789abcdef0", types.LaunchPermission{Group: types.PermissionGroupAll}, types.LaunchPermission{UserId: aws.String("999988887777")})
	p := policy.Default().Sharing
	p.Mode = policy.ModeEnforce
	var logs bytes.Buffer
	return &handlers.Sharing{
		Enforcer: func(string) *sharing.Enforcer { return &sharing.Enforcer{EC2: f, Policy: p} },
		Auditor:  func(string) *audit.Auditor { t.Fatal("no audit expected"); return nil },
		Account:  "123456789012",
		Mode:     "enforce",
		Log:      logging.New(&logs, "info"),
	}, f, &logs
}

func TestSharingRevokesAndLogsFindings(t *testing.T) {
	h, f, logs := sharingHandler(t)
	resp, err := h.Handle(context.Background(), event(t, "valid/cloudtrail-modifyimageattribute.json"))
	if err != nil || resp.Outcome != sharing.OutcomeRevoked || len(resp.Findings) != 1 {
		t.Fatalf("%+v %v", resp, err)
	}
	if got := f.LaunchPermissions("ami-0123456789abcdef0"); len(got) != 0 {
		t.Errorf("still shared: %v", got)
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), `"findings"`) {
		t.Errorf("a revocation must be logged as a finding: %s", logs)
	}
}

func TestSharingIgnoresOtherAttributes(t *testing.T) {
	h, f, _ := sharingHandler(t)
	resp, err := h.Handle(context.Background(), event(t, "valid/cloudtrail-modifyimageattribute-description.json"))
	if err != nil || resp.Outcome != handlers.OutcomeIgnored || len(f.Calls) != 0 {
		t.Fatalf("%+v %v, calls %v", resp, err, f.Calls)
	}
}
