// Package cleanup finds the AMIs a retention policy calls stale, proves
// nothing uses them, and removes them with their snapshots, in stages
// (mark, then act), explaining every decision.
//
// The package is split the way the work is:
//   - collect/ reads the account into an Inventory (paginated lists only;
//     any list that cannot be read completely is recorded in
//     Inventory.Incomplete, and then nothing is deleted);
//   - plan.go is pure: MakePlan(now, inventory, policy) returns a decision with
//     reasons for every AMI and every orphaned snapshot;
//   - execute/ applies a plan, paced by client-side rate limiters;
//   - report.go renders a plan and its results (logs, metrics, events).
package cleanup

import (
	"fmt"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// Tags the cleanup itself reads and writes on AMIs and snapshots. Their
// values are sealed (pkg/records): a value that does not open under the
// run's key is ignored, since anyone with ec2:CreateTags can write a tag.
const (
	// TagDeleteAfter marks a candidate: it may be removed after this date
	// (YYYY-MM-DD, UTC) if it is still a candidate then.
	TagDeleteAfter = "ami-housekeeper:delete-after"
	// TagDeprecatedByUs and TagDisabledByUs record the lifecycle stages the
	// cleanup applied when marking, so an unmark undoes exactly those.
	TagDeprecatedByUs = "ami-housekeeper:deprecated-by-cleanup"
	TagDisabledByUs   = "ami-housekeeper:disabled-by-cleanup"
	// TagDeleteWith is set on a snapshot, before its AMI is deregistered, to
	// the AMI's ID (sealed for that AMI): if the run stops between the two
	// steps, the next run finds the snapshot and finishes the job, provided
	// EC2's description of the snapshot names that same AMI.
	TagDeleteWith = "ami-housekeeper:delete-with"
)

// DateLayout is the layout of TagDeleteAfter values.
const DateLayout = "2006-01-02"

// Inventory is everything one sweep knows about one account and region.
type Inventory struct {
	Account string
	Region  string
	// Images owned by the account, including disabled and deprecated ones.
	Images []Image
	// Snapshots owned by the account.
	Snapshots []Snapshot
	// References says who uses which AMI, keyed by image ID. Every usage
	// source adds to it: instances, launch templates (and resolve:ssm:
	// aliases), launch configurations, Auto Scaling groups, SSM parameters.
	References map[string][]Reference
	// Problems are things found broken while reading (a launch template or
	// ASG pointing at something missing): reported, never fatal.
	Problems []string
	// Incomplete names every inventory source that could not be read
	// completely, with the error. Non-empty means: delete nothing.
	Incomplete []string
	// RecycleBin says how long removed AMIs and snapshots stay recoverable.
	RecycleBin RecycleBin
	// SharesAtRemoval leaves the launch permissions of AMIs the plan would
	// deregister now to the recheck right before their removal (one read
	// each, paced, alongside the deregistrations) instead of reading them
	// all before planning; the sweep sets it in enforce mode.
	SharesAtRemoval bool `json:"-"`
	// Usage holds what EC2's image usage reports say about the shared AMIs
	// UsageToCheck named (retention.shared_usage: check), by image ID; an
	// AMI missing here is kept.
	Usage map[string]ImageUsage `json:",omitempty"`
	// Records opens the cleanup's sealed record tags; nil trusts none (every
	// mark, stage record and delete-with tag is then ignored).
	Records *records.Key `json:"-"`
}

// Image is an AMI owned by the account.
type Image struct {
	ID      string
	Name    string
	OwnerID string
	// State is the EC2 image state: available, pending, failed, disabled, ...
	State        string
	CreationDate time.Time
	// LastLaunched is EC2's LastLaunchedTime (reported with up to 24 h lag);
	// zero when the AMI was never launched or the value is unknown.
	LastLaunched time.Time
	// DeprecationTime is zero when no deprecation is set.
	DeprecationTime time.Time
	// DeregistrationProtection is EC2's value; "" or "disabled" means off,
	// anything else (enabled, enabled-with-cooldown, "disabled after ...")
	// means the AMI cannot be deregistered now.
	DeregistrationProtection string
	// Public is true when the AMI is shared with everyone.
	Public bool
	Tags   map[string]string
	// SnapshotIDs are the EBS snapshots of the block device mappings.
	SnapshotIDs []string
	// SizeGiB is the sum of the EBS volume sizes in the block device mappings.
	SizeGiB int64
	// SharesKnown is true once the launch permissions were read (they are
	// read only for candidates, to keep the sweep at one call per page);
	// SharedWith then lists account IDs, organization and OU ARNs.
	SharesKnown bool
	SharedWith  []string
}

// Snapshot is an EBS snapshot owned by the account.
type Snapshot struct {
	ID          string
	SizeGiB     int64
	Description string
	StartTime   time.Time
	State       string
	Tags        map[string]string
}

// Reference is one thing that uses an AMI.
type Reference struct {
	// Kind is one of the Ref* constants.
	Kind string
	// ID names the user: i-0abc, lt-0abc (version 3), my-lc, /golden/web.
	ID string
	// Detail qualifies it: an instance state, a template version, an alias.
	Detail string
}

// Reference kinds.
const (
	RefInstance            = "instance"
	RefLaunchTemplate      = "launch template"
	RefLaunchConfiguration = "launch configuration"
	RefAutoScalingGroup    = "auto scaling group"
	RefSSMParameter        = "ssm parameter"
)

// String renders the reference as a reason: "in use by instance i-0abc (stopped)".
func (r Reference) String() string {
	if r.Detail == "" {
		return fmt.Sprintf("in use by %s %s", r.Kind, r.ID)
	}
	return fmt.Sprintf("in use by %s %s (%s)", r.Kind, r.ID, r.Detail)
}

// RecycleBin holds the retention, in days, of the Recycle Bin rules that
// cover AMIs and EBS snapshots in the region; zero means none does.
type RecycleBin struct {
	ImageRetentionDays    int
	SnapshotRetentionDays int
}

// Action is what the plan does with an AMI.
type Action string

// Actions.
const (
	// ActionKeep: not a candidate (Reasons say why).
	ActionKeep Action = "keep"
	// ActionSkip: not ours to decide (pending/failed state, AWS Backup,
	// deregistration protection).
	ActionSkip Action = "skip"
	// ActionMark: a new candidate; tag it with the date after which it may go.
	ActionMark Action = "mark"
	// ActionUnmark: it was marked but is no longer a candidate.
	ActionUnmark Action = "unmark"
	// ActionWait: marked, still a candidate, its date has not come yet.
	ActionWait Action = "wait"
	// ActionDeregister: marked, date passed (or grace 0), still a candidate.
	ActionDeregister Action = "deregister"
	// ActionPending: would be deregistered, but a per-run cap was reached;
	// the next run continues.
	ActionPending Action = "pending"
)

// Decision is the plan for one AMI, with every reason.
type Decision struct {
	ImageID string `json:"image_id"`
	Name    string `json:"name,omitempty"`
	// Rule and Family are the retention rule and family the AMI falls in
	// ("" when no rule matches).
	Rule    string   `json:"rule,omitempty"`
	Family  string   `json:"family,omitempty"`
	Action  Action   `json:"action"`
	Reasons []string `json:"reasons"`
	// DeleteAfter is the mark date (for mark, wait and deregister).
	DeleteAfter string `json:"delete_after,omitempty"`
	// Deprecate / Disable: apply these stages when marking.
	Deprecate bool `json:"deprecate,omitempty"`
	Disable   bool `json:"disable,omitempty"`
	// DeleteSnapshots are the snapshots to delete once the AMI is gone:
	// owned by the account and referenced by no other registered AMI.
	DeleteSnapshots []string `json:"delete_snapshots,omitempty"`
	// SnapshotUsers names, for a snapshot in DeleteSnapshots, the other
	// AMIs that use it (all deregistered earlier in this run): the executor
	// deletes it only once every one of them is confirmed gone.
	SnapshotUsers map[string][]string `json:"snapshot_users,omitempty"`
	// KeptSnapshots explains snapshots of the AMI that are not deleted.
	KeptSnapshots []string `json:"kept_snapshots,omitempty"`
	// ClearDeleteWith lists snapshots of this AMI, which stays, that still
	// carry TagDeleteWith=<this AMI> from an earlier deregistration that
	// did not happen: the tag is removed so it can never approve them later.
	ClearDeleteWith []string `json:"clear_delete_with,omitempty"`
	// SizeGiB is what deregistering frees (the deleted snapshots' sizes).
	SizeGiB int64 `json:"size_gib,omitempty"`
	// CheckShares: the launch permissions were not read before planning
	// (Inventory.SharesAtRemoval); the recheck reads them right before the
	// removal and keeps the AMI if its rule keeps shared AMIs and it is.
	CheckShares bool `json:"check_shares,omitempty"`
	// RequestUsageReport: shared_usage check found no usage report that
	// counts and none pending; in enforce mode the sweep requests one
	// (CreateImageUsageReport) and names it in the reasons.
	RequestUsageReport bool `json:"request_usage_report,omitempty"`
	// UsageReport is the usage report the decision rests on (or waits
	// for, or the one requested).
	UsageReport string `json:"usage_report,omitempty"`
}

// SnapshotDecision is the plan for a snapshot whose AMI no longer exists.
type SnapshotDecision struct {
	SnapshotID string `json:"snapshot_id"`
	// ImageID is the AMI the snapshot was made for (from its description or
	// the TagDeleteWith tag).
	ImageID string `json:"image_id,omitempty"`
	// Action is ActionDeregister ("delete"), ActionKeep or ActionPending.
	Action  Action   `json:"action"`
	Reasons []string `json:"reasons"`
	SizeGiB int64    `json:"size_gib"`
}

// Totals summarise a plan.
type Totals struct {
	Considered       int     `json:"considered"`
	Keep             int     `json:"keep"`
	Skip             int     `json:"skip"`
	Mark             int     `json:"mark"`
	Unmark           int     `json:"unmark"`
	Wait             int     `json:"wait"`
	Deregister       int     `json:"deregister"`
	Pending          int     `json:"pending"`
	SnapshotsDelete  int     `json:"snapshots_delete"`
	GiBFreed         int64   `json:"gib_freed"`
	PendingGiB       int64   `json:"pending_gib"`
	MonthlySavingUSD float64 `json:"monthly_saving_usd"`
}

// Plan is the outcome of planning: one decision per owned AMI, one per
// orphaned snapshot, and totals.
type Plan struct {
	Now       time.Time          `json:"now"`
	Mode      policy.Mode        `json:"mode"`
	Decisions []Decision         `json:"decisions"`
	Orphans   []SnapshotDecision `json:"orphans,omitempty"`
	Totals    Totals             `json:"totals"`
	// Blocked is set when the inventory is incomplete: every deregister and
	// delete was turned into keep, and this says why.
	Blocked string `json:"blocked,omitempty"`
	// RecoverableUntil is set when Recycle Bin rules cover what is removed:
	// the date until which it can be restored.
	RecoverableUntil string `json:"recoverable_until,omitempty"`
	// pricePerGiB is the policy's price, for totals recomputed by Restrict.
	pricePerGiB float64
}
