// Package sharing enforces the sharing section of the policy: who may launch
// an AMI (launch permissions) and who may create volumes from its snapshots
// (create-volume permissions).
//
//   - decide.go is pure: Evaluate(now, policy, resource) says which
//     principals stay and which go, with a reason for each;
//   - enforce.go checks one AMI (and its snapshots) or one snapshot against
//     EC2: re-read the real permissions (never trust the event), remove
//     exactly the principals the policy does not allow, re-read to confirm,
//     tag the AMI, and return findings;
//   - audit/ sweeps every AMI the account owns on a schedule, paced, and
//     resumes where it stopped.
package sharing

import (
	"fmt"
	"strings"
	"time"
)

// Principal kinds.
const (
	KindAccount      = "account"
	KindOrganization = "organization"
	KindOU           = "ou"
	KindPublic       = "public" // launch permission group "all"
)

// Principal is one entity an AMI or snapshot is shared with.
type Principal struct {
	Kind string `json:"kind"`
	// Value is the account ID or ARN; empty for public.
	Value string `json:"value,omitempty"`
}

// String renders the principal for reasons and tags: "account 111122223333",
// "public", "organization arn:aws:organizations::…".
func (p Principal) String() string {
	if p.Kind == KindPublic {
		return "public"
	}
	return p.Kind + " " + p.Value
}

// ResourceKind is what a verdict is about.
type ResourceKind string

// Resource kinds.
const (
	KindImage    ResourceKind = "image"
	KindSnapshot ResourceKind = "snapshot"
)

// Verdict is the decision for one AMI or snapshot.
type Verdict struct {
	Kind       ResourceKind `json:"resource_type"`
	ResourceID string       `json:"resource_id"`
	// Keep are the principals that stay; Remove those to revoke.
	Keep   []Principal `json:"keep"`
	Remove []Principal `json:"remove"`
	// Reasons has one line per principal ("account 999988887777 is not
	// allowed", "public sharing is forbidden", "account 111122223333 allowed
	// by the policy", "account 444455556666 allowed until 2027-01-31 by
	// exception CHG-1234"), plus exception problems ("exception CHG-9
	// expired on 2026-10-01: enforced", "exception tag unreadable: ...").
	Reasons []string `json:"reasons"`
	// Shadowed lists accounts being removed that keep access through an
	// organization or OU the resource stays shared with (EC2 accepts the
	// removal, but it changes nothing for members), or through public
	// sharing: definitely when the membership is known (EvaluateWith),
	// "may keep access" otherwise.
	Shadowed []string `json:"shadowed,omitempty"`
}

// Finding is what the guard reports about one resource: published as an
// "AMI Sharing Violation" event when something was (or would be) removed.
type Finding struct {
	Account      string       `json:"account"`
	Region       string       `json:"region"`
	ResourceType ResourceKind `json:"resource_type"`
	ResourceID   string       `json:"resource_id"`
	// ImageID is the AMI the snapshot belongs to (for snapshots of an AMI).
	ImageID string      `json:"image_id,omitempty"`
	Removed []Principal `json:"removed"`
	Kept    []Principal `json:"kept"`
	// Action is "revoked", "would-revoke" (audit), "failed", "partial"
	// (some principals still there after the confirming read) or "held"
	// (Enforcer.MayRemove refused every principal: nothing removed).
	Action  string   `json:"action"`
	Reasons []string `json:"reasons"`
	// Remaining are the principals the confirming read still found that the
	// policy does not allow.
	Remaining []Principal `json:"remaining,omitempty"`
	// Failed says, for each principal of Remaining, why it is still there:
	// the error of its removal, or that EC2 accepted the removal but still
	// lists it.
	Failed []PrincipalFailure `json:"failed,omitempty"`
	// Held are principals the policy does not allow that enforce mode left
	// in place because Enforcer.MayRemove refused them.
	Held     []Principal `json:"held,omitempty"`
	Shadowed []string    `json:"shadowed,omitempty"`
	// Actor is who made the change, from the event's userIdentity ("" for
	// the scheduled audit).
	Actor string    `json:"actor,omitempty"`
	Time  time.Time `json:"time"`
	Error string    `json:"error,omitempty"`
}

// Violation tags written on an AMI whose sharing was revoked.
const (
	TagViolationAt      = "ami-housekeeper:sharing-revoked-at"
	TagViolationRemoved = "ami-housekeeper:sharing-revoked"
)

// PrincipalFailure is one principal a check could not remove.
type PrincipalFailure struct {
	Principal Principal `json:"principal"`
	Error     string    `json:"error"`
}

// PartialError is returned by a check that could not remove every principal
// the policy does not allow (Finding.Failed says which and why). Removals
// are idempotent, so retrying the whole check is safe: the event-driven
// guard returns it to Lambda, which retries.
type PartialError struct {
	// Findings are the findings with principals left (action "partial" or
	// "failed").
	Findings []Finding
}

func (e *PartialError) Error() string {
	var parts []string
	for _, f := range e.Findings {
		for _, pf := range f.Failed {
			parts = append(parts, fmt.Sprintf("%s %s: %s (%s)", f.ResourceType, f.ResourceID, pf.Principal, pf.Error))
		}
	}
	return fmt.Sprintf("sharing: %d principal(s) still shared against the policy: %s", len(parts), strings.Join(parts, "; "))
}
