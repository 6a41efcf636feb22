package org

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
)

// StatusActive is the only account status worked on.
const StatusActive = "ACTIVE"

// Load reads the organization and resolves the scope against it: the whole
// OU tree is walked from the roots (every page of every listing), so each
// member gets its path; then the accounts the scope matches are kept when
// ACTIVE, not excluded and carrying the scope's tag, and the others are
// listed in Skipped with why. Tags are read only for accounts that would
// otherwise be kept (Account.Tags is set only when the scope has a tag). A
// scope OU the organization does not have is an error: a sweep must not
// quietly cover less than it was configured to.
func Load(ctx context.Context, api awsapi.OrganizationsAPI, s Scope) (*Directory, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	out, err := api.DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
	if err != nil {
		return nil, fmt.Errorf("describing the organization: %w", err)
	}
	if out.Organization == nil {
		return nil, errors.New("describing the organization: no organization in the answer")
	}
	d := &Directory{
		OrgID:      aws.ToString(out.Organization.Id),
		OrgARN:     aws.ToString(out.Organization.Arn),
		Management: aws.ToString(out.Organization.MasterAccountId),
		Accounts:   map[string]Account{},
		Skipped:    map[string]string{},
		Members:    map[string]Account{},
		Regions:    slices.Clone(s.Regions),
	}
	// parents holds every root and OU seen, with the path down to it
	// (itself included).
	parents, err := walk(ctx, api, d.Members)
	if err != nil {
		return nil, fmt.Errorf("organization %s: %w", d.OrgID, err)
	}
	for _, ou := range s.OUs {
		if _, ok := parents[ou]; !ok {
			return nil, fmt.Errorf("organization scope: OU %s is not in organization %s", ou, d.OrgID)
		}
	}
	if err := resolve(ctx, api, s, d); err != nil {
		return nil, fmt.Errorf("organization %s: %w", d.OrgID, err)
	}
	return d, nil
}

// walk lists the tree breadth first from the roots, one level at a time,
// the parents of a level listed Readers at a time, and merges each level
// in id order, so the result (and any error about duplicates) is the same
// every time. It fills members.
func walk(ctx context.Context, api awsapi.OrganizationsAPI, members map[string]Account) (map[string][]string, error) {
	parents := map[string][]string{}
	var level [][]string // paths still to list, each ending with its parent id
	roots := organizations.NewListRootsPaginator(api, &organizations.ListRootsInput{})
	for roots.HasMorePages() {
		page, err := roots.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing roots: %w", err)
		}
		for _, r := range page.Roots {
			level = append(level, []string{aws.ToString(r.Id)})
		}
	}
	slices.SortFunc(level, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	for len(level) > 0 {
		listed, err := inParallel(ctx, level, func(ctx context.Context, path []string) (children, error) {
			return listChildren(ctx, api, path[len(path)-1])
		})
		if err != nil {
			return nil, err
		}
		var next [][]string
		for i, path := range level {
			id := path[len(path)-1]
			parents[id] = path
			for _, c := range listed[i].ous {
				if _, seen := parents[c]; seen {
					return nil, fmt.Errorf("OU %s listed twice (under %s)", c, id)
				}
				next = append(next, append(slices.Clone(path), c))
			}
			for _, a := range listed[i].accounts {
				acct := member(a, path)
				if prev, dup := members[acct.ID]; dup {
					return nil, fmt.Errorf("account %s listed under both %s and %s", acct.ID, prev.Parent(), id)
				}
				members[acct.ID] = acct
			}
		}
		level = next
	}
	return parents, nil
}

// children are what one parent holds.
type children struct {
	ous      []string // sorted
	accounts []types.Account
}

func listChildren(ctx context.Context, api awsapi.OrganizationsAPI, id string) (children, error) {
	var c children
	ous := organizations.NewListOrganizationalUnitsForParentPaginator(api,
		&organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(id)})
	for ous.HasMorePages() {
		page, err := ous.NextPage(ctx)
		if err != nil {
			return c, fmt.Errorf("listing the OUs under %s: %w", id, err)
		}
		for _, ou := range page.OrganizationalUnits {
			c.ous = append(c.ous, aws.ToString(ou.Id))
		}
	}
	slices.Sort(c.ous)
	accounts := organizations.NewListAccountsForParentPaginator(api,
		&organizations.ListAccountsForParentInput{ParentId: aws.String(id)})
	for accounts.HasMorePages() {
		page, err := accounts.NextPage(ctx)
		if err != nil {
			return c, fmt.Errorf("listing the accounts under %s: %w", id, err)
		}
		c.accounts = append(c.accounts, page.Accounts...)
	}
	return c, nil
}

func member(a types.Account, path []string) Account {
	// State replaces Status (retired by AWS in September 2026); read
	// Status only from an answer that has no State.
	status := string(a.State)
	if status == "" {
		status = string(a.Status)
	}
	return Account{ID: aws.ToString(a.Id), Name: aws.ToString(a.Name), Status: status, Path: path}
}

// resolve sorts the scope's candidates into Accounts and Skipped, the
// cheap reasons first so tags are read only when they decide.
func resolve(ctx context.Context, api awsapi.OrganizationsAPI, s Scope, d *Directory) error {
	excluded := map[string]bool{}
	for _, a := range s.ExcludeAccounts {
		excluded[a] = true
	}
	candidates := map[string]bool{}
	for id, a := range d.Members {
		for _, ou := range s.OUs {
			if slices.Contains(a.Path, ou) {
				candidates[id] = true
			}
		}
	}
	for _, id := range s.Accounts {
		if _, ok := d.Members[id]; !ok {
			d.Skipped[id] = "not a member of organization " + d.OrgID
			continue
		}
		candidates[id] = true
	}
	key, want, tagged := s.Tag()
	ids := make([]string, 0, len(candidates))
	for id := range candidates {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var tags map[string]map[string]string
	if tagged {
		var need []string
		for _, id := range ids {
			if !excluded[id] && d.Members[id].Status == StatusActive {
				need = append(need, id)
			}
		}
		var err error
		if tags, err = readTags(ctx, api, need); err != nil {
			return err
		}
	}
	for _, id := range ids {
		a := d.Members[id]
		switch {
		case excluded[id]:
			d.Skipped[id] = "excluded"
			continue
		case a.Status != StatusActive:
			d.Skipped[id] = "status " + a.Status
			continue
		}
		if tagged {
			a.Tags = tags[id]
			got, ok := a.Tags[key]
			if !ok {
				d.Skipped[id] = fmt.Sprintf("tag %s is not %s (no such tag)", key, want)
				continue
			}
			if got != want {
				d.Skipped[id] = fmt.Sprintf("tag %s is not %s (it is %q)", key, want, got)
				continue
			}
		}
		d.Accounts[id] = a
	}
	return nil
}

// Readers bounds the concurrent Organizations calls of a load (the
// parents of one level of the tree, the tags of the accounts): read one
// after the other, an organization of a few hundred accounts in many OUs
// took most of a 30-second invocation, while Organizations throttles a
// burst much above a few calls at once.
const Readers = 4

// readTags reads the tags of ids, Readers at a time.
func readTags(ctx context.Context, api awsapi.OrganizationsAPI, ids []string) (map[string]map[string]string, error) {
	got, err := inParallel(ctx, ids, func(ctx context.Context, id string) (map[string]string, error) {
		return accountTags(ctx, api, id)
	})
	if err != nil {
		return nil, err
	}
	tags := make(map[string]map[string]string, len(ids))
	for i, id := range ids {
		tags[id] = got[i]
	}
	return tags, nil
}

// inParallel runs read on every item, Readers at a time, and returns the
// results in the items' order. The first error (in item order, not a
// cancellation it caused) fails the whole read and cancels the rest.
func inParallel[In, Out any](ctx context.Context, items []In, read func(context.Context, In) (Out, error)) ([]Out, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]Out, len(items))
	errs := make([]error, len(items))
	sem := make(chan struct{}, Readers)
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if out[i], errs[i] = read(ctx, it); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func accountTags(ctx context.Context, api awsapi.OrganizationsAPI, id string) (map[string]string, error) {
	tags := map[string]string{}
	p := organizations.NewListTagsForResourcePaginator(api, &organizations.ListTagsForResourceInput{ResourceId: aws.String(id)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the tags of account %s: %w", id, err)
		}
		for _, t := range page.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return tags, nil
}
