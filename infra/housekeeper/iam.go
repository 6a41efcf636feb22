package housekeeper

import (
	"maps"
	"reflect"
	"slices"

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

// allowIf adds one Allow statement with conditions to the function's role.
func (f *goFunction) allowIf(actions []string, resources []*string, c Conditions) {
	f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: jsii.Strings(actions...), Resources: &resources, Conditions: c.doc(),
	}))
}

// deny adds one Deny statement to the function's role: it holds whatever
// any other policy allows.
func (f *goFunction) deny(sid string, actions []string, resources []*string, c Conditions) {
	f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String(sid), Effect: awsiam.Effect_DENY,
		Actions: jsii.Strings(actions...), Resources: &resources, Conditions: c.doc(),
	}))
}

// allowTags lets the function create (and, with del, delete) exactly keys
// on resources the account owns.
func (f *goFunction) allowTags(del bool, keys []string, resources ...*string) {
	actions := []string{"ec2:CreateTags"}
	if del {
		actions = append(actions, "ec2:DeleteTags")
	}
	f.allowIf(actions, resources, inAccount().and(onlyTagKeys(keys)))
}

// denyRemovingProtected refuses DeregisterImage and DeleteSnapshot, and the
// stages before them (DisableImage, EnableImageDeprecation), on any AMI or
// snapshot carrying the policy's protect tag, whatever its value: the
// cleanup never plans that, so only a bug or a race with someone tagging
// could ask for it. Nothing when the policy sets no protect tag.
// Service Authorization Reference, Amazon EC2: ec2:ResourceTag/${TagKey} on
// the image and snapshot resource types of all four actions.
func (f *goFunction) denyRemovingProtected(protectTag string, image, snapshot *string) {
	if protectTag == "" {
		return
	}
	f.deny("NeverRemoveProtected", []string{"ec2:DeregisterImage", "ec2:DeleteSnapshot", "ec2:DisableImage", "ec2:EnableImageDeprecation"},
		[]*string{image, snapshot}, hasTag(protectTag))
}

// denySharingAdds refuses any ModifySnapshotAttribute that adds an account
// or a group (all = public): the guard only removes principals.
// Service Authorization Reference, Amazon EC2, action
// ModifySnapshotAttribute, resource type snapshot: ec2:Add/userId,
// ec2:Add/group. Two statements, since one Null block with both keys would
// need both present. EC2 lists no such key for ModifyImageAttribute (nor
// any key for organization or OU ARNs): see docs/iam.md.
func (f *goFunction) denySharingAdds(snapshot *string) {
	for _, d := range []struct{ sid, key string }{
		{"NeverShareSnapshotsWithAccounts", "ec2:Add/userId"},
		{"NeverShareSnapshotsWithGroups", "ec2:Add/group"},
	} {
		f.deny(d.sid, []string{"ec2:ModifySnapshotAttribute"}, []*string{snapshot}, Conditions{"Null": {d.key: "false"}})
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
