package housekeeper

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// SharingFunctionName is the folder under the dist folder that holds the
// sharing guard's bootstrap binary.
const SharingFunctionName = "sharing"

// DefaultSharingSchedule runs the audit daily at 04:00 UTC.
const DefaultSharingSchedule = "cron(0 4 * * ? *)"

// EnvAuditCursor names the SSM parameter where an unfinished audit keeps
// its position.
const EnvAuditCursor = "HOUSEKEEPER_AUDIT_CURSOR_PARAMETER"

// SharingProps configures a Sharing guard.
type SharingProps struct {
	Deployment
	// Schedule of the audit; empty means DefaultSharingSchedule.
	Schedule string
	// Sharing is the policy section the function runs with: it decides
	// whether the role may turn on image block public access.
	Sharing policy.Sharing
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
	ScheduleRule   awsevents.Rule
	AuditCursor    awsssm.StringParameter
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
		Timeout:     awscdk.Duration_Minutes(jsii.Number(15)),
		Environment: env,
	})
	// Permission changes and new AMIs wait in a queue (a release burst is
	// paced, not throttled); the scheduled audit invokes it directly.
	f.bufferEvents(c, SharingFunctionName, awscdk.Duration_Minutes(jsii.Number(15)), props.Topic)

	allow := f.allow
	allow([]string{
		"ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeImageAttribute", "ec2:DescribeSnapshotAttribute",
		"ec2:GetImageBlockPublicAccessState", "ec2:GetSnapshotBlockPublicAccessState",
	}, jsii.String("*"))
	image, snapshot := ec2ARN(stack, "image"), ec2ARN(stack, "snapshot")
	f.allowIf([]string{"ec2:ModifyImageAttribute"}, []*string{image}, inAccount())
	f.allowIf([]string{"ec2:ModifySnapshotAttribute"}, []*string{snapshot}, inAccount())
	// It only removes principals; EC2 can say so for snapshots alone.
	f.denySharingAdds(snapshot)
	// The violation is recorded on the AMI, or on a snapshot checked alone.
	f.allowTags(false, SharingTagKeys, image, snapshot)
	// Only an enforcing guard may turn the setting on (audit never acts).
	if props.Sharing.EnableImageBlockPublicAccess && props.Sharing.Mode == policy.ModeEnforce {
		// An account-level setting: no resource to scope it to.
		allow([]string{"ec2:EnableImageBlockPublicAccess"}, jsii.String("*"))
	}
	allow([]string{"ssm:GetParameter", "ssm:PutParameter"}, cursor.ParameterArn())
	allow([]string{"events:PutEvents"}, stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("events"), Resource: jsii.String("event-bus"), ResourceName: jsii.String("default")}))
	f.allowPublish(props.Topic, props.TopicKey)
	suppressRoleWildcards(f.Role, everyImage, everySnapshot, wildcard{"Resource::*",
		"Describe*/Get*State calls support no resource-level permissions (the Service Authorization Reference lists no resource type for them); EnableImageBlockPublicAccess, granted only to an enforcing guard, is an account-level setting with no resource."})

	// Every successful call is re-checked whatever its request shape; a
	// restore can bring sharing back.
	permissions := f.cloudTrailRule(c, "PermissionRule", "AMI launch or snapshot volume permissions changed, or AMI or snapshot restored",
		"ModifyImageAttribute", "ModifySnapshotAttribute", "RestoreImageFromRecycleBin", "EnableImage", "RestoreSnapshotFromRecycleBin")
	// Copies and imports arrive with whatever sharing their source had.
	newImages := f.imageAvailableRule(c, "NewImageRule", "AMI available (check its sharing)")
	schedule := props.Schedule
	if schedule == "" {
		schedule = DefaultSharingSchedule
	}
	audit := f.scheduleRule(c, "ScheduleRule", "sharing audit", schedule)

	return &Sharing{Construct: c, FunctionResources: f.FunctionResources,
		PermissionRule: permissions, NewImageRule: newImages, ScheduleRule: audit, AuditCursor: cursor}
}
