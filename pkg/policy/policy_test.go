package policy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixtures is where the policy documents used by the tests live.
const fixtures = "../../testdata/policies"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return data
}

func mustParse(t *testing.T, name string) *Policy {
	t.Helper()
	p, err := Parse(readFixture(t, name), name)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return p
}

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v, want nil", err)
	}
	// Each call must return fresh maps and slices: callers mutate them.
	a, b := Default(), Default()
	a.Tagging.StaticTags["x"] = "y"
	a.Retention.InUse.LaunchTemplateVersions[0] = LaunchTemplateAll
	if len(b.Tagging.StaticTags) != 0 || b.Retention.InUse.LaunchTemplateVersions[0] != LaunchTemplateDefault {
		t.Fatalf("Default() shares state between calls: %+v", b)
	}
}

func TestParseValidFixtures(t *testing.T) {
	minimal := mustParse(t, "minimal.yaml")
	if !reflect.DeepEqual(minimal, Default()) {
		t.Errorf("minimal.yaml = %+v\nwant Default() = %+v", minimal, Default())
	}

	fullYAML := mustParse(t, "full.yaml")
	fullJSON := mustParse(t, "full.json")
	if !reflect.DeepEqual(fullYAML, fullJSON) {
		t.Errorf("full.yaml and full.json differ:\nyaml: %+v\njson: %+v", fullYAML, fullJSON)
	}
	if err := fullYAML.Validate(); err != nil {
		t.Errorf("full.yaml parsed, but Validate() = %v", err)
	}

	keepShared := true
	checks := []struct {
		name      string
		got, want any
	}{
		{"tagging mode", fullYAML.Tagging.Mode, ModeAudit},
		{"generated key", fullYAML.Tagging.Key(fullYAML.Tagging.Keys.CreatedAt), "acme:at"},
		{"static tag kept as string", fullYAML.Tagging.StaticTags["cost-center"], "4711"},
		{"snapshot wait", fullYAML.Tagging.SnapshotWait.Duration, 30 * time.Second},
		{"sharing mode", fullYAML.Sharing.Mode, ModeEnforce},
		{"accounts", fullYAML.Sharing.AllowedAccounts, []string{"111122223333", "444455556666"}},
		{"price", fullYAML.Retention.PricePerGiBMonth, 0.0125},
		{"launch template versions replace the default list", fullYAML.Retention.InUse.LaunchTemplateVersions, []LaunchTemplateVersion{LaunchTemplateAll}},
		{"keep_shared false overrides true default", fullYAML.Retention.KeepShared, false},
		{"rule count", len(fullYAML.Retention.Rules), 3},
		{"rule 0 keep_shared override", fullYAML.Retention.Rules[0].KeepShared, &keepShared},
		{"rule 0 name_pattern (YAML single quotes keep the backslash)", fullYAML.Retention.Rules[0].Family.NamePattern, `^(.*)-\d+$`},
		{"rule 0 match tags", fullYAML.Retention.Rules[0].Match.Tags, map[string]string{"team": "web", "env": "*"}},
		{"rule 0 explicit zero", fullYAML.Retention.Rules[0].KeepLaunchedWithinDays, 0},
		{"rule 1 explicit zero min age", fullYAML.Retention.Rules[1].MinAgeDays, 0},
		{"rule 2 takes the per-rule defaults", fullYAML.Retention.Rules[2], Rule{Name: "everything-else", KeepNewest: 3, MinAgeDays: 14, KeepLaunchedWithinDays: 30}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("full.yaml %s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestParsePartialSectionKeepsOtherDefaults(t *testing.T) {
	p, err := Parse([]byte("version: 1\ntagging:\n  keys:\n    created_by: owner\n"), "inline")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Tagging.Keys.CreatedBy = "owner"
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v\nwant %+v", p, want)
	}
}

// TestParseBadFixtures checks one fixture per kind of error: the error is a
// *ValidationError naming the origin, and its first problem points at the
// offending field, carries the bad value and says what is allowed.
func TestParseBadFixtures(t *testing.T) {
	tests := []struct {
		file      string
		path      string
		value     any
		inMessage []string
		problems  int
	}{
		{"bad-unknown-top-level-key.yaml", "", "taging", []string{`unknown key "taging"`, `"tagging"`, `"retention"`}, 1},
		{"bad-unknown-nested-key.yaml", "/tagging", "prefixx", []string{`unknown key "prefixx"`, `allowed keys:`, `"prefix"`, `"snapshot_wait"`}, 1},
		{"bad-wrong-type.yaml", "/retention/grace_days", "seven", []string{`"seven" has type string`, "allowed: integer"}, 1},
		{"bad-enum.yaml", "/tagging/mode", "enforced", []string{`"enforced" is not allowed; allowed: "audit", "enforce"`}, 1},
		{"bad-account-id.yaml", "/sharing/allowed_accounts/0", "12345678901", []string{`"12345678901"`, "12-digit AWS account ID"}, 1},
		{"bad-org-arn.yaml", "/sharing/allowed_organizations/0", "arn:aws:organizations::111122223333:organization/o-short", []string{"o-short", "organization ARN such as"}, 1},
		{"bad-ou-arn.yaml", "/sharing/allowed_organizational_units/0", "arn:aws:organizations::111122223333:organization/o-a1b2c3d4e5", []string{"OU ARN such as"}, 1},
		{"bad-duration.yaml", "/tagging/snapshot_wait", "10 seconds", []string{`"10 seconds"`, `Go duration such as "10s"`}, 1},
		{"bad-duration-range.yaml", "/tagging/snapshot_wait", "2m0s", []string{`"2m0s" is out of range`, `"0s".."60s"`}, 1},
		{"bad-out-of-range.yaml", "/retention/grace_days", int64(400), []string{"400 is out of range", "allowed: 0..365"}, 1},
		{"bad-regex.yaml", "/retention/rules/0/family/name_pattern", "^(web-[0-9+$", []string{"does not compile", "missing closing ]", "exactly one capture group"}, 1},
		{"bad-regex-no-capture.yaml", "/retention/rules/0/family/name_pattern", "^web-[0-9]+$", []string{"has 0 capture groups", "exactly one capture group"}, 1},
		{"bad-glob.yaml", "/retention/rules/0/match/name", "web-[0-9", []string{"not a valid glob", "path.Match syntax"}, 1},
		{"bad-family-both.yaml", "/retention/rules/0/family", map[string]any{"tag": "family", "name_pattern": "^(.*)-[0-9]+$"}, []string{"2 keys set", `exactly 1 of "name_pattern", "tag"`}, 1},
		{"bad-duplicate-rule-names.yaml", "/retention/rules/2/name", "web", []string{`"web" is already the name of /retention/rules/0`, "unique name"}, 1},
		{"bad-rule-name.yaml", "/retention/rules/0/name", "web base", []string{`"web base" does not match`, "letters, digits"}, 1},
		{"bad-rule-missing-name.yaml", "/retention/rules/0", nil, []string{`missing required key(s) "name"`}, 1},
		{"bad-aws-static-tag.yaml", "/tagging/static_tags/AWS:team", "AWS:team", []string{`"AWS:team" starts with "aws:"`, "case-insensitive"}, 1},
		{"bad-aws-prefix.yaml", "/tagging/prefix", "aws:housekeeper:", []string{`starts with "aws:"`}, 1},
		{"bad-overwrite.yaml", "/tagging/overwrite/0", "created-by", []string{"not a tag the tagger writes", `"ami-housekeeper:created-by"`}, 1},
		{"bad-ssm-parameter.yaml", "/retention/in_use/ssm_parameters/0", "/amis/*/web", []string{`"/amis/*/web" does not match`, `ending in "/*"`}, 1},
		{"bad-launch-template-version.yaml", "/retention/in_use/launch_template_versions/1", "newest", []string{`"newest" is not allowed`, `"default", "latest", "asg", "all"`}, 1},
		{"bad-launch-template-scope.yaml", "/retention/in_use/launch_template_versions", []LaunchTemplateVersion{"default", "latest"}, []string{`must include "asg"`, "Auto Scaling groups"}, 1},
		{"bad-version.yaml", "/version", int64(2), []string{"2 is not allowed; allowed: 1"}, 1},
		{"bad-missing-version.yaml", "", nil, []string{`missing required key(s) "version"`}, 1},
		{"bad-empty.yaml", "", nil, []string{"document is empty", "version: 1"}, 1},
		{"bad-account-id-unquoted.yaml", "/sharing/allowed_accounts/0", int64(111122223333), []string{"has type number; allowed: string", "quote the value"}, 1},
		{"bad-yaml-boolean.yaml", "/tagging/static_tags/backup", true, []string{"has type boolean; allowed: string", "quote the value"}, 1},
		{"bad-exception-principal.yaml", "/sharing/exceptions/allowed_principals/1", "public", []string{`"public" does not match`, "account ID, an organization ARN or an OU ARN", "allow_public"}, 1},
		{"bad-exception-max-days.yaml", "/sharing/exceptions/max_days", int64(3650), []string{"3650 is out of range", "allowed: 0..365"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Parse(readFixture(t, tt.file), tt.file)
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Parse error = %v (%T), want *ValidationError", err, err)
			}
			if verr.Origin != tt.file || !strings.HasPrefix(err.Error(), "policy from "+tt.file+" is invalid: ") {
				t.Errorf("error does not name origin %q: %v", tt.file, err)
			}
			if len(verr.Problems) != tt.problems {
				t.Fatalf("got %d problems, want %d: %v", len(verr.Problems), tt.problems, err)
			}
			p := verr.Problems[0]
			if p.Path != tt.path {
				t.Errorf("Path = %q, want %q", p.Path, tt.path)
			}
			if !reflect.DeepEqual(p.Value, tt.value) {
				t.Errorf("Value = %#v, want %#v", p.Value, tt.value)
			}
			for _, s := range tt.inMessage {
				if !strings.Contains(p.Message, s) {
					t.Errorf("Message %q does not contain %q", p.Message, s)
				}
			}
			if !strings.Contains(p.Message, "allowed") {
				t.Errorf("Message %q does not say what is allowed", p.Message)
			}
		})
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	tests := []struct {
		file  string
		want  []string
		isVal bool
	}{
		{"bad-syntax.yaml", []string{"policy from bad-syntax.yaml", "parsing YAML", "line 6"}, false},
		{"bad-duplicate-key.yaml", []string{"policy from bad-duplicate-key.yaml", `"mode" already set`, "line 6"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Parse(readFixture(t, tt.file), tt.file)
			if err == nil {
				t.Fatal("Parse succeeded, want a syntax error")
			}
			var verr *ValidationError
			if errors.As(err, &verr) {
				t.Fatalf("got *ValidationError for a syntax error: %v", err)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestValidationErrorFormat(t *testing.T) {
	_, err := Parse([]byte("version: 1\ntagging:\n  mode: enforced\n"), "policy.yaml")
	const want = `policy from policy.yaml is invalid: /tagging/mode: "enforced" is not allowed; allowed: "audit", "enforce"`
	if err == nil || err.Error() != want {
		t.Fatalf("error =\n%v\nwant\n%s", err, want)
	}
}

// TestParseListsAllProblemsInOrder feeds a document with many mistakes and
// checks every one is reported, in path order, the same way every time (the
// schema library walks maps in random order).
func TestParseListsAllProblemsInOrder(t *testing.T) {
	var doc strings.Builder
	doc.WriteString("version: 1\nzzz: 1\nretention:\n  grace_days: -1\n  rules:\n")
	for i := 0; i < 11; i++ {
		doc.WriteString("    - {name: r" + string(rune('a'+i)) + ", keep_newest: -1}\n")
	}
	doc.WriteString("tagging:\n  mode: x\n  keys: {created_by: ''}\nsharing:\n  allow_public: 'no'\n")

	wantPaths := []string{
		"",
		"/retention/grace_days",
		"/retention/rules/0/keep_newest", "/retention/rules/1/keep_newest", "/retention/rules/2/keep_newest",
		"/retention/rules/3/keep_newest", "/retention/rules/4/keep_newest", "/retention/rules/5/keep_newest",
		"/retention/rules/6/keep_newest", "/retention/rules/7/keep_newest", "/retention/rules/8/keep_newest",
		"/retention/rules/9/keep_newest", "/retention/rules/10/keep_newest",
		"/sharing/allow_public",
		"/tagging/keys/created_by",
		"/tagging/mode",
	}
	var first string
	for run := 0; run < 20; run++ {
		_, err := Parse([]byte(doc.String()), "many.yaml")
		var verr *ValidationError
		if !errors.As(err, &verr) {
			t.Fatalf("want *ValidationError, got %v", err)
		}
		var paths []string
		for _, p := range verr.Problems {
			paths = append(paths, p.Path)
		}
		if !reflect.DeepEqual(paths, wantPaths) {
			t.Fatalf("problem paths =\n%q\nwant\n%q", paths, wantPaths)
		}
		if lines := strings.Count(err.Error(), "\n"); lines != len(wantPaths) {
			t.Errorf("error has %d continuation lines, want one per problem (%d):\n%v", lines, len(wantPaths), err)
		}
		if run == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("error text changed between runs:\n%s\n---\n%s", first, err)
		}
	}
}

func TestSemanticChecks(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		path string
		in   string
	}{
		{"generated keys collide", "version: 1\ntagging:\n  keys: {created_at: x, created_via: x}\n", "/tagging/keys/created_via", "/tagging/keys/created_at also writes"},
		{"static tag collides with generated key", "version: 1\ntagging:\n  static_tags: {'ami-housekeeper:created-by': me}\n", "/tagging/static_tags/ami-housekeeper:created-by", "also written by /tagging/keys/created_by"},
		{"static tag key too long", "version: 1\ntagging:\n  static_tags: {" + strings.Repeat("k", 129) + ": v}\n", "/tagging/static_tags/" + strings.Repeat("k", 129), "129 characters; allowed: 1..128"},
		{"static tag key from unquoted on", "version: 1\ntagging:\n  static_tags: {on: call}\n", "/tagging/static_tags/true", "unquoted YAML key"},
		{"static tag key with slash is escaped in the path", "version: 1\ntagging:\n  static_tags: {'aws:a/b': v}\n", "/tagging/static_tags/aws:a~1b", `starts with "aws:"`},
		{"copy aws tag", "version: 1\ntagging:\n  copy_from_source: [team, 'aws:cloudformation:stack-name']\n", "/tagging/copy_from_source/1", `starts with "aws:"`},
		{"protect tag reserved", "version: 1\nretention:\n  protect_tag: 'aws:keep'\n", "/retention/protect_tag", `starts with "aws:"`},
		{"exception tag reserved", "version: 1\nsharing:\n  exception_tag: 'Aws:x'\n", "/sharing/exception_tag", `starts with "aws:"`},
		{"protect and time lock tags equal", "version: 1\nretention:\n  protect_tag: keep\n  time_lock_tag: keep\n", "/retention/time_lock_tag", "also protect_tag"},
		{"match tag key empty", "version: 1\nretention:\n  rules:\n    - name: a\n      match: {tags: {'': x}}\n", "/retention/rules/0/match/tags/", "0 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "inline")
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want *ValidationError, got %v", err)
			}
			if len(verr.Problems) != 1 {
				t.Fatalf("want 1 problem, got %v", err)
			}
			if p := verr.Problems[0]; p.Path != tt.path || !strings.Contains(p.Message, tt.in) {
				t.Errorf("problem = %+v, want path %q and message containing %q", p, tt.path, tt.in)
			}
		})
	}
}

func TestValidateGoValue(t *testing.T) {
	// A policy built in Go with nil slices and maps, as the CDK app may.
	ok := &Policy{Version: 1, Tagging: Default().Tagging, Sharing: Sharing{Mode: ModeAudit, ExceptionTag: "x"},
		Retention: Retention{Mode: ModeAudit, MaxDeregistrationsPerRun: 1, MaxGiBPerRun: 1, ProtectTag: "k", TimeLockTag: "t", SecondOpinion: SecondOpinionRequired, SharedUsage: SharedUsageKeep,
			Rules: []Rule{{Name: "r"}}}}
	ok.Tagging.StaticTags = nil
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}

	tests := []struct {
		name   string
		mutate func(*Policy)
		path   string
	}{
		{"bad mode", func(p *Policy) { p.Retention.Mode = "enforced" }, "/retention/mode"},
		{"zero version", func(p *Policy) { p.Version = 0 }, "/version"},
		{"negative snapshot wait", func(p *Policy) { p.Tagging.SnapshotWait = Duration{-time.Second} }, "/tagging/snapshot_wait"},
		{"long snapshot wait", func(p *Policy) { p.Tagging.SnapshotWait = Duration{61 * time.Second} }, "/tagging/snapshot_wait"},
		{"empty protect tag", func(p *Policy) { p.Retention.ProtectTag = "" }, "/retention/protect_tag"},
		{"duplicate rules", func(p *Policy) { p.Retention.Rules = []Rule{{Name: "a"}, {Name: "a"}} }, "/retention/rules/1/name"},
		{"family both", func(p *Policy) {
			p.Retention.Rules = []Rule{{Name: "a", Family: Family{Tag: "f", NamePattern: "(x)"}}}
		}, "/retention/rules/0/family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Default()
			tt.mutate(p)
			err := p.Validate()
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want *ValidationError, got %v", err)
			}
			if verr.Problems[0].Path != tt.path {
				t.Errorf("first problem %+v, want path %q (all: %v)", verr.Problems[0], tt.path, err)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(Duration{90 * time.Second})
	if err != nil || string(b) != `"1m30s"` {
		t.Fatalf("Marshal = %s, %v; want \"1m30s\"", b, err)
	}
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{`"10s"`, 10 * time.Second, false},
		{`"0"`, 0, false},
		{`"1.5s"`, 1500 * time.Millisecond, false},
		{`10`, 0, true},
		{`"ten"`, 0, true},
	}
	for _, tt := range tests {
		var d Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		if (err != nil) != tt.wantErr || d.Duration != tt.want {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v, error %v", tt.in, d.Duration, err, tt.want, tt.wantErr)
		}
	}
}

func TestTaggingHelpers(t *testing.T) {
	tg := Default().Tagging
	tg.Overwrite = []string{"ami-housekeeper:created-at"}
	if got := tg.Key(tg.Keys.CreatedBy); got != "ami-housekeeper:created-by" {
		t.Errorf("Key = %q", got)
	}
	tests := []struct {
		key  string
		want bool
	}{
		{"ami-housekeeper:created-at", true},
		{"created-at", false},
		{"ami-housekeeper:created-by", false},
	}
	for _, tt := range tests {
		if got := tg.MayOverwrite(tt.key); got != tt.want {
			t.Errorf("MayOverwrite(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func TestComparePointers(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"/rules/2", "/rules/10", -1},
		{"/rules/10", "/rules/2", 1},
		{"", "/a", -1},
		{"/a/b", "/a", 1},
		{"/b", "/a/z", 1},
		{"/a", "/a", 0},
	}
	for _, tt := range tests {
		if got := comparePointers(tt.a, tt.b); got != tt.want {
			t.Errorf("comparePointers(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestParseSchemaMessages covers the schema error kinds the fixtures do not.
func TestParseSchemaMessages(t *testing.T) {
	var tags []string
	for i := 0; i < 41; i++ {
		tags = append(tags, "k"+strings.Repeat("x", i))
	}
	tests := []struct {
		name, doc, path string
		value           any
		in              string
	}{
		{"too many items", "version: 1\ntagging:\n  copy_from_source: [" + strings.Join(tags, ", ") + "]\n", "/tagging/copy_from_source", nil, "41 items; allowed: <= 40 items"},
		{"duplicate items", "version: 1\ntagging:\n  copy_from_source: [a, t, t]\n", "/tagging/copy_from_source", "t", `items 1 and 2 are both "t"; allowed: each value once`},
		{"too long", "version: 1\ntagging:\n  prefix: " + strings.Repeat("p", 65) + "\n", "/tagging/prefix", strings.Repeat("p", 65), "65 characters; allowed: 1..64 characters"},
		{"float for integer", "version: 1\nretention:\n  grace_days: 1.5\n", "/retention/grace_days", 1.5, "has type number; allowed: integer"},
		{"negative price", "version: 1\nretention:\n  price_per_gib_month: -0.01\n", "/retention/price_per_gib_month", -0.01, "allowed: >= 0"},
		{"null section", "version: 1\nsharing:\n", "/sharing", nil, "null has type null; allowed: object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "inline")
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want *ValidationError, got %v", err)
			}
			p := verr.Problems[0]
			if p.Path != tt.path || !strings.Contains(p.Message, tt.in) {
				t.Errorf("problem = %+v, want path %q and message containing %q", p, tt.path, tt.in)
			}
			if tt.value != nil && !reflect.DeepEqual(p.Value, tt.value) {
				t.Errorf("Value = %#v, want %#v", p.Value, tt.value)
			}
		})
	}
}
