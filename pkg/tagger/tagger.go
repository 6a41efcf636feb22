package tagger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Outcome summarises what one request did.
type Outcome string

// Outcomes, stable: they are logged and returned.
const (
	OutcomeTagged   Outcome = "tagged"         // tags were written
	OutcomePartial  Outcome = "tagged-partial" // AMI tagged; some snapshots not listed yet
	OutcomeUpToDate Outcome = "up-to-date"     // nothing to write (replay, or all set)
	OutcomeAudit    Outcome = "audit"          // audit mode: writes computed, not made
	OutcomeGone     Outcome = "gone"           // the AMI no longer exists
	OutcomeNotOwned Outcome = "not-owned"      // another account owns the AMI: nothing changed
	OutcomeSkipped  Outcome = "skipped"        // the AMI is in a state we do not tag (failed), or nothing confirmed is left to write (WithMayWrite)
)

// Request asks to tag one new AMI. It is independent of how the news
// arrived: a CloudTrail record, a state-change event, or an operator.
type Request struct {
	Account string
	Region  string
	ImageID string
	// What the creating call's CloudTrail record told us; all optional (a
	// state-change event knows none of it). A Principal marks the record: the
	// tagger then writes every provenance tag from it, replacing any value
	// the AMI or its snapshots carry, and empties those that do not apply.
	Operation        string
	Principal        string
	Issuer           string
	SourceInstanceID string
	SourceImageID    string
	SourceRegion     string
	// CallerTags are the tags the call asked for at creation
	// (TagSpecifications), by resource type ("image", "snapshot"); they only
	// explain a replacement.
	CallerTags map[string]map[string]string
}

// Result reports what was done and why.
type Result struct {
	ImageID     string   `json:"image_id,omitempty"`
	SnapshotIDs []string `json:"snapshot_ids,omitempty"`
	Outcome     Outcome  `json:"outcome"`
	Reason      string   `json:"reason,omitempty"`
	Writes      []Write  `json:"writes,omitempty"`
	Skips       []Skip   `json:"skipped,omitempty"`
	// Replaced lists existing values the writes replace (in audit mode: would replace).
	Replaced []Replacement `json:"replaced,omitempty"`
	// Unverified lists provenance tags present that this event cannot confirm.
	Unverified []Skip   `json:"unverified,omitempty"`
	Notes      []string `json:"notes,omitempty"`
}

// deadlineMargin is kept free at the end of an invocation for the writes.
const deadlineMargin = 5 * time.Second

// ClientSource returns the EC2 client for a region.
type ClientSource func(region string) awsapi.TaggerEC2

// Tagger applies the tagging policy to new AMIs.
type Tagger struct {
	clients ClientSource
	policy  policy.Tagging
	// poll is the interval between DescribeImages calls while waiting for a
	// pending AMI's snapshots; sleep is injectable so tests need not wait.
	poll  time.Duration
	sleep func(context.Context, time.Duration) error
	// mayWrite, when set, limits enforce mode's writes (WithMayWrite).
	mayWrite func(imageID, resourceID, key, value string) bool
}

// New returns a Tagger for the given policy section.
func New(clients ClientSource, p policy.Tagging) *Tagger {
	return &Tagger{clients: clients, policy: p, poll: 2 * time.Second, sleep: clock.Real().Sleep}
}

// WithPoll overrides the wait between polls of a pending AMI (tests, demo).
func (t *Tagger) WithPoll(d time.Duration, sleep func(context.Context, time.Duration) error) *Tagger {
	t.poll, t.sleep = d, sleep
	return t
}

// WithMayWrite limits enforce mode to the tags may accepts (AMI, resource,
// key, value): the others planned are not written and are listed in
// Result.Skips with NotConfirmed. The CLI sets it to the tags its operator
// was shown and confirmed, so a tag planned only since is not written
// unseen; the tagger function never sets it.
func (t *Tagger) WithMayWrite(may func(imageID, resourceID, key, value string) bool) *Tagger {
	t.mayWrite = may
	return t
}

// NotConfirmed is the reason of a Skip for a tag WithMayWrite refused.
const NotConfirmed = "not in the confirmed plan: run again to see it"

// Tag brings the AMI and its snapshots to the policy's tags. It is
// idempotent: running it again writes nothing. Errors returned are AWS
// failures worth retrying or reporting; "gone" and "not owned" are results.
func (t *Tagger) Tag(ctx context.Context, req Request) (Result, error) {
	res := Result{ImageID: req.ImageID}
	client := t.clients(req.Region)

	img, err := t.describeImage(ctx, client, req.ImageID)
	if err != nil {
		return res, err
	}
	if img == nil {
		res.Outcome, res.Reason = OutcomeGone, "the AMI no longer exists"
		return res, nil
	}
	if owner := aws.ToString(img.OwnerId); owner != req.Account {
		res.Outcome, res.Reason = OutcomeNotOwned, fmt.Sprintf("owned by account %s, not %s", owner, req.Account)
		return res, nil
	}
	if img, err = t.waitForSnapshots(ctx, client, img); err != nil {
		return res, err
	}
	if img == nil {
		res.Outcome, res.Reason = OutcomeGone, "the AMI was deregistered while waiting for its snapshots"
		return res, nil
	}
	switch img.State {
	case types.ImageStateFailed, types.ImageStateError, types.ImageStateInvalid, types.ImageStateDeregistered:
		res.Outcome, res.Reason = OutcomeSkipped, fmt.Sprintf("image state is %s", img.State)
		return res, nil
	}

	snapIDs, complete := snapshotIDs(img)
	res.SnapshotIDs = snapIDs
	resources := []Resource{{ID: req.ImageID, Tags: tagMap(img.Tags), CallerTags: req.CallerTags["image"]}}
	facts := t.facts(req, img)

	// The source's tags and the snapshots' tags are independent reads: when
	// the AMI itself lacks a copied key (a first delivery), read both at once
	// to save a round trip.
	type sourceRead struct {
		tags map[string]string
		note string
		err  error
	}
	var source chan sourceRead
	if t.needsSourceTags(facts, resources) {
		source = make(chan sourceRead, 1)
		go func() {
			tags, note, err := t.sourceTags(ctx, req, facts)
			source <- sourceRead{tags, note, err}
		}()
	}
	snaps, note, snapErr := t.snapshotResources(ctx, client, req.Account, snapIDs)
	for i := range snaps {
		snaps[i].CallerTags = req.CallerTags["snapshot"]
	}
	resources = append(resources, snaps...)
	res.Notes = appendNote(res.Notes, note)
	if source == nil && snapErr == nil && t.needsSourceTags(facts, resources) {
		source = make(chan sourceRead, 1)
		tags, note, err := t.sourceTags(ctx, req, facts)
		source <- sourceRead{tags, note, err}
	}
	if source != nil {
		sr := <-source
		if sr.err != nil {
			return res, sr.err
		}
		facts.SourceTags = sr.tags
		res.Notes = appendNote(res.Notes, sr.note)
	}
	if snapErr != nil {
		return res, snapErr
	}

	plan := PlanWrites(t.policy, Desired(t.policy, facts), resources)
	res.Writes, res.Skips, res.Replaced, res.Unverified = plan.Writes, plan.Skips, plan.Replaced, plan.Unverified
	held := 0
	if t.mayWrite != nil && t.policy.Mode == policy.ModeEnforce {
		held = res.holdUnconfirmed(func(r, k, v string) bool { return t.mayWrite(req.ImageID, r, k, v) })
	}
	switch {
	case len(res.Writes) == 0 && held > 0:
		res.Outcome, res.Reason = OutcomeSkipped, "no tag of the confirmed plan is still to write; "+NotConfirmed
		return res, nil
	case len(res.Writes) == 0:
		res.Outcome, res.Reason = OutcomeUpToDate, "every desired tag is already present"
	case t.policy.Mode != policy.ModeEnforce: // only an explicit enforce writes
		res.Outcome, res.Reason = OutcomeAudit, "audit mode: tags computed, not written"
		return res, nil
	default:
		for _, w := range res.Writes {
			if err := t.write(ctx, client, w); err != nil {
				if awserr.IsNotFound(err) {
					res.Outcome, res.Reason = OutcomeGone, "the AMI or a snapshot disappeared while tagging: "+awserr.Code(err)
					return res, nil
				}
				return res, fmt.Errorf("tagging %v: %w", w.ResourceIDs, err)
			}
		}
		res.Outcome = OutcomeTagged
	}
	if !complete {
		res.Outcome = OutcomePartial
		res.Reason = "the AMI is pending and not all its snapshots are listed yet; the EC2 AMI State Change (available) event will tag the rest"
	}
	return res, nil
}

// facts merges the request (from CloudTrail) with what EC2 says about the
// image, so a state-change event alone still records the source.
func (t *Tagger) facts(req Request, img *types.Image) Facts {
	f := Facts{
		CreationDate:     aws.ToString(img.CreationDate),
		Operation:        req.Operation,
		Principal:        req.Principal,
		Issuer:           req.Issuer,
		SourceInstanceID: firstNonEmpty(req.SourceInstanceID, aws.ToString(img.SourceInstanceId)),
		SourceImageID:    firstNonEmpty(req.SourceImageID, aws.ToString(img.SourceImageId)),
		SourceRegion:     firstNonEmpty(req.SourceRegion, aws.ToString(img.SourceImageRegion)),
	}
	// EC2 sets SourceInstanceId only for CreateImage and SourceImageId only
	// for CopyImage, so the operation is known even without CloudTrail.
	if f.Operation == "" {
		switch {
		case f.SourceInstanceID != "":
			f.Operation = amievents.OpCreateImage
		case f.SourceImageID != "":
			f.Operation = amievents.OpCopyImage
		}
	}
	return f
}

// needsSourceTags avoids reading the source when no resource lacks a key the
// policy copies (replays, or no copy_from_source configured).
func (t *Tagger) needsSourceTags(f Facts, resources []Resource) bool {
	if len(t.policy.CopyFromSource) == 0 || (f.SourceInstanceID == "" && f.SourceImageID == "") {
		return false
	}
	for _, r := range resources {
		for _, k := range t.policy.CopyFromSource {
			if _, ok := r.Tags[k]; !ok {
				return true
			}
		}
	}
	return false
}

func (t *Tagger) sourceTags(ctx context.Context, req Request, f Facts) (map[string]string, string, error) {
	if f.SourceInstanceID != "" {
		// DescribeTags rather than DescribeInstances: the tags are all we need,
		// and the answer stays small however large the instance is.
		tags, err := describeTags(ctx, t.clients(req.Region), f.SourceInstanceID)
		if err != nil {
			return nil, "", fmt.Errorf("reading the tags of source instance %s: %w", f.SourceInstanceID, err)
		}
		if len(tags) == 0 {
			return nil, "source instance " + f.SourceInstanceID + " has no tags (or is gone): none copied", nil
		}
		return tags, "", nil
	}
	region := firstNonEmpty(f.SourceRegion, req.Region)
	src, err := t.describeImage(ctx, t.clients(region), f.SourceImageID)
	if err != nil {
		return nil, "", fmt.Errorf("describing source AMI %s in %s: %w", f.SourceImageID, region, err)
	}
	if src == nil {
		return nil, "source AMI " + f.SourceImageID + " not found in " + region + ": no tags copied", nil
	}
	if owner := aws.ToString(src.OwnerId); owner != req.Account {
		return nil, fmt.Sprintf("source AMI %s is owned by %s: its tags are not copied across accounts", f.SourceImageID, owner), nil
	}
	return tagMap(src.Tags), "", nil
}

// snapshotResources reads the snapshots' current tags (so none is
// overwritten). Snapshots owned by another account are left alone.
func (t *Tagger) snapshotResources(ctx context.Context, client awsapi.TaggerEC2, account string, ids []string) ([]Resource, string, error) {
	if len(ids) == 0 {
		return nil, "", nil
	}
	out, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: ids})
	if awserr.IsNotFound(err) {
		return nil, "a snapshot of the AMI was not found (" + awserr.Code(err) + "): only the AMI is tagged", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("describing snapshots %v: %w", ids, err)
	}
	found := map[string]types.Snapshot{}
	for _, s := range out.Snapshots {
		found[aws.ToString(s.SnapshotId)] = s
	}
	var res []Resource
	var note string
	for _, id := range ids {
		s, ok := found[id]
		switch {
		case !ok:
			note = "snapshot " + id + " not found: not tagged"
		case aws.ToString(s.OwnerId) != account:
			note = "snapshot " + id + " is owned by " + aws.ToString(s.OwnerId) + ": not tagged"
		default:
			res = append(res, Resource{ID: id, Tags: tagMap(s.Tags)})
		}
	}
	return res, note, nil
}

// waitForSnapshots polls a pending AMI, within the policy's bound, until EC2
// lists a snapshot for every EBS mapping. It returns nil if the AMI vanished.
func (t *Tagger) waitForSnapshots(ctx context.Context, client awsapi.TaggerEC2, img *types.Image) (*types.Image, error) {
	budget := t.policy.SnapshotWait.Duration
	// Leave time to tag before the invocation's deadline.
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl)-deadlineMargin)
	}
	for waited := time.Duration(0); img.State == types.ImageStatePending && waited < budget; waited += t.poll {
		if _, complete := snapshotIDs(img); complete {
			return img, nil
		}
		if err := t.sleep(ctx, t.poll); err != nil {
			return img, nil //nolint:nilerr // out of time: tag what is known, the available event finishes
		}
		next, err := t.describeImage(ctx, client, aws.ToString(img.ImageId))
		if err != nil || next == nil {
			return next, err
		}
		img = next
	}
	return img, nil
}

func (t *Tagger) describeImage(ctx context.Context, client awsapi.TaggerEC2, id string) (*types.Image, error) {
	out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{
		ImageIds: []string{id},
		// The owner always sees its own deprecated AMIs; disabled ones must be asked for.
		IncludeDisabled: aws.Bool(true),
	})
	if awserr.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describing image %s: %w", id, err)
	}
	for i := range out.Images {
		if aws.ToString(out.Images[i].ImageId) == id {
			return &out.Images[i], nil
		}
	}
	return nil, nil
}

// describeTags reads one resource's tags. Tags of a deleted resource vanish,
// so "gone" reads as no tags.
func describeTags(ctx context.Context, client awsapi.TaggerEC2, resourceID string) (map[string]string, error) {
	tags := map[string]string{}
	p := ec2.NewDescribeTagsPaginator(client, &ec2.DescribeTagsInput{
		Filters:    []types.Filter{{Name: aws.String("resource-id"), Values: []string{resourceID}}},
		MaxResults: aws.Int32(1000),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range out.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return tags, nil
}

func (t *Tagger) write(ctx context.Context, client awsapi.TaggerEC2, w Write) error {
	tags := make([]types.Tag, 0, len(w.Tags))
	for _, k := range slices.Sorted(maps.Keys(w.Tags)) {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(w.Tags[k])})
	}
	_, err := client.CreateTags(ctx, &ec2.CreateTagsInput{Resources: w.ResourceIDs, Tags: tags})
	return err
}

// holdUnconfirmed drops from the writes each tag may refuses (a Skip with
// NotConfirmed instead, and its Replacement goes too), keeping one write per
// set of resources that get the same tags. It returns how many it dropped.
func (res *Result) holdUnconfirmed(may func(resourceID, key, value string) bool) int {
	held := 0
	var writes []Write
	for _, w := range res.Writes {
		// Resources of w by the tags they keep, in w's order.
		var groups []Write
		for _, id := range w.ResourceIDs {
			kept := map[string]string{}
			for _, k := range slices.Sorted(maps.Keys(w.Tags)) {
				if may(id, k, w.Tags[k]) {
					kept[k] = w.Tags[k]
					continue
				}
				held++
				res.Skips = append(res.Skips, Skip{ResourceID: id, Key: k, Reason: NotConfirmed})
				res.Replaced = slices.DeleteFunc(res.Replaced, func(r Replacement) bool { return r.ResourceID == id && r.Key == k })
			}
			if len(kept) == 0 {
				continue
			}
			if i := slices.IndexFunc(groups, func(g Write) bool { return maps.Equal(g.Tags, kept) }); i >= 0 {
				groups[i].ResourceIDs = append(groups[i].ResourceIDs, id)
			} else {
				groups = append(groups, Write{ResourceIDs: []string{id}, Tags: kept})
			}
		}
		writes = append(writes, groups...)
	}
	res.Writes = writes
	return held
}

// snapshotIDs lists the EBS snapshots of the image's block device mappings,
// and whether every EBS mapping already names its snapshot.
func snapshotIDs(img *types.Image) ([]string, bool) {
	var ids []string
	complete := len(img.BlockDeviceMappings) > 0 || img.State != types.ImageStatePending
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs == nil {
			continue // instance-store or no-device mapping
		}
		if id := aws.ToString(m.Ebs.SnapshotId); id != "" {
			ids = append(ids, id)
		} else {
			complete = false
		}
	}
	return ids, complete
}

func tagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func appendNote(notes []string, note string) []string {
	if note == "" {
		return notes
	}
	return append(notes, note)
}
