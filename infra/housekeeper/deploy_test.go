package housekeeper

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/infra/config"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// envOf returns a function's environment variables.
func envOf(f function) map[string]any {
	env, _ := f.props["Environment"].(map[string]any)
	vars, _ := env["Variables"].(map[string]any)
	return vars
}

// A new policy must reach every function: its digest is in each function's
// environment, so a deploy with a new policy changes each configuration and
// the next invocation starts fresh with it.
func TestPolicyChangeChangesEveryFunction(t *testing.T) {
	first := `{"version": 1}`
	second := `{"version": 1, "retention": {"mode": "audit", "grace_days": 14}}`
	a := synth(t, StackProps{PolicyFile: writeFile(t, "policy.json", first)})
	b := synth(t, StackProps{PolicyFile: writeFile(t, "policy.json", second)})
	none := synth(t, StackProps{})
	for i, name := range functionNames {
		fa, fb, fn := allFunctions(t, a)[i], allFunctions(t, b)[i], allFunctions(t, none)[i]
		if got := envOf(fa)[EnvPolicyDigest]; got != policy.Digest([]byte(first)) {
			t.Errorf("%s: %s = %v, want the first policy's digest", name, EnvPolicyDigest, got)
		}
		if got := envOf(fb)[EnvPolicyDigest]; got != policy.Digest([]byte(second)) {
			t.Errorf("%s: %s = %v, want the second policy's digest", name, EnvPolicyDigest, got)
		}
		if envOf(fa)[EnvPolicyDigest] == envOf(fb)[EnvPolicyDigest] {
			t.Errorf("%s: the two policies give the same configuration", name)
		}
		if _, ok := envOf(fn)[EnvPolicyDigest]; ok {
			t.Errorf("%s: a digest without a policy parameter: %v", name, envOf(fn))
		}
	}
}

// The kill switch is a parameter the stack names but does not create: a
// deploy must never reset an engaged switch.
func TestKillSwitch(t *testing.T) {
	st := synth(t, StackProps{})
	for _, f := range allFunctions(t, st) {
		if got := envOf(f)[EnvKillSwitch]; got != "/Test/kill-switch" {
			t.Errorf("%s: %s = %v", f.name, EnvKillSwitch, got)
		}
	}
	for id, r := range resources(st.Template, "AWS::SSM::Parameter") {
		if name, _ := properties(r)["Name"].(string); strings.HasSuffix(name, "kill-switch") {
			t.Errorf("the stack creates the kill switch parameter (%s); a deploy would reset it", id)
		}
	}
	check(t, "kill switch output", func() {
		st.HasOutput(jsii.String("KillSwitchParameterName"), map[string]any{"Value": "/Test/kill-switch"})
	})
}

func TestRecycleBinRules(t *testing.T) {
	rule := func(resourceType string, days int) map[string]any {
		return map[string]any{
			"ResourceType":    resourceType,
			"RetentionPeriod": map[string]any{"RetentionPeriodValue": days, "RetentionPeriodUnit": "DAYS"},
			// No resource tags: a region-level rule, the only kind the
			// cleanup counts for "recoverable until".
			"ResourceTags":        assertions.Match_Absent(),
			"ExcludeResourceTags": assertions.Match_Absent(),
		}
	}
	t.Run("default: 7 days for AMIs and snapshots, unlocked", func(t *testing.T) {
		st := synth(t, StackProps{})
		check(t, "two rules", func() { st.ResourceCountIs(jsii.String("AWS::Rbin::Rule"), jsii.Number(2)) })
		for _, want := range []map[string]any{rule("EC2_IMAGE", 7), rule("EBS_SNAPSHOT", 7)} {
			want["LockConfiguration"] = assertions.Match_Absent()
			check(t, fmt.Sprint(want["ResourceType"]), func() { st.HasResourceProperties(jsii.String("AWS::Rbin::Rule"), want) })
		}
	})
	t.Run("longer for snapshots, locked", func(t *testing.T) {
		st := synth(t, StackProps{RecycleBin: &RecycleBinProps{ImageDays: 14, SnapshotDays: 30, LockDays: 10}})
		lock := map[string]any{"UnlockDelayValue": 10, "UnlockDelayUnit": "DAYS"}
		for _, want := range []map[string]any{rule("EC2_IMAGE", 14), rule("EBS_SNAPSHOT", 30)} {
			want["LockConfiguration"] = lock
			check(t, fmt.Sprint(want["ResourceType"]), func() {
				// A locked rule cannot be deleted: the stack leaves it.
				st.HasResource(jsii.String("AWS::Rbin::Rule"), map[string]any{"Properties": want, "DeletionPolicy": "Retain"})
			})
		}
	})
	t.Run("off", func(t *testing.T) {
		st := synth(t, StackProps{RecycleBin: &RecycleBinProps{}})
		check(t, "no rules", func() { st.ResourceCountIs(jsii.String("AWS::Rbin::Rule"), jsii.Number(0)) })
	})
	t.Run("snapshots shorter than AMIs fail the synth", func(t *testing.T) {
		msg := panicMessage(func() {
			newTestStack(t, StackProps{RecycleBin: &RecycleBinProps{ImageDays: 14, SnapshotDays: 7}})
		})
		if !strings.Contains(msg, "snapshots kept 7 days, fewer than the AMIs' 14") {
			t.Errorf("panic = %q", msg)
		}
	})
}

func TestBadScheduleFailsSynth(t *testing.T) {
	msg := panicMessage(func() { newTestStack(t, StackProps{CleanupSchedule: "every day"}) })
	if !strings.Contains(msg, `cleanup schedule: "every day": want rate(...) or cron(...)`) {
		t.Errorf("panic = %q", msg)
	}
	msg = panicMessage(func() { newTestStack(t, StackProps{SharingSchedule: "cron(0 4 * * * *)"}) })
	if !strings.Contains(msg, "sharing schedule:") || !strings.Contains(msg, `exactly one of day-of-month`) {
		t.Errorf("panic = %q", msg)
	}
}

func TestAlarmEmails(t *testing.T) {
	st := synth(t, StackProps{AlarmEmails: []string{"ops@example.com", "sec@example.com"}})
	topic, _ := notificationTopic(t, st)
	for _, email := range []string{"ops@example.com", "sec@example.com"} {
		check(t, email, func() {
			st.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
				"Protocol": "email", "Endpoint": email, "TopicArn": ref(topic),
			})
		})
	}
	none := synth(t, StackProps{})
	check(t, "no subscriptions by default", func() { none.ResourceCountIs(jsii.String("AWS::SNS::Subscription"), jsii.Number(0)) })
}

// One stack per configured region, each with the CloudFormation name of the
// configuration and the region as its environment; none without regions.
func TestAppStacksPerRegion(t *testing.T) {
	cfg := config.Default()
	cfg.DistDir = testDist(t)
	cfg.Regions = []string{"us-east-1", "eu-west-1"}
	cfg.LogRetentionDays = 90
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	stacks := NewApp(app, cfg)
	if len(stacks) != 2 {
		t.Fatalf("%d stacks, want 2", len(stacks))
	}
	for i, region := range cfg.Regions {
		s := stacks[i]
		if *s.Region() != region || *s.StackName() != "AmiHousekeeper" || *s.Node().Id() != "AmiHousekeeper-"+region {
			t.Errorf("stack %d: id %s, name %s, region %s", i, *s.Node().Id(), *s.StackName(), *s.Region())
		}
		tmpl := assertions.Template_FromStack(s, nil)
		check(t, region+" log retention", func() {
			tmpl.AllResourcesProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{"RetentionInDays": 90})
		})
		check(t, region+" functions", func() { tmpl.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(3)) })
	}

	single := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	cfg.Regions = nil
	stacks = NewApp(single, cfg)
	if len(stacks) != 1 || *stacks[0].StackName() != "AmiHousekeeper" || !strings.HasPrefix(*stacks[0].Region(), "${Token") {
		t.Errorf("without regions: %d stacks, first %s in %s; want one environment-agnostic stack", len(stacks), *stacks[0].StackName(), *stacks[0].Region())
	}
}

// Every log retention config accepts has a CDK value.
func TestEveryLogRetentionMaps(t *testing.T) {
	for _, days := range config.LogRetentionChoices() {
		if _, ok := logRetention[days]; !ok {
			t.Errorf("%d days: no awslogs.RetentionDays", days)
		}
	}
	if len(logRetention) != len(config.LogRetentionChoices()) {
		t.Errorf("%d mapped values, config accepts %d", len(logRetention), len(config.LogRetentionChoices()))
	}
}

// The deploy guide's commands read these outputs.
func TestOperatorOutputs(t *testing.T) {
	st := synth(t, StackProps{})
	cleanup := cleanupOf(t, st)
	dashboard, _ := onlyResource(t, st, "AWS::CloudWatch::Dashboard")
	check(t, "records key output", func() {
		st.HasOutput(jsii.String("RecordsKeyArn"), map[string]any{"Value": getAttArn(recordsKey(t, st, cleanup))})
	})
	check(t, "dashboard output", func() {
		st.HasOutput(jsii.String("DashboardName"), map[string]any{"Value": ref(dashboard)})
	})
}
