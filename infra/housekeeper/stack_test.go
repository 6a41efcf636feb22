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
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// The tagger's rules must match these patterns exactly: a broader pattern
// would invoke the function for unrelated events, a narrower one miss AMIs.
const (
	cloudTrailPattern = `{"source":["aws.ec2"],"detail-type":["AWS API Call via CloudTrail"],` +
		`"detail":{"eventSource":["ec2.amazonaws.com"],"eventName":["CreateImage","CopyImage","RegisterImage"],` +
		`"errorCode":[{"exists":false}]}}`
	stateChangePattern = `{"source":["aws.ec2"],"detail-type":["EC2 AMI State Change"],"detail":{"State":["available"]}}`
)

// sharingPattern is the sharing guard's CloudTrail rule: successful changes of
// AMI launch permissions or snapshot create-volume permissions, and the
// calls that bring an AMI or snapshot back with whatever sharing it had. The
// guard also has a rule with stateChangePattern (copies and imports arrive
// with their source's sharing) and a schedule.
const sharingPattern = `{"source":["aws.ec2"],"detail-type":["AWS API Call via CloudTrail"],` +
	`"detail":{"eventSource":["ec2.amazonaws.com"],"eventName":["ModifyImageAttribute","ModifySnapshotAttribute",` +
	`"RestoreImageFromRecycleBin","EnableImage","RestoreSnapshotFromRecycleBin"],` +
	`"errorCode":[{"exists":false}]}}`

// The schedules the cleanup and the sharing audit run on without StackProps
// saying otherwise.
const (
	defaultCleanupSchedule = "cron(0 3 * * ? *)"
	defaultSharingSchedule = "cron(0 4 * * ? *)"
)

// defaultBusARN is how render shows the ARN of the account's default event bus.
const defaultBusARN = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"

// auditCursorName is the sharing audit's cursor parameter in the stack "Test":
// stack-scoped, so two stacks in one account never share a cursor.
const auditCursorName = "/Test/sharing-audit-cursor"

// The ARN patterns, as rendered by render, of every AMI and every snapshot in
// the stack's region.
const (
	imageARN    = "arn:${AWS::Partition}:ec2:${AWS::Region}::image/*"
	snapshotARN = "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*"
)

// validPolicy is the smallest document the policy package accepts.
const validPolicy = `{"version": 1}`

// functionNames are the folders under the dist folder, one per function.
var functionNames = []string{TaggerFunctionName, CleanupFunctionName, SharingFunctionName}

// bootstrapContent is the dummy binary testDist writes for a function. Each
// function's is different, so a function's code asset tells which binary it runs.
func bootstrapContent(name string) string { return "dummy " + name + " bootstrap" }

// testDist makes a dist folder with a dummy bootstrap for every function.
func testDist(t *testing.T) string {
	t.Helper()
	return testDistWith(t, functionNames...)
}

// testDistWith makes a dist folder with a dummy bootstrap for the named functions only.
func testDistWith(t *testing.T, names ...string) string {
	t.Helper()
	dist := t.TempDir()
	for _, name := range names {
		if err := os.MkdirAll(filepath.Join(dist, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dist, name, "bootstrap"), []byte(bootstrapContent(name)), 0o755); err != nil {
			t.Fatal(err)
		}
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

// stackTemplate is a synthesized template with the folder its assets were
// staged in, where a function's code can be looked up.
type stackTemplate struct {
	assertions.Template
	assetDir string
}

// synth returns the template of a stack built with props.
func synth(t *testing.T, props StackProps) stackTemplate {
	t.Helper()
	stack := newTestStack(t, props)
	return stackTemplate{
		Template: assertions.Template_FromStack(stack, nil),
		assetDir: *awscdk.Stage_Of(stack).AssetOutdir(),
	}
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

// properties returns the Properties of a resource.
func properties(r map[string]any) map[string]any {
	props, _ := r["Properties"].(map[string]any)
	return props
}

// onlyResource returns the logical ID and properties of the single resource of a type.
func onlyResource(t *testing.T, tmpl assertions.Template, typ string) (string, map[string]any) {
	t.Helper()
	rs := resources(tmpl, typ)
	if len(rs) != 1 {
		t.Fatalf("want 1 %s, got %d", typ, len(rs))
	}
	for id, r := range rs {
		return id, properties(r)
	}
	panic("unreachable")
}

// checkResource asserts that the resource with logical ID id is a typ whose
// properties match pattern, with the semantics of HasResourceProperties
// (assertions.Match_ObjectLike) but for this one resource only.
func checkResource(t *testing.T, tmpl assertions.Template, what, typ, id string, pattern map[string]any) {
	t.Helper()
	r, ok := resources(tmpl, typ)[id]
	if !ok {
		t.Errorf("%s: no %s with logical ID %s", what, typ, id)
		return
	}
	check(t, what, func() {
		res := assertions.Match_ObjectLike(&pattern).Test(properties(r))
		if *res.HasFailed() {
			t.Errorf("%s: %s %s does not match:\n%s", what, typ, id, *res.RenderMismatch())
		}
	})
}

func ref(id string) map[string]any       { return map[string]any{"Ref": id} }
func getAttArn(id string) map[string]any { return map[string]any{"Fn::GetAtt": []any{id, "Arn"}} }

// refID returns the logical ID in {"Ref": id}, or "".
func refID(v any) string {
	m, _ := v.(map[string]any)
	id, _ := m["Ref"].(string)
	return id
}

// getAttID returns the logical ID in {"Fn::GetAtt": [id, attr]}, or "".
func getAttID(v any, attr string) string {
	m, _ := v.(map[string]any)
	g, _ := m["Fn::GetAtt"].([]any)
	if len(g) != 2 || g[1] != attr {
		return ""
	}
	id, _ := g[0].(string)
	return id
}

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

// arnOf is how render shows the ARN attribute of a resource.
func arnOf(id string) string { return "${" + id + ".Arn}" }

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
		props := properties(r)
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

// function is a housekeeper function's logical ID, its properties, and the
// logical IDs of the resources it references: its role, log group and DLQ.
type function struct {
	name                    string
	id, role, logGroup, dlq string
	// queue is the SQS queue its event source mapping reads ("" if none).
	queue string
	props map[string]any
}

// findFunction returns the function whose code asset is the dist folder's
// <name>/bootstrap, and follows its references to its role (Role), log
// group (LoggingConfig) and dead-letter queue (the on-failure destination
// of its EventInvokeConfig).
func findFunction(t *testing.T, st stackTemplate, name string) function {
	t.Helper()
	var found []function
	for id, r := range resources(st, "AWS::Lambda::Function") {
		props := properties(r)
		code, _ := props["Code"].(map[string]any)
		key, _ := code["S3Key"].(string)
		hash, isZip := strings.CutSuffix(key, ".zip")
		if !isZip {
			t.Fatalf("function %s: code is not a zipped asset: %v", id, props["Code"])
		}
		// A directory asset is staged as asset.<hash> in the assembly.
		content, err := os.ReadFile(filepath.Join(st.assetDir, "asset."+hash, "bootstrap"))
		if err != nil {
			t.Fatalf("function %s: code asset: %v", id, err)
		}
		if string(content) == bootstrapContent(name) {
			found = append(found, function{name: name, id: id, props: props})
		}
	}
	if len(found) != 1 {
		t.Fatalf("want 1 function running %s/bootstrap, got %d: %v", name, len(found), found)
	}
	f := found[0]
	logging, _ := f.props["LoggingConfig"].(map[string]any)
	f.role = getAttID(f.props["Role"], "Arn")
	f.logGroup = refID(logging["LogGroup"])
	for _, r := range resources(st, "AWS::Lambda::EventInvokeConfig") {
		p := properties(r)
		if refID(p["FunctionName"]) != f.id {
			continue
		}
		dest, _ := p["DestinationConfig"].(map[string]any)
		onFailure, _ := dest["OnFailure"].(map[string]any)
		f.dlq = getAttID(onFailure["Destination"], "Arn")
	}
	for _, r := range resources(st, "AWS::Lambda::EventSourceMapping") {
		if p := properties(r); refID(p["FunctionName"]) == f.id {
			f.queue = getAttID(p["EventSourceArn"], "Arn")
		}
	}
	for typ, id := range map[string]string{"AWS::IAM::Role": f.role, "AWS::Logs::LogGroup": f.logGroup, "AWS::SQS::Queue": f.dlq} {
		if _, ok := resources(st, typ)[id]; !ok {
			t.Fatalf("%s function %s: its %s %q is not one in the stack: %v", name, f.id, typ, id, f.props)
		}
	}
	return f
}

func taggerOf(t *testing.T, st stackTemplate) function {
	t.Helper()
	return findFunction(t, st, TaggerFunctionName)
}

func cleanupOf(t *testing.T, st stackTemplate) function {
	t.Helper()
	return findFunction(t, st, CleanupFunctionName)
}

func sharingOf(t *testing.T, st stackTemplate) function {
	t.Helper()
	return findFunction(t, st, SharingFunctionName)
}

// allFunctions returns the tagger, the cleanup and the sharing guard.
func allFunctions(t *testing.T, st stackTemplate) []function {
	t.Helper()
	return []function{taggerOf(t, st), cleanupOf(t, st), sharingOf(t, st)}
}

// auditCursor returns the logical ID and properties of the sharing audit's
// cursor: the one SSM parameter whose name ends in /sharing-audit-cursor.
func auditCursor(t *testing.T, tmpl assertions.Template) (string, map[string]any) {
	t.Helper()
	var ids []string
	for id, r := range resources(tmpl, "AWS::SSM::Parameter") {
		if name, _ := properties(r)["Name"].(string); strings.HasSuffix(name, "/sharing-audit-cursor") {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("want 1 SSM parameter named .../sharing-audit-cursor, got %v", ids)
	}
	return ids[0], properties(resources(tmpl, "AWS::SSM::Parameter")[ids[0]])
}

// policyParameters returns the logical IDs of the SSM parameters other than
// the audit cursor: the policy parameter, if the stack has one.
func policyParameters(t *testing.T, tmpl assertions.Template) []string {
	t.Helper()
	cursor, _ := auditCursor(t, tmpl)
	var ids []string
	for id := range resources(tmpl, "AWS::SSM::Parameter") {
		if id != cursor {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// policyParameter returns the logical ID and properties of the policy parameter.
func policyParameter(t *testing.T, tmpl assertions.Template) (string, map[string]any) {
	t.Helper()
	ids := policyParameters(t, tmpl)
	if len(ids) != 1 {
		t.Fatalf("want 1 SSM parameter besides the audit cursor, got %v", ids)
	}
	return ids[0], properties(resources(tmpl, "AWS::SSM::Parameter")[ids[0]])
}

// notificationTopic returns the logical IDs of the one SNS topic and of the KMS
// key that encrypts it.
func notificationTopic(t *testing.T, tmpl assertions.Template) (topic, key string) {
	t.Helper()
	topic, props := onlyResource(t, tmpl, "AWS::SNS::Topic")
	key = getAttID(props["KmsMasterKeyId"], "Arn")
	if _, ok := resources(tmpl, "AWS::KMS::Key")[key]; !ok {
		t.Fatalf("topic %s is not encrypted with a key of the stack: %v", topic, props)
	}
	return topic, key
}

// rulesTargeting returns the EventBridge rules with a target delivering to
// the function: invoking it, or sending to its event queue.
func rulesTargeting(tmpl assertions.Template, f function) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range resources(tmpl, "AWS::Events::Rule") {
		props := properties(r)
		for _, target := range list(props["Targets"]) {
			if m, _ := target.(map[string]any); getAttID(m["Arn"], "Arn") == f.id || f.queue != "" && getAttID(m["Arn"], "Arn") == f.queue {
				out[id] = props
			}
		}
	}
	return out
}

// checkInvokePermissions asserts that exactly the given rules may invoke the function.
func checkInvokePermissions(t *testing.T, tmpl assertions.Template, fn string, rules []string) {
	t.Helper()
	var got []string
	for _, r := range resources(tmpl, "AWS::Lambda::Permission") {
		props := properties(r)
		if getAttID(props["FunctionName"], "Arn") == fn {
			got = append(got, render(props["SourceArn"]))
		}
	}
	var want []string
	for _, rule := range rules {
		want = append(want, arnOf(rule))
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("invoke permissions of %s: source ARNs\n got %v\nwant %v", fn, got, want)
	}
}

// checkFunctionRules asserts that the rules invoking f are exactly one per
// event pattern (canonical JSON) in patterns and one per schedule expression
// in schedules, each rule having a pattern or a schedule, not both; that each
// is enabled, on the default bus, with f (events: its queue, if it has one)
// as its only target, retried twice within an hour into f's DLQ, which the
// rule may write to; and that the schedules, and nothing else, may invoke f. It returns the rules' logical IDs
// by pattern or schedule expression.
func checkFunctionRules(t *testing.T, st stackTemplate, f function, patterns, schedules []string) map[string]string {
	t.Helper()
	byKey := map[string]string{}
	var gotPatterns, gotSchedules, ids []string
	for id, props := range rulesTargeting(st, f) {
		pattern, hasPattern := props["EventPattern"]
		schedule, hasSchedule := props["ScheduleExpression"].(string)
		var key string
		// Events wait in the function's queue when it has one; schedules
		// invoke it.
		target := f.id
		switch {
		case hasPattern && !hasSchedule:
			b, _ := json.Marshal(pattern) // encoding/json sorts the keys
			key = string(b)
			gotPatterns = append(gotPatterns, key)
			if f.queue != "" {
				target = f.queue
			}
		case hasSchedule && !hasPattern:
			key = schedule
			gotSchedules = append(gotSchedules, key)
			ids = append(ids, id)
		default:
			t.Errorf("%s rule %s: want an event pattern or a schedule: %v", f.name, id, props)
			continue
		}
		if other, dup := byKey[key]; dup {
			t.Errorf("%s rules %s and %s: same pattern or schedule %s", f.name, other, id, key)
		}
		byKey[key] = id

		checkResource(t, st, f.name+" rule "+key, "AWS::Events::Rule", id, map[string]any{
			"State":        "ENABLED",
			"EventBusName": assertions.Match_Absent(), // the default bus
			"Targets": assertions.Match_ArrayEquals(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"Arn":              getAttArn(target),
				"DeadLetterConfig": map[string]any{"Arn": getAttArn(f.dlq)},
				"RetryPolicy": map[string]any{
					"MaximumRetryAttempts":     2,
					"MaximumEventAgeInSeconds": 3600,
				},
			})}),
		})
		// An undeliverable event must reach the DLQ, which EventBridge may
		// write to only on the rule's behalf.
		check(t, f.name+" DLQ writable by rule "+key, func() {
			st.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
				"Queues": []any{ref(f.dlq)},
				"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
					"Action":    "sqs:SendMessage",
					"Effect":    "Allow",
					"Principal": map[string]any{"Service": "events.amazonaws.com"},
					"Resource":  getAttArn(f.dlq),
					"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": getAttArn(id)}},
				})})},
			})
		})
	}

	var wantPatterns []string
	for _, p := range patterns {
		wantPatterns = append(wantPatterns, canonicalJSON(t, p))
	}
	wantSchedules := slices.Clone(schedules)
	for _, l := range [][]string{gotPatterns, gotSchedules, wantPatterns, wantSchedules} {
		sort.Strings(l)
	}
	if !slices.Equal(gotPatterns, wantPatterns) {
		t.Errorf("patterns of the rules invoking %s:\n got %s\nwant %s", f.name, gotPatterns, wantPatterns)
	}
	if !slices.Equal(gotSchedules, wantSchedules) {
		t.Errorf("schedules of the rules invoking %s:\n got %q\nwant %q", f.name, gotSchedules, wantSchedules)
	}
	checkInvokePermissions(t, st, f.id, ids)
	return byKey
}

// checkFunction asserts the settings every housekeeper function shares, and
// the given memory, timeout and exact environment; extra adds to the pattern.
func checkFunction(t *testing.T, st stackTemplate, f function, memory, timeout, retries int, env, extra map[string]any) {
	t.Helper()
	pattern := map[string]any{
		"Runtime":       "provided.al2023",
		"Architectures": []any{"arm64"},
		"Handler":       "bootstrap",
		"MemorySize":    memory,
		"Timeout":       timeout,
		"Environment":   map[string]any{"Variables": assertions.Match_ObjectEquals(&env)},
		"LoggingConfig": map[string]any{"LogGroup": ref(f.logGroup)},
		// Failures go to the on-failure destination, not a dead-letter config.
		"DeadLetterConfig": assertions.Match_Absent(),
	}
	for k, v := range extra {
		pattern[k] = v
	}
	checkResource(t, st, f.name+" function", "AWS::Lambda::Function", f.id, pattern)

	check(t, f.name+" async invoke config", func() {
		st.ResourcePropertiesCountIs(jsii.String("AWS::Lambda::EventInvokeConfig"), map[string]any{
			"FunctionName":             ref(f.id),
			"Qualifier":                "$LATEST",
			"MaximumRetryAttempts":     retries,
			"MaximumEventAgeInSeconds": 3600,
			"DestinationConfig":        map[string]any{"OnFailure": map[string]any{"Destination": getAttArn(f.dlq)}},
		}, jsii.Number(1))
	})
	checkResource(t, st, f.name+" log group", "AWS::Logs::LogGroup", f.logGroup, map[string]any{"RetentionInDays": 30})
	checkResource(t, st, f.name+" DLQ", "AWS::SQS::Queue", f.dlq, map[string]any{
		"SqsManagedSseEnabled":   true,
		"MessageRetentionPeriod": 14 * 24 * 3600,
	})
	check(t, f.name+" DLQ policy", func() {
		st.ResourcePropertiesCountIs(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
			"Queues": []any{ref(f.dlq)},
			"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"Effect":    "Deny",
				"Resource":  getAttArn(f.dlq),
				"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
			})})},
		}, jsii.Number(1))
	})
}

func TestFunctionCount(t *testing.T) {
	st := synth(t, StackProps{})
	check(t, "functions", func() { st.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(3)) })
	// Each function owns its role, log group and DLQ.
	fs := allFunctions(t, st)
	for i, f := range fs {
		for _, g := range fs[i+1:] {
			if f.role == g.role || f.logGroup == g.logGroup || f.dlq == g.dlq {
				t.Errorf("the functions share resources:\n %-7s %+v\n %-7s %+v", f.name, f, g.name, g)
			}
		}
	}
}

func TestTaggerFunction(t *testing.T) {
	st := synth(t, StackProps{})
	checkFunction(t, st, taggerOf(t, st), 128, 30, 2,
		map[string]any{
			EnvAccountID:                ref("AWS::AccountId"),
			EnvLogLevel:                 "info",
			EnvKillSwitch:               "/Test/kill-switch",
			ratelimit.EnvMaxConcurrency: fmt.Sprint(ratelimit.Instances(TaggerFunctionName)),
		},
		map[string]any{"ReservedConcurrentExecutions": assertions.Match_Absent()})
}

func TestCleanupFunction(t *testing.T) {
	st := synth(t, StackProps{})
	topic, _ := notificationTopic(t, st)
	// No async retries (the per-run caps must not apply three times an
	// hour) and one execution at a time (sweeps never overlap).
	cleanup := cleanupOf(t, st)
	checkFunction(t, st, cleanup, 1024, 600, 0,
		map[string]any{
			EnvAccountID:      ref("AWS::AccountId"),
			EnvLogLevel:       "info",
			EnvKillSwitch:     "/Test/kill-switch",
			EnvReportEventBus: "default",
			EnvReportTopicARN: ref(topic),
			records.EnvKeyID:  map[string]any{"Fn::GetAtt": []any{recordsKey(t, st, cleanup), "Arn"}},
		}, map[string]any{"ReservedConcurrentExecutions": 1})
}

func TestSharingFunction(t *testing.T) {
	st := synth(t, StackProps{})
	topic, _ := notificationTopic(t, st)
	cursor, _ := auditCursor(t, st)
	// Async retries are fine (an event is re-checked from EC2's state, the
	// audit resumes from its cursor); no reserved concurrency, so that
	// sharing changes are not held up behind a 15-minute audit.
	checkFunction(t, st, sharingOf(t, st), 256, 900, 2,
		map[string]any{
			EnvAccountID:                ref("AWS::AccountId"),
			EnvLogLevel:                 "info",
			EnvKillSwitch:               "/Test/kill-switch",
			EnvReportEventBus:           "default",
			EnvReportTopicARN:           ref(topic),
			EnvAuditCursor:              ref(cursor),
			ratelimit.EnvMaxConcurrency: fmt.Sprint(ratelimit.Instances(SharingFunctionName)),
		}, map[string]any{"ReservedConcurrentExecutions": assertions.Match_Absent()})
}

func TestLogRetention(t *testing.T) {
	st := synth(t, StackProps{LogRetention: awslogs.RetentionDays_ONE_WEEK})
	for _, f := range allFunctions(t, st) {
		checkResource(t, st, f.name+" log group", "AWS::Logs::LogGroup", f.logGroup, map[string]any{"RetentionInDays": 7})
	}
}

// checkPatternMatches asserts, with the CDK matchers' semantics, that the
// rule's event pattern is exactly the JSON document pattern.
func checkPatternMatches(t *testing.T, st stackTemplate, what, rule, pattern string) {
	t.Helper()
	var want map[string]any
	if err := json.Unmarshal([]byte(pattern), &want); err != nil {
		t.Fatal(err)
	}
	if rule == "" {
		t.Errorf("%s: no rule", what)
		return
	}
	checkResource(t, st, what, "AWS::Events::Rule", rule, map[string]any{"EventPattern": assertions.Match_ObjectEquals(&want)})
}

func TestTaggerRules(t *testing.T) {
	st := synth(t, StackProps{})
	tagger := taggerOf(t, st)

	// The tagger's two rules, the cleanup's schedule and the sharing guard's
	// three rules.
	check(t, "rule count", func() { st.ResourceCountIs(jsii.String("AWS::Events::Rule"), jsii.Number(6)) })
	taggerRules := checkFunctionRules(t, st, tagger, []string{cloudTrailPattern, stateChangePattern}, nil)
	if len(taggerRules) != 2 {
		t.Errorf("want 2 rules invoking the tagger, got %d", len(taggerRules))
	}
	checkPatternMatches(t, st, "CloudTrail rule", taggerRules[canonicalJSON(t, cloudTrailPattern)], cloudTrailPattern)
	checkPatternMatches(t, st, "state change rule", taggerRules[canonicalJSON(t, stateChangePattern)], stateChangePattern)

	// Independently of the matchers' semantics: these patterns, and nothing
	// else, in the whole stack. The state-change pattern is there twice, once
	// on the tagger's rule and once on the sharing guard's.
	var got []string
	for _, r := range resources(st, "AWS::Events::Rule") {
		pattern, ok := properties(r)["EventPattern"]
		if !ok {
			continue
		}
		b, _ := json.Marshal(pattern)
		got = append(got, string(b))
	}
	want := []string{
		canonicalJSON(t, cloudTrailPattern), canonicalJSON(t, stateChangePattern), // the tagger's
		canonicalJSON(t, sharingPattern), canonicalJSON(t, stateChangePattern), // the sharing guard's
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("rule patterns:\n got %s\nwant %s", got, want)
	}

	// Every rule invokes exactly one function.
	owner := map[string]string{}
	for _, f := range allFunctions(t, st) {
		for id := range rulesTargeting(st, f) {
			if other, ok := owner[id]; ok {
				t.Errorf("rule %s invokes both %s and %s", id, other, f.name)
			}
			owner[id] = f.name
		}
	}
	for id := range resources(st, "AWS::Events::Rule") {
		if _, ok := owner[id]; !ok {
			t.Errorf("rule %s invokes none of the functions", id)
		}
	}

	// Each rule, and nothing else, may invoke its function.
	check(t, "invoke permissions", func() {
		st.AllResourcesProperties(jsii.String("AWS::Lambda::Permission"), map[string]any{
			"Action":    "lambda:InvokeFunction",
			"Principal": "events.amazonaws.com",
		})
	})
	// Only the two schedules invoke a function; events go through queues.
	check(t, "invoke permission count", func() {
		st.ResourceCountIs(jsii.String("AWS::Lambda::Permission"), jsii.Number(2))
	})
}

// scheduleOf returns the schedule expression of the one scheduled rule
// invoking f.
func scheduleOf(t *testing.T, st stackTemplate, f function) string {
	t.Helper()
	var schedules []string
	for _, props := range rulesTargeting(st, f) {
		if s, ok := props["ScheduleExpression"].(string); ok {
			schedules = append(schedules, s)
		}
	}
	if len(schedules) != 1 {
		t.Errorf("want 1 schedule invoking %s, got %q", f.name, schedules)
		return ""
	}
	return schedules[0]
}

func TestCleanupSchedule(t *testing.T) {
	for _, tc := range []struct {
		schedule, want string
	}{
		{"", defaultCleanupSchedule},
		{"rate(6 hours)", "rate(6 hours)"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			st := synth(t, StackProps{CleanupSchedule: tc.schedule})
			cleanup := cleanupOf(t, st)
			// The schedule, and no other rule, invokes the cleanup.
			rules := checkFunctionRules(t, st, cleanup, nil, []string{tc.want})
			if len(rules) != 1 {
				t.Errorf("rules invoking the cleanup: want only the schedule, got %v", rules)
			}
			// The cleanup's schedule is not the audit's.
			if got := scheduleOf(t, st, sharingOf(t, st)); got != defaultSharingSchedule {
				t.Errorf("sharing schedule = %q, want %q", got, defaultSharingSchedule)
			}
		})
	}
}

func TestSharingRules(t *testing.T) {
	for _, tc := range []struct {
		schedule, want string
	}{
		{"", defaultSharingSchedule},
		{"rate(12 hours)", "rate(12 hours)"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			st := synth(t, StackProps{SharingSchedule: tc.schedule})
			sharing := sharingOf(t, st)
			// Permission changes, new AMIs and the audit; nothing else.
			rules := checkFunctionRules(t, st, sharing, []string{sharingPattern, stateChangePattern}, []string{tc.want})
			if len(rules) != 3 {
				t.Errorf("want 3 rules invoking the sharing guard, got %d: %v", len(rules), rules)
			}
			checkPatternMatches(t, st, "permission rule", rules[canonicalJSON(t, sharingPattern)], sharingPattern)
			checkPatternMatches(t, st, "new AMI rule", rules[canonicalJSON(t, stateChangePattern)], stateChangePattern)
			checkSharingTriggersRouted(t)
			// The audit's schedule is not the cleanup's.
			if got := scheduleOf(t, st, cleanupOf(t, st)); got != defaultCleanupSchedule {
				t.Errorf("cleanup schedule = %q, want %q", got, defaultCleanupSchedule)
			}
		})
	}
}

// checkSharingTriggersRouted checks that the permission rule's event names
// cover every successful trigger event the guard handles (the fixtures of
// permission changes and restores), so none is parsed but never delivered.
func checkSharingTriggersRouted(t *testing.T) {
	t.Helper()
	var pattern struct {
		Detail struct {
			EventName []string `json:"eventName"`
		} `json:"detail"`
	}
	if err := json.Unmarshal([]byte(sharingPattern), &pattern); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, glob := range []string{"cloudtrail-modify*attribute*.json", "cloudtrail-restore*.json", "cloudtrail-enableimage*.json"} {
		m, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "events", "valid", glob))
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d sharing trigger fixtures: %v", len(files), files)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Detail struct {
				EventName string `json:"eventName"`
			} `json:"detail"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(pattern.Detail.EventName, ev.Detail.EventName) {
			t.Errorf("%s: %s is not routed to the sharing guard", filepath.Base(f), ev.Detail.EventName)
		}
	}
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

// checkPermissions asserts the function's role is assumable by Lambda alone,
// under RolePath, has no managed or inline policies, and its attached
// policies allow exactly the actions of want, each on exactly the resources
// listed (as rendered by render, followed by when's rendering of the
// statement's condition, if any), and deny exactly the "Deny <action>"
// entries of want the same way. No action may contain a wildcard, except
// those in wildcards.
func checkPermissions(t *testing.T, tmpl assertions.Template, f function, want map[string][]string, wildcards ...string) {
	t.Helper()
	checkResource(t, tmpl, f.name+" role", "AWS::IAM::Role", f.role, map[string]any{
		"AssumeRolePolicyDocument": map[string]any{"Statement": []any{map[string]any{
			"Action":    "sts:AssumeRole",
			"Effect":    "Allow",
			"Principal": map[string]any{"Service": "lambda.amazonaws.com"},
		}}},
		"Path":              RolePath,
		"ManagedPolicyArns": assertions.Match_Absent(),
		"Policies":          assertions.Match_Absent(),
	})
	check(t, "no managed policies", func() { tmpl.ResourceCountIs(jsii.String("AWS::IAM::ManagedPolicy"), jsii.Number(0)) })

	got := map[string]bool{}
	resourcesOf := map[string][]string{}
	for _, st := range roleStatements(t, tmpl, f.role) {
		prefix := ""
		switch st["Effect"] {
		case "Allow":
		case "Deny":
			prefix = "Deny "
		default:
			t.Errorf("%s role: unexpected statement effect: %v", f.name, st)
		}
		if st["NotAction"] != nil || st["NotResource"] != nil {
			t.Errorf("%s role: statement uses NotAction/NotResource: %v", f.name, st)
		}
		for _, a := range list(st["Action"]) {
			action, ok := a.(string)
			if !ok || (strings.Contains(action, "*") && !slices.Contains(wildcards, action)) {
				t.Errorf("%s role: wildcard or non-string action %v in %v", f.name, a, st)
				continue
			}
			got[prefix+action] = true
			for _, r := range list(st["Resource"]) {
				resourcesOf[prefix+action] = append(resourcesOf[prefix+action], render(r)+conditionOf(st["Condition"]))
			}
		}
	}
	var gotActions, wantActions []string
	for a := range got {
		gotActions = append(gotActions, a)
	}
	for a := range want {
		wantActions = append(wantActions, a)
	}
	sort.Strings(gotActions)
	sort.Strings(wantActions)
	if !slices.Equal(gotActions, wantActions) {
		t.Errorf("%s role actions:\n got %v\nwant %v", f.name, gotActions, wantActions)
	}

	for action, wantResources := range want {
		got := slices.Clone(resourcesOf[action])
		wantResources = slices.Clone(wantResources)
		sort.Strings(got)
		sort.Strings(wantResources)
		if !slices.Equal(got, wantResources) {
			t.Errorf("%s role: %s resources:\n got %v\nwant %v", f.name, action, got, wantResources)
		}
	}
}

// conditionOf renders a statement's Condition as when does: " if " and its
// canonical JSON with every token rendered; "" for none.
func conditionOf(c any) string {
	if c == nil {
		return ""
	}
	b, err := json.Marshal(renderTokens(c))
	if err != nil {
		panic(err)
	}
	return " if " + string(b)
}

// renderTokens replaces every CloudFormation intrinsic in v by render's text.
func renderTokens(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for _, fn := range []string{"Ref", "Fn::GetAtt", "Fn::Join"} {
			if _, ok := v[fn]; ok && len(v) == 1 {
				return render(v)
			}
		}
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = renderTokens(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = renderTokens(x)
		}
		return out
	}
	return v
}

// when is resource as checkPermissions shows it in a statement with
// condition (operator -> key -> value, tokens rendered).
func when(resource string, condition map[string]any) string {
	return resource + conditionOf(condition)
}

// inAccountCondition is the condition of every statement that changes an
// AMI or snapshot: the stack's account owns it.
func inAccountCondition() map[string]any {
	return map[string]any{"StringEquals": map[string]any{"aws:ResourceAccount": "${AWS::AccountId}"}}
}

// tagKeysCondition is inAccountCondition plus: the request names tags, and
// only these keys.
func tagKeysCondition(keys ...string) map[string]any {
	c := inAccountCondition()
	c["ForAllValues:StringEquals"] = map[string]any{"aws:TagKeys": keys}
	c["Null"] = map[string]any{"aws:TagKeys": "false"}
	return c
}

// defaultTaggerKeys are the keys the default policy's tagger writes.
var defaultTaggerKeys = []string{
	"ami-housekeeper:created-at", "ami-housekeeper:created-by", "ami-housekeeper:created-by-issuer",
	"ami-housekeeper:created-via", "ami-housekeeper:source-image", "ami-housekeeper:source-instance",
	"ami-housekeeper:source-region",
}

// The cleanup's and the sharing guard's own tag keys.
var (
	cleanupImageKeys    = []string{"ami-housekeeper:delete-after", "ami-housekeeper:deprecated-by-cleanup", "ami-housekeeper:disabled-by-cleanup"}
	cleanupSnapshotKeys = []string{"ami-housekeeper:delete-with"}
	sharingKeys         = []string{"ami-housekeeper:sharing-revoked-at", "ami-housekeeper:sharing-revoked"}
)

// withActions returns base plus the actions, each on resources.
func withActions(base map[string][]string, resources []string, actions ...string) map[string][]string {
	out := map[string][]string{}
	for a, r := range base {
		out[a] = r
	}
	for _, a := range actions {
		out[a] = resources
	}
	return out
}

// taggerPermissions are all the tagger may do without a policy file.
func taggerPermissions(tagger function) map[string][]string {
	tags := tagKeysCondition(defaultTaggerKeys...)
	return map[string][]string{
		"ec2:CreateTags":        {when(imageARN, tags), when(snapshotARN, tags)},
		"ec2:DescribeImages":    {"*"},
		"ec2:DescribeSnapshots": {"*"},
		"ec2:DescribeTags":      {"*"},
		"logs:CreateLogStream":  {arnOf(tagger.logGroup)},
		"logs:PutLogEvents":     {arnOf(tagger.logGroup)},
		"sqs:SendMessage":       {arnOf(tagger.dlq)},
		// CDK's grant for the on-failure destination, and the event
		// source mapping's on the event queue (the function also sets
		// visibility timeouts of throttled records itself).
		"sqs:GetQueueAttributes":      {arnOf(tagger.dlq), arnOf(tagger.queue)},
		"sqs:GetQueueUrl":             {arnOf(tagger.dlq), arnOf(tagger.queue)},
		"sqs:ReceiveMessage":          {arnOf(tagger.queue)},
		"sqs:DeleteMessage":           {arnOf(tagger.queue)},
		"sqs:ChangeMessageVisibility": {arnOf(tagger.queue)},
		"ssm:GetParameter":            {killSwitchARN},
	}
}

// killSwitchARN is the kill switch's parameter in the stack "Test": every
// function reads it (and only reads it) on each invocation.
const killSwitchARN = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/Test/kill-switch"

// cleanupPermissions are all the cleanup may do without a policy file, or
// with one that enables no lifecycle stage.
func cleanupPermissions(cleanup function, topic, key, records string) map[string][]string {
	inventory := []string{
		"ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeInstances",
		"ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeImageAttribute",
		"ec2:DescribeFleets", "ec2:DescribeSpotFleetRequests", "ec2:DescribeSpotInstanceRequests",
		"ec2:DescribeImageReferences",
		"autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLaunchConfigurations",
		"ssm:DescribeParameters", "rbin:ListRules", "rbin:GetRule",
	}
	parameters := []string{
		"arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*",
		"arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/*", // AWS's public parameters
	}
	imageTags, snapshotTags := tagKeysCondition(cleanupImageKeys...), tagKeysCondition(cleanupSnapshotKeys...)
	// The default grace period (7 days): only marked AMIs go.
	marked := inAccountCondition()
	marked["Null"] = map[string]any{"ec2:ResourceTag/ami-housekeeper:delete-after": "false"}
	protected := map[string]any{"Null": map[string]any{"ec2:ResourceTag/ami-housekeeper:keep": "false"}}
	p := withActions(map[string][]string{
		"ec2:CreateTags":                  {when(imageARN, imageTags), when(snapshotARN, snapshotTags)},
		"ec2:DeleteTags":                  {when(imageARN, imageTags), when(snapshotARN, snapshotTags)},
		"ec2:DeregisterImage":             {when(imageARN, marked)},
		"ec2:DeleteSnapshot":              {when(snapshotARN, inAccountCondition())},
		"Deny ec2:DeregisterImage":        {when(imageARN, protected), when(snapshotARN, protected)},
		"Deny ec2:DeleteSnapshot":         {when(imageARN, protected), when(snapshotARN, protected)},
		"Deny ec2:DisableImage":           {when(imageARN, protected), when(snapshotARN, protected)},
		"Deny ec2:EnableImageDeprecation": {when(imageARN, protected), when(snapshotARN, protected)},
		"Deny kms:Decrypt":                {when("*", map[string]any{"StringLike": map[string]any{"kms:ViaService": "ssm.*.amazonaws.com"}})},
		"events:PutEvents":                {defaultBusARN},
		"sns:Publish":                     {"${" + topic + "}"},
		"logs:CreateLogStream":            {arnOf(cleanup.logGroup)},
		"logs:PutLogEvents":               {arnOf(cleanup.logGroup)},
		"sqs:SendMessage":                 {arnOf(cleanup.dlq)},
		// CDK's grant for the on-failure destination.
		"sqs:GetQueueAttributes": {arnOf(cleanup.dlq)},
		"sqs:GetQueueUrl":        {arnOf(cleanup.dlq)},
	}, []string{"*"}, inventory...)
	// Only through DescribeImageReferences (checkImageBuilderViaEC2).
	p = withActions(p, []string{when("*", map[string]any{"ForAnyValue:StringEquals": map[string]any{"aws:CalledVia": []string{"ec2-images.amazonaws.com"}}})},
		"imagebuilder:ListImageRecipes", "imagebuilder:ListContainerRecipes", "imagebuilder:GetContainerRecipe")
	p = withActions(p, parameters, "ssm:GetParameters", "ssm:GetParametersByPath")
	p = withActions(p, []string{killSwitchARN}, "ssm:GetParameter")
	// Sealing its record tags with the records key, and nothing else of it.
	p = withActions(p, []string{arnOf(records)}, "kms:GenerateMac")
	// Publishing to the encrypted topic.
	return withActions(p, []string{arnOf(key)}, "kms:Decrypt", "kms:GenerateDataKey")
}

// recordsKey returns the HMAC key the cleanup seals its records with, and
// checks what makes it fit for that: an HMAC_256 key used only for MACs,
// retained when the stack goes (a new key would unseal every record), and
// named in the cleanup's environment.
func recordsKey(t *testing.T, st stackTemplate, cleanup function) string {
	t.Helper()
	var id string
	for kid, r := range resources(st.Template, "AWS::KMS::Key") {
		if props := properties(r); props["KeySpec"] == "HMAC_256" {
			if id != "" {
				t.Fatalf("two HMAC keys: %s and %s", id, kid)
			}
			id = kid
			if props["KeyUsage"] != "GENERATE_VERIFY_MAC" || r["DeletionPolicy"] != "Retain" {
				t.Errorf("records key %s: usage %v, deletion policy %v", kid, props["KeyUsage"], r["DeletionPolicy"])
			}
		}
	}
	if id == "" {
		t.Fatal("no HMAC_256 key for the cleanup's records")
	}
	env, _ := cleanup.props["Environment"].(map[string]any)
	vars, _ := env["Variables"].(map[string]any)
	if getAttID(vars["HOUSEKEEPER_RECORDS_KEY_ID"], "Arn") != id {
		t.Errorf("the cleanup's HOUSEKEEPER_RECORDS_KEY_ID is %v, want the ARN of %s", vars["HOUSEKEEPER_RECORDS_KEY_ID"], id)
	}
	return id
}

// sharingPermissions are all the sharing guard may do without a policy file,
// or with one that does not enable image block public access.
func sharingPermissions(sharing function, cursor, topic, key string) map[string][]string {
	p := withActions(map[string][]string{
		// Revoking sharing: launch permissions of AMIs, create-volume
		// permissions of snapshots, each on its own kind of resource only,
		// never adding an account or group to a snapshot's.
		"ec2:ModifyImageAttribute":    {when(imageARN, inAccountCondition())},
		"ec2:ModifySnapshotAttribute": {when(snapshotARN, inAccountCondition())},
		"Deny ec2:ModifySnapshotAttribute": {
			when(snapshotARN, map[string]any{"Null": map[string]any{"ec2:Add/userId": "false"}}),
			when(snapshotARN, map[string]any{"Null": map[string]any{"ec2:Add/group": "false"}}),
		},
		// Recording the violation on the AMI, or on a snapshot checked alone.
		"ec2:CreateTags":       {when(imageARN, tagKeysCondition(sharingKeys...)), when(snapshotARN, tagKeysCondition(sharingKeys...))},
		"events:PutEvents":     {defaultBusARN},
		"sns:Publish":          {"${" + topic + "}"},
		"logs:CreateLogStream": {arnOf(sharing.logGroup)},
		"logs:PutLogEvents":    {arnOf(sharing.logGroup)},
		"sqs:SendMessage":      {arnOf(sharing.dlq)},
		// CDK's grant for the on-failure destination, and the event
		// source mapping's on the event queue (the function also sets
		// visibility timeouts of throttled records itself).
		"sqs:GetQueueAttributes":      {arnOf(sharing.dlq), arnOf(sharing.queue)},
		"sqs:GetQueueUrl":             {arnOf(sharing.dlq), arnOf(sharing.queue)},
		"sqs:ReceiveMessage":          {arnOf(sharing.queue)},
		"sqs:DeleteMessage":           {arnOf(sharing.queue)},
		"sqs:ChangeMessageVisibility": {arnOf(sharing.queue)},
	}, []string{"*"},
		"ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeImageAttribute", "ec2:DescribeSnapshotAttribute",
		"ec2:GetImageBlockPublicAccessState", "ec2:GetSnapshotBlockPublicAccessState")
	// The audit's position: this one parameter, read and written.
	p = withActions(p, []string{parameterARN(cursor)}, "ssm:PutParameter")
	p = withActions(p, []string{parameterARN(cursor), killSwitchARN}, "ssm:GetParameter")
	// Publishing to the encrypted topic.
	return withActions(p, []string{arnOf(key)}, "kms:Decrypt", "kms:GenerateDataKey")
}

// withPolicyParameter returns want with ssm:GetParameter also allowed on the
// policy parameter param.
func withPolicyParameter(want map[string][]string, param string) map[string][]string {
	return withActions(want, append(slices.Clone(want["ssm:GetParameter"]), parameterARN(param)), "ssm:GetParameter")
}

// checkNoSecureStringDecrypt asserts the role can never decrypt through SSM:
// it may read every parameter to find AMI IDs, not the secrets among them.
func checkNoSecureStringDecrypt(t *testing.T, tmpl stackTemplate, f function) {
	t.Helper()
	var denies []map[string]any
	for _, st := range roleStatements(t, tmpl, f.role) {
		if st["Effect"] == "Deny" && slices.Contains(list(st["Action"]), any("kms:Decrypt")) {
			denies = append(denies, st)
		}
	}
	want := map[string]any{"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*",
		"Condition": map[string]any{"StringLike": map[string]any{"kms:ViaService": "ssm.*.amazonaws.com"}}}
	if len(denies) != 1 || !reflect.DeepEqual(denies[0], want) {
		t.Errorf("%s role: kms:Decrypt deny statements %v, want exactly %v", f.name, denies, want)
	}
}

func TestTaggerPermissions(t *testing.T) {
	st := synth(t, StackProps{})
	tagger := taggerOf(t, st)
	checkPermissions(t, st, tagger, taggerPermissions(tagger))
	// The audit cursor is the only parameter.
	check(t, "no policy parameter", func() { st.ResourceCountIs(jsii.String("AWS::SSM::Parameter"), jsii.Number(1)) })
	if ids := policyParameters(t, st); len(ids) != 0 {
		t.Errorf("parameters besides the audit cursor: %v", ids)
	}
}

func TestCleanupPermissions(t *testing.T) {
	deprecation := []string{"ec2:EnableImageDeprecation", "ec2:DisableImageDeprecation"}
	disabling := []string{"ec2:DisableImage", "ec2:EnableImage"}
	for _, tc := range []struct {
		name string
		// policy is the policy file's content; "" means no policy file.
		policy string
		// stageActions are the lifecycle-stage actions the policy needs.
		stageActions []string
	}{
		{name: "no policy file"},
		{name: "no stages", policy: "version: 1\n"},
		{name: "deprecate", policy: "version: 1\nretention: {stages: {deprecate: true}}\n", stageActions: deprecation},
		{name: "disable", policy: "version: 1\nretention: {stages: {disable: true}}\n", stageActions: disabling},
		{name: "deprecate and disable", policy: "version: 1\nretention: {stages: {deprecate: true, disable: true}}\n",
			stageActions: slices.Concat(deprecation, disabling)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var props StackProps
			if tc.policy != "" {
				props.PolicyFile = writeFile(t, "policy.yaml", tc.policy)
			}
			st := synth(t, props)
			cleanup := cleanupOf(t, st)
			topic, key := notificationTopic(t, st)

			var param string
			if tc.policy != "" {
				param, _ = policyParameter(t, st)
			} else if ids := policyParameters(t, st); len(ids) != 0 {
				t.Errorf("no policy file, yet parameters besides the audit cursor: %v", ids)
			}
			withPolicy := func(want map[string][]string) map[string][]string {
				if param == "" {
					return want
				}
				return withPolicyParameter(want, param)
			}

			want := withActions(cleanupPermissions(cleanup, topic, key, recordsKey(t, st, cleanup)), []string{when(imageARN, inAccountCondition())}, tc.stageActions...)
			checkPermissions(t, st, cleanup, withPolicy(want))
			checkNoSecureStringDecrypt(t, st, cleanup)
			checkImageBuilderViaEC2(t, st, cleanup)

			// The tagger and the sharing guard get none of it.
			tagger := taggerOf(t, st)
			checkPermissions(t, st, tagger, withPolicy(taggerPermissions(tagger)))
			sharing := sharingOf(t, st)
			cursor, _ := auditCursor(t, st)
			checkPermissions(t, st, sharing, withPolicy(sharingPermissions(sharing, cursor, topic, key)))
		})
	}
}

func TestSharingPermissions(t *testing.T) {
	for _, tc := range []struct {
		name string
		// policy is the policy file's content; "" means no policy file.
		policy string
		// blockPublicAccess: the role may turn on image block public access.
		blockPublicAccess bool
	}{
		{name: "no policy file"},
		{name: "no sharing section", policy: "version: 1\n"},
		{name: "block public access off", policy: "version: 1\nsharing: {enable_image_block_public_access: false}\n"},
		{name: "block public access on, audit mode", policy: "version: 1\nsharing: {enable_image_block_public_access: true}\n"},
		{name: "block public access on, enforce mode", policy: "version: 1\nsharing: {mode: enforce, enable_image_block_public_access: true}\n", blockPublicAccess: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var props StackProps
			if tc.policy != "" {
				props.PolicyFile = writeFile(t, "policy.yaml", tc.policy)
			}
			st := synth(t, props)
			sharing := sharingOf(t, st)
			topic, key := notificationTopic(t, st)
			cursor, _ := auditCursor(t, st)

			want := sharingPermissions(sharing, cursor, topic, key)
			if tc.blockPublicAccess {
				// An account-level setting: there is no resource to scope it to.
				want = withActions(want, []string{"*"}, "ec2:EnableImageBlockPublicAccess")
			}
			var param string
			if tc.policy != "" {
				param, _ = policyParameter(t, st)
				want = withPolicyParameter(want, param)
			}
			checkPermissions(t, st, sharing, want)

			// The other functions get none of it, the cursor included.
			tagger, cleanup := taggerOf(t, st), cleanupOf(t, st)
			wantTagger, wantCleanup := taggerPermissions(tagger), cleanupPermissions(cleanup, topic, key, recordsKey(t, st, cleanup))
			if param != "" {
				wantTagger, wantCleanup = withPolicyParameter(wantTagger, param), withPolicyParameter(wantCleanup, param)
			}
			checkPermissions(t, st, tagger, wantTagger)
			checkPermissions(t, st, cleanup, wantCleanup)
		})
	}
}

func TestSharingAuditCursor(t *testing.T) {
	for _, tc := range []struct {
		name, policy string
		parameters   int
	}{
		{name: "no policy file", parameters: 1},
		{name: "policy file", policy: validPolicy, parameters: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var props StackProps
			if tc.policy != "" {
				props.PolicyFile = writeFile(t, "policy.json", tc.policy)
			}
			st := synth(t, props)
			check(t, "parameter count", func() {
				st.ResourceCountIs(jsii.String("AWS::SSM::Parameter"), jsii.Number(tc.parameters))
			})
			cursor, cp := auditCursor(t, st)
			// "-" is an audit that starts from the beginning.
			if cp["Type"] != "String" || cp["Value"] != "-" || cp["Name"] != auditCursorName {
				t.Errorf("audit cursor %s: %v", cursor, cp)
			}
			// The sharing guard, and no other function, is told where it is.
			for _, f := range allFunctions(t, st) {
				var want any = assertions.Match_Absent()
				if f.name == SharingFunctionName {
					want = ref(cursor)
				}
				checkResource(t, st, f.name+" cursor env var", "AWS::Lambda::Function", f.id, map[string]any{
					"Environment": map[string]any{"Variables": map[string]any{EnvAuditCursor: want}},
				})
			}
			if tc.policy != "" {
				if param, _ := policyParameter(t, st); param == cursor {
					t.Errorf("the policy parameter is the audit cursor: %s", param)
				}
			}
		})
	}
}

func TestOutputs(t *testing.T) {
	st := synth(t, StackProps{})
	tagger, cleanup, sharing := taggerOf(t, st), cleanupOf(t, st), sharingOf(t, st)
	check(t, "function name", func() {
		st.HasOutput(jsii.String("TaggerFunctionName"), map[string]any{"Value": ref(tagger.id)})
	})
	check(t, "DLQ URL", func() {
		st.HasOutput(jsii.String("TaggerDeadLetterQueueUrl"), map[string]any{"Value": ref(tagger.dlq)})
	})
	check(t, "cleanup function name", func() {
		st.HasOutput(jsii.String("CleanupFunctionName"), map[string]any{"Value": ref(cleanup.id)})
	})
	check(t, "sharing function name", func() {
		st.HasOutput(jsii.String("SharingFunctionName"), map[string]any{"Value": ref(sharing.id)})
	})
}

// parameterARN is the rendered ARN of the policy parameter or of the audit
// cursor. The parameter's Ref is its name, e.g. "/Test/policy", which
// supplies the slash.
func parameterARN(param string) string {
	return "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${" + param + "}"
}

func TestPolicyFile(t *testing.T) {
	path := writeFile(t, "policy.json", validPolicy)
	st := synth(t, StackProps{PolicyFile: path})
	param, props := policyParameter(t, st)

	if props["Type"] != "String" || props["Tier"] != "Standard" || props["Value"] != validPolicy || props["Name"] != "/Test/policy" {
		t.Errorf("policy parameter: %v", props)
	}
	tagger := taggerOf(t, st)
	for _, f := range allFunctions(t, st) {
		checkResource(t, st, f.name+" env var", "AWS::Lambda::Function", f.id, map[string]any{
			"Environment": map[string]any{"Variables": map[string]any{EnvPolicyParameter: ref(param)}},
		})
	}
	checkPermissions(t, st, tagger, withPolicyParameter(taggerPermissions(tagger), param))
	check(t, "parameter name output", func() {
		st.HasOutput(jsii.String("PolicyParameterName"), map[string]any{"Value": ref(param)})
	})
}

func TestLargePolicyFileUsesAdvancedTier(t *testing.T) {
	// Whitespace keeps the document valid while exceeding 4 KB.
	doc := `{"version": 1` + strings.Repeat(" ", 5000) + `}`
	st := synth(t, StackProps{PolicyFile: writeFile(t, "policy.json", doc)})
	param, _ := policyParameter(t, st)
	checkResource(t, st, "tier", "AWS::SSM::Parameter", param, map[string]any{"Tier": "Advanced"})
	// The cursor is small whatever the policy.
	cursor, _ := auditCursor(t, st)
	checkResource(t, st, "cursor tier", "AWS::SSM::Parameter", cursor, map[string]any{"Tier": assertions.Match_Absent()})

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
	msg := panicMessage(func() { newTestStack(t, StackProps{DistDir: testDistWith(t)}) })
	if !strings.Contains(msg, filepath.Join(TaggerFunctionName, "bootstrap")) {
		t.Errorf("want an error naming tagger/bootstrap, got %q", msg)
	}
	msg = panicMessage(func() { newTestStack(t, StackProps{DistDir: testDistWith(t, TaggerFunctionName)}) })
	if !strings.Contains(msg, filepath.Join(CleanupFunctionName, "bootstrap")) {
		t.Errorf("want an error naming cleanup/bootstrap, got %q", msg)
	}
	msg = panicMessage(func() {
		newTestStack(t, StackProps{DistDir: testDistWith(t, TaggerFunctionName, CleanupFunctionName)})
	})
	if !strings.Contains(msg, filepath.Join(SharingFunctionName, "bootstrap")) {
		t.Errorf("want an error naming sharing/bootstrap, got %q", msg)
	}
}

// Failures and given-up events must reach people: two alarms per function,
// all notifying the encrypted topic.
func TestAlarmsNotifyEncryptedTopic(t *testing.T) {
	st := synth(t, StackProps{})
	topic, key := notificationTopic(t, st)
	checkResource(t, st, "key rotation", "AWS::KMS::Key", key, map[string]any{"EnableKeyRotation": true})
	// Alarms cannot publish to an encrypted topic unless the key lets them.
	checkResource(t, st, "key policy", "AWS::KMS::Key", key, map[string]any{
		"KeyPolicy": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
			"Action":    []any{"kms:Decrypt", "kms:GenerateDataKey*"},
			"Effect":    "Allow",
			"Principal": map[string]any{"Service": "cloudwatch.amazonaws.com"},
			"Resource":  "*",
		})})},
	})

	// Errors and DLQ per function (6), two silence alarms, failed actions,
	// blocked inventory, the tagger's two coverage alarms and throttles per
	// function (3): see monitoring_test.go.
	// The tagger's and the sharing guard's event queues: age and DLQ (4).
	// And the kill switch (1).
	check(t, "twenty alarms", func() { st.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(20)) })
	check(t, "every alarm notifies the topic", func() {
		st.AllResourcesProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{"AlarmActions": []any{ref(topic)}})
	})
	for _, f := range allFunctions(t, st) {
		check(t, f.name+" errors alarm", func() {
			st.ResourcePropertiesCountIs(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
				"MetricName": "Errors", "Namespace": "AWS/Lambda", "Threshold": 1,
				"Dimensions":   []any{map[string]any{"Name": "FunctionName", "Value": ref(f.id)}},
				"AlarmActions": []any{ref(topic)},
			}, jsii.Number(1))
		})
		check(t, f.name+" DLQ alarm", func() {
			st.ResourcePropertiesCountIs(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
				"MetricName": "ApproximateNumberOfMessagesVisible", "Namespace": "AWS/SQS", "Threshold": 1,
				"Dimensions":   []any{map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": []any{f.dlq, "QueueName"}}}},
				"AlarmActions": []any{ref(topic)},
			}, jsii.Number(1))
		})
	}
	check(t, "topic output", func() {
		st.HasOutput(jsii.String("NotificationTopicArn"), map[string]any{"Value": ref(topic)})
	})
}

// checkImageBuilderViaEC2 asserts the Image Builder reads are allowed in one
// statement, only when EC2's DescribeImageReferences makes them on the
// role's behalf (aws:CalledVia), as the EC2 User Guide requires.
func checkImageBuilderViaEC2(t *testing.T, tmpl stackTemplate, f function) {
	t.Helper()
	want := map[string]any{
		"Effect":    "Allow",
		"Action":    []any{"imagebuilder:ListImageRecipes", "imagebuilder:ListContainerRecipes", "imagebuilder:GetContainerRecipe"},
		"Resource":  "*",
		"Condition": map[string]any{"ForAnyValue:StringEquals": map[string]any{"aws:CalledVia": []any{"ec2-images.amazonaws.com"}}},
	}
	var found []map[string]any
	for _, st := range roleStatements(t, tmpl, f.role) {
		for _, a := range list(st["Action"]) {
			if s, _ := a.(string); strings.HasPrefix(s, "imagebuilder:") {
				found = append(found, st)
				break
			}
		}
	}
	if len(found) != 1 || !reflect.DeepEqual(found[0], want) {
		t.Errorf("%s role: Image Builder statements %v, want exactly %v", f.name, found, want)
	}
}

// The records key's MACs are the cleanup's alone: the account administers
// the key but may not make MACs or grants with it; a Deny holds that
// against any IAM policy (kms:* on * included).
func TestRecordsKeyPolicy(t *testing.T) {
	st := synth(t, StackProps{})
	cleanup := cleanupOf(t, st)
	id := recordsKey(t, st, cleanup)
	props := properties(resources(st.Template, "AWS::KMS::Key")[id])
	doc, _ := props["KeyPolicy"].(map[string]any)
	var allowMac, deny bool
	for _, raw := range list(doc["Statement"]) {
		s, _ := raw.(map[string]any)
		actions := list(s["Action"])
		has := func(a string) bool { return slices.Contains(actions, any(a)) }
		switch {
		case s["Effect"] == "Allow" && (has("kms:*") || has("kms:GenerateMac") && getAttID(principalAWS(s), "Arn") != cleanup.role):
			t.Errorf("statement %v lets someone other than the cleanup's role make MACs", s)
		case s["Effect"] == "Allow" && has("kms:GenerateMac"):
			allowMac = true
		case s["Effect"] == "Deny" && has("kms:GenerateMac") && has("kms:CreateGrant"):
			cond, _ := s["Condition"].(map[string]any)
			ne, _ := cond["ArnNotEquals"].(map[string]any)
			deny = getAttID(ne["aws:PrincipalArn"], "Arn") == cleanup.role && s["Principal"] != nil
		}
	}
	if !allowMac || !deny {
		t.Errorf("key policy: cleanup allowed %v, everyone else denied %v:\n%v", allowMac, deny, doc)
	}
}

// principalAWS returns a statement's Principal.AWS.
func principalAWS(s map[string]any) any {
	p, _ := s["Principal"].(map[string]any)
	return p["AWS"]
}
