package housekeeper

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/infra/config"
)

// NewApp adds the housekeeper's stacks to app as cfg says: one
// environment-agnostic stack named cfg.StackName, or, with regions, one
// stack per region (construct ID "<StackName>-<region>", CloudFormation name
// cfg.StackName in each). Nothing is global: every region gets its own
// functions, keys, rules and alarms, because EC2 events and AMIs are
// regional.
func NewApp(app awscdk.App, cfg config.Config) []awscdk.Stack {
	props := StackProps{
		DistDir:         cfg.DistDir,
		PolicyFile:      cfg.PolicyFile,
		LogRetention:    retentionDays(cfg.LogRetentionDays),
		CleanupSchedule: cfg.CleanupSchedule.Expression,
		SharingSchedule: cfg.SharingSchedule.Expression,
		RecycleBin: &RecycleBinProps{
			ImageDays: cfg.RecycleBinDays, SnapshotDays: cfg.RecycleBinSnapshotDays, LockDays: cfg.RecycleBinLockDays,
		},
		AlarmEmails: cfg.AlarmEmails,
	}
	if cfg.Organization.Enabled() {
		o := cfg.Organization
		props.Organization = &o
	}
	if len(cfg.Regions) == 0 {
		props.StackName = jsii.String(cfg.StackName)
		return []awscdk.Stack{NewHousekeeperStack(app, cfg.StackName, &props)}
	}
	// The account comes from the deploying credentials (the CLI sets
	// CDK_DEFAULT_ACCOUNT); unset, the stacks stay account-agnostic.
	var account *string
	if a := os.Getenv("CDK_DEFAULT_ACCOUNT"); a != "" {
		account = jsii.String(a)
	}
	stacks := make([]awscdk.Stack, 0, len(cfg.Regions))
	for _, region := range cfg.Regions {
		p := props
		p.StackName = jsii.String(cfg.StackName)
		p.Env = &awscdk.Environment{Account: account, Region: jsii.String(region)}
		stacks = append(stacks, NewHousekeeperStack(app, cfg.StackName+"-"+region, &p))
	}
	return stacks
}

// retentionDays maps a day count config accepted to the CDK's enum.
func retentionDays(days int) awslogs.RetentionDays {
	r, ok := logRetention[days]
	if !ok {
		panic(fmt.Sprintf("log retention: %d days is not a value CloudWatch Logs accepts", days))
	}
	return r
}

var logRetention = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
	7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
	150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
	400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS, 731: awslogs.RetentionDays_TWO_YEARS,
	1096: awslogs.RetentionDays_THREE_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS, 2192: awslogs.RetentionDays_SIX_YEARS,
	2557: awslogs.RetentionDays_SEVEN_YEARS, 2922: awslogs.RetentionDays_EIGHT_YEARS, 3288: awslogs.RetentionDays_NINE_YEARS,
	3653: awslogs.RetentionDays_TEN_YEARS,
}
