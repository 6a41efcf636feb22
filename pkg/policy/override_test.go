package policy

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Organization used by the override tests: root r-root, OU
// ou-root-workload1 under it, ou-root-sandbox1 under that.
const (
	ouRoot     = "r-root"
	ouWorkload = "ou-root-workload1"
	ouSandbox  = "ou-root-sandbox1"
	acctSand   = "111111111111"
	acctPub    = "222222222222"
	acctOther  = "333333333333"
)

var sandboxPath = []string{ouRoot, ouWorkload, ouSandbox}

// orgPolicy has overrides at every level, declared out of path order on
// purpose: the order they apply in is the path's, not the document's.
const orgPolicy = `version: 1
tagging:
  static_tags: {cost-center: "100", managed-by: ami-housekeeper}
  overwrite: [cost-center]
sharing:
  mode: enforce
  allowed_accounts: ["444444444444"]
  exceptions: {max_days: 30, allowed_principals: ["444444444444"]}
retention:
  mode: enforce
  grace_days: 7
  in_use: {ssm_parameters: ["/amis/*"]}
  stages: {deprecate: true}
  rules:
    - {name: all, keep_newest: 3}
overrides:
  - name: account-pub
    accounts: ["` + acctPub + `"]
    sharing:
      allowed_accounts: ["444444444444", "555555555555"]
  - name: sandboxes
    ous: [` + ouSandbox + `]
    retention:
      grace_days: 1
      stages: {disable: true}
      rules:
        - {name: sandbox, keep_newest: 1, min_age_days: 3}
  - name: workloads
    ous: [` + ouWorkload + `]
    retention:
      grace_days: 3
      in_use: {launch_template_versions: [all]}
  - name: everyone
    ous: [` + ouRoot + `]
    tagging:
      static_tags: {cost-center: "200"}
    sharing:
      exceptions: {max_days: 10}
  - name: sandbox-account
    accounts: ["` + acctSand + `"]
    ous: [` + ouSandbox + `]
    retention:
      mode: audit
  - name: sandboxes-too
    ous: [` + ouSandbox + `]
    retention:
      keep_shared: false
`

func parseOrgPolicy(t *testing.T) *Policy {
	t.Helper()
	p, err := Parse([]byte(orgPolicy), "org.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestForMergesOverridesInPathOrder(t *testing.T) {
	p := parseOrgPolicy(t)
	before, _ := json.Marshal(p)
	base := *p
	base.Overrides = nil

	tests := []struct {
		name    string
		account string
		path    []string
		applied []string
		check   func(t *testing.T, e *Policy)
	}{
		{
			name: "no override applies: the base, without overrides", account: acctOther, path: []string{"r-other"},
			check: func(t *testing.T, e *Policy) {
				if !reflect.DeepEqual(*e, base) {
					t.Errorf("got %+v\nwant the base %+v", *e, base)
				}
			},
		},
		{
			// root (everyone) -> workload (workloads) -> sandbox (sandboxes,
			// sandboxes-too in document order) -> the account
			// (sandbox-account, which names the sandbox OU too but applies
			// once, at its most specific match).
			name: "root to leaf, then the account", account: acctSand, path: sandboxPath,
			applied: []string{"everyone", "workloads", "sandboxes", "sandboxes-too", "sandbox-account"},
			check: func(t *testing.T, e *Policy) {
				r := e.Retention
				if r.GraceDays != 1 {
					t.Errorf("grace_days = %d, want 1: the sandbox OU is below the workload OU", r.GraceDays)
				}
				if r.Mode != ModeAudit {
					t.Errorf("mode = %s, want audit from the account's override", r.Mode)
				}
				if r.KeepShared {
					t.Error("keep_shared = true, want false from sandboxes-too")
				}
				if want := []Rule{{Name: "sandbox", KeepNewest: 1, MinAgeDays: 3, KeepLaunchedWithinDays: 30}}; !reflect.DeepEqual(r.Rules, want) {
					t.Errorf("rules = %+v, want the override's list, replacing the base's: %+v", r.Rules, want)
				}
				// Objects merge field by field: each override sets one
				// field and keeps the others.
				if !r.Stages.Deprecate || !r.Stages.Disable {
					t.Errorf("stages = %+v, want deprecate from the base and disable from sandboxes", r.Stages)
				}
				if !slices.Equal(r.InUse.LaunchTemplateVersions, []LaunchTemplateVersion{LaunchTemplateAll}) || !slices.Equal(r.InUse.SSMParameters, []string{"/amis/*"}) {
					t.Errorf("in_use = %+v, want versions from workloads and parameters from the base", r.InUse)
				}
				if e.Sharing.Exceptions.MaxDays != 10 || !slices.Equal(e.Sharing.Exceptions.AllowedPrincipals, []string{"444444444444"}) {
					t.Errorf("exceptions = %+v, want max_days 10 from everyone, principals from the base", e.Sharing.Exceptions)
				}
				if want := map[string]string{"cost-center": "200", "managed-by": "ami-housekeeper"}; !reflect.DeepEqual(e.Tagging.StaticTags, want) {
					t.Errorf("static_tags = %v, want %v", e.Tagging.StaticTags, want)
				}
				if len(e.Overrides) != 0 {
					t.Errorf("the effective policy has overrides of its own: %+v", e.Overrides)
				}
			},
		},
		{
			name: "an account override applies after the OU ones, though declared first", account: acctPub, path: []string{ouRoot, ouWorkload},
			applied: []string{"everyone", "workloads", "account-pub"},
			check: func(t *testing.T, e *Policy) {
				if !slices.Equal(e.Sharing.AllowedAccounts, []string{"444444444444", "555555555555"}) {
					t.Errorf("allowed_accounts = %v, want the override's list", e.Sharing.AllowedAccounts)
				}
				if e.Retention.GraceDays != 3 || e.Retention.Mode != ModeEnforce {
					t.Errorf("retention = %+v, want grace 3 from workloads, mode enforce from the base", e.Retention)
				}
			},
		},
		{
			name: "path unknown: only the overrides naming the account", account: acctPub, path: nil,
			applied: []string{"account-pub"},
			check: func(t *testing.T, e *Policy) {
				if e.Retention.GraceDays != 7 || e.Sharing.Exceptions.MaxDays != 30 {
					t.Errorf("an OU override applied without a path: %+v", e)
				}
			},
		},
		{
			name: "an override naming the account applies without its OU on the path", account: acctSand, path: []string{ouRoot},
			applied: []string{"everyone", "sandbox-account"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := p.For(tt.account, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Applied(); !slices.Equal(got, tt.applied) {
				t.Errorf("applied %q, want %q", got, tt.applied)
			}
			var names []string
			for _, o := range p.OverridesFor(tt.account, tt.path) {
				names = append(names, o.Name)
			}
			if !slices.Equal(names, tt.applied) {
				t.Errorf("OverridesFor = %q, want %q", names, tt.applied)
			}
			if err := e.Validate(); err != nil {
				t.Errorf("effective policy invalid: %v", err)
			}
			if tt.check != nil {
				tt.check(t, e)
			}
		})
	}
	if after, _ := json.Marshal(p); string(after) != string(before) {
		t.Fatalf("For changed the policy it was called on:\n%s\n%s", before, after)
	}
}

// An effective policy shares nothing with the base: changing one leaves
// the other as it was.
func TestForReturnsACopy(t *testing.T) {
	p := parseOrgPolicy(t)
	e, err := p.For(acctSand, sandboxPath)
	if err != nil {
		t.Fatal(err)
	}
	e.Tagging.StaticTags["cost-center"] = "x"
	e.Sharing.AllowedAccounts[0] = "x"
	e2, err := p.For(acctSand, sandboxPath)
	if err != nil {
		t.Fatal(err)
	}
	if e2.Tagging.StaticTags["cost-center"] != "200" || p.Tagging.StaticTags["cost-center"] != "100" || p.Sharing.AllowedAccounts[0] != "444444444444" {
		t.Fatalf("effective policies share state: %v %v %v", e2.Tagging.StaticTags, p.Tagging.StaticTags, p.Sharing.AllowedAccounts)
	}
}

// A dry run or an engaged kill switch forces audit; an override saying
// enforce must not undo it.
func TestForKeepsForcedAudit(t *testing.T) {
	p, err := Parse([]byte(`version: 1
overrides:
  - name: pilot
    accounts: ["`+acctPub+`"]
    tagging: {mode: enforce}
    sharing: {mode: enforce}
    retention: {mode: enforce}
`), "pilot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := p.For(acctPub, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Retention.Mode != ModeEnforce || e.Sharing.Mode != ModeEnforce {
		t.Fatalf("the pilot override does not apply: %+v", e)
	}
	forced := *p // as coldstart copies it when the kill switch is engaged
	forced.ForceAudit()
	e, err = forced.For(acctPub, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Tagging.Mode != ModeAudit || e.Sharing.Mode != ModeAudit || e.Retention.Mode != ModeAudit {
		t.Fatalf("an override undid ForceAudit: tagging %s, sharing %s, retention %s", e.Tagging.Mode, e.Sharing.Mode, e.Retention.Mode)
	}
	if p.Retention.Mode != ModeAudit {
		t.Fatal("the base's default mode changed")
	}
	if e, _ = p.For(acctPub, nil); e.Retention.Mode != ModeEnforce {
		t.Fatal("ForceAudit on a copy changed the original")
	}
}

func TestForRefusesBadInput(t *testing.T) {
	p := parseOrgPolicy(t)
	for _, tt := range []struct {
		account string
		path    []string
		want    string
	}{
		{"12345", nil, `account "12345": not a 12-digit account ID`},
		{acctSand, []string{ouRoot, "arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-ab12-cdefgh34"}, `OU path entry 1 "arn:aws:organizations::`},
		{acctSand, []string{""}, `OU path entry 0 ""`},
	} {
		if _, err := p.For(tt.account, tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("For(%q, %q) = %v, want an error containing %q", tt.account, tt.path, err, tt.want)
		}
	}
	// A Go value that skipped validation fails in For rather than runs.
	bad := Default()
	bad.Overrides = []Override{{Name: "x", Accounts: []string{acctSand}, Retention: map[string]any{"in_use": map[string]any{"launch_template_versions": []any{"default"}}}}}
	var ve *ValidationError
	if _, err := bad.For(acctSand, nil); !errors.As(err, &ve) || !strings.Contains(err.Error(), `account 111111111111 with overrides x is invalid: /retention/in_use/launch_template_versions: must include "asg"`) {
		t.Errorf("For with an invalid override = %v", err)
	}
	bad.Overrides[0].Retention = map[string]any{"grace_day": 1}
	if _, err := bad.For(acctSand, nil); err == nil || !strings.Contains(err.Error(), `unknown field "grace_day"`) {
		t.Errorf("For with an unknown field = %v", err)
	}
}

// TestOverrideValidation: every problem in an override is reported at its
// path under /overrides/<index>, with the override's name, and says what
// is allowed.
func TestOverrideValidation(t *testing.T) {
	const head = "version: 1\ntagging:\n  static_tags: {team: web}\nretention:\n  protect_tag: keep\noverrides:\n  - name: ok\n    accounts: [\"111111111111\"]\n    retention: {grace_days: 3}\n"
	tests := []struct {
		name     string
		override string // the second override, as YAML under "  - "
		want     string // its problem, as Problem.String renders it
	}{
		{"schema: out of range", "name: sandboxes\n    ous: [ou-root-sandbox1]\n    retention: {grace_days: 400}",
			"/overrides/1 (sandboxes)/retention/grace_days: 400 is out of range; allowed: 0..365"},
		{"schema: unknown field in a section", "name: s\n    ous: [ou-root-sandbox1]\n    retention: {grace_day: 4}",
			`/overrides/1 (s)/retention: unknown key "grace_day"; allowed keys: "delete_unproven_snapshots"`},
		{"schema: unknown field in the override", "name: s\n    account: [\"111111111111\"]\n    retention: {grace_days: 4}",
			`/overrides/1 (s): unknown key "account"; allowed keys: "accounts", "name", "ous", "retention", "sharing", "tagging"`},
		{"schema: wrong type", "name: s\n    accounts: [\"111111111111\"]\n    sharing: {allow_public: \"no\"}",
			`/overrides/1 (s)/sharing/allow_public: "no" has type string; allowed: boolean`},
		{"schema: missing name", "accounts: [\"111111111111\"]\n    retention: {grace_days: 4}",
			`/overrides/1: missing required key(s) "name"`},
		{"schema: bad name is not shown as a label", "name: \"san boxes\"\n    accounts: [\"111111111111\"]\n    retention: {grace_days: 4}",
			`/overrides/1/name: "san boxes" does not match`},
		{"schema: bad OU id", "name: s\n    ous: [ou-x]\n    retention: {grace_days: 4}",
			`/overrides/1 (s)/ous/0: "ou-x" does not match ^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$; allowed: an OU id such as "ou-ab12-cdefgh34"`},
		{"schema: unquoted account id", "name: s\n    accounts: [111111111111]\n    retention: {grace_days: 4}",
			`/overrides/1 (s)/accounts/0: 111111111111 has type number; allowed: string (YAML reads unquoted digits`},
		{"duplicate name", "name: ok\n    accounts: [\"222222222222\"]\n    retention: {grace_days: 4}",
			`/overrides/1 (ok)/name: "ok" is already the name of /overrides/0; allowed: a unique name`},
		{"no target", "name: s\n    retention: {grace_days: 4}",
			`/overrides/1 (s): names no OU and no account, so it applies nowhere; allowed: ous`},
		{"empty targets", "name: s\n    ous: []\n    accounts: []\n    retention: {grace_days: 4}",
			`/overrides/1 (s): names no OU and no account`},
		{"sets nothing", "name: s\n    accounts: [\"111111111111\"]\n    retention: {}",
			`/overrides/1 (s): sets nothing; allowed: at least one field of tagging, sharing or retention`},
		{"tag prefix", "name: s\n    accounts: [\"111111111111\"]\n    tagging: {prefix: \"acme:\"}",
			`/overrides/1 (s)/tagging/prefix: cannot be set in an override: the tag keys the tagger writes are the condition (aws:TagKeys) of its IAM permission to tag, written once at deployment for every account; allowed: set it at the top level (/tagging/prefix)`},
		{"tag key names", "name: s\n    accounts: [\"111111111111\"]\n    tagging: {keys: {created_by: owner}}",
			`/overrides/1 (s)/tagging/keys: cannot be set in an override: the tag keys the tagger writes`},
		{"copied tag keys", "name: s\n    accounts: [\"111111111111\"]\n    tagging: {copy_from_source: [team]}",
			`/overrides/1 (s)/tagging/copy_from_source: cannot be set in an override: the tag keys`},
		{"protect tag", "name: s\n    accounts: [\"111111111111\"]\n    retention: {protect_tag: other}",
			`/overrides/1 (s)/retention/protect_tag: cannot be set in an override: the protect tag is the condition of the cleanup's IAM deny`},
		{"a static tag the top level lacks", "name: s\n    accounts: [\"111111111111\"]\n    tagging: {static_tags: {team: db, owner: x}}",
			`/overrides/1 (s)/tagging/static_tags/owner: "owner" is not a key of /tagging/static_tags: an override may give a static tag another value, not add one (the tag keys the tagger writes are the condition (aws:TagKeys) of its IAM permission to tag, written once at deployment for every account); allowed: "team" (add other keys at the top level)`},
		{"merged: launch template versions without asg", "name: s\n    accounts: [\"111111111111\"]\n    retention: {in_use: {launch_template_versions: [default]}}",
			`/overrides/1 (s)/retention/in_use/launch_template_versions: must include "asg"`},
		{"merged: time lock tag equal to the top level's protect tag", "name: s\n    accounts: [\"111111111111\"]\n    retention: {time_lock_tag: keep}",
			`/overrides/1 (s)/retention/time_lock_tag: "keep" is also protect_tag`},
		{"merged: overwrite of a key the tagger does not write", "name: s\n    accounts: [\"111111111111\"]\n    tagging: {overwrite: [owner]}",
			`/overrides/1 (s)/tagging/overwrite/0: "owner" is not a tag the tagger writes`},
		{"merged: duplicate rule names in the override's list", "name: s\n    accounts: [\"111111111111\"]\n    retention: {rules: [{name: a}, {name: a}]}",
			`/overrides/1 (s)/retention/rules/1/name: "a" is already the name of /retention/rules/0`},
		{"merged: a bad regex in the override's rule", "name: s\n    accounts: [\"111111111111\"]\n    retention: {rules: [{name: a, family: {name_pattern: '^web-$'}}]}",
			`/overrides/1 (s)/retention/rules/0/family/name_pattern: "^web-$" has 0 capture groups`},
		{"merged: snapshot wait out of range", "name: s\n    accounts: [\"111111111111\"]\n    tagging: {snapshot_wait: 2m}",
			`/overrides/1 (s)/tagging/snapshot_wait: "2m0s" is out of range`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(head+"  - "+tt.override+"\n"), "org.yaml")
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want *ValidationError, got %v", err)
			}
			var lines []string
			for _, p := range ve.Problems {
				lines = append(lines, p.String())
				if !strings.Contains(p.Message, "allowed") {
					t.Errorf("problem %q does not say what is allowed", p)
				}
				if !strings.HasPrefix(p.Path, "/overrides/1") {
					t.Errorf("problem %q is not in the second override", p)
				}
			}
			if len(lines) != 1 || !strings.HasPrefix(lines[0], tt.want) {
				t.Errorf("problems:\n  %s\nwant one, starting with\n  %s", strings.Join(lines, "\n  "), tt.want)
			}
		})
	}
}

// An override's problem reads as the brief shows it in the whole message,
// and the JSON form keeps Path a JSON pointer with the name beside it.
func TestOverrideProblemFormat(t *testing.T) {
	doc := "version: 1\noverrides:\n  - name: ok\n    accounts: [\"111111111111\"]\n    retention: {grace_days: 3}\n  - name: sandboxes\n    ous: [ou-root-sandbox1]\n    retention: {grace_days: -1}\n"
	_, err := Parse([]byte(doc), "policy.yaml")
	const want = `policy from policy.yaml is invalid: /overrides/1 (sandboxes)/retention/grace_days: -1 is out of range; allowed: 0..365`
	if err == nil || err.Error() != want {
		t.Fatalf("error =\n%v\nwant\n%s", err, want)
	}
	var ve *ValidationError
	errors.As(err, &ve)
	b, _ := json.Marshal(ve.Problems[0])
	if got := string(b); got != `{"Path":"/overrides/1/retention/grace_days","Value":-1,"Message":"-1 is out of range; allowed: 0..365","Override":"sandboxes"}` {
		t.Errorf("JSON problem = %s", got)
	}
	if s := (Problem{Path: "/tagging/mode", Message: "m"}).String(); s != "/tagging/mode: m" {
		t.Errorf("a problem outside the overrides = %q", s)
	}
	if s := (Problem{Path: "/overrides/2", Override: "x", Message: "m"}).String(); s != "/overrides/2 (x): m" {
		t.Errorf("a problem at the override = %q", s)
	}
}

// The top level's own problems are reported once, at the top level, not
// again under every override.
func TestOverrideDoesNotRepeatTopLevelProblems(t *testing.T) {
	doc := "version: 1\nretention:\n  protect_tag: k\n  time_lock_tag: k\noverrides:\n  - name: a\n    accounts: [\"111111111111\"]\n    retention: {grace_days: 3}\n"
	_, err := Parse([]byte(doc), "p.yaml")
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Path != "/retention/time_lock_tag" {
		t.Fatalf("want one problem at /retention/time_lock_tag, got %v", err)
	}
}

// The fields an override may set are such that any sequence of valid
// overrides gives a valid policy, so For never fails on a validated
// policy whatever an account's path: every subset, in every order.
func TestAnyCombinationOfValidOverridesIsValid(t *testing.T) {
	p := parseOrgPolicy(t)
	n := len(p.Overrides)
	var permute func(prefix []Override, rest []Override)
	count := 0
	permute = func(prefix []Override, rest []Override) {
		e, err := p.with(prefix)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("overrides %q in this order give an invalid policy: %v", e.Applied(), err)
		}
		count++
		for i := range rest {
			next := append(slices.Clone(prefix), rest[i])
			permute(next, append(slices.Clone(rest[:i]), rest[i+1:]...))
		}
	}
	permute(nil, p.Overrides)
	if n != 6 || count < 1957 { // sum over k of 6!/(6-k)!
		t.Fatalf("checked %d sequences of %d overrides", count, n)
	}
}

func TestVariants(t *testing.T) {
	p := parseOrgPolicy(t)
	vs, err := p.Variants()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1+len(p.Overrides) || vs[0].Applied() != nil || len(vs[0].Overrides) != 0 {
		t.Fatalf("variants %d, first applied %q", len(vs), vs[0].Applied())
	}
	graces := map[int]bool{}
	for i, v := range vs[1:] {
		if got := v.Applied(); !slices.Equal(got, []string{p.Overrides[i].Name}) {
			t.Errorf("variant %d applied %q", i+1, got)
		}
		graces[v.Retention.GraceDays] = true
	}
	// Every grace_days an account can have: 7 (base), 1 (sandboxes), 3.
	if !graces[1] || !graces[3] || !graces[7] {
		t.Errorf("grace days across variants %v", graces)
	}
}

// The policy digest is of the document's bytes, overrides included: an
// override edited outside a deployment is refused like any other change.
func TestDigestCoversOverrides(t *testing.T) {
	edited := strings.Replace(orgPolicy, "grace_days: 1\n", "grace_days: 0\n", 1)
	if edited == orgPolicy {
		t.Fatal("the edit did not apply")
	}
	if Digest([]byte(edited)) == Digest([]byte(orgPolicy)) {
		t.Fatal("the digest does not change with an override")
	}
	env := map[string]string{EnvInline: edited, EnvDigest: Digest([]byte(orgPolicy))}
	_, _, err := Load(t.Context(), func(k string) string { return env[k] }, nil)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Load of a policy whose override changed = %v, want ErrDigestMismatch", err)
	}
}

// A parsed policy with overrides encodes to JSON that parses back to the
// same value (the CDK app and the CLI print it).
func TestOverridesRoundTrip(t *testing.T) {
	p := parseOrgPolicy(t)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b, "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(p, back) {
		t.Fatalf("round trip changed the policy:\n%+v\n%+v", p.Overrides, back.Overrides)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}
