package audit_test

// The audit with the real engine (sharing.Enforcer) and the real SDK against
// moto: listing, per-AMI checks, the cursor in SSM, and the guardrail calls
// moto does not implement (HTTP 500: reported as unknown, not fatal). moto
// returns one page and never throttles; paging and pacing are covered by
// audit_test.go.

import (
	"context"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}

const (
	motoAccount = "123456789012" // moto's default account
	motoRegion  = "us-east-1"
	allowed     = "111122223333"
	stranger    = "999988887777"
)

func TestAuditWithEnforcerOnMoto(t *testing.T) {
	ctx := context.Background()
	moto := emulator.SharedMoto(t)
	cfg, err := moto.Config(ctx, motoRegion)
	if err != nil {
		t.Fatal(err)
	}
	client, params := ec2.NewFromConfig(cfg), ssm.NewFromConfig(cfg)
	seed := emulator.Seeder{EC2: client}
	inst, err := seed.Instance(ctx, emulator.ForeignImageID)
	if err != nil {
		t.Fatal(err)
	}
	var amis []string
	for _, name := range []string{"public", "stranger", "allowed"} {
		id, err := seed.CreateImage(ctx, inst, name)
		if err != nil {
			t.Fatal(err)
		}
		amis = append(amis, id)
	}
	share := func(ami string, p types.LaunchPermission) {
		if _, err := client.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami),
			LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{p}}}); err != nil {
			t.Fatal(err)
		}
	}
	share(amis[0], types.LaunchPermission{Group: types.PermissionGroupAll})
	share(amis[1], types.LaunchPermission{UserId: aws.String(stranger)})
	share(amis[2], types.LaunchPermission{UserId: aws.String(allowed)})
	perms := func() [][]string {
		var all [][]string
		for _, ami := range amis {
			out, err := client.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(ami), Attribute: types.ImageAttributeNameLaunchPermission})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range out.LaunchPermissions {
				got = append(got, aws.ToString(p.UserId)+string(p.Group))
			}
			sort.Strings(got)
			all = append(all, got)
		}
		return all
	}
	before := perms()
	// The stranger's AMI carries a self-service exception: no until, so it
	// is ignored, and the report lists it with why.
	if _, err := client.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{amis[1]},
		Tags: []types.Tag{{Key: aws.String("ami-housekeeper:sharing-exception"), Value: aws.String("x;principals=" + stranger)}}}); err != nil {
		t.Fatal(err)
	}
	// A snapshot behind no AMI, shared publicly (moto applies only the
	// legacy request form).
	loose, err := seed.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(loose),
		Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeAdd, GroupNames: []string{"all"}}); err != nil {
		t.Fatal(err)
	}

	pol := policy.Default().Sharing
	pol.Mode, pol.AllowedAccounts, pol.EnableImageBlockPublicAccess, pol.CheckAllSnapshots = policy.ModeAudit, []string{allowed}, true, true
	a := &audit.Auditor{EC2: client, Guardrail: client, Cursor: params, CursorName: "/ami-housekeeper/sharing-audit-cursor",
		Checker: &sharing.Enforcer{EC2: client, Policy: pol}, Policy: pol, Clock: clock.Real()}
	r := a.Run(ctx, motoAccount, motoRegion, "")

	if !r.Complete || r.ImagesChecked != 3 || r.SnapshotsChecked != 3+1 || len(r.Errors) != 0 {
		t.Fatalf("%+v", r)
	}
	if !slices.Equal(r.Public, amis[:1]) {
		t.Errorf("public %v, want %v", r.Public, amis[:1])
	}
	found := map[string]string{}
	for _, f := range r.Findings {
		found[f.ResourceID] = f.Action
	}
	if len(found) != 3 || found[amis[0]] != sharing.ActionWouldRevoke || found[amis[1]] != sharing.ActionWouldRevoke ||
		found[loose] != sharing.ActionWouldRevoke || r.Violations != 3 || r.Revoked != 0 {
		t.Errorf("findings %v (violations %d, revoked %d)", found, r.Violations, r.Revoked)
	}
	if len(r.Exceptions) != 1 || r.Exceptions[0].ResourceID != amis[1] || r.Exceptions[0].Ticket != "x" ||
		r.Exceptions[0].State != sharing.ExceptionIgnored || !strings.Contains(r.Exceptions[0].Reason, "no until date") {
		t.Errorf("exceptions %+v", r.Exceptions)
	}
	if !slices.EqualFunc(before, perms(), slices.Equal) {
		t.Errorf("audit mode changed launch permissions: %v -> %v", before, perms())
	}
	g := r.Guardrail
	if !strings.HasPrefix(g.ImageBlockPublicAccess, "unknown: ") || !strings.HasPrefix(g.SnapshotBlockPublicAccess, "unknown: ") || g.Enabled {
		t.Errorf("guardrail %+v", g)
	}
	out, err := params.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(a.CursorName)})
	if err != nil || aws.ToString(out.Parameter.Value) != audit.CursorStart {
		t.Errorf("cursor after a complete pass: %v %v", out, err)
	}
}
