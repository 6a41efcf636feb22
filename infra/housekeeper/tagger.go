package housekeeper

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// TaggerFunctionName is the folder under the dist folder that holds the
// tagger's bootstrap binary.
const TaggerFunctionName = "tagger"

// taggerTimeoutSeconds: the handler may wait ~10 s for a pending AMI's
// snapshots to appear; a batch stops starting work 3 s before it.
const taggerTimeoutSeconds = 30

// TaggerProps configures a Tagger.
type TaggerProps struct {
	Deployment
	// Tagging is the policy section the function runs with: its role may
	// write exactly the keys it names (TaggerTagKeys). Nil means the
	// built-in default policy's.
	Tagging *policy.Tagging
}

// Tagger is the function that tags new AMIs and their snapshots, with the
// EventBridge rules that trigger it and the permissions it needs.
type Tagger struct {
	constructs.Construct
	FunctionResources
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
		Deployment:  props.Deployment,
		Name:        TaggerFunctionName,
		Description: "Tags new AMIs and their snapshots (ami-housekeeper)",
		MemorySize:  128,
		Timeout:     awscdk.Duration_Seconds(jsii.Number(taggerTimeoutSeconds)),
	})
	// Its events wait in a queue, so a release burst is paced, not throttled.
	f.bufferEvents(c, TaggerFunctionName, awscdk.Duration_Seconds(jsii.Number(taggerTimeoutSeconds)), props.Topic)

	// Describe calls support no resource-level permissions, hence "*".
	f.allow([]string{"ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeTags"}, jsii.String("*"))
	// Tagging is limited to the account's AMIs and snapshots in the stack's
	// region, and to the keys the policy makes it write.
	stack := awscdk.Stack_Of(c)
	tagging := props.Tagging
	if tagging == nil {
		tagging = &policy.Default().Tagging
	}
	f.allowTags(false, TaggerTagKeys(*tagging), ec2ARN(stack, "image"), ec2ARN(stack, "snapshot"))
	suppressRoleWildcards(f.Role, describeAnything, everyImage, everySnapshot)

	// CloudTrail catches the AMI as soon as the call succeeds; the state change
	// catches AMIs whose snapshots were still pending at that time, and AMIs
	// made by services that do not go through these calls.
	cloudTrail := f.cloudTrailRule(c, "CloudTrailRule", "AMI created, copied or registered", "CreateImage", "CopyImage", "RegisterImage")
	stateChange := f.imageAvailableRule(c, "StateChangeRule", "AMI available")

	return &Tagger{
		Construct:         c,
		FunctionResources: f.FunctionResources,
		CloudTrailRule:    cloudTrail,
		StateChangeRule:   stateChange,
	}
}
