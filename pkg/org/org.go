// Package org is organization mode's view of AWS Organizations: which
// accounts and regions one central deployment covers (Scope), the accounts
// as Organizations lists them with their OU path and tags (Directory), and
// the account × region targets a sweep fans out to. It only reads.
package org

import "sort"

// EnvScope names the environment variable holding the Scope as JSON (set
// by the central stack).
const EnvScope = "HOUSEKEEPER_ORG_SCOPE"

// Scope is which accounts and regions the deployment covers. Accounts are
// those under OUs (descendants included) plus Accounts, minus
// ExcludeAccounts, limited to those carrying AccountTag when it is set;
// only ACTIVE accounts are worked on.
type Scope struct {
	// OUs are OU ids (ou-…) or the root id (r-…).
	OUs      []string `json:"ous,omitempty"`
	Accounts []string `json:"accounts,omitempty"`
	// ExcludeAccounts are never worked on, whatever else matches.
	ExcludeAccounts []string `json:"exclude_accounts,omitempty"`
	// AccountTag, "key=value", keeps only accounts whose Organizations tag
	// key has that value.
	AccountTag string `json:"account_tag,omitempty"`
	// Regions every account is covered in.
	Regions []string `json:"regions"`
}

// Account is one member account as Organizations describes it.
type Account struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Status string `json:"status"`
	// Path is the parent ids from the root (r-…) down to the account's
	// own parent OU.
	Path []string          `json:"path"`
	Tags map[string]string `json:"tags,omitempty"`
}

// Parent is the account's OU (or the root) id.
func (a Account) Parent() string {
	if len(a.Path) == 0 {
		return ""
	}
	return a.Path[len(a.Path)-1]
}

// Directory is the organization as one sweep or event sees it.
type Directory struct {
	// OrgID (o-…) and OrgARN of the organization.
	OrgID  string `json:"org_id"`
	OrgARN string `json:"org_arn"`
	// Management is the management account's ID.
	Management string `json:"management_account"`
	// Accounts in scope, by ID.
	Accounts map[string]Account `json:"accounts"`
	// Skipped are accounts that matched the scope but are not worked on,
	// with why ("status SUSPENDED", "excluded", "tag env is not prod", "not
	// a member of the organization"): reported, never silently dropped.
	Skipped map[string]string `json:"skipped,omitempty"`
	// Members are every account of the organization, in scope or not, with
	// its path: what sharing decisions resolve organization and OU
	// membership against.
	Members map[string]Account `json:"-"`
	// Regions of the scope.
	Regions []string `json:"regions"`
}

// Target is one unit of fan-out: an account in one region.
type Target struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	// OU is the account's parent OU (or root) id.
	OU string `json:"ou"`
}

// InScope returns the account when the deployment works on it.
func (d *Directory) InScope(account string) (Account, bool) {
	a, ok := d.Accounts[account]
	return a, ok
}

// HasRegion says whether region is one the scope covers.
func (d *Directory) HasRegion(region string) bool {
	for _, r := range d.Regions {
		if r == region {
			return true
		}
	}
	return false
}

// Targets lists every account in scope × every region, sorted by account
// then region.
func (d *Directory) Targets() []Target {
	ids := make([]string, 0, len(d.Accounts))
	for id := range d.Accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]Target, 0, len(ids)*len(d.Regions))
	for _, id := range ids {
		for _, r := range d.Regions {
			out = append(out, Target{Account: id, Region: r, OU: d.Accounts[id].Parent()})
		}
	}
	return out
}
