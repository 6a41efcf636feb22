package housekeeper

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

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
	check(t, "no separate bus policy", func() { st.ResourceCountIs(jsii.String("AWS::Events::EventBusPolicy"), jsii.Number(0)) })
	policy, _ := props["Policy"].(map[string]any)
	want := map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Sid": "OrganizationMembersPutEvents", "Effect": "Allow", "Principal": "*", "Action": "events:PutEvents",
		"Resource":  "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/Test-org",
		"Condition": map[string]any{"StringEquals": map[string]any{"aws:PrincipalOrgID": "o-abcdefghij"}},
	}}}
	if got := renderTokens(policy); !reflect.DeepEqual(got, want) {
		t.Errorf("bus policy\n got %v\nwant %v", got, want)
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
// mode (testOrg), plus extra; the workers add their own member role's
// name (EnvOrgRoleName).
func orgEnv(t *testing.T, st stackTemplate, extra map[string]any) map[string]any {
	t.Helper()
	table, _ := onlyResource(t, st, "AWS::DynamoDB::Table")
	env := map[string]any{
		EnvAccountID:              ref("AWS::AccountId"),
		EnvLogLevel:               "info",
		EnvKillSwitch:             "/Test/kill-switch",
		EnvOrgScope:               `{"ous":["ou-ab12-cdefghij"],"regions":["eu-west-1","us-east-1"]}`,
		EnvLedgerTable:            ref(table),
		EnvUnitsQueueCleanup:      "Test-cleanup-units.fifo",
		EnvUnitsQueueSharingAudit: "Test-audit-units.fifo",
		EnvUnitsMaxReceive:        "5",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// queueByName returns the logical ID and properties of the queue named name.
func queueByName(t *testing.T, st stackTemplate, name string) (string, map[string]any) {
	t.Helper()
	for id, r := range resources(st, "AWS::SQS::Queue") {
		if p := properties(r); p["QueueName"] == name {
			return id, p
		}
	}
	t.Fatalf("no queue named %s", name)
	return "", nil
}

// queueStatements returns the statements of the queue's policies.
func queueStatements(st stackTemplate, queue string) []map[string]any {
	var out []map[string]any
	for _, r := range resources(st, "AWS::SQS::QueuePolicy") {
		p := properties(r)
		if qs := list(p["Queues"]); len(qs) != 1 || refID(qs[0]) != queue {
			continue
		}
		doc, _ := p["PolicyDocument"].(map[string]any)
		for _, s := range list(doc["Statement"]) {
			m, _ := s.(map[string]any)
			out = append(out, m)
		}
	}
	return out
}

// Each job's units wait in a FIFO queue that only the dispatcher writes,
// read one at a time by the job's function with a bounded concurrency;
// a unit whose worker dies on its five receives moves to a FIFO DLQ,
// alarmed, and a unit waiting a schedule interval is alarmed too.
func TestOrgUnitsQueues(t *testing.T) {
	o := testOrg()
	o.WorkerConcurrency = 40
	// The audit runs on weekdays: its shortest interval is a day.
	st := synthOrg(t, o, StackProps{CleanupSchedule: "rate(6 hours)", SharingSchedule: "cron(0 4 ? * MON-FRI *)"})
	topic := mustTopic(t, st)
	dispatcher := findFunction(t, st, DispatcherFunctionName)
	for _, tc := range []struct {
		name, job string
		worker    function
		timeout   int
		age       int // seconds
	}{
		{"Test-cleanup-units", "cleanup", cleanupOf(t, st), cleanupTimeoutSeconds, 6 * 3600},
		{"Test-audit-units", "sharing-audit", sharingOf(t, st), sharingTimeoutSeconds, 24 * 3600},
	} {
		queue, qp := queueByName(t, st, tc.name+".fifo")
		dlq, dp := queueByName(t, st, tc.name+"-dlq.fifo")
		checkResource(t, st, tc.name+" queue", "AWS::SQS::Queue", queue, map[string]any{
			"FifoQueue":                 true,
			"ContentBasedDeduplication": false,
			"SqsManagedSseEnabled":      true,
			"VisibilityTimeout":         tc.timeout + 60,
			"MessageRetentionPeriod":    4 * 24 * 3600,
			"RedrivePolicy":             map[string]any{"deadLetterTargetArn": getAttArn(dlq), "maxReceiveCount": 5},
		})
		if dp["FifoQueue"] != true || dp["SqsManagedSseEnabled"] != true || dp["MessageRetentionPeriod"] != float64(14*24*3600) {
			t.Errorf("%s DLQ: %v", tc.name, dp)
		}
		_ = qp

		// TLS only on both; on the queue, no one but the dispatcher sends.
		for _, q := range []string{queue, dlq} {
			var tls bool
			for _, s := range queueStatements(st, q) {
				c, _ := s["Condition"].(map[string]any)
				if s["Effect"] == "Deny" && reflect.DeepEqual(c, map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}}) {
					tls = true
				}
				if s["Effect"] == "Allow" {
					t.Errorf("%s: queue policy allows %v", q, s)
				}
			}
			if !tls {
				t.Errorf("%s: no TLS-only statement", q)
			}
		}
		var onlyDispatcher bool
		for _, s := range queueStatements(st, queue) {
			c, _ := s["Condition"].(map[string]any)
			ne, _ := c["ArnNotEquals"].(map[string]any)
			if s["Effect"] == "Deny" && s["Action"] == "sqs:SendMessage" && reflect.DeepEqual(s["Principal"], map[string]any{"AWS": "*"}) &&
				getAttID(ne["aws:PrincipalArn"], "Arn") == dispatcher.role {
				onlyDispatcher = true
			}
		}
		if !onlyDispatcher {
			t.Errorf("%s: sending is not denied to everyone but the dispatcher: %v", tc.name, queueStatements(st, queue))
		}
		// The dispatcher may send there; the workers may not.
		if !slices.Contains(resourcesAllowed(t, st, dispatcher, "sqs:SendMessage"), arnOf(queue)) {
			t.Errorf("the dispatcher may not send to %s", tc.name)
		}
		for _, f := range []function{taggerOf(t, st), cleanupOf(t, st), sharingOf(t, st)} {
			if slices.Contains(resourcesAllowed(t, st, f, "sqs:SendMessage"), arnOf(queue)) {
				t.Errorf("%s may send units to %s", f.name, tc.name)
			}
		}

		check(t, tc.name+" mapping", func() {
			st.ResourcePropertiesCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), map[string]any{
				"FunctionName":                   ref(tc.worker.id),
				"EventSourceArn":                 getAttArn(queue),
				"BatchSize":                      1,
				"MaximumBatchingWindowInSeconds": assertions.Match_Absent(),
				"ScalingConfig":                  map[string]any{"MaximumConcurrency": 40},
				"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
			}, jsii.Number(1))
		})
		// The DLQ holds only units whose worker died on every receive
		// (a failing unit is recorded failed on its last): the alarm says
		// so, and how to finish the sweep.
		check(t, tc.name+" DLQ alarm", func() {
			st.ResourcePropertiesCountIs(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
				"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
				"Dimensions": []any{map[string]any{"Name": "QueueName", "Value": getAtt(dlq, "QueueName")}},
				"Threshold":  1, "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
				"AlarmActions": []any{ref(topic)},
				"AlarmDescription": assertions.Match_StringLikeRegexp(jsii.String(
					`died or timed out on each of its 5 receives .*recorded failed and deleted, so it never gets here.*has no summary.*` +
						`Invoke the dispatcher .*\{"job":"` + tc.job + `","time":"<time>"\}.*only the units without a result.*Then purge the DLQ`)),
			}, jsii.Number(1))
		})
		// A unit waiting as long as the schedule's shortest interval: the
		// next sweep would start before this one is worked.
		check(t, tc.name+" age alarm", func() {
			st.ResourcePropertiesCountIs(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
				"Namespace": "AWS/SQS", "MetricName": "ApproximateAgeOfOldestMessage",
				"Dimensions": []any{map[string]any{"Name": "QueueName", "Value": getAtt(queue, "QueueName")}},
				"Statistic":  "Maximum", "Period": 300, "EvaluationPeriods": 1,
				"Threshold": tc.age, "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
				"AlarmActions":     []any{ref(topic)},
				"AlarmDescription": assertions.Match_StringLikeRegexp(jsii.String(`the next sweep starts before this one's units are worked`)),
			}, jsii.Number(1))
		})
	}
	// The tagger reads no units; the cleanup's mapping is its only one,
	// and it is no longer held to one execution (the units queue's groups
	// and maximum concurrency bound it).
	check(t, "mappings", func() { st.ResourceCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), jsii.Number(4)) })
	checkResource(t, st, "cleanup concurrency", "AWS::Lambda::Function", cleanupOf(t, st).id, map[string]any{"ReservedConcurrentExecutions": assertions.Match_Absent()})
	// The dispatcher's errors and DLQ alarm too.
	for _, metric := range []string{"Errors"} {
		check(t, "dispatcher "+metric+" alarm", func() {
			st.ResourcePropertiesCountIs(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
				"MetricName": metric, "Namespace": "AWS/Lambda",
				"Dimensions":   []any{map[string]any{"Name": "FunctionName", "Value": ref(dispatcher.id)}},
				"AlarmActions": []any{ref(topic)},
			}, jsii.Number(1))
		})
	}
	// Every alarm is on the dashboard.
	_, dash := onlyResource(t, st, "AWS::CloudWatch::Dashboard")
	body := render(dash["DashboardBody"])
	for id := range resources(st, "AWS::CloudWatch::Alarm") {
		if !strings.Contains(body, "${"+id+".Arn}") {
			t.Errorf("alarm %s is not on the dashboard", id)
		}
	}
}

// resourcesAllowed returns the rendered resources (with conditions) the
// function's role is allowed action on.
func resourcesAllowed(t *testing.T, st stackTemplate, f function, action string) []string {
	t.Helper()
	var out []string
	for _, s := range statementsOf(t, st, f, "Allow", action) {
		for _, r := range list(s["Resource"]) {
			out = append(out, render(r)+conditionOf(s["Condition"]))
		}
	}
	return out
}

// The ledger: one item per sweep and unit, expiring, point-in-time
// recoverable, encrypted; the dispatcher and the two workers may read and
// write items, nothing more, and the tagger not at all.
func TestOrgLedger(t *testing.T) {
	st := synthOrg(t, testOrg(), StackProps{})
	table, _ := onlyResource(t, st, "AWS::DynamoDB::Table")
	checkResource(t, st, "ledger", "AWS::DynamoDB::Table", table, map[string]any{
		"KeySchema": []any{
			map[string]any{"AttributeName": "sweep", "KeyType": "HASH"},
			map[string]any{"AttributeName": "unit", "KeyType": "RANGE"},
		},
		"AttributeDefinitions": []any{
			map[string]any{"AttributeName": "sweep", "AttributeType": "S"},
			map[string]any{"AttributeName": "unit", "AttributeType": "S"},
		},
		"BillingMode":                      "PAY_PER_REQUEST",
		"TimeToLiveSpecification":          map[string]any{"AttributeName": "expires", "Enabled": true},
		"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
		"SSESpecification":                 map[string]any{"SSEEnabled": true},
	})
	for _, f := range []function{findFunction(t, st, DispatcherFunctionName), cleanupOf(t, st), sharingOf(t, st), taggerOf(t, st)} {
		var got []string
		for _, s := range roleStatements(t, st, f.role) {
			for _, r := range list(s["Resource"]) {
				if getAttID(r, "Arn") != table {
					continue
				}
				for _, a := range list(s["Action"]) {
					got = append(got, a.(string))
				}
			}
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(ledgerActions))
		if f.name == TaggerFunctionName {
			want = nil
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s on the ledger: %v, want %v", f.name, got, want)
		}
	}
	check(t, "ledger output", func() { st.HasOutput(jsii.String("LedgerTableName"), map[string]any{"Value": ref(table)}) })
}

// The three functions that work in member accounts have fixed role names,
// may each assume only its own member role (<memberRoleName>-<function>)
// in the organization's accounts, are told its name, and read the
// organization; the dispatcher reads it, assumes nothing and is told no
// member role. Every central function gets the organization's
// environment; EC2 calls outside the scope's regions are denied.
func TestOrgCentralRoles(t *testing.T) {
	o := testOrg()
	o.ExternalID = "ext-123"
	st := synthOrg(t, o, StackProps{})
	topic := mustTopic(t, st)
	orgCondition := map[string]any{"StringEquals": map[string]any{"aws:ResourceOrgID": "o-abcdefghij"}}
	for _, f := range []function{taggerOf(t, st), sharingOf(t, st), cleanupOf(t, st), findFunction(t, st, DispatcherFunctionName)} {
		_, role := resourceByID(t, st, "AWS::IAM::Role", f.role)
		assume := resourcesAllowed(t, st, f, "sts:AssumeRole")
		env := envOf(f)
		if f.name == DispatcherFunctionName {
			if role["RoleName"] != nil || len(assume) != 0 {
				t.Errorf("dispatcher: role name %v, may assume %v; want a generated name and nothing to assume", role["RoleName"], assume)
			}
			if v, ok := env[EnvOrgRoleName]; ok {
				t.Errorf("dispatcher: %s = %v, want none (it reaches no member account)", EnvOrgRoleName, v)
			}
		} else {
			if role["RoleName"] != "Test-"+f.name || role["Path"] != RolePath {
				t.Errorf("%s role: name %v path %v, want Test-%s under %s", f.name, role["RoleName"], role["Path"], f.name, RolePath)
			}
			own := "ami-housekeeper-member-" + f.name
			if want := []string{when("arn:${AWS::Partition}:iam::*:role/"+own, orgCondition)}; !slices.Equal(assume, want) {
				t.Errorf("%s may assume %v, want only its own member role %v", f.name, assume, want)
			}
			if env[EnvOrgRoleName] != own {
				t.Errorf("%s: %s = %v, want %s", f.name, EnvOrgRoleName, env[EnvOrgRoleName], own)
			}
			denies := statementsOf(t, st, f, "Deny", "ec2:*")
			if len(denies) != 1 || !reflect.DeepEqual(strs(conditionValue(denies[0], "StringNotEquals", "aws:RequestedRegion")), []string{"eu-west-1", "us-east-1"}) ||
				render(denies[0]["Resource"]) != "*" {
				t.Errorf("%s: EC2 outside the scope's regions is not denied: %v", f.name, denies)
			}
		}
		for _, a := range organizationsReads {
			if got := resourcesAllowed(t, st, f, a); !slices.Equal(got, []string{"*"}) {
				t.Errorf("%s: %s on %v", f.name, a, got)
			}
		}
		for k, v := range orgEnv(t, st, map[string]any{EnvOrgExternalID: "ext-123"}) {
			if !reflect.DeepEqual(env[k], v) {
				t.Errorf("%s: %s = %v, want %v", f.name, k, env[k], v)
			}
		}
	}
	// The roles act on AMIs of any region (one ARN, not one per region).
	tagger := taggerOf(t, st)
	tags := tagKeysCondition(defaultTaggerKeys...)
	if got, want := resourcesAllowed(t, st, tagger, "ec2:CreateTags"),
		[]string{when("arn:${AWS::Partition}:ec2:*::image/*", tags), when("arn:${AWS::Partition}:ec2:*::snapshot/*", tags)}; !slices.Equal(got, want) {
		t.Errorf("tagger CreateTags on %v, want %v", got, want)
	}
	// The sharing guard keeps a cursor per account and region.
	cursor, _ := auditCursor(t, st)
	if got, want := resourcesAllowed(t, st, sharingOf(t, st), "ssm:PutParameter"), []string{parameterARN(cursor), parameterARN(cursor) + "/*"}; !slices.Equal(got, want) {
		t.Errorf("sharing guard PutParameter on %v, want %v", got, want)
	}
	_ = topic
}

// memberRole returns the logical ID and properties of function's member
// role (named <memberRoleName>-<function>), checking that the member stack
// makes one named role per worker function and no other.
func memberRole(t *testing.T, member stackTemplate, function string) (string, map[string]any) {
	t.Helper()
	var named, found []string
	for id, r := range resources(member, "AWS::IAM::Role") {
		name, _ := properties(r)["RoleName"].(string)
		if name == "" || strings.HasSuffix(name, config.ForwarderRoleSuffix) {
			continue
		}
		named = append(named, name)
		if strings.HasSuffix(name, "-"+function) {
			found = append(found, id)
		}
	}
	if len(named) != len(OrgWorkerFunctions) || len(found) != 1 {
		t.Fatalf("member stack roles %v: want one per function (%v), one of them the %s's", named, OrgWorkerFunctions, function)
	}
	return found[0], properties(resources(member, "AWS::IAM::Role")[found[0]])
}

// memberStatements returns a member role's inline statements.
func memberStatements(t *testing.T, role map[string]any) []map[string]any {
	t.Helper()
	policies := list(role["Policies"])
	if len(policies) != 1 {
		t.Fatalf("member role: %d inline policies, want 1", len(policies))
	}
	p, _ := policies[0].(map[string]any)
	doc, _ := p["PolicyDocument"].(map[string]any)
	var out []map[string]any
	for _, s := range list(doc["Statement"]) {
		m, _ := s.(map[string]any)
		out = append(out, m)
	}
	return out
}

// allows says whether any Allow statement names action.
func allows(statements []map[string]any, action string) bool {
	for _, s := range statements {
		if s["Effect"] == "Allow" && slices.Contains(list(s["Action"]), any(action)) {
			return true
		}
	}
	return false
}

// Each function's member role is assumable by that function's central
// role only (not the other functions'), of the organization, with the
// external id when one is set; the roles are made once per account, in
// the first StackSet region. The longest base name accepted still makes
// IAM role names.
func TestOrgMemberRoleTrust(t *testing.T) {
	for _, tc := range []struct {
		name, externalID, roleName string
	}{
		{name: "no external id", roleName: "ami-housekeeper-member"},
		{name: "external id, longest base name", externalID: "ext-123", roleName: strings.Repeat("m", config.MaxMemberRoleNameLength)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOrg()
			o.ExternalID, o.MemberRoleName = tc.externalID, tc.roleName
			o.StackSetRegions = []string{"us-east-1", "eu-west-1"}
			central, member, _ := orgTemplates(t, o, StackProps{})
			conds := member.ToJSON()
			c, _ := (*conds)["Conditions"].(map[string]any)
			for _, f := range []function{taggerOf(t, central), sharingOf(t, central), cleanupOf(t, central)} {
				id, role := memberRole(t, member, f.name)
				if want := tc.roleName + "-" + f.name; role["RoleName"] != want || len(want) > 64 || role["Path"] != nil {
					t.Errorf("%s member role name %v path %v, want %s (at most 64 characters) at /", f.name, role["RoleName"], role["Path"], want)
				}
				doc, _ := role["AssumeRolePolicyDocument"].(map[string]any)
				statements := list(doc["Statement"])
				if len(statements) != 1 {
					t.Fatalf("%s trust policy: %d statements, want 1: %v", f.name, len(statements), statements)
				}
				s, _ := statements[0].(map[string]any)
				if s["Effect"] != "Allow" || s["Action"] != "sts:AssumeRole" || render(principalAWS(s)) != "arn:${AWS::Partition}:iam::${CentralAccountId}:root" {
					t.Errorf("%s trust statement %v: want sts:AssumeRole by the central account", f.name, s)
				}
				// Only the function's own central role, named exactly as the
				// central stack names it.
				want := "arn:${AWS::Partition}:iam::${CentralAccountId}:role/ami-housekeeper/Test-" + f.name
				if got := conditionValue(s, "ArnEquals", "aws:PrincipalArn"); render(got) != want {
					t.Errorf("%s member role trusts %v, want only %s", f.name, got, want)
				}
				_, r := resourceByID(t, central, "AWS::IAM::Role", f.role)
				if "arn:${AWS::Partition}:iam::${CentralAccountId}:role"+r["Path"].(string)+r["RoleName"].(string) != want {
					t.Errorf("central %s role %v%v is not the one trusted, %s", f.name, r["Path"], r["RoleName"], want)
				}
				wantEquals := map[string]any{"aws:PrincipalOrgID": "o-abcdefghij"}
				if tc.externalID != "" {
					wantEquals["sts:ExternalId"] = tc.externalID
				}
				cond, _ := s["Condition"].(map[string]any)
				if !reflect.DeepEqual(cond["StringEquals"], wantEquals) || len(cond) != 2 {
					t.Errorf("%s trust conditions %v, want ArnEquals and StringEquals %v", f.name, cond, wantEquals)
				}
				// IAM is global: one instance makes the role.
				res := resources(member, "AWS::IAM::Role")[id]
				if res["Condition"] != "IsRoleRegion" || !reflect.DeepEqual(c["IsRoleRegion"], map[string]any{"Fn::Equals": []any{ref("AWS::Region"), "us-east-1"}}) {
					t.Errorf("%s member role condition %v (%v), want it made in us-east-1 only", f.name, res["Condition"], c["IsRoleRegion"])
				}
			}
		})
	}
}

// Each member role holds exactly its function's own statements (one set
// of code writes both), over every region it is deployed to, and nothing
// of the other functions': the tagger's cannot deregister, delete or
// change sharing, the guard's cannot deregister or delete. No wildcard
// action, every change conditioned on the account owning the resource,
// tags on their keys, the cleanup's removals denied on protected AMIs;
// each fits in IAM's inline policy limit.
func TestOrgMemberRolePermissions(t *testing.T) {
	never := map[string][]string{
		TaggerFunctionName: {"ec2:DeregisterImage", "ec2:DeleteSnapshot", "ec2:ModifyImageAttribute", "ec2:ModifySnapshotAttribute",
			"ec2:DeleteTags", "ec2:DisableImage", "ec2:EnableImageDeprecation", "ec2:EnableImageBlockPublicAccess", "ssm:GetParameters"},
		SharingFunctionName: {"ec2:DeregisterImage", "ec2:DeleteSnapshot", "ec2:DeleteTags", "ec2:DisableImage", "ec2:EnableImageDeprecation", "ssm:GetParameters"},
		CleanupFunctionName: {"ec2:ModifyImageAttribute", "ec2:ModifySnapshotAttribute", "ec2:EnableImageBlockPublicAccess"},
	}
	for _, doc := range []string{"", "version: 1\nretention: {grace_days: 0, stages: {deprecate: true, disable: true}}\nsharing: {mode: enforce, enable_image_block_public_access: true}\n"} {
		props := StackProps{}
		if doc != "" {
			props.PolicyFile = writeFile(t, "policy.yaml", doc)
		}
		central, member, _ := orgTemplates(t, testOrg(), props)
		key := func(s map[string]any) string {
			b, _ := json.Marshal(map[string]any{"e": s["Effect"], "a": s["Action"], "c": renderTokens(s["Condition"]), "r": renderTokens(s["Resource"])})
			return string(b)
		}
		for _, f := range []function{taggerOf(t, central), cleanupOf(t, central), sharingOf(t, central)} {
			_, role := memberRole(t, member, f.name)
			statements := memberStatements(t, role)
			// What the function's central role does in its own account.
			want := map[string]bool{}
			for _, s := range roleStatements(t, central, f.role) {
				for _, a := range list(s["Action"]) {
					if svc, _, _ := strings.Cut(a.(string), ":"); slices.Contains([]string{"ec2", "autoscaling", "rbin", "imagebuilder"}, svc) ||
						a == "ssm:GetParameters" || a == "ssm:DescribeParameters" || a == "kms:Decrypt" && s["Effect"] == "Deny" {
						want[key(s)] = true
						break
					}
				}
			}
			got := map[string]bool{}
			for _, s := range statements {
				got[key(s)] = true
				if s["Effect"] == "Allow" {
					for _, a := range list(s["Action"]) {
						if strings.Contains(a.(string), "*") {
							t.Errorf("policy %q: %s member role allows wildcard action %v", doc, f.name, a)
						}
						if slices.Contains(destructiveActions, a.(string)) && conditionValue(s, "StringEquals", "aws:ResourceAccount") != "${AWS::AccountId}" {
							t.Errorf("policy %q: %s member role allows %s without aws:ResourceAccount: %v", doc, f.name, a, s)
						}
						if (a == "ec2:CreateTags" || a == "ec2:DeleteTags") && conditionValue(s, "Null", "aws:TagKeys") != "false" {
							t.Errorf("policy %q: %s member role tags without a key condition: %v", doc, f.name, s)
						}
					}
				}
			}
			for k := range got {
				if !want[k] {
					t.Errorf("policy %q: the %s member role has a statement its central role has not: %s", doc, f.name, k)
				}
			}
			for k := range want {
				if !got[k] {
					t.Errorf("policy %q: the %s member role lacks a statement of its central role: %s", doc, f.name, k)
				}
			}
			for _, a := range never[f.name] {
				if allows(statements, a) {
					t.Errorf("policy %q: the %s member role allows %s", doc, f.name, a)
				}
			}
			var protect, regions bool
			for _, s := range statements {
				if s["Effect"] != "Deny" {
					continue
				}
				if slices.Contains(list(s["Action"]), any("ec2:DeregisterImage")) && conditionValue(s, "Null", "ec2:ResourceTag/ami-housekeeper:keep") == "false" {
					protect = true
				}
				if s["Action"] == "ec2:*" && reflect.DeepEqual(strs(conditionValue(s, "StringNotEquals", "aws:RequestedRegion")), []string{"eu-west-1", "us-east-1"}) {
					regions = true
				}
			}
			if f.name == CleanupFunctionName && (!protect || !allows(statements, "ec2:DeregisterImage") || !allows(statements, "ec2:DeleteSnapshot")) {
				t.Errorf("policy %q: the cleanup member role: deregister %v, delete %v, protected AMIs denied %v", doc, allows(statements, "ec2:DeregisterImage"),
					allows(statements, "ec2:DeleteSnapshot"), protect)
			}
			if !regions {
				t.Errorf("policy %q: the %s member role may call EC2 outside the StackSet's regions", doc, f.name)
			}
			b, _ := json.Marshal(role["Policies"].([]any)[0].(map[string]any)["PolicyDocument"])
			// IAM's limit on a role's inline policies, whitespace excluded.
			if len(b) > 10240 {
				t.Errorf("policy %q: %s member role policy of %d characters, more than IAM's 10,240 for inline policies", doc, f.name, len(b))
			}
		}
		// The guard's member role may change sharing; the tagger's only tags.
		if _, role := memberRole(t, member, SharingFunctionName); !allows(memberStatements(t, role), "ec2:ModifyImageAttribute") {
			t.Errorf("policy %q: the sharing member role may not revoke launch permissions", doc)
		}
		if _, role := memberRole(t, member, TaggerFunctionName); !allows(memberStatements(t, role), "ec2:CreateTags") {
			t.Errorf("policy %q: the tagger member role may not tag", doc)
		}
	}
}

// Each member region forwards the events the central bus's rules match to
// the central bus, through a role that may only put events there; in the
// central account's own region, which has its rules already, neither they
// nor the Recycle Bin rules are made. The rules and the role have the
// fixed names the SCP in docs/iam.md names; the role, global, is made in
// the first StackSet region only and named by its ARN elsewhere.
func TestOrgMemberForwarding(t *testing.T) {
	o := testOrg()
	central, member, _ := orgTemplates(t, o, StackProps{})
	rules := resources(member, "AWS::Events::Rule")
	if len(rules) != 2 {
		t.Fatalf("member rules: %d, want 2", len(rules))
	}
	forwardingRole := ""
	for id, r := range resources(member, "AWS::IAM::Role") {
		p := properties(r)
		if p["RoleName"] == o.ForwarderRole() {
			forwardingRole = id
		}
		// No role of the member stack is under /ami-housekeeper/: the SCP
		// lets no one make one there outside the central account.
		if p["Path"] != nil && p["Path"] != "/" {
			t.Errorf("member role %s: path %v, want /", id, p["Path"])
		}
	}
	if forwardingRole == "" {
		t.Fatalf("no member role named %s", o.ForwarderRole())
	}
	wantRoleARN := map[string]any{"Fn::If": []any{"IsRoleRegion", getAttArn(forwardingRole),
		"arn:${AWS::Partition}:iam::${AWS::AccountId}:role/" + o.ForwarderRole()}}
	var patterns []string
	byName := map[string]string{}
	for id, r := range rules {
		p := properties(r)
		b, _ := json.Marshal(p["EventPattern"])
		patterns = append(patterns, string(b))
		name, _ := p["Name"].(string)
		byName[name] = string(b)
		target := ruleTarget(t, member, id)
		if refID(target["Arn"]) != ParamCentralBus {
			t.Errorf("rule %s delivers to %v, want the central bus parameter", id, target["Arn"])
		}
		roleARN, _ := target["RoleArn"].(map[string]any)
		if ifs, _ := roleARN["Fn::If"].([]any); len(ifs) != 3 || !reflect.DeepEqual([]any{ifs[0], ifs[1], render(ifs[2])}, wantRoleARN["Fn::If"]) {
			t.Errorf("rule %s: role %v, want %v", id, target["RoleArn"], wantRoleARN)
		}
		if p["EventBusName"] != nil || p["State"] != "ENABLED" {
			t.Errorf("rule %s: bus %v state %v, want the default bus, enabled", id, p["EventBusName"], p["State"])
		}
	}
	// Every pattern of the central bus's rules has its events forwarded.
	forwarded := ForwardedCloudTrailEvents()
	wantPatterns := []string{
		canonicalJSON(t, stateChangePattern),
		canonicalJSON(t, `{"source":["aws.ec2"],"detail-type":["AWS API Call via CloudTrail"],"detail":{"eventSource":["ec2.amazonaws.com"],"eventName":`+mustJSON(forwarded)+`,"errorCode":[{"exists":false}]}}`),
	}
	if want := map[string]string{o.ForwardStateChangeRule(): wantPatterns[0], o.ForwardCloudTrailRule(): wantPatterns[1]}; !reflect.DeepEqual(byName, want) {
		t.Errorf("forwarding rules by name\n got %v\nwant %v", byName, want)
	}
	slices.Sort(patterns)
	slices.Sort(wantPatterns)
	if !slices.Equal(patterns, wantPatterns) {
		t.Errorf("forwarding patterns\n got %v\nwant %v", patterns, wantPatterns)
	}
	bus, _ := onlyResource(t, central, "AWS::Events::EventBus")
	for id, key := range rulesOn(central, bus) {
		var p struct {
			DetailType []string `json:"detail-type"`
			Detail     struct {
				EventName []string `json:"eventName"`
			} `json:"detail"`
		}
		_ = json.Unmarshal([]byte(key), &p)
		for _, name := range p.Detail.EventName {
			if !slices.Contains(forwarded, name) {
				t.Errorf("central rule %s matches %s, which the members do not forward", id, name)
			}
		}
	}

	// The forwarding role: EventBridge's, allowed events:PutEvents on the
	// central bus and nothing else.
	_, rp := resourceByID(t, member, "AWS::IAM::Role", forwardingRole)
	trust, _ := rp["AssumeRolePolicyDocument"].(map[string]any)
	if want := []any{map[string]any{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": map[string]any{"Service": "events.amazonaws.com"}}}; !reflect.DeepEqual(trust["Statement"], want) {
		t.Errorf("forwarding role trust %v", trust["Statement"])
	}
	check(t, "no policy resources (the roles' policies are inline)", func() { member.ResourceCountIs(jsii.String("AWS::IAM::Policy"), jsii.Number(0)) })
	got := memberStatements(t, rp)
	if want := []map[string]any{{"Action": "events:PutEvents", "Effect": "Allow", "Resource": ref(ParamCentralBus)}}; !reflect.DeepEqual(got, want) {
		t.Errorf("forwarding role statements %v, want %v", got, want)
	}

	// Nothing duplicated in the central account's own region; the roles,
	// global, in the first StackSet region only (the forwarding role too:
	// the central account's other regions forward through it).
	doc := *member.ToJSON()
	for id, r := range doc["Resources"].(map[string]any) {
		res, _ := r.(map[string]any)
		want := "IsNotCentralRegionOfCentralAccount"
		if typ := res["Type"]; typ == "AWS::IAM::Role" {
			want = "IsRoleRegion"
		}
		if res["Condition"] != want {
			t.Errorf("member resource %s (%v): condition %v, want %s", id, res["Type"], res["Condition"], want)
		}
	}
	conditions, _ := doc["Conditions"].(map[string]any)
	wantNot := map[string]any{"Fn::Not": []any{map[string]any{"Fn::And": []any{
		map[string]any{"Fn::Equals": []any{ref("AWS::AccountId"), ref(ParamCentralAccount)}},
		map[string]any{"Fn::Equals": []any{ref("AWS::Region"), ref(ParamCentralRegion)}},
	}}}}
	if !reflect.DeepEqual(conditions["IsNotCentralRegionOfCentralAccount"], wantNot) {
		t.Errorf("condition %v", conditions["IsNotCentralRegionOfCentralAccount"])
	}
	check(t, "member Recycle Bin rules", func() { member.ResourceCountIs(jsii.String("AWS::Rbin::Rule"), jsii.Number(2)) })
	noBin := synthOrgTemplates(t, testOrg(), StackProps{RecycleBin: &RecycleBinProps{}})
	check(t, "no Recycle Bin rules", func() { noBin.ResourceCountIs(jsii.String("AWS::Rbin::Rule"), jsii.Number(0)) })
}

// synthOrgTemplates returns the member template alone.
func synthOrgTemplates(t *testing.T, o config.Organization, props StackProps) stackTemplate {
	t.Helper()
	_, member, _ := orgTemplates(t, o, props)
	return member
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// The StackSet: service-managed, deployed automatically to the target
// OUs' accounts (and removed from an account leaving them), with the
// regions and operation preferences of the configuration, its
// parameters from the central stack, and a template CloudFormation takes.
func TestOrgStackSet(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*config.Organization)
		targets map[string]any
	}{
		{"defaults", func(*config.Organization) {}, map[string]any{"OrganizationalUnitIds": []any{"ou-ab12-cdefghij"}}},
		{"own OUs, regions and preferences, excluded accounts", func(o *config.Organization) {
			o.StackSetTargetOUs = []string{"r-ab12", "ou-ab12-zzzzzzzz"}
			o.StackSetRegions = []string{"us-east-1", "eu-west-1", "ap-south-1"}
			o.StackSetMaxConcurrentPercentage, o.StackSetFailureTolerancePercentage = 50, 0
			o.StackSetCallAs = config.CallAsSelf
			o.Scope.ExcludeAccounts = []string{"111111111111", "222222222222"}
		}, map[string]any{"OrganizationalUnitIds": []any{"r-ab12", "ou-ab12-zzzzzzzz"}, "AccountFilterType": "DIFFERENCE", "Accounts": []any{"111111111111", "222222222222"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOrg()
			tc.edit(&o)
			central, _, set := orgTemplates(t, o, StackProps{})
			bus, _ := onlyResource(t, central, "AWS::Events::EventBus")
			var regions []any
			for _, r := range o.StackSetRegions {
				regions = append(regions, r)
			}
			want := map[string]any{
				"StackSetName":    "Test-member",
				"PermissionModel": "SERVICE_MANAGED",
				"AutoDeployment":  map[string]any{"Enabled": true, "RetainStacksOnAccountRemoval": false},
				"CallAs":          o.StackSetCallAs,
				"Capabilities":    []any{"CAPABILITY_NAMED_IAM"},
				"OperationPreferences": map[string]any{
					"FailureTolerancePercentage": float64(o.StackSetFailureTolerancePercentage),
					"MaxConcurrentPercentage":    float64(o.StackSetMaxConcurrentPercentage),
					"RegionConcurrencyType":      "PARALLEL",
					"ConcurrencyMode":            "SOFT_FAILURE_TOLERANCE",
				},
				"StackInstancesGroup": []any{map[string]any{"DeploymentTargets": tc.targets, "Regions": regions}},
				"Parameters": []any{
					map[string]any{"ParameterKey": ParamCentralAccount, "ParameterValue": ref("AWS::AccountId")},
					map[string]any{"ParameterKey": ParamCentralRegion, "ParameterValue": ref("AWS::Region")},
					map[string]any{"ParameterKey": ParamCentralBus, "ParameterValue": getAttArn(bus)},
				},
				"ManagedExecution": map[string]any{"Active": true},
			}
			for k, v := range want {
				if !reflect.DeepEqual(set[k], v) {
					t.Errorf("StackSet %s\n got %v\nwant %v", k, set[k], v)
				}
			}
			body, _ := set["TemplateBody"].(string)
			if len(body) > MaxTemplateBodyBytes || len(body) < 1000 {
				t.Errorf("TemplateBody of %d bytes; CloudFormation takes at most %d", len(body), MaxTemplateBodyBytes)
			}
			// A template that deploys without the CDK's bootstrap: no
			// BootstrapVersion parameter or rule, no CDK metadata.
			var doc map[string]any
			_ = json.Unmarshal([]byte(body), &doc)
			params, _ := doc["Parameters"].(map[string]any)
			if len(params) != 3 || doc["Rules"] != nil || strings.Contains(body, "AWS::CDK::Metadata") || strings.Contains(body, "aws:cdk:path") {
				t.Errorf("member template parameters %v, rules %v: want only the three central ones, no CDK metadata", slices.Sorted(maps.Keys(params)), doc["Rules"])
			}
			check(t, "StackSet output", func() { central.HasOutput(jsii.String("MemberStackSetName"), map[string]any{"Value": "Test-member"}) })
		})
	}
}

// The app in organization mode: one central stack, in the configured
// region, with the StackSet; single-account mode has none of it.
func TestOrgApp(t *testing.T) {
	cfg := config.Default()
	cfg.DistDir = testDistWith(t, append(functionNames, DispatcherFunctionName)...)
	cfg.Regions = []string{"eu-west-1"}
	cfg.Organization = testOrg()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	stacks := NewApp(app, cfg)
	if len(stacks) != 1 || *stacks[0].Region() != "eu-west-1" {
		t.Fatalf("%d stacks; want one central stack in eu-west-1", len(stacks))
	}
	tmpl := assertions.Template_FromStack(stacks[0], nil)
	for typ, n := range map[string]int{"AWS::CloudFormation::StackSet": 1, "AWS::Events::EventBus": 1, "AWS::DynamoDB::Table": 1, "AWS::Lambda::Function": 4} {
		check(t, typ, func() { tmpl.ResourceCountIs(jsii.String(typ), jsii.Number(n)) })
	}

	single := synth(t, StackProps{})
	for _, typ := range []string{"AWS::CloudFormation::StackSet", "AWS::Events::EventBus", "AWS::DynamoDB::Table", "AWS::Events::EventBusPolicy"} {
		check(t, "single-account "+typ, func() { single.ResourceCountIs(jsii.String(typ), jsii.Number(0)) })
	}
	for _, f := range allFunctions(t, single) {
		if _, ok := envOf(f)[EnvOrgScope]; ok {
			t.Errorf("single-account %s has %s", f.name, EnvOrgScope)
		}
	}
}

// One role per function serves every account, so it covers every override
// of the policy: an OU's override enabling a stage or dropping the grace
// period widens the cleanup's roles (central and member) to it, and no
// other function's member role.
func TestOverridesWidenTheRoles(t *testing.T) {
	doc := "version: 1\nretention: {grace_days: 7}\noverrides:\n" +
		"  - name: sandboxes\n    ous: [ou-ab12-sandbox1]\n    retention: {grace_days: 0, stages: {disable: true}}\n"
	for _, tc := range []struct {
		name string
		doc  string
		// widened: the override's stage and removal without a mark.
		widened bool
	}{
		{"base only", "version: 1\nretention: {grace_days: 7}\n", false},
		{"with the sandbox override", doc, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := StackProps{PolicyFile: writeFile(t, "policy.yaml", tc.doc)}
			central, member, _ := orgTemplates(t, testOrg(), props)
			_, role := memberRole(t, member, CleanupFunctionName)
			for _, f := range []string{TaggerFunctionName, SharingFunctionName} {
				_, other := memberRole(t, member, f)
				if st := memberStatements(t, other); allows(st, "ec2:DisableImage") || allows(st, "ec2:DeregisterImage") {
					t.Errorf("the %s member role was widened to the cleanup's override", f)
				}
			}
			for where, statements := range map[string][]map[string]any{
				"central cleanup": roleStatements(t, central, cleanupOf(t, central).role),
				"member cleanup":  memberStatements(t, role),
			} {
				var disable, marked, deregister bool
				for _, s := range statements {
					if s["Effect"] != "Allow" {
						continue
					}
					actions := list(s["Action"])
					disable = disable || slices.Contains(actions, any("ec2:DisableImage"))
					if slices.Contains(actions, any("ec2:DeregisterImage")) {
						deregister = true
						marked = conditionValue(s, "Null", "ec2:ResourceTag/ami-housekeeper:delete-after") == "false"
					}
				}
				if !deregister || disable != tc.widened || marked == tc.widened {
					t.Errorf("%s role: DisableImage %v, DeregisterImage needs the mark %v; want %v and %v", where, disable, marked, tc.widened, !tc.widened)
				}
			}
			// Single-account mode covers the overrides the same way.
			single := synth(t, props)
			if got := len(statementsOf(t, single, cleanupOf(t, single), "Allow", "ec2:DisableImage")) > 0; got != tc.widened {
				t.Errorf("single-account cleanup role: DisableImage %v, want %v", got, tc.widened)
			}
		})
	}
}

// worstCase resolves a template value of a function's environment to the
// longest string it can become at deploy time in st (whose stack name is
// stackName), or fails the test for a token it does not know.
func worstCase(t *testing.T, st stackTemplate, stackName, key string, v any) string {
	t.Helper()
	const (
		// Longest partition (aws-us-gov) and region (us-isof-south-1 has
		// 15) with room to spare; CloudFormation's random suffix of a
		// generated name is at most 13 characters.
		partition = "aws-us-gov"
		region    = "xx-xxxxxxxxx-10"
		account   = "123456789012"
		suffix    = "-ABCDEFGHIJKLM"
	)
	generated := func(id string) string { return stackName + "-" + id + suffix }
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if id := refID(v); id != "" {
			if id == "AWS::AccountId" {
				return account
			}
			typed := func(typ string) (map[string]any, bool) {
				r, ok := resources(st, typ)[id]
				return properties(r), ok
			}
			if p, ok := typed("AWS::SSM::Parameter"); ok {
				if name, isString := p["Name"].(string); isString {
					return name
				}
			}
			if p, ok := typed("AWS::DynamoDB::Table"); ok && p["TableName"] == nil {
				return generated(id)
			}
			if p, ok := typed("AWS::SNS::Topic"); ok && p["TopicName"] == nil {
				return "arn:" + partition + ":sns:" + region + ":" + account + ":" + generated(id)
			}
		}
		if id := getAttID(v, "Arn"); id != "" {
			if _, ok := resources(st, "AWS::KMS::Key")[id]; ok {
				return "arn:" + partition + ":kms:" + region + ":" + account + ":key/12345678-1234-1234-1234-123456789012"
			}
		}
	}
	t.Fatalf("%s = %v: no worst case known for this value; teach worstCase its longest form", key, v)
	return ""
}

// Every central function's environment fits Lambda's 4 KB (as Lambda
// measures it, the JSON of its variables) with the longest stack name and
// any scope the configuration accepts: its variables other than the scope
// and the external id (their keys counted, their values not) take at most
// config.OrgEnvironmentReserve, which the configuration leaves them.
func TestOrgEnvironmentFits(t *testing.T) {
	stackName := "S" + strings.Repeat("x", config.MaxOrgStackNameLength-1)
	o := testOrg()
	o.ExternalID = "ext-1"
	st := synthOrg(t, o, StackProps{
		StackProps: awscdk.StackProps{StackName: jsii.String(stackName)},
		PolicyFile: writeFile(t, "policy.json", `{"version": 1}`),
	})
	largest, largestName := 0, ""
	seen := 0
	for id, r := range resources(st, "AWS::Lambda::Function") {
		vars := envOf(function{props: properties(r)})
		if _, ok := vars[EnvOrgScope]; !ok {
			continue
		}
		seen++
		resolved := map[string]string{}
		for k, v := range vars {
			resolved[k] = worstCase(t, st, stackName, k, v)
		}
		// Their values are the configuration's to bound.
		resolved[EnvOrgScope], resolved[EnvOrgExternalID] = "", ""
		b, err := json.Marshal(resolved)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > largest {
			largest, largestName = len(b), id
		}
	}
	if seen != 4 {
		t.Fatalf("%d functions with %s, want the tagger, the cleanup, the sharing guard and the dispatcher", seen, EnvOrgScope)
	}
	t.Logf("largest environment without the scope and the external id: %s, %d bytes", largestName, largest)
	if largest > config.OrgEnvironmentReserve {
		t.Errorf("%s: %d bytes of environment besides the scope and the external id, more than config.OrgEnvironmentReserve (%d): raise it, so the configuration leaves the scope less",
			largestName, largest, config.OrgEnvironmentReserve)
	}
}

// A unit waiting the schedule's shortest interval is alarmed; a schedule
// whose interval exceeds what the queue keeps is alarmed an hour before the
// queue drops the unit.
func TestUnitsAgeLimit(t *testing.T) {
	for _, tc := range []struct {
		schedule string
		want     time.Duration
	}{
		{"rate(30 minutes)", 30 * time.Minute},
		{"cron(0 3 * * ? *)", 24 * time.Hour},
		{"cron(0 3 ? * MON-FRI *)", 24 * time.Hour},
		{"cron(0 3 ? * MON,THU *)", 72 * time.Hour},
		{"cron(0 3 ? * MON *)", 4*24*time.Hour - time.Hour},
		{"cron(0 3 29 2 ? *)", 4*24*time.Hour - time.Hour}, // no two runs in the measured span
	} {
		s, err := config.ParseSchedule(tc.schedule)
		if err != nil {
			t.Fatal(err)
		}
		if got := unitsAgeLimit(s); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.schedule, got, tc.want)
		}
	}
}

// By default each job's units run 12 at once: the organization benchmark
// needs 11 to finish 50 accounts × 4 regions × 2,000 AMIs inside the hour
// (docs/benchmarks-org.md).
func TestOrgWorkerConcurrencyDefault(t *testing.T) {
	st := synthOrg(t, testOrg(), StackProps{})
	for _, name := range []string{"Test-cleanup-units.fifo", "Test-audit-units.fifo"} {
		queue, _ := queueByName(t, st, name)
		check(t, name+" mapping concurrency", func() {
			st.ResourcePropertiesCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), map[string]any{
				"EventSourceArn": getAttArn(queue),
				"ScalingConfig":  map[string]any{"MaximumConcurrency": 12},
			}, jsii.Number(1))
		})
	}
}

// In organization mode the tagger's first invocation after a cold start
// loads the organization's directory before its first event (tens of
// seconds for a large OU tree): its timeout is longer there, and its event
// queue's visibility timeout follows (Lambda requires at least the
// function's). The sharing guard already has 15 minutes; single-account
// mode keeps 30 s.
func TestOrgEventFunctionTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		st                     stackTemplate
		tagger, sharingAtLeast int
	}{
		{"single account", synth(t, StackProps{}), taggerTimeoutSeconds, taggerTimeoutSeconds},
		{"organization", synthOrg(t, testOrg(), StackProps{}), taggerOrgTimeoutSeconds, taggerOrgTimeoutSeconds},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tagger := taggerOf(t, tc.st)
			if got := tagger.props["Timeout"]; got != float64(tc.tagger) {
				t.Errorf("tagger timeout %v, want %d", got, tc.tagger)
			}
			checkResource(t, tc.st, "tagger event queue", "AWS::SQS::Queue", tagger.queue, map[string]any{
				"VisibilityTimeout": tc.tagger + 60,
			})
			if got, _ := sharingOf(t, tc.st).props["Timeout"].(float64); got < float64(tc.sharingAtLeast) {
				t.Errorf("sharing guard timeout %v, want at least %d", got, tc.sharingAtLeast)
			}
		})
	}
}
