// Package housekeeper defines the CDK stack of ami-housekeeper: the Lambda
// functions, the EventBridge rules that trigger them, and their permissions.
package housekeeper

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// DefaultDistDir is where the Makefile puts <function>/bootstrap.
const DefaultDistDir = "dist"

// SSM parameter value limits: Standard holds up to 4 KB, Advanced up to 8 KB.
const (
	standardParameterMaxBytes = 4096
	advancedParameterMaxBytes = 8192
)

// StackProps configures the housekeeper stack.
type StackProps struct {
	awscdk.StackProps
	// DistDir is the folder holding <function>/bootstrap; empty means "dist".
	// Relative paths are relative to the working directory of the synthesis.
	DistDir string
	// PolicyFile is the path of the policy document. It is validated and stored
	// in an SSM parameter at synthesis; empty means the functions' built-in
	// default policy.
	PolicyFile string
	// LogRetention of the functions' log groups; zero means one month.
	LogRetention awslogs.RetentionDays
	// CleanupSchedule is the cleanup sweep's schedule expression; empty
	// means daily at 03:00 UTC.
	CleanupSchedule string
	// SharingSchedule is the sharing audit's schedule expression; empty
	// means daily at 04:00 UTC.
	SharingSchedule string
}

// NewHousekeeperStack creates the ami-housekeeper stack.
//
// It panics, failing the synthesis, when a function's bootstrap is missing or
// when the policy file cannot be read, is invalid (the message is the policy
// package's validation error) or is too large for an SSM parameter. Panicking
// keeps the signature of a CDK constructor; jsii reports its own errors the
// same way.
func NewHousekeeperStack(scope constructs.Construct, id string, props *StackProps) awscdk.Stack {
	if props == nil {
		props = &StackProps{}
	}
	sprops := props.StackProps
	if sprops.Description == nil {
		sprops.Description = jsii.String("ami-housekeeper: tags, guards and cleans up AMIs")
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &sprops)

	distDir := props.DistDir
	if distDir == "" {
		distDir = DefaultDistDir
	}

	var policyParameter awsssm.IStringParameter
	pol := policy.Default()
	if props.PolicyFile != "" {
		param, parsed, err := newPolicyParameter(stack, props.PolicyFile)
		if err != nil {
			panic(err)
		}
		policyParameter, pol = param, parsed
	}

	topic, key := newNotificationTopic(stack)
	tagger := NewTagger(stack, "Tagger", &TaggerProps{
		DistDir:         distDir,
		PolicyParameter: policyParameter,
		LogRetention:    props.LogRetention,
		AlarmTopic:      topic,
	})
	cleanupFn := NewCleanup(stack, "Cleanup", &CleanupProps{
		DistDir:         distDir,
		Schedule:        props.CleanupSchedule,
		PolicyParameter: policyParameter,
		Retention:       pol.Retention,
		LogRetention:    props.LogRetention,
		ReportTopic:     topic,
		ReportKey:       key,
	})

	awscdk.NewCfnOutput(stack, jsii.String("TaggerFunctionName"), &awscdk.CfnOutputProps{
		Description: jsii.String("Name of the tagger Lambda function"),
		Value:       tagger.Function.FunctionName(),
	})
	awscdk.NewCfnOutput(stack, jsii.String("TaggerDeadLetterQueueUrl"), &awscdk.CfnOutputProps{
		Description: jsii.String("URL of the queue holding events the tagger failed to handle"),
		Value:       tagger.DeadLetterQueue.QueueUrl(),
	})
	sharingFn := NewSharing(stack, "Sharing", &SharingProps{
		DistDir:         distDir,
		Schedule:        props.SharingSchedule,
		PolicyParameter: policyParameter,
		Sharing:         pol.Sharing,
		LogRetention:    props.LogRetention,
		ReportTopic:     topic,
		ReportKey:       key,
	})
	awscdk.NewCfnOutput(stack, jsii.String("SharingFunctionName"), &awscdk.CfnOutputProps{
		Description: jsii.String("Name of the sharing guard Lambda function"),
		Value:       sharingFn.Function.FunctionName(),
	})
	awscdk.NewCfnOutput(stack, jsii.String("CleanupFunctionName"), &awscdk.CfnOutputProps{
		Description: jsii.String("Name of the cleanup Lambda function"),
		Value:       cleanupFn.Function.FunctionName(),
	})
	awscdk.NewCfnOutput(stack, jsii.String("NotificationTopicArn"), &awscdk.CfnOutputProps{
		Description: jsii.String("SNS topic receiving ami-housekeeper alarms; subscribe the team to it"),
		Value:       topic.TopicArn(),
	})
	if policyParameter != nil {
		awscdk.NewCfnOutput(stack, jsii.String("PolicyParameterName"), &awscdk.CfnOutputProps{
			Description: jsii.String("SSM parameter holding the policy document"),
			Value:       policyParameter.ParameterName(),
		})
	}

	return stack
}

// newNotificationTopic creates the SNS topic for alarms (and, later, reports),
// encrypted with a customer managed key: CloudWatch alarms cannot publish to a
// topic encrypted with the AWS managed aws/sns key.
func newNotificationTopic(stack awscdk.Stack) (awssns.Topic, awskms.Key) {
	key := awskms.NewKey(stack, jsii.String("NotificationKey"), &awskms.KeyProps{
		Description:       jsii.String("ami-housekeeper notifications"),
		EnableKeyRotation: jsii.Bool(true),
	})
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarmsToPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"), // "*" in a key policy means this key
	}), jsii.Bool(false))
	return awssns.NewTopic(stack, jsii.String("Notifications"), &awssns.TopicProps{
		DisplayName: jsii.String("ami-housekeeper"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	}), key
}

// newPolicyParameter validates the policy file and stores its content, as
// written, in an SSM parameter that all functions read.
func newPolicyParameter(stack awscdk.Stack, path string) (awsssm.IStringParameter, *policy.Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("policy file: %w", err)
	}
	// Validating here turns a bad policy into a failed synth rather than
	// a deployed function that fails on every event.
	pol, err := policy.Parse(data, path)
	if err != nil {
		return nil, nil, err
	}
	tier := awsssm.ParameterTier_STANDARD
	switch {
	case len(data) > advancedParameterMaxBytes:
		return nil, nil, fmt.Errorf("policy file %s: %d bytes, more than the %d an SSM parameter holds", path, len(data), advancedParameterMaxBytes)
	case len(data) > standardParameterMaxBytes:
		tier = awsssm.ParameterTier_ADVANCED
	}
	return awsssm.NewStringParameter(stack, jsii.String("PolicyParameter"), &awsssm.StringParameterProps{
		// A fixed, stack-scoped name so operators can find and inspect it.
		ParameterName: jsii.String("/" + *stack.StackName() + "/policy"),
		Description:   jsii.String("ami-housekeeper policy document (from " + filepath.Base(path) + ")"),
		StringValue:   jsii.String(string(data)),
		Tier:          tier,
	}), pol, nil
}
