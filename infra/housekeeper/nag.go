package housekeeper

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// ApplyNag runs cdk-nag's AwsSolutions and Serverless rule packs on every
// construct under scope when it is synthesized. A finding is an error or
// warning annotation on the construct; an error fails `cdk synth`. Every
// finding the stack accepts is suppressed where the construct is made,
// with the reason (the suppress* helpers below).
func ApplyNag(scope constructs.Construct) {
	props := &cdknag.NagPackProps{Verbose: jsii.Bool(true), Reports: jsii.Bool(true)}
	aspects := awscdk.Aspects_Of(scope)
	aspects.Add(cdknag.NewAwsSolutionsChecks(props), nil)
	aspects.Add(cdknag.NewServerlessChecks(props), nil)
}

// wildcard is one IAM5 finding a role accepts: the wildcard resource as
// cdk-nag names it ("Resource::..."), and why no narrower one exists.
type wildcard struct{ resource, reason string }

// Wildcard resources every function's role shares.
var (
	// describeAnything: Describe*, Get*State and List* calls.
	describeAnything = wildcard{"Resource::*",
		"Describe*/List*/Get*State calls (EC2, Auto Scaling, SSM DescribeParameters, Recycle Bin ListRules/GetRule) support no resource-level permissions: the Service Authorization Reference lists no resource type for them, so IAM requires Resource *. Every other statement names its resources."}
	// everyImage and everySnapshot: the AMIs and snapshots of the region.
	everyImage = wildcard{"Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::image/*",
		"Any AMI of the region may be created, copied, shared or go stale, so no ID is known at deploy time. Every statement on it is conditioned: aws:ResourceAccount = this account, and tag writes limited to the function's own keys (aws:TagKeys); see docs/iam.md."}
	everySnapshot = wildcard{"Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/*",
		"Any AMI snapshot of the region may be shared or orphaned, so no ID is known at deploy time. Every statement on it is conditioned: aws:ResourceAccount = this account, tag writes limited to the function's own keys (aws:TagKeys), deletion denied on protect-tagged snapshots; see docs/iam.md."}
)

// suppressRoleWildcards records on role's default policy why each of its
// wildcard resources is needed (AwsSolutions-IAM5, one entry each).
// cdk-nag shows the region as the stack has it: "<AWS::Region>" in an
// environment-agnostic stack, the name in a regional one; a role acting in
// regions (organization mode) has one entry per region.
func suppressRoleWildcards(role constructs.IConstruct, regions []string, ws ...wildcard) {
	if len(regions) == 0 {
		region := "<AWS::Region>"
		if r := awscdk.Stack_Of(role).Region(); !*awscdk.Token_IsUnresolved(r) {
			region = *r
		}
		regions = []string{region}
	}
	var s []*cdknag.NagPackSuppression
	for _, w := range ws {
		for i, region := range regions {
			resource := strings.ReplaceAll(w.resource, "<AWS::Region>", region)
			if i > 0 && resource == w.resource {
				break // no region in it: one entry
			}
			s = append(s, &cdknag.NagPackSuppression{
				Id: jsii.String("AwsSolutions-IAM5"), Reason: jsii.String(w.reason), AppliesTo: &[]any{jsii.String(resource)},
			})
		}
	}
	cdknag.NagSuppressions_AddResourceSuppressions(role, &s, jsii.Bool(true))
}

// suppressFunctionFindings records why a function and its dead-letter queue
// differ from what the Serverless pack asks.
func suppressFunctionFindings(fn, dlq constructs.IConstruct) {
	cdknag.NagSuppressions_AddResourceSuppressions(fn, &[]*cdknag.NagPackSuppression{
		{Id: jsii.String("Serverless-LambdaTracing"), Reason: jsii.String(
			"The functions use no X-Ray SDK, so a trace would hold only Lambda's own segment; what happened is in the decision log (JSON lines) and the EMF metrics, and active tracing would add xray:PutTraceSegments on Resource * to every role.")},
		{Id: jsii.String("Serverless-LambdaDLQ"), Reason: jsii.String(
			"Failed asynchronous invocations go to an on-failure destination (Serverless-LambdaAsyncFailureDestination), an SQS queue alarmed on its depth; its records carry the event and why it failed, which a DeadLetterConfig message lacks. Configuring both would split failures across two mechanisms.")},
	}, jsii.Bool(true))
	suppressDeadLetterQueue(dlq)
}

// suppressDeadLetterQueue records why a dead-letter queue has no redrive
// policy of its own and why cdk-nag does not see it as one.
func suppressDeadLetterQueue(dlq constructs.IConstruct) {
	cdknag.NagSuppressions_AddResourceSuppressions(dlq, &[]*cdknag.NagPackSuppression{
		{Id: jsii.String("Serverless-SQSRedrivePolicy"), Reason: jsii.String(
			"This queue is itself a dead-letter queue: nothing consumes it automatically (an alarm fires on its depth, operators replay or redrive by hand), so there is no further queue to redrive to.")},
		{Id: jsii.String("AwsSolutions-SQS3"), Reason: jsii.String(
			"This queue is a dead-letter queue (a function's on-failure destination and its rules' dead-letter target, or an event queue's redrive target). cdk-nag recognizes a DLQ only through DeadLetterConfig or another queue's redrive policy in some cases.")},
	}, jsii.Bool(true))
}

// suppressEmailRedrive records why an alarm e-mail subscription has no
// dead-letter queue (Serverless-SNSRedrivePolicy).
func suppressEmailRedrive(sub constructs.IConstruct) {
	cdknag.NagSuppressions_AddResourceSuppressions(sub, &[]*cdknag.NagPackSuppression{
		{Id: jsii.String("Serverless-SNSRedrivePolicy"), Reason: jsii.String(
			"An alarm e-mail SNS cannot deliver has no one to replay it to: the alarm itself stays in ALARM on the dashboard and in CloudWatch, which is where operators act.")},
	}, jsii.Bool(true))
}
