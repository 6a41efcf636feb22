package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"golang.org/x/time/rate"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
)

const (
	// cloudTrailRetention is how far back LookupEvents sees management
	// events.
	cloudTrailRetention = 90 * 24 * time.Hour
	// lookupRate is CloudTrail's LookupEvents quota: 2 calls a second per
	// account and region.
	lookupRate = 2
	// maxLookupPages bounds one lookup (50 events a page): a resource named
	// in more events than that is reported as not found rather than read
	// for minutes.
	maxLookupPages = 40
)

// trail reads CloudTrail's management events in one region, paced under
// its quota. Each record goes through amievents, the parser the functions
// use for the same records delivered by EventBridge, so a record the
// functions would reject (a failed call, another account or region) is
// skipped here too.
type trail struct {
	api             awsapi.CloudTrailLookup
	account, region string
	lim             *rate.Limiter
}

func newTrail(api awsapi.CloudTrailLookup, account, region string) *trail {
	return &trail{api: api, account: account, region: region, lim: rate.NewLimiter(lookupRate, 1)}
}

// lookup returns the parsed EC2 events that match attr between start and
// end, newest first, and whether the lookup stopped at maxLookupPages.
func (t *trail) lookup(ctx context.Context, key cttypes.LookupAttributeKey, value string, start, end time.Time) ([]amievents.Event, bool, error) {
	p := cloudtrail.NewLookupEventsPaginator(t.api, &cloudtrail.LookupEventsInput{
		LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: key, AttributeValue: aws.String(value)}},
		StartTime:        aws.Time(start),
		EndTime:          aws.Time(end),
	})
	var out []amievents.Event
	for pages := 0; p.HasMorePages(); pages++ {
		if pages == maxLookupPages {
			return out, true, nil
		}
		if err := t.lim.Wait(ctx); err != nil {
			return out, false, err
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, false, fmt.Errorf("CloudTrail LookupEvents %s=%s in %s: %w", key, value, t.region, err)
		}
		for _, e := range page.Events {
			if ev := t.parse(e); ev != nil {
				out = append(out, ev)
			}
		}
	}
	return out, false, nil
}

// parse wraps the record in the envelope EventBridge would have delivered
// it in and parses it as the functions do; nil when they would not act on
// it.
func (t *trail) parse(e cttypes.Event) amievents.Event {
	rec := aws.ToString(e.CloudTrailEvent)
	if rec == "" || !json.Valid([]byte(rec)) {
		return nil
	}
	env, err := json.Marshal(map[string]any{
		"version":     "0",
		"id":          aws.ToString(e.EventId),
		"detail-type": amievents.DetailTypeCloudTrail,
		"source":      amievents.SourceEC2,
		"account":     t.account,
		"time":        aws.ToTime(e.EventTime).UTC().Format(time.RFC3339),
		"region":      t.region,
		"resources":   []string{},
		"detail":      json.RawMessage(rec),
	})
	if err != nil {
		return nil
	}
	ev, err := amievents.Parse(env)
	if err != nil {
		return nil
	}
	return ev
}
