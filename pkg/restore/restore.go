package restore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/rbin"
	rbtypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// Restorer reads and restores AMIs in one region.
type Restorer struct {
	EC2    awsapi.RestoreEC2
	Rules  awsapi.RecycleBinAPI
	Region string
	// Account is the caller's account: an AMI another account owns is
	// refused ("" skips the check).
	Account string
	// Key opens the cleanup's sealed delete-with tags; nil opens none, and
	// every such tag is then a hint only.
	Key *records.Key
}

// tagBatch is how many resource IDs one DescribeTags filter carries.
const tagBatch = 200

// Inspect reads what is known about imageID; extra are snapshot IDs the
// caller knows to be the AMI's (--snapshot).
func (r *Restorer) Inspect(ctx context.Context, imageID string, extra []string) (Facts, error) {
	f := Facts{ImageID: imageID, Region: r.Region, Account: r.Account}
	img, err := r.describeImage(ctx, imageID)
	if err != nil {
		return f, err
	}
	f.Image = img
	if img != nil && img.OwnerID != "" && r.Account != "" && img.OwnerID != r.Account {
		return f, nil // not ours: Decide refuses; nothing more to read
	}
	if img == nil {
		if f.Bin, err = r.binEntry(ctx, imageID); err != nil {
			return f, err
		}
	}
	snaps := map[string]*Snapshot{}
	// proven says whether the evidence proves the snapshot is the AMI's.
	add := func(id string, where Where, because string, proven bool) *Snapshot {
		s := snaps[id]
		if s == nil {
			s = &Snapshot{ID: id, Where: where}
			snaps[id] = s
		}
		if !slices.Contains(s.Because, because) {
			s.Because = append(s.Because, because)
		}
		s.Proven = s.Proven || proven
		return s
	}
	if img != nil {
		for _, id := range img.SnapshotIDs {
			add(id, "", "block device mapping", true).Mapped = true
		}
	}
	for _, id := range extra {
		add(id, "", "--snapshot", true)
	}
	// The bin's snapshots: by the EC2 description of the AMI they were
	// made for, and by the cleanup's tag (proof only when sealed).
	binned, err := r.binSnapshots(ctx)
	if err != nil {
		return f, err
	}
	binIDs := make([]string, 0, len(binned))
	for id, info := range binned {
		binIDs = append(binIDs, id)
		if cleanup.DescribedImage(aws.ToString(info.Description)) == imageID {
			add(id, InBin, "description", true)
		}
	}
	slices.Sort(binIDs)
	tagged, err := r.deleteWith(ctx, binIDs, imageID)
	if err != nil {
		return f, err
	}
	for id, sealed := range tagged {
		because := "delete-with tag (sealed)"
		if !sealed {
			because = "delete-with tag (unsealed: a hint)"
		}
		add(id, InBin, because, sealed).DeleteWith = true
	}
	// Where is each one? The bin listing says for binned ones; the rest are
	// in the account or gone.
	var rest []string
	for id, s := range snaps {
		if info, ok := binned[id]; ok {
			s.Where, s.Leaves = InBin, aws.ToTime(info.RecycleBinExitTime)
			continue
		}
		live, err := r.snapshotExists(ctx, id)
		if err != nil {
			return f, err
		}
		s.Where = Gone
		if live {
			s.Where = Live
			rest = append(rest, id)
		}
	}
	slices.Sort(rest)
	tagged, err = r.deleteWith(ctx, rest, imageID)
	if err != nil {
		return f, err
	}
	for id := range tagged {
		snaps[id].DeleteWith = true
	}
	for _, s := range snaps {
		f.Snapshots = append(f.Snapshots, *s)
	}
	slices.SortFunc(f.Snapshots, func(a, b Snapshot) int { return compare(a.ID, b.ID) })
	// The rules only explain a loss; read them when there is one.
	gone := slices.ContainsFunc(f.Snapshots, func(s Snapshot) bool { return s.Where == Gone })
	if (img == nil && f.Bin == nil) || gone {
		r.readRules(ctx, &f)
	}
	return f, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// describeImage returns the registered AMI, or nil.
func (r *Restorer) describeImage(ctx context.Context, imageID string) (*Image, error) {
	out, err := r.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}, IncludeDeprecated: aws.Bool(true), IncludeDisabled: aws.Bool(true)})
	if awserr.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s (DescribeImages): %w", imageID, err)
	}
	for _, im := range out.Images {
		if aws.ToString(im.ImageId) != imageID {
			continue
		}
		img := &Image{OwnerID: aws.ToString(im.OwnerId), State: string(im.State), Deprecated: aws.ToString(im.DeprecationTime) != "", Tags: tagMap(im.Tags)}
		for _, m := range im.BlockDeviceMappings {
			if m.Ebs != nil && m.Ebs.SnapshotId != nil && !slices.Contains(img.SnapshotIDs, *m.Ebs.SnapshotId) {
				img.SnapshotIDs = append(img.SnapshotIDs, *m.Ebs.SnapshotId)
			}
		}
		return img, nil
	}
	return nil, nil
}

func (r *Restorer) binEntry(ctx context.Context, imageID string) (*BinEntry, error) {
	out, err := r.EC2.ListImagesInRecycleBin(ctx, &ec2.ListImagesInRecycleBinInput{ImageIds: []string{imageID}})
	if err != nil && !awserr.IsNotFound(err) {
		return nil, fmt.Errorf("looking for %s in the Recycle Bin (ListImagesInRecycleBin): %w", imageID, err)
	}
	if out == nil {
		return nil, nil
	}
	for _, im := range out.Images {
		if aws.ToString(im.ImageId) != imageID {
			continue
		}
		e := &BinEntry{Name: aws.ToString(im.Name), Entered: aws.ToTime(im.RecycleBinEnterTime), Leaves: aws.ToTime(im.RecycleBinExitTime)}
		tags, err := r.tags(ctx, []string{imageID}, nil)
		if err != nil {
			return nil, err
		}
		e.Tags = map[string]string{}
		for _, t := range tags {
			e.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		return e, nil
	}
	return nil, nil
}

// binSnapshots lists every snapshot in the bin (its listing has no filter
// but IDs, and the AMI's snapshot IDs are what is sought).
func (r *Restorer) binSnapshots(ctx context.Context) (map[string]types.SnapshotRecycleBinInfo, error) {
	out := map[string]types.SnapshotRecycleBinInfo{}
	p := ec2.NewListSnapshotsInRecycleBinPaginator(r.EC2, &ec2.ListSnapshotsInRecycleBinInput{MaxResults: aws.Int32(1000)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the Recycle Bin's snapshots (ListSnapshotsInRecycleBin): %w", err)
		}
		for _, s := range page.Snapshots {
			out[aws.ToString(s.SnapshotId)] = s
		}
	}
	return out, nil
}

// deleteWith returns those of ids whose delete-with tag names imageID, each
// with whether its seal opens with r.Key for imageID.
func (r *Restorer) deleteWith(ctx context.Context, ids []string, imageID string) (map[string]bool, error) {
	tags, err := r.tags(ctx, ids, []string{cleanup.TagDeleteWith})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, t := range tags {
		id, value := aws.ToString(t.ResourceId), aws.ToString(t.Value)
		if !deleteWithNames(value, imageID) {
			continue
		}
		v, ok := r.Key.Open(cleanup.TagDeleteWith, id, value)
		out[id] = ok && v == imageID
	}
	return out, nil
}

func (r *Restorer) tags(ctx context.Context, ids, keys []string) ([]types.TagDescription, error) {
	var out []types.TagDescription
	for chunk := range slices.Chunk(ids, tagBatch) {
		filters := []types.Filter{{Name: aws.String("resource-id"), Values: chunk}}
		if len(keys) > 0 {
			filters = append(filters, types.Filter{Name: aws.String("key"), Values: keys})
		}
		in := &ec2.DescribeTagsInput{Filters: filters}
		for {
			page, err := r.EC2.DescribeTags(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("reading tags (DescribeTags): %w", err)
			}
			out = append(out, page.Tags...)
			if page.NextToken == nil {
				break
			}
			in.NextToken = page.NextToken
		}
	}
	return out, nil
}

func (r *Restorer) snapshotExists(ctx context.Context, id string) (bool, error) {
	out, err := r.EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if awserr.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading snapshot %s (DescribeSnapshots): %w", id, err)
	}
	return len(out.Snapshots) > 0, nil
}

// readRules reads the region's retention rules for AMIs and snapshots.
func (r *Restorer) readRules(ctx context.Context, f *Facts) {
	if r.Rules == nil {
		f.RulesError = "no Recycle Bin client"
		return
	}
	var err error
	if f.ImageRules, err = r.rules(ctx, rbtypes.ResourceTypeEc2Image); err == nil {
		f.SnapshotRules, err = r.rules(ctx, rbtypes.ResourceTypeEbsSnapshot)
	}
	if err != nil {
		f.RulesError = err.Error()
	}
}

func (r *Restorer) rules(ctx context.Context, rt rbtypes.ResourceType) ([]Rule, error) {
	var out []Rule
	p := rbin.NewListRulesPaginator(r.Rules, &rbin.ListRulesInput{ResourceType: rt})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("rbin ListRules %s: %w", rt, err)
		}
		for _, s := range page.Rules {
			rule := Rule{ID: aws.ToString(s.Identifier), Scope: "region"}
			if s.RetentionPeriod != nil {
				rule.Days = int(aws.ToInt32(s.RetentionPeriod.RetentionPeriodValue))
			}
			full, err := r.Rules.GetRule(ctx, &rbin.GetRuleInput{Identifier: s.Identifier})
			if err != nil {
				return nil, fmt.Errorf("rbin GetRule %s: %w", rule.ID, err)
			}
			switch {
			case len(full.ResourceTags) > 0:
				rule.Scope = "tagged resources only"
			case len(full.ExcludeResourceTags) > 0:
				rule.Scope = "region, with exclusion tags"
			}
			out = append(out, rule)
		}
	}
	return out, nil
}

// Step is one call Apply made.
type Step struct {
	Action string `json:"action"`
	Target string `json:"target"`
	Error  string `json:"error,omitempty"`
}

// Result is what Apply did.
type Result struct {
	Steps []Step `json:"steps"`
	// Missing are snapshots the restored AMI's block device mappings name
	// that are neither in the account nor in the bin: the AMI cannot launch.
	Missing []string `json:"missing_snapshots,omitempty"`
	// State is the AMI's state at the end.
	State string `json:"state,omitempty"`
}

// Failed reports whether a step failed or the AMI is unusable.
func (r Result) Failed() bool {
	return len(r.Missing) > 0 || slices.ContainsFunc(r.Steps, func(s Step) bool { return s.Error != "" })
}

// Apply carries out p: protect tag first (so no sweep takes the AMI while
// the rest is done; tags can be written in the bin), delete-with tags off
// the proven snapshots, then the image; once it is registered, exactly the
// snapshots its block device mappings name that are in the bin are
// restored (those gone are reported), the stages the cleanup recorded are
// undone, and its records removed. A failed call stops everything after
// it, except that the result says what was done.
func (r *Restorer) Apply(ctx context.Context, p Plan) (Result, error) {
	var res Result
	step := func(action, target string, err error) error {
		s := Step{Action: action, Target: target}
		if err != nil {
			s.Error = err.Error()
		}
		res.Steps = append(res.Steps, s)
		if err != nil {
			return fmt.Errorf("%s %s: %w", action, target, err)
		}
		return nil
	}
	if !p.Changes() {
		return res, nil
	}
	if p.ProtectValue != "" {
		_, err := r.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{p.ImageID},
			Tags: []types.Tag{{Key: aws.String(p.ProtectTag), Value: aws.String(p.ProtectValue)}}})
		if err := step("protect", p.ImageID, err); err != nil {
			return res, err
		}
	}
	if len(p.UntagSnapshots) > 0 {
		_, err := r.EC2.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: p.UntagSnapshots, Tags: []types.Tag{{Key: aws.String(cleanup.TagDeleteWith)}}})
		if err := step("remove-delete-with", fmt.Sprint(p.UntagSnapshots), err); err != nil {
			return res, err
		}
	}
	// The image first: its block device mappings then say exactly which
	// snapshots are its own (p.RestoreSnapshots is only what is expected).
	if p.RestoreImage {
		_, err := r.EC2.RestoreImageFromRecycleBin(ctx, &ec2.RestoreImageFromRecycleBinInput{ImageId: aws.String(p.ImageID)})
		if err := step("restore-image", p.ImageID, err); err != nil {
			return res, err
		}
	}
	img, err := r.describeImage(ctx, p.ImageID)
	if err != nil {
		return res, err
	}
	if img == nil {
		return res, errors.New(p.ImageID + " is not registered after restoring it")
	}
	res.State = img.State
	if err := r.checkSnapshots(ctx, img, &res, step); err != nil {
		return res, err
	}
	stages := StagesToUndo(*img)
	if stages.Enable {
		_, err := r.EC2.EnableImage(ctx, &ec2.EnableImageInput{ImageId: aws.String(p.ImageID)})
		if err := step("enable", p.ImageID, err); err != nil {
			return res, err
		}
		res.State = string(types.ImageStateAvailable)
	}
	if stages.Undeprecate {
		_, err := r.EC2.DisableImageDeprecation(ctx, &ec2.DisableImageDeprecationInput{ImageId: aws.String(p.ImageID)})
		if err := step("cancel-deprecation", p.ImageID, err); err != nil {
			return res, err
		}
	}
	if len(p.UnmarkKeys) > 0 {
		var tags []types.Tag
		for _, k := range p.UnmarkKeys {
			tags = append(tags, types.Tag{Key: aws.String(k)})
		}
		_, err := r.EC2.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{p.ImageID}, Tags: tags})
		if err := step("unmark", p.ImageID, err); err != nil {
			return res, err
		}
	}
	return res, nil
}

// checkSnapshots reads the registered AMI's own list of snapshots, the
// authority on which are its: one in the bin is restored, one gone is
// reported. No other snapshot is touched.
func (r *Restorer) checkSnapshots(ctx context.Context, img *Image, res *Result, step func(string, string, error) error) error {
	var unknown []string
	for _, id := range img.SnapshotIDs {
		live, err := r.snapshotExists(ctx, id)
		if err != nil {
			return err
		}
		if !live {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	out, err := r.EC2.ListSnapshotsInRecycleBin(ctx, &ec2.ListSnapshotsInRecycleBinInput{SnapshotIds: unknown})
	if err != nil && !awserr.IsNotFound(err) {
		return fmt.Errorf("looking for %v in the Recycle Bin: %w", unknown, err)
	}
	inBin := map[string]bool{}
	if out != nil {
		for _, s := range out.Snapshots {
			inBin[aws.ToString(s.SnapshotId)] = true
		}
	}
	for _, id := range unknown {
		if !inBin[id] {
			res.Missing = append(res.Missing, id)
			continue
		}
		// Its delete-with tag (if any) comes off first, as in the plan.
		if _, err := r.EC2.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String(cleanup.TagDeleteWith)}}}); err != nil {
			return step("remove-delete-with", id, err)
		}
		_, err := r.EC2.RestoreSnapshotFromRecycleBin(ctx, &ec2.RestoreSnapshotFromRecycleBinInput{SnapshotId: aws.String(id)})
		if err := step("restore-snapshot", id, err); err != nil {
			return err
		}
	}
	return nil
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}
