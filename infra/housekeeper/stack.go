// Package housekeeper defines the CDK stack of ami-housekeeper: the Lambda
// functions, the EventBridge rules that trigger them, and their permissions.
package housekeeper

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/infra/config"
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
	// RecycleBin sets the Recycle Bin rules that keep every deregistered
	// AMI and deleted snapshot recoverable; nil means DefaultRecycleBin,
	// ImageDays 0 creates none.
	RecycleBin *RecycleBinProps
	// AlarmEmails are subscribed to the notification topic.
	AlarmEmails []string
	// Organization, when enabled, makes the stack the central one of an
	// organization: the central bus, the dispatcher, the units queues, the
	// ledger and the StackSet of the member stacks (org.go, member.go).
	Organization *config.Organization
}

// NewHousekeeperStack creates the ami-housekeeper stack.
//
// It panics, failing the synthesis, when a function's bootstrap is missing,
// when a schedule expression is invalid, or when the policy file cannot be
// read, is invalid (the message is the policy package's validation error)
// or is too large for an SSM parameter. Panicking keeps the signature of a
// CDK constructor; jsii reports its own errors the same way.
func NewHousekeeperStack(scope constructs.Construct, id string, props *StackProps) awscdk.Stack {
	if props == nil {
		props = &StackProps{}
	}
	sprops := props.StackProps
	if sprops.Description == nil {
		sprops.Description = jsii.String("ami-housekeeper: tags, guards and cleans up AMIs")
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &sprops)

	cleanupSchedule := mustSchedule("cleanup schedule", props.CleanupSchedule, DefaultCleanupSchedule)
	sharingSchedule := mustSchedule("sharing schedule", props.SharingSchedule, DefaultSharingSchedule)

	deployment := Deployment{
		DistDir:      props.DistDir,
		LogRetention: props.LogRetention,
		KillSwitch:   KillSwitchParameterName(stack),
	}
	if deployment.DistDir == "" {
		deployment.DistDir = DefaultDistDir
	}
	pol := policy.Default()
	if props.PolicyFile != "" {
		param, parsed, digest, err := newPolicyParameter(stack, props.PolicyFile)
		if err != nil {
			panic(err)
		}
		deployment.PolicyParameter, deployment.PolicyDigest, pol = param, digest, parsed
	}
	deployment.Topic, deployment.TopicKey = newNotificationTopic(stack, props.AlarmEmails)
	deployment.Needs = mustNeeds(pol)
	if o := props.Organization; o != nil && o.Enabled() {
		deployment.Org = newOrgDeployment(stack, *o, cleanupSchedule, sharingSchedule, deployment.Topic)
		deployment.Regions = o.Scope.Regions
	}

	tagger := NewTagger(stack, "Tagger", &TaggerProps{Deployment: deployment})
	cleanupFn := NewCleanup(stack, "Cleanup", &CleanupProps{
		Deployment: deployment,
		Schedule:   cleanupSchedule.Expression,
	})
	sharingFn := NewSharing(stack, "Sharing", &SharingProps{
		Deployment: deployment,
		Schedule:   sharingSchedule.Expression,
	})

	output := func(id, description string, value *string) {
		awscdk.NewCfnOutput(stack, jsii.String(id), &awscdk.CfnOutputProps{Description: jsii.String(description), Value: value})
	}
	recycleBin := DefaultRecycleBin
	if props.RecycleBin != nil {
		recycleBin = *props.RecycleBin
	}
	NewRecycleBinRules(stack, "RecycleBin", &recycleBin)

	var dispatcher *Dispatcher
	var orgAlarms []awscloudwatch.Alarm
	if o := deployment.Org; o != nil {
		dispatcher = NewDispatcher(stack, "Dispatcher", &DispatcherProps{
			Deployment:      deployment,
			CleanupSchedule: cleanupSchedule.Expression,
			SharingSchedule: sharingSchedule.Expression,
		})
		orgAlarms = append(orgAlarms, dispatcher.Alarms...)
		for _, u := range []*UnitsQueue{o.CleanupUnits, o.AuditUnits} {
			orgAlarms = append(orgAlarms, u.Alarms...)
		}
		set := NewMemberStackSet(stack, "MemberStackSet", &MemberStackSetProps{
			Bus: o.Bus,
			Member: MemberProps{
				CentralStackName: *stack.StackName(),
				Organization:     o.Config,
				Needs:            deployment.Needs,
				RecycleBin:       recycleBin,
			},
		})
		output("CentralEventBusArn", "Event bus the member accounts forward their EC2 events to", o.Bus.EventBusArn())
		output("DispatcherFunctionName", "Name of the dispatcher Lambda function (starts organization sweeps)", dispatcher.Function.FunctionName())
		output("LedgerTableName", "DynamoDB table of the organization sweeps' progress and results", o.Ledger.TableName())
		output("MemberStackSetName", "StackSet deploying the member stack to the target OUs", set.StackSetName())
	}
	monitoring := NewMonitoring(stack, "Monitoring", &MonitoringProps{
		Topic:           deployment.Topic,
		Tagger:          tagger,
		Cleanup:         cleanupFn,
		Sharing:         sharingFn,
		CleanupSchedule: cleanupSchedule,
		SharingSchedule: sharingSchedule,
		Org:             deployment.Org,
		Extra:           orgAlarms,
	})

	output("TaggerFunctionName", "Name of the tagger Lambda function", tagger.Function.FunctionName())
	output("TaggerDeadLetterQueueUrl", "URL of the queue holding events the tagger failed to handle", tagger.DeadLetterQueue.QueueUrl())
	output("SharingFunctionName", "Name of the sharing guard Lambda function", sharingFn.Function.FunctionName())
	output("CleanupFunctionName", "Name of the cleanup Lambda function", cleanupFn.Function.FunctionName())
	output("RecordsKeyArn", "KMS key sealing the cleanup's record tags (ami-housekeeper restore --records-key)", cleanupFn.RecordsKey.KeyArn())
	output("DashboardName", "CloudWatch dashboard of the housekeeper's metrics and alarms", monitoring.Dashboard.DashboardName())
	output("NotificationTopicArn", "SNS topic receiving ami-housekeeper alarms; subscribe the team to it", deployment.Topic.TopicArn())
	output("KillSwitchParameterName", "SSM parameter that, set to any value but 'off', forces every function into audit mode (see docs/deploy.md)",
		jsii.String(deployment.KillSwitch))
	if deployment.PolicyParameter != nil {
		output("PolicyParameterName", "SSM parameter holding the policy document", deployment.PolicyParameter.ParameterName())
	}
	return stack
}

// mustNeeds is what the policy and each of its variants (one per
// override) ask of the roles.
func mustNeeds(pol *policy.Policy) Needs {
	variants, err := pol.Variants()
	if err != nil {
		panic(fmt.Sprintf("policy overrides: %v", err))
	}
	return NeedsOf(variants...)
}

// KillSwitchParameterName is the kill switch's SSM parameter in stack:
// stack-scoped, so two deployments in one account never share it.
func KillSwitchParameterName(stack awscdk.Stack) string {
	return "/" + *stack.StackName() + "/kill-switch"
}

// mustSchedule validates a schedule expression (empty: fallback) or fails
// the synthesis naming it.
func mustSchedule(what, expr, fallback string) config.Schedule {
	if expr == "" {
		expr = fallback
	}
	s, err := config.ParseSchedule(expr)
	if err != nil {
		panic(fmt.Sprintf("%s: %v", what, err))
	}
	return s
}

// newNotificationTopic creates the SNS topic for alarms (and, later, reports),
// encrypted with a customer managed key: CloudWatch alarms cannot publish to a
// topic encrypted with the AWS managed aws/sns key.
func newNotificationTopic(stack awscdk.Stack, emails []string) (awssns.Topic, awskms.Key) {
	key := awskms.NewKey(stack, jsii.String("NotificationKey"), &awskms.KeyProps{
		Description:       jsii.String("ami-housekeeper notifications"),
		EnableKeyRotation: jsii.Bool(true),
		Policy:            NotificationKeyPolicy(),
	})
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarmsToPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"), // "*" in a key policy means this key
	}), jsii.Bool(false))
	topic := awssns.NewTopic(stack, jsii.String("Notifications"), &awssns.TopicProps{
		DisplayName: jsii.String("ami-housekeeper"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	for _, email := range emails {
		suppressEmailRedrive(topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(email), nil)))
	}
	return topic, key
}

// newPolicyParameter validates the policy file and stores its content, as
// written, in an SSM parameter that all functions read.
// It also returns the digest the functions check the parameter against.
func newPolicyParameter(stack awscdk.Stack, path string) (awsssm.IStringParameter, *policy.Policy, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, "", fmt.Errorf("policy file: %w", err)
	}
	// Validating here turns a bad policy into a failed synth rather than
	// a deployed function that fails on every event.
	pol, err := policy.Parse(data, path)
	if err != nil {
		return nil, nil, "", err
	}
	tier := awsssm.ParameterTier_STANDARD
	switch {
	case len(data) > advancedParameterMaxBytes:
		return nil, nil, "", fmt.Errorf("policy file %s: %d bytes, more than the %d an SSM parameter holds", path, len(data), advancedParameterMaxBytes)
	case len(data) > standardParameterMaxBytes:
		tier = awsssm.ParameterTier_ADVANCED
	}
	return awsssm.NewStringParameter(stack, jsii.String("PolicyParameter"), &awsssm.StringParameterProps{
		// A fixed, stack-scoped name so operators can find and inspect it.
		ParameterName: jsii.String("/" + *stack.StackName() + "/policy"),
		Description:   jsii.String("ami-housekeeper policy document (from " + filepath.Base(path) + ")"),
		StringValue:   jsii.String(string(data)),
		Tier:          tier,
	}), pol, policy.Digest(data), nil
}
