package housekeeper

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// TaggerFunctionName is the folder under the dist folder that holds the
// tagger's bootstrap binary.
const TaggerFunctionName = "tagger"

// TaggerProps configures a Tagger.
type TaggerProps struct {
	// DistDir is the folder holding tagger/bootstrap. Required.
	DistDir string
	// PolicyParameter holds the policy document; nil runs the tagger with its
	// built-in default policy.
	PolicyParameter awsssm.IStringParameter
	// LogRetention of the function's log group; zero means one month.
	LogRetention awslogs.RetentionDays
	// AlarmTopic, when set, receives the function's alarms.
	AlarmTopic awssns.ITopic
}

// Tagger is the function that tags new AMIs and their snapshots, with the
// EventBridge rules that trigger it and the permissions it needs.
type Tagger struct {
	constructs.Construct
	Function        awslambda.Function
	Role            awsiam.Role
	LogGroup        awslogs.LogGroup
	DeadLetterQueue awssqs.Queue
	// CloudTrailRule matches successful CreateImage/CopyImage/RegisterImage calls.
	CloudTrailRule awsevents.Rule
	// StateChangeRule matches AMIs becoming available.
	StateChangeRule awsevents.Rule
}

// NewTagger creates the tagger function, its two rules on the default event
// bus, and its role. It panics if props.DistDir has no tagger/bootstrap.
func NewTagger(scope constructs.Construct, id string, props *TaggerProps) *Tagger {
	c := constructs.NewConstruct(scope, jsii.String(id))

	f := newGoFunction(c, &functionProps{
		Name:        TaggerFunctionName,
		DistDir:     props.DistDir,
		Description: "Tags new AMIs and their snapshots (ami-housekeeper)",
		MemorySize:  128,
		// The handler may wait ~10 s for a pending AMI's snapshots to appear.
		Timeout:         awscdk.Duration_Seconds(jsii.Number(30)),
		LogRetention:    props.LogRetention,
		PolicyParameter: props.PolicyParameter,
		AlarmTopic:      props.AlarmTopic,
	})

	// Describe calls support no resource-level permissions, hence "*".
	f.allow([]string{"ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeTags"}, jsii.String("*"))
	// Tagging is limited to AMIs and snapshots in the stack's region.
	stack := awscdk.Stack_Of(c)
	f.allow([]string{"ec2:CreateTags"}, ec2ARN(stack, "image"), ec2ARN(stack, "snapshot"))

	// CloudTrail catches the AMI as soon as the call succeeds; the state change
	// catches AMIs whose snapshots were still pending at that time, and AMIs
	// made by services that do not go through these calls.
	cloudTrail := f.cloudTrailRule(c, "CloudTrailRule", "AMI created, copied or registered", "CreateImage", "CopyImage", "RegisterImage")
	stateChange := f.imageAvailableRule(c, "StateChangeRule", "AMI available")

	return &Tagger{
		Construct:       c,
		Function:        f.Function,
		Role:            f.Role,
		LogGroup:        f.LogGroup,
		DeadLetterQueue: f.DeadLetterQueue,
		CloudTrailRule:  cloudTrail,
		StateChangeRule: stateChange,
	}
}
