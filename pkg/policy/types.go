// Package policy is the one policy document shared by the tagger, the sharing
// guard, the cleanup function and the CLI: its types, defaults, JSON Schema,
// parsing, validation and loading.
//
// The package imports no Lambda code so the CDK app can validate a policy at
// synth time with the same rules the functions apply at cold start.
package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// CurrentVersion is the only document version this package understands.
const CurrentVersion = 1

// Mode says whether a function acts or only reports.
type Mode string

const (
	// ModeAudit logs what would be done and changes nothing.
	ModeAudit Mode = "audit"
	// ModeEnforce makes the changes.
	ModeEnforce Mode = "enforce"
)

// Policy is the whole document, version 1.
type Policy struct {
	Version   int       `json:"version"`
	Tagging   Tagging   `json:"tagging"`
	Sharing   Sharing   `json:"sharing"`
	Retention Retention `json:"retention"`
	// Overrides change the policy for some OUs and accounts (organization
	// mode); For merges those that apply to one account. See override.go.
	Overrides []Override `json:"overrides,omitempty"`

	// forcedAudit survives For: an override saying enforce must not undo
	// a dry run or an engaged kill switch (ForceAudit).
	forcedAudit bool
	// applied names the overrides For merged into this policy, in order.
	applied []string
}

// Tagging configures the tagger, which tags new AMIs and their snapshots.
type Tagging struct {
	Mode Mode `json:"mode"`
	// Prefix is prepended to every key in Keys.
	Prefix string  `json:"prefix"`
	Keys   TagKeys `json:"keys"`
	// StaticTags are written as-is (no prefix) on every new AMI and its snapshots.
	StaticTags map[string]string `json:"static_tags,omitempty"`
	// CopyFromSource lists tag keys copied from the source instance
	// (CreateImage) or source AMI (CopyImage in the same account).
	CopyFromSource []string `json:"copy_from_source,omitempty"`
	// Overwrite lists full tag keys the tagger may overwrite when already set.
	Overwrite []string `json:"overwrite,omitempty"`
	// SnapshotWait bounds the wait for a pending AMI whose snapshots are not
	// listed yet.
	SnapshotWait Duration `json:"snapshot_wait"`
}

// TagKeys are the names of the tags the tagger writes, without the prefix.
type TagKeys struct {
	CreatedBy       string `json:"created_by"`
	CreatedByIssuer string `json:"created_by_issuer"`
	CreatedAt       string `json:"created_at"`
	CreatedVia      string `json:"created_via"`
	SourceInstance  string `json:"source_instance"`
	SourceImage     string `json:"source_image"`
	SourceRegion    string `json:"source_region"`
}

// Key returns the full tag key for name: Prefix + name.
func (t Tagging) Key(name string) string { return t.Prefix + name }

// MayOverwrite reports whether the tagger may replace fullKey when the
// resource already carries it. Everything else already set is left alone so
// the tagger never destroys information someone else wrote.
func (t Tagging) MayOverwrite(fullKey string) bool {
	return slices.Contains(t.Overwrite, fullKey)
}

// generatedKeys returns the full keys written from Keys, in document order,
// paired with the JSON name of the field they come from.
func (t Tagging) generatedKeys() []namedKey {
	k := t.Keys
	return []namedKey{
		{"created_by", t.Key(k.CreatedBy)},
		{"created_by_issuer", t.Key(k.CreatedByIssuer)},
		{"created_at", t.Key(k.CreatedAt)},
		{"created_via", t.Key(k.CreatedVia)},
		{"source_instance", t.Key(k.SourceInstance)},
		{"source_image", t.Key(k.SourceImage)},
		{"source_region", t.Key(k.SourceRegion)},
	}
}

type namedKey struct{ field, key string }

// Sharing configures the sharing guard, which revokes unapproved AMI and
// snapshot sharing.
type Sharing struct {
	Mode                       Mode     `json:"mode"`
	AllowedAccounts            []string `json:"allowed_accounts,omitempty"`
	AllowedOrganizations       []string `json:"allowed_organizations,omitempty"`
	AllowedOrganizationalUnits []string `json:"allowed_organizational_units,omitempty"`
	AllowPublic                bool     `json:"allow_public"`
	// CheckAllSnapshots extends createVolumePermission enforcement to every
	// owned snapshot, not only those behind AMIs.
	CheckAllSnapshots bool `json:"check_all_snapshots"`
	// ExceptionTag is the tag key whose value
	// "<ticket>[;until=YYYY-MM-DD][;principals=a,b]" exempts a resource.
	ExceptionTag string `json:"exception_tag"`
	// Exceptions bounds what an exception tag may keep: anyone who can tag
	// an AMI can write one, so the policy, not the tag, has the last word.
	Exceptions                   SharingExceptions `json:"exceptions"`
	EnableImageBlockPublicAccess bool              `json:"enable_image_block_public_access"`
}

// SharingExceptions bounds sharing exceptions. An exception that breaks any
// bound is ignored as a whole (it keeps nothing), and the finding says why.
type SharingExceptions struct {
	// MaxDays is how far ahead an exception's until date may be, in days
	// from today (UTC). An exception without until, or with until later
	// than today + MaxDays, is ignored. 0 turns exceptions off.
	MaxDays int `json:"max_days"`
	// AllowPublic lets an exception keep an AMI or snapshot public.
	AllowPublic bool `json:"allow_public"`
	// AllowedPrincipals are the only principals an exception may keep:
	// account IDs, organization ARNs and OU ARNs (an OU of a listed
	// organization counts as listed). Empty (the default): none, since anyone
	// who can tag an AMI can write an exception. Public is governed by
	// AllowPublic alone.
	AllowedPrincipals []string `json:"allowed_principals,omitempty"`
}

// DefaultExceptionMaxDays is the default SharingExceptions.MaxDays.
const DefaultExceptionMaxDays = 90

// Retention configures the cleanup function, which deregisters stale AMIs.
type Retention struct {
	Mode                     Mode    `json:"mode"`
	GraceDays                int     `json:"grace_days"`
	MaxDeregistrationsPerRun int     `json:"max_deregistrations_per_run"`
	MaxGiBPerRun             int     `json:"max_gib_per_run"`
	PricePerGiBMonth         float64 `json:"price_per_gib_month"`
	// ProtectTag keeps an AMI forever, whatever its value.
	ProtectTag string `json:"protect_tag"`
	// TimeLockTag keeps an AMI until the time in its value (YYYY-MM-DD or
	// RFC 3339).
	TimeLockTag string `json:"time_lock_tag"`
	// KeepShared keeps AMIs shared with other accounts, organizations or OUs
	// unless a rule overrides it.
	KeepShared bool `json:"keep_shared"`
	// SecondOpinion says whether EC2's DescribeImageReferences must confirm,
	// right before each batch of deregistrations, that nothing references
	// the AMIs (required), or is not asked (disabled: only for emulators and
	// partitions without the call).
	SecondOpinion SecondOpinion `json:"second_opinion"`
	// SharedUsage says what happens to an AMI shared with other accounts:
	// kept as long as it is shared (keep, the default), or kept only while
	// another account is found using it (check: EC2's image usage reports,
	// and in organization mode the member accounts' own inventories).
	SharedUsage SharedUsage `json:"shared_usage"`
	// ManageImageBuilderAMIs lets rules remove AMIs built by EC2 Image
	// Builder; by default they are skipped, since an Image Builder lifecycle
	// policy may own their removal.
	ManageImageBuilderAMIs bool `json:"manage_image_builder_amis"`
	// DeleteUnprovenSnapshots lets a deregistration delete snapshots whose
	// EC2 description does not show CreateImage or CopyImage made them for
	// an AMI (AMIs registered from snapshots). Off by default: such a
	// snapshot may be a backup someone registered an AMI from.
	DeleteUnprovenSnapshots bool              `json:"delete_unproven_snapshots"`
	InUse                   InUse             `json:"in_use"`
	OrphanedSnapshots       OrphanedSnapshots `json:"orphaned_snapshots"`
	Stages                  Stages            `json:"stages"`
	Rules                   []Rule            `json:"rules,omitempty"`
}

// SharedUsage values.
type SharedUsage string

// Accepted values of Retention.SharedUsage.
const (
	SharedUsageKeep  SharedUsage = "keep"
	SharedUsageCheck SharedUsage = "check"
)

// SecondOpinion values.
type SecondOpinion string

// Accepted values of Retention.SecondOpinion.
const (
	SecondOpinionRequired SecondOpinion = "required"
	SecondOpinionDisabled SecondOpinion = "disabled"
)

// LaunchTemplateVersion names which launch template versions count as using
// an AMI.
type LaunchTemplateVersion string

// Launch template versions accepted in Retention.InUse.LaunchTemplateVersions.
const (
	LaunchTemplateDefault LaunchTemplateVersion = "default"
	LaunchTemplateLatest  LaunchTemplateVersion = "latest"
	// LaunchTemplateASG is every version referenced by an Auto Scaling group.
	LaunchTemplateASG LaunchTemplateVersion = "asg"
	LaunchTemplateAll LaunchTemplateVersion = "all"
)

// InUse says where the cleanup looks for AMIs still in use.
type InUse struct {
	LaunchTemplateVersions []LaunchTemplateVersion `json:"launch_template_versions"`
	// SSMParameters are parameter names or path prefixes ending in "/*".
	// Parameters of data type aws:ec2:image are always checked.
	SSMParameters []string `json:"ssm_parameters,omitempty"`
}

// OrphanedSnapshots configures snapshots whose AMI no longer exists.
type OrphanedSnapshots struct {
	Delete bool `json:"delete"`
}

// Stages are extra steps applied when an AMI is marked for deletion.
type Stages struct {
	Deprecate bool `json:"deprecate"`
	Disable   bool `json:"disable"`
}

// Rule is one retention rule.
type Rule struct {
	Name string `json:"name"`
	// Match selects the AMIs the rule applies to; the zero Match selects all.
	Match Match `json:"match,omitzero"`
	// Family groups AMIs for KeepNewest; the zero Family means the AMI name
	// with its trailing version or timestamp stripped.
	Family                 Family `json:"family,omitzero"`
	KeepNewest             int    `json:"keep_newest"`
	MinAgeDays             int    `json:"min_age_days"`
	KeepLaunchedWithinDays int    `json:"keep_launched_within_days"`
	// KeepShared overrides Retention.KeepShared when not nil.
	KeepShared *bool `json:"keep_shared,omitempty"`
}

// Match selects AMIs; every condition set must hold.
type Match struct {
	// Name is a path.Match glob on the AMI name; empty matches any name.
	Name string `json:"name,omitempty"`
	// Tags must all be present with these values; "*" only requires the key.
	Tags map[string]string `json:"tags,omitempty"`
}

// Family says how AMIs are grouped: by a tag's value, or by the single
// capture group of NamePattern on the AMI name. At most one is set.
type Family struct {
	Tag         string `json:"tag,omitempty"`
	NamePattern string `json:"name_pattern,omitempty"`
}

// defaultRule holds the per-rule defaults; Rule.UnmarshalJSON starts from it
// because the defaults of list items cannot come from Default().
func defaultRule() Rule {
	return Rule{KeepNewest: 3, MinAgeDays: 14, KeepLaunchedWithinDays: 30}
}

// UnmarshalJSON decodes a rule over the per-rule defaults, rejecting unknown
// fields (a custom unmarshaler loses the outer decoder's setting).
func (r *Rule) UnmarshalJSON(data []byte) error {
	type plain Rule // drops the method set, so no recursion
	v := plain(defaultRule())
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	*r = Rule(v)
	return nil
}

// Duration is a time.Duration written as a Go duration string ("10s").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string such as "10s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a Go duration string; numbers are rejected because
// their unit would be a guess.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"10s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("parsing duration: %w", err)
	}
	d.Duration = v
	return nil
}

// Default returns a policy with every default filled in. It validates
// cleanly; Parse merges documents over it.
func Default() *Policy {
	return &Policy{
		Version: CurrentVersion,
		Tagging: Tagging{
			Mode:   ModeEnforce,
			Prefix: "ami-housekeeper:",
			Keys: TagKeys{
				CreatedBy:       "created-by",
				CreatedByIssuer: "created-by-issuer",
				CreatedAt:       "created-at",
				CreatedVia:      "created-via",
				SourceInstance:  "source-instance",
				SourceImage:     "source-image",
				SourceRegion:    "source-region",
			},
			StaticTags:     map[string]string{},
			CopyFromSource: []string{},
			Overwrite:      []string{},
			SnapshotWait:   Duration{10 * time.Second},
		},
		Sharing: Sharing{
			Mode:                       ModeAudit,
			AllowedAccounts:            []string{},
			AllowedOrganizations:       []string{},
			AllowedOrganizationalUnits: []string{},
			ExceptionTag:               "ami-housekeeper:sharing-exception",
			Exceptions:                 SharingExceptions{MaxDays: DefaultExceptionMaxDays, AllowedPrincipals: []string{}},
		},
		Retention: Retention{
			Mode:                     ModeAudit,
			GraceDays:                7,
			MaxDeregistrationsPerRun: 25,
			MaxGiBPerRun:             1024,
			PricePerGiBMonth:         0.05,
			ProtectTag:               "ami-housekeeper:keep",
			TimeLockTag:              "ami-housekeeper:do-not-touch-before",
			KeepShared:               true,
			SecondOpinion:            SecondOpinionRequired,
			SharedUsage:              SharedUsageKeep,
			InUse: InUse{
				LaunchTemplateVersions: []LaunchTemplateVersion{LaunchTemplateDefault, LaunchTemplateLatest, LaunchTemplateASG},
				SSMParameters:          []string{},
			},
			Rules: []Rule{},
		},
	}
}
