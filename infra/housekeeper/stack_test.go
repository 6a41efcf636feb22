package housekeeper

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// The tagger's rules must match these patterns exactly: a broader pattern
// would invoke the function for unrelated events, a narrower one miss AMIs.
const (
	cloudTrailPattern = `{"source":["aws.ec2"],"detail-type":["AWS API Call via CloudTrail"],` +
		`"detail":{"eventSource":["ec2.amazonaws.com"],"eventName":["CreateImage","CopyImage","RegisterImage"],` +
		`"errorCode":[{"exists":false}]}}`
	stateChangePattern = `{"source":["aws.ec2"],"detail-type":["EC2 AMI State Change"],"detail":{"State":["available"]}}`
)

// baseActions are all the tagger may do without a policy file.
var baseActions = []string{
	"ec2:CreateTags",
	"ec2:DescribeImages",
	"ec2:DescribeTags",
	"ec2:DescribeSnapshots",
	"logs:CreateLogStream",
	"logs:PutLogEvents",
	"sqs:SendMessage",
}

// validPolicy is the smallest document the policy package accepts.
const validPolicy = `{"version": 1}`

// testDist makes a dist folder with a dummy tagger binary.
func testDist(t *testing.T) string {
	t.Helper()
	dist := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dist, TaggerFunctionName), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dist, TaggerFunctionName, "bootstrap"), []byte("dummy"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dist
}

// writeFile writes content to a new file in a temporary folder.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// newTestStack builds the stack in a fresh app; props.DistDir defaults to a dummy dist.
func newTestStack(t *testing.T, props StackProps) awscdk.Stack {
	t.Helper()
	if props.DistDir == "" {
		props.DistDir = testDist(t)
	}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	return NewHousekeeperStack(app, "Test", &props)
}

// synth returns the template of a stack built with props.
func synth(t *testing.T, props StackProps) assertions.Template {
	t.Helper()
	return assertions.Template_FromStack(newTestStack(t, props), nil)
}

// check runs a CDK assertion, which panics on mismatch, as a test error.
func check(t *testing.T, what string, assertion func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	assertion()
}

// panicMessage runs f and returns what it panicked with, or "" if it did not.
func panicMessage(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

// resources returns the template's resources of a type, by logical ID.
func resources(tmpl assertions.Template, typ string) map[string]map[string]any {
	found := tmpl.FindResources(jsii.String(typ), nil)
	out := map[string]map[string]any{}
	for id, r := range *found {
		out[id] = *r
	}
	return out
}

// onlyResource returns the logical ID and properties of the single resource of a type.
func onlyResource(t *testing.T, tmpl assertions.Template, typ string) (string, map[string]any) {
	t.Helper()
	rs := resources(tmpl, typ)
	if len(rs) != 1 {
		t.Fatalf("want 1 %s, got %d", typ, len(rs))
	}
	for id, r := range rs {
		props, _ := r["Properties"].(map[string]any)
		return id, props
	}
	panic("unreachable")
}

func ref(id string) map[string]any       { return map[string]any{"Ref": id} }
func getAttArn(id string) map[string]any { return map[string]any{"Fn::GetAtt": []any{id, "Arn"}} }

// render turns a CloudFormation string expression into one readable string,
// e.g. {"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"}]]} -> "arn:${AWS::Partition}".
func render(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if r, ok := v["Ref"].(string); ok {
			return "${" + r + "}"
		}
		if g, ok := v["Fn::GetAtt"].([]any); ok && len(g) == 2 {
			return fmt.Sprintf("${%v.%v}", g[0], g[1])
		}
		if j, ok := v["Fn::Join"].([]any); ok && len(j) == 2 {
			sep, _ := j[0].(string)
			parts, _ := j[1].([]any)
			var out []string
			for _, p := range parts {
				out = append(out, render(p))
			}
			return strings.Join(out, sep)
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// list returns a CloudFormation "string or list" value as a list.
func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// roleStatements returns the statements of every AWS::IAM::Policy attached to the role.
func roleStatements(t *testing.T, tmpl assertions.Template, roleID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for id, r := range resources(tmpl, "AWS::IAM::Policy") {
		props := r["Properties"].(map[string]any)
		if !slices.ContainsFunc(list(props["Roles"]), func(v any) bool { return reflect.DeepEqual(v, ref(roleID)) }) {
			continue
		}
		doc := props["PolicyDocument"].(map[string]any)
		for _, s := range list(doc["Statement"]) {
			st, ok := s.(map[string]any)
			if !ok {
				t.Fatalf("policy %s: statement is not an object: %v", id, s)
			}
			out = append(out, st)
		}
	}
	return out
}

// taggerIDs returns the logical IDs of the tagger function, its role, log group and DLQ.
func taggerIDs(t *testing.T, tmpl assertions.Template) (fn, role, logGroup, dlq string) {
	t.Helper()
	fn, props := onlyResource(t, tmpl, "AWS::Lambda::Function")
	roleArn, _ := props["Role"].(map[string]any)["Fn::GetAtt"].([]any)
	if len(roleArn) != 2 {
		t.Fatalf("function role is not a role in the stack: %v", props["Role"])
	}
	role = roleArn[0].(string)
	logGroup, _ = onlyResource(t, tmpl, "AWS::Logs::LogGroup")
	dlq, _ = onlyResource(t, tmpl, "AWS::SQS::Queue")
	return fn, role, logGroup, dlq
}

func TestTaggerFunction(t *testing.T) {
	tmpl := synth(t, StackProps{})
	_, _, logGroup, dlq := taggerIDs(t, tmpl)

	check(t, "function", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"Runtime":       "provided.al2023",
			"Architectures": []any{"arm64"},
			"Handler":       "bootstrap",
			"MemorySize":    128,
			"Timeout":       30,
			"Environment": map[string]any{"Variables": assertions.Match_ObjectEquals(&map[string]any{
				EnvAccountID: ref("AWS::AccountId"),
				EnvLogLevel:  "info",
			})},
			"LoggingConfig":                map[string]any{"LogGroup": ref(logGroup)},
			"DeadLetterConfig":             map[string]any{"TargetArn": getAttArn(dlq)},
			"ReservedConcurrentExecutions": assertions.Match_Absent(),
		})
	})
	check(t, "async invoke config", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), map[string]any{
			"MaximumRetryAttempts":     2,
			"MaximumEventAgeInSeconds": 3600,
		})
	})
	check(t, "log group", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{"RetentionInDays": 30})
	})
	check(t, "DLQ", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::SQS::Queue"), map[string]any{"SqsManagedSseEnabled": true})
		tmpl.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
			"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"Effect":    "Deny",
				"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
			})})},
		})
	})
}

func TestLogRetention(t *testing.T) {
	tmpl := synth(t, StackProps{LogRetention: awslogs.RetentionDays_ONE_WEEK})
	check(t, "log group", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{"RetentionInDays": 7})
	})
}

func TestTaggerRules(t *testing.T) {
	tmpl := synth(t, StackProps{})
	fn, _, _, dlq := taggerIDs(t, tmpl)

	check(t, "rule count", func() { tmpl.ResourceCountIs(jsii.String("AWS::Events::Rule"), jsii.Number(2)) })
	for name, pattern := range map[string]string{"CloudTrail": cloudTrailPattern, "state change": stateChangePattern} {
		var want map[string]any
		if err := json.Unmarshal([]byte(pattern), &want); err != nil {
			t.Fatal(err)
		}
		check(t, name+" rule", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{
				"EventPattern": assertions.Match_ObjectEquals(&want),
				"State":        "ENABLED",
				"EventBusName": assertions.Match_Absent(), // the default bus
				"Targets": assertions.Match_ArrayEquals(&[]any{assertions.Match_ObjectLike(&map[string]any{
					"Arn":              getAttArn(fn),
					"DeadLetterConfig": map[string]any{"Arn": getAttArn(dlq)},
					"RetryPolicy": map[string]any{
						"MaximumRetryAttempts":     2,
						"MaximumEventAgeInSeconds": 3600,
					},
				})}),
			})
		})
	}

	// Independently of the matchers' semantics: the two patterns, and nothing else.
	var got []string
	for _, r := range resources(tmpl, "AWS::Events::Rule") {
		b, _ := json.Marshal(r["Properties"].(map[string]any)["EventPattern"])
		got = append(got, string(b))
	}
	want := []string{canonicalJSON(t, cloudTrailPattern), canonicalJSON(t, stateChangePattern)}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("rule patterns:\n got %s\nwant %s", got, want)
	}

	// Each rule may invoke the function.
	check(t, "invoke permissions", func() {
		tmpl.ResourceCountIs(jsii.String("AWS::Lambda::Permission"), jsii.Number(2))
		tmpl.AllResourcesProperties(jsii.String("AWS::Lambda::Permission"), map[string]any{
			"Action":       "lambda:InvokeFunction",
			"FunctionName": getAttArn(fn),
			"Principal":    "events.amazonaws.com",
		})
	})
}

// canonicalJSON re-encodes a JSON document with sorted keys and no spaces.
func canonicalJSON(t *testing.T, doc string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// checkPermissions asserts the tagger role allows exactly wantActions, and
// returns the resources of each action for further checks.
func checkPermissions(t *testing.T, tmpl assertions.Template, wantActions []string) map[string][]string {
	t.Helper()
	_, role, logGroup, dlq := taggerIDs(t, tmpl)

	check(t, "role", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::IAM::Role"), map[string]any{
			"AssumeRolePolicyDocument": map[string]any{"Statement": []any{map[string]any{
				"Action":    "sts:AssumeRole",
				"Effect":    "Allow",
				"Principal": map[string]any{"Service": "lambda.amazonaws.com"},
			}}},
			"ManagedPolicyArns": assertions.Match_Absent(),
			"Policies":          assertions.Match_Absent(),
		})
	})
	check(t, "no managed policies", func() { tmpl.ResourceCountIs(jsii.String("AWS::IAM::ManagedPolicy"), jsii.Number(0)) })

	got := map[string]bool{}
	resourcesOf := map[string][]string{}
	for _, st := range roleStatements(t, tmpl, role) {
		if st["Effect"] != "Allow" {
			t.Errorf("unexpected statement effect: %v", st)
		}
		if st["NotAction"] != nil || st["NotResource"] != nil {
			t.Errorf("statement uses NotAction/NotResource: %v", st)
		}
		for _, a := range list(st["Action"]) {
			action, ok := a.(string)
			if !ok || strings.Contains(action, "*") {
				t.Errorf("wildcard or non-string action %v in %v", a, st)
				continue
			}
			got[action] = true
			for _, r := range list(st["Resource"]) {
				resourcesOf[action] = append(resourcesOf[action], render(r))
			}
		}
	}
	var gotActions []string
	for a := range got {
		gotActions = append(gotActions, a)
	}
	sort.Strings(gotActions)
	want := slices.Clone(wantActions)
	sort.Strings(want)
	if !slices.Equal(gotActions, want) {
		t.Errorf("role actions:\n got %v\nwant %v", gotActions, want)
	}

	expectResources := map[string][]string{
		"ec2:CreateTags":        {"arn:${AWS::Partition}:ec2:${AWS::Region}::image/*", "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*"},
		"ec2:DescribeImages":    {"*"},
		"ec2:DescribeSnapshots": {"*"},
		"ec2:DescribeTags":      {"*"},
		"logs:CreateLogStream":  {"${" + logGroup + ".Arn}"},
		"logs:PutLogEvents":     {"${" + logGroup + ".Arn}"},
		"sqs:SendMessage":       {"${" + dlq + ".Arn}"},
	}
	for action, want := range expectResources {
		got := slices.Clone(resourcesOf[action])
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s resources:\n got %v\nwant %v", action, got, want)
		}
	}
	return resourcesOf
}

func TestTaggerPermissions(t *testing.T) {
	tmpl := synth(t, StackProps{})
	checkPermissions(t, tmpl, baseActions)
	check(t, "no policy parameter", func() { tmpl.ResourceCountIs(jsii.String("AWS::SSM::Parameter"), jsii.Number(0)) })
}

func TestOutputs(t *testing.T) {
	tmpl := synth(t, StackProps{})
	fn, _, _, dlq := taggerIDs(t, tmpl)
	check(t, "function name", func() {
		tmpl.HasOutput(jsii.String("TaggerFunctionName"), map[string]any{"Value": ref(fn)})
	})
	check(t, "DLQ URL", func() {
		tmpl.HasOutput(jsii.String("TaggerDeadLetterQueueUrl"), map[string]any{"Value": ref(dlq)})
	})
}

func TestPolicyFile(t *testing.T) {
	path := writeFile(t, "policy.json", validPolicy)
	tmpl := synth(t, StackProps{PolicyFile: path})
	param, props := onlyResource(t, tmpl, "AWS::SSM::Parameter")

	if props["Type"] != "String" || props["Tier"] != "Standard" || props["Value"] != validPolicy || props["Name"] != "/Test/policy" {
		t.Errorf("policy parameter: %v", props)
	}
	check(t, "env var", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"Environment": map[string]any{"Variables": map[string]any{EnvPolicyParameter: ref(param)}},
		})
	})
	resourcesOf := checkPermissions(t, tmpl, append(slices.Clone(baseActions), "ssm:GetParameter"))
	// The parameter's Ref is its name, "/Test/policy", which supplies the slash.
	want := []string{"arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${" + param + "}"}
	if got := resourcesOf["ssm:GetParameter"]; !slices.Equal(got, want) {
		t.Errorf("ssm:GetParameter resources:\n got %v\nwant %v", got, want)
	}
}

func TestLargePolicyFileUsesAdvancedTier(t *testing.T) {
	// Whitespace keeps the document valid while exceeding 4 KB.
	doc := `{"version": 1` + strings.Repeat(" ", 5000) + `}`
	tmpl := synth(t, StackProps{PolicyFile: writeFile(t, "policy.json", doc)})
	check(t, "tier", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::SSM::Parameter"), map[string]any{"Tier": "Advanced"})
	})

	doc = `{"version": 1` + strings.Repeat(" ", 9000) + `}`
	msg := panicMessage(func() { newTestStack(t, StackProps{PolicyFile: writeFile(t, "policy.json", doc)}) })
	if !strings.Contains(msg, "more than the 8192") {
		t.Errorf("policy over 8 KB: want a size error, got %q", msg)
	}
}

func TestBadPolicyFileFailsSynth(t *testing.T) {
	bad := `{"version": 2}`
	path := writeFile(t, "policy.json", bad)
	_, err := policy.Parse([]byte(bad), path)
	if err == nil {
		t.Fatalf("policy.Parse accepted %s; pick a document it rejects", bad)
	}
	msg := panicMessage(func() { newTestStack(t, StackProps{PolicyFile: path}) })
	if msg == "" || !strings.Contains(msg, err.Error()) {
		t.Errorf("want synthesis to fail with %q, got %q", err, msg)
	}

	missing := filepath.Join(t.TempDir(), "nope.json")
	msg = panicMessage(func() { newTestStack(t, StackProps{PolicyFile: missing}) })
	if !strings.Contains(msg, "policy file") || !strings.Contains(msg, "nope.json") {
		t.Errorf("missing policy file: got %q", msg)
	}
}

func TestMissingBootstrapFailsSynth(t *testing.T) {
	msg := panicMessage(func() { newTestStack(t, StackProps{DistDir: t.TempDir()}) })
	if !strings.Contains(msg, filepath.Join(TaggerFunctionName, "bootstrap")) {
		t.Errorf("want an error naming tagger/bootstrap, got %q", msg)
	}
}

// Failures and given-up events must reach people: two alarms per function,
// both notifying the encrypted topic.
func TestAlarmsNotifyEncryptedTopic(t *testing.T) {
	tmpl := synth(t, StackProps{})
	_, _, _, dlq := taggerIDs(t, tmpl)
	topics := tmpl.FindResources(jsii.String("AWS::SNS::Topic"), nil)
	if len(*topics) != 1 {
		t.Fatalf("want one notification topic, got %d", len(*topics))
	}
	var topic string
	for id, res := range *topics {
		topic = id
		props, _ := (*res)["Properties"].(map[string]any)
		if props["KmsMasterKeyId"] == nil {
			t.Errorf("topic %s is not encrypted: %v", id, props)
		}
	}
	check(t, "key rotation", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]any{"EnableKeyRotation": true})
	})
	check(t, "two alarms", func() { tmpl.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(2)) })
	check(t, "errors alarm", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
			"MetricName": "Errors", "Namespace": "AWS/Lambda", "Threshold": 1,
			"AlarmActions": []any{ref(topic)},
		})
	})
	check(t, "DLQ alarm", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
			"MetricName": "ApproximateNumberOfMessagesVisible", "Namespace": "AWS/SQS",
			"Dimensions":   []any{map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": []any{dlq, "QueueName"}}}},
			"AlarmActions": []any{ref(topic)},
		})
	})
	check(t, "topic output", func() {
		tmpl.HasOutput(jsii.String("NotificationTopicArn"), map[string]any{"Value": ref(topic)})
	})
}
