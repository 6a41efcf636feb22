package fake_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
)

const (
	orgID  = "o-abcdefghij"
	rootID = "r-ab12"
	mgmt   = "111111111111"
	ouProd = "ou-ab12-prod0001"
	ouSbx  = "ou-ab12-sbx00001"
	ouTeam = "ou-ab12-team0001"
)

func smallOrg() *fake.Organizations {
	f := fake.NewOrganizations(orgID, rootID, mgmt)
	f.AddOU(ouProd, rootID, "prod")
	f.AddOU(ouSbx, rootID, "sandbox")
	f.AddOU(ouTeam, ouProd, "team")
	f.AddAccount("222222222222", ouProd, "p1", orgtypes.AccountStateActive, map[string]string{"env": "prod", "team": "a", "cost": "1"})
	f.AddAccount("333333333333", ouTeam, "t1", orgtypes.AccountStateActive, nil)
	f.AddAccount("444444444444", ouTeam, "t2", orgtypes.AccountStateSuspended, nil)
	f.AddAccount("555555555555", ouSbx, "s1", orgtypes.AccountStatePendingClosure, nil)
	f.PageSize = 1
	return f
}

// walk lists the tree through the SDK's paginators, as organization mode
// does, and returns every account with its path.
func walk(t *testing.T, f *fake.Organizations) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	queue := [][]string{{rootID}}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		id := path[len(path)-1]
		ous := organizations.NewListOrganizationalUnitsForParentPaginator(f, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(id)})
		for ous.HasMorePages() {
			page, err := ous.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, ou := range page.OrganizationalUnits {
				queue = append(queue, append(slices.Clone(path), aws.ToString(ou.Id)))
			}
		}
		accts := organizations.NewListAccountsForParentPaginator(f, &organizations.ListAccountsForParentInput{ParentId: aws.String(id)})
		for accts.HasMorePages() {
			page, err := accts.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range page.Accounts {
				out[aws.ToString(a.Id)] = path
			}
		}
	}
	return out
}

func TestOrganizationsTreePagesAndPaths(t *testing.T) {
	f := smallOrg()
	got := walk(t, f)
	want := map[string][]string{
		mgmt:           {rootID},
		"222222222222": {rootID, ouProd},
		"333333333333": {rootID, ouProd, ouTeam},
		"444444444444": {rootID, ouProd, ouTeam},
		"555555555555": {rootID, ouSbx},
	}
	for id, path := range want {
		if !slices.Equal(got[id], path) {
			t.Errorf("account %s: path %v, want %v", id, got[id], path)
		}
	}
	if len(got) != len(want) {
		t.Errorf("accounts %v", got)
	}
	// One account a page: the root, prod and sandbox one call each, team's
	// two accounts two.
	if f.Calls["ListAccountsForParent"] != 5 {
		t.Errorf("pages were not one account each: %v", f.Calls)
	}
}

func TestOrganizationsAnswers(t *testing.T) {
	ctx := context.Background()
	f := smallOrg()
	org, err := f.DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
	if err != nil || aws.ToString(org.Organization.Id) != orgID || aws.ToString(org.Organization.MasterAccountId) != mgmt {
		t.Fatalf("DescribeOrganization: %+v, %v", org, err)
	}
	all := organizations.NewListAccountsPaginator(f, &organizations.ListAccountsInput{})
	states := map[string]orgtypes.AccountState{}
	for all.HasMorePages() {
		page, err := all.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Accounts {
			states[aws.ToString(a.Id)] = a.State
			if a.State == orgtypes.AccountStateSuspended && a.Status != orgtypes.AccountStatusSuspended {
				t.Errorf("%s: State %s, Status %s", aws.ToString(a.Id), a.State, a.Status)
			}
		}
	}
	if len(states) != 5 || states["555555555555"] != orgtypes.AccountStatePendingClosure {
		t.Errorf("ListAccounts: %v", states)
	}
	tags := map[string]string{}
	tp := organizations.NewListTagsForResourcePaginator(f, &organizations.ListTagsForResourceInput{ResourceId: aws.String("222222222222")})
	for tp.HasMorePages() {
		page, err := tp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range page.Tags {
			tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
	}
	if len(tags) != 3 || tags["env"] != "prod" || f.Calls["ListTagsForResource"] != 3 {
		t.Errorf("tags %v after %d calls", tags, f.Calls["ListTagsForResource"])
	}
	parents, err := f.ListParents(ctx, &organizations.ListParentsInput{ChildId: aws.String("333333333333")})
	if err != nil || len(parents.Parents) != 1 || aws.ToString(parents.Parents[0].Id) != ouTeam || parents.Parents[0].Type != orgtypes.ParentTypeOrganizationalUnit {
		t.Errorf("ListParents: %+v, %v", parents, err)
	}
}

func TestOrganizationsErrors(t *testing.T) {
	ctx := context.Background()
	f := smallOrg()
	first, err := f.ListAccountsForParent(ctx, &organizations.ListAccountsForParentInput{ParentId: aws.String(ouTeam)})
	if err != nil || first.NextToken == nil {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want any
	}{
		{"unknown parent", func() error {
			_, err := f.ListAccountsForParent(ctx, &organizations.ListAccountsForParentInput{ParentId: aws.String("ou-ab12-none0001")})
			return err
		}, &orgtypes.ParentNotFoundException{}},
		{"malformed parent", func() error {
			_, err := f.ListOrganizationalUnitsForParent(ctx, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String("prod")})
			return err
		}, &orgtypes.InvalidInputException{}},
		{"token of another parent", func() error {
			_, err := f.ListAccountsForParent(ctx, &organizations.ListAccountsForParentInput{ParentId: aws.String(ouProd), NextToken: first.NextToken})
			return err
		}, &orgtypes.InvalidInputException{}},
		{"MaxResults above 20", func() error {
			_, err := f.ListAccounts(ctx, &organizations.ListAccountsInput{MaxResults: aws.Int32(21)})
			return err
		}, &orgtypes.InvalidInputException{}},
		{"unknown child", func() error {
			_, err := f.ListParents(ctx, &organizations.ListParentsInput{ChildId: aws.String("999999999999")})
			return err
		}, &orgtypes.ChildNotFoundException{}},
		{"unknown tag target", func() error {
			_, err := f.ListTagsForResource(ctx, &organizations.ListTagsForResourceInput{ResourceId: aws.String("999999999999")})
			return err
		}, &orgtypes.TargetNotFoundException{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || errorType(err) != errorType(tc.want.(error)) {
				t.Fatalf("got %T %v, want %T", err, err, tc.want)
			}
		})
	}
	f.Errors["DescribeOrganization"] = []error{&orgtypes.AccessDeniedException{Message: aws.String("no")}}
	if _, err := f.DescribeOrganization(ctx, nil); !errors.As(err, new(*orgtypes.AccessDeniedException)) {
		t.Errorf("injected error: %v", err)
	}
}

func errorType(err error) string {
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return err.Error()
}
