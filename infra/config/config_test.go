package config

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFromContextDefaults(t *testing.T) {
	c, err := FromContext(map[string]any{
		// The CDK's own keys are not ours to judge.
		"@aws-cdk/core:newStyleStackSynthesis":  true,
		"aws:cdk:enable-path-metadata":          true,
		"availability-zones:account=1:region=x": []any{"a"},
		"cli-telemetry":                         false,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v, want the defaults %+v", c, want)
	}
	if c.RecycleBinDays != 7 || c.RecycleBinSnapshotDays != 7 || c.CleanupSchedule.MaxInterval != 24*time.Hour {
		t.Errorf("defaults changed: %+v", c)
	}
}

// cdk.json lists every key with its default, so it documents them; this
// keeps the two from drifting apart.
func TestCdkJSONListsEveryKeyWithItsDefault(t *testing.T) {
	raw, err := os.ReadFile("../../cdk.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys() {
		if _, ok := doc.Context[k]; !ok {
			t.Errorf("cdk.json context does not list %q", k)
		}
	}
	c, err := FromContext(doc.Context)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("cdk.json context %+v differs from the defaults %+v", c, Default())
	}
}

func TestFromContextValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ctx   map[string]any
		check func(Config) bool
	}{
		{"regions as a JSON list", map[string]any{"regions": []any{"us-east-1", "eusc-de-east-1"}},
			func(c Config) bool { return reflect.DeepEqual(c.Regions, []string{"us-east-1", "eusc-de-east-1"}) }},
		{"regions from -c, comma-separated", map[string]any{"regions": "us-east-1, eu-west-1"},
			func(c Config) bool { return reflect.DeepEqual(c.Regions, []string{"us-east-1", "eu-west-1"}) }},
		{"numbers from -c arrive as strings", map[string]any{"recycleBinDays": "14", "logRetentionDays": "90"},
			func(c Config) bool {
				return c.RecycleBinDays == 14 && c.RecycleBinSnapshotDays == 14 && c.LogRetentionDays == 90
			}},
		{"cdk.json's snapshot days 0 follow recycleBinDays from -c", map[string]any{"recycleBinDays": "14", "recycleBinSnapshotDays": 0.0},
			func(c Config) bool { return c.RecycleBinDays == 14 && c.RecycleBinSnapshotDays == 14 }},
		{"snapshot days may be longer", map[string]any{"recycleBinDays": 7.0, "recycleBinSnapshotDays": 10.0},
			func(c Config) bool { return c.RecycleBinSnapshotDays == 10 }},
		{"Recycle Bin off", map[string]any{"recycleBinDays": 0.0},
			func(c Config) bool { return c.RecycleBinDays == 0 && c.RecycleBinSnapshotDays == 0 }},
		{"lock", map[string]any{"recycleBinLockDays": 7.0},
			func(c Config) bool { return c.RecycleBinLockDays == 7 }},
		{"schedule", map[string]any{"cleanupSchedule": "rate(6 hours)"},
			func(c Config) bool { return c.CleanupSchedule.MaxInterval == 6*time.Hour }},
		{"e-mails", map[string]any{"alarmEmails": []any{"ops@example.com"}},
			func(c Config) bool { return reflect.DeepEqual(c.AlarmEmails, []string{"ops@example.com"}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromContext(tc.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestFromContextRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		want []string
	}{
		{"mistyped key", map[string]any{"policyfile": "p.yaml"}, []string{`context "policyfile": unknown key (did you mean "policyFile"?)`}},
		{"unknown key", map[string]any{"schedule": "rate(1 day)"}, []string{`context "schedule": unknown key; the app reads stackName, regions`}},
		{"bad schedule", map[string]any{"cleanupSchedule": "every day"}, []string{`context "cleanupSchedule": "every day": want rate(...) or cron(...)`}},
		{"bad region", map[string]any{"regions": "us-east-1,us-east-1a"}, []string{`context "regions": "us-east-1a" is not a region name`}},
		{"twice", map[string]any{"regions": []any{"us-east-1", "us-east-1"}}, []string{`"us-east-1" is listed twice`}},
		{"not a number", map[string]any{"recycleBinDays": "a week"}, []string{`context "recycleBinDays": want a whole number, got "a week"`}},
		{"fraction", map[string]any{"recycleBinDays": 1.5}, []string{`want a whole number, got 1.5`}},
		{"too long", map[string]any{"recycleBinDays": 400.0}, []string{`want 0 (no Recycle Bin rules) or 1 to 365`}},
		{"snapshots shorter than AMIs", map[string]any{"recycleBinDays": 14.0, "recycleBinSnapshotDays": 7.0}, []string{`context "recycleBinSnapshotDays": 7: want 14 (recycleBinDays) to 365`}},
		{"lock out of range", map[string]any{"recycleBinLockDays": 3.0}, []string{`unlock delay of 7 to 30 days`}},
		{"lock with nothing to lock", map[string]any{"recycleBinDays": 0.0, "recycleBinLockDays": 7.0}, []string{`nothing to lock`}},
		{"retention", map[string]any{"logRetentionDays": 10.0}, []string{`context "logRetentionDays": 10: want one of`}},
		{"e-mail", map[string]any{"alarmEmails": "ops at example"}, []string{`"ops at example" is not a plain e-mail address`}},
		{"e-mail with a name", map[string]any{"alarmEmails": "Ops <ops@example.com>"}, []string{`is not a plain e-mail address`}},
		{"wrong type", map[string]any{"policyFile": 3.0}, []string{`context "policyFile": want a string, got 3`}},
		{"stack name", map[string]any{"stackName": "1-bad_name"}, []string{`context "stackName"`}},
		{"stack name SSM refuses", map[string]any{"stackName": "AwsHousekeeper"}, []string{`context "stackName": "AwsHousekeeper": must not begin with "aws" or "ssm"`}},
		{"stack name SSM refuses, ssm", map[string]any{"stackName": "ssm-x"}, []string{`must not begin with "aws" or "ssm"`}},
		{"schedule too frequent", map[string]any{"cleanupSchedule": "rate(1 minute)"}, []string{`context "cleanupSchedule": "rate(1 minute)" runs every 1m0s at times: want at least 30m0s`}},
		{"cron too frequent on weekdays", map[string]any{"sharingSchedule": "cron(0/20 * ? * MON-FRI *)"}, []string{`context "sharingSchedule": "cron(0/20 * ? * MON-FRI *)" runs every 20m0s`}},
		{"every problem at once", map[string]any{"policyfile": "x", "cleanupSchedule": "daily"}, []string{`"policyfile"`, `"cleanupSchedule"`}},
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

func TestSilenceWindow(t *testing.T) {
	s, _ := ParseSchedule("cron(0 3 * * ? *)")
	if got := SilenceWindow(s); got != 48*time.Hour {
		t.Errorf("got %v", got)
	}
}
