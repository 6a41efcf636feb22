package sweep

import (
	"context"
	"fmt"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// The report reserve must outlast the one call a lane may have in flight
// when the deadline strikes (a negative constant does not convert to uint).
const _ = uint(reportReserve - execute.CallTimeout - 2*time.Second)

// recheck is the executor's look right before each batch of
// deregistrations: the AMIs as EC2 describes them now, and, unless the
// policy turns it off, EC2's own list of what references them.
type recheck struct {
	c       *collect.Collector
	now     func() time.Time
	p       policy.Retention
	records *records.Key
}

var _ execute.Rechecker = recheck{}

func (r recheck) Recheck(ctx context.Context, batch []cleanup.Decision) (map[string]execute.Kept, error) {
	ids := make([]string, len(batch))
	for i, d := range batch {
		ids[i] = d.ImageID
	}
	current, err := r.c.CurrentImages(ctx, ids)
	if err != nil {
		return nil, err
	}
	// Launch permissions left to this moment (Decision.CheckShares).
	var unread []*cleanup.Image
	for _, d := range batch {
		if img := current[d.ImageID]; d.CheckShares && img != nil {
			unread = append(unread, img)
		}
	}
	if err := r.c.ReadSharesNow(ctx, unread); err != nil {
		return nil, err
	}
	var refs map[string][]cleanup.Reference
	if r.p.SecondOpinion != policy.SecondOpinionDisabled {
		if refs, err = r.c.ImageReferences(ctx, ids); err != nil {
			return nil, fmt.Errorf("second opinion (EC2 DescribeImageReferences) unavailable, so nothing is deregistered: %w", err)
		}
	}
	keep := map[string]execute.Kept{}
	at := r.now()
	for _, d := range batch {
		why, candidate := cleanup.RecheckReasons(at, d, current[d.ImageID], refs[d.ImageID], r.p, r.records)
		if len(why) > 0 {
			// A marked AMI that is no longer a candidate for a reason only
			// this look sees is unmarked now; the next plan could not.
			keep[d.ImageID] = execute.Kept{Reasons: why, Unmark: !candidate && d.DeleteAfter != "" && r.p.GraceDays > 0}
		}
	}
	return keep, nil
}
