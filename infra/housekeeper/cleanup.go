package housekeeper

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// CleanupFunctionName is the folder under the dist folder that holds the
// cleanup's bootstrap binary.
const CleanupFunctionName = "cleanup"

// DefaultCleanupSchedule runs the sweep daily at 03:00 UTC.
const DefaultCleanupSchedule = "cron(0 3 * * ? *)"

// Environment variables of the cleanup function.
const (
	EnvReportEventBus = "HOUSEKEEPER_REPORT_EVENT_BUS"
	EnvReportTopicARN = "HOUSEKEEPER_REPORT_TOPIC_ARN"
)

// CleanupProps configures a Cleanup.
type CleanupProps struct {
	Deployment
	// Schedule is an EventBridge schedule expression; empty means DefaultCleanupSchedule.
	Schedule string
	// Retention is the policy section the function will run with: it decides
	// which lifecycle-stage permissions the role gets.
	Retention policy.Retention
}

// Cleanup is the scheduled function that removes stale AMIs and their
// snapshots, with its schedule and the permissions it needs.
type Cleanup struct {
	constructs.Construct
	FunctionResources
	ScheduleRule awsevents.Rule
	// RecordsKey is the KMS HMAC key the cleanup derives the seal of its
	// record tags from (pkg/records); only its role may use it.
	RecordsKey awskms.Key
}

// NewCleanup creates the cleanup function, its schedule and its role.
func NewCleanup(scope constructs.Construct, id string, props *CleanupProps) *Cleanup {
	c := constructs.NewConstruct(scope, jsii.String(id))
	stack := awscdk.Stack_Of(c)
	// The records key: an HMAC key whose MACs only the cleanup's role may
	// ask for, so no one else can write a record the cleanup trusts. Its
	// policy is written out: the account may administer the key (and so
	// change this policy, which CloudTrail shows), but a Deny keeps
	// GenerateMac and CreateGrant from every other principal, IAM
	// "kms:*" on "*" included. Retained on stack deletion: a new key would
	// unseal every mark.
	recordsKey := awskms.NewKey(c, jsii.String("RecordsKey"), &awskms.KeyProps{
		Description:   jsii.String("ami-housekeeper: seals the cleanup's record tags (marks, stage records, delete-with)"),
		KeySpec:       awskms.KeySpec_HMAC_256,
		KeyUsage:      awskms.KeyUsage_GENERATE_VERIFY_MAC,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
		Policy:        awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{}),
	})
	env := map[string]string{EnvReportEventBus: "default", records.EnvKeyID: *recordsKey.KeyArn()}
	if props.Topic != nil {
		env[EnvReportTopicARN] = *props.Topic.TopicArn()
	}
	f := newGoFunction(c, &functionProps{
		Deployment:  props.Deployment,
		Name:        CleanupFunctionName,
		Description: "Removes stale, unused AMIs and their snapshots (ami-housekeeper)",
		// Planning 100,000 AMIs takes well under 512 MB; the rest is headroom.
		MemorySize: 1024,
		// Mutating calls are paced at EC2's refill rate (5/s): 25 AMIs with
		// their snapshots take seconds, a large orphan backlog minutes.
		Timeout:     awscdk.Duration_Minutes(jsii.Number(10)),
		Environment: env,
		// A failed sweep is retried by the next scheduled run, not three
		// times within the hour (the per-run caps would apply to each), and
		// two sweeps never overlap.
		NoAsyncRetry:        true,
		ReservedConcurrency: 1,
	})

	allow := f.allow
	// Inventory reads: Describe/List calls support no resource-level permissions.
	allow([]string{
		"ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeInstances",
		"ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeImageAttribute",
		"ec2:DescribeFleets", "ec2:DescribeSpotFleetRequests", "ec2:DescribeSpotInstanceRequests",
		"ec2:DescribeImageReferences",
		"autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLaunchConfigurations",
		"ssm:DescribeParameters", "rbin:ListRules", "rbin:GetRule",
	}, jsii.String("*"))
	// DescribeImageReferences reads each resource type with the caller's
	// permissions: instances, templates and parameters are allowed above;
	// Image Builder recipes only through EC2 (the EC2 User Guide's
	// "Required IAM permissions"), never called by the function itself.
	f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:    jsii.Strings("imagebuilder:ListImageRecipes", "imagebuilder:ListContainerRecipes", "imagebuilder:GetContainerRecipe"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]any{"ForAnyValue:StringEquals": map[string]any{"aws:CalledVia": []string{"ec2-images.amazonaws.com"}}},
	}))
	// AMI IDs may sit in any of the account's parameters, and resolve:ssm:
	// aliases often point at AWS's public ones.
	allow([]string{"ssm:GetParameters", "ssm:GetParametersByPath"},
		stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Resource: jsii.String("parameter"), ResourceName: jsii.String("*")}),
		stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Account: jsii.String(""), Resource: jsii.String("parameter"), ResourceName: jsii.String("aws/service/*")}))

	image := ec2ARN(stack, "image")
	snapshot := ec2ARN(stack, "snapshot")
	// Its own record tags only: marks and stage records on AMIs,
	// delete-with on snapshots.
	f.allowTags(true, CleanupImageTagKeys, image)
	f.allowTags(true, CleanupSnapshotTagKeys, snapshot)
	// With a grace period every deregistration rests on a mark the cleanup
	// wrote days before (cleanup.RecheckReasons re-reads it right before):
	// an AMI without one is refused. The tag's presence is all IAM can
	// see; its sealed value is the cleanup's check.
	deregister := inAccount()
	if props.Retention.GraceDays > 0 {
		deregister = deregister.and(hasTag(cleanup.TagDeleteAfter))
	}
	f.allowIf([]string{"ec2:DeregisterImage"}, []*string{image}, deregister)
	// DeregisterImage with DeleteAssociatedSnapshots is authorized on the snapshots too.
	f.allowIf([]string{"ec2:DeleteSnapshot"}, []*string{snapshot}, inAccount())
	f.denyRemovingProtected(props.Retention.ProtectTag, image, snapshot)
	if props.Retention.Stages.Deprecate {
		f.allowIf([]string{"ec2:EnableImageDeprecation", "ec2:DisableImageDeprecation"}, []*string{image}, inAccount())
	}
	if props.Retention.Stages.Disable {
		f.allowIf([]string{"ec2:DisableImage", "ec2:EnableImage"}, []*string{image}, inAccount())
	}
	allow([]string{"events:PutEvents"}, stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("events"), Resource: jsii.String("event-bus"), ResourceName: jsii.String("default")}))
	f.allowPublish(props.Topic, props.TopicKey)
	suppressRoleWildcards(f.Role, describeAnything, everyImage, everySnapshot,
		wildcard{"Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/*",
			"An AMI in use may be named by any of the account's parameters (data type aws:ec2:image, or the policy's in_use.ssm_parameters), so the cleanup reads them all before removing anything; reading SecureStrings in clear is denied (kms:Decrypt via SSM)."},
		wildcard{"Resource::arn:<AWS::Partition>:ssm:<AWS::Region>::parameter/aws/service/*",
			"Launch templates resolve AMIs through resolve:ssm: aliases that often point at AWS's public parameters; the cleanup reads them to know which AMIs those templates use. They are public and read-only."})
	allow([]string{"kms:GenerateMac"}, recordsKey.KeyArn())
	restrictRecordsKey(recordsKey, f.Role)
	// The role may read any parameter to find AMI IDs, but must never be
	// able to decrypt a SecureString through SSM (with the AWS managed
	// aws/ssm key the key policy alone would allow it).
	f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Effect:     awsiam.Effect_DENY,
		Actions:    jsii.Strings("kms:Decrypt"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]any{"StringLike": map[string]any{"kms:ViaService": "ssm.*.amazonaws.com"}},
	}))

	schedule := props.Schedule
	if schedule == "" {
		schedule = DefaultCleanupSchedule
	}
	rule := f.scheduleRule(c, "ScheduleRule", "cleanup sweep", schedule)

	return &Cleanup{Construct: c, FunctionResources: f.FunctionResources, ScheduleRule: rule, RecordsKey: recordsKey}
}

// ec2ARN is the ARN pattern of every AMI or snapshot in the stack's region
// (their ARNs have no account field).
func ec2ARN(stack awscdk.Stack, resource string) *string {
	return stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("ec2"), Account: jsii.String(""), Resource: jsii.String(resource), ResourceName: jsii.String("*"),
	})
}

// restrictRecordsKey writes the records key's policy: the account
// administers it; only role may use it for MACs or grant it.
func restrictRecordsKey(key awskms.Key, role awsiam.IRole) {
	policy := key.Policy()
	account := awsiam.NewAccountRootPrincipal()
	policy.AddStatements(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AccountAdministersTheKey"),
		Principals: &[]awsiam.IPrincipal{account},
		Actions: jsii.Strings("kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
			"kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource",
			"kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:VerifyMac"),
		Resources: jsii.Strings("*"),
	}), awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("OnlyTheCleanupMakesMacs"),
		Principals: &[]awsiam.IPrincipal{role},
		Actions:    jsii.Strings("kms:GenerateMac"),
		Resources:  jsii.Strings("*"),
	}), awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("NoOneElseMakesMacsOrGrants"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings("kms:GenerateMac", "kms:CreateGrant"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": role.RoleArn()}},
	}))
}
