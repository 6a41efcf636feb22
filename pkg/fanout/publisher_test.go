package fanout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
)

type refusingBus struct{}

func (refusingBus) PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	return nil, errors.New("AccessDeniedException")
}

// A published summary writes the SweepsSummarized line the organization
// mode's silence alarm reads, under the job's function; a summary that did
// not go out writes none.
func TestPublisherWritesSweepMetrics(t *testing.T) {
	s := fanout.Summary{Sweep: "sharing-audit/2026-11-29T03:00:00Z", Job: fanout.JobSharingAudit}
	s.Totals.Unreachable, s.Totals.Failed = 2, 1
	var buf bytes.Buffer
	if err := fanout.Publisher(notify.Notifier{}, &buf)(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("metrics line %q: %v", buf.String(), err)
	}
	if line["Function"] != "sharing" || line["SweepsSummarized"] != 1.0 || line["SweepUnitsUnreachable"] != 2.0 || line["SweepUnitsFailed"] != 1.0 {
		t.Errorf("metrics line %v", line)
	}

	buf.Reset()
	failing := notify.Notifier{Events: refusingBus{}, EventBus: "bus"}
	if err := fanout.Publisher(failing, &buf)(context.Background(), s); err == nil {
		t.Fatal("a refused summary must fail the publish")
	}
	if buf.Len() != 0 {
		t.Errorf("a summary that did not go out wrote metrics: %s", buf.String())
	}
}
