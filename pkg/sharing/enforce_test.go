package sharing_test

// Enforcer tests against the stateful fake (pkg/fake), for what moto cannot
// show: throttling part-way through, a removal EC2 accepts that leaves the
// principal in place (partial), disabled AMIs, a failing CreateTags, and the
// DescribeImages snapshot filter moto lacks. The wire path is covered by
// integration_test.go against moto.

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
)

const (
	fakeAMI  = "ami-0000000000000001a"
	fakeSnap = "snap-0000000000000001a"
	region   = "us-east-1"
	actor    = "arn:aws:iam::123456789012:user/mallory"
)

var fakeNow = day("2026-10-01T12:00:00Z")

// fakeWorld is one owned AMI with one snapshot, shared publicly, with a
// stranger, an allowed account and an allowed and a foreign organization;
// the snapshot publicly, with the stranger and the allowed account.
func fakeWorld(t *testing.T) *fake.EC2 {
	t.Helper()
	f := fake.NewEC2()
	f.Images[fakeAMI] = &types.Image{ImageId: aws.String(fakeAMI), OwnerId: aws.String(acct), State: types.ImageStateAvailable,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(fakeSnap)}}}}
	f.Snapshots[fakeSnap] = &types.Snapshot{SnapshotId: aws.String(fakeSnap), OwnerId: aws.String(acct),
		Description: aws.String("Created by CreateImage(i-0123456789abcdef0) for " + fakeAMI)}
	f.SetLaunchPermissions(fakeAMI, lpGroupAll(), lpUser(stranger), lpUser(allowed), lpOrg(orgOK), lpOrg(orgBad))
	f.SetCreateVolumePermissions(fakeSnap, cvGroupAll(), cvUser(stranger), cvUser(allowed))
	return f
}

func lpGroupAll() types.LaunchPermission {
	return types.LaunchPermission{Group: types.PermissionGroupAll}
}
func lpUser(id string) types.LaunchPermission {
	return types.LaunchPermission{UserId: aws.String(id)}
}
func lpOrg(arn string) types.LaunchPermission {
	return types.LaunchPermission{OrganizationArn: aws.String(arn)}
}
func cvGroupAll() types.CreateVolumePermission {
	return types.CreateVolumePermission{Group: types.PermissionGroupAll}
}
func cvUser(id string) types.CreateVolumePermission {
	return types.CreateVolumePermission{UserId: aws.String(id)}
}

// e2 is an enforcing Enforcer whose exceptions may keep public.
func e2(api *fake.EC2) *sharing.Enforcer {
	e := enforcer(api, policy.ModeEnforce)
	e.Policy.Exceptions.AllowPublic = true
	return e
}

func enforcer(api *fake.EC2, mode policy.Mode) *sharing.Enforcer {
	p := testPolicy()
	p.Mode = mode
	return &sharing.Enforcer{EC2: api, Policy: p, Now: func() time.Time { return fakeNow }}
}

func total(calls map[string]int) int {
	n := 0
	for _, c := range calls {
		n += c
	}
	return n
}

func imagePrincipals(f *fake.EC2, id string) []sharing.Principal {
	return sortedPrincipals(sharing.PrincipalsOfImage(f.LaunchPermissions(id)))
}

func snapshotPrincipals(f *fake.EC2, id string) []sharing.Principal {
	return sortedPrincipals(sharing.PrincipalsOfSnapshot(f.CreateVolumePermissions(id)))
}

// sortedPrincipals orders principals by their text, to compare sets.
func sortedPrincipals(p []sharing.Principal) []sharing.Principal {
	out := slices.Clone(p)
	slices.SortFunc(out, func(a, b sharing.Principal) int { return strings.Compare(a.String(), b.String()) })
	return out
}

func TestFakeEnforceRemovesExactlyTheDisallowed(t *testing.T) {
	f := fakeWorld(t)
	res, err := enforcer(f, policy.ModeEnforce).CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != sharing.OutcomeRevoked || len(res.Findings) != 2 || len(res.Verdicts) != 2 {
		t.Fatalf("result %+v", res)
	}
	if got, want := imagePrincipals(f, fakeAMI), sortedPrincipals(ps(pAllowed, pOrgOK)); !reflect.DeepEqual(got, want) {
		t.Errorf("image keeps %v, want %v", got, want)
	}
	if got, want := snapshotPrincipals(f, fakeSnap), ps(pAllowed); !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot keeps %v, want %v", got, want)
	}
	img, snap := res.Findings[0], res.Findings[1]
	if img.ResourceID != fakeAMI || img.Action != sharing.ActionRevoked || img.Actor != actor || img.Account != acct || img.Region != region ||
		!reflect.DeepEqual(img.Removed, ps(pPublic, pOrgBad, pStranger)) || !reflect.DeepEqual(img.Kept, ps(pOrgOK, pAllowed)) ||
		len(img.Remaining) != 0 || !img.Time.Equal(fakeNow) {
		t.Errorf("image finding %+v", img)
	}
	if want := []string{"account 999988887777 removed, but it keeps access if it is a member of organization " + orgOK}; !reflect.DeepEqual(img.Shadowed, want) {
		t.Errorf("shadowed %q", img.Shadowed)
	}
	if snap.ResourceType != sharing.KindSnapshot || snap.ResourceID != fakeSnap || snap.ImageID != fakeAMI ||
		!reflect.DeepEqual(snap.Removed, ps(pPublic, pStranger)) || snap.Action != sharing.ActionRevoked {
		t.Errorf("snapshot finding %+v", snap)
	}
	tags := f.Tags(fakeAMI)
	if tags[sharing.TagViolationAt] != "2026-10-01T12:00:00Z" ||
		tags[sharing.TagViolationRemoved] != "public, organization "+orgBad+", account 999988887777" {
		t.Errorf("tags %v", tags)
	}
	want := map[string]int{"DescribeImages": 1, "DescribeImageAttribute": 2, "ModifyImageAttribute": 1,
		"DescribeSnapshotAttribute": 2, "ModifySnapshotAttribute": 1, "CreateTags": 1}
	if !reflect.DeepEqual(f.Calls, want) {
		t.Errorf("calls %v, want %v", f.Calls, want)
	}

	// Idempotent: the second run finds it compliant and changes nothing.
	clear(f.Calls)
	res, err = enforcer(f, policy.ModeEnforce).CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if err != nil || res.Outcome != sharing.OutcomeCompliant || len(res.Findings) != 0 || len(res.Verdicts) != 2 {
		t.Fatalf("second run %+v %v", res, err)
	}
	if want := map[string]int{"DescribeImages": 1, "DescribeImageAttribute": 1, "DescribeSnapshotAttribute": 1}; !reflect.DeepEqual(f.Calls, want) {
		t.Errorf("second run calls %v", f.Calls)
	}
}

func TestFakeAuditChangesNothing(t *testing.T) {
	f := fakeWorld(t)
	before, beforeSnap := imagePrincipals(f, fakeAMI), snapshotPrincipals(f, fakeSnap)
	res, err := enforcer(f, policy.ModeAudit).CheckImage(context.Background(), acct, region, fakeAMI, "")
	if err != nil || res.Outcome != sharing.OutcomeWouldRevoke || len(res.Findings) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	for _, fd := range res.Findings {
		if fd.Action != sharing.ActionWouldRevoke || len(fd.Removed) == 0 {
			t.Errorf("finding %+v", fd)
		}
	}
	if f.Calls["ModifyImageAttribute"]+f.Calls["ModifySnapshotAttribute"]+f.Calls["CreateTags"] != 0 || total(f.Calls) != 3 {
		t.Errorf("audit calls %v", f.Calls)
	}
	if !reflect.DeepEqual(imagePrincipals(f, fakeAMI), before) || !reflect.DeepEqual(snapshotPrincipals(f, fakeSnap), beforeSnap) {
		t.Error("audit changed permissions")
	}
}

func TestFakeThrottledPartWayThenRetried(t *testing.T) {
	f := fakeWorld(t)
	// The image is fixed, then reading the snapshot is throttled.
	f.Errors["DescribeSnapshotAttribute"] = []error{fake.APIError("RequestLimitExceeded")}
	e := enforcer(f, policy.ModeEnforce)
	res, err := e.CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if err == nil || !awserr.IsRetryable(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if len(res.Findings) != 1 || res.Findings[0].ResourceID != fakeAMI || res.Findings[0].Action != sharing.ActionRevoked {
		t.Fatalf("findings before the error: %+v", res.Findings)
	}
	// What was removed is recorded on the AMI even though the check failed.
	if got := f.Tags(fakeAMI)[sharing.TagViolationRemoved]; got != "public, organization "+orgBad+", account 999988887777" {
		t.Errorf("tag after the throttled run: %q", got)
	}
	if got := snapshotPrincipals(f, fakeSnap); len(got) != 3 {
		t.Errorf("snapshot touched: %v", got)
	}

	// The caller retries: the image is compliant, the snapshot is fixed.
	later := fakeNow.Add(time.Minute)
	e.Now = func() time.Time { return later }
	res, err = e.CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked || len(res.Findings) != 1 || res.Findings[0].ResourceID != fakeSnap {
		t.Fatalf("retry %+v %v", res, err)
	}
	tags := f.Tags(fakeAMI)
	if tags[sharing.TagViolationRemoved] != "public, account 999988887777" || tags[sharing.TagViolationAt] != "2026-10-01T12:01:00Z" {
		t.Errorf("tags after retry %v", tags)
	}

	// Throttled on the removal itself: nothing changed, nothing tagged.
	g := fakeWorld(t)
	g.Errors["ModifyImageAttribute"] = []error{fake.APIError("Throttling")}
	res, err = enforcer(g, policy.ModeEnforce).CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if !awserr.IsRetryable(err) || len(res.Findings) != 1 || res.Findings[0].Action != sharing.ActionFailed ||
		len(res.Findings[0].Remaining) != 3 || res.Findings[0].Error == "" || res.Outcome != sharing.OutcomePartial {
		t.Fatalf("%+v %v", res, err)
	}
	if g.Calls["CreateTags"] != 0 || g.Calls["DescribeSnapshotAttribute"] != 0 || len(imagePrincipals(g, fakeAMI)) != 5 {
		t.Errorf("calls %v, image %v", g.Calls, imagePrincipals(g, fakeAMI))
	}
}

func TestFakePermanentErrorIsReturned(t *testing.T) {
	f := fakeWorld(t)
	f.Errors["ModifySnapshotAttribute"] = []error{fake.APIError("UnauthorizedOperation")}
	res, err := enforcer(f, policy.ModeEnforce).CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if err == nil || awserr.Classify(err) != awserr.KindPermanent || !strings.Contains(err.Error(), fakeSnap) {
		t.Fatalf("err = %v", err)
	}
	// The image was fixed and tagged before the snapshot failed.
	if len(res.Findings) != 2 || res.Findings[1].Action != sharing.ActionFailed || f.Tags(fakeAMI)[sharing.TagViolationRemoved] == "" {
		t.Errorf("%+v, tags %v", res, f.Tags(fakeAMI))
	}
}

func TestFakeRemovalAcceptedButStillThereIsPartial(t *testing.T) {
	f := fakeWorld(t)
	// EC2 says yes to removing the stranger, and keeps it (as it does for an
	// account with access through a shared organization).
	f.StickLaunchPermission(fakeAMI, lpUser(stranger))
	f.StickCreateVolumePermission(fakeSnap, cvGroupAll())
	res, err := enforcer(f, policy.ModeEnforce).CheckImage(context.Background(), acct, region, fakeAMI, actor)
	// Issue 7 item 7: a partial revocation returned success, so Lambda never
	// retried. It is an error now, naming each principal left and why, and
	// the snapshot is still checked after the image's partial revocation.
	var pe *sharing.PartialError
	if !errors.As(err, &pe) || res.Outcome != sharing.OutcomePartial || len(res.Findings) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	for _, want := range []string{"image " + fakeAMI + ": account 999988887777", "snapshot " + fakeSnap + ": public", "confirming read still lists it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	img, snap := res.Findings[0], res.Findings[1]
	if len(img.Failed) != 1 || img.Failed[0].Principal != pStranger || len(snap.Failed) != 1 || snap.Failed[0].Principal != pPublic {
		t.Errorf("failed: image %+v, snapshot %+v", img.Failed, snap.Failed)
	}
	if img.Action != sharing.ActionPartial || !reflect.DeepEqual(img.Remaining, ps(pStranger)) || !reflect.DeepEqual(img.Removed, ps(pPublic, pOrgBad)) {
		t.Errorf("image finding %+v", img)
	}
	if snap.Action != sharing.ActionPartial || !reflect.DeepEqual(snap.Remaining, ps(pPublic)) || !reflect.DeepEqual(snap.Removed, ps(pStranger)) {
		t.Errorf("snapshot finding %+v", snap)
	}
	// The tag lists only what is really gone: public from the image, the
	// stranger from the snapshot, the foreign organization.
	if got := f.Tags(fakeAMI)[sharing.TagViolationRemoved]; got != "public, organization "+orgBad+", account 999988887777" {
		t.Errorf("tag %q", got)
	}
}

// EC2 refuses a whole ModifyImageAttribute for one item it does not accept;
// the others must still go, and the one left is named (fake: it rejects the
// group "friends" with InvalidAMIAttributeItemValue, as EC2 does).
func TestFakeOneRefusedPrincipalDoesNotKeepTheOthers(t *testing.T) {
	f := fakeWorld(t)
	friends := types.LaunchPermission{Group: "friends"}
	f.SetLaunchPermissions(fakeAMI, lpGroupAll(), lpUser(stranger), friends)
	f.SetCreateVolumePermissions(fakeSnap)
	res, err := enforcer(f, policy.ModeEnforce).CheckImage(context.Background(), acct, region, fakeAMI, actor)
	var pe *sharing.PartialError
	if !errors.As(err, &pe) || res.Outcome != sharing.OutcomePartial {
		t.Fatalf("%+v %v", res, err)
	}
	pFriends := sharing.Principal{Kind: "group", Value: "friends"}
	if got := imagePrincipals(f, fakeAMI); !reflect.DeepEqual(got, ps(pFriends)) {
		t.Errorf("left on the image: %v, want only the refused group", got)
	}
	fd := res.Findings[0]
	if fd.Action != sharing.ActionPartial || !reflect.DeepEqual(fd.Removed, ps(pPublic, pStranger)) || !reflect.DeepEqual(fd.Remaining, ps(pFriends)) ||
		len(fd.Failed) != 1 || fd.Failed[0].Principal != pFriends || !strings.Contains(fd.Failed[0].Error, "InvalidAMIAttributeItemValue") {
		t.Errorf("finding %+v", fd)
	}
	// One batch call, then one call per principal.
	if f.Calls["ModifyImageAttribute"] != 4 {
		t.Errorf("ModifyImageAttribute calls = %d, want 4", f.Calls["ModifyImageAttribute"])
	}
	if !strings.Contains(err.Error(), "group friends") {
		t.Errorf("error %q does not name the principal", err)
	}
}

// Every exception tag read is reported with its state, on the resource that
// carries it.
func TestFakeExceptionsReported(t *testing.T) {
	f := fakeWorld(t)
	f.Images[fakeAMI].Tags = []types.Tag{{Key: aws.String(exTag), Value: aws.String("CHG-1;principals=public,999988887777")}}
	res, err := enforcer(f, policy.ModeEnforce).CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if err != nil || len(res.Exceptions) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if x := res.Exceptions[0]; x.ResourceID != fakeAMI || x.State != sharing.ExceptionIgnored || !strings.Contains(x.Reason, "no until date") {
		t.Errorf("exception %+v", x)
	}
	if got := imagePrincipals(f, fakeAMI); slices.Contains(got, pPublic) || slices.Contains(got, pStranger) {
		t.Errorf("an ignored exception kept %v", got)
	}
	if r := res.Findings[0].Reasons[0]; !strings.HasPrefix(r, "exception CHG-1 ignored: it has no until date") {
		t.Errorf("the finding does not say why the exception was ignored: %q", r)
	}
}

func TestFakeDisabledImage(t *testing.T) {
	f := fakeWorld(t)
	f.Images[fakeAMI].State = types.ImageStateDisabled
	res, err := enforcer(f, policy.ModeEnforce).CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked {
		t.Fatalf("%+v %v", res, err)
	}
	// No launch permissions are read or changed; the snapshot is still fixed.
	if f.Calls["DescribeImageAttribute"]+f.Calls["ModifyImageAttribute"] != 0 {
		t.Errorf("calls %v", f.Calls)
	}
	if len(res.Verdicts) != 2 || !strings.Contains(res.Verdicts[0].Reasons[0], "image is disabled") || len(res.Verdicts[0].Remove) != 0 {
		t.Errorf("verdicts %+v", res.Verdicts)
	}
	if len(res.Findings) != 1 || res.Findings[0].ResourceID != fakeSnap || !reflect.DeepEqual(snapshotPrincipals(f, fakeSnap), ps(pAllowed)) {
		t.Errorf("findings %+v", res.Findings)
	}
}

func TestFakeNotOwnedAndGone(t *testing.T) {
	ctx := context.Background()
	f := fakeWorld(t)
	f.Images[fakeAMI].OwnerId = aws.String("099720109477")
	res, err := enforcer(f, policy.ModeEnforce).CheckImage(ctx, acct, region, fakeAMI, actor)
	if err != nil || res.Outcome != sharing.OutcomeNotOwned || total(f.Calls) != 1 || len(imagePrincipals(f, fakeAMI)) != 5 {
		t.Errorf("not owned: %+v %v %v", res, err, f.Calls)
	}

	res, err = enforcer(f, policy.ModeEnforce).CheckImage(ctx, acct, region, "ami-0000000000000dead", actor)
	if err != nil || res.Outcome != sharing.OutcomeGone {
		t.Errorf("missing: %+v %v", res, err)
	}

	// Deregistered between DescribeImages and the launch-permission read.
	g := fakeWorld(t)
	g.Errors["DescribeImageAttribute"] = []error{fake.APIError("InvalidAMIID.Unavailable")}
	res, err = enforcer(g, policy.ModeEnforce).CheckImage(ctx, acct, region, fakeAMI, actor)
	if err != nil || res.Outcome != sharing.OutcomeGone || g.Calls["DescribeSnapshotAttribute"] != 0 {
		t.Errorf("deregistered mid-way: %+v %v", res, err)
	}

	// A snapshot that no longer exists is skipped; the image is still fixed.
	h := fakeWorld(t)
	delete(h.Snapshots, fakeSnap)
	res, err = enforcer(h, policy.ModeEnforce).CheckImage(ctx, acct, region, fakeAMI, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked || len(res.Verdicts) != 1 {
		t.Errorf("missing snapshot: %+v %v", res, err)
	}
}

func TestFakeTagValueIsCut(t *testing.T) {
	f := fakeWorld(t)
	var perms []types.LaunchPermission
	for i := range 30 {
		perms = append(perms, lpUser(fmt.Sprintf("9999888800%02d", 10+i)))
	}
	f.SetLaunchPermissions(fakeAMI, perms...)
	res, err := enforcer(f, policy.ModeEnforce).CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked || len(res.Findings[0].Removed) != 30 {
		t.Fatalf("%+v %v", res, err)
	}
	got := f.Tags(fakeAMI)[sharing.TagViolationRemoved]
	if utf8.RuneCountInString(got) != 256 || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "public, account 999988880010, ") {
		t.Errorf("tag (%d characters) %q", utf8.RuneCountInString(got), got)
	}
}

func TestFakeTaggingFailureDoesNotFailTheCheck(t *testing.T) {
	f := fakeWorld(t)
	f.Errors["CreateTags"] = []error{fake.APIError("RequestLimitExceeded")}
	res, err := enforcer(f, policy.ModeEnforce).CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked {
		t.Fatalf("%+v %v", res, err)
	}
	for _, fd := range res.Findings {
		if !strings.Contains(fd.Error, "writing the violation tags on "+fakeAMI) {
			t.Errorf("finding error %q", fd.Error)
		}
	}
}

func TestFakeExceptionOnTheAMICoversItsSnapshot(t *testing.T) {
	f := fakeWorld(t)
	f.Images[fakeAMI].Tags = []types.Tag{{Key: aws.String(exTag), Value: aws.String("CHG-1;until=2026-10-01;principals=999988887777")}}
	res, err := enforcer(f, policy.ModeEnforce).CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if err != nil || res.Outcome != sharing.OutcomeRevoked {
		t.Fatalf("%+v %v", res, err)
	}
	if !slices.Contains(imagePrincipals(f, fakeAMI), pStranger) || !slices.Contains(snapshotPrincipals(f, fakeSnap), pStranger) {
		t.Errorf("exception not honoured: %v %v", imagePrincipals(f, fakeAMI), snapshotPrincipals(f, fakeSnap))
	}
}

// filterEC2 adds the one DescribeImages filter CheckSnapshot may use
// (block-device-mapping.snapshot-id, with Owners=self), which the fake does
// not model.
type filterEC2 struct {
	*fake.EC2
	filtered int
}

func (f *filterEC2) DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, opts ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	if len(in.Filters) == 0 {
		return f.EC2.DescribeImages(ctx, in, opts...)
	}
	f.filtered++
	if len(in.Filters) != 1 || aws.ToString(in.Filters[0].Name) != "block-device-mapping.snapshot-id" || !reflect.DeepEqual(in.Owners, []string{"self"}) {
		panic("filterEC2: unexpected input")
	}
	out := &ec2.DescribeImagesOutput{}
	for _, img := range f.Images {
		for _, m := range img.BlockDeviceMappings {
			if m.Ebs != nil && slices.Contains(in.Filters[0].Values, aws.ToString(m.Ebs.SnapshotId)) {
				out.Images = append(out.Images, *img)
			}
		}
	}
	return out, nil
}

func TestFakeCheckSnapshot(t *testing.T) {
	ctx := context.Background()

	t.Run("behind an AMI named in its description, with the AMI's exception", func(t *testing.T) {
		f := fakeWorld(t)
		f.Images[fakeAMI].Tags = []types.Tag{{Key: aws.String(exTag), Value: aws.String("CHG-1;until=2026-10-31;principals=999988887777")}}
		e := enforcer(f, policy.ModeEnforce)
		res, err := e.CheckSnapshot(ctx, acct, region, fakeSnap, actor)
		if err != nil || res.Outcome != sharing.OutcomeRevoked || len(res.Findings) != 1 || res.Findings[0].ImageID != fakeAMI {
			t.Fatalf("%+v %v", res, err)
		}
		if got := snapshotPrincipals(f, fakeSnap); !reflect.DeepEqual(got, sortedPrincipals(ps(pAllowed, pStranger))) {
			t.Errorf("snapshot keeps %v", got)
		}
		if tags := f.Tags(fakeSnap); tags[sharing.TagViolationRemoved] != "public" {
			t.Errorf("snapshot tags %v", tags)
		}
		if len(imagePrincipals(f, fakeAMI)) != 5 {
			t.Error("CheckSnapshot changed the AMI")
		}
	})

	t.Run("the AMI's exception decides, as in CheckImage", func(t *testing.T) {
		f := fakeWorld(t)
		f.Images[fakeAMI].Tags = []types.Tag{{Key: aws.String(exTag), Value: aws.String("CHG-1;until=2026-10-31;principals=999988887777")}}
		f.Snapshots[fakeSnap].Tags = []types.Tag{{Key: aws.String(exTag), Value: aws.String("CHG-2;until=2026-10-31;principals=public")}}
		e := enforcer(f, policy.ModeEnforce)
		e.Policy.Exceptions.AllowPublic = true // so only where the tag is read decides
		res, err := e.CheckSnapshot(ctx, acct, region, fakeSnap, actor)
		if err != nil || !reflect.DeepEqual(res.Findings[0].Removed, ps(pPublic)) {
			t.Fatalf("%+v %v", res, err)
		}
		g := fakeWorld(t)
		g.Snapshots[fakeSnap].Tags = f.Snapshots[fakeSnap].Tags
		img, err := e2(g).CheckImage(ctx, acct, region, fakeAMI, actor)
		if err != nil || !reflect.DeepEqual(img.Findings[1].Removed, ps(pPublic, pStranger)) {
			t.Fatalf("CheckImage disagrees: %+v %v", img, err)
		}
	})

	t.Run("a snapshot behind no AMI uses its own exception", func(t *testing.T) {
		f := fakeWorld(t)
		f.Snapshots["snap-0000000000000003c"] = &types.Snapshot{SnapshotId: aws.String("snap-0000000000000003c"), OwnerId: aws.String(acct),
			Tags: []types.Tag{{Key: aws.String(exTag), Value: aws.String("CHG-3;until=2026-10-31;principals=public")}}}
		f.SetCreateVolumePermissions("snap-0000000000000003c", cvGroupAll(), cvUser(stranger))
		e := enforcer(f, policy.ModeEnforce)
		e.Policy.CheckAllSnapshots = true
		e.Policy.Exceptions.AllowPublic = true
		res, err := e.CheckSnapshot(ctx, acct, region, "snap-0000000000000003c", actor)
		if err != nil || !reflect.DeepEqual(res.Findings[0].Removed, ps(pStranger)) || f.Calls["DescribeImages"] != 0 {
			t.Fatalf("%+v %v %v", res, err, f.Calls)
		}
	})

	t.Run("found with the snapshot filter when the description says nothing", func(t *testing.T) {
		f := &filterEC2{EC2: fakeWorld(t)}
		f.Snapshots[fakeSnap].Description = nil
		res, err := (&sharing.Enforcer{EC2: f, Policy: enforcer(f.EC2, policy.ModeEnforce).Policy, Now: func() time.Time { return fakeNow }}).
			CheckSnapshot(ctx, acct, region, fakeSnap, actor)
		if err != nil || res.Outcome != sharing.OutcomeRevoked || f.filtered != 1 || res.Findings[0].ImageID != fakeAMI {
			t.Fatalf("%+v %v filtered=%d", res, err, f.filtered)
		}
	})

	t.Run("behind no AMI: ignored unless check_all_snapshots", func(t *testing.T) {
		f := &filterEC2{EC2: fakeWorld(t)}
		f.Snapshots["snap-0000000000000002b"] = &types.Snapshot{SnapshotId: aws.String("snap-0000000000000002b"), OwnerId: aws.String(acct)}
		f.SetCreateVolumePermissions("snap-0000000000000002b", cvGroupAll())
		p := testPolicy()
		p.Mode = policy.ModeEnforce
		e := &sharing.Enforcer{EC2: f, Policy: p, Now: func() time.Time { return fakeNow }}
		res, err := e.CheckSnapshot(ctx, acct, region, "snap-0000000000000002b", actor)
		if err != nil || res.Outcome != sharing.OutcomeIgnored || len(res.Verdicts) != 0 || f.Calls["DescribeSnapshotAttribute"] != 0 {
			t.Fatalf("%+v %v", res, err)
		}
		e.Policy.CheckAllSnapshots = true
		res, err = e.CheckSnapshot(ctx, acct, region, "snap-0000000000000002b", actor)
		if err != nil || res.Outcome != sharing.OutcomeRevoked || len(f.CreateVolumePermissions("snap-0000000000000002b")) != 0 || f.filtered != 1 {
			t.Fatalf("%+v %v", res, err)
		}
	})

	t.Run("not owned, gone", func(t *testing.T) {
		f := fakeWorld(t)
		f.Snapshots[fakeSnap].OwnerId = aws.String("099720109477")
		e := enforcer(f, policy.ModeEnforce)
		if res, err := e.CheckSnapshot(ctx, acct, region, fakeSnap, actor); err != nil || res.Outcome != sharing.OutcomeNotOwned || total(f.Calls) != 1 {
			t.Errorf("%+v %v %v", res, err, f.Calls)
		}
		if res, err := e.CheckSnapshot(ctx, acct, region, "snap-0000000000000dead", actor); err != nil || res.Outcome != sharing.OutcomeGone {
			t.Errorf("%+v %v", res, err)
		}
	})
}

func TestEnforcerNeedsAccountAndID(t *testing.T) {
	e := enforcer(fake.NewEC2(), policy.ModeEnforce)
	if _, err := e.CheckImage(context.Background(), "", region, fakeAMI, ""); err == nil {
		t.Error("CheckImage without an account")
	}
	if _, err := e.CheckSnapshot(context.Background(), acct, region, "", ""); err == nil {
		t.Error("CheckSnapshot without an ID")
	}
}

// MayRemove limits enforce mode to the principals it accepts (the CLI's
// confirmed preview): the others stay, reported as Held, not as failures;
// a resource with none accepted is "held" and untouched, and the AMI's
// violation tags name only what was removed.
func TestFakeMayRemoveLimitsTheRemovals(t *testing.T) {
	f := fakeWorld(t)
	e := enforcer(f, policy.ModeEnforce)
	var asked []string
	e.MayRemove = func(kind sharing.ResourceKind, id string, p sharing.Principal) bool {
		asked = append(asked, string(kind)+" "+id+" "+p.String())
		return kind == sharing.KindImage && p == pStranger
	}
	res, err := e.CheckImage(context.Background(), acct, region, fakeAMI, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != sharing.OutcomeRevoked || len(res.Findings) != 2 || len(asked) != 5 {
		t.Fatalf("result %+v, asked %q", res, asked)
	}
	img, snap := res.Findings[0], res.Findings[1]
	if img.Action != sharing.ActionRevoked || !reflect.DeepEqual(img.Removed, ps(pStranger)) ||
		!reflect.DeepEqual(img.Held, ps(pPublic, pOrgBad)) || len(img.Remaining) != 0 || len(img.Failed) != 0 {
		t.Errorf("image finding %+v", img)
	}
	if snap.Action != sharing.ActionHeld || len(snap.Removed) != 0 || !reflect.DeepEqual(snap.Held, ps(pPublic, pStranger)) {
		t.Errorf("snapshot finding %+v", snap)
	}
	if got, want := imagePrincipals(f, fakeAMI), sortedPrincipals(ps(pPublic, pAllowed, pOrgOK, pOrgBad)); !reflect.DeepEqual(got, want) {
		t.Errorf("image keeps %v, want %v", got, want)
	}
	if got, want := snapshotPrincipals(f, fakeSnap), sortedPrincipals(ps(pPublic, pStranger, pAllowed)); !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot keeps %v, want %v", got, want)
	}
	if got := f.Tags(fakeAMI)[sharing.TagViolationRemoved]; got != "account 999988887777" {
		t.Errorf("violation tag %q", got)
	}
	if f.Calls["ModifySnapshotAttribute"] != 0 {
		t.Errorf("calls %v", f.Calls)
	}

	// Nothing accepted: nothing changes, the outcome says so.
	f = fakeWorld(t)
	e = enforcer(f, policy.ModeEnforce)
	e.MayRemove = func(sharing.ResourceKind, string, sharing.Principal) bool { return false }
	res, err = e.CheckImage(context.Background(), acct, region, fakeAMI, "")
	if err != nil || res.Outcome != sharing.OutcomeHeld || len(res.Findings) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if n := f.Calls["ModifyImageAttribute"] + f.Calls["ModifySnapshotAttribute"] + f.Calls["CreateTags"]; n != 0 {
		t.Errorf("changed with nothing accepted: %v", f.Calls)
	}
}
