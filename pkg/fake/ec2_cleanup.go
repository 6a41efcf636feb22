package fake

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The mutations of awsapi.CleanupEC2, with EC2's semantics as documented in
// /work/shared/reference/aws-ami-facts.md §2 (where moto differs, see
// IgnoreDeleteAssociatedSnapshots). Error codes marked UNVERIFIED are this
// fake's choice where AWS does not document one; callers must only rely on
// their class (permanent), not the code.

func (f *EC2) now() time.Time {
	if f.Clock != nil {
		return f.Clock.Now()
	}
	return time.Now()
}

func noDryRun(op string, dryRun *bool) {
	if aws.ToBool(dryRun) {
		panic("fake.EC2." + op + ": DryRun is not modelled")
	}
}

// image returns an image the account owns, or EC2's error for a missing one:
// InvalidAMIID.Unavailable right after deregistration, else NotFound.
func (f *EC2) image(op string, id *string) (*types.Image, error) {
	if aws.ToString(id) == "" {
		panic("fake.EC2." + op + ": ImageId is required")
	}
	if img, ok := f.Images[*id]; ok {
		return img, nil
	}
	if f.Deregistered[*id] {
		return nil, APIError("InvalidAMIID.Unavailable")
	}
	return nil, APIError("InvalidAMIID.NotFound")
}

// usedBy returns the first remaining image whose block device mappings
// reference the snapshot, other than except ("" when none does).
func (f *EC2) usedBy(snapshotID, except string) string {
	for id, img := range f.Images {
		if id == except {
			continue
		}
		for _, m := range img.BlockDeviceMappings {
			if m.Ebs != nil && aws.ToString(m.Ebs.SnapshotId) == snapshotID {
				return id
			}
		}
	}
	return ""
}

// DeleteTags removes tags by key; a tag given with a value is removed only
// when its value matches, as in EC2. Omitting Tags (which in EC2 deletes every
// tag) is not modelled.
func (f *EC2) DeleteTags(_ context.Context, in *ec2.DeleteTagsInput, _ ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("DeleteTags", in.DryRun)
	if len(in.Tags) == 0 || len(in.Resources) == 0 {
		panic(fmt.Sprintf("fake.EC2.DeleteTags: Resources and Tags are required (deleting all tags is not modelled), got %+v", in))
	}
	if err := f.enter("DeleteTags"); err != nil {
		return nil, err
	}
	for _, id := range in.Resources {
		if f.Images[id] == nil && f.Snapshots[id] == nil {
			return nil, APIError("InvalidID.NotFound")
		}
	}
	for _, id := range in.Resources {
		if img, ok := f.Images[id]; ok {
			img.Tags = dropTags(img.Tags, in.Tags)
		} else {
			s := f.Snapshots[id]
			s.Tags = dropTags(s.Tags, in.Tags)
		}
	}
	return &ec2.DeleteTagsOutput{}, nil
}

func dropTags(have, drop []types.Tag) []types.Tag {
	keep := have[:0:0]
	for _, h := range have {
		gone := false
		for _, d := range drop {
			if aws.ToString(d.Key) == aws.ToString(h.Key) && (d.Value == nil || aws.ToString(d.Value) == aws.ToString(h.Value)) {
				gone = true
			}
		}
		if !gone {
			keep = append(keep, h)
		}
	}
	return keep
}

// EnableImageDeprecation sets the deprecation time. Like EC2 it rounds to the
// nearest minute and rejects past dates and dates over 10 years out.
func (f *EC2) EnableImageDeprecation(_ context.Context, in *ec2.EnableImageDeprecationInput, _ ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("EnableImageDeprecation", in.DryRun)
	if in.DeprecateAt == nil {
		panic("fake.EC2.EnableImageDeprecation: DeprecateAt is required")
	}
	if err := f.enter("EnableImageDeprecation"); err != nil {
		return nil, err
	}
	img, err := f.image("EnableImageDeprecation", in.ImageId)
	if err != nil {
		return nil, err
	}
	at := in.DeprecateAt.UTC().Round(time.Minute)
	now := f.now()
	if at.Before(now) || at.After(now.AddDate(10, 0, 0)) {
		return nil, APIError("InvalidParameterValue") // code UNVERIFIED
	}
	img.DeprecationTime = aws.String(at.Format("2006-01-02T15:04:05.000Z"))
	return &ec2.EnableImageDeprecationOutput{Return: aws.Bool(true)}, nil
}

// DisableImageDeprecation clears the deprecation time.
func (f *EC2) DisableImageDeprecation(_ context.Context, in *ec2.DisableImageDeprecationInput, _ ...func(*ec2.Options)) (*ec2.DisableImageDeprecationOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("DisableImageDeprecation", in.DryRun)
	if err := f.enter("DisableImageDeprecation"); err != nil {
		return nil, err
	}
	img, err := f.image("DisableImageDeprecation", in.ImageId)
	if err != nil {
		return nil, err
	}
	img.DeprecationTime = nil
	return &ec2.DisableImageDeprecationOutput{Return: aws.Bool(true)}, nil
}

// DisableImage sets the state to disabled and removes every launch
// permission (the fake models only Public). Disabling a disabled image
// succeeds (UNVERIFIED: EC2 may answer with an error instead).
func (f *EC2) DisableImage(_ context.Context, in *ec2.DisableImageInput, _ ...func(*ec2.Options)) (*ec2.DisableImageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("DisableImage", in.DryRun)
	if err := f.enter("DisableImage"); err != nil {
		return nil, err
	}
	img, err := f.image("DisableImage", in.ImageId)
	if err != nil {
		return nil, err
	}
	img.State = types.ImageStateDisabled
	img.Public = aws.Bool(false)
	return &ec2.DisableImageOutput{Return: aws.Bool(true)}, nil
}

// EnableImage makes a disabled image available again; its old launch
// permissions are not restored (as in EC2).
func (f *EC2) EnableImage(_ context.Context, in *ec2.EnableImageInput, _ ...func(*ec2.Options)) (*ec2.EnableImageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("EnableImage", in.DryRun)
	if err := f.enter("EnableImage"); err != nil {
		return nil, err
	}
	img, err := f.image("EnableImage", in.ImageId)
	if err != nil {
		return nil, err
	}
	img.State = types.ImageStateAvailable
	return &ec2.EnableImageOutput{Return: aws.Bool(true)}, nil
}

// DeregisterImage removes the image. With DeleteAssociatedSnapshots it also
// deletes each snapshot of the image that no remaining image references
// ("success"), skips the others ("skipped"), and reports
// "missing-permissions" for a snapshot the account does not own (one absent
// from Snapshots or with another owner). IgnoreDeleteAssociatedSnapshots
// makes it behave like moto: no results, nothing deleted.
func (f *EC2) DeregisterImage(_ context.Context, in *ec2.DeregisterImageInput, _ ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("DeregisterImage", in.DryRun)
	if err := f.enter("DeregisterImage"); err != nil {
		return nil, err
	}
	img, err := f.image("DeregisterImage", in.ImageId)
	if err != nil {
		return nil, err
	}
	if p := aws.ToString(img.DeregistrationProtection); p != "" && p != "disabled" {
		return nil, APIError("OperationNotPermitted") // code UNVERIFIED
	}
	id := *in.ImageId
	delete(f.Images, id)
	if f.Deregistered == nil {
		f.Deregistered = map[string]bool{}
	}
	f.Deregistered[id] = true
	out := &ec2.DeregisterImageOutput{Return: aws.Bool(true)}
	if !aws.ToBool(in.DeleteAssociatedSnapshots) || f.IgnoreDeleteAssociatedSnapshots {
		return out, nil
	}
	seen := map[string]bool{}
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs == nil || m.Ebs.SnapshotId == nil || seen[*m.Ebs.SnapshotId] {
			continue
		}
		sid := *m.Ebs.SnapshotId
		seen[sid] = true
		code := types.SnapshotReturnCodesSuccess
		s, owned := f.Snapshots[sid]
		if owned && s.OwnerId != nil && img.OwnerId != nil && *s.OwnerId != *img.OwnerId {
			owned = false
		}
		switch {
		case f.usedBy(sid, "") != "":
			code = types.SnapshotReturnCodesWarnSkipped
		case !owned:
			code = types.SnapshotReturnCodesErrorMissingPermissions
		default:
			delete(f.Snapshots, sid)
		}
		out.DeleteSnapshotResults = append(out.DeleteSnapshotResults,
			types.DeleteSnapshotReturnCode{SnapshotId: aws.String(sid), ReturnCode: code})
	}
	return out, nil
}

// DeleteSnapshot deletes a snapshot no image references; while any image
// (available, deprecated or disabled) does, it fails with InvalidSnapshot.InUse.
func (f *EC2) DeleteSnapshot(_ context.Context, in *ec2.DeleteSnapshotInput, _ ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("DeleteSnapshot", in.DryRun)
	if aws.ToString(in.SnapshotId) == "" {
		panic("fake.EC2.DeleteSnapshot: SnapshotId is required")
	}
	if err := f.enter("DeleteSnapshot"); err != nil {
		return nil, err
	}
	sid := *in.SnapshotId
	if _, ok := f.Snapshots[sid]; !ok {
		return nil, APIError("InvalidSnapshot.NotFound")
	}
	if by := f.usedBy(sid, ""); by != "" {
		return nil, APIError("InvalidSnapshot.InUse")
	}
	delete(f.Snapshots, sid)
	return &ec2.DeleteSnapshotOutput{}, nil
}
