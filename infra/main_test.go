package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// accounts is n distinct account ids as a JSON list's items.
func accounts(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(`"%012d"`, 100000000000+i)
	}
	return strings.Join(ids, ",")
}

// The app as `make synth` runs it: the CDK CLI passes the context in
// CDK_CONTEXT_JSON and the output folder in CDK_OUTDIR. A bad context fails
// with the key named and writes no template.
func TestSynthValidatesContext(t *testing.T) {
	dir := t.TempDir()
	app := filepath.Join(dir, "app")
	build := exec.Command("go", "build", "-o", app, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the app: %v\n%s", err, out)
	}
	dist := filepath.Join(dir, "dist")
	for _, fn := range []string{"tagger", "cleanup", "sharing", "dispatcher"} {
		if err := os.MkdirAll(filepath.Join(dist, fn), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dist, fn, "bootstrap"), []byte("test"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		context   string
		wantErr   string
		templates []string
	}{
		{"defaults", `{}`, "", []string{"AmiHousekeeper.template.json"}},
		{"two regions", `{"regions":"eu-west-1,us-east-1"}`, "", []string{"AmiHousekeeper-eu-west-1.template.json", "AmiHousekeeper-us-east-1.template.json"}},
		{"unknown key", `{"policyfile":"policy.yaml"}`, `context "policyfile": unknown key (did you mean "policyFile"?)`, nil},
		{"bad schedule", `{"cleanupSchedule":"every day"}`, `context "cleanupSchedule": "every day": want rate(...) or cron(...)`, nil},
		{"bad value", `{"recycleBinLockDays":"3"}`, `context "recycleBinLockDays": 3: want 0 (no lock) or an unlock delay of 7 to 30 days`, nil},
		{"bad policy file", `{"policyFile":"../testdata/policies/bad-enum.yaml"}`, `bad-enum.yaml`, nil},
		{"organization mode", `{"organizationId":"o-abcdefghij","organizationScope":{"ous":["r-ab12"],"regions":["eu-west-1"]},"regions":"eu-west-1"}`,
			"", []string{"AmiHousekeeper-eu-west-1.template.json", "AmiHousekeeper-eu-west-1-member.template.json"}},
		{"organization scope from -c", `{"organizationId":"o-abcdefghij","organizationScope":"{\"accounts\":[\"111111111111\"],\"regions\":[\"eu-west-1\"]}","stackSetTargetOus":"r-ab12"}`,
			"", []string{"AmiHousekeeper.template.json", "AmiHousekeeper-member.template.json"}},
		{"organization scope too large for the environment", `{"organizationId":"o-abcdefghij","organizationScope":{"ous":["r-ab12"],"accounts":[` + accounts(200) + `],"regions":["eu-west-1"]}}`,
			`context "organizationScope": 3467 bytes in HOUSEKEEPER_ORG_SCOPE`, nil},
		{"organization scope without regions", `{"organizationId":"o-abcdefghij","organizationScope":{"ous":["r-ab12"]}}`,
			`context "organizationScope": organization scope: regions: needs at least one region`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			ctx := strings.Replace(tc.context, "{", `{"distDir":"`+dist+`",`, 1)
			ctx = strings.Replace(ctx, ",}", "}", 1)
			cmd := exec.Command(app)
			cmd.Env = append(os.Environ(), "CDK_CONTEXT_JSON="+ctx, "CDK_OUTDIR="+out)
			stderr, err := cmd.CombinedOutput()
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("synth succeeded; want an error naming %q", tc.wantErr)
				}
				if !strings.Contains(string(stderr), tc.wantErr) {
					t.Errorf("output does not say %q:\n%s", tc.wantErr, stderr)
				}
				if m, _ := filepath.Glob(filepath.Join(out, "*.template.json")); len(m) > 0 {
					t.Errorf("a failed synth wrote %v", m)
				}
				return
			}
			if err != nil {
				t.Fatalf("synth: %v\n%s", err, stderr)
			}
			for _, name := range tc.templates {
				if _, err := os.Stat(filepath.Join(out, name)); err != nil {
					t.Errorf("template %s: %v", name, err)
				}
			}
			if m, _ := filepath.Glob(filepath.Join(out, "*.template.json")); len(m) != len(tc.templates) {
				t.Errorf("templates %v, want %v", m, tc.templates)
			}
		})
	}
}
