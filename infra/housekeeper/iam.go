package housekeeper

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
)

// RolePath is the IAM path of every function's role. A service control
// policy can name the housekeeper's roles by it ("role/ami-housekeeper/*",
// docs/iam.md) whatever the stack is called, and deny everyone else
// creating a role there.
const RolePath = "/ami-housekeeper/"

// The tag keys each function writes and deletes, and nothing else: its
// role may create or delete no other key (aws:TagKeys), so no function can
// strip or rewrite a protect, time-lock or sharing exception tag.
var (
	// CleanupImageTagKeys are the cleanup's mark and stage records, on AMIs.
	CleanupImageTagKeys = []string{cleanup.TagDeleteAfter, cleanup.TagDeprecatedByUs, cleanup.TagDisabledByUs}
	// CleanupSnapshotTagKeys is the delete-with record, on snapshots.
	CleanupSnapshotTagKeys = []string{cleanup.TagDeleteWith}
	// SharingTagKeys record a revoked share, on the AMI or snapshot.
	SharingTagKeys = []string{sharing.TagViolationAt, sharing.TagViolationRemoved}
)

// TaggerTagKeys returns, sorted, every tag key the tagger may write under
// t: each provenance key (prefix + name, every field of policy.TagKeys),
// the static_tags keys and the copy_from_source keys.
func TaggerTagKeys(t policy.Tagging) []string {
	keys := map[string]bool{}
	// Every string field: a provenance key added to TagKeys is allowed
	// without anyone remembering this list.
	v := reflect.ValueOf(t.Keys)
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String && f.String() != "" {
			keys[t.Key(f.String())] = true
		}
	}
	for k := range t.StaticTags {
		keys[k] = true
	}
	for _, k := range t.CopyFromSource {
		keys[k] = true
	}
	return slices.Sorted(maps.Keys(keys))
}

// Conditions are an IAM statement's Condition block: operator -> key -> value.
type Conditions map[string]map[string]any

// and returns c with every entry of o added (o wins on a clash).
func (c Conditions) and(o Conditions) Conditions {
	out := Conditions{}
	for _, m := range []Conditions{c, o} {
		for op, kv := range m {
			if out[op] == nil {
				out[op] = map[string]any{}
			}
			maps.Copy(out[op], kv)
		}
	}
	return out
}

func (c Conditions) doc() *map[string]any {
	out := make(map[string]any, len(c))
	for op, kv := range c {
		out[op] = kv
	}
	return &out
}

// inAccount limits a statement to resources the stack's account owns.
// aws:ResourceAccount: IAM User Guide, "AWS global condition context keys",
// aws:ResourceAccount; its list of EC2 actions without the key names none
// of DeregisterImage, DeleteSnapshot, CreateTags, DeleteTags,
// Modify{Image,Snapshot}Attribute, {Enable,Disable}Image[Deprecation]
// (only CopyImage, CopySnapshot, CreateVolume and network actions).
func inAccount() Conditions {
	return Conditions{"StringEquals": {"aws:ResourceAccount": awscdk.Aws_ACCOUNT_ID()}}
}

// onlyTagKeys limits CreateTags/DeleteTags to keys: every key in the
// request must be one of them, and the request must name at least one.
// Service Authorization Reference, Amazon EC2, actions CreateTags and
// DeleteTags: aws:TagKeys. Without the Null test a DeleteTags naming no tag
// (which deletes every tag of the resource) would pass ForAllValues, which
// holds for an empty set.
func onlyTagKeys(keys []string) Conditions {
	return Conditions{
		"ForAllValues:StringEquals": {"aws:TagKeys": slices.Clone(keys)},
		"Null":                      {"aws:TagKeys": "false"},
	}
}

// hasTag holds when the resource carries the tag key, whatever its value.
// Service Authorization Reference, Amazon EC2, resource types image and
// snapshot: ec2:ResourceTag/${TagKey} (listed for DeregisterImage and
// DeleteSnapshot among others).
func hasTag(key string) Conditions {
	return Conditions{"Null": {"ec2:ResourceTag/" + key: "false"}}
}

// statements is a role policy under construction. Each function's EC2
// permissions are written once, as statements (accountAccessOf): they go
// to the function's own role and, in organization mode, to the function's
// own member role in every member account.
type statements struct {
	list []awsiam.PolicyStatement
	sids map[string]int
}

// add appends one statement; a Sid already used gets a number, since IAM
// refuses a policy with two statements of one Sid.
func (s *statements) add(effect awsiam.Effect, sid string, actions []string, resources []*string, c Conditions) {
	props := &awsiam.PolicyStatementProps{Effect: effect, Actions: jsii.Strings(actions...), Resources: &resources}
	if len(c) > 0 {
		props.Conditions = c.doc()
	}
	if sid != "" {
		if s.sids == nil {
			s.sids = map[string]int{}
		}
		s.sids[sid]++
		if n := s.sids[sid]; n > 1 {
			sid += strconv.Itoa(n)
		}
		props.Sid = jsii.String(sid)
	}
	s.list = append(s.list, awsiam.NewPolicyStatement(props))
}

// allow adds one Allow statement.
func (s *statements) allow(actions []string, resources ...*string) {
	s.add(awsiam.Effect_ALLOW, "", actions, resources, nil)
}

// allowIf adds one Allow statement with conditions.
func (s *statements) allowIf(actions []string, resources []*string, c Conditions) {
	s.add(awsiam.Effect_ALLOW, "", actions, resources, c)
}

// deny adds one Deny statement: it holds whatever any other policy allows.
func (s *statements) deny(sid string, actions []string, resources []*string, c Conditions) {
	s.add(awsiam.Effect_DENY, sid, actions, resources, c)
}

// addTo puts every statement in role's default policy.
func (s *statements) addTo(role awsiam.IRole) {
	for _, st := range s.list {
		role.AddToPrincipalPolicy(st)
	}
}

// allowTags lets the role create (and, with del, delete) exactly keys
// on resources the account owns.
func (s *statements) allowTags(del bool, keys []string, resources ...*string) {
	actions := []string{"ec2:CreateTags"}
	if del {
		actions = append(actions, "ec2:DeleteTags")
	}
	s.allowIf(actions, resources, inAccount().and(onlyTagKeys(keys)))
}

// denyRemovingProtected refuses DeregisterImage and DeleteSnapshot, and the
// stages before them (DisableImage, EnableImageDeprecation), on any AMI or
// snapshot carrying the policy's protect tag, whatever its value: the
// cleanup never plans that, so only a bug or a race with someone tagging
// could ask for it. Nothing when the policy sets no protect tag.
// Service Authorization Reference, Amazon EC2: ec2:ResourceTag/${TagKey} on
// the image and snapshot resource types of all four actions.
func (s *statements) denyRemovingProtected(protectTag string, images, snapshots []*string) {
	if protectTag == "" {
		return
	}
	s.deny("NeverRemoveProtected", []string{"ec2:DeregisterImage", "ec2:DeleteSnapshot", "ec2:DisableImage", "ec2:EnableImageDeprecation"},
		slices.Concat(images, snapshots), hasTag(protectTag))
}

// denySharingAdds refuses any ModifySnapshotAttribute that adds an account
// or a group (all = public): the guard only removes principals.
// Service Authorization Reference, Amazon EC2, action
// ModifySnapshotAttribute, resource type snapshot: ec2:Add/userId,
// ec2:Add/group. Two statements, since one Null block with both keys would
// need both present. EC2 lists no such key for ModifyImageAttribute (nor
// any key for organization or OU ARNs): see docs/iam.md.
func (s *statements) denySharingAdds(snapshots []*string) {
	for _, d := range []struct{ sid, key string }{
		{"NeverShareSnapshotsWithAccounts", "ec2:Add/userId"},
		{"NeverShareSnapshotsWithGroups", "ec2:Add/group"},
	} {
		s.deny(d.sid, []string{"ec2:ModifySnapshotAttribute"}, snapshots, Conditions{"Null": {d.key: "false"}})
	}
}

// ec2Resources are the AMIs and snapshots a role's EC2 statements name
// (their ARNs have no account field; aws:ResourceAccount keeps the
// statements to the account's own).
type ec2Resources struct {
	Images, Snapshots []*string
}

// ec2ResourcesIn returns the AMIs and snapshots of the stack's region or,
// with regions, of every region: one ARN each rather than one per region
// keeps the policy far below IAM's size limit whatever the region count,
// and denyOutsideRegions holds the role to regions.
func ec2ResourcesIn(stack awscdk.Stack, regions []string) ec2Resources {
	region := anyRegionIf(regions)
	return ec2Resources{Images: []*string{ec2ARN(stack, "image", region)}, Snapshots: []*string{ec2ARN(stack, "snapshot", region)}}
}

// anyRegionIf is "*" when regions are listed, else nil (the stack's region).
func anyRegionIf(regions []string) *string {
	if len(regions) == 0 {
		return nil
	}
	return jsii.String("*")
}

// denyOutsideRegions refuses every EC2 call outside regions (none: no
// statement): the roles of organization mode name AMIs and snapshots of
// any region, and act only in the scope's. Global condition key
// aws:RequestedRegion (GCK).
func denyOutsideRegions(s *statements, regions []string) {
	if len(regions) == 0 {
		return
	}
	s.deny("OnlyTheScopeRegions", []string{"ec2:*"}, []*string{jsii.String("*")},
		Conditions{"StringNotEquals": {"aws:RequestedRegion": slices.Clone(regions)}})
}

// all is every AMI and snapshot.
func (r ec2Resources) all() []*string { return slices.Concat(r.Images, r.Snapshots) }

// ec2ARN is the ARN pattern of every AMI or snapshot in region (nil: the
// stack's).
func ec2ARN(stack awscdk.Stack, resource string, region *string) *string {
	return stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("ec2"), Account: jsii.String(""), Region: region, Resource: jsii.String(resource), ResourceName: jsii.String("*"),
	})
}

// Needs is what the policies a role serves ask of its permissions: the
// union over every effective policy of the deployment (the policy's
// variants, one per override), so that one role, or one member role for
// every account, covers each of them.
type Needs struct {
	// TaggerKeys are the tag keys the tagger writes (TaggerTagKeys).
	TaggerKeys []string
	// ProtectTags are the protect tags the cleanup is denied removing.
	ProtectTags []string
	// MarkRequired: every variant has a grace period, so DeregisterImage
	// needs the mark.
	MarkRequired bool
	// Deprecate and Disable: some variant enables the stage.
	Deprecate, Disable bool
	// BlockPublicAccess: some variant has an enforcing guard that turns on
	// image block public access.
	BlockPublicAccess bool
	// UsageReports: some variant checks who uses a shared AMI
	// (retention.shared_usage: check) through EC2's image usage reports.
	UsageReports bool
}

// NeedsOf returns the union of what the policies need.
func NeedsOf(policies ...*policy.Policy) Needs {
	n := Needs{MarkRequired: len(policies) > 0}
	keys, protect := map[string]bool{}, map[string]bool{}
	for _, p := range policies {
		for _, k := range TaggerTagKeys(p.Tagging) {
			keys[k] = true
		}
		if p.Retention.ProtectTag != "" {
			protect[p.Retention.ProtectTag] = true
		}
		n.MarkRequired = n.MarkRequired && p.Retention.GraceDays > 0
		n.Deprecate = n.Deprecate || p.Retention.Stages.Deprecate
		n.Disable = n.Disable || p.Retention.Stages.Disable
		n.BlockPublicAccess = n.BlockPublicAccess || p.Sharing.EnableImageBlockPublicAccess && p.Sharing.Mode == policy.ModeEnforce
		n.UsageReports = n.UsageReports || p.Retention.SharedUsage == policy.SharedUsageCheck
	}
	n.TaggerKeys = slices.Sorted(maps.Keys(keys))
	n.ProtectTags = slices.Sorted(maps.Keys(protect))
	return n
}

// accountAccess is what a function does in an account it works in (its
// EC2, Auto Scaling, SSM and Recycle Bin statements) and why each of their
// wildcard resources is needed. The function's own role gets it for the
// home account and, in organization mode, the function's member role for
// each member account: one definition, so the two cannot drift apart and
// no member role holds another function's statements.
type accountAccess struct {
	add       func(s *statements, stack awscdk.Stack, r ec2Resources, n Needs, regions []string)
	wildcards []wildcard
}

// accountAccessOf is the accountAccess of each function that works in
// accounts (OrgWorkerFunctions); the dispatcher works in none.
var accountAccessOf = map[string]accountAccess{
	TaggerFunctionName: {
		add:       func(s *statements, _ awscdk.Stack, r ec2Resources, n Needs, _ []string) { taggerEC2(s, r, n) },
		wildcards: []wildcard{describeAnything, everyImage, everySnapshot},
	},
	SharingFunctionName: {
		add:       func(s *statements, _ awscdk.Stack, r ec2Resources, n Needs, _ []string) { sharingEC2(s, r, n) },
		wildcards: sharingWildcards,
	},
	CleanupFunctionName: {
		add: func(s *statements, stack awscdk.Stack, r ec2Resources, n Needs, regions []string) {
			cleanupEC2(s, r, n, cleanupParameters(stack, regions))
		},
		wildcards: cleanupWildcards,
	},
}

// accountStatements are function's statements (accountAccessOf) in
// stack's account, over regions (none: the stack's region), with every
// EC2 call outside regions denied.
func accountStatements(stack awscdk.Stack, function string, n Needs, regions []string) *statements {
	a, ok := accountAccessOf[function]
	if !ok {
		panic(fmt.Sprintf("no account statements for function %q", function))
	}
	var s statements
	a.add(&s, stack, ec2ResourcesIn(stack, regions), n, regions)
	denyOutsideRegions(&s, regions)
	return &s
}

// taggerEC2 is what the tagger does to AMIs and snapshots.
func taggerEC2(s *statements, r ec2Resources, n Needs) {
	// Describe calls support no resource-level permissions, hence "*".
	s.allow([]string{"ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeTags"}, jsii.String("*"))
	// Tagging is limited to the account's AMIs and snapshots, and to the
	// keys the policy makes it write.
	s.allowTags(false, n.TaggerKeys, r.all()...)
}

// cleanupEC2 is what the cleanup reads and does in an account: its
// inventory (EC2, Auto Scaling, SSM parameters, Recycle Bin rules) and its
// removals. ssmParameters are the parameter ARN patterns it reads AMI IDs
// from.
func cleanupEC2(s *statements, r ec2Resources, n Needs, ssmParameters []*string) {
	// Inventory reads: Describe/List calls support no resource-level permissions.
	s.allow([]string{
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
	s.allowIf([]string{"imagebuilder:ListImageRecipes", "imagebuilder:ListContainerRecipes", "imagebuilder:GetContainerRecipe"},
		[]*string{jsii.String("*")}, Conditions{"ForAnyValue:StringEquals": {"aws:CalledVia": []string{"ec2-images.amazonaws.com"}}})
	// AMI IDs may sit in any of the account's parameters, and resolve:ssm:
	// aliases often point at AWS's public ones.
	s.allow([]string{"ssm:GetParameters", "ssm:GetParametersByPath"}, ssmParameters...)
	// The role may read any parameter to find AMI IDs, but must never be
	// able to decrypt a SecureString through SSM (with the AWS managed
	// aws/ssm key the key policy alone would allow it).
	s.deny("", []string{"kms:Decrypt"}, []*string{jsii.String("*")}, Conditions{"StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}})

	// Its own record tags only: marks and stage records on AMIs,
	// delete-with on snapshots.
	s.allowTags(true, CleanupImageTagKeys, r.Images...)
	s.allowTags(true, CleanupSnapshotTagKeys, r.Snapshots...)
	// With a grace period every deregistration rests on a mark the cleanup
	// wrote days before (cleanup.RecheckReasons re-reads it right before):
	// an AMI without one is refused. The tag's presence is all IAM can
	// see; its sealed value is the cleanup's check.
	deregister := inAccount()
	if n.MarkRequired {
		deregister = deregister.and(hasTag(cleanup.TagDeleteAfter))
	}
	s.allowIf([]string{"ec2:DeregisterImage"}, r.Images, deregister)
	// DeregisterImage with DeleteAssociatedSnapshots is authorized on the snapshots too.
	s.allowIf([]string{"ec2:DeleteSnapshot"}, r.Snapshots, inAccount())
	for _, tag := range n.ProtectTags {
		s.denyRemovingProtected(tag, r.Images, r.Snapshots)
	}
	if n.Deprecate {
		s.allowIf([]string{"ec2:EnableImageDeprecation", "ec2:DisableImageDeprecation"}, r.Images, inAccount())
	}
	if n.Disable {
		s.allowIf([]string{"ec2:DisableImage", "ec2:EnableImage"}, r.Images, inAccount())
	}
	// Who uses a shared AMI (docs/cleanup.md, shared_usage): a report is
	// requested in one run and read in a later one. Reads, and a request
	// that changes no AMI; no resource-level permissions are used.
	if n.UsageReports {
		s.allow([]string{"ec2:CreateImageUsageReport", "ec2:DescribeImageUsageReports", "ec2:DescribeImageUsageReportEntries"}, jsii.String("*"))
	}
}

// sharingEC2 is what the sharing guard reads and changes in an account.
func sharingEC2(s *statements, r ec2Resources, n Needs) {
	s.allow([]string{
		"ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeImageAttribute", "ec2:DescribeSnapshotAttribute",
		"ec2:GetImageBlockPublicAccessState", "ec2:GetSnapshotBlockPublicAccessState",
	}, jsii.String("*"))
	s.allowIf([]string{"ec2:ModifyImageAttribute"}, r.Images, inAccount())
	s.allowIf([]string{"ec2:ModifySnapshotAttribute"}, r.Snapshots, inAccount())
	// It only removes principals; EC2 can say so for snapshots alone.
	s.denySharingAdds(r.Snapshots)
	// The violation is recorded on the AMI, or on a snapshot checked alone.
	s.allowTags(false, SharingTagKeys, r.all()...)
	// Only an enforcing guard may turn the setting on (audit never acts).
	if n.BlockPublicAccess {
		// An account-level setting: no resource to scope it to.
		s.allow([]string{"ec2:EnableImageBlockPublicAccess"}, jsii.String("*"))
	}
}

// keyAdministration is what the account may do to a key it administers:
// CDK's default key policy grants kms:* instead.
var keyAdministration = []string{
	"kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
	"kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource",
	"kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
}

// NotificationKeyPolicy is the notification topic's key policy: the
// account administers the key, and IAM policies in the account may grant
// what publishing to the topic takes (the functions' roles get exactly
// that); CloudWatch alarms get their own statement.
func NotificationKeyPolicy() awsiam.PolicyDocument {
	account := []awsiam.IPrincipal{awsiam.NewAccountRootPrincipal()}
	return awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &[]awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("AccountAdministersTheKey"), Principals: &account,
			Actions: jsii.Strings(keyAdministration...), Resources: jsii.Strings("*"),
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("AccountGrantsPublishing"), Principals: &account,
			Actions: jsii.Strings("kms:GenerateDataKey", "kms:Decrypt"), Resources: jsii.Strings("*"),
		}),
	}})
}
