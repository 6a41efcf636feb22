package fake

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/rbin"
	rbtypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"
)

// RecycleBin is an EC2 with the Recycle Bin, which moto lacks: the EC2 side
// (ListImagesInRecycleBin, ListSnapshotsInRecycleBin, Restore*FromRecycleBin)
// and rbin's ListRules/GetRule, on one state. DeregisterImage and
// DeleteSnapshot send what a rule covers to the bin, with its tags and block
// device mappings, for the rule's retention; an item whose retention ended
// is gone for good (checked against the EC2's Clock at every call). As the
// Recycle Bin documents, tags of items in the bin can be read (DescribeTags)
// and changed (CreateTags, DeleteTags); nothing else sees them until they
// are restored. Behaviour AWS does not document (the error code for an item
// not in the bin) is marked UNVERIFIED.
type RecycleBin struct {
	*EC2
	// Rules are the region's retention rules.
	Rules     []BinRule
	binImages map[string]*binned[types.Image]
	binSnaps  map[string]*binned[types.Snapshot]
}

// BinRule is one retention rule. No ResourceTags makes it region-level.
type BinRule struct {
	ID                  string
	ResourceType        rbtypes.ResourceType
	Days                int
	ResourceTags        map[string]string
	ExcludeResourceTags map[string]string
}

type binned[T any] struct {
	item        T
	enter, exit time.Time
}

// TagInBin is the system tag EC2 puts on items in the bin.
const TagInBin = "aws:recycle-bin:resource-in-bin"

// NewRecycleBin returns an empty EC2 with the given rules.
func NewRecycleBin(rules ...BinRule) *RecycleBin {
	return &RecycleBin{EC2: NewEC2(), Rules: rules,
		binImages: map[string]*binned[types.Image]{}, binSnaps: map[string]*binned[types.Snapshot]{}}
}

// retention is how long the longest rule covering a resource of type rt
// with tags keeps it (0: none does, it is deleted at once).
func (f *RecycleBin) retention(rt rbtypes.ResourceType, tags []types.Tag) time.Duration {
	has := map[string]string{}
	for _, t := range tags {
		has[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	matches := func(want map[string]string) bool {
		for k, v := range want {
			if got, ok := has[k]; ok && (v == "" || got == v) {
				return true
			}
		}
		return false
	}
	days := 0
	for _, r := range f.Rules {
		if r.ResourceType != rt || (len(r.ResourceTags) > 0 && !matches(r.ResourceTags)) || matches(r.ExcludeResourceTags) {
			continue
		}
		days = max(days, r.Days)
	}
	return time.Duration(days) * 24 * time.Hour
}

// purge forgets what the bin no longer holds. Callers hold f.mu.
func (f *RecycleBin) purge() {
	now := f.now()
	for id, b := range f.binImages {
		if !now.Before(b.exit) {
			delete(f.binImages, id)
		}
	}
	for id, b := range f.binSnaps {
		if !now.Before(b.exit) {
			delete(f.binSnaps, id)
		}
	}
}

func inBinTags(tags []types.Tag) []types.Tag {
	return append(slices.Clone(tags), types.Tag{Key: aws.String(TagInBin), Value: aws.String("true")})
}

// binSnapshot puts a deleted snapshot in the bin if a rule covers it.
// Callers hold f.mu.
func (f *RecycleBin) binSnapshot(s types.Snapshot) {
	if keep := f.retention(rbtypes.ResourceTypeEbsSnapshot, s.Tags); keep > 0 {
		s.Tags = inBinTags(s.Tags)
		now := f.now()
		f.binSnaps[aws.ToString(s.SnapshotId)] = &binned[types.Snapshot]{item: s, enter: now, exit: now.Add(keep)}
	}
}

// DeregisterImage deregisters as EC2 does, then bins the image (and the
// snapshots DeleteAssociatedSnapshots deleted) where a rule covers them.
func (f *RecycleBin) DeregisterImage(ctx context.Context, in *ec2.DeregisterImageInput, optFns ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	f.mu.Lock()
	var img types.Image
	if p := f.Images[aws.ToString(in.ImageId)]; p != nil {
		img = *p
		img.Tags = slices.Clone(p.Tags)
	}
	snaps := map[string]types.Snapshot{}
	for id, s := range f.Snapshots {
		snaps[id] = *s
	}
	f.mu.Unlock()
	out, err := f.EC2.DeregisterImage(ctx, in, optFns...)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if keep := f.retention(rbtypes.ResourceTypeEc2Image, img.Tags); keep > 0 {
		img.Tags = inBinTags(img.Tags)
		now := f.now()
		f.binImages[aws.ToString(in.ImageId)] = &binned[types.Image]{item: img, enter: now, exit: now.Add(keep)}
	}
	for _, r := range out.DeleteSnapshotResults {
		if r.ReturnCode == types.SnapshotReturnCodesSuccess {
			f.binSnapshot(snaps[aws.ToString(r.SnapshotId)])
		}
	}
	return out, nil
}

// DeleteSnapshot deletes as EC2 does, then bins the snapshot where a rule
// covers it.
func (f *RecycleBin) DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	f.mu.Lock()
	var s types.Snapshot
	if p := f.Snapshots[aws.ToString(in.SnapshotId)]; p != nil {
		s = *p
		s.Tags = slices.Clone(p.Tags)
	}
	f.mu.Unlock()
	out, err := f.EC2.DeleteSnapshot(ctx, in, optFns...)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.binSnapshot(s)
	return out, nil
}

// binPage cuts ids (sorted) at NextToken, MaxResults long.
func binPage(ids []string, token *string, maxResults *int32) ([]string, *string) {
	slices.Sort(ids)
	start := 0
	if token != nil {
		n, err := strconv.Atoi(*token)
		if err != nil || n > len(ids) {
			panic("fake.RecycleBin: bad NextToken " + *token)
		}
		start = n
	}
	end := len(ids)
	if maxResults != nil && start+int(*maxResults) < end {
		end = start + int(*maxResults)
		return ids[start:end], aws.String(strconv.Itoa(end))
	}
	return ids[start:end], nil
}

// ListImagesInRecycleBin lists the bin's AMIs, or those of ImageIds that are
// in it (at most 20, as in EC2).
func (f *RecycleBin) ListImagesInRecycleBin(_ context.Context, in *ec2.ListImagesInRecycleBinInput, _ ...func(*ec2.Options)) (*ec2.ListImagesInRecycleBinOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("ListImagesInRecycleBin", in.DryRun)
	if len(in.ImageIds) > 20 {
		panic("fake.RecycleBin.ListImagesInRecycleBin: at most 20 ImageIds")
	}
	if err := f.enter("ListImagesInRecycleBin"); err != nil {
		return nil, err
	}
	f.purge()
	var ids []string
	for id := range f.binImages {
		if len(in.ImageIds) == 0 || slices.Contains(in.ImageIds, id) {
			ids = append(ids, id)
		}
	}
	ids, next := binPage(ids, in.NextToken, in.MaxResults)
	out := &ec2.ListImagesInRecycleBinOutput{NextToken: next}
	for _, id := range ids {
		b := f.binImages[id]
		out.Images = append(out.Images, types.ImageRecycleBinInfo{ImageId: aws.String(id), Name: b.item.Name,
			Description: b.item.Description, RecycleBinEnterTime: aws.Time(b.enter), RecycleBinExitTime: aws.Time(b.exit)})
	}
	return out, nil
}

// ListSnapshotsInRecycleBin lists the bin's snapshots, or those of
// SnapshotIds that are in it.
func (f *RecycleBin) ListSnapshotsInRecycleBin(_ context.Context, in *ec2.ListSnapshotsInRecycleBinInput, _ ...func(*ec2.Options)) (*ec2.ListSnapshotsInRecycleBinOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("ListSnapshotsInRecycleBin", in.DryRun)
	if err := f.enter("ListSnapshotsInRecycleBin"); err != nil {
		return nil, err
	}
	f.purge()
	var ids []string
	for id := range f.binSnaps {
		if len(in.SnapshotIds) == 0 || slices.Contains(in.SnapshotIds, id) {
			ids = append(ids, id)
		}
	}
	ids, next := binPage(ids, in.NextToken, in.MaxResults)
	out := &ec2.ListSnapshotsInRecycleBinOutput{NextToken: next}
	for _, id := range ids {
		b := f.binSnaps[id]
		out.Snapshots = append(out.Snapshots, types.SnapshotRecycleBinInfo{SnapshotId: aws.String(id), Description: b.item.Description,
			VolumeId: b.item.VolumeId, RecycleBinEnterTime: aws.Time(b.enter), RecycleBinExitTime: aws.Time(b.exit)})
	}
	return out, nil
}

func withoutInBin(tags []types.Tag) []types.Tag {
	return slices.DeleteFunc(slices.Clone(tags), func(t types.Tag) bool { return aws.ToString(t.Key) == TagInBin })
}

// RestoreSnapshotFromRecycleBin puts a binned snapshot back.
func (f *RecycleBin) RestoreSnapshotFromRecycleBin(_ context.Context, in *ec2.RestoreSnapshotFromRecycleBinInput, _ ...func(*ec2.Options)) (*ec2.RestoreSnapshotFromRecycleBinOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("RestoreSnapshotFromRecycleBin", in.DryRun)
	if err := f.enter("RestoreSnapshotFromRecycleBin"); err != nil {
		return nil, err
	}
	f.purge()
	id := aws.ToString(in.SnapshotId)
	b, ok := f.binSnaps[id]
	if !ok {
		return nil, APIError("InvalidSnapshot.NotFound") // code UNVERIFIED
	}
	delete(f.binSnaps, id)
	s := b.item
	s.Tags = withoutInBin(s.Tags)
	f.Snapshots[id] = &s
	return &ec2.RestoreSnapshotFromRecycleBinOutput{SnapshotId: aws.String(id), State: s.State}, nil
}

// RestoreImageFromRecycleBin registers a binned AMI again, with its tags and
// block device mappings (whether their snapshots exist or not).
func (f *RecycleBin) RestoreImageFromRecycleBin(_ context.Context, in *ec2.RestoreImageFromRecycleBinInput, _ ...func(*ec2.Options)) (*ec2.RestoreImageFromRecycleBinOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("RestoreImageFromRecycleBin", in.DryRun)
	if err := f.enter("RestoreImageFromRecycleBin"); err != nil {
		return nil, err
	}
	f.purge()
	id := aws.ToString(in.ImageId)
	b, ok := f.binImages[id]
	if !ok {
		return nil, APIError("InvalidAMIID.NotFound") // code UNVERIFIED
	}
	delete(f.binImages, id)
	img := b.item
	img.Tags = withoutInBin(img.Tags)
	f.Images[id] = &img
	delete(f.Deregistered, id)
	return &ec2.RestoreImageFromRecycleBinOutput{Return: aws.Bool(true)}, nil
}

// binTags returns the tag list of a binned item, or nil. Callers hold f.mu.
func (f *RecycleBin) binTags(id string) (*[]types.Tag, bool) {
	if b, ok := f.binImages[id]; ok {
		return &b.item.Tags, true
	}
	if b, ok := f.binSnaps[id]; ok {
		return &b.item.Tags, true
	}
	return nil, false
}

// DescribeTags supports a resource-id filter, and optionally a key filter,
// over registered resources and items in the bin.
func (f *RecycleBin) DescribeTags(_ context.Context, in *ec2.DescribeTagsInput, _ ...func(*ec2.Options)) (*ec2.DescribeTagsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids, keys []string
	for _, fl := range in.Filters {
		switch aws.ToString(fl.Name) {
		case "resource-id":
			ids = fl.Values
		case "key":
			keys = fl.Values
		default:
			panic(fmt.Sprintf("fake.RecycleBin.DescribeTags: filter %q is not modelled", aws.ToString(fl.Name)))
		}
	}
	if len(ids) == 0 || in.NextToken != nil {
		panic("fake.RecycleBin.DescribeTags: a resource-id filter is required; paging is not modelled")
	}
	if err := f.enter("DescribeTags"); err != nil {
		return nil, err
	}
	f.purge()
	out := &ec2.DescribeTagsOutput{}
	for _, id := range ids {
		var tags []types.Tag
		if p, ok := f.binTags(id); ok {
			tags = *p
		} else if img := f.Images[id]; img != nil {
			tags = img.Tags
		} else if s := f.Snapshots[id]; s != nil {
			tags = s.Tags
		}
		for _, t := range tags {
			if len(keys) == 0 || slices.Contains(keys, aws.ToString(t.Key)) {
				out.Tags = append(out.Tags, types.TagDescription{ResourceId: aws.String(id), Key: t.Key, Value: t.Value})
			}
		}
	}
	return out, nil
}

// CreateTags tags registered resources (as EC2 does) and items in the bin.
func (f *RecycleBin) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	live, err := f.tagBinned("CreateTags", in.Resources, func(p *[]types.Tag) { *p = mergeTags(*p, in.Tags) })
	if err != nil || len(live) == 0 {
		return &ec2.CreateTagsOutput{}, err
	}
	cp := *in
	cp.Resources = live
	return f.EC2.CreateTags(ctx, &cp, optFns...)
}

// DeleteTags untags registered resources (as EC2 does) and items in the bin.
func (f *RecycleBin) DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, optFns ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error) {
	if len(in.Tags) == 0 {
		panic("fake.RecycleBin.DeleteTags: deleting every tag is not modelled")
	}
	live, err := f.tagBinned("DeleteTags", in.Resources, func(p *[]types.Tag) { *p = dropTags(*p, in.Tags) })
	if err != nil || len(live) == 0 {
		return &ec2.DeleteTagsOutput{}, err
	}
	cp := *in
	cp.Resources = live
	return f.EC2.DeleteTags(ctx, &cp, optFns...)
}

// tagBinned applies change to the binned resources among ids and returns
// the others. It counts the call only when every resource is binned (the
// EC2 call counts the rest).
func (f *RecycleBin) tagBinned(op string, ids []string, change func(*[]types.Tag)) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.purge()
	var live []string
	var binned []*[]types.Tag
	for _, id := range ids {
		if p, ok := f.binTags(id); ok {
			binned = append(binned, p)
		} else {
			live = append(live, id)
		}
	}
	if len(live) == 0 {
		if err := f.enter(op); err != nil {
			return nil, err
		}
	}
	for _, p := range binned {
		change(p)
	}
	return live, nil
}

// InBin reports whether an AMI or snapshot is in the bin now.
func (f *RecycleBin) InBin(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.purge()
	_, ok := f.binTags(id)
	return ok
}

// BinTags returns the tags of an item in the bin as a map (nil if none).
func (f *RecycleBin) BinTags(id string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.binTags(id)
	if !ok {
		return nil
	}
	m := map[string]string{}
	for _, t := range *p {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// ListRules lists the rules for one resource type (rbin).
func (f *RecycleBin) ListRules(_ context.Context, in *rbin.ListRulesInput, _ ...func(*rbin.Options)) (*rbin.ListRulesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in.ResourceType == "" || in.NextToken != nil || len(in.ResourceTags) > 0 || len(in.ExcludeResourceTags) > 0 {
		panic(fmt.Sprintf("fake.RecycleBin.ListRules: ResourceType alone is modelled, got %+v", in))
	}
	if err := f.enter("ListRules"); err != nil {
		return nil, err
	}
	out := &rbin.ListRulesOutput{}
	for _, r := range f.Rules {
		if r.ResourceType == in.ResourceType {
			out.Rules = append(out.Rules, rbtypes.RuleSummary{Identifier: aws.String(r.ID),
				RetentionPeriod: &rbtypes.RetentionPeriod{RetentionPeriodUnit: rbtypes.RetentionPeriodUnitDays, RetentionPeriodValue: aws.Int32(int32(r.Days))}}) //nolint:gosec // rule days are 1-365
		}
	}
	return out, nil
}

// GetRule returns one rule (rbin).
func (f *RecycleBin) GetRule(_ context.Context, in *rbin.GetRuleInput, _ ...func(*rbin.Options)) (*rbin.GetRuleOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetRule"); err != nil {
		return nil, err
	}
	for _, r := range f.Rules {
		if r.ID == aws.ToString(in.Identifier) {
			return &rbin.GetRuleOutput{Identifier: aws.String(r.ID), ResourceType: r.ResourceType, Status: rbtypes.RuleStatusAvailable,
				RetentionPeriod: &rbtypes.RetentionPeriod{RetentionPeriodUnit: rbtypes.RetentionPeriodUnitDays, RetentionPeriodValue: aws.Int32(int32(r.Days))}, //nolint:gosec // rule days are 1-365
				ResourceTags:    rbinTags(r.ResourceTags), ExcludeResourceTags: rbinTags(r.ExcludeResourceTags)}, nil
		}
	}
	return nil, APIError("ResourceNotFoundException")
}

func rbinTags(m map[string]string) []rbtypes.ResourceTag {
	var out []rbtypes.ResourceTag
	for k, v := range m {
		out = append(out, rbtypes.ResourceTag{ResourceTagKey: aws.String(k), ResourceTagValue: aws.String(v)})
	}
	return out
}
