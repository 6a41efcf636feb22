package housekeeper

import (
	"fmt"
	"strconv"
	"time"

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
	// unitsMaxReceives: on its last receive a unit that fails is recorded
	// "failed" and deleted, so its sweep still completes; only a unit whose
	// worker died or timed out on every receive moves to the DLQ. A receive
	// Lambda throttled (account concurrency, a burst of sweeps) counts too,
	// so five leave room for a few of those.
	unitsMaxReceives = 5
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
	// Alarms watch the DLQ's depth and the queue's oldest unit (none
	// without a topic).
	Alarms []awscloudwatch.Alarm
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
// ledger, and the environment that names them to the functions; the
// schedules are the sweeps' (the units queues' age alarms follow them).
func newOrgDeployment(stack awscdk.Stack, o config.Organization, cleanupSchedule, sharingSchedule config.Schedule, topic awssns.ITopic) *OrgDeployment {
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

	cleanupUnits := newUnitsQueue(c, unitsQueueSpec{id: "CleanupUnits", name: name + "-cleanup-units", job: fanout.JobCleanup,
		workerTimeoutSeconds: cleanupTimeoutSeconds, schedule: cleanupSchedule}, topic)
	auditUnits := newUnitsQueue(c, unitsQueueSpec{id: "AuditUnits", name: name + "-audit-units", job: fanout.JobSharingAudit,
		workerTimeoutSeconds: sharingTimeoutSeconds, schedule: sharingSchedule}, topic)

	scope, err := config.ScopeEnvironment(o.Scope)
	if err != nil {
		panic(fmt.Sprintf("organization scope: %v", err))
	}
	// The member role's name is each worker's own (allowOrgWorker).
	env := map[string]*string{
		EnvOrgScope:               jsii.String(scope),
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

// unitsRetention is how long a units queue keeps a unit: a unit never
// worked in that time is dropped, and its sweep never summarized.
const unitsRetention = 4 * 24 * time.Hour

// unitsQueueSpec is one job's units queue.
type unitsQueueSpec struct {
	id, name, job        string
	workerTimeoutSeconds int
	// schedule is the job's: the queue's age alarm fires when a unit has
	// waited as long as the schedule's shortest interval.
	schedule config.Schedule
}

// unitsAgeLimit is how long a unit may wait before the age alarm fires:
// the schedule's shortest interval (the next sweep would start before this
// one's units are worked), but an hour before the queue drops it.
func unitsAgeLimit(s config.Schedule) time.Duration {
	limit := unitsRetention - time.Hour
	if s.MinInterval > 0 && s.MinInterval < limit {
		return s.MinInterval
	}
	return limit
}

// newUnitsQueue creates one job's FIFO units queue (name.fifo) and its
// DLQ, alarmed on the DLQ's depth (a unit whose worker died on every
// receive: its sweep has no summary) and on the age of the queue's oldest
// unit.
func newUnitsQueue(scope constructs.Construct, spec unitsQueueSpec, topic awssns.ITopic) *UnitsQueue {
	id, name := spec.id, spec.name
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
		VisibilityTimeout:         awscdk.Duration_Seconds(jsii.Number(spec.workerTimeoutSeconds + unitsVisibilityMarginSeconds)),
		RetentionPeriod:           awscdk.Duration_Seconds(jsii.Number(unitsRetention.Seconds())),
		DeadLetterQueue:           &awssqs.DeadLetterQueue{Queue: dlq, MaxReceiveCount: jsii.Number(unitsMaxReceives)},
	})
	u := &UnitsQueue{Queue: queue, DeadLetterQueue: dlq, Name: name + ".fifo"}
	if topic == nil {
		return u
	}
	action := awscloudwatchactions.NewSnsAction(topic)
	five := awscdk.Duration_Minutes(jsii.Number(5))
	age := unitsAgeLimit(spec.schedule)
	why := fmt.Sprintf("the shortest interval of its schedule %s", spec.schedule.Expression)
	if age != spec.schedule.MinInterval {
		why = fmt.Sprintf("an hour before the queue drops a unit (it keeps them %s)", unitsRetention)
	}
	for _, a := range []struct {
		id, description string
		metric          awscloudwatch.IMetric
		threshold       float64
	}{
		{"DeadLetterAlarm", fmt.Sprintf(
			"ami-housekeeper %s: a unit is in the DLQ: its worker died or timed out on each of its %d receives (a unit that fails on its last receive is recorded failed and deleted, so it never gets here), and its sweep has no summary until the unit has a result. "+
				`Invoke the dispatcher (output DispatcherFunctionName) again with the sweep's {"job":"%s","time":"<time>"} (the DLQ message's sweep is %s/<time>): it sends only the units without a result. Then purge the DLQ (docs/organization.md, Operating it)`,
			name, unitsMaxReceives, spec.job, spec.job),
			dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}), 1},
		{"AgeAlarm", fmt.Sprintf(
			"ami-housekeeper %s: a unit has waited %s in the queue, %s: the next sweep starts before this one's units are worked. The workers are too few (orgWorkerConcurrency), throttled or failing, or the event source mapping is disabled (see the runbook)",
			name, age, why),
			queue.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}), age.Seconds()},
	} {
		alarm := awscloudwatch.NewAlarm(scope, jsii.String(id+a.id), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(a.description),
			Metric:             a.metric,
			Threshold:          jsii.Number(a.threshold),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		alarm.AddAlarmAction(action)
		u.Alarms = append(u.Alarms, alarm)
	}
	return u
}

// onlySender denies sending to the units queue to every principal but
// role: a unit names an account, region and job to run, so only the
// dispatcher writes them (a redrive from the DLQ too is refused: a unit
// in the DLQ is sent again by dispatching its sweep again).
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
			"The event source mapping reads an SQS queue, for which Lambda supports no on-failure destination: a unit failing on its last receive is recorded failed in the ledger and deleted; one whose worker died on every receive moves to the queue's own dead-letter queue (redrive policy), alarmed on its depth.")},
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
