package sharing

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// kindGroup is a launch or create-volume permission group other than "all".
// EC2 knows no other group today; one that shows up is reported and removed
// rather than silently ignored.
const kindGroup = "group"

// Evaluate decides, for one resource's current principals, which stay and
// which go, with a reason per principal. It is pure: now is the clock, tags
// are the resource's tags (for a snapshot of an AMI, the AMI's tags).
//
// Rules, in order:
//   - an account stays if it is in AllowedAccounts;
//   - an organization stays if its ARN is in AllowedOrganizations;
//   - an OU stays if its ARN is in AllowedOrganizationalUnits, or if it is an
//     OU of an allowed organization (it grants a subset of what the
//     organization already has);
//   - public stays only if AllowPublic (for snapshots too);
//   - anything else goes, unless the exception tag (p.ExceptionTag) names it
//     and is active: readable, not expired, and within the policy's bounds
//     (p.Exceptions: an until date at most MaxDays ahead, public only if
//     AllowPublic, only AllowedPrincipals when set). An exception holds
//     through its until day (UTC) and has expired from 00:00 UTC the day
//     after. One that breaks a bound is ignored as a whole, and the first
//     reason says why; one without principals exempts nothing.
//
// EC2 lets snapshots hold accounts and public only; the same rules apply to
// whatever a snapshot holds.
//
// Keep, Remove and Reasons are sorted the same deterministic way: public,
// organizations, OUs, accounts, each by value; problems with the exception
// tag come first in Reasons. Duplicates in current count once.
func Evaluate(now time.Time, p policy.Sharing, kind ResourceKind, resourceID string, tags map[string]string, current []Principal) Verdict {
	return EvaluateWith(now, p, nil, kind, resourceID, tags, current)
}

// EvaluateWith is Evaluate knowing the membership of one organization
// (members; nil knows none, as Evaluate): Verdict.Shadowed then says
// definitely which removed accounts keep access as members of a kept
// organization or OU of it, and leaves out those that are not members.
// Which principals stay and go does not depend on it.
func EvaluateWith(now time.Time, p policy.Sharing, members Membership, kind ResourceKind, resourceID string, tags map[string]string, current []Principal) Verdict {
	v := Verdict{Kind: kind, ResourceID: resourceID, Keep: []Principal{}, Remove: []Principal{}, Reasons: []string{}}
	ex, st := assessException(now, p, tags)
	active := st != nil && st.State == ExceptionActive
	if st != nil && !active {
		v.Reasons = append(v.Reasons, st.Reason)
	}
	for _, pr := range sortPrincipals(current) {
		keep, reason := allowedByPolicy(p, pr)
		if !keep && active && slices.Contains(ex.Principals, pr) {
			keep = true
			reason = fmt.Sprintf("%s allowed until %s by exception %s", pr, st.Until, ex.Ticket)
		}
		if keep {
			v.Keep = append(v.Keep, pr)
		} else {
			v.Remove = append(v.Remove, pr)
		}
		v.Reasons = append(v.Reasons, reason)
	}
	v.Shadowed = shadowed(kind, v.Keep, v.Remove, members)
	return v
}

// allowedByPolicy applies the allow-lists to one principal.
func allowedByPolicy(p policy.Sharing, pr Principal) (bool, string) {
	switch pr.Kind {
	case KindPublic:
		if p.AllowPublic {
			return true, "public sharing allowed by the policy"
		}
		return false, "public sharing is forbidden"
	case KindAccount:
		if slices.Contains(p.AllowedAccounts, pr.Value) {
			return true, pr.String() + " allowed by the policy"
		}
	case KindOrganization:
		if slices.Contains(p.AllowedOrganizations, pr.Value) {
			return true, pr.String() + " allowed by the policy"
		}
	case KindOU:
		if slices.Contains(p.AllowedOrganizationalUnits, pr.Value) {
			return true, pr.String() + " allowed by the policy"
		}
		for _, org := range p.AllowedOrganizations {
			if ouInOrganization(pr.Value, org) {
				return true, fmt.Sprintf("%s allowed: it is in allowed organization %s", pr, org)
			}
		}
	default:
		return false, pr.String() + " is an unknown kind of principal: not allowed"
	}
	return false, pr.String() + " is not allowed"
}

// ouInOrganization reports whether an OU ARN
// (arn:<partition>:organizations::<mgmt>:ou/o-<org>/ou-…) belongs to an
// organization ARN (arn:<partition>:organizations::<mgmt>:organization/o-<org>).
func ouInOrganization(ouARN, orgARN string) bool {
	orgPrefix, orgID, ok := strings.Cut(orgARN, ":organization/")
	if !ok || orgID == "" || strings.Contains(orgID, "/") {
		return false
	}
	return strings.HasPrefix(ouARN, orgPrefix+":ou/"+orgID+"/ou-")
}

func kindRank(k string) int {
	switch k {
	case KindPublic:
		return 0
	case KindOrganization:
		return 1
	case KindOU:
		return 2
	case KindAccount:
		return 3
	}
	return 4
}

// sortPrincipals returns a sorted copy without duplicates.
func sortPrincipals(ps []Principal) []Principal {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b Principal) int {
		if c := cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
	return slices.Compact(out)
}

// PrincipalsOfImage converts an AMI's launch permissions.
func PrincipalsOfImage(perms []types.LaunchPermission) []Principal {
	var out []Principal
	for _, lp := range perms {
		out = appendGroup(out, lp.Group)
		if v := aws.ToString(lp.UserId); v != "" {
			out = append(out, Principal{Kind: KindAccount, Value: v})
		}
		if v := aws.ToString(lp.OrganizationArn); v != "" {
			out = append(out, Principal{Kind: KindOrganization, Value: v})
		}
		if v := aws.ToString(lp.OrganizationalUnitArn); v != "" {
			out = append(out, Principal{Kind: KindOU, Value: v})
		}
	}
	return out
}

// PrincipalsOfSnapshot converts a snapshot's create-volume permissions.
func PrincipalsOfSnapshot(perms []types.CreateVolumePermission) []Principal {
	var out []Principal
	for _, cp := range perms {
		out = appendGroup(out, cp.Group)
		if v := aws.ToString(cp.UserId); v != "" {
			out = append(out, Principal{Kind: KindAccount, Value: v})
		}
	}
	return out
}

func appendGroup(out []Principal, g types.PermissionGroup) []Principal {
	switch g {
	case "":
		return out
	case types.PermissionGroupAll:
		return append(out, Principal{Kind: KindPublic})
	}
	return append(out, Principal{Kind: kindGroup, Value: string(g)})
}
