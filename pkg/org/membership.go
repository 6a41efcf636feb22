package org

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// Member returns the account when it belongs to the organization, in
// scope or not (what sharing decisions resolve membership against).
func (d *Directory) Member(account string) (Account, bool) {
	a, ok := d.Members[account]
	return a, ok
}

// InOU says whether the account is a member anywhere under ouID (an OU or
// the root id): its parent or any ancestor.
func (d *Directory) InOU(account, ouID string) bool {
	a, ok := d.Members[account]
	return ok && ouID != "" && slices.Contains(a.Path, ouID)
}

// ParseOrgPrincipalARN reads the organization (and OU) of an organization
// or OU ARN as EC2 launch permissions carry them:
// arn:aws:organizations::<management>:organization/o-x and
// arn:aws:organizations::<management>:ou/o-x/ou-y. ouID is empty for an
// organization ARN. Anything else is an error naming the ARN.
func ParseOrgPrincipalARN(s string) (orgID, ouID string, err error) {
	a, err := arn.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("organization ARN %q: %w", s, err)
	}
	if a.Service != "organizations" || a.Region != "" || !accountIDPattern.MatchString(a.AccountID) {
		return "", "", fmt.Errorf("organization ARN %q: not arn:<partition>:organizations::<account>:…", s)
	}
	parts := strings.Split(a.Resource, "/")
	switch {
	case len(parts) == 2 && parts[0] == "organization" && orgIDPattern.MatchString(parts[1]):
		return parts[1], "", nil
	case len(parts) == 3 && parts[0] == "ou" && orgIDPattern.MatchString(parts[1]) && ouIDPattern.MatchString(parts[2]):
		return parts[1], parts[2], nil
	}
	return "", "", fmt.Errorf("organization ARN %q: resource %q is neither organization/o-… nor ou/o-…/ou-…", s, a.Resource)
}
