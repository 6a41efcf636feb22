package fake

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The reads and mutations of awsapi.SharingEC2 beyond ec2.go: launch
// permissions of images and create-volume permissions of snapshots.
//
// The permissions live beside the EC2 struct (in sharingStates, keyed by the
// fake) so ec2.go needs no new field; they are created on first use. Like
// moto, ModifySnapshotAttribute models only the legacy OperationType +
// UserIds/GroupNames form, and panics on the structured CreateVolumePermission
// form (which moto silently ignores), so code under test uses the form both
// accept. Error codes marked UNVERIFIED are this fake's choice.

type sharingState struct {
	launch map[string][]types.LaunchPermission       // image ID → permissions
	volume map[string][]types.CreateVolumePermission // snapshot ID → permissions
	// sticky permissions survive a removal EC2 accepted (as an account does
	// while it has access through a shared organization).
	stickyLaunch map[string][]types.LaunchPermission
	stickyVolume map[string][]types.CreateVolumePermission
}

var sharingStates sync.Map // *EC2 → *sharingState

// sharing returns the fake's permission store; the caller holds f.mu.
func (f *EC2) sharing() *sharingState {
	if s, ok := sharingStates.Load(f); ok {
		return s.(*sharingState)
	}
	s, _ := sharingStates.LoadOrStore(f, &sharingState{
		launch:       map[string][]types.LaunchPermission{},
		volume:       map[string][]types.CreateVolumePermission{},
		stickyLaunch: map[string][]types.LaunchPermission{},
		stickyVolume: map[string][]types.CreateVolumePermission{},
	})
	return s.(*sharingState)
}

var reAccountID = regexp.MustCompile(`^[0-9]{12}$`)

// SetLaunchPermissions replaces an image's launch permissions (test setup);
// the image's Public flag follows the "all" group, as in EC2.
func (f *EC2) SetLaunchPermissions(imageID string, perms ...types.LaunchPermission) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.Images[imageID]
	if !ok {
		panic("fake.EC2.SetLaunchPermissions: unknown image " + imageID)
	}
	f.sharing().launch[imageID] = slices.Clone(perms)
	img.Public = aws.Bool(slices.ContainsFunc(perms, isPublicLaunch))
}

// LaunchPermissions returns a copy of an image's launch permissions.
func (f *EC2) LaunchPermissions(imageID string) []types.LaunchPermission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sharing().launch[imageID])
}

// StickLaunchPermission makes ModifyImageAttribute accept the removal of perm
// on the image and leave it in place (EC2 does this for an account that has
// access through a shared organization or OU).
func (f *EC2) StickLaunchPermission(imageID string, perm types.LaunchPermission) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sharing()
	s.stickyLaunch[imageID] = append(s.stickyLaunch[imageID], perm)
}

// SetCreateVolumePermissions replaces a snapshot's create-volume permissions.
func (f *EC2) SetCreateVolumePermissions(snapshotID string, perms ...types.CreateVolumePermission) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.Snapshots[snapshotID]; !ok {
		panic("fake.EC2.SetCreateVolumePermissions: unknown snapshot " + snapshotID)
	}
	f.sharing().volume[snapshotID] = slices.Clone(perms)
}

// CreateVolumePermissions returns a copy of a snapshot's create-volume
// permissions.
func (f *EC2) CreateVolumePermissions(snapshotID string) []types.CreateVolumePermission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sharing().volume[snapshotID])
}

// StickCreateVolumePermission makes ModifySnapshotAttribute accept the
// removal of perm on the snapshot and leave it in place.
func (f *EC2) StickCreateVolumePermission(snapshotID string, perm types.CreateVolumePermission) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sharing()
	s.stickyVolume[snapshotID] = append(s.stickyVolume[snapshotID], perm)
}

func isPublicLaunch(lp types.LaunchPermission) bool { return lp.Group == types.PermissionGroupAll }

func sameLaunch(a, b types.LaunchPermission) bool {
	return a.Group == b.Group && aws.ToString(a.UserId) == aws.ToString(b.UserId) &&
		aws.ToString(a.OrganizationArn) == aws.ToString(b.OrganizationArn) &&
		aws.ToString(a.OrganizationalUnitArn) == aws.ToString(b.OrganizationalUnitArn)
}

// validLaunch checks one item as EC2 does: exactly one target, a 12-digit
// account, group "all".
func validLaunch(lp types.LaunchPermission) bool {
	n := 0
	if lp.Group != "" {
		if lp.Group != types.PermissionGroupAll {
			return false
		}
		n++
	}
	if lp.UserId != nil {
		if !reAccountID.MatchString(*lp.UserId) {
			return false
		}
		n++
	}
	if aws.ToString(lp.OrganizationArn) != "" {
		n++
	}
	if aws.ToString(lp.OrganizationalUnitArn) != "" {
		n++
	}
	return n == 1
}

// DescribeImageAttribute supports the launchPermission attribute only. A
// disabled image has no launch permissions (EC2 removed them all when it was
// disabled).
func (f *EC2) DescribeImageAttribute(_ context.Context, in *ec2.DescribeImageAttributeInput, _ ...func(*ec2.Options)) (*ec2.DescribeImageAttributeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("DescribeImageAttribute", in.DryRun)
	if in.Attribute != types.ImageAttributeNameLaunchPermission {
		panic(fmt.Sprintf("fake.EC2.DescribeImageAttribute: only launchPermission is modelled, got %q", in.Attribute))
	}
	if err := f.enter("DescribeImageAttribute"); err != nil {
		return nil, err
	}
	img, err := f.image("DescribeImageAttribute", in.ImageId)
	if err != nil {
		return nil, err
	}
	s := f.sharing()
	if img.State == types.ImageStateDisabled {
		delete(s.launch, *in.ImageId)
	}
	return &ec2.DescribeImageAttributeOutput{ImageId: in.ImageId, LaunchPermissions: slices.Clone(s.launch[*in.ImageId])}, nil
}

// ModifyImageAttribute supports the structured LaunchPermission Add/Remove
// form only. Like EC2 it validates every item before changing anything,
// ignores removals of permissions the image does not have, and refuses to
// share a disabled image (code UNVERIFIED).
func (f *EC2) ModifyImageAttribute(_ context.Context, in *ec2.ModifyImageAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("ModifyImageAttribute", in.DryRun)
	if in.LaunchPermission == nil || in.OperationType != "" || len(in.UserIds) > 0 || len(in.UserGroups) > 0 ||
		len(in.OrganizationArns) > 0 || len(in.OrganizationalUnitArns) > 0 || in.Description != nil ||
		in.ImdsSupport != nil || len(in.ProductCodes) > 0 || in.Value != nil ||
		(in.Attribute != nil && *in.Attribute != string(types.ImageAttributeNameLaunchPermission)) {
		panic(fmt.Sprintf("fake.EC2.ModifyImageAttribute: only the LaunchPermission Add/Remove form is modelled, got %+v", in))
	}
	if err := f.enter("ModifyImageAttribute"); err != nil {
		return nil, err
	}
	img, err := f.image("ModifyImageAttribute", in.ImageId)
	if err != nil {
		return nil, err
	}
	for _, lp := range append(slices.Clone(in.LaunchPermission.Add), in.LaunchPermission.Remove...) {
		if !validLaunch(lp) {
			return nil, APIError("InvalidAMIAttributeItemValue")
		}
	}
	if img.State == types.ImageStateDisabled {
		return nil, APIError("InvalidParameterValue") // code UNVERIFIED
	}
	s := f.sharing()
	id := *in.ImageId
	have := s.launch[id]
	for _, add := range in.LaunchPermission.Add {
		if !slices.ContainsFunc(have, func(h types.LaunchPermission) bool { return sameLaunch(h, add) }) {
			have = append(have, add)
		}
	}
	for _, rm := range in.LaunchPermission.Remove {
		if slices.ContainsFunc(s.stickyLaunch[id], func(h types.LaunchPermission) bool { return sameLaunch(h, rm) }) {
			continue
		}
		have = slices.DeleteFunc(have, func(h types.LaunchPermission) bool { return sameLaunch(h, rm) })
	}
	s.launch[id] = have
	img.Public = aws.Bool(slices.ContainsFunc(have, isPublicLaunch))
	return &ec2.ModifyImageAttributeOutput{}, nil
}

// DescribeSnapshotAttribute supports the createVolumePermission attribute only.
func (f *EC2) DescribeSnapshotAttribute(_ context.Context, in *ec2.DescribeSnapshotAttributeInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("DescribeSnapshotAttribute", in.DryRun)
	if in.Attribute != types.SnapshotAttributeNameCreateVolumePermission || aws.ToString(in.SnapshotId) == "" {
		panic(fmt.Sprintf("fake.EC2.DescribeSnapshotAttribute: only createVolumePermission of one snapshot is modelled, got %+v", in))
	}
	if err := f.enter("DescribeSnapshotAttribute"); err != nil {
		return nil, err
	}
	if _, ok := f.Snapshots[*in.SnapshotId]; !ok {
		return nil, APIError("InvalidSnapshot.NotFound")
	}
	return &ec2.DescribeSnapshotAttributeOutput{SnapshotId: in.SnapshotId,
		CreateVolumePermissions: slices.Clone(f.sharing().volume[*in.SnapshotId])}, nil
}

// ModifySnapshotAttribute supports the legacy form only: Attribute
// createVolumePermission, OperationType add or remove, UserIds and
// GroupNames ("all" only; another group fails with
// InvalidAMIAttributeItemValue, as in moto; code UNVERIFIED for EC2).
func (f *EC2) ModifySnapshotAttribute(_ context.Context, in *ec2.ModifySnapshotAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifySnapshotAttributeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("ModifySnapshotAttribute", in.DryRun)
	if in.CreateVolumePermission != nil {
		panic("fake.EC2.ModifySnapshotAttribute: the structured CreateVolumePermission form is not modelled (moto ignores it); use OperationType + UserIds/GroupNames")
	}
	if in.Attribute != types.SnapshotAttributeNameCreateVolumePermission || aws.ToString(in.SnapshotId) == "" ||
		(in.OperationType != types.OperationTypeAdd && in.OperationType != types.OperationTypeRemove) {
		panic(fmt.Sprintf("fake.EC2.ModifySnapshotAttribute: only createVolumePermission add/remove is modelled, got %+v", in))
	}
	if err := f.enter("ModifySnapshotAttribute"); err != nil {
		return nil, err
	}
	id := *in.SnapshotId
	if _, ok := f.Snapshots[id]; !ok {
		return nil, APIError("InvalidSnapshot.NotFound")
	}
	var items []types.CreateVolumePermission
	for _, g := range in.GroupNames {
		if g != string(types.PermissionGroupAll) {
			return nil, APIError("InvalidAMIAttributeItemValue")
		}
		items = append(items, types.CreateVolumePermission{Group: types.PermissionGroupAll})
	}
	for _, u := range in.UserIds {
		if !reAccountID.MatchString(u) {
			return nil, APIError("InvalidParameterValue") // code UNVERIFIED
		}
		items = append(items, types.CreateVolumePermission{UserId: aws.String(u)})
	}
	same := func(a types.CreateVolumePermission) func(types.CreateVolumePermission) bool {
		return func(b types.CreateVolumePermission) bool {
			return a.Group == b.Group && aws.ToString(a.UserId) == aws.ToString(b.UserId)
		}
	}
	s := f.sharing()
	have := s.volume[id]
	for _, it := range items {
		switch {
		case in.OperationType == types.OperationTypeAdd:
			if !slices.ContainsFunc(have, same(it)) {
				have = append(have, it)
			}
		case !slices.ContainsFunc(s.stickyVolume[id], same(it)):
			have = slices.DeleteFunc(have, same(it))
		}
	}
	s.volume[id] = have
	return &ec2.ModifySnapshotAttributeOutput{}, nil
}
