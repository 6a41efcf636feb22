package housekeeper

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/infra/config"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// testOrg is a valid organization configuration.
func testOrg() config.Organization {
	o := config.Default().Organization
	o.ID = "o-abcdefghij"
	o.Scope = org.Scope{OUs: []string{"ou-ab12-cdefghij"}, Regions: []string{"eu-west-1", "us-east-1"}}
	o.StackSetTargetOUs = []string{"ou-ab12-cdefghij"}
	o.StackSetRegions = []string{"eu-west-1", "us-east-1"}
	return o
}

// synthOrg synthesizes the central stack "Test" in organization mode.
func synthOrg(t *testing.T, o config.Organization, props StackProps) stackTemplate {
	t.Helper()
	if props.DistDir == "" {
		props.DistDir = testDistWith(t, append(functionNames, DispatcherFunctionName)...)
	}
	props.Organization = &o
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	stack := NewHousekeeperStack(app, "Test", &props)
	return stackTemplate{Template: assertions.Template_FromStack(stack, nil), assetDir: *awscdk.Stage_Of(stack).AssetOutdir()}
}

// orgTemplates synthesizes the central stack with o and returns it with
// the member stack's template as the StackSet deploys it (its
// TemplateBody), and the StackSet's properties.
func orgTemplates(t *testing.T, o config.Organization, props StackProps) (central, member stackTemplate, set map[string]any) {
	t.Helper()
	central = synthOrg(t, o, props)
	_, set = onlyResource(t, central, "AWS::CloudFormation::StackSet")
	body, _ := set["TemplateBody"].(string)
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("StackSet TemplateBody: %v", err)
	}
	member = stackTemplate{Template: assertions.Template_FromJSON(&doc, nil)}
	return central, member, set
}

// resourcesOn returns the logical IDs of the rules on the event bus
// bus ("" for the default bus), by their event pattern or schedule.
func rulesOn(tmpl assertions.Template, bus string) map[string]string {
	out := map[string]string{}
	for id, r := range resources(tmpl, "AWS::Events::Rule") {
		p := properties(r)
		if refID(p["EventBusName"]) != bus {
			continue
		}
		key, _ := p["ScheduleExpression"].(string)
		if pattern, ok := p["EventPattern"]; ok {
			b, _ := json.Marshal(pattern)
			key = string(b)
		}
		out[id] = key
	}
	return out
}

// ruleTarget returns the single target of a rule.
func ruleTarget(t *testing.T, tmpl assertions.Template, rule string) map[string]any {
	t.Helper()
	targets := list(properties(resources(tmpl, "AWS::Events::Rule")[rule])["Targets"])
	if len(targets) != 1 {
		t.Fatalf("rule %s: %d targets, want 1", rule, len(targets))
	}
	m, _ := targets[0].(map[string]any)
	return m
}

// The central bus takes events from the organization's accounts only,
// and its rules deliver the member accounts' events to the same queues,
// with the same patterns, as the default bus's rules.
func TestOrgBus(t *testing.T) {
	st := synthOrg(t, testOrg(), StackProps{})
	bus, props := onlyResource(t, st, "AWS::Events::EventBus")
	if props["Name"] != "Test-org" {
		t.Errorf("bus name %v, want Test-org", props["Name"])
	}
	_, policy := onlyResource(t, st, "AWS::Events::EventBusPolicy")
	if refID(policy["EventBusName"]) != bus {
		t.Errorf("bus policy on %v, want the central bus %s", policy["EventBusName"], bus)
	}
	statement, _ := policy["Statement"].(map[string]any)
	want := map[string]any{
		"Sid": "cdk-OrganizationMembersPutEvents", "Effect": "Allow", "Principal": map[string]any{"AWS": "*"}, "Action": "events:PutEvents",
		"Resource":  getAttArn(bus),
		"Condition": map[string]any{"StringEquals": map[string]any{"aws:PrincipalOrgID": "o-abcdefghij"}},
	}
	if !reflect.DeepEqual(statement, want) {
		t.Errorf("bus policy statement\n got %v\nwant %v", statement, want)
	}

	tagger, sharing := taggerOf(t, st), sharingOf(t, st)
	queueOf := func(f function) string {
		// The function's event queue: the one its default-bus rules send to.
		for id, key := range rulesOn(st, "") {
			if key == canonicalJSON(t, stateChangePattern) {
				if arn := getAttID(ruleTarget(t, st, id)["Arn"], "Arn"); f.name == TaggerFunctionName && strings.Contains(arn, "Tagger") ||
					f.name == SharingFunctionName && strings.Contains(arn, "Sharing") {
					return arn
				}
			}
		}
		t.Fatalf("no event queue for %s", f.name)
		return ""
	}
	want2 := map[string]string{}
	for _, p := range []string{cloudTrailPattern, stateChangePattern} {
		want2[canonicalJSON(t, p)+" "+queueOf(tagger)] = TaggerFunctionName
	}
	for _, p := range []string{sharingPattern, stateChangePattern} {
		want2[canonicalJSON(t, p)+" "+queueOf(sharing)] = SharingFunctionName
	}
	got := map[string]string{}
	for id, key := range rulesOn(st, bus) {
		target := ruleTarget(t, st, id)
		got[key+" "+getAttID(target["Arn"], "Arn")] = id
		checkResource(t, st, "central bus rule "+id, "AWS::Events::Rule", id, map[string]any{"State": "ENABLED"})
	}
	if len(got) != len(want2) {
		t.Errorf("central bus rules: %v, want one per %v", got, want2)
	}
	for k, fn := range want2 {
		if _, ok := got[k]; !ok {
			t.Errorf("no rule on the central bus delivering %s to the %s queue", k, fn)
		}
	}
	// The default bus keeps the home account's rules.
	if n := len(rulesOn(st, "")); n != 4+2 {
		t.Errorf("%d rules on the default bus, want the 4 event rules and the dispatcher's 2 schedules", n)
	}
	check(t, "bus output", func() { st.HasOutput(jsii.String("CentralEventBusArn"), map[string]any{"Value": getAttArn(bus)}) })
}

// The schedules start sweeps through the dispatcher, with the job and the
// scheduled time; nothing invokes the cleanup or the sharing guard on a
// schedule any more.
func TestOrgDispatcherSchedules(t *testing.T) {
	st := synthOrg(t, testOrg(), StackProps{CleanupSchedule: "rate(12 hours)", SharingSchedule: "cron(0 5 * * ? *)"})
	dispatcher := findFunction(t, st, DispatcherFunctionName)
	got := map[string]string{}
	var ids []string
	for id, props := range rulesTargeting(st, dispatcher) {
		schedule, _ := props["ScheduleExpression"].(string)
		target := ruleTarget(t, st, id)
		input, _ := target["InputTransformer"].(map[string]any)
		if !reflect.DeepEqual(input["InputPathsMap"], map[string]any{"time": "$.time"}) {
			t.Errorf("rule %s: input paths %v, want the event's time", id, input["InputPathsMap"])
		}
		tmpl, _ := input["InputTemplate"].(string)
		got[schedule] = tmpl
		ids = append(ids, id)
		if getAttID(target["DeadLetterConfig"].(map[string]any)["Arn"], "Arn") != dispatcher.dlq {
			t.Errorf("rule %s: undeliverable events do not go to the dispatcher's DLQ: %v", id, target)
		}
	}
	want := map[string]string{
		"rate(12 hours)":    `{"job":"cleanup","time":<time>}`,
		"cron(0 5 * * ? *)": `{"job":"sharing-audit","time":<time>}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dispatcher schedules\n got %v\nwant %v", got, want)
	}
	checkInvokePermissions(t, st, dispatcher.id, ids)
	for _, f := range []function{cleanupOf(t, st), sharingOf(t, st)} {
		for id, props := range rulesTargeting(st, f) {
			if _, ok := props["ScheduleExpression"]; ok {
				t.Errorf("%s: still scheduled by %s", f.name, id)
			}
		}
		checkInvokePermissions(t, st, f.id, nil)
	}
	checkFunction(t, st, dispatcher, 256, dispatcherTimeoutMinutes*60, 2, orgEnv(t, st, map[string]any{
		EnvReportEventBus: "default", EnvReportTopicARN: ref(mustTopic(t, st)),
	}), nil)
}

// mustTopic is the notification topic's logical ID.
func mustTopic(t *testing.T, st stackTemplate) string {
	t.Helper()
	topic, _ := notificationTopic(t, st)
	return topic
}

// orgEnv is the environment every central function has in organization
// mode (testOrg), plus extra.
func orgEnv(t *testing.T, st stackTemplate, extra map[string]any) map[string]any {
	t.Helper()
	table, _ := onlyResource(t, st, "AWS::DynamoDB::Table")
	env := map[string]any{
		EnvAccountID:              ref("AWS::AccountId"),
		EnvLogLevel:               "info",
		EnvKillSwitch:             "/Test/kill-switch",
		EnvOrgScope:               `{"ous":["ou-ab12-cdefghij"],"regions":["eu-west-1","us-east-1"]}`,
		EnvOrgRoleName:            "ami-housekeeper-member",
		EnvLedgerTable:            ref(table),
		EnvUnitsQueueCleanup:      "Test-cleanup-units.fifo",
		EnvUnitsQueueSharingAudit: "Test-audit-units.fifo",
		EnvUnitsMaxReceives:       "3",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}
