package housekeeper

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// TaggerFunctionName is the folder under the dist folder that holds the
// tagger's bootstrap binary.
const TaggerFunctionName = "tagger"

// TaggerCloudTrailEvents are the calls that make an AMI.
var TaggerCloudTrailEvents = []string{"CreateImage", "CopyImage", "RegisterImage"}

// taggerTimeoutSeconds: the handler may wait ~10 s for a pending AMI's
// snapshots to appear; a batch stops starting work 3 s before it.
const taggerTimeoutSeconds = 30

// taggerOrgTimeoutSeconds is the tagger's timeout in organization mode:
// the first invocation after a cold start loads the organization's
// directory (org.Load walks the whole OU tree at Organizations' low rates:
// tens of seconds at ~150 OUs) before its first event. The sharing guard
// has its 15 minutes in either mode.
const taggerOrgTimeoutSeconds = 90

// TaggerProps configures a Tagger. Its role may write exactly the tag
// keys of Deployment.Needs (TaggerTagKeys of every policy variant).
type TaggerProps struct {
	Deployment
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

	timeout := awscdk.Duration_Seconds(jsii.Number(taggerTimeoutSeconds))
	if props.Org != nil {
		timeout = awscdk.Duration_Seconds(jsii.Number(taggerOrgTimeoutSeconds))
	}
	f := newGoFunction(c, &functionProps{
		Deployment:  props.Deployment,
		Name:        TaggerFunctionName,
		Description: "Tags new AMIs and their snapshots (ami-housekeeper)",
		MemorySize:  128,
		Timeout:     timeout,
		RoleName:    props.roleName(c, TaggerFunctionName),
	})
	// Its events wait in a queue, so a release burst is paced, not throttled.
	f.bufferEvents(c, TaggerFunctionName, timeout, props.Topic)

	f.allowAccount(c, props.Deployment, TaggerFunctionName)
	f.allowOrgWorker(props.Org, TaggerFunctionName, false)

	// CloudTrail catches the AMI as soon as the call succeeds; the state change
	// catches AMIs whose snapshots were still pending at that time, and AMIs
	// made by services that do not go through these calls.
	cloudTrail := f.cloudTrailRule(c, "CloudTrailRule", "AMI created, copied or registered", nil, TaggerCloudTrailEvents...)
	stateChange := f.imageAvailableRule(c, "StateChangeRule", "AMI available", nil)
	if props.Org != nil {
		// The same events of the member accounts, forwarded to the central bus.
		f.cloudTrailRule(c, "OrgCloudTrailRule", "AMI created, copied or registered in a member account", props.Org.Bus, TaggerCloudTrailEvents...)
		f.imageAvailableRule(c, "OrgStateChangeRule", "AMI available in a member account", props.Org.Bus)
	}

	return &Tagger{
		Construct:         c,
		FunctionResources: f.FunctionResources,
		CloudTrailRule:    cloudTrail,
		StateChangeRule:   stateChange,
	}
}
