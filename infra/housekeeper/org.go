package housekeeper

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/ami-housekeeper/ami-housekeeper/infra/config"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/coldstart"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// Environment of the central functions in organization mode, as the
// functions read it: its presence (EnvOrgScope) is organization mode.
const (
	EnvOrgScope               = org.EnvScope
	EnvOrgRoleName            = coldstart.EnvOrgRoleName
	EnvOrgExternalID          = coldstart.EnvOrgExternalID
	EnvLedgerTable            = fanout.EnvLedgerTable
	EnvUnitsQueueCleanup      = fanout.EnvUnitsQueueCleanup
	EnvUnitsQueueSharingAudit = fanout.EnvUnitsQueueSharingAudit
	// EnvUnitsMaxReceive is the units queues' maxReceiveCount: a worker
	// on that receive records the unit "failed" instead of asking for
	// another try, so the sweep's summary still completes.
	EnvUnitsMaxReceive = handlers.EnvUnitsMaxReceive
)

// DispatcherFunctionName is the folder under the dist folder that holds the
// dispatcher's bootstrap binary (functions/dispatcher).
const DispatcherFunctionName = "dispatcher"

// Units queue settings.
const (
	// unitsMaxReceives: a unit failing three times (each after the
	// worker's whole timeout at worst) is recorded failed and moves to the
	// DLQ; the next sweep covers the account again.
	unitsMaxReceives = 3
	// unitsVisibilityMargin is added to the worker's timeout: Lambda
	// requires the visibility timeout to be at least the function's.
	unitsVisibilityMarginSeconds = 60
	// dispatcherTimeoutMinutes: listing a large organization (its tags one
	// account at a time, at Organizations' low rates) takes minutes.
	dispatcherTimeoutMinutes = 15
)

// Ledger table keys (pkg/fanout's Ledger).
const (
	ledgerPartitionKey = "sweep"
	ledgerSortKey      = "unit"
	ledgerTTLAttribute = "expires"
)

// organizationsReads are the Organizations calls that build org.Directory
// (awsapi.OrganizationsAPI).
var organizationsReads = []string{
	"organizations:DescribeOrganization", "organizations:ListRoots", "organizations:ListAccounts",
	"organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent",
	"organizations:ListParents", "organizations:ListTagsForResource",
}

// ledgerActions are what the ledger's users do: conditional writes and
// transactions (TransactWriteItems is authorized per item as PutItem,
// UpdateItem and ConditionCheckItem), reads of one sweep (GetItem, Query).
// No Scan, no DeleteItem: expired sweeps go by TTL.
var ledgerActions = []string{
	"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem", "dynamodb:Query",
}

// OrgDeployment is what organization mode adds to the central functions.
type OrgDeployment struct {
	Config config.Organization
	// Environment every central function gets.
	Environment map[string]*string
	// Bus is the central event bus the member accounts forward to.
	Bus awsevents.EventBus
	// CleanupUnits and AuditUnits are the units queues.
	CleanupUnits, AuditUnits *UnitsQueue
	// Ledger is the sweeps' ledger table.
	Ledger awsdynamodb.Table
}

// UnitsQueue is one job's FIFO units queue and its dead-letter queue.
type UnitsQueue struct {
	Queue, DeadLetterQueue awssqs.Queue
	// Name is the queue's name, as the functions get it.
	Name string
	// Alarm watches the DLQ's depth (nil without a topic).
	Alarm awscloudwatch.Alarm
}

// OrgWorkerFunctions are the central functions that work in member
// accounts, each through a member role of its own
// (config.Organization.MemberRole); the dispatcher reaches none.
var OrgWorkerFunctions = []string{TaggerFunctionName, SharingFunctionName, CleanupFunctionName}

// RoleNames are the fixed names of the central functions' roles in
// organization mode (OrgWorkerFunctions' order): each function's member
// role trusts exactly its own.
func RoleNames(stackName string) []string {
	var out []string
	for _, f := range OrgWorkerFunctions {
		out = append(out, CentralRoleName(stackName, f))
	}
	return out
}

// CentralRoleName is function's fixed role name in organization mode.
func CentralRoleName(stackName, function string) string { return stackName + "-" + function }

// roleName is the function's fixed role name in organization mode, ""
// (a generated one) otherwise.
func (d Deployment) roleName(scope constructs.Construct, function string) string {
	if d.Org == nil {
		return ""
	}
	return CentralRoleName(*awscdk.Stack_Of(scope).StackName(), function)
}

// wildcardRegions is how the roles' ARNs show their region to cdk-nag:
// "*" in organization mode (ec2ResourcesIn), the stack's otherwise.
func (d Deployment) wildcardRegions() []string {
	if len(d.Regions) == 0 {
		return nil
	}
	return []string{"*"}
}

// newOrgDeployment creates the central bus, the units queues and the
// ledger, and the environment that names them to the functions.
func newOrgDeployment(stack awscdk.Stack, o config.Organization, topic awssns.ITopic) *OrgDeployment {
	c := constructs.NewConstruct(stack, jsii.String("Organization"))
	name := *stack.StackName()

	bus := awsevents.NewEventBus(c, jsii.String("Bus"), &awsevents.EventBusProps{
		EventBusName: jsii.String(name + "-org"),
		Description:  jsii.String("ami-housekeeper: EC2 events forwarded by the organization's member accounts"),
	})
	// Any account of the organization, and only those, may put events: the
	// member stacks' forwarding rules do (cross-account, cross-region).
	// Their content is not trusted: the functions check the account and
	// region against the scope before any call. The policy is the bus's
	// own property (one resource, no separate EventBusPolicy), so it names
	// the bus by its ARN as built, not by a reference to itself.
	busARN := stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("events"), Resource: jsii.String("event-bus"), ResourceName: jsii.String(name + "-org"),
	})
	bus.Node().DefaultChild().(awsevents.CfnEventBus).SetPolicy(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":       "OrganizationMembersPutEvents",
			"Effect":    "Allow",
			"Principal": "*",
			"Action":    "events:PutEvents",
			"Resource":  busARN,
			"Condition": map[string]any{"StringEquals": map[string]any{"aws:PrincipalOrgID": o.ID}},
		}},
	})

	ledger := awsdynamodb.NewTable(c, jsii.String("Ledger"), &awsdynamodb.TableProps{
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String(ledgerPartitionKey), Type: awsdynamodb.AttributeType_STRING},
		SortKey:      &awsdynamodb.Attribute{Name: jsii.String(ledgerSortKey), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		Encryption:          awsdynamodb.TableEncryption_AWS_MANAGED,
		TimeToLiveAttribute: jsii.String(ledgerTTLAttribute),
		// Sweep progress and unit results only: every sweep's summary is
		// published; nothing to keep once the stack is gone.
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})

	cleanupUnits := newUnitsQueue(c, "CleanupUnits", name+"-cleanup-units", cleanupTimeoutSeconds, topic)
	auditUnits := newUnitsQueue(c, "AuditUnits", name+"-audit-units", sharingTimeoutSeconds, topic)

	scope, err := json.Marshal(o.Scope)
	if err != nil {
		panic(fmt.Sprintf("organization scope: %v", err))
	}
	// The member role's name is each worker's own (allowOrgWorker).
	env := map[string]*string{
		EnvOrgScope:               jsii.String(string(scope)),
		EnvLedgerTable:            ledger.TableName(),
		EnvUnitsQueueCleanup:      jsii.String(cleanupUnits.Name),
		EnvUnitsQueueSharingAudit: jsii.String(auditUnits.Name),
		EnvUnitsMaxReceive:        jsii.String(strconv.Itoa(unitsMaxReceives)),
	}
	if o.ExternalID != "" {
		env[EnvOrgExternalID] = jsii.String(o.ExternalID)
	}
	return &OrgDeployment{Config: o, Environment: env, Bus: bus, CleanupUnits: cleanupUnits, AuditUnits: auditUnits, Ledger: ledger}
}

// newUnitsQueue creates one job's FIFO units queue (name.fifo) and its
// DLQ, alarmed on its depth: a unit there failed unitsMaxReceives times
// and was recorded failed in its sweep's summary.
func newUnitsQueue(scope constructs.Construct, id, name string, workerTimeoutSeconds int, topic awssns.ITopic) *UnitsQueue {
	dlq := awssqs.NewQueue(scope, jsii.String(id+"DeadLetterQueue"), &awssqs.QueueProps{
		QueueName:       jsii.String(name + "-dlq.fifo"),
		Fifo:            jsii.Bool(true),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	suppressDeadLetterQueue(dlq)
	queue := awssqs.NewQueue(scope, jsii.String(id+"Queue"), &awssqs.QueueProps{
		QueueName: jsii.String(name + ".fifo"),
		Fifo:      jsii.Bool(true),
		// The dispatcher sets each unit's deduplication id (a hash of the
		// sweep and the unit), so a retried dispatch sends nothing twice.
		ContentBasedDeduplication: jsii.Bool(false),
		Encryption:                awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:                jsii.Bool(true),
		VisibilityTimeout:         awscdk.Duration_Seconds(jsii.Number(workerTimeoutSeconds + unitsVisibilityMarginSeconds)),
		RetentionPeriod:           awscdk.Duration_Days(jsii.Number(4)),
		DeadLetterQueue:           &awssqs.DeadLetterQueue{Queue: dlq, MaxReceiveCount: jsii.Number(unitsMaxReceives)},
	})
	u := &UnitsQueue{Queue: queue, DeadLetterQueue: dlq, Name: name + ".fifo"}
	if topic != nil {
		alarm := awscloudwatch.NewAlarm(scope, jsii.String(id+"DeadLetterAlarm"), &awscloudwatch.AlarmProps{
			AlarmDescription: jsii.String(fmt.Sprintf(
				"ami-housekeeper %s: units failed %d times and moved to the DLQ; each is listed as failed in its sweep's summary, the next sweep covers the account again (see the runbook)",
				name, unitsMaxReceives)),
			Metric: dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
				Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum")}),
			Threshold:          jsii.Number(1),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		alarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(topic))
		u.Alarm = alarm
	}
	return u
}

// onlySender denies sending to the units queue to every principal but
// role: a unit names an account, region and job to run, so only the
// dispatcher writes them (a redrive from the DLQ too is refused: the next
// sweep covers a failed unit's account).
func (u *UnitsQueue) onlySender(role awsiam.IRole) {
	u.Queue.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("OnlyTheDispatcherSends"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings("sqs:SendMessage"),
		Resources:  jsii.Strings(*u.Queue.QueueArn()),
		Conditions: &map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": role.RoleArn()}},
	}))
}

// addUnits makes the function a worker of the units queue: one unit per
// invocation, at most concurrency at once, a failed unit reported alone.
func (f *goFunction) addUnits(scope constructs.Construct, u *UnitsQueue, concurrency int) {
	f.Function.AddEventSource(awslambdaeventsources.NewSqsEventSource(u.Queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(1),
		MaxConcurrency:          jsii.Number(float64(concurrency)),
		ReportBatchItemFailures: jsii.Bool(true),
	}))
	cdknag.NagSuppressions_AddResourceSuppressions(f.Function, &[]*cdknag.NagPackSuppression{
		{Id: jsii.String("Serverless-LambdaEventSourceMappingDestination"), Reason: jsii.String(
			"The event source mapping reads an SQS queue, for which Lambda supports no on-failure destination: a unit failing its last receive is recorded failed in the ledger and moves to the queue's own dead-letter queue (redrive policy), alarmed on its depth.")},
	}, jsii.Bool(true))
}

// allowOrgWorker lets function's central role work in the member
// accounts: assume function's own member role (and no other function's)
// in an account of the organization, whose trust policy names this role
// alone; read the organization; and, for a units worker, use the ledger.
// The function is told its member role's name (EnvOrgRoleName). Nothing
// outside organization mode.
func (f *goFunction) allowOrgWorker(o *OrgDeployment, function string, ledger bool) {
	if o == nil {
		return
	}
	stack := awscdk.Stack_Of(f.Role)
	roleName := o.Config.MemberRole(function)
	f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: jsii.Strings("sts:AssumeRole"),
		Resources: jsii.Strings(*stack.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("iam"), Region: jsii.String(""), Account: jsii.String("*"),
			Resource: jsii.String("role"), ResourceName: jsii.String(roleName),
		})),
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:ResourceOrgID": o.Config.ID}},
	}))
	f.Function.AddEnvironment(jsii.String(EnvOrgRoleName), jsii.String(roleName), nil)
	f.allow(organizationsReads, jsii.String("*"))
	if ledger {
		f.allow(ledgerActions, o.Ledger.TableArn())
	}
	suppressRoleWildcards(f.Role, nil, memberRoleWildcard(roleName), organizationsWildcard)
}

// memberRoleWildcard: the function's member role is in every account of
// the scope.
func memberRoleWildcard(roleName string) wildcard {
	return wildcard{"Resource::arn:<AWS::Partition>:iam::*:role/" + roleName,
		"The function's member role has one name in every member account, and the accounts are the organization's, listed at run time: the statement is conditioned on aws:ResourceOrgID = the organization, names this function's member role only, and that role trusts only this function's role."}
}

// organizationsWildcard: Organizations' reads.
var organizationsWildcard = wildcard{"Resource::*",
	"Organizations' DescribeOrganization, ListRoots and ListAccounts support no resource-level permissions; the other reads (ListAccountsForParent, ListOrganizationalUnitsForParent, ListParents, ListTagsForResource) walk the whole OU tree, known only at run time. All are reads."}

// Dispatcher is organization mode's sweep starter: on the cleanup and
// audit schedules it lists the organization and sends one unit per
// account × region to the job's units queue.
type Dispatcher struct {
	constructs.Construct
	FunctionResources
	CleanupScheduleRule, AuditScheduleRule awsevents.Rule
}

// DispatcherProps configures the Dispatcher.
type DispatcherProps struct {
	Deployment
	CleanupSchedule, SharingSchedule string
}

// NewDispatcher creates the dispatcher function and the two schedules.
func NewDispatcher(scope constructs.Construct, id string, props *DispatcherProps) *Dispatcher {
	c := constructs.NewConstruct(scope, jsii.String(id))
	stack := awscdk.Stack_Of(c)
	o := props.Org
	f := newGoFunction(c, &functionProps{
		Deployment:  props.Deployment,
		Name:        DispatcherFunctionName,
		Description: "Starts organization sweeps: one unit per account and region (ami-housekeeper)",
		MemorySize:  256,
		Timeout:     awscdk.Duration_Minutes(jsii.Number(dispatcherTimeoutMinutes)),
		Environment: map[string]string{EnvReportEventBus: "default"},
	})
	if props.Topic != nil {
		f.Function.AddEnvironment(jsii.String(EnvReportTopicARN), props.Topic.TopicArn(), nil)
	}
	f.allow(organizationsReads, jsii.String("*"))
	f.allow(ledgerActions, o.Ledger.TableArn())
	// SendMessageBatch is authorized as SendMessage.
	f.allow([]string{"sqs:GetQueueUrl", "sqs:SendMessage"}, o.CleanupUnits.Queue.QueueArn(), o.AuditUnits.Queue.QueueArn())
	o.CleanupUnits.onlySender(f.Role)
	o.AuditUnits.onlySender(f.Role)
	// A sweep with no units (or all done on a retried dispatch) is
	// summarized by the dispatcher itself.
	f.allow([]string{"events:PutEvents"}, stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("events"), Resource: jsii.String("event-bus"), ResourceName: jsii.String("default")}))
	f.allowPublish(props.Topic, props.TopicKey)
	suppressRoleWildcards(f.Role, nil, organizationsWildcard)

	rule := func(id, description, schedule, job string) awsevents.Rule {
		return f.rule(c, id, description, awseventstargets.NewLambdaFunction(f.Function, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: f.DeadLetterQueue,
			RetryAttempts:   jsii.Number(asyncRetryAttempts),
			MaxEventAge:     awscdk.Duration_Hours(jsii.Number(asyncMaxEventAge)),
			// The sweep is named by its job and scheduled time, so a
			// retried invocation names the same sweep.
			Event: awsevents.RuleTargetInput_FromObject(map[string]any{"job": job, "time": awsevents.EventField_Time()}),
		}), nil, nil, awsevents.Schedule_Expression(jsii.String(schedule)))
	}
	cleanupRule := rule("CleanupScheduleRule", "organization cleanup sweep", props.CleanupSchedule, fanout.JobCleanup)
	auditRule := rule("SharingAuditScheduleRule", "organization sharing audit", props.SharingSchedule, fanout.JobSharingAudit)
	return &Dispatcher{Construct: c, FunctionResources: f.FunctionResources, CleanupScheduleRule: cleanupRule, AuditScheduleRule: auditRule}
}
