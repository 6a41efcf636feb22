package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
)

// fakeDispatcher records the requests it gets.
type fakeDispatcher struct {
	reqs []fanout.DispatchRequest
	err  error
}

func (f *fakeDispatcher) Dispatch(_ context.Context, req fanout.DispatchRequest) (fanout.DispatchResult, error) {
	f.reqs = append(f.reqs, req)
	if f.err != nil {
		return fanout.DispatchResult{Sweep: req.Sweep()}, f.err
	}
	return fanout.DispatchResult{Sweep: req.Sweep(), Job: req.Job, Units: 10, Expected: 10, Sent: 10}, nil
}

func TestDispatchRejectsBadInputAndSendsNothing(t *testing.T) {
	tests := []struct{ name, payload, want string }{
		{"empty", ``, "invalid dispatch request"},
		{"a raw scheduled event", `{"version":"0","source":"aws.events","detail-type":"Scheduled Event","time":"2026-11-29T03:00:00Z"}`, "unknown field"},
		{"unknown job", `{"job":"nuke-everything","time":"2026-11-29T03:00:00Z"}`, `job: "nuke-everything" is not a known job`},
		{"bad time", `{"job":"cleanup","time":"tomorrow"}`, `time: "tomorrow" is not an RFC 3339 time`},
		{"extra field", `{"job":"cleanup","time":"2026-11-29T03:00:00Z","accounts":["111111111111"]}`, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			d := &fakeDispatcher{}
			h := &handlers.Dispatch{Dispatcher: d, Log: logging.New(&logs, "info")}
			var lh lambda.Handler = h // what lambda.Start is given
			out, err := lh.Invoke(context.Background(), []byte(tt.payload))
			if err != nil {
				t.Fatalf("bad input returned an error (Lambda would retry it): %v", err)
			}
			var resp handlers.DispatchResponse
			if err := json.Unmarshal(out, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.Outcome != handlers.OutcomeRejected || !strings.Contains(resp.Reason, tt.want) {
				t.Fatalf("response %s; want rejected naming %q", out, tt.want)
			}
			if len(d.reqs) != 0 {
				t.Fatalf("bad input was dispatched: %+v", d.reqs)
			}
			if !strings.Contains(logs.String(), `"outcome":"rejected"`) || !strings.Contains(logs.String(), `"function":"dispatcher"`) {
				t.Fatalf("no rejection line: %s", logs.String())
			}
		})
	}
}

func TestDispatchStartsTheSweepOrFailsForARetry(t *testing.T) {
	var logs bytes.Buffer
	d := &fakeDispatcher{}
	h := &handlers.Dispatch{Dispatcher: d, Log: logging.New(&logs, "info")}
	out, err := h.Invoke(context.Background(), []byte(`{"job":"sharing-audit","time":"2026-11-29T03:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := fanout.DispatchRequest{Job: fanout.JobSharingAudit, Time: time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)}
	if len(d.reqs) != 1 || d.reqs[0].Job != want.Job || !d.reqs[0].Time.Equal(want.Time) {
		t.Fatalf("dispatched %+v, want %+v", d.reqs, want)
	}
	if !bytes.Contains(out, []byte(`"outcome":"dispatched"`)) || !bytes.Contains(out, []byte(`"sweep":"sharing-audit/2026-11-29T03:00:00Z"`)) {
		t.Fatalf("response %s", out)
	}
	d.err = errors.New("sweep x: 1 units not sent")
	if _, err := h.Invoke(context.Background(), []byte(`{"job":"cleanup","time":"2026-11-29T03:00:00Z"}`)); err == nil {
		t.Fatal("a failed dispatch returned no error: Lambda would not retry it")
	}
}
