package housekeeper

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsrbin"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// RecycleBinProps sets the Recycle Bin rules.
type RecycleBinProps struct {
	// ImageDays keeps deregistered AMIs restorable; 0 creates no rules.
	ImageDays int
	// SnapshotDays keeps deleted snapshots restorable; at least ImageDays,
	// because an AMI comes back only with its snapshots.
	SnapshotDays int
	// LockDays, when > 0, locks both rules with this unlock delay (7-30):
	// shortening or deleting them then takes that long after an unlock.
	LockDays int
}

// DefaultRecycleBin keeps everything removed recoverable for 7 days.
var DefaultRecycleBin = RecycleBinProps{ImageDays: 7, SnapshotDays: 7}

// RecycleBinRules are the region-level rules that make every deregistration
// and snapshot deletion in the region recoverable: the cleanup's report
// states a "recoverable until" date only when both exist (it reads them
// with rbin:GetRule), and `ami-housekeeper restore` brings items back.
type RecycleBinRules struct {
	constructs.Construct
	Images    awsrbin.CfnRule
	Snapshots awsrbin.CfnRule
}

// NewRecycleBinRules creates the rules, or nothing when ImageDays is 0. A
// rule with no resource tags is region-level: it also keeps what others
// deregister or delete in the region, which is the safety net's point and
// its cost (snapshots in the bin are billed; see docs/deploy.md).
func NewRecycleBinRules(scope constructs.Construct, id string, p *RecycleBinProps) *RecycleBinRules {
	if p.ImageDays == 0 {
		return nil
	}
	if p.SnapshotDays < p.ImageDays {
		panic(fmt.Sprintf("recycle bin: snapshots kept %d days, fewer than the AMIs' %d; an AMI is restored with its snapshots", p.SnapshotDays, p.ImageDays))
	}
	if p.LockDays != 0 && (p.LockDays < 7 || p.LockDays > 30) {
		panic(fmt.Sprintf("recycle bin: unlock delay %d days; want 7 to 30", p.LockDays))
	}
	c := constructs.NewConstruct(scope, jsii.String(id))
	rule := func(id, resourceType, what string, days int) awsrbin.CfnRule {
		props := &awsrbin.CfnRuleProps{
			Description:  jsii.String(fmt.Sprintf("ami-housekeeper: keeps every %s recoverable for %d days", what, days)),
			ResourceType: jsii.String(resourceType),
			RetentionPeriod: &awsrbin.CfnRule_RetentionPeriodProperty{
				RetentionPeriodValue: jsii.Number(days),
				RetentionPeriodUnit:  jsii.String("DAYS"),
			},
		}
		if p.LockDays > 0 {
			props.LockConfiguration = &awsrbin.CfnRule_UnlockDelayProperty{
				UnlockDelayValue: jsii.Number(p.LockDays),
				UnlockDelayUnit:  jsii.String("DAYS"),
			}
		}
		r := awsrbin.NewCfnRule(c, jsii.String(id), props)
		if p.LockDays > 0 {
			// A locked rule cannot be deleted; CloudFormation would fail the
			// stack's deletion. It stays, to be unlocked and deleted by hand.
			r.ApplyRemovalPolicy(awscdk.RemovalPolicy_RETAIN, nil)
		}
		return r
	}
	return &RecycleBinRules{
		Construct: c,
		Images:    rule("Images", "EC2_IMAGE", "deregistered AMI", p.ImageDays),
		Snapshots: rule("Snapshots", "EBS_SNAPSHOT", "deleted snapshot", p.SnapshotDays),
	}
}
