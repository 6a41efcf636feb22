// Package awsapi holds the one file of narrow AWS interfaces the project calls,
// and the wiring that builds real clients for them.
//
// Every method copies the SDK v2 signature exactly, so the SDK clients
// satisfy these interfaces and the SDK paginators accept them. Consumers ask
// for the narrowest interface they need (TaggerEC2, CleanupEC2), so a test
// double implements only what its consumer calls. Tests substitute stateful
// fakes or decorators here, and nowhere else; this is also the one place to
// inject faults.
package awsapi

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/rbin"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// TaggerEC2 is what the tagger calls.
type TaggerEC2 interface {
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DescribeTags(ctx context.Context, in *ec2.DescribeTagsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeTagsOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// InventoryEC2 is what the cleanup reads to build its inventory.
type InventoryEC2 interface {
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DescribeLaunchTemplateVersions(ctx context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	DescribeImageAttribute(ctx context.Context, in *ec2.DescribeImageAttributeInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImageAttributeOutput, error)
	DescribeFleets(ctx context.Context, in *ec2.DescribeFleetsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeFleetsOutput, error)
	DescribeSpotFleetRequests(ctx context.Context, in *ec2.DescribeSpotFleetRequestsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSpotFleetRequestsOutput, error)
	DescribeSpotInstanceRequests(ctx context.Context, in *ec2.DescribeSpotInstanceRequestsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSpotInstanceRequestsOutput, error)
}

// ImageReferencesEC2 is EC2's own view of what uses an AMI, the second
// opinion the cleanup asks right before deregistering.
type ImageReferencesEC2 interface {
	DescribeImageReferences(ctx context.Context, in *ec2.DescribeImageReferencesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImageReferencesOutput, error)
}

// ImageUsageEC2 is EC2's view of which other accounts use an AMI the
// account shares (image usage reports, asynchronous): the cleanup lists an
// AMI's reports, reads the entries of one, and requests a new one
// (retention.shared_usage: check).
type ImageUsageEC2 interface {
	DescribeImageUsageReports(ctx context.Context, in *ec2.DescribeImageUsageReportsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImageUsageReportsOutput, error)
	DescribeImageUsageReportEntries(ctx context.Context, in *ec2.DescribeImageUsageReportEntriesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImageUsageReportEntriesOutput, error)
	CreateImageUsageReport(ctx context.Context, in *ec2.CreateImageUsageReportInput, optFns ...func(*ec2.Options)) (*ec2.CreateImageUsageReportOutput, error)
}

// RecheckEC2 is what the cleanup re-reads at the moment of action: the AMIs
// themselves (tags, state) and EC2's references to them.
type RecheckEC2 interface {
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	ImageReferencesEC2
}

// CleanupEC2 is what the cleanup changes: marks, lifecycle stages, deletion.
type CleanupEC2 interface {
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, optFns ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error)
	EnableImageDeprecation(ctx context.Context, in *ec2.EnableImageDeprecationInput, optFns ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error)
	DisableImageDeprecation(ctx context.Context, in *ec2.DisableImageDeprecationInput, optFns ...func(*ec2.Options)) (*ec2.DisableImageDeprecationOutput, error)
	DisableImage(ctx context.Context, in *ec2.DisableImageInput, optFns ...func(*ec2.Options)) (*ec2.DisableImageOutput, error)
	EnableImage(ctx context.Context, in *ec2.EnableImageInput, optFns ...func(*ec2.Options)) (*ec2.EnableImageOutput, error)
	DeregisterImage(ctx context.Context, in *ec2.DeregisterImageInput, optFns ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error)
	DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
}

// SharingEC2 is what the sharing guard reads and changes: launch
// permissions of AMIs, create-volume permissions of snapshots.
type SharingEC2 interface {
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DescribeImageAttribute(ctx context.Context, in *ec2.DescribeImageAttributeInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImageAttributeOutput, error)
	ModifyImageAttribute(ctx context.Context, in *ec2.ModifyImageAttributeInput, optFns ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error)
	DescribeSnapshotAttribute(ctx context.Context, in *ec2.DescribeSnapshotAttributeInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error)
	ModifySnapshotAttribute(ctx context.Context, in *ec2.ModifySnapshotAttributeInput, optFns ...func(*ec2.Options)) (*ec2.ModifySnapshotAttributeOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// GuardrailEC2 reads (and optionally sets) the account's block-public-access
// settings for AMIs and snapshots.
type GuardrailEC2 interface {
	GetImageBlockPublicAccessState(ctx context.Context, in *ec2.GetImageBlockPublicAccessStateInput, optFns ...func(*ec2.Options)) (*ec2.GetImageBlockPublicAccessStateOutput, error)
	GetSnapshotBlockPublicAccessState(ctx context.Context, in *ec2.GetSnapshotBlockPublicAccessStateInput, optFns ...func(*ec2.Options)) (*ec2.GetSnapshotBlockPublicAccessStateOutput, error)
	EnableImageBlockPublicAccess(ctx context.Context, in *ec2.EnableImageBlockPublicAccessInput, optFns ...func(*ec2.Options)) (*ec2.EnableImageBlockPublicAccessOutput, error)
}

// EC2API is every EC2 call the project makes.
type EC2API interface {
	TaggerEC2
	InventoryEC2
	CleanupEC2
	SharingEC2
	GuardrailEC2
	RecheckEC2
	ImageUsageEC2
}

// AutoScalingAPI is what the cleanup reads from Auto Scaling.
type AutoScalingAPI interface {
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DescribeLaunchConfigurations(ctx context.Context, in *autoscaling.DescribeLaunchConfigurationsInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeLaunchConfigurationsOutput, error)
}

// PolicySSM reads the policy document from SSM Parameter Store.
type PolicySSM interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// SSMAPI is what the functions read from SSM: the policy document, and AMI
// IDs held in parameters.
type SSMAPI interface {
	PolicySSM
	GetParameters(ctx context.Context, in *ssm.GetParametersInput, optFns ...func(*ssm.Options)) (*ssm.GetParametersOutput, error)
	GetParametersByPath(ctx context.Context, in *ssm.GetParametersByPathInput, optFns ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error)
	DescribeParameters(ctx context.Context, in *ssm.DescribeParametersInput, optFns ...func(*ssm.Options)) (*ssm.DescribeParametersOutput, error)
}

// KillSwitchSSM reads the kill switch parameter (pkg/killswitch) on every
// invocation: one read, nothing else, so its permission can be that one
// parameter.
type KillSwitchSSM interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// CursorSSM keeps a long job's position between runs (the sharing audit
// resumes where it stopped).
type CursorSSM interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
}

// RecycleBinAPI reads the retention rules that make removed AMIs and
// snapshots recoverable.
type RecycleBinAPI interface {
	ListRules(ctx context.Context, in *rbin.ListRulesInput, optFns ...func(*rbin.Options)) (*rbin.ListRulesOutput, error)
	GetRule(ctx context.Context, in *rbin.GetRuleInput, optFns ...func(*rbin.Options)) (*rbin.GetRuleOutput, error)
}

// RestoreEC2 is what the CLI's restore calls: the Recycle Bin's EC2 side,
// the AMI and its snapshots, the cleanup's records it removes (tags can be
// read and changed on resources still in the bin), and the stages it undoes.
type RestoreEC2 interface {
	ListImagesInRecycleBin(ctx context.Context, in *ec2.ListImagesInRecycleBinInput, optFns ...func(*ec2.Options)) (*ec2.ListImagesInRecycleBinOutput, error)
	ListSnapshotsInRecycleBin(ctx context.Context, in *ec2.ListSnapshotsInRecycleBinInput, optFns ...func(*ec2.Options)) (*ec2.ListSnapshotsInRecycleBinOutput, error)
	RestoreImageFromRecycleBin(ctx context.Context, in *ec2.RestoreImageFromRecycleBinInput, optFns ...func(*ec2.Options)) (*ec2.RestoreImageFromRecycleBinOutput, error)
	RestoreSnapshotFromRecycleBin(ctx context.Context, in *ec2.RestoreSnapshotFromRecycleBinInput, optFns ...func(*ec2.Options)) (*ec2.RestoreSnapshotFromRecycleBinOutput, error)
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DescribeTags(ctx context.Context, in *ec2.DescribeTagsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeTagsOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, optFns ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error)
	EnableImage(ctx context.Context, in *ec2.EnableImageInput, optFns ...func(*ec2.Options)) (*ec2.EnableImageOutput, error)
	DisableImageDeprecation(ctx context.Context, in *ec2.DisableImageDeprecationInput, optFns ...func(*ec2.Options)) (*ec2.DisableImageDeprecationOutput, error)
}

// ReportLogs reads the functions' reports back from their CloudWatch Logs
// groups (the CLI's report).
type ReportLogs interface {
	DescribeLogGroups(ctx context.Context, in *cloudwatchlogs.DescribeLogGroupsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DescribeLogGroupsOutput, error)
	FilterLogEvents(ctx context.Context, in *cloudwatchlogs.FilterLogEventsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error)
}

// RecordsKMS derives the secret that seals the cleanup's record tags
// (pkg/records).
type RecordsKMS interface {
	GenerateMac(ctx context.Context, in *kms.GenerateMacInput, optFns ...func(*kms.Options)) (*kms.GenerateMacOutput, error)
}

// EventBridgeAPI publishes reports and findings.
type EventBridgeAPI interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// SNSAPI publishes notifications.
type SNSAPI interface {
	Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// QueueSQS puts a failed record of an SQS batch back in its queue for
// later: the queue's URL from its name, then the message's visibility
// timeout. Lambda's event source mapping does the receiving and deleting.
type QueueSQS interface {
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// CloudTrailLookup finds the call that created an AMI in CloudTrail's 90
// days of management events (the CLI's tag backfill: who created it).
type CloudTrailLookup interface {
	LookupEvents(ctx context.Context, in *cloudtrail.LookupEventsInput, optFns ...func(*cloudtrail.Options)) (*cloudtrail.LookupEventsOutput, error)
}

// OrganizationsAPI is what organization mode reads from AWS Organizations
// (in the management or delegated administrator account): the organization,
// its OU tree, its accounts and their tags. Read only.
type OrganizationsAPI interface {
	DescribeOrganization(ctx context.Context, in *organizations.DescribeOrganizationInput, optFns ...func(*organizations.Options)) (*organizations.DescribeOrganizationOutput, error)
	ListRoots(ctx context.Context, in *organizations.ListRootsInput, optFns ...func(*organizations.Options)) (*organizations.ListRootsOutput, error)
	ListAccounts(ctx context.Context, in *organizations.ListAccountsInput, optFns ...func(*organizations.Options)) (*organizations.ListAccountsOutput, error)
	ListAccountsForParent(ctx context.Context, in *organizations.ListAccountsForParentInput, optFns ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error)
	ListOrganizationalUnitsForParent(ctx context.Context, in *organizations.ListOrganizationalUnitsForParentInput, optFns ...func(*organizations.Options)) (*organizations.ListOrganizationalUnitsForParentOutput, error)
	ListParents(ctx context.Context, in *organizations.ListParentsInput, optFns ...func(*organizations.Options)) (*organizations.ListParentsOutput, error)
	ListTagsForResource(ctx context.Context, in *organizations.ListTagsForResourceInput, optFns ...func(*organizations.Options)) (*organizations.ListTagsForResourceOutput, error)
}

// AssumeRoleSTS takes on the member role of an account (organization mode).
type AssumeRoleSTS interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// LedgerDynamoDB keeps the units of an organization sweep: which are done
// (idempotency), their results, and the count that tells the last worker
// to publish the sweep's summary.
type LedgerDynamoDB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// UnitsSQS sends an organization sweep's units of work.
type UnitsSQS interface {
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// Compile-time proof that the real clients satisfy the interfaces.
var (
	_ EC2API         = (*ec2.Client)(nil)
	_ AutoScalingAPI = (*autoscaling.Client)(nil)
	_ SSMAPI         = (*ssm.Client)(nil)
	_ CursorSSM      = (*ssm.Client)(nil)
	_ KillSwitchSSM  = (*ssm.Client)(nil)
	_ RecycleBinAPI  = (*rbin.Client)(nil)
	_ EventBridgeAPI = (*eventbridge.Client)(nil)
	_ SNSAPI         = (*sns.Client)(nil)
	_ RecordsKMS     = (*kms.Client)(nil)
	_ RestoreEC2     = (*ec2.Client)(nil)
	_ ReportLogs     = (*cloudwatchlogs.Client)(nil)
	_ QueueSQS       = (*sqs.Client)(nil)

	_ CloudTrailLookup = (*cloudtrail.Client)(nil)
	_ OrganizationsAPI = (*organizations.Client)(nil)
	_ AssumeRoleSTS    = (*sts.Client)(nil)
	_ LedgerDynamoDB   = (*dynamodb.Client)(nil)
	_ UnitsSQS         = (*sqs.Client)(nil)
)
