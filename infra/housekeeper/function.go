package housekeeper

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Environment variables read by every housekeeper function.
const (
	// EnvAccountID holds the account the function serves; events from any
	// other account are rejected.
	EnvAccountID = "HOUSEKEEPER_ACCOUNT_ID"
	// EnvPolicyParameter holds the name of the SSM parameter with the policy
	// document. Unset when the stack was synthesized without a policy file.
	EnvPolicyParameter = "HOUSEKEEPER_POLICY_SSM_PARAMETER"
	// EnvLogLevel sets the functions' log level.
	EnvLogLevel = "LOG_LEVEL"
	// EnvPolicyDigest holds the SHA-256 of the deployed policy document. A
	// new policy changes every function's configuration, so the next
	// invocation of each starts fresh and loads it; a function refuses a
	// parameter whose content no longer matches (changed outside a deploy).
	EnvPolicyDigest = "HOUSEKEEPER_POLICY_SHA256"
	// EnvKillSwitch names the SSM parameter that, when it exists with any
	// value but "off", forces every invocation into audit mode.
	EnvKillSwitch = "HOUSEKEEPER_KILL_SWITCH_PARAMETER"
)

// Async delivery settings shared by all functions: a handler failure is retried
// twice, and an event older than an hour is no longer worth acting on.
const (
	asyncRetryAttempts = 2
	asyncMaxEventAge   = 1 // hours
)

// Deployment is what every function of one stack is deployed with.
type Deployment struct {
	// DistDir is the folder holding <function>/bootstrap. Required.
	DistDir string
	// PolicyParameter, when set, holds the policy document; nil runs the
	// function with its built-in default policy. PolicyDigest is the
	// SHA-256 of its value.
	PolicyParameter awsssm.IStringParameter
	PolicyDigest    string
	// KillSwitch is the parameter name each invocation checks for the kill
	// switch; the stack does not create it, so a deploy never resets it.
	KillSwitch string
	// LogRetention of the function's log group; zero means one month.
	LogRetention awslogs.RetentionDays
	// Topic, when set, receives the function's alarms and reports; TopicKey
	// encrypts it.
	Topic    awssns.ITopic
	TopicKey awskms.IKey
	// Needs is what the deployed policy, with every variant, asks of the
	// roles (NeedsOf); zero means the built-in default policy's.
	Needs Needs
	// Regions the roles act on AMIs and snapshots in; empty means the
	// stack's own region. Organization mode lists the scope's regions: the
	// home account is worked on with the functions' own roles.
	Regions []string
	// Org, when set, is organization mode: the functions get its
	// environment and, each, a role of a fixed name (RoleNames) that its
	// own member role trusts.
	Org *OrgDeployment
}

// needs returns d.Needs, or the default policy's when unset (a policy
// always has tagger keys).
func (d Deployment) needs() Needs {
	if d.Needs.TaggerKeys == nil {
		return NeedsOf(policy.Default())
	}
	return d.Needs
}

// functionProps are the settings that differ between the housekeeper's functions.
type functionProps struct {
	Deployment
	// Name is the folder under DistDir holding the function's bootstrap binary.
	Name        string
	Description string
	MemorySize  float64
	Timeout     awscdk.Duration
	// Environment adds function-specific variables to the common ones.
	Environment map[string]string
	// NoAsyncRetry turns off Lambda's async retries (for sweeps whose
	// per-run caps must not apply three times in an hour).
	NoAsyncRetry bool
	// ReservedConcurrency, when > 0, caps concurrent executions (1 keeps two
	// sweeps from overlapping).
	ReservedConcurrency int
	// RoleName, when set, names the role (under RolePath): the member
	// role's trust policy names the central roles.
	RoleName string
}

// FunctionResources are what every housekeeper function owns: its role,
// log group, dead-letter queue and the alarms on its errors and DLQ.
type FunctionResources struct {
	Function        awslambda.Function
	Role            awsiam.Role
	LogGroup        awslogs.LogGroup
	DeadLetterQueue awssqs.Queue
	// Alarms are the function's own alarms (none without a topic).
	Alarms []awscloudwatch.Alarm
	// EventQueue buffers the function's events (nil for a function only
	// scheduled); records failing eventMaxReceives times move to
	// EventDeadLetterQueue.
	EventQueue           awssqs.Queue
	EventDeadLetterQueue awssqs.Queue
}

// goFunction is a Go Lambda function under construction, with the helpers
// that grant it permissions and route events to it.
type goFunction struct {
	FunctionResources
}

// newGoFunction creates a provided.al2023/arm64 function from
// <DistDir>/<Name>/bootstrap, with its own role that starts with no
// permissions beyond writing to its own log group and DLQ.
func newGoFunction(scope constructs.Construct, p *functionProps) *goFunction {
	codeDir := filepath.Join(p.DistDir, p.Name)
	// Fail with a hint instead of CDK's bare "Cannot find asset".
	if _, err := os.Stat(filepath.Join(codeDir, "bootstrap")); err != nil {
		panic(fmt.Sprintf("function %s: %v (build the functions first, e.g. `make build`, or set the distDir context)", p.Name, err))
	}

	retention := p.LogRetention
	if retention == "" {
		retention = awslogs.RetentionDays_ONE_MONTH
	}
	// A dedicated log group lets the role write to it alone instead of the
	// wildcard that AWSLambdaBasicExecutionRole grants. It is retained on stack
	// deletion (CDK's default) so the record of what was done stays until it expires.
	logGroup := awslogs.NewLogGroup(scope, jsii.String("LogGroup"), &awslogs.LogGroupProps{
		Retention: retention,
	})

	dlq := awssqs.NewQueue(scope, jsii.String("DeadLetterQueue"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})

	// An explicit role keeps CDK from attaching AWSLambdaBasicExecutionRole.
	var roleName *string
	if p.RoleName != "" {
		roleName = jsii.String(p.RoleName)
	}
	role := awsiam.NewRole(scope, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String(fmt.Sprintf("ami-housekeeper %s function", p.Name)),
		Path:        jsii.String(RolePath),
		RoleName:    roleName,
	})
	logGroup.GrantWrite(role)

	env := map[string]*string{
		EnvAccountID: awscdk.Aws_ACCOUNT_ID(),
		EnvLogLevel:  jsii.String("info"),
	}
	// Only GetParameter: grantRead would add Describe/GetParameters/History.
	var readable []string
	if p.PolicyParameter != nil {
		env[EnvPolicyParameter] = p.PolicyParameter.ParameterName()
		env[EnvPolicyDigest] = jsii.String(p.PolicyDigest)
		readable = append(readable, *p.PolicyParameter.ParameterArn())
	}
	if p.KillSwitch != "" {
		env[EnvKillSwitch] = jsii.String(p.KillSwitch)
		readable = append(readable, *ssmParameterARN(scope, p.KillSwitch))
	}
	if len(readable) > 0 {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions:   jsii.Strings("ssm:GetParameter"),
			Resources: jsii.Strings(readable...),
		}))
	}
	if p.Org != nil {
		for k, v := range p.Org.Environment {
			env[k] = v
		}
	}
	for k, v := range p.Environment {
		env[k] = jsii.String(v)
	}

	retries := asyncRetryAttempts
	if p.NoAsyncRetry {
		retries = 0
	}
	var reserved *float64
	if p.ReservedConcurrency > 0 {
		reserved = jsii.Number(p.ReservedConcurrency)
	}
	fn := awslambda.NewFunction(scope, jsii.String("Function"), &awslambda.FunctionProps{
		Description:  jsii.String(p.Description),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(codeDir), nil),
		MemorySize:   jsii.Number(p.MemorySize),
		Timeout:      p.Timeout,
		Role:         role,
		LogGroup:     logGroup,
		Environment:  &env,
		// A failed async invocation lands in the DLQ as an on-failure
		// destination record: the event (requestPayload) with why it failed
		// (responsePayload, condition, approximateInvokeCount), which a bare
		// dead-letter message lacks. CDK grants sqs:SendMessage.
		OnFailure:                    awslambdadestinations.NewSqsDestination(dlq),
		RetryAttempts:                jsii.Number(retries),
		MaxEventAge:                  awscdk.Duration_Hours(jsii.Number(asyncMaxEventAge)),
		ReservedConcurrentExecutions: reserved,
	})

	suppressFunctionFindings(fn, dlq)

	var alarms []awscloudwatch.Alarm
	if p.Topic != nil {
		alarms = addAlarms(scope, p.Name, fn, dlq, p.Topic)
	}
	return &goFunction{FunctionResources{Function: fn, Role: role, LogGroup: logGroup, DeadLetterQueue: dlq, Alarms: alarms}}
}

// addAlarms raises an alarm when the function fails (an AWS error after the
// SDK's retries: IAM, throttling) or when an event lands in its DLQ (it was
// given up on). Bad input is not an error and does not alarm.
func addAlarms(scope constructs.Construct, name string, fn awslambda.Function, dlq awssqs.Queue, topic awssns.ITopic) []awscloudwatch.Alarm {
	var alarms []awscloudwatch.Alarm
	action := awscloudwatchactions.NewSnsAction(topic)
	five := awscdk.Duration_Minutes(jsii.Number(5))
	alarm := func(id, description string, metric awscloudwatch.IMetric) {
		a := awscloudwatch.NewAlarm(scope, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(fmt.Sprintf("ami-housekeeper %s: %s", name, description)),
			Metric:             metric,
			Threshold:          jsii.Number(1),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		a.AddAlarmAction(action)
		alarms = append(alarms, a)
	}
	alarm("ErrorsAlarm", "invocations failed (see the runbook, outcome=error)",
		fn.MetricErrors(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")}))
	alarm("DeadLetterAlarm", "events in the dead-letter queue (replay them, see the runbook)",
		dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}))
	return alarms
}

// ssmParameterARN is the ARN of the SSM parameter name ("/a/b") in the stack's
// account and region.
func ssmParameterARN(scope constructs.Construct, name string) *string {
	return awscdk.Stack_Of(scope).FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("ssm"), Resource: jsii.String("parameter"), ResourceName: jsii.String(strings.TrimPrefix(name, "/")),
	})
}

// target returns an EventBridge target invoking the function. Events that
// EventBridge cannot deliver go to the function's DLQ, so one queue shows
// every event that was not handled.
func (f *goFunction) target() awsevents.IRuleTarget {
	return awseventstargets.NewLambdaFunction(f.Function, &awseventstargets.LambdaFunctionProps{
		DeadLetterQueue: f.DeadLetterQueue,
		RetryAttempts:   jsii.Number(asyncRetryAttempts),
		MaxEventAge:     awscdk.Duration_Hours(jsii.Number(asyncMaxEventAge)),
	})
}

// allow adds one Allow statement to the function's role.
func (f *goFunction) allow(actions []string, resources ...*string) {
	f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: jsii.Strings(actions...), Resources: &resources,
	}))
}

// allowAccount gives the function's role what function does in the
// stack's account (accountAccessOf), over d.Regions, with why each
// wildcard resource is needed.
func (f *goFunction) allowAccount(scope constructs.Construct, d Deployment, function string) {
	accountStatements(awscdk.Stack_Of(scope), function, d.needs(), d.Regions).addTo(f.Role)
	suppressRoleWildcards(f.Role, d.wildcardRegions(), accountAccessOf[function].wildcards...)
}

// allowPublish lets the function publish to an encrypted topic: explicit
// rather than Topic.GrantPublish, which adds the wildcard kms:GenerateDataKey*.
func (f *goFunction) allowPublish(topic awssns.ITopic, key awskms.IKey) {
	if topic == nil {
		return
	}
	f.allow([]string{"sns:Publish"}, topic.TopicArn())
	if key != nil {
		f.allow([]string{"kms:GenerateDataKey", "kms:Decrypt"}, key.KeyArn())
	}
}

// cloudTrailCalls matches successful EC2 API calls named eventNames
// (failed calls, which carry errorCode, changed nothing).
func cloudTrailCalls(eventNames ...string) *awsevents.EventPattern {
	return &awsevents.EventPattern{
		Source:     jsii.Strings("aws.ec2"),
		DetailType: jsii.Strings("AWS API Call via CloudTrail"),
		Detail: &map[string]interface{}{
			"eventSource": []string{"ec2.amazonaws.com"},
			"eventName":   eventNames,
			"errorCode":   []interface{}{map[string]interface{}{"exists": false}},
		},
	}
}

// imageAvailable matches an AMI becoming available.
func imageAvailable() *awsevents.EventPattern {
	return &awsevents.EventPattern{
		Source:     jsii.Strings("aws.ec2"),
		DetailType: jsii.Strings("EC2 AMI State Change"),
		Detail:     &map[string]interface{}{"State": []string{"available"}},
	}
}

// cloudTrailRule delivers to the function (its queue, if it has one)
// successful EC2 API calls named eventNames, from bus (nil: the default
// bus).
func (f *goFunction) cloudTrailRule(scope constructs.Construct, id, description string, bus awsevents.IEventBus, eventNames ...string) awsevents.Rule {
	return f.rule(scope, id, description, f.eventTarget(), bus, cloudTrailCalls(eventNames...), nil)
}

// imageAvailableRule delivers to the function (its queue, if any) when an
// AMI becomes available, from bus (nil: the default bus).
func (f *goFunction) imageAvailableRule(scope constructs.Construct, id, description string, bus awsevents.IEventBus) awsevents.Rule {
	return f.rule(scope, id, description, f.eventTarget(), bus, imageAvailable(), nil)
}

// scheduleRule invokes the function on a schedule expression.
func (f *goFunction) scheduleRule(scope constructs.Construct, id, description, expression string) awsevents.Rule {
	return f.rule(scope, id, description, f.target(), nil, nil, awsevents.Schedule_Expression(jsii.String(expression)))
}

func (f *goFunction) rule(scope constructs.Construct, id, description string, target awsevents.IRuleTarget, bus awsevents.IEventBus, pattern *awsevents.EventPattern, schedule awsevents.Schedule) awsevents.Rule {
	return awsevents.NewRule(scope, jsii.String(id), &awsevents.RuleProps{
		Description:  jsii.String("ami-housekeeper: " + description),
		EventBus:     bus,
		EventPattern: pattern,
		Schedule:     schedule,
		Targets:      &[]awsevents.IRuleTarget{target},
	})
}
