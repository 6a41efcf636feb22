// Package restore brings an AMI the cleanup removed back from the Recycle
// Bin, and keeps it: the operator CLI's `restore`.
//
// It works in three steps: Inspect reads what is known about the AMI (is it
// registered, in the bin and until when, its snapshots, the region's
// retention rules), Decide (pure) says what can be done and why, and Apply
// carries the plan out and checks the result.
//
// Finding the AMI's snapshots. ListImagesInRecycleBin returns only the ID,
// name, description and bin times of an AMI, not its block device mappings,
// and DescribeImages does not show an AMI in the bin. Before the AMI is
// back, its snapshots are known only by evidence that survives the bin:
//   - the snapshot's description, when it is one EC2 writes for the AMI the
//     snapshot was made for (CreateImage "Created by CreateImage(i-…) for
//     ami-X …", CopyImage "Copied for DestinationAmi ami-X …";
//     cleanup.DescribedImage); a copy's snapshots also name their SourceAmi,
//     which they are not;
//   - the cleanup's delete-with tag "ami-housekeeper:delete-with=<ami>/<seal>",
//     but only when its seal opens with the records key: anyone with
//     ec2:CreateTags can write the tag, so without the key it is a hint,
//     shown and never acted on;
//   - snapshot IDs the operator passes (--snapshot, from the cleanup's
//     "cleanup decision" log line, snapshot_ids; `ami-housekeeper report`).
//
// That evidence only says what to expect, takes delete-with tags off and
// refuses a restore whose known snapshot is gone. What comes back is decided
// by the AMI itself: the image is restored first, then exactly the snapshots
// its block device mappings name that are still in the bin (the same for an
// AMI still registered).
package restore

import (
	"fmt"
	"strings"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
)

// Where a snapshot is.
type Where string

const (
	// InBin: in the Recycle Bin, restorable until its exit time.
	InBin Where = "recycle-bin"
	// Live: in the account.
	Live Where = "account"
	// Gone: neither; deleted for good.
	Gone Where = "gone"
)

// Facts are what Inspect read about one AMI.
type Facts struct {
	ImageID string
	Region  string
	// Image is the AMI when it is registered (nil otherwise).
	Image *Image
	// Bin is the AMI's Recycle Bin entry (nil when it is not in the bin).
	Bin *BinEntry
	// Snapshots are the snapshots known to be the AMI's, sorted by ID.
	Snapshots []Snapshot
	// ImageRules and SnapshotRules are the region's retention rules, read
	// only to explain why something cannot be restored.
	ImageRules, SnapshotRules []Rule
	// RulesError is set when the rules could not be read.
	RulesError string
	// Account is the caller's account ("" when unknown): an AMI another
	// account owns is not restored or tagged.
	Account string
}

// Image is a registered AMI.
type Image struct {
	OwnerID     string
	State       string
	Deprecated  bool
	Tags        map[string]string
	SnapshotIDs []string
}

// BinEntry is an AMI in the Recycle Bin.
type BinEntry struct {
	Name            string
	Entered, Leaves time.Time
	Tags            map[string]string
}

// Snapshot is one snapshot of the AMI.
type Snapshot struct {
	ID    string
	Where Where
	// Leaves is when the bin deletes it for good (InBin only).
	Leaves time.Time
	// Because says how it is known to be the AMI's.
	Because []string
	// DeleteWith is set when it carries the cleanup's delete-with tag
	// naming the AMI (sealed or not).
	DeleteWith bool
	// Proven is set when something other than an unsealed delete-with tag
	// says it is the AMI's: only then is it acted on before the AMI is back.
	Proven bool
	// Mapped is set when the registered AMI's block device mappings name it.
	Mapped bool
}

// Rule is a Recycle Bin retention rule.
type Rule struct {
	ID   string
	Days int
	// Scope is "region", "region, with exclusion tags" or "tagged resources only".
	Scope string
}

// Outcome is what a plan does.
type Outcome string

const (
	// OutcomeRestore: the AMI (and snapshots) come back from the bin.
	OutcomeRestore Outcome = "restore"
	// OutcomeKeep: the AMI is registered; the cleanup's marks come off and
	// the protect tag goes on.
	OutcomeKeep Outcome = "keep"
	// OutcomeNothing: registered, protected and unmarked already.
	OutcomeNothing Outcome = "nothing-to-do"
	// OutcomeUnrecoverable: it cannot come back; Reasons say why.
	OutcomeUnrecoverable Outcome = "unrecoverable"
)

// Plan is what Decide says to do, in order.
type Plan struct {
	ImageID string  `json:"image_id"`
	Region  string  `json:"region"`
	Outcome Outcome `json:"outcome"`
	// Reasons explain the outcome, for a person.
	Reasons []string `json:"reasons"`
	// RecoverableUntil is when the bin deletes the AMI (restore only).
	RecoverableUntil *time.Time `json:"recoverable_until,omitempty"`
	// Protect is the protect tag written on the AMI, first, so no sweep
	// can take it again while the rest is done.
	ProtectTag   string `json:"protect_tag,omitempty"`
	ProtectValue string `json:"protect_value,omitempty"`
	// UntagSnapshots lose their delete-with tag before they are restored
	// (tags can be changed in the bin), so no run can finish a removal.
	// Only proven snapshots: an unsealed tag is a hint, left alone.
	UntagSnapshots []string `json:"untag_snapshots,omitempty"`
	// RestoreSnapshots are the snapshots expected to come back once the
	// image is registered. Apply restores exactly those the registered
	// AMI's block device mappings name that are in the bin.
	RestoreSnapshots []string `json:"restore_snapshots,omitempty"`
	RestoreImage     bool     `json:"restore_image"`
	// UnmarkKeys are the cleanup's record tags on the AMI, removed by key
	// once the stages they record are undone (after the AMI is back).
	UnmarkKeys []string `json:"unmark_keys,omitempty"`
	// Snapshots are the snapshots considered, for the report.
	Snapshots []Snapshot `json:"snapshots"`
}

// Changes reports whether the plan changes anything.
func (p Plan) Changes() bool {
	return p.Outcome == OutcomeRestore || p.Outcome == OutcomeKeep
}

// recordKeys are the cleanup's records on an AMI, in the order they come off.
var recordKeys = []string{cleanup.TagDeprecatedByUs, cleanup.TagDisabledByUs, cleanup.TagDeleteAfter}

// Decide says what restoring f.ImageID does, and why; protectTag and
// protectValue are the tag that keeps it from the next sweep.
func Decide(f Facts, protectTag, protectValue string, now time.Time) Plan {
	p := Plan{ImageID: f.ImageID, Region: f.Region, Snapshots: f.Snapshots}
	var tags map[string]string
	switch {
	case f.Image != nil && f.Image.OwnerID != "" && f.Account != "" && f.Image.OwnerID != f.Account:
		p.Outcome = OutcomeUnrecoverable
		p.Reasons = append(p.Reasons, fmt.Sprintf("%s is owned by %s, not by this account (%s): it is not ours to restore or protect", f.ImageID, f.Image.OwnerID, f.Account))
		return p
	case f.Image != nil:
		tags = f.Image.Tags
	case f.Bin != nil && now.Before(f.Bin.Leaves):
		tags = f.Bin.Tags
		p.Outcome = OutcomeRestore
		leaves := f.Bin.Leaves
		p.RecoverableUntil = &leaves
	default:
		p.Outcome = OutcomeUnrecoverable
		p.Reasons = append(p.Reasons, notInBin(f))
		return p
	}
	var gone []string
	for _, s := range f.Snapshots {
		if !s.Proven {
			continue // a hint: shown, not acted on
		}
		switch {
		case s.Where == Gone || (s.Where == InBin && !now.Before(s.Leaves)):
			gone = append(gone, fmt.Sprintf("%s (known by %s)", s.ID, strings.Join(s.Because, ", ")))
		case s.Where == InBin && (f.Image == nil || s.Mapped):
			// A registered AMI's mappings say which are its own.
			p.RestoreSnapshots = append(p.RestoreSnapshots, s.ID)
		}
		if s.DeleteWith {
			p.UntagSnapshots = append(p.UntagSnapshots, s.ID)
		}
	}
	if len(gone) > 0 && p.Outcome == OutcomeRestore {
		// An AMI without a snapshot cannot launch: restoring it would only
		// hide the loss. Nothing is changed.
		p.Outcome = OutcomeUnrecoverable
		p.Reasons = append(p.Reasons, fmt.Sprintf("%s is in the Recycle Bin until %s, but its snapshot %s is neither in the Recycle Bin nor in the account (%s); without it the AMI cannot launch, so nothing is restored",
			f.ImageID, f.Bin.Leaves.UTC().Format(time.RFC3339), strings.Join(gone, ", "), snapshotRulesSay(f)))
		p.UntagSnapshots, p.RestoreSnapshots = nil, nil
		return p
	}
	for _, k := range recordKeys {
		if _, ok := tags[k]; ok {
			p.UnmarkKeys = append(p.UnmarkKeys, k)
		}
	}
	p.ProtectTag = protectTag
	if have, ok := tags[protectTag]; ok && p.Outcome != OutcomeRestore {
		// Already protected: keep the operator's earlier word.
		p.ProtectValue = ""
		p.Reasons = append(p.Reasons, fmt.Sprintf("%s already carries %s=%q", f.ImageID, protectTag, have))
	} else {
		p.ProtectValue = protectValue
	}
	if p.Outcome == OutcomeRestore {
		p.RestoreImage = true
		p.Reasons = append(p.Reasons, fmt.Sprintf("%s (%s) is in the Recycle Bin since %s, recoverable until %s",
			f.ImageID, f.Bin.Name, f.Bin.Entered.UTC().Format(time.RFC3339), f.Bin.Leaves.UTC().Format(time.RFC3339)))
		switch n := len(p.RestoreSnapshots); {
		case n > 0:
			p.Reasons = append(p.Reasons, fmt.Sprintf("%d of its snapshots are in the Recycle Bin: the image comes back first, then the snapshots its block device mappings name", n))
		default:
			p.Reasons = append(p.Reasons, "no snapshot of it was proven in the Recycle Bin (by its EC2 description, a sealed delete-with tag or --snapshot): its block device mappings are checked once it is back")
		}
		if hints := hinted(f.Snapshots); len(hints) > 0 {
			p.Reasons = append(p.Reasons, fmt.Sprintf("%s carry an unsealed delete-with tag naming it (a hint, not proof): left alone unless its block device mappings name them", strings.Join(hints, ", ")))
		}
		return p
	}
	if len(gone) > 0 {
		p.Reasons = append(p.Reasons, fmt.Sprintf("its snapshot %s is gone: the AMI cannot launch (%s)", strings.Join(gone, ", "), snapshotRulesSay(f)))
	}
	if p.ProtectValue == "" && len(p.UnmarkKeys) == 0 && len(p.UntagSnapshots) == 0 && len(p.RestoreSnapshots) == 0 {
		p.Outcome = OutcomeNothing
		p.Reasons = append([]string{fmt.Sprintf("%s is registered (state %s), not in the Recycle Bin: already restored, or never removed", f.ImageID, f.Image.State)}, p.Reasons...)
		return p
	}
	p.Outcome = OutcomeKeep
	p.Reasons = append([]string{fmt.Sprintf("%s is registered (state %s), not in the Recycle Bin: nothing to restore; it is kept from the next sweep", f.ImageID, f.Image.State)}, p.Reasons...)
	return p
}

// notInBin explains why an AMI that is not registered is not in the bin.
func notInBin(f Facts) string {
	switch {
	case f.Bin != nil:
		return fmt.Sprintf("%s left the Recycle Bin at %s: its retention ended and it is deleted for good", f.ImageID, f.Bin.Leaves.UTC().Format(time.RFC3339))
	case f.RulesError != "":
		return fmt.Sprintf("%s is neither registered nor in the Recycle Bin of %s (the retention rules could not be read: %s)", f.ImageID, f.Region, f.RulesError)
	case len(f.ImageRules) == 0:
		return fmt.Sprintf("%s is neither registered nor in the Recycle Bin of %s, and %s has no Recycle Bin retention rule for AMIs (EC2_IMAGE): a deregistered AMI is deleted at once, so it cannot be restored (or it is in another region or account)",
			f.ImageID, f.Region, f.Region)
	}
	return fmt.Sprintf("%s is neither registered nor in the Recycle Bin of %s, whose rules for AMIs are %s: its retention ended, no rule covered it when it was deregistered, or it was never an AMI of this account in this region",
		f.ImageID, f.Region, rulesText(f.ImageRules))
}

func snapshotRulesSay(f Facts) string {
	switch {
	case f.RulesError != "":
		return "the retention rules could not be read: " + f.RulesError
	case len(f.SnapshotRules) == 0:
		return fmt.Sprintf("%s has no Recycle Bin retention rule for snapshots (EBS_SNAPSHOT): deleted snapshots are gone at once", f.Region)
	}
	return "snapshot rules: " + rulesText(f.SnapshotRules) + "; its retention ended or no rule covered it"
}

func rulesText(rules []Rule) string {
	var parts []string
	for _, r := range rules {
		parts = append(parts, fmt.Sprintf("%s (%d days, %s)", r.ID, r.Days, r.Scope))
	}
	return strings.Join(parts, ", ")
}

// Stages are the lifecycle stages to undo on a restored AMI: only those the
// cleanup's records say it applied, and only while they still hold.
type Stages struct {
	Enable, Undeprecate bool
}

// StagesToUndo is Decide's second half, once the AMI is back and its state
// can be read.
func StagesToUndo(img Image) Stages {
	_, disabled := img.Tags[cleanup.TagDisabledByUs]
	_, deprecated := img.Tags[cleanup.TagDeprecatedByUs]
	return Stages{
		Enable:      disabled && img.State == "disabled",
		Undeprecate: deprecated && img.Deprecated,
	}
}

// hinted are the snapshots known only by an unsealed delete-with tag.
func hinted(snaps []Snapshot) []string {
	var out []string
	for _, s := range snaps {
		if !s.Proven {
			out = append(out, s.ID)
		}
	}
	return out
}

// deleteWithNames reports whether a delete-with tag value names the AMI
// (the value is the AMI ID, sealed: "<ami>/<mac>"); a hint, not proof.
func deleteWithNames(value, imageID string) bool {
	v, _, _ := strings.Cut(value, "/")
	return v == imageID
}
