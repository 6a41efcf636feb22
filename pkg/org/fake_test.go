package org_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/organizations/types"
)

// fakeOrg is a small stateful Organizations for what moto cannot show:
// every listing paged by pageSize (roots and tags included, which moto
// does not page), State missing (answers from before the field existed),
// PENDING_CLOSURE, injected failures, call counts and a gate to hold a load
// mid-flight. It panics on calls Load must not make.
type fakeOrg struct {
	mu       sync.Mutex
	orgID    string
	mgmt     string
	root     string
	parentOf map[string]string // OU or account id → parent id
	accounts map[string]types.Account
	tags     map[string]map[string]string
	pageSize int
	fail     map[string]error // operation → error
	calls    map[string]int
	// gate, when set, holds DescribeOrganization until it is closed.
	gate chan struct{}
}

const (
	fakeRoot = "r-ab12"
	fakeMgmt = "111111111111"
)

func newFakeOrg() *fakeOrg {
	f := &fakeOrg{orgID: "o-abcdefghij", mgmt: fakeMgmt, root: fakeRoot, pageSize: 1,
		parentOf: map[string]string{}, accounts: map[string]types.Account{},
		tags: map[string]map[string]string{}, fail: map[string]error{}, calls: map[string]int{}}
	f.account(fakeMgmt, fakeRoot, types.AccountStateActive, nil)
	return f
}

func (f *fakeOrg) ou(id, parent string) *fakeOrg {
	f.parentOf[id] = parent
	return f
}

func (f *fakeOrg) account(id, parent string, state types.AccountState, tags map[string]string) *fakeOrg {
	f.parentOf[id] = parent
	f.accounts[id] = types.Account{Id: aws.String(id), Name: aws.String("acct-" + id), State: state,
		Status: types.AccountStatus(state)}
	f.tags[id] = tags
	return f
}

func (f *fakeOrg) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeOrg) enter(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	return f.fail[op]
}

func (f *fakeOrg) setFail(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[op] = err
}

// children lists the ids under parent that are OUs (ous) or accounts,
// sorted.
func (f *fakeOrg) children(parent string, ous bool) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if parent != f.root {
		if _, ok := f.parentOf[parent]; !ok {
			panic("fakeOrg: unknown parent " + parent)
		}
	}
	var out []string
	for id, p := range f.parentOf {
		_, isAccount := f.accounts[id]
		if p == parent && isAccount != ous {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// page cuts one page of size pageSize at token (an index).
func page[T any](f *fakeOrg, items []T, token *string) ([]T, *string) {
	start := 0
	if token != nil {
		n, err := strconv.Atoi(*token)
		if err != nil {
			panic("fakeOrg: bad token " + *token)
		}
		start = n
	}
	end := min(start+f.pageSize, len(items))
	if end == len(items) {
		return items[start:end], nil
	}
	return items[start:end], aws.String(strconv.Itoa(end))
}

func (f *fakeOrg) DescribeOrganization(ctx context.Context, _ *organizations.DescribeOrganizationInput, _ ...func(*organizations.Options)) (*organizations.DescribeOrganizationOutput, error) {
	if err := f.enter("DescribeOrganization"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &organizations.DescribeOrganizationOutput{Organization: &types.Organization{
		Id: aws.String(f.orgID), MasterAccountId: aws.String(f.mgmt),
		Arn: aws.String(fmt.Sprintf("arn:aws:organizations::%s:organization/%s", f.mgmt, f.orgID)),
	}}, nil
}

func (f *fakeOrg) ListRoots(_ context.Context, in *organizations.ListRootsInput, _ ...func(*organizations.Options)) (*organizations.ListRootsOutput, error) {
	if err := f.enter("ListRoots"); err != nil {
		return nil, err
	}
	roots, next := page(f, []types.Root{{Id: aws.String(f.root)}}, in.NextToken)
	return &organizations.ListRootsOutput{Roots: roots, NextToken: next}, nil
}

func (f *fakeOrg) ListOrganizationalUnitsForParent(_ context.Context, in *organizations.ListOrganizationalUnitsForParentInput, _ ...func(*organizations.Options)) (*organizations.ListOrganizationalUnitsForParentOutput, error) {
	if err := f.enter("ListOrganizationalUnitsForParent"); err != nil {
		return nil, err
	}
	var ous []types.OrganizationalUnit
	for _, id := range f.children(aws.ToString(in.ParentId), true) {
		ous = append(ous, types.OrganizationalUnit{Id: aws.String(id)})
	}
	ous, next := page(f, ous, in.NextToken)
	return &organizations.ListOrganizationalUnitsForParentOutput{OrganizationalUnits: ous, NextToken: next}, nil
}

func (f *fakeOrg) ListAccountsForParent(_ context.Context, in *organizations.ListAccountsForParentInput, _ ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error) {
	if err := f.enter("ListAccountsForParent"); err != nil {
		return nil, err
	}
	var accts []types.Account
	for _, id := range f.children(aws.ToString(in.ParentId), false) {
		f.mu.Lock()
		accts = append(accts, f.accounts[id])
		f.mu.Unlock()
	}
	accts, next := page(f, accts, in.NextToken)
	return &organizations.ListAccountsForParentOutput{Accounts: accts, NextToken: next}, nil
}

func (f *fakeOrg) ListTagsForResource(_ context.Context, in *organizations.ListTagsForResourceInput, _ ...func(*organizations.Options)) (*organizations.ListTagsForResourceOutput, error) {
	if err := f.enter("ListTagsForResource"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.calls["ListTagsForResource:"+aws.ToString(in.ResourceId)]++
	m, ok := f.tags[aws.ToString(in.ResourceId)]
	f.mu.Unlock()
	if !ok {
		panic("fakeOrg: tags of unknown resource " + aws.ToString(in.ResourceId))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	tags := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	tags, next := page(f, tags, in.NextToken)
	return &organizations.ListTagsForResourceOutput{Tags: tags, NextToken: next}, nil
}

func (f *fakeOrg) ListAccounts(context.Context, *organizations.ListAccountsInput, ...func(*organizations.Options)) (*organizations.ListAccountsOutput, error) {
	panic("fakeOrg: Load walks the tree; ListAccounts is not expected")
}

func (f *fakeOrg) ListParents(context.Context, *organizations.ListParentsInput, ...func(*organizations.Options)) (*organizations.ListParentsOutput, error) {
	panic("fakeOrg: Load walks the tree; ListParents is not expected")
}
