package housekeeper

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// CleanupFunctionName is the folder under the dist folder that holds the
// cleanup's bootstrap binary.
const CleanupFunctionName = "cleanup"

// DefaultCleanupSchedule runs the sweep daily at 03:00 UTC.
const DefaultCleanupSchedule = "cron(0 3 * * ? *)"

// cleanupTimeoutSeconds: a sweep of one account and region.
const cleanupTimeoutSeconds = 10 * 60

// Environment variables of the cleanup function.
const (
	EnvReportEventBus = "HOUSEKEEPER_REPORT_EVENT_BUS"
	EnvReportTopicARN = "HOUSEKEEPER_REPORT_TOPIC_ARN"
)

// CleanupProps configures a Cleanup.
type CleanupProps struct {
	Deployment
	// Schedule is an EventBridge schedule expression; empty means
	// DefaultCleanupSchedule. In organization mode the dispatcher has it.
	Schedule string
}

// Cleanup is the scheduled function that removes stale AMIs and their
// snapshots, with its schedule and the permissions it needs.
type Cleanup struct {
	constructs.Construct
	FunctionResources
	// ScheduleRule is nil in organization mode.
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
	// One sweep at a time in an account; in organization mode the units
	// queue's FIFO groups keep one unit per account and region at a time,
	// and its mapping's maximum concurrency bounds the rest.
	reserved := 1
	if props.Org != nil {
		reserved = 0
	}
	f := newGoFunction(c, &functionProps{
		Deployment:  props.Deployment,
		Name:        CleanupFunctionName,
		Description: "Removes stale, unused AMIs and their snapshots (ami-housekeeper)",
		// Planning 100,000 AMIs takes well under 512 MB; the rest is headroom.
		MemorySize: 1024,
		// Mutating calls are paced at EC2's refill rate (5/s): 25 AMIs with
		// their snapshots take seconds, a large orphan backlog minutes.
		Timeout:     awscdk.Duration_Seconds(jsii.Number(cleanupTimeoutSeconds)),
		Environment: env,
		// A failed sweep is retried by the next scheduled run, not three
		// times within the hour (the per-run caps would apply to each), and
		// two sweeps never overlap.
		NoAsyncRetry:        true,
		ReservedConcurrency: reserved,
		RoleName:            props.roleName(c, CleanupFunctionName),
	})

	f.allowAccount(c, props.Deployment, CleanupFunctionName)
	f.allowOrgWorker(props.Org, CleanupFunctionName, true)
	f.allow([]string{"events:PutEvents"}, stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("events"), Resource: jsii.String("event-bus"), ResourceName: jsii.String("default")}))
	f.allowPublish(props.Topic, props.TopicKey)
	f.allow([]string{"kms:GenerateMac"}, recordsKey.KeyArn())
	restrictRecordsKey(recordsKey, f.Role)

	var rule awsevents.Rule
	if props.Org == nil {
		schedule := props.Schedule
		if schedule == "" {
			schedule = DefaultCleanupSchedule
		}
		rule = f.scheduleRule(c, "ScheduleRule", "cleanup sweep", schedule)
	} else {
		// The dispatcher has the schedule; the sweep runs as units.
		f.addUnits(c, props.Org.CleanupUnits, props.Org.Config.WorkerConcurrency)
	}

	return &Cleanup{Construct: c, FunctionResources: f.FunctionResources, ScheduleRule: rule, RecordsKey: recordsKey}
}

// cleanupParameters are the SSM parameters the cleanup reads AMI IDs
// from, in stack's account: all of the account's, and AWS's public
// aws/service/* ones; in the stack's region, or with regions in every
// region (denyOutsideRegions keeps it to those).
func cleanupParameters(stack awscdk.Stack, regions []string) []*string {
	region := anyRegionIf(regions)
	return []*string{
		stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Region: region, Resource: jsii.String("parameter"), ResourceName: jsii.String("*")}),
		stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Region: region, Account: jsii.String(""), Resource: jsii.String("parameter"), ResourceName: jsii.String("aws/service/*")}),
	}
}

// cleanupWildcards are the wildcard resources of the cleanup's
// statements (cleanupEC2), with why each is needed.
var cleanupWildcards = []wildcard{
	{describeAnything.resource, describeAnything.reason +
		" With retention.shared_usage: check, EC2's image usage reports (CreateImageUsageReport, DescribeImageUsageReports, DescribeImageUsageReportEntries) are requested and read the same way."},
	everyImage, everySnapshot,
	{"Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/*",
		"An AMI in use may be named by any of the account's parameters (data type aws:ec2:image, or the policy's in_use.ssm_parameters), so the cleanup reads them all before removing anything; reading SecureStrings in clear is denied (kms:Decrypt via SSM)."},
	{"Resource::arn:<AWS::Partition>:ssm:<AWS::Region>::parameter/aws/service/*",
		"Launch templates resolve AMIs through resolve:ssm: aliases that often point at AWS's public parameters; the cleanup reads them to know which AMIs those templates use. They are public and read-only."},
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
