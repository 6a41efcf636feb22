package fanout_test

import (
	"reflect"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func TestUnmatchedOverrides(t *testing.T) {
	dir := &org.Directory{OrgID: "o-exampleorgid", Members: map[string]org.Account{
		"111111111111": {ID: "111111111111", Path: []string{"r-ab12", "ou-ab12-sandbox1"}},
		"222222222222": {ID: "222222222222", Path: []string{"r-ab12", "ou-ab12-workload", "ou-ab12-prod0001"}},
	}}
	p := policy.Default()
	p.Overrides = []policy.Override{
		{Name: "sandboxes", OUs: []string{"ou-ab12-sandbox1"}},
		{Name: "parent", OUs: []string{"ou-ab12-workload"}},                     // an ancestor counts
		{Name: "typo", OUs: []string{"ou-ab12-sandbx1"}},                        // nobody is under it
		{Name: "publisher", Accounts: []string{"222222222222", "333333333333"}}, // one left the organization
	}
	want := []string{
		`override "typo": no account of organization o-exampleorgid is under ou-ab12-sandbx1`,
		`override "publisher": account 333333333333 is not a member of organization o-exampleorgid`,
	}
	if got := fanout.UnmatchedOverrides(p, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("UnmatchedOverrides = %q, want %q", got, want)
	}
	if got := fanout.UnmatchedOverrides(policy.Default(), dir); got != nil {
		t.Errorf("no overrides: %q, want none", got)
	}
}
