package fake

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
)

// Organizations is an in-memory AWS Organizations (awsapi.OrganizationsAPI)
// for one organization with one root: OUs nested to any depth, accounts in
// OUs or the root, with a state and tags. Every listing pages like
// Organizations (at most 20 a page, MaxResults 1-20, tokens valid only for
// the request that produced them), children in the order they were added.
// Unknown parents and targets get Organizations' own exceptions. Buckets,
// when set for an operation, throttle it (TooManyRequestsException);
// Organizations does not document its rates, so none is set by default.
type Organizations struct {
	mu sync.Mutex
	// ID (o-…), Management (account ID) and RootID (r-…) of the organization.
	ID, Management, RootID string
	// PageSize is the most items one page holds before MaxResults lowers it
	// (default 20, Organizations' maximum).
	PageSize int
	// Calls counts calls per operation name.
	Calls map[string]int
	// Errors, if set for an operation, is returned (once per entry, in order).
	Errors map[string][]error
	// Buckets, if set for an operation, rate-limit it.
	Buckets map[string]*Bucket

	parent   map[string]string   // OU or account → its parent
	children map[string][]string // root or OU → its OUs, then accounts, in insertion order
	ous      map[string]string   // OU → name
	accounts map[string]*orgtypes.Account
	tags     map[string][]orgtypes.Tag

	tokens map[string]orgToken
	nextID int
}

type orgToken struct {
	request string
	offset  int
}

var (
	orgIDPattern  = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	rootIDPattern = regexp.MustCompile(`^r-[0-9a-z]{4,32}$`)
	ouIDPattern   = regexp.MustCompile(`^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$`)
	acctIDPattern = regexp.MustCompile(`^\d{12}$`)
)

// NewOrganizations returns an organization with its root and its
// management account (ACTIVE, directly under the root).
func NewOrganizations(orgID, rootID, management string) *Organizations {
	if !orgIDPattern.MatchString(orgID) || !rootIDPattern.MatchString(rootID) || !acctIDPattern.MatchString(management) {
		panic(fmt.Sprintf("fake.NewOrganizations: malformed ids %q, %q, %q", orgID, rootID, management))
	}
	f := &Organizations{ID: orgID, Management: management, RootID: rootID,
		Calls: map[string]int{}, Errors: map[string][]error{}, Buckets: map[string]*Bucket{},
		parent: map[string]string{}, children: map[string][]string{}, ous: map[string]string{},
		accounts: map[string]*orgtypes.Account{}, tags: map[string][]orgtypes.Tag{}}
	f.AddAccount(management, rootID, "management", orgtypes.AccountStateActive, nil)
	return f
}

// AddOU adds an OU under parent (the root or another OU).
func (f *Organizations) AddOU(id, parent, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !ouIDPattern.MatchString(id) {
		panic("fake.Organizations.AddOU: malformed OU id " + id)
	}
	f.mustBeParent("AddOU", parent)
	if _, dup := f.parent[id]; dup {
		panic("fake.Organizations.AddOU: " + id + " exists")
	}
	f.parent[id] = parent
	f.ous[id] = name
	f.children[parent] = append(f.children[parent], id)
}

// AddAccount adds an account under parent with a state and tags.
func (f *Organizations) AddAccount(id, parent, name string, state orgtypes.AccountState, tags map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !acctIDPattern.MatchString(id) {
		panic("fake.Organizations.AddAccount: malformed account id " + id)
	}
	f.mustBeParent("AddAccount", parent)
	if _, dup := f.parent[id]; dup {
		panic("fake.Organizations.AddAccount: " + id + " exists")
	}
	f.parent[id] = parent
	f.children[parent] = append(f.children[parent], id)
	f.accounts[id] = &orgtypes.Account{
		Id:    aws.String(id),
		Arn:   aws.String(fmt.Sprintf("arn:aws:organizations::%s:account/%s/%s", f.Management, f.ID, id)),
		Name:  aws.String(name),
		Email: aws.String(id + "@example.com"),
		State: state,
		// Status is retired in September 2026; answers still carry both.
		Status: accountStatus(state),
	}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		f.tags[id] = append(f.tags[id], orgtypes.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
}

func accountStatus(s orgtypes.AccountState) orgtypes.AccountStatus {
	switch s {
	case orgtypes.AccountStateActive:
		return orgtypes.AccountStatusActive
	case orgtypes.AccountStateSuspended, orgtypes.AccountStateClosed:
		return orgtypes.AccountStatusSuspended
	case orgtypes.AccountStatePendingClosure:
		return orgtypes.AccountStatusPendingClosure
	}
	return ""
}

func (f *Organizations) mustBeParent(op, id string) {
	if id != f.RootID && f.ous[id] == "" {
		panic(fmt.Sprintf("fake.Organizations.%s: parent %s is neither the root nor an OU", op, id))
	}
}

func (f *Organizations) enter(op string) error {
	f.Calls[op]++
	if b := f.Buckets[op]; b != nil && !b.Take() {
		return &orgtypes.TooManyRequestsException{Message: aws.String("fake: rate exceeded")}
	}
	if errs := f.Errors[op]; len(errs) > 0 {
		f.Errors[op] = errs[1:]
		return errs[0]
	}
	return nil
}

func invalidInput(reason orgtypes.InvalidInputExceptionReason, msg string) error {
	return &orgtypes.InvalidInputException{Message: aws.String("fake: " + msg), Reason: reason}
}

// pageOf returns the slice of ids one page holds and its NextToken.
func (f *Organizations) pageOf(request string, ids []string, token *string, maxResults *int32) ([]string, *string, error) {
	size := f.PageSize
	if size <= 0 || size > 20 {
		size = 20
	}
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > 20 {
			return nil, nil, invalidInput(orgtypes.InvalidInputExceptionReasonMaxValueExceeded, "MaxResults must be 1-20")
		}
		size = min(size, int(*maxResults))
	}
	start := 0
	if token != nil {
		t, ok := f.tokens[*token]
		if !ok || t.request != request {
			return nil, nil, invalidInput(orgtypes.InvalidInputExceptionReasonInvalidPaginationToken, "NextToken "+*token)
		}
		start = min(t.offset, len(ids))
	}
	end := min(start+size, len(ids))
	var next *string
	if end < len(ids) {
		if f.tokens == nil {
			f.tokens = map[string]orgToken{}
		}
		f.nextID++
		tok := "orgtok-" + strconv.Itoa(f.nextID)
		f.tokens[tok] = orgToken{request: request, offset: end}
		next = aws.String(tok)
	}
	return ids[start:end], next, nil
}

// DescribeOrganization describes the organization (feature set ALL).
func (f *Organizations) DescribeOrganization(_ context.Context, _ *organizations.DescribeOrganizationInput, _ ...func(*organizations.Options)) (*organizations.DescribeOrganizationOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("DescribeOrganization"); err != nil {
		return nil, err
	}
	return &organizations.DescribeOrganizationOutput{Organization: &orgtypes.Organization{
		Id:                 aws.String(f.ID),
		Arn:                aws.String(fmt.Sprintf("arn:aws:organizations::%s:organization/%s", f.Management, f.ID)),
		MasterAccountId:    aws.String(f.Management),
		MasterAccountArn:   f.accounts[f.Management].Arn,
		MasterAccountEmail: f.accounts[f.Management].Email,
		FeatureSet:         orgtypes.OrganizationFeatureSetAll,
	}}, nil
}

// ListRoots lists the one root.
func (f *Organizations) ListRoots(_ context.Context, in *organizations.ListRootsInput, _ ...func(*organizations.Options)) (*organizations.ListRootsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListRoots"); err != nil {
		return nil, err
	}
	ids, next, err := f.pageOf("roots", []string{f.RootID}, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	out := &organizations.ListRootsOutput{NextToken: next}
	for _, id := range ids {
		out.Roots = append(out.Roots, orgtypes.Root{Id: aws.String(id), Name: aws.String("Root"),
			Arn: aws.String(fmt.Sprintf("arn:aws:organizations::%s:root/%s/%s", f.Management, f.ID, id))})
	}
	return out, nil
}

// accountsUnder returns the account children of parent.
func (f *Organizations) accountsUnder(parent string) []string {
	var out []string
	for _, c := range f.children[parent] {
		if f.accounts[c] != nil {
			out = append(out, c)
		}
	}
	return out
}

func (f *Organizations) ousUnder(parent string) []string {
	var out []string
	for _, c := range f.children[parent] {
		if f.ous[c] != "" {
			out = append(out, c)
		}
	}
	return out
}

func (f *Organizations) knownParent(id *string) error {
	p := aws.ToString(id)
	switch {
	case p == "":
		return invalidInput(orgtypes.InvalidInputExceptionReasonInputRequired, "ParentId is required")
	case !rootIDPattern.MatchString(p) && !ouIDPattern.MatchString(p):
		return invalidInput(orgtypes.InvalidInputExceptionReasonInvalidPattern, "ParentId "+p)
	case p != f.RootID && f.ous[p] == "":
		return &orgtypes.ParentNotFoundException{Message: aws.String("fake: no parent " + p)}
	}
	return nil
}

// ListAccounts lists every account of the organization, in the order added.
func (f *Organizations) ListAccounts(_ context.Context, in *organizations.ListAccountsInput, _ ...func(*organizations.Options)) (*organizations.ListAccountsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListAccounts"); err != nil {
		return nil, err
	}
	var all []string
	var visit func(string)
	visit = func(p string) {
		all = append(all, f.accountsUnder(p)...)
		for _, ou := range f.ousUnder(p) {
			visit(ou)
		}
	}
	visit(f.RootID)
	ids, next, err := f.pageOf("accounts", all, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	return &organizations.ListAccountsOutput{Accounts: f.accountList(ids), NextToken: next}, nil
}

func (f *Organizations) accountList(ids []string) []orgtypes.Account {
	out := make([]orgtypes.Account, 0, len(ids))
	for _, id := range ids {
		out = append(out, *f.accounts[id])
	}
	return out
}

// ListAccountsForParent lists the accounts directly under a root or OU.
func (f *Organizations) ListAccountsForParent(_ context.Context, in *organizations.ListAccountsForParentInput, _ ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListAccountsForParent"); err != nil {
		return nil, err
	}
	if err := f.knownParent(in.ParentId); err != nil {
		return nil, err
	}
	ids, next, err := f.pageOf("accounts/"+*in.ParentId, f.accountsUnder(*in.ParentId), in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	return &organizations.ListAccountsForParentOutput{Accounts: f.accountList(ids), NextToken: next}, nil
}

// ListOrganizationalUnitsForParent lists the OUs directly under a root or OU.
func (f *Organizations) ListOrganizationalUnitsForParent(_ context.Context, in *organizations.ListOrganizationalUnitsForParentInput, _ ...func(*organizations.Options)) (*organizations.ListOrganizationalUnitsForParentOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListOrganizationalUnitsForParent"); err != nil {
		return nil, err
	}
	if err := f.knownParent(in.ParentId); err != nil {
		return nil, err
	}
	ids, next, err := f.pageOf("ous/"+*in.ParentId, f.ousUnder(*in.ParentId), in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	out := &organizations.ListOrganizationalUnitsForParentOutput{NextToken: next}
	for _, id := range ids {
		out.OrganizationalUnits = append(out.OrganizationalUnits, orgtypes.OrganizationalUnit{Id: aws.String(id), Name: aws.String(f.ous[id]),
			Arn: aws.String(fmt.Sprintf("arn:aws:organizations::%s:ou/%s/%s", f.Management, f.ID, id))})
	}
	return out, nil
}

// ListParents lists the one parent of an account or OU.
func (f *Organizations) ListParents(_ context.Context, in *organizations.ListParentsInput, _ ...func(*organizations.Options)) (*organizations.ListParentsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListParents"); err != nil {
		return nil, err
	}
	child := aws.ToString(in.ChildId)
	p, ok := f.parent[child]
	if !ok {
		return nil, &orgtypes.ChildNotFoundException{Message: aws.String("fake: no child " + child)}
	}
	ids, next, err := f.pageOf("parents/"+child, []string{p}, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	out := &organizations.ListParentsOutput{NextToken: next}
	for _, id := range ids {
		typ := orgtypes.ParentTypeOrganizationalUnit
		if id == f.RootID {
			typ = orgtypes.ParentTypeRoot
		}
		out.Parents = append(out.Parents, orgtypes.Parent{Id: aws.String(id), Type: typ})
	}
	return out, nil
}

// ListTagsForResource lists an account's tags (OUs and the root carry none
// here); it takes no MaxResults, as in Organizations.
func (f *Organizations) ListTagsForResource(_ context.Context, in *organizations.ListTagsForResourceInput, _ ...func(*organizations.Options)) (*organizations.ListTagsForResourceOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListTagsForResource"); err != nil {
		return nil, err
	}
	id := aws.ToString(in.ResourceId)
	if _, ok := f.parent[id]; !ok && id != f.RootID {
		return nil, &orgtypes.TargetNotFoundException{Message: aws.String("fake: no target " + id)}
	}
	tags := f.tags[id]
	keys := make([]string, len(tags))
	for i := range tags {
		keys[i] = strconv.Itoa(i)
	}
	page, next, err := f.pageOf("tags/"+id, keys, in.NextToken, nil)
	if err != nil {
		return nil, err
	}
	out := &organizations.ListTagsForResourceOutput{NextToken: next}
	for _, k := range page {
		i, _ := strconv.Atoi(k)
		out.Tags = append(out.Tags, tags[i])
	}
	return out, nil
}
