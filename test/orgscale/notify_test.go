package orgscale_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
)

// maxEventBytes is EventBridge's limit on a PutEvents request (256 KB), and
// SNS's on a message.
const maxEventBytes = 256 * 1024

// bus captures what the functions publish: the units' cleanup reports and
// the sweep's summary on the central bus, the summary's text on the topic.
// Like EventBridge and SNS it refuses an event or message over 256 KB.
type bus struct {
	mu sync.Mutex
	// events counts by detail-type; summary is the last summary's detail.
	events   map[string]int
	largest  map[string]int // largest entry per detail-type, bytes
	refused  []string
	messages int
	summary  json.RawMessage
}

var (
	_ awsapi.EventBridgeAPI = (*bus)(nil)
	_ awsapi.SNSAPI         = (*bus)(nil)
)

func newBus() *bus { return &bus{events: map[string]int{}, largest: map[string]int{}} }

func (b *bus) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := &eventbridge.PutEventsOutput{}
	for _, e := range in.Entries {
		size := len(aws.ToString(e.Source)) + len(aws.ToString(e.DetailType)) + len(aws.ToString(e.Detail))
		for _, r := range e.Resources {
			size += len(r)
		}
		dt := aws.ToString(e.DetailType)
		if size > maxEventBytes {
			b.refused = append(b.refused, fmt.Sprintf("%s event of %d bytes", dt, size))
			return nil, fake.APIError("ValidationException")
		}
		b.events[dt]++
		b.largest[dt] = max(b.largest[dt], size)
		if dt == fanout.DetailTypeSummary {
			b.summary = json.RawMessage(aws.ToString(e.Detail))
		}
		out.Entries = append(out.Entries, ebtypes.PutEventsResultEntry{EventId: aws.String(fmt.Sprint("ev-", b.events[dt]))})
	}
	return out, nil
}

func (b *bus) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(aws.ToString(in.Message)); n > maxEventBytes {
		b.refused = append(b.refused, fmt.Sprintf("SNS message of %d bytes", n))
		return nil, fake.APIError("InvalidParameter")
	}
	b.messages++
	return &sns.PublishOutput{MessageId: aws.String(fmt.Sprint("msg-", b.messages))}, nil
}
