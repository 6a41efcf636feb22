package collect

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rbin"
	rbtypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"
)

// rbinPageSize is ListRules' maximum MaxResults.
const rbinPageSize = 100

// readRecycleBin reads how long Recycle Bin keeps removed AMIs and snapshots:
// the longest retention of the region's rules for each resource type. It only
// feeds the report, so a failure is a problem, not an incomplete inventory.
//
// ListRules returns rule summaries, which carry no status (a rule being
// created is "pending" for a moment); every listed rule counts. Tag-level
// rules count too, although they keep only the resources carrying their tags.
func (s *sweep) readRecycleBin(ctx context.Context) {
	if s.c.RecycleBin == nil {
		return
	}
	s.inv.RecycleBin.ImageRetentionDays = s.longestRetention(ctx, rbtypes.ResourceTypeEc2Image)
	s.inv.RecycleBin.SnapshotRetentionDays = s.longestRetention(ctx, rbtypes.ResourceTypeEbsSnapshot)
}

func (s *sweep) longestRetention(ctx context.Context, rt rbtypes.ResourceType) int {
	p := rbin.NewListRulesPaginator(s.c.RecycleBin, &rbin.ListRulesInput{ResourceType: rt, MaxResults: aws.Int32(rbinPageSize)})
	days := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.problem("recycle bin rules for %s: %v", rt, err)
			return days
		}
		for _, r := range page.Rules {
			if r.RetentionPeriod == nil || r.RetentionPeriod.RetentionPeriodUnit != rbtypes.RetentionPeriodUnitDays {
				continue
			}
			days = max(days, int(aws.ToInt32(r.RetentionPeriod.RetentionPeriodValue)))
		}
	}
	return days
}
