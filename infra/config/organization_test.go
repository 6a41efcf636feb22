package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// orgContext is a valid organization-mode context plus extra.
func orgContext(extra map[string]any) map[string]any {
	ctx := map[string]any{
		"organizationId": "o-abcdefghij",
		"organizationScope": map[string]any{
			"ous":     []any{"ou-ab12-cdefghij", "r-ab12"},
			"regions": []any{"eu-west-1", "us-east-1"},
		},
	}
	for k, v := range extra {
		ctx[k] = v
	}
	return ctx
}

func TestOrganizationOffByDefault(t *testing.T) {
	c, err := FromContext(map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Organization.Enabled() {
		t.Errorf("organization mode on by default: %+v", c.Organization)
	}
	o := c.Organization
	if o.MemberRoleName != "ami-housekeeper-member" || o.StackSetMaxConcurrentPercentage != 25 || o.StackSetFailureTolerancePercentage != 10 ||
		o.StackSetCallAs != "DELEGATED_ADMIN" || o.WorkerConcurrency != 12 {
		t.Errorf("defaults changed: %+v", o)
	}
}

func TestOrganizationValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ctx   map[string]any
		check func(Organization) bool
	}{
		{"stack set targets and regions follow the scope", orgContext(nil), func(o Organization) bool {
			return o.Enabled() && reflect.DeepEqual(o.StackSetTargetOUs, []string{"ou-ab12-cdefghij", "r-ab12"}) &&
				reflect.DeepEqual(o.StackSetRegions, []string{"eu-west-1", "us-east-1"})
		}},
		{"scope from -c as a JSON string", orgContext(map[string]any{
			"organizationScope": `{"accounts":["111111111111"],"exclude_accounts":["222222222222"],"account_tag":"env=prod","regions":["eu-west-1"]}`,
			"stackSetTargetOus": "r-ab12",
		}), func(o Organization) bool {
			return reflect.DeepEqual(o.Scope, org.Scope{Accounts: []string{"111111111111"}, ExcludeAccounts: []string{"222222222222"}, AccountTag: "env=prod", Regions: []string{"eu-west-1"}}) &&
				reflect.DeepEqual(o.StackSetTargetOUs, []string{"r-ab12"}) && reflect.DeepEqual(o.StackSetRegions, []string{"eu-west-1"})
		}},
		{"explicit stack set settings", orgContext(map[string]any{
			"stackSetTargetOus": []any{"ou-ab12-zzzzzzzz"}, "stackSetRegions": "eu-west-1,us-east-1,ap-south-1",
			"stackSetMaxConcurrentPercentage": "50", "stackSetFailureTolerancePercentage": 0.0, "stackSetCallAs": "SELF",
			"orgWorkerConcurrency": 40.0, "memberRoleName": "hk-member", "memberExternalId": "ext-123",
		}), func(o Organization) bool {
			return reflect.DeepEqual(o.StackSetTargetOUs, []string{"ou-ab12-zzzzzzzz"}) && len(o.StackSetRegions) == 3 &&
				o.StackSetMaxConcurrentPercentage == 50 && o.StackSetFailureTolerancePercentage == 0 && o.StackSetCallAs == "SELF" &&
				o.WorkerConcurrency == 40 && o.MemberRoleName == "hk-member" && o.ExternalID == "ext-123"
		}},
		{"one central region", orgContext(map[string]any{"regions": "eu-west-1"}), func(o Organization) bool { return o.Enabled() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromContext(tc.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c.Organization) {
				t.Errorf("got %+v", c.Organization)
			}
		})
	}
}

func TestOrganizationRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		want []string
	}{
		{"scope without organization id", map[string]any{"organizationScope": map[string]any{"regions": []any{"eu-west-1"}}},
			[]string{`context "organizationScope": is set, but "organizationId" is empty`}},
		{"external id without organization id", map[string]any{"memberExternalId": "x1"}, []string{`context "memberExternalId": is set, but "organizationId" is empty`}},
		{"stack set OUs without organization id", map[string]any{"stackSetTargetOus": "r-ab12"}, []string{`context "stackSetTargetOus": is set`}},
		{"bad organization id", orgContext(map[string]any{"organizationId": "org-1"}), []string{`context "organizationId": "org-1" is not an organization id`}},
		{"scope misspelled field", orgContext(map[string]any{"organizationScope": map[string]any{"ous": []any{"r-ab12"}, "regoins": []any{"eu-west-1"}}}),
			[]string{`context "organizationScope": not a scope object: json: unknown field "regoins"`}},
		{"scope not an object", orgContext(map[string]any{"organizationScope": 3.0}), []string{`context "organizationScope": want an object`}},
		{"scope bad JSON from -c", orgContext(map[string]any{"organizationScope": `{"ous":`}), []string{`context "organizationScope": not a scope object`}},
		{"scope without regions", orgContext(map[string]any{"organizationScope": map[string]any{"ous": []any{"r-ab12"}}}),
			[]string{`context "organizationScope": organization scope: regions: needs at least one region`}},
		{"scope without accounts or OUs", orgContext(map[string]any{"organizationScope": map[string]any{"regions": []any{"eu-west-1"}}}),
			[]string{`context "organizationScope": organization scope: needs at least one of ous or accounts`}},
		{"scope bad OU", orgContext(map[string]any{"organizationScope": map[string]any{"ous": []any{"ou-1"}, "regions": []any{"eu-west-1"}}}),
			[]string{`context "organizationScope":`, `"ou-1"`}},
		{"scope bad account", orgContext(map[string]any{"organizationScope": map[string]any{"accounts": []any{"1234"}, "regions": []any{"eu-west-1"}}, "stackSetTargetOus": "r-ab12"}),
			[]string{`context "organizationScope":`, `"1234" is not a 12-digit account id`}},
		{"scope bad region", orgContext(map[string]any{"organizationScope": map[string]any{"ous": []any{"r-ab12"}, "regions": []any{"eu-west-1a"}}}),
			[]string{`context "organizationScope":`, `"eu-west-1a" is not a region name`}},
		{"scope account both in and out", orgContext(map[string]any{"organizationScope": map[string]any{"ous": []any{"r-ab12"}, "accounts": []any{"111111111111"},
			"exclude_accounts": []any{"111111111111"}, "regions": []any{"eu-west-1"}}}), []string{`context "organizationScope": organization scope: account 111111111111 is in both accounts and exclude_accounts`}},
		{"scope bad tag", orgContext(map[string]any{"organizationScope": map[string]any{"ous": []any{"r-ab12"}, "account_tag": "prod", "regions": []any{"eu-west-1"}}}),
			[]string{`context "organizationScope": organization scope: account_tag "prod"`}},
		{"scope OU twice", orgContext(map[string]any{"organizationScope": map[string]any{"ous": []any{"r-ab12", "r-ab12"}, "regions": []any{"eu-west-1"}}}),
			[]string{`context "organizationScope":`, `"r-ab12"`}},
		{"accounts only and no stack set OUs", orgContext(map[string]any{"organizationScope": map[string]any{"accounts": []any{"111111111111"}, "regions": []any{"eu-west-1"}}}),
			[]string{`context "stackSetTargetOus": is empty and the scope names no OU`}},
		{"stack set OU invalid", orgContext(map[string]any{"stackSetTargetOus": "ou-x"}), []string{`context "stackSetTargetOus": "ou-x" is not an OU or root id`}},
		{"stack set regions miss a scope region", orgContext(map[string]any{"stackSetRegions": "eu-west-1"}),
			[]string{`context "stackSetRegions": [eu-west-1] does not include us-east-1, a region of the scope`}},
		{"stack set region invalid", orgContext(map[string]any{"stackSetRegions": "eu-west-1,us-east-1,mars"}), []string{`context "stackSetRegions": "mars" is not a region name`}},
		{"role name with a path", orgContext(map[string]any{"memberRoleName": "ops/member"}), []string{`context "memberRoleName": "ops/member" is not an IAM role name`}},
		{"role name too long", orgContext(map[string]any{"memberRoleName": strings.Repeat("r", 65)}), []string{`context "memberRoleName"`}},
		{"role name too long for the function suffixes", orgContext(map[string]any{"memberRoleName": strings.Repeat("r", 57)}),
			[]string{`context "memberRoleName": "` + strings.Repeat("r", 57) + `": 57 characters`, "so at most 43"}},
		{"role name too long for the forwarding rules", orgContext(map[string]any{"memberRoleName": strings.Repeat("r", 44)}),
			[]string{`context "memberRoleName": "` + strings.Repeat("r", 44) + `": 44 characters`, "-forward-state-change", "so at most 43"}},
		{"role name not a rule name", orgContext(map[string]any{"memberRoleName": "ops+member"}),
			[]string{`context "memberRoleName": "ops+member": it also names the member stack's forwarding rules (ops+member-forward-cloudtrail)`}},
		{"external id too short", orgContext(map[string]any{"memberExternalId": "x"}), []string{`context "memberExternalId": want 2 to 1224`}},
		{"external id bad character", orgContext(map[string]any{"memberExternalId": "a b"}), []string{`context "memberExternalId": want 2 to 1224`}},
		{"concurrency 0", orgContext(map[string]any{"stackSetMaxConcurrentPercentage": 0.0}), []string{`context "stackSetMaxConcurrentPercentage": 0: want 1 to 100`}},
		{"tolerance over 100", orgContext(map[string]any{"stackSetFailureTolerancePercentage": 101.0}), []string{`context "stackSetFailureTolerancePercentage": 101: want 0 to 100`}},
		{"call as", orgContext(map[string]any{"stackSetCallAs": "ADMIN"}), []string{`context "stackSetCallAs": "ADMIN": want SELF`}},
		{"workers 1", orgContext(map[string]any{"orgWorkerConcurrency": 1.0}), []string{`context "orgWorkerConcurrency": 1: want 2 to 1000`}},
		{"workers not a number", orgContext(map[string]any{"orgWorkerConcurrency": "ten"}), []string{`context "orgWorkerConcurrency": want a whole number`}},
		{"several central regions", orgContext(map[string]any{"regions": "eu-west-1,us-east-1"}), []string{`context "regions": [eu-west-1 us-east-1]: organization mode has one central stack`}},
		{"stack name too long for the role names", orgContext(map[string]any{"stackName": "A" + strings.Repeat("b", 56)}),
			[]string{`context "stackName": "Abbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb": 57 characters`}},
		{"scope too large for the functions' environment", orgContext(map[string]any{"organizationScope": map[string]any{
			"ous": []any{"r-ab12"}, "accounts": accountIDs(155), "regions": []any{"eu-west-1"}}}),
			[]string{`context "organizationScope": 2702 bytes in HOUSEKEEPER_ORG_SCOPE`, "Lambda allows 4096 bytes", "so at most 2696 here", "List OUs"}},
		{"scope and external id too large together", orgContext(map[string]any{"organizationScope": map[string]any{
			"ous": []any{"r-ab12"}, "accounts": accountIDs(96), "regions": []any{"eu-west-1"}}, "memberExternalId": strings.Repeat("e", 1000)}),
			[]string{`context "organizationScope": 1699 bytes in HOUSEKEEPER_ORG_SCOPE`, `and "memberExternalId" (1002 bytes), so at most 1694 here`}},
		{"misspelled key", orgContext(map[string]any{"organizationID": "o-abcdefghij"}), []string{`context "organizationID": unknown key (did you mean "organizationId"?)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromContext(tc.ctx)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// accountIDs returns n distinct account ids.
func accountIDs(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = fmt.Sprintf("%012d", 100000000000+i)
	}
	return out
}

// The largest scope the configuration accepts, with the longest external
// id, fits Lambda's 4 KB with the reserve the other variables take; one
// account more does not pass.
func TestScopeEnvironmentBound(t *testing.T) {
	scope := func(n int) map[string]any {
		return map[string]any{"ous": []any{"r-ab12"}, "accounts": accountIDs(n), "regions": []any{"eu-west-1"}}
	}
	largest := 0
	for n := 1; ; n++ {
		c, err := FromContext(orgContext(map[string]any{"organizationScope": scope(n)}))
		if err != nil {
			if !strings.Contains(err.Error(), `context "organizationScope"`) {
				t.Fatalf("%d accounts: %v", n, err)
			}
			break
		}
		v, err := ScopeEnvironment(c.Organization.Scope)
		if err != nil {
			t.Fatal(err)
		}
		largest = environmentBytes(v)
		if largest+OrgEnvironmentReserve > LambdaEnvironmentMaxBytes {
			t.Fatalf("%d accounts accepted: %d bytes of scope and %d of the rest exceed Lambda's %d", n, largest, OrgEnvironmentReserve, LambdaEnvironmentMaxBytes)
		}
	}
	if budget := LambdaEnvironmentMaxBytes - OrgEnvironmentReserve; largest < budget-17 {
		t.Errorf("the largest scope accepted takes %d bytes, more than an account id short of the %d left for it", largest, budget)
	}
	// With the longest external id, a scope of a few OUs still fits.
	if _, err := FromContext(orgContext(map[string]any{"memberExternalId": strings.Repeat("e", 1224)})); err != nil {
		t.Errorf("the longest external id with a small scope: %v", err)
	}
}

// The external id is a shared secret of sorts: an error about it must not
// print it.
func TestExternalIDNotEchoed(t *testing.T) {
	_, err := FromContext(orgContext(map[string]any{"memberExternalId": "secret value"}))
	if err == nil || strings.Contains(err.Error(), "secret value") {
		t.Errorf("err = %v", err)
	}
}

// Each function has a member role of its own, named after the base name;
// the longest base name accepted still gives IAM role names.
func TestMemberRoleNames(t *testing.T) {
	longest := strings.Repeat("r", MaxMemberRoleNameLength)
	c, err := FromContext(orgContext(map[string]any{"memberRoleName": longest}))
	if err != nil {
		t.Fatalf("a %d-character base name refused: %v", MaxMemberRoleNameLength, err)
	}
	for _, f := range []string{"tagger", "sharing", "cleanup"} {
		name := c.Organization.MemberRole(f)
		if name != longest+"-"+f || !reRoleName.MatchString(name) {
			t.Errorf("%s member role %q (%d characters) is not an IAM role name", f, name, len(name))
		}
	}
	if name := c.Organization.ForwarderRole(); name != longest+"-forwarder" || !reRoleName.MatchString(name) {
		t.Errorf("forwarding role %q (%d characters) is not an IAM role name", name, len(name))
	}
	// EventBridge rule names: 1-64 of letters, digits and ._- (PutRule).
	reEventRule := regexp.MustCompile(`^[\w.-]{1,64}$`)
	for _, name := range []string{c.Organization.ForwardCloudTrailRule(), c.Organization.ForwardStateChangeRule()} {
		if !strings.HasPrefix(name, longest+"-forward-") || !reEventRule.MatchString(name) {
			t.Errorf("forwarding rule %q (%d characters) is not an EventBridge rule name", name, len(name))
		}
	}
	if got := Default().Organization.MemberRole("tagger"); got != "ami-housekeeper-member-tagger" {
		t.Errorf("default tagger member role %q", got)
	}
}

// The deploy guide's configuration table documents every key the app
// reads, organization mode's included.
func TestDeployGuideListsEveryKey(t *testing.T) {
	raw, err := os.ReadFile("../../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys() {
		if !strings.Contains(string(raw), "| `"+k+"` |") {
			t.Errorf("docs/deploy.md: no table row for %q", k)
		}
	}
}
