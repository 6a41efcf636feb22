package org_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// motoMgmt is moto's default account: the one that creates the
// organization is its management account.
const motoMgmt = "123456789012"

// motoWorld is an organization built in moto through the Organizations API
// itself: nested OUs, accounts created with tags, one moved, one closed.
type motoWorld struct {
	api                          *organizations.Client
	root, workloads, prod, other string
	sandbox                      string
	ids                          map[string]string // account name → id
}

func newMotoWorld(t *testing.T) *motoWorld {
	t.Helper()
	ctx := context.Background()
	m := emulator.SharedMoto(t)
	cfg, err := m.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	w := &motoWorld{api: organizations.NewFromConfig(cfg), ids: map[string]string{}}
	if _, err := w.api.CreateOrganization(ctx, &organizations.CreateOrganizationInput{FeatureSet: types.OrganizationFeatureSetAll}); err != nil {
		t.Fatal(err)
	}
	roots, err := w.api.ListRoots(ctx, &organizations.ListRootsInput{})
	if err != nil {
		t.Fatal(err)
	}
	w.root = aws.ToString(roots.Roots[0].Id)
	w.workloads = w.ou(t, "workloads", w.root)
	w.prod = w.ou(t, "prod", w.workloads)
	w.sandbox = w.ou(t, "sandbox", w.root)
	w.other = w.ou(t, "other", w.root)

	prod := map[string]string{"env": "prod"}
	w.account(t, "prod-1", w.prod, prod)
	w.account(t, "prod-2", w.prod, prod)
	w.account(t, "prod-dev", w.prod, map[string]string{"env": "dev"})
	w.account(t, "prod-closed", w.prod, prod)
	w.account(t, "prod-excluded", w.prod, prod)
	w.account(t, "workloads-1", w.workloads, prod)
	w.account(t, "sandbox-1", w.sandbox, prod)
	w.account(t, "other-1", w.root, prod)
	// Created under the root, moved like an operator would.
	if _, err := w.api.MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(w.ids["other-1"]),
		SourceParentId: aws.String(w.root), DestinationParentId: aws.String(w.other)}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.api.CloseAccount(ctx, &organizations.CloseAccountInput{AccountId: aws.String(w.ids["prod-closed"])}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *motoWorld) ou(t *testing.T, name, parent string) string {
	t.Helper()
	out, err := w.api.CreateOrganizationalUnit(context.Background(), &organizations.CreateOrganizationalUnitInput{
		Name: aws.String(name), ParentId: aws.String(parent)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.OrganizationalUnit.Id)
}

func (w *motoWorld) account(t *testing.T, name, parent string, tags map[string]string) {
	t.Helper()
	ctx := context.Background()
	in := &organizations.CreateAccountInput{AccountName: aws.String(name), Email: aws.String(name + "@example.com")}
	for k, v := range tags {
		in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := w.api.CreateAccount(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.CreateAccountStatus.AccountId)
	w.ids[name] = id
	if parent != w.root {
		if _, err := w.api.MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(id),
			SourceParentId: aws.String(w.root), DestinationParentId: aws.String(parent)}); err != nil {
			t.Fatal(err)
		}
	}
}

// smallPages asks moto (which pages both listings by MaxResults) for pages
// of two, so the tree walk must follow NextToken, and counts the pages it
// followed.
type smallPages struct {
	awsapi.OrganizationsAPI
	mu       sync.Mutex
	followed int
}

func (s *smallPages) ListAccountsForParent(ctx context.Context, in *organizations.ListAccountsForParentInput, opts ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error) {
	s.follow(in.NextToken)
	p := *in
	p.MaxResults = aws.Int32(2)
	return s.OrganizationsAPI.ListAccountsForParent(ctx, &p, opts...)
}

func (s *smallPages) ListOrganizationalUnitsForParent(ctx context.Context, in *organizations.ListOrganizationalUnitsForParentInput, opts ...func(*organizations.Options)) (*organizations.ListOrganizationalUnitsForParentOutput, error) {
	s.follow(in.NextToken)
	p := *in
	p.MaxResults = aws.Int32(2)
	return s.OrganizationsAPI.ListOrganizationalUnitsForParent(ctx, &p, opts...)
}

func (s *smallPages) follow(token *string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token != nil {
		s.followed++
	}
}

func TestLoadMoto(t *testing.T) {
	w := newMotoWorld(t)
	api := &smallPages{OrganizationsAPI: w.api}
	id := w.ids
	s := org.Scope{
		OUs:             []string{w.workloads},
		Accounts:        []string{id["sandbox-1"], "999999999999"},
		ExcludeAccounts: []string{id["prod-excluded"]},
		AccountTag:      "env=prod",
		Regions:         []string{"us-east-1", "eu-west-1"},
	}
	d, err := org.Load(context.Background(), api, s)
	if err != nil {
		t.Fatal(err)
	}
	if api.followed == 0 {
		t.Error("no listing took a second page: pagination is not exercised")
	}
	if d.Management != motoMgmt || !strings.HasPrefix(d.OrgID, "o-") || !strings.HasSuffix(d.OrgARN, ":organization/"+d.OrgID) {
		t.Errorf("organization: %s %s %s", d.OrgID, d.OrgARN, d.Management)
	}
	want := []string{id["prod-1"], id["prod-2"], id["workloads-1"], id["sandbox-1"]}
	slices.Sort(want)
	if got := keys(d.Accounts); !reflect.DeepEqual(got, want) {
		t.Errorf("in scope: %v, want %v", got, want)
	}
	wantSkipped := map[string]string{
		id["prod-dev"]:      `tag env is not prod (it is "dev")`,
		id["prod-closed"]:   "status SUSPENDED",
		id["prod-excluded"]: "excluded",
		"999999999999":      "not a member of organization " + d.OrgID,
	}
	if !reflect.DeepEqual(d.Skipped, wantSkipped) {
		t.Errorf("skipped:\n got %v\nwant %v", d.Skipped, wantSkipped)
	}
	if len(d.Members) != 9 {
		t.Errorf("%d members, want 9 (8 created and the management account)", len(d.Members))
	}
	paths := map[string][]string{
		id["prod-1"]:      {w.root, w.workloads, w.prod},
		id["workloads-1"]: {w.root, w.workloads},
		id["sandbox-1"]:   {w.root, w.sandbox},
		id["other-1"]:     {w.root, w.other},
		motoMgmt:          {w.root},
	}
	for acct, p := range paths {
		if got := d.Members[acct].Path; !reflect.DeepEqual(got, p) {
			t.Errorf("path of %s: %v, want %v", acct, got, p)
		}
	}
	if !slices.Contains(d.Members[id["prod-1"]].Path, w.workloads) || slices.Contains(d.Members[id["other-1"]].Path, w.workloads) {
		t.Error("the paths disagree with the tree")
	}
	if targets := d.Targets(); len(targets) != 8 || targets[0].OU == "" {
		t.Errorf("targets: %+v", targets)
	}

	t.Run("scope OU missing", func(t *testing.T) {
		_, err := org.Load(context.Background(), w.api, org.Scope{OUs: []string{w.prod, "ou-zzzz-zzzzzzzz"}, Regions: []string{"us-east-1"}})
		if err == nil || !strings.Contains(err.Error(), "ou-zzzz-zzzzzzzz") {
			t.Errorf("error %v does not name the missing OU", err)
		}
	})
}

func TestLoadMotoNoOrganization(t *testing.T) {
	ctx := context.Background()
	m := emulator.SharedMoto(t)
	cfg, err := m.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = org.Load(ctx, organizations.NewFromConfig(cfg), org.Scope{OUs: []string{"r-ab12"}, Regions: []string{"us-east-1"}})
	if err == nil || !strings.Contains(err.Error(), "AWSOrganizationsNotInUseException") {
		t.Errorf("outside an organization: %v", err)
	}
}

// The cache sees a move (an account leaving the scope's OU) once its ttl
// has passed, not before.
func TestCacheMoto(t *testing.T) {
	ctx := context.Background()
	w := newMotoWorld(t)
	clk := &clock{t: time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)}
	c := org.NewCache(w.api, org.Scope{OUs: []string{w.workloads}, Regions: []string{"us-east-1"}}, time.Minute, clk.now)
	acct := w.ids["workloads-1"]
	if d, err := c.Get(ctx); err != nil || !inScope(d, acct) {
		t.Fatalf("before the move: %v", err)
	}
	if _, err := w.api.MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(acct),
		SourceParentId: aws.String(w.workloads), DestinationParentId: aws.String(w.other)}); err != nil {
		t.Fatal(err)
	}
	if d, err := c.Get(ctx); err != nil || !inScope(d, acct) {
		t.Fatalf("inside the ttl: %v (the cached directory should be served)", err)
	}
	clk.advance(time.Minute)
	d, err := c.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if inScope(d, acct) || !reflect.DeepEqual(d.Members[acct].Path, []string{w.root, w.other}) {
		t.Errorf("after the ttl: still in scope or old path %v", d.Members[acct].Path)
	}
}

func inScope(d *org.Directory, acct string) bool {
	_, ok := d.InScope(acct)
	return ok
}
