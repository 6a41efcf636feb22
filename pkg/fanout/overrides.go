package fanout

import (
	"fmt"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// UnmatchedOverrides says which of p's overrides name an OU or an account
// that no account of dir's organization is under or is: a typo or a moved
// OU makes an override silently apply nowhere, so each sweep says so.
func UnmatchedOverrides(p *policy.Policy, dir *org.Directory) []string {
	if p == nil || dir == nil {
		return nil
	}
	ous := map[string]bool{}
	for _, a := range dir.Members {
		for _, id := range a.Path {
			ous[id] = true
		}
	}
	var out []string
	for _, o := range p.Overrides {
		for _, ou := range o.OUs {
			if !ous[ou] {
				out = append(out, fmt.Sprintf("override %q: no account of organization %s is under %s", o.Name, dir.OrgID, ou))
			}
		}
		for _, a := range o.Accounts {
			if _, ok := dir.Members[a]; !ok {
				out = append(out, fmt.Sprintf("override %q: account %s is not a member of organization %s", o.Name, a, dir.OrgID))
			}
		}
	}
	return out
}
