package sharing

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Membership says which accounts belong to one organization, and where in
// its OU tree. In organization mode the directory of the organization
// (pkg/org) provides it; without it (single-account mode) the guard can
// only say that a removed account "may keep access" through a kept
// organization or OU.
type Membership interface {
	// Organization is the ID (o-…) of the organization the source knows;
	// it knows nothing about any other organization.
	Organization() string
	// Member returns the account's parents from the root (r-…) down to its
	// own OU, and false when the account is not a member of Organization().
	Member(account string) (path []string, ok bool)
}

// Members is a Membership from a lookup function, so a directory that
// answers in its own types needs no method of ours, e.g. for org.Directory:
//
//	sharing.Members{OrgID: d.OrgID, Path: func(a string) ([]string, bool) {
//		m, ok := d.Member(a)
//		return m.Path, ok
//	}}
type Members struct {
	OrgID string
	Path  func(account string) ([]string, bool)
}

// Organization implements Membership.
func (m Members) Organization() string { return m.OrgID }

// Member implements Membership; a nil Path knows no member.
func (m Members) Member(account string) ([]string, bool) {
	if m.Path == nil {
		return nil, false
	}
	return m.Path(account)
}

// orgPrincipalARN reads an organization ARN
// (arn:<partition>:organizations::<mgmt>:organization/o-x) or an OU ARN
// (…:ou/o-x/ou-y): the organization ID and, for an OU, the OU ID.
var orgPrincipalARN = regexp.MustCompile(`^arn:[a-z-]+:organizations::\d{12}:(?:organization/(o-[a-z0-9]{10,32})|ou/(o-[a-z0-9]{10,32})/(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}))$`)

// orgOf returns the organization and OU IDs a kept organization or OU
// principal names; ok is false for an ARN of another shape.
func orgOf(p Principal) (orgID, ouID string, ok bool) {
	m := orgPrincipalARN.FindStringSubmatch(p.Value)
	switch {
	case m == nil:
		return "", "", false
	case p.Kind == KindOrganization && m[1] != "":
		return m[1], "", true
	case p.Kind == KindOU && m[2] != "":
		return m[2], m[3], true
	}
	return "", "", false
}

// shadowed explains removed accounts that keep access through what stays.
// With a membership source, an account's access through a kept
// organization or OU of that organization is known: a member (of the
// organization, or anywhere under the OU) is reported definitely, a
// non-member not at all. Kept organizations and OUs the source does not
// know (another organization, an ARN it cannot read, no source) leave the
// account's access open: "may keep access if it is a member of …".
func shadowed(kind ResourceKind, keep, remove []Principal, members Membership) []string {
	var via []Principal
	public := false
	for _, k := range keep {
		switch k.Kind {
		case KindOrganization, KindOU:
			via = append(via, k)
		case KindPublic:
			public = true
		}
	}
	if len(via) == 0 && !public {
		return nil
	}
	var out []string
	for _, r := range remove {
		if r.Kind != KindAccount {
			continue
		}
		if public {
			out = append(out, fmt.Sprintf("account %s removed, but it keeps access: the %s stays public", r.Value, kind))
			continue
		}
		known, unknown := accessThrough(r.Value, via, members)
		switch {
		case len(known) > 0:
			out = append(out, fmt.Sprintf("account %s removed, but it keeps access as a member of %s", r.Value, strings.Join(known, " and ")))
		case len(unknown) > 0:
			out = append(out, fmt.Sprintf("account %s removed, but it keeps access if it is a member of %s", r.Value, strings.Join(unknown, " or ")))
		}
	}
	return out
}

// accessThrough sorts the kept organizations and OUs for one account:
// known lists those it is a member of (with its path), unknown those whose
// membership the source cannot tell.
func accessThrough(account string, via []Principal, members Membership) (known, unknown []string) {
	var path []string
	var member, looked bool
	for _, k := range via {
		orgID, ouID, ok := orgOf(k)
		if members == nil || !ok || orgID != members.Organization() {
			unknown = append(unknown, k.String())
			continue
		}
		if !looked {
			path, member = members.Member(account)
			looked = true
		}
		if !member || (ouID != "" && !slices.Contains(path, ouID)) {
			continue
		}
		if len(path) == 0 {
			known = append(known, k.String())
		} else {
			known = append(known, fmt.Sprintf("%s (path %s)", k, strings.Join(path, "/")))
		}
	}
	return known, unknown
}
