package housekeeper

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// SharingFunctionName is the folder under the dist folder that holds the
// sharing guard's bootstrap binary.
const SharingFunctionName = "sharing"

// DefaultSharingSchedule runs the audit daily at 04:00 UTC.
const DefaultSharingSchedule = "cron(0 4 * * ? *)"

// sharingTimeoutSeconds: an audit of one account and region, Lambda's
// longest.
const sharingTimeoutSeconds = 15 * 60

// EnvAuditCursor names the SSM parameter where an unfinished audit keeps
// its position.
const EnvAuditCursor = "HOUSEKEEPER_AUDIT_CURSOR_PARAMETER"

// SharingCloudTrailEvents are the calls that change who may use an AMI
// or snapshot, or bring one back with whatever sharing it had.
var SharingCloudTrailEvents = []string{
	"ModifyImageAttribute", "ModifySnapshotAttribute", "RestoreImageFromRecycleBin", "EnableImage", "RestoreSnapshotFromRecycleBin",
}

// SharingProps configures a Sharing guard.
type SharingProps struct {
	Deployment
	// Schedule of the audit; empty means DefaultSharingSchedule. In
	// organization mode the dispatcher has the schedule instead.
	Schedule string
}

// Sharing is the function that enforces the sharing policy, with its rules,
// schedule and permissions.
type Sharing struct {
	constructs.Construct
	FunctionResources
	// PermissionRule matches successful ModifyImageAttribute and
	// ModifySnapshotAttribute calls, and the calls that bring an AMI or
	// snapshot back (RestoreImageFromRecycleBin, EnableImage,
	// RestoreSnapshotFromRecycleBin); NewImageRule AMIs becoming available.
	PermissionRule awsevents.Rule
	NewImageRule   awsevents.Rule
	// ScheduleRule is nil in organization mode.
	ScheduleRule awsevents.Rule
	AuditCursor  awsssm.StringParameter
}

// NewSharing creates the sharing guard.
func NewSharing(scope constructs.Construct, id string, props *SharingProps) *Sharing {
	c := constructs.NewConstruct(scope, jsii.String(id))
	stack := awscdk.Stack_Of(c)

	cursor := awsssm.NewStringParameter(c, jsii.String("AuditCursor"), &awsssm.StringParameterProps{
		ParameterName: jsii.String("/" + *stack.StackName() + "/sharing-audit-cursor"),
		Description:   jsii.String("ami-housekeeper: where an unfinished sharing audit resumes ('-' = from the start)"),
		StringValue:   jsii.String("-"),
	})
	env := map[string]string{EnvReportEventBus: "default", EnvAuditCursor: *cursor.ParameterName()}
	if props.Topic != nil {
		env[EnvReportTopicARN] = *props.Topic.TopicArn()
	}
	f := newGoFunction(c, &functionProps{
		Deployment:  props.Deployment,
		Name:        SharingFunctionName,
		Description: "Revokes AMI and snapshot sharing the policy does not allow (ami-housekeeper)",
		MemorySize:  256,
		// An event takes well under a second; the audit reads launch
		// permissions at 20/s and resumes on the next run if it runs out.
		Timeout:     awscdk.Duration_Seconds(jsii.Number(sharingTimeoutSeconds)),
		Environment: env,
		RoleName:    props.roleName(c, SharingFunctionName),
	})
	// Permission changes and new AMIs wait in a queue (a release burst is
	// paced, not throttled); the scheduled audit invokes it directly.
	f.bufferEvents(c, SharingFunctionName, awscdk.Duration_Seconds(jsii.Number(sharingTimeoutSeconds)), props.Topic)

	f.allowAccount(c, props.Deployment, SharingFunctionName)
	f.allowOrgWorker(props.Org, SharingFunctionName, true)
	cursors := []*string{cursor.ParameterArn()}
	if props.Org != nil {
		// Each account and region's audit resumes from a cursor of its own,
		// <cursor>/<account>/<region>, which the function creates.
		cursors = append(cursors, jsii.String(*cursor.ParameterArn()+"/*"))
	}
	f.allow([]string{"ssm:GetParameter", "ssm:PutParameter"}, cursors...)
	f.allow([]string{"events:PutEvents"}, stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("events"), Resource: jsii.String("event-bus"), ResourceName: jsii.String("default")}))
	f.allowPublish(props.Topic, props.TopicKey)
	if props.Org != nil {
		suppressRoleWildcards(f.Role, nil, wildcard{
			"Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter<" + *stack.GetLogicalId(cursor.Node().DefaultChild().(awscdk.CfnElement)) + ">/*",
			"In organization mode each account and region's audit resumes from a cursor of its own, <cursor>/<account>/<region>, created by the guard as it first audits them: the accounts are the organization's, listed at run time."})
	}

	// Every successful call is re-checked whatever its request shape; a
	// restore can bring sharing back.
	permissions := f.cloudTrailRule(c, "PermissionRule", "AMI launch or snapshot volume permissions changed, or AMI or snapshot restored",
		nil, SharingCloudTrailEvents...)
	// Copies and imports arrive with whatever sharing their source had.
	newImages := f.imageAvailableRule(c, "NewImageRule", "AMI available (check its sharing)", nil)
	var audit awsevents.Rule
	if props.Org == nil {
		schedule := props.Schedule
		if schedule == "" {
			schedule = DefaultSharingSchedule
		}
		audit = f.scheduleRule(c, "ScheduleRule", "sharing audit", schedule)
	} else {
		// The same events of the member accounts; the audit is the
		// dispatcher's schedule, run as units (addUnits).
		f.cloudTrailRule(c, "OrgPermissionRule", "AMI launch or snapshot volume permissions changed, or AMI or snapshot restored, in a member account",
			props.Org.Bus, SharingCloudTrailEvents...)
		f.imageAvailableRule(c, "OrgNewImageRule", "AMI available in a member account (check its sharing)", props.Org.Bus)
		f.addUnits(c, props.Org.AuditUnits, props.Org.Config.WorkerConcurrency)
	}

	return &Sharing{Construct: c, FunctionResources: f.FunctionResources,
		PermissionRule: permissions, NewImageRule: newImages, ScheduleRule: audit, AuditCursor: cursor}
}

// sharingWildcards are the wildcard resources of the guard's EC2
// statements (sharingEC2), with why each is needed.
var sharingWildcards = []wildcard{everyImage, everySnapshot, {"Resource::*",
	"Describe*/Get*State calls support no resource-level permissions (the Service Authorization Reference lists no resource type for them); EnableImageBlockPublicAccess, granted only to an enforcing guard, is an account-level setting with no resource."}}
