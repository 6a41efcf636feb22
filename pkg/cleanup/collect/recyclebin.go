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
// the longest retention of the region's rules for each resource type that
// keep every resource of it. It only feeds the report ("recoverable until"),
// so a failure is a problem, not an incomplete inventory, and it promises
// nothing then.
//
// ListRules summaries say neither which resources a rule keeps nor its
// state, so each rule is read with GetRule: a tag-level rule (ResourceTags)
// keeps only resources carrying its tags, and a region-level rule with
// exclusion tags not those carrying them; neither is a promise for every
// AMI, so only plain region-level rules count.
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
			return 0
		}
		for _, r := range page.Rules {
			if r.RetentionPeriod == nil || r.RetentionPeriod.RetentionPeriodUnit != rbtypes.RetentionPeriodUnitDays {
				continue
			}
			rule, err := s.c.RecycleBin.GetRule(ctx, &rbin.GetRuleInput{Identifier: r.Identifier})
			if err != nil {
				s.problem("recycle bin rule %s: %v", aws.ToString(r.Identifier), err)
				return 0
			}
			if len(rule.ResourceTags) > 0 || len(rule.ExcludeResourceTags) > 0 || rule.Status != rbtypes.RuleStatusAvailable {
				continue
			}
			days = max(days, int(aws.ToInt32(r.RetentionPeriod.RetentionPeriodValue)))
		}
	}
	return days
}
