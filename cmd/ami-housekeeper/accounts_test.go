package main_test

// The CLI across accounts (--accounts, --ou, --role-name) driven through the
// built binary against moto: an organization made through moto's
// Organizations API (root > workloads > sandbox), member accounts whose AMIs
// are made through an assumed role in each (moto picks the account from the
// assumed role's credentials), and a proxy before moto that refuses the
// member role of one account, as STS does when the role is missing.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// orgFixture is an organization in moto: the caller (moto's default
// account) is its management account; workload-1 sits in the workloads OU,
// sandbox-1 and sandbox-2 in the sandbox OU below it. Each member owns two
// AMIs. The proxy refuses sandbox-2's member role.
type orgFixture struct {
	moto     *emulator.Moto
	proxy    string // endpoint refusing sandbox-2's member role
	root     string
	workload string // OU ids
	sandbox  string
	ids      map[string]string      // account name -> id
	amis     map[string][]string    // account id -> its AMIs, sorted
	ec2      map[string]*ec2.Client // account id -> EC2 acting in it
}

const (
	memberRole = "OrganizationAccountAccessRole"
	stranger   = "999988887777"
)

func newOrgFixture(t *testing.T) *orgFixture {
	t.Helper()
	ctx := context.Background()
	m, _ := startMoto(t)
	cfg, err := m.Config(ctx, motoRegion)
	if err != nil {
		t.Fatal(err)
	}
	f := &orgFixture{moto: m, ids: map[string]string{}, amis: map[string][]string{}, ec2: map[string]*ec2.Client{}}
	orgs := organizations.NewFromConfig(cfg)
	if _, err := orgs.CreateOrganization(ctx, &organizations.CreateOrganizationInput{FeatureSet: orgtypes.OrganizationFeatureSetAll}); err != nil {
		t.Fatal(err)
	}
	roots, err := orgs.ListRoots(ctx, &organizations.ListRootsInput{})
	if err != nil {
		t.Fatal(err)
	}
	f.root = aws.ToString(roots.Roots[0].Id)
	ou := func(name, parent string) string {
		out, err := orgs.CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{Name: aws.String(name), ParentId: aws.String(parent)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.OrganizationalUnit.Id)
	}
	f.workload = ou("workloads", f.root)
	f.sandbox = ou("sandbox", f.workload)
	for _, a := range []struct{ name, ou string }{{"workload-1", f.workload}, {"sandbox-1", f.sandbox}, {"sandbox-2", f.sandbox}} {
		out, err := orgs.CreateAccount(ctx, &organizations.CreateAccountInput{AccountName: aws.String(a.name), Email: aws.String(a.name + "@example.com")})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.CreateAccountStatus.AccountId)
		if _, err := orgs.MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(id), SourceParentId: aws.String(f.root), DestinationParentId: aws.String(a.ou)}); err != nil {
			t.Fatal(err)
		}
		f.ids[a.name] = id
		f.ec2[id] = ec2.NewFromConfig(f.actAs(t, cfg, id))
		seed := emulator.Seeder{EC2: f.ec2[id]}
		inst, err := seed.Instance(ctx, emulator.ForeignImageID)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"app-1", "app-2"} {
			ami, err := seed.CreateImage(ctx, inst, a.name+"-"+name)
			if err != nil {
				t.Fatal(err)
			}
			f.amis[id] = append(f.amis[id], ami)
		}
		sort.Strings(f.amis[id])
		// A terminated instance uses no AMI: nothing but the policy keeps them.
		if err := seed.TerminateInstance(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}
	f.proxy = refuseRole(t, m.URL, "arn:aws:iam::"+f.ids["sandbox-2"]+":role/"+memberRole)
	return f
}

// actAs is cfg acting in account: credentials of a role assumed there.
func (f *orgFixture) actAs(t *testing.T, cfg aws.Config, account string) aws.Config {
	t.Helper()
	out, err := sts.NewFromConfig(cfg).AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::" + account + ":role/seed"), RoleSessionName: aws.String("seed")})
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Copy()
	cr := out.Credentials
	c.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(cr.AccessKeyId), aws.ToString(cr.SecretAccessKey), aws.ToString(cr.SessionToken))
	return c
}

// images lists the AMIs account owns now.
func (f *orgFixture) images(t *testing.T, account string) []string {
	t.Helper()
	ids, err := emulator.OwnedImages(context.Background(), f.ec2[account])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// env reaches moto through the proxy, as the management account.
func (f *orgFixture) env() []string {
	return append(f.moto.Env(motoRegion), "AWS_ENDPOINT_URL="+f.proxy)
}

// refuseRole is a proxy before moto that answers AssumeRole of roleARN as
// STS does when the role does not trust the caller, and forwards the rest.
func refuseRole(t *testing.T, upstream, roleARN string) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		if form.Get("Action") == "AssumeRole" && form.Get("RoleArn") == roleARN {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code>`+
				`<Message>User: arn:aws:iam::123456789012:user/operator is not authorized to perform: sts:AssumeRole on resource: `+roleARN+`</Message></Error><RequestId>r</RequestId></ErrorResponse>`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// orgPolicyDoc keeps every AMI at the top level (keep_newest 3) and keeps
// none in the sandbox OU: which account runs with which policy shows in
// the decisions.
func orgPolicyDoc(f *orgFixture, sandboxMode string) string {
	return `version: 1
retention:
  mode: audit
  grace_days: 0
  second_opinion: disabled
  rules:
    - {name: apps, match: {name: "*-app-*"}, keep_newest: 3, min_age_days: 0, keep_launched_within_days: 0}
overrides:
  - name: sandboxes
    ous: [` + f.sandbox + `]
    retention:
      mode: ` + sandboxMode + `
      rules:
        - {name: sandbox-apps, match: {name: "*-app-*"}, keep_newest: 0, min_age_days: 0, keep_launched_within_days: 0}
  - name: publishing
    accounts: ["` + f.ids["workload-1"] + `"]
    sharing:
      allowed_accounts: ["` + stranger + `"]
`
}

// plannedAccount is one account of plan's JSON output across accounts.
type plannedAccount struct {
	Account    string          `json:"account"`
	Path       []string        `json:"path"`
	Overrides  []string        `json:"overrides"`
	NotCovered string          `json:"not_covered"`
	Reports    []*sweep.Report `json:"reports"`
}

func parseAccounts(t *testing.T, r cliResult) []plannedAccount {
	t.Helper()
	var doc struct {
		Accounts []plannedAccount `json:"accounts"`
		Skipped  map[string]string
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("--output json is not one document by account: %v\n%s", err, r)
	}
	return doc.Accounts
}

func TestAccountsPlanShowsEachAccountsAMIsWithItsPolicy(t *testing.T) {
	f := newOrgFixture(t)
	// The sandbox's policy enforces: plan must change nothing all the same.
	pol := writePolicy(t, orgPolicyDoc(f, "enforce"))
	w1, s1, s2 := f.ids["workload-1"], f.ids["sandbox-1"], f.ids["sandbox-2"]

	// --ou: every account under workloads, sandbox included; sandbox-2's
	// role is refused, the others complete, exit 4.
	r := runCLI(t, f.env(), "plan", "--policy", pol, "--role-name", memberRole, "--ou", f.workload, "--output", "json")
	if r.code != 4 {
		t.Fatalf("plan --ou with one account unreachable: want exit 4\n%s", r)
	}
	accts := parseAccounts(t, r)
	want := []string{w1, s1, s2}
	slices.Sort(want)
	var got []string
	for _, a := range accts {
		got = append(got, a.Account)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("accounts %v, want %v (sorted)", got, want)
	}
	for _, a := range accts {
		t.Run(a.Account, func(t *testing.T) {
			if a.Account == s2 {
				if !strings.Contains(a.NotCovered, "unreachable") || !strings.Contains(a.NotCovered, "AccessDenied") || !strings.Contains(a.NotCovered, "role/"+memberRole) || len(a.Reports) != 0 {
					t.Errorf("the unreachable account: %+v", a)
				}
				return
			}
			if a.NotCovered != "" || len(a.Reports) != 1 || a.Reports[0].Account != a.Account || a.Reports[0].Region != motoRegion {
				t.Fatalf("account %s: %+v", a.Account, a)
			}
			var planned []string
			for _, d := range a.Reports[0].Plan.Decisions {
				planned = append(planned, d.ImageID)
			}
			slices.Sort(planned)
			if !slices.Equal(planned, f.amis[a.Account]) {
				t.Errorf("account %s's plan decides on %v, want its own AMIs only: %v", a.Account, planned, f.amis[a.Account])
			}
			wantAction, wantOverrides, wantPath := cleanup.ActionKeep, []string{"publishing"}, []string{f.root, f.workload}
			if a.Account == s1 {
				wantAction, wantOverrides, wantPath = cleanup.ActionDeregister, []string{"sandboxes"}, []string{f.root, f.workload, f.sandbox}
			}
			for _, d := range a.Reports[0].Plan.Decisions {
				if d.Action != wantAction {
					t.Errorf("account %s: %s is %s (%q), want %s under its policy", a.Account, d.ImageID, d.Action, d.Reasons, wantAction)
				}
			}
			if !slices.Equal(a.Overrides, wantOverrides) || !slices.Equal(a.Path, wantPath) {
				t.Errorf("account %s: overrides %q path %q, want %q %q", a.Account, a.Overrides, a.Path, wantOverrides, wantPath)
			}
		})
	}
	if !strings.Contains(r.stderr, "1 of 3 accounts not covered (their role could not be assumed): "+s2) {
		t.Errorf("stderr does not say which account was not covered:\n%s", r)
	}

	// The table: by account, the unreachable one with its reason.
	r = runCLI(t, f.env(), "plan", "--policy", pol, "--role-name", memberRole, "--ou", f.workload)
	if r.code != 4 {
		t.Fatalf("plan --ou table: %s", r)
	}
	t.Logf("plan --ou:\n%s", r)
	for _, w := range []string{
		"=== Account " + s1 + " (OU path " + f.root + " / " + f.workload + " / " + f.sandbox + "; overrides sandboxes) ===",
		"=== Account " + w1 + " (OU path " + f.root + " / " + f.workload + "; overrides publishing) ===",
		"=== Account " + s2 + ": NOT COVERED: account " + s2 + " unreachable: assuming arn:aws:iam::" + s2 + ":role/" + memberRole,
		"Region us-east-1, account " + s1 + ": plan only",
		"Accounts covered: 2 of 3; NOT COVERED: " + s2,
	} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("plan table lacks %q\n%s", w, r)
		}
	}

	// --accounts: only those named; the policy has overrides by OU, so
	// their paths come from Organizations all the same.
	r = runCLI(t, f.env(), "plan", "--policy", pol, "--role-name", memberRole, "--accounts", s1+","+w1, "--output", "json", "--detailed-exitcode")
	if r.code != 3 {
		t.Fatalf("plan --accounts --detailed-exitcode with deregistrations in the sandbox: want exit 3\n%s", r)
	}
	accts = parseAccounts(t, r)
	if len(accts) != 2 || accts[0].NotCovered != "" || accts[1].NotCovered != "" {
		t.Fatalf("plan --accounts: %s", r)
	}
	for _, a := range accts {
		if a.Account == s1 && a.Reports[0].Plan.Totals.Deregister != 2 || a.Account == w1 && a.Reports[0].Plan.Totals.Deregister != 0 {
			t.Errorf("account %s totals %+v", a.Account, a.Reports[0].Plan.Totals)
		}
	}
	for id := range f.amis {
		if got := f.images(t, id); !slices.Equal(got, f.amis[id]) {
			t.Errorf("plan changed account %s: %v", id, got)
		}
	}
}

// apply across accounts acts only where the account's own policy says
// enforce, and leaves the unreachable account listed.
func TestAccountsApplyActsWhereTheAccountsPolicyEnforces(t *testing.T) {
	f := newOrgFixture(t)
	key, err := f.moto.RecordsKeyEnv(context.Background(), motoRegion)
	if err != nil {
		t.Fatal(err)
	}
	pol := writePolicy(t, orgPolicyDoc(f, "enforce"))
	w1, s1, s2 := f.ids["workload-1"], f.ids["sandbox-1"], f.ids["sandbox-2"]

	// Off a terminal without --yes: refused before anything changes.
	r := runCLI(t, append(f.env(), key), "apply", "--policy", pol, "--role-name", memberRole, "--ou", f.workload)
	if r.code != 2 || !strings.Contains(r.stderr, "give --yes") {
		t.Fatalf("apply across accounts without --yes off a terminal: %s", r)
	}

	r = runCLI(t, append(f.env(), key), "apply", "--policy", pol, "--role-name", memberRole, "--ou", f.workload, "--yes", "--output", "json")
	if r.code != 4 {
		t.Fatalf("apply --ou with one account unreachable: want exit 4\n%s", r)
	}
	if got := f.images(t, s1); len(got) != 0 {
		t.Errorf("sandbox-1 (retention enforce through its OU's override) still has %v", got)
	}
	for _, id := range []string{w1, s2} {
		if got := f.images(t, id); !slices.Equal(got, f.amis[id]) {
			t.Errorf("account %s changed: %v, want %v", id, got, f.amis[id])
		}
	}
	for _, a := range parseAccounts(t, r) {
		switch a.Account {
		case s1:
			if len(a.Reports) != 1 || a.Reports[0].Results == nil || a.Reports[0].Results.Deregistered != 2 {
				t.Errorf("sandbox-1's apply report: %+v", a.Reports)
			}
		case w1:
			if len(a.Reports) != 0 {
				t.Errorf("workload-1 (audit) was applied: %+v", a.Reports)
			}
		}
	}
	if !strings.Contains(r.stderr, "account "+w1+" not applied: its retention.mode is \"audit\"") {
		t.Errorf("apply does not say why workload-1 was not applied:\n%s", r)
	}

	// An account left alone because its policy says audit is as asked, not
	// a failure: with every account reached, exit 0.
	r = runCLI(t, append(f.moto.Env(motoRegion), key), "apply", "--policy", pol, "--role-name", memberRole, "--accounts", w1+","+s1, "--yes")
	if r.code != 0 || !strings.Contains(r.stderr, "account "+w1+" not applied: its retention.mode is \"audit\" (overrides applied: publishing)") ||
		!strings.Contains(r.stdout, "Accounts covered: 2 of 2") {
		t.Errorf("apply with one account in audit: %s", r)
	}
	if got := f.images(t, w1); !slices.Equal(got, f.amis[w1]) {
		t.Errorf("workload-1 (audit) changed: %v", got)
	}
}

// audit-sharing across accounts: each account's own allow-list (the
// publishing account may share with the stranger, the sandbox may not).
func TestAccountsAuditSharingUsesEachAccountsPolicy(t *testing.T) {
	f := newOrgFixture(t)
	ctx := context.Background()
	w1, s1 := f.ids["workload-1"], f.ids["sandbox-1"]
	for _, id := range []string{w1, s1} {
		if _, err := f.ec2[id].ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(f.amis[id][0]),
			LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(stranger)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	pol := writePolicy(t, orgPolicyDoc(f, "audit"))
	r := runCLI(t, f.env(), "audit-sharing", "--policy", pol, "--role-name", memberRole, "--accounts", w1+","+s1, "--cloudtrail=false", "--output", "json")
	if r.code != 0 {
		t.Fatalf("audit-sharing --accounts: %s", r)
	}
	var doc struct {
		Accounts []struct {
			Account   string   `json:"account"`
			Overrides []string `json:"overrides"`
			Reports   []struct {
				Account    string `json:"account"`
				Violations int    `json:"violations"`
				Findings   []struct {
					ResourceID string `json:"resource_id"`
					Action     string `json:"action"`
				} `json:"findings"`
			} `json:"reports"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Accounts) != 2 {
		t.Fatalf("audit-sharing JSON: %v\n%s", err, r)
	}
	for _, a := range doc.Accounts {
		if len(a.Reports) != 1 || a.Reports[0].Account != a.Account {
			t.Fatalf("account %s reports %+v", a.Account, a.Reports)
		}
		rep := a.Reports[0]
		switch a.Account {
		case w1:
			if rep.Violations != 0 || !slices.Equal(a.Overrides, []string{"publishing"}) {
				t.Errorf("publishing account: the stranger is allowed there: %+v", a)
			}
		case s1:
			if rep.Violations != 1 || len(rep.Findings) != 1 || rep.Findings[0].ResourceID != f.amis[s1][0] || rep.Findings[0].Action != "would-revoke" {
				t.Errorf("sandbox account: the share with the stranger is a violation: %+v", a)
			}
		}
	}
}

// policy validate --account: the effective policy and the overrides, in
// order, from --ou-path (no AWS) or from Organizations (--org).
func TestPolicyValidateAccount(t *testing.T) {
	doc := `version: 1
retention:
  grace_days: 7
overrides:
  - name: sandboxes
    ous: [ou-ab12-sandbox01]
    retention: {grace_days: 1}
  - name: workloads
    ous: [ou-ab12-workload1]
    retention: {grace_days: 3, max_gib_per_run: 10}
  - name: publishing
    accounts: ["111122223333"]
    sharing: {allowed_accounts: ["444455556666"]}
`
	pol := writePolicy(t, doc)
	env, calls := noAWS(t)
	r := runCLI(t, env, "policy", "validate", pol, "--account", "111122223333", "--ou-path", "r-ab12,ou-ab12-workload1,ou-ab12-sandbox01", "--output", "json")
	if r.code != 0 {
		t.Fatalf("validate --account: %s", r)
	}
	var eff struct {
		Account   string   `json:"account"`
		Path      []string `json:"path"`
		Overrides []string `json:"overrides"`
		Policy    struct {
			Sharing struct {
				AllowedAccounts []string `json:"allowed_accounts"`
			}
			Retention struct {
				GraceDays    int `json:"grace_days"`
				MaxGiBPerRun int `json:"max_gib_per_run"`
			}
			Overrides []any `json:"overrides"`
		} `json:"policy"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &eff); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	if eff.Account != "111122223333" || !slices.Equal(eff.Overrides, []string{"workloads", "sandboxes", "publishing"}) ||
		eff.Policy.Retention.GraceDays != 1 || eff.Policy.Retention.MaxGiBPerRun != 10 ||
		!slices.Equal(eff.Policy.Sharing.AllowedAccounts, []string{"444455556666"}) || eff.Policy.Overrides != nil {
		t.Errorf("effective policy: %+v\n%s", eff, r)
	}

	r = runCLI(t, env, "policy", "validate", pol, "--account", "999999999999")
	for _, w := range []string{"valid (tagging, sharing audit, retention audit, 3 overrides)", "Effective policy for account 999999999999 (OU path unknown",
		"Overrides applied, in order: none", "grace_days: 7"} {
		if r.code != 0 || !strings.Contains(r.stdout, w) {
			t.Errorf("validate --account without a path lacks %q: %s", w, r)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("validate with --ou-path called AWS %d times", n)
	}

	// --org reads the path from Organizations.
	f := newOrgFixture(t)
	orgDoc := strings.NewReplacer("ou-ab12-sandbox01", f.sandbox, "ou-ab12-workload1", f.workload, "111122223333", f.ids["sandbox-1"]).Replace(doc)
	r = runCLI(t, f.env(), "policy", "validate", writePolicy(t, orgDoc), "--account", f.ids["sandbox-1"], "--org")
	if r.code != 0 || !strings.Contains(r.stdout, "OU path "+f.root+" / "+f.workload+" / "+f.sandbox) ||
		!strings.Contains(r.stdout, "Overrides applied, in order: workloads, sandboxes, publishing") || !strings.Contains(r.stdout, "grace_days: 1") {
		t.Errorf("validate --account --org: %s", r)
	}
}

// Bad usage across accounts is decided before anything is called.
func TestAccountsBadUsageCallsNothing(t *testing.T) {
	badOverride := writePolicy(t, "version: 1\noverrides:\n  - name: sandboxes\n    ous: [ou-ab12-sandbox01]\n    retention: {grace_days: 400}\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad account", []string{"plan", "--accounts", "123"}, `--accounts: "123" is not a 12-digit account ID`},
		{"account twice", []string{"plan", "--accounts", "111122223333,111122223333"}, "--accounts: 111122223333 is given twice"},
		{"bad OU", []string{"audit-sharing", "--ou", "ou-x"}, `--ou: "ou-x" is neither an OU id`},
		{"OU ARN", []string{"apply", "--ou", "arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-ab12-cdefgh34"}, "is neither an OU id"},
		{"bad role name", []string{"plan", "--accounts", "111122223333", "--role-name", "a/b"}, `--role-name: "a/b" is not an IAM role name`},
		{"role name alone", []string{"plan", "--role-name", "x"}, "--role-name needs --accounts or --ou"},
		{"external id alone", []string{"audit-sharing", "--member-external-id", "x"}, "--member-external-id needs --accounts or --ou"},
		{"no role name", []string{"plan", "--accounts", "111122223333"}, "--role-name is required with --accounts or --ou"},
		{"bad override", []string{"plan", "--policy", badOverride, "--accounts", "111122223333", "--role-name", "r"}, "/overrides/0 (sandboxes)/retention/grace_days: 400 is out of range"},
		{"apply: no account's policy enforces", []string{"apply", "--accounts", "111122223333", "--role-name", "r", "--yes", "--records-key", "alias/k"}, `retention.mode is "audit"`},
		{"validate: --ou-path without --account", []string{"policy", "validate", badOverride, "--ou-path", "r-ab12"}, "--ou-path and --org need --account"},
		{"validate: path not from the root", []string{"policy", "validate", badOverride, "--account", "111122223333", "--ou-path", "ou-ab12-sandbox01"}, "the path starts with the root id"},
		{"validate: both path sources", []string{"policy", "validate", badOverride, "--account", "111122223333", "--ou-path", "r-ab12", "--org"}, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, calls := noAWS(t)
			r := runCLI(t, env, tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want exit 2 and %q: %s", tc.want, r)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("%d AWS calls before the usage was decided", n)
			}
		})
	}
}

// On a terminal, apply across accounts shows each account's changes and
// asks for each in turn: an account answered no is left as it is, the
// next one is applied, and the command exits 1 saying which was not.
func TestAccountsApplyAsksPerAccount(t *testing.T) {
	f := newOrgFixture(t)
	key, err := f.moto.RecordsKeyEnv(context.Background(), motoRegion)
	if err != nil {
		t.Fatal(err)
	}
	pol := writePolicy(t, orgPolicyDoc(f, "enforce"))
	first, second := f.ids["sandbox-1"], f.ids["sandbox-2"]
	if second < first {
		first, second = second, first
	}
	// Straight to moto: both sandbox accounts are reachable here.
	r := runOnTerminal(t, append(f.moto.Env(motoRegion), key), strings.NewReader("n\ny\n"),
		"apply", "--policy", pol, "--role-name", memberRole, "--accounts", first+","+second)
	if r.code != 1 {
		t.Fatalf("apply with one account declined: want exit 1\n%s", r)
	}
	for _, id := range []string{first, second} {
		q := "Apply this plan in us-east-1 (account " + id + ")? [y/N]"
		if !strings.Contains(r.stdout, q) {
			t.Errorf("no question for account %s:\n%s", id, r)
		}
	}
	if got := f.images(t, first); !slices.Equal(got, f.amis[first]) {
		t.Errorf("account %s, answered no, changed: %v", first, got)
	}
	if got := f.images(t, second); len(got) != 0 {
		t.Errorf("account %s, answered yes, still has %v", second, got)
	}
	if !strings.Contains(r.stderr, "account "+first+" not applied: Apply this plan in us-east-1 (account "+first+")?: not confirmed; nothing changed") ||
		!strings.Contains(r.stderr, "1 account(s) not applied: "+first) {
		t.Errorf("stderr does not say which account was not applied:\n%s", r)
	}
}

// Without --accounts or --ou, the caller's own account runs with the
// overrides naming it (no Organizations call: none is by OU), in plan and
// explain alike, and the output says which applied.
func TestOwnAccountRunsWithItsOverrides(t *testing.T) {
	f := newCleanupFleet(t)
	doc := emulator.FleetPolicy("audit") + `overrides:
  - name: home
    accounts: ["123456789012"]
    retention:
      rules:
        - {name: everything, keep_newest: 0, min_age_days: 0, keep_launched_within_days: 0}
`
	pol := writePolicy(t, doc)
	r := runCLI(t, f.env(), "plan", "--policy", pol, "--output", "json")
	if r.code != 0 {
		t.Fatalf("plan: %s", r)
	}
	reps := parseReports(t, r)
	for _, d := range reps[0].Plan.Decisions {
		if d.ImageID == emulator.FleetAMINoRule && (d.Action != cleanup.ActionDeregister || d.Rule != "everything") {
			t.Errorf("%s under the account's override: %s by rule %q (%q), want deregister by everything", d.ImageID, d.Action, d.Rule, d.Reasons)
		}
	}
	r = runCLI(t, f.env(), "explain", emulator.FleetAMINoRule, "--policy", pol)
	if r.code != 0 || !strings.Contains(r.stdout, "Policy for account 123456789012: the document's overrides home applied") || !strings.Contains(r.stdout, "deregister") {
		t.Errorf("explain under the account's override: %s", r)
	}
	// The same document without the override keeps it, as before.
	r = runCLI(t, f.env(), "explain", emulator.FleetAMINoRule, "--policy", writePolicy(t, emulator.FleetPolicy("audit")))
	if r.code != 0 || strings.Contains(r.stdout, "overrides") || !strings.Contains(r.stdout, "no retention rule matches") {
		t.Errorf("explain without overrides: %s", r)
	}
}
