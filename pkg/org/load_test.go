package org_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

const (
	ouWorkloads = "ou-ab12-aaaaaaaa"
	ouProd      = "ou-ab12-bbbbbbbb"
	ouSandbox   = "ou-ab12-cccccccc"
)

// fakeWorld is an organization where every reason to skip an account
// occurs once, every listing takes several pages (page size 1) and one
// account's answer has only the legacy Status field.
func fakeWorld() *fakeOrg {
	prod := map[string]string{"env": "prod"}
	f := newFakeOrg().
		ou(ouWorkloads, fakeRoot).ou(ouProd, ouWorkloads).ou(ouSandbox, fakeRoot).
		account("222222222221", ouProd, types.AccountStateActive, map[string]string{"env": "prod", "team": "a"}).
		account("222222222222", ouProd, types.AccountStateActive, map[string]string{"env": "dev"}).
		account("222222222223", ouProd, types.AccountStatePendingClosure, prod).
		account("222222222224", ouProd, types.AccountStateActive, map[string]string{}).
		account("222222222225", ouProd, types.AccountStateActive, prod).
		account("222222222226", ouWorkloads, types.AccountStateActive, prod).
		account("333333333331", ouSandbox, types.AccountStateActive, prod).
		account("333333333332", ouSandbox, types.AccountStateSuspended, prod).
		account("444444444441", fakeRoot, types.AccountStateActive, prod)
	// State is read when present, whatever Status says...
	a := f.accounts["222222222223"]
	a.Status = types.AccountStatusActive
	f.accounts["222222222223"] = a
	// ... and Status when an answer has no State.
	a = f.accounts["333333333332"]
	a.State = ""
	f.accounts["333333333332"] = a
	return f
}

func fakeScope() org.Scope {
	return org.Scope{
		OUs:             []string{ouWorkloads},
		Accounts:        []string{"333333333331", "333333333332", "999999999999"},
		ExcludeAccounts: []string{"222222222225"},
		AccountTag:      "env=prod",
		Regions:         []string{"us-east-1", "eu-west-1"},
	}
}

func TestLoadResolvesScope(t *testing.T) {
	f := fakeWorld()
	s := fakeScope()
	d, err := org.Load(context.Background(), f, s)
	if err != nil {
		t.Fatal(err)
	}
	if d.OrgID != "o-abcdefghij" || d.Management != fakeMgmt ||
		d.OrgARN != "arn:aws:organizations::111111111111:organization/o-abcdefghij" {
		t.Errorf("organization: %s %s %s", d.OrgID, d.Management, d.OrgARN)
	}
	if got := keys(d.Accounts); !reflect.DeepEqual(got, []string{"222222222221", "222222222226", "333333333331"}) {
		t.Errorf("in scope: %v", got)
	}
	wantSkipped := map[string]string{
		"222222222222": `tag env is not prod (it is "dev")`,
		"222222222223": "status PENDING_CLOSURE",
		"222222222224": "tag env is not prod (no such tag)",
		"222222222225": "excluded",
		"333333333332": "status SUSPENDED",
		"999999999999": "not a member of organization o-abcdefghij",
	}
	if !reflect.DeepEqual(d.Skipped, wantSkipped) {
		t.Errorf("skipped:\n got %v\nwant %v", d.Skipped, wantSkipped)
	}
	// Every member, paged one by one, with its path from the root.
	if len(d.Members) != 10 {
		t.Errorf("%d members, want 10: %v", len(d.Members), keys(d.Members))
	}
	paths := map[string][]string{
		"222222222221": {fakeRoot, ouWorkloads, ouProd},
		"222222222226": {fakeRoot, ouWorkloads},
		"333333333331": {fakeRoot, ouSandbox},
		"444444444441": {fakeRoot},
		fakeMgmt:       {fakeRoot},
	}
	for id, want := range paths {
		if got := d.Members[id].Path; !reflect.DeepEqual(got, want) {
			t.Errorf("path of %s: %v, want %v", id, got, want)
		}
	}
	if a := d.Accounts["222222222221"]; a.Status != "ACTIVE" || a.Name != "acct-222222222221" ||
		!reflect.DeepEqual(a.Tags, map[string]string{"env": "prod", "team": "a"}) || a.Parent() != ouProd {
		t.Errorf("account 222222222221: %+v (both tags come from two pages)", a)
	}
	// Tags are read only for the accounts they decide: not the excluded,
	// not the inactive, not those outside the scope.
	for _, id := range []string{"222222222225", "222222222223", "333333333332", "444444444441", fakeMgmt} {
		if n := f.count("ListTagsForResource:" + id); n != 0 {
			t.Errorf("tags of %s read %d times", id, n)
		}
	}
	if n := f.count("ListTagsForResource:222222222221"); n != 2 {
		t.Errorf("tags of 222222222221 read in %d pages, want 2", n)
	}
	// The regions are the scope's, not shared with it.
	s.Regions[0] = "ap-south-1"
	if !reflect.DeepEqual(d.Regions, []string{"us-east-1", "eu-west-1"}) {
		t.Errorf("regions: %v", d.Regions)
	}
	again, err := org.Load(context.Background(), fakeWorld(), fakeScope())
	if err != nil || !reflect.DeepEqual(again, d) {
		t.Errorf("a second load differs: %v", err)
	}
}

func TestLoadWithoutTagReadsNoTags(t *testing.T) {
	f := fakeWorld()
	d, err := org.Load(context.Background(), f, org.Scope{OUs: []string{fakeRoot}, Regions: []string{"us-east-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.count("ListTagsForResource"); n != 0 {
		t.Errorf("%d tag reads without account_tag", n)
	}
	// The root covers everyone active, the management account included.
	want := []string{fakeMgmt, "222222222221", "222222222222", "222222222224", "222222222225", "222222222226", "333333333331", "444444444441"}
	if got := keys(d.Accounts); !reflect.DeepEqual(got, want) {
		t.Errorf("in scope: %v", got)
	}
}

func TestLoadErrors(t *testing.T) {
	boom := errors.New("AccessDeniedException: not allowed")
	tests := []struct {
		name  string
		scope org.Scope
		fail  string // operation made to fail
		want  []string
	}{
		{name: "scope OU missing", scope: org.Scope{OUs: []string{ouWorkloads, "ou-ab12-zzzzzzzz"}, Regions: []string{"us-east-1"}},
			want: []string{"ou-ab12-zzzzzzzz", "not in organization o-abcdefghij"}},
		{name: "root of another organization", scope: org.Scope{OUs: []string{"r-zz99"}, Regions: []string{"us-east-1"}},
			want: []string{"r-zz99"}},
		{name: "invalid scope", scope: org.Scope{OUs: []string{"ou-x"}, Regions: []string{"us-east-1"}},
			want: []string{`ous[0] "ou-x"`}},
		{name: "describe", scope: fakeScope(), fail: "DescribeOrganization", want: []string{"describing the organization", "AccessDenied"}},
		{name: "roots", scope: fakeScope(), fail: "ListRoots", want: []string{"listing roots", "AccessDenied"}},
		{name: "OUs", scope: fakeScope(), fail: "ListOrganizationalUnitsForParent", want: []string{"listing the OUs under r-ab12", "AccessDenied"}},
		{name: "accounts", scope: fakeScope(), fail: "ListAccountsForParent", want: []string{"listing the accounts under r-ab12", "AccessDenied"}},
		{name: "tags", scope: fakeScope(), fail: "ListTagsForResource", want: []string{"listing the tags of account 222222222221", "AccessDenied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fakeWorld()
			if tt.fail != "" {
				f.setFail(tt.fail, boom)
			}
			d, err := org.Load(context.Background(), f, tt.scope)
			if err == nil {
				t.Fatalf("loaded %+v", d)
			}
			if tt.fail != "" && !errors.Is(err, boom) {
				t.Errorf("error %q does not wrap the API's", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
