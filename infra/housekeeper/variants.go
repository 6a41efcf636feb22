package housekeeper

import "github.com/ami-housekeeper/ami-housekeeper/pkg/policy"

// policyVariants returns the policies the roles must cover: the policy
// itself and, once overrides exist (pkg/policy, issue 10), each variant.
func policyVariants(p *policy.Policy) ([]*policy.Policy, error) {
	return []*policy.Policy{p}, nil
}
