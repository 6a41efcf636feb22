package sharing

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Outcomes of a check (Result.Outcome).
const (
	// OutcomeCompliant: nothing to remove.
	OutcomeCompliant = "compliant"
	// OutcomeRevoked: everything the policy does not allow was removed, and
	// the confirming read agrees.
	OutcomeRevoked = "revoked"
	// OutcomeWouldRevoke: audit mode found principals to remove; nothing changed.
	OutcomeWouldRevoke = "would-revoke"
	// OutcomePartial: EC2 accepted the removals but the confirming read still
	// finds principals the policy does not allow (Finding.Remaining).
	OutcomePartial = "partial"
	// OutcomeGone: the resource does not exist (any more). Success.
	OutcomeGone = "gone"
	// OutcomeNotOwned: another account owns the resource; nothing changed.
	OutcomeNotOwned = "not-owned"
	// OutcomeIgnored: a snapshot outside the policy's scope (not behind an
	// AMI while check_all_snapshots is off); nothing read or changed.
	OutcomeIgnored = "ignored"
	// OutcomeHeld: enforce mode found principals to remove, but MayRemove
	// accepted none of them; nothing changed.
	OutcomeHeld = "held"
)

// Finding actions (Finding.Action).
const (
	ActionRevoked     = "revoked"
	ActionWouldRevoke = "would-revoke"
	ActionPartial     = "partial"
	ActionFailed      = "failed"
	// ActionHeld: enforce mode left every principal of the finding because
	// MayRemove refused them (Finding.Held).
	ActionHeld = "held"
)

// maxTagValue is EC2's limit on a tag value, in characters.
const maxTagValue = 256

// Enforcer checks AMIs and snapshots against the sharing policy and, in
// enforce mode, removes exactly the principals the policy does not allow.
type Enforcer struct {
	EC2    awsapi.SharingEC2
	Policy policy.Sharing
	Now    func() time.Time // time.Now when nil
	// MayRemove, when set, limits enforce mode to the principals it accepts:
	// the others the policy does not allow are left in place and reported in
	// Finding.Held (not as failures). The CLI sets it to the pairs its
	// operator was shown and confirmed, so a share that appeared after the
	// preview is not revoked unseen; the guard leaves it nil (remove all).
	MayRemove func(kind ResourceKind, resourceID string, p Principal) bool
	// Membership, when set (organization mode), resolves which removed
	// accounts keep access through a kept organization or OU
	// (Verdict.Shadowed); nil reports that they may.
	Membership Membership
}

// Result is what one check found and did.
type Result struct {
	// Outcome: "compliant", "revoked", "would-revoke" (audit), "partial",
	// "gone", "not-owned", "ignored".
	Outcome string
	// Findings has one entry per resource with something removed or to
	// remove (incl. the AMI's snapshots).
	Findings []Finding
	// Verdicts has one entry per resource checked, even compliant ones.
	Verdicts []Verdict
	// Exceptions has one entry per exception tag read (on the AMI, or on a
	// snapshot checked alone), whatever its state.
	Exceptions []ExceptionStatus
}

// check is the state of one CheckImage or CheckSnapshot call.
type check struct {
	e                      *Enforcer
	account, region, actor string
	now                    time.Time
	enforce                bool
	res                    Result
	// removed are the principals actually removed, for the violation tags.
	removed []Principal
	// left are the findings with principals the check could not remove.
	left []Finding
}

func (e *Enforcer) newCheck(account, region, actor string) *check {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	return &check{e: e, account: account, region: region, actor: actor, now: now().UTC(),
		enforce: e.Policy.Mode == policy.ModeEnforce}
}

// CheckImage reads the AMI and its launch permissions, decides, and in
// enforce mode removes exactly Verdict.Remove, then re-reads to confirm. It
// does the same for each EBS snapshot of the AMI (create-volume permissions),
// deciding with the AMI's tags. When anything was removed it tags the AMI
// once (TagViolationAt, TagViolationRemoved). Audit mode decides and reports
// ("would-revoke") and changes nothing.
//
// The AMI must be owned by account (else "not-owned", nothing read beyond
// DescribeImages). Its snapshots are taken to be the account's too, as an
// owned AMI's snapshots are. A disabled AMI has no launch permissions (EC2
// removed them when it was disabled, and refuses new ones): only its
// snapshots are checked.
//
// Errors: a resource that does not exist is success ("gone"; a missing
// snapshot is skipped). Any other error is returned, classified by
// awserr (retryable or permanent), with the Result of what was done before
// it; if something was removed by then, the AMI is still tagged (best
// effort). A check that could not remove every principal the policy does not
// allow (a removal EC2 refused, or accepted while the confirming read still
// lists the principal) goes on with the other resources, then returns a
// *PartialError naming each principal left and why, so the caller retries.
// A failure to write the violation tags does not fail the check
// (the removals stand and a retry would find nothing to tag): it is recorded
// in the findings' Error.
//
// Calls for an event on an AMI with one snapshot, both to revoke: 8
// (DescribeImages, DescribeImageAttribute, ModifyImageAttribute,
// DescribeImageAttribute, DescribeSnapshotAttribute, ModifySnapshotAttribute,
// DescribeSnapshotAttribute, CreateTags); 3 when compliant.
func (e *Enforcer) CheckImage(ctx context.Context, account, region, imageID, actor string) (Result, error) {
	if account == "" || imageID == "" {
		return Result{}, errors.New("sharing: CheckImage needs an account and an image ID")
	}
	c := e.newCheck(account, region, actor)
	img, err := c.describeImage(ctx, imageID)
	switch {
	case awserr.IsNotFound(err):
		return Result{Outcome: OutcomeGone}, nil
	case err != nil:
		return Result{}, err
	case img == nil || img.State == types.ImageStateDeregistered:
		return Result{Outcome: OutcomeGone}, nil
	}
	return e.checkImage(ctx, c, img)
}

// CheckListedImage is CheckImage for an AMI the caller already read with
// DescribeImages (the audit's listing pass), so it is not read again.
func (e *Enforcer) CheckListedImage(ctx context.Context, account, region string, img *types.Image, actor string) (Result, error) {
	if account == "" || img == nil || aws.ToString(img.ImageId) == "" {
		return Result{}, errors.New("sharing: CheckListedImage needs an account and an image")
	}
	return e.checkImage(ctx, e.newCheck(account, region, actor), img)
}

// checkImage checks a described AMI and its snapshots.
func (e *Enforcer) checkImage(ctx context.Context, c *check, img *types.Image) (Result, error) {
	imageID := aws.ToString(img.ImageId)
	if owner := aws.ToString(img.OwnerId); owner != c.account {
		return Result{Outcome: OutcomeNotOwned}, nil
	}
	tags := tagMap(img.Tags)
	c.exception(imageID, tags)
	gone, err := c.image(ctx, img, tags)
	if err == nil && !gone {
		for _, sid := range snapshotsOf(img) {
			if _, err = c.resource(ctx, snapshotTarget(e.EC2, sid, imageID), tags); err != nil {
				break
			}
		}
	}
	c.tag(ctx, imageID)
	return c.result(gone), c.err(gone, err)
}

// exception records the exception tag of the resource that carries it.
func (c *check) exception(resourceID string, tags map[string]string) {
	if st := AssessException(c.now, c.e.Policy, resourceID, tags); st != nil {
		c.res.Exceptions = append(c.res.Exceptions, *st)
	}
}

// err is the check's error: the first call that failed, else a
// *PartialError when principals the policy does not allow are left.
func (c *check) err(gone bool, err error) error {
	if err != nil || gone || len(c.left) == 0 {
		return err
	}
	return &PartialError{Findings: c.left}
}

// image checks the AMI's own launch permissions.
func (c *check) image(ctx context.Context, img *types.Image, tags map[string]string) (gone bool, err error) {
	id := aws.ToString(img.ImageId)
	if img.State == types.ImageStateDisabled {
		c.res.Verdicts = append(c.res.Verdicts, Verdict{Kind: KindImage, ResourceID: id, Keep: []Principal{}, Remove: []Principal{},
			Reasons: []string{"image is disabled: EC2 removed its launch permissions and accepts none while it is disabled"}})
		return false, nil
	}
	return c.resource(ctx, imageTarget(c.e.EC2, id), tags)
}

// CheckSnapshot does for one snapshot what CheckImage does for an AMI's
// snapshots: DescribeSnapshots for existence and ownership, then read,
// decide, remove, confirm, and tag the snapshot when something was removed.
//
// The exception tag is read where CheckImage reads it, so both agree: on
// the AMI for a snapshot behind one of the account's AMIs, on the snapshot
// itself otherwise. The AMI is found through the snapshot's description,
// which names it for CreateImage and CopyImage ("… for ami-…"), confirmed
// by DescribeImages (the AMI must be the account's and use the snapshot).
//
// With check_all_snapshots off, only snapshots behind an AMI are checked:
// one whose description does not lead to its AMI is looked up with
// DescribeImages filtered on block-device-mapping.snapshot-id (moto lacks
// that filter); a snapshot behind no AMI is "ignored".
func (e *Enforcer) CheckSnapshot(ctx context.Context, account, region, snapshotID, actor string) (Result, error) {
	if account == "" || snapshotID == "" {
		return Result{}, errors.New("sharing: CheckSnapshot needs an account and a snapshot ID")
	}
	c := e.newCheck(account, region, actor)
	out, err := e.EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapshotID}})
	if awserr.IsNotFound(err) {
		return Result{Outcome: OutcomeGone}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("describing snapshot %s: %w", snapshotID, err)
	}
	var snap *types.Snapshot
	for i := range out.Snapshots {
		if aws.ToString(out.Snapshots[i].SnapshotId) == snapshotID {
			snap = &out.Snapshots[i]
		}
	}
	switch {
	case snap == nil:
		return Result{Outcome: OutcomeGone}, nil
	case aws.ToString(snap.OwnerId) != account:
		return Result{Outcome: OutcomeNotOwned}, nil
	}
	parent, err := c.parentImage(ctx, snap)
	if err != nil {
		return Result{}, err
	}
	if parent == nil && !e.Policy.CheckAllSnapshots {
		return Result{Outcome: OutcomeIgnored}, nil
	}
	tags, imageID, carrier := tagMap(snap.Tags), "", snapshotID
	if parent != nil {
		// As in CheckImage: the AMI's exception decides for its snapshots.
		tags, imageID = tagMap(parent.Tags), aws.ToString(parent.ImageId)
		carrier = imageID
	}
	c.exception(carrier, tags)
	gone, err := c.resource(ctx, snapshotTarget(e.EC2, snapshotID, imageID), tags)
	c.tag(ctx, snapshotID)
	return c.result(gone), c.err(gone, err)
}

// reAMIID finds the AMI a snapshot was made for in EC2's descriptions:
// "Created by CreateImage(i-…) for ami-… " and "Copied for DestinationAmi
// ami-… from SourceAmi ami-…" (the first AMI named is the snapshot's).
var reAMIID = regexp.MustCompile(`\bami-[0-9a-f]{8,17}\b`)

// parentImage finds the account's AMI that uses the snapshot, or nil.
func (c *check) parentImage(ctx context.Context, snap *types.Snapshot) (*types.Image, error) {
	sid := aws.ToString(snap.SnapshotId)
	if id := reAMIID.FindString(aws.ToString(snap.Description)); id != "" {
		img, err := c.describeImage(ctx, id)
		if err != nil && !awserr.IsNotFound(err) {
			return nil, err
		}
		if img != nil && aws.ToString(img.OwnerId) == c.account && slices.Contains(snapshotsOf(img), sid) {
			return img, nil
		}
	}
	if c.e.Policy.CheckAllSnapshots {
		return nil, nil // every snapshot is checked; the AMI only adds its exception tag
	}
	out, err := c.e.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners:          []string{"self"},
		IncludeDisabled: aws.Bool(true),
		Filters:         []types.Filter{{Name: aws.String("block-device-mapping.snapshot-id"), Values: []string{sid}}},
	})
	if err != nil {
		return nil, fmt.Errorf("finding the AMI of snapshot %s: %w", sid, err)
	}
	var found *types.Image
	for i := range out.Images {
		img := &out.Images[i]
		if aws.ToString(img.OwnerId) == c.account && img.State != types.ImageStateDeregistered &&
			(found == nil || aws.ToString(img.ImageId) < aws.ToString(found.ImageId)) {
			found = img
		}
	}
	return found, nil
}

func (c *check) describeImage(ctx context.Context, imageID string) (*types.Image, error) {
	out, err := c.e.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}, IncludeDisabled: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("describing image %s: %w", imageID, err)
	}
	for i := range out.Images {
		if aws.ToString(out.Images[i].ImageId) == imageID {
			return &out.Images[i], nil
		}
	}
	return nil, nil // moto: a deregistered id gives an empty list
}

// target is one resource whose permissions are read and changed.
type target struct {
	kind    ResourceKind
	id      string
	imageID string // the AMI of a snapshot, for findings
	read    func(context.Context) ([]Principal, error)
	// remove asks EC2 to remove the principals; sent is false when none of
	// them can be expressed in a request (nothing was sent).
	remove func(context.Context, []Principal) (sent bool, err error)
}

func imageTarget(api awsapi.SharingEC2, id string) target {
	return target{
		kind: KindImage, id: id,
		read: func(ctx context.Context) ([]Principal, error) {
			out, err := api.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{
				ImageId: aws.String(id), Attribute: types.ImageAttributeNameLaunchPermission})
			if err != nil {
				return nil, fmt.Errorf("reading launch permissions of %s: %w", id, err)
			}
			return PrincipalsOfImage(out.LaunchPermissions), nil
		},
		remove: func(ctx context.Context, ps []Principal) (bool, error) {
			items := launchPermissions(ps)
			if len(items) == 0 {
				return false, nil
			}
			_, err := api.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{
				ImageId: aws.String(id), LaunchPermission: &types.LaunchPermissionModifications{Remove: items}})
			if err != nil {
				return true, fmt.Errorf("removing launch permissions of %s: %w", id, err)
			}
			return true, nil
		},
	}
}

func snapshotTarget(api awsapi.SharingEC2, id, imageID string) target {
	return target{
		kind: KindSnapshot, id: id, imageID: imageID,
		read: func(ctx context.Context) ([]Principal, error) {
			out, err := api.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{
				SnapshotId: aws.String(id), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
			if err != nil {
				return nil, fmt.Errorf("reading create-volume permissions of %s: %w", id, err)
			}
			return PrincipalsOfSnapshot(out.CreateVolumePermissions), nil
		},
		remove: func(ctx context.Context, ps []Principal) (bool, error) {
			// The legacy form: EC2 accepts it, and moto applies only this one.
			var users, groups []string
			for _, p := range ps {
				switch p.Kind {
				case KindAccount:
					users = append(users, p.Value)
				case KindPublic:
					groups = append(groups, string(types.PermissionGroupAll))
				case kindGroup:
					groups = append(groups, p.Value)
				}
			}
			if len(users) == 0 && len(groups) == 0 {
				return false, nil
			}
			_, err := api.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{
				SnapshotId:    aws.String(id),
				Attribute:     types.SnapshotAttributeNameCreateVolumePermission,
				OperationType: types.OperationTypeRemove,
				UserIds:       users,
				GroupNames:    groups,
			})
			if err != nil {
				return true, fmt.Errorf("removing create-volume permissions of %s: %w", id, err)
			}
			return true, nil
		},
	}
}

// launchPermissions builds the removal items for principals, in their order.
// Principals of an unknown kind cannot be expressed and are left out.
func launchPermissions(ps []Principal) []types.LaunchPermission {
	var items []types.LaunchPermission
	for _, p := range ps {
		switch p.Kind {
		case KindPublic:
			items = append(items, types.LaunchPermission{Group: types.PermissionGroupAll})
		case KindAccount:
			items = append(items, types.LaunchPermission{UserId: aws.String(p.Value)})
		case KindOrganization:
			items = append(items, types.LaunchPermission{OrganizationArn: aws.String(p.Value)})
		case KindOU:
			items = append(items, types.LaunchPermission{OrganizationalUnitArn: aws.String(p.Value)})
		case kindGroup:
			items = append(items, types.LaunchPermission{Group: types.PermissionGroup(p.Value)})
		}
	}
	return items
}

// resource reads, decides and (in enforce mode) removes and confirms, for one
// resource. gone is true when the resource turned out not to exist.
func (c *check) resource(ctx context.Context, t target, tags map[string]string) (gone bool, err error) {
	current, err := t.read(ctx)
	if awserr.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	v := EvaluateWith(c.now, c.e.Policy, c.e.Membership, t.kind, t.id, tags, current)
	c.res.Verdicts = append(c.res.Verdicts, v)
	if len(v.Remove) == 0 {
		return false, nil
	}
	remove, held := v.Remove, []Principal(nil)
	if c.enforce && c.e.MayRemove != nil {
		remove = nil
		for _, p := range v.Remove {
			if c.e.MayRemove(t.kind, t.id, p) {
				remove = append(remove, p)
			} else {
				held = append(held, p)
			}
		}
	}
	f := Finding{Account: c.account, Region: c.region, ResourceType: t.kind, ResourceID: t.id, ImageID: t.imageID,
		Removed: remove, Held: held, Kept: v.Keep, Reasons: v.Reasons, Shadowed: v.Shadowed, Actor: c.actor, Time: c.now}
	if !c.enforce {
		f.Action = ActionWouldRevoke
		c.res.Findings = append(c.res.Findings, f)
		return false, nil
	}
	if len(remove) == 0 {
		f.Action, f.Removed = ActionHeld, []Principal{}
		c.res.Findings = append(c.res.Findings, f)
		return false, nil
	}
	sent, err := t.remove(ctx, remove)
	// failed holds, per principal, why its removal failed.
	failed := map[Principal]string{}
	switch {
	case awserr.IsNotFound(err):
		return true, nil
	case err != nil && (len(remove) == 1 || !strings.HasPrefix(awserr.Code(err), "Invalid")):
		f.Action, f.Error, f.Removed, f.Remaining = ActionFailed, err.Error(), []Principal{}, remove
		f.Failed = failuresOf(remove, nil, err.Error())
		c.res.Findings = append(c.res.Findings, f)
		return false, err
	case err != nil:
		// EC2 refuses a whole request for one item it does not accept
		// (Invalid… codes; throttling and authorization fail every request
		// alike). One principal at a time, the others still go, and the
		// finding names the one that failed.
		sent = false
		for _, p := range remove {
			one, perr := t.remove(ctx, []Principal{p})
			if awserr.IsNotFound(perr) {
				return true, nil
			}
			if perr != nil {
				failed[p] = perr.Error()
				continue
			}
			sent = sent || one
		}
	}
	after := current
	if sent {
		after, err = t.read(ctx)
		if awserr.IsNotFound(err) {
			// Removed, then the resource went away.
			f.Action = ActionRevoked
			c.res.Findings = append(c.res.Findings, f)
			c.removed = append(c.removed, remove...)
			return true, nil
		}
		if err != nil {
			// EC2 accepted the removal; the retry will confirm it.
			f.Action, f.Error = ActionRevoked, "confirming: "+err.Error()
			c.res.Findings = append(c.res.Findings, f)
			c.removed = append(c.removed, remove...)
			return false, err
		}
	}
	f.Remaining = slices.DeleteFunc(EvaluateWith(c.now, c.e.Policy, c.e.Membership, t.kind, t.id, tags, after).Remove,
		func(p Principal) bool { return slices.Contains(held, p) })
	f.Removed = []Principal{}
	for _, p := range remove {
		if !slices.Contains(after, p) {
			f.Removed = append(f.Removed, p)
		}
	}
	c.removed = append(c.removed, f.Removed...)
	f.Action = ActionRevoked
	if len(f.Remaining) > 0 {
		f.Action = ActionPartial
		f.Remaining = sortPrincipals(f.Remaining)
		other := "EC2 accepted the removal, but the confirming read still lists it"
		if !sent && len(failed) == 0 {
			other = "no removal request can express it"
		}
		f.Failed = failuresOf(f.Remaining, failed, other)
		c.left = append(c.left, f)
	}
	c.res.Findings = append(c.res.Findings, f)
	return false, nil
}

// failuresOf says why each principal is left: its own error when known,
// else other.
func failuresOf(ps []Principal, known map[Principal]string, other string) []PrincipalFailure {
	out := make([]PrincipalFailure, 0, len(ps))
	for _, p := range ps {
		msg, ok := known[p]
		if !ok {
			msg = other
		}
		out = append(out, PrincipalFailure{Principal: p, Error: msg})
	}
	return out
}

// tag writes the violation tags on resourceID when something was removed.
// A failure is recorded in the findings, not returned.
func (c *check) tag(ctx context.Context, resourceID string) {
	if !c.enforce || len(c.removed) == 0 {
		return
	}
	_, err := c.e.EC2.CreateTags(ctx, &ec2.CreateTagsInput{
		Resources: []string{resourceID},
		Tags: []types.Tag{
			{Key: aws.String(TagViolationAt), Value: aws.String(c.now.Format(time.RFC3339))},
			{Key: aws.String(TagViolationRemoved), Value: aws.String(removedTagValue(c.removed))},
		},
	})
	if err == nil || awserr.IsNotFound(err) {
		return
	}
	msg := fmt.Sprintf("writing the violation tags on %s: %v", resourceID, err)
	for i := range c.res.Findings {
		f := &c.res.Findings[i]
		if f.Action == ActionRevoked || f.Action == ActionPartial {
			f.Error = strings.TrimPrefix(f.Error+"; "+msg, "; ")
		}
	}
}

// removedTagValue renders removed principals for TagViolationRemoved: sorted,
// each once, joined with ", ", at most 256 characters (cut with "…").
func removedTagValue(removed []Principal) string {
	ps := sortPrincipals(removed)
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	s := strings.Join(parts, ", ")
	if utf8.RuneCountInString(s) <= maxTagValue {
		return s
	}
	return string([]rune(s)[:maxTagValue-1]) + "…"
}

func (c *check) result(gone bool) Result {
	r := c.res
	has := func(action string) bool {
		return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Action == action })
	}
	switch {
	case gone:
		r.Outcome = OutcomeGone
	case has(ActionPartial) || has(ActionFailed):
		r.Outcome = OutcomePartial
	case has(ActionRevoked):
		r.Outcome = OutcomeRevoked
	case has(ActionWouldRevoke):
		r.Outcome = OutcomeWouldRevoke
	case has(ActionHeld):
		r.Outcome = OutcomeHeld
	default:
		r.Outcome = OutcomeCompliant
	}
	return r
}

// snapshotsOf returns the EBS snapshot IDs of an AMI, each once, in order.
func snapshotsOf(img *types.Image) []string {
	var ids []string
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs != nil && aws.ToString(m.Ebs.SnapshotId) != "" && !slices.Contains(ids, *m.Ebs.SnapshotId) {
			ids = append(ids, *m.Ebs.SnapshotId)
		}
	}
	return ids
}

func tagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}
