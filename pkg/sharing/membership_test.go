package sharing_test

// Pure tests of the shadowed-account report with and without an
// organization's membership (EvaluateWith): no AWS, no fake, no moto.

import (
	"context"
	"reflect"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
)

const (
	// orgID is the organization of orgOK, ouOK and ouInOrg; ouOK
	// (ou-ab12-cdefgh34) sits under ou-ab12-parent00, under the root.
	orgID    = "o-a1b2c3d4e5"
	root     = "r-ab12"
	ouParent = "ou-ab12-parent00"
	ouKept   = "ou-ab12-cdefgh34" // ouOK's ID
	ouChild  = "ou-ab12-child000"
	ouOther  = "ou-ab12-other000"
	// A partner organization the policy allows, unknown to the directory.
	orgPartner = "arn:aws:organizations::222233334444:organization/o-partner123"
)

var pOrgPartner = sharing.Principal{Kind: sharing.KindOrganization, Value: orgPartner}

// directory is orgID's membership: accounts by ID, each with its path.
func directory(accounts map[string][]string) sharing.Members {
	return sharing.Members{OrgID: orgID, Path: func(a string) ([]string, bool) {
		p, ok := accounts[a]
		return p, ok
	}}
}

func TestEvaluateWithMembership(t *testing.T) {
	now := day("2026-10-01T12:00:00Z")
	inKept := []string{root, ouParent, ouKept}
	underKept := []string{root, ouParent, ouKept, ouChild}
	elsewhere := []string{root, ouOther}
	allowPartner := func(p *policy.Sharing) { p.AllowedOrganizations = append(p.AllowedOrganizations, orgPartner) }
	tests := []struct {
		name     string
		policy   func(*policy.Sharing)
		members  sharing.Membership
		current  []sharing.Principal
		shadowed []string
	}{
		{
			name:    "no membership (single-account mode): may keep access, as before",
			current: ps(pStranger, pOUOK),
			shadowed: []string{
				"account 999988887777 removed, but it keeps access if it is a member of ou " + ouOK,
			},
		},
		{
			name:     "member directly in the kept OU",
			members:  directory(map[string][]string{stranger: inKept}),
			current:  ps(pStranger, pOUOK),
			shadowed: []string{"account 999988887777 removed, but it keeps access as a member of ou " + ouOK + " (path r-ab12/ou-ab12-parent00/ou-ab12-cdefgh34)"},
		},
		{
			name:     "member in an OU below the kept OU",
			members:  directory(map[string][]string{stranger: underKept}),
			current:  ps(pStranger, pOUOK),
			shadowed: []string{"account 999988887777 removed, but it keeps access as a member of ou " + ouOK + " (path r-ab12/ou-ab12-parent00/ou-ab12-cdefgh34/ou-ab12-child000)"},
		},
		{
			name:    "member of the organization, outside the kept OU: not shadowed",
			members: directory(map[string][]string{stranger: elsewhere}),
			current: ps(pStranger, pOUOK),
		},
		{
			name:    "not a member: not shadowed",
			members: directory(map[string][]string{allowed: inKept}),
			current: ps(pStranger, pOUOK, pOrgOK),
		},
		{
			name:     "member of the kept organization, and of its kept OU",
			members:  directory(map[string][]string{stranger: inKept}),
			current:  ps(pStranger, pOUOK, pOrgOK),
			shadowed: []string{"account 999988887777 removed, but it keeps access as a member of organization " + orgOK + " (path r-ab12/ou-ab12-parent00/ou-ab12-cdefgh34) and ou " + ouOK + " (path r-ab12/ou-ab12-parent00/ou-ab12-cdefgh34)"},
		},
		{
			name:     "the management account, at the root, through the organization",
			members:  directory(map[string][]string{stranger: {root}}),
			current:  ps(pStranger, pOrgOK),
			shadowed: []string{"account 999988887777 removed, but it keeps access as a member of organization " + orgOK + " (path r-ab12)"},
		},
		{
			name:     "another organization is not known: may keep access through it",
			policy:   allowPartner,
			members:  directory(map[string][]string{}),
			current:  ps(pStranger, pOrgPartner, pOUOK),
			shadowed: []string{"account 999988887777 removed, but it keeps access if it is a member of organization " + orgPartner},
		},
		{
			name:     "a known membership wins over an unknown organization",
			policy:   allowPartner,
			members:  directory(map[string][]string{stranger: inKept}),
			current:  ps(pStranger, pOrgPartner, pOUOK),
			shadowed: []string{"account 999988887777 removed, but it keeps access as a member of ou " + ouOK + " (path r-ab12/ou-ab12-parent00/ou-ab12-cdefgh34)"},
		},
		{
			name:     "public wins over membership",
			policy:   func(p *policy.Sharing) { p.AllowPublic = true },
			members:  directory(map[string][]string{}),
			current:  ps(pStranger, pPublic, pOUOK),
			shadowed: []string{"account 999988887777 removed, but it keeps access: the image stays public"},
		},
		{
			name: "an organization ARN of an unexpected shape is not resolved",
			policy: func(p *policy.Sharing) {
				p.AllowedOrganizations = append(p.AllowedOrganizations, "arn:aws:organizations::111122223333:organization/"+orgID+"/x")
			},
			members: directory(map[string][]string{stranger: inKept}),
			current: ps(pStranger, sharing.Principal{Kind: sharing.KindOrganization, Value: "arn:aws:organizations::111122223333:organization/" + orgID + "/x"}),
			shadowed: []string{"account 999988887777 removed, but it keeps access if it is a member of organization " +
				"arn:aws:organizations::111122223333:organization/" + orgID + "/x"},
		},
		{
			name:    "a membership without a lookup knows no member",
			members: sharing.Members{OrgID: orgID},
			current: ps(pStranger, pOrgOK),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy()
			if tc.policy != nil {
				tc.policy(&p)
			}
			v := sharing.EvaluateWith(now, p, tc.members, sharing.KindImage, "res-1", nil, tc.current)
			if !reflect.DeepEqual(v.Shadowed, tc.shadowed) {
				t.Errorf("shadowed\n got  %q\n want %q", v.Shadowed, tc.shadowed)
			}
			// Membership changes the report, never the decision.
			plain := sharing.Evaluate(now, p, sharing.KindImage, "res-1", nil, tc.current)
			if !reflect.DeepEqual(v.Keep, plain.Keep) || !reflect.DeepEqual(v.Remove, plain.Remove) || !reflect.DeepEqual(v.Reasons, plain.Reasons) {
				t.Errorf("membership changed the decision: %+v vs %+v", v, plain)
			}
		})
	}
}

// The enforcer passes its membership to the decision: the finding says
// definitely that the stranger keeps access through the kept organization.
func TestEnforcerReportsMembership(t *testing.T) {
	f := fakeWorld(t)
	e := enforcer(f, policy.ModeAudit)
	e.Membership = directory(map[string][]string{stranger: {root, ouOther}})
	res, err := e.CheckImage(context.Background(), acct, region, fakeAMI, actor)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) == 0 {
		t.Fatalf("no findings: %+v", res)
	}
	want := []string{"account 999988887777 removed, but it keeps access as a member of organization " + orgOK + " (path r-ab12/ou-ab12-other000)"}
	if got := res.Findings[0].Shadowed; !reflect.DeepEqual(got, want) {
		t.Errorf("shadowed %q, want %q", got, want)
	}
}
