package amievents_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
)

const queueARN = "arn:aws:sqs:us-east-1:123456789012:ami-housekeeper-tagger"

// sqsBatch wraps bodies as Lambda's SQS event source mapping delivers them.
func sqsBatch(t *testing.T, bodies ...string) []byte {
	t.Helper()
	recs := make([]map[string]any, len(bodies))
	for i, b := range bodies {
		recs[i] = map[string]any{
			"messageId": "m" + string(rune('0'+i)), "receiptHandle": "rh" + string(rune('0'+i)), "body": b,
			"attributes":  map[string]string{"ApproximateReceiveCount": "3", "SentTimestamp": "1795000000000"},
			"eventSource": "aws:sqs", "eventSourceARN": queueARN, "awsRegion": "us-east-1",
		}
	}
	raw, err := json.Marshal(map[string]any{"Records": recs})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestParseSQS(t *testing.T) {
	plain := string(fixture(t, "valid/statechange-available.json"))
	tests := []struct {
		name    string
		raw     []byte
		records int    // records returned (0: not a batch)
		field   string // the invalid field, when the payload is refused
	}{
		{"plain EventBridge event", []byte(plain), 0, ""},
		{"not JSON", []byte("nope"), 0, ""},
		{"malformed JSON with Records", []byte(`{"Records":[`), 0, ""},
		{"SQS batch", sqsBatch(t, plain, plain), 2, ""},
		// A bad body is one bad record (rejected by Parse later), not a bad batch.
		{"SQS batch with a malformed body", sqsBatch(t, plain, "{not json"), 2, ""},
		{"S3 notification", []byte(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{}}]}`), 0, "Records[0].eventSource"},
		{"SNS notification", []byte(`{"Records":[{"EventSource":"aws:sns","EventVersion":"1.0","Sns":{"Message":"{}"}}]}`), 0, "Records[0].eventSource"},
		{"SQS then S3", []byte(`{"Records":[{"messageId":"a","eventSource":"aws:sqs","body":"{}"},{"eventSource":"aws:s3"}]}`), 0, "Records[1].eventSource"},
		{"empty Records", []byte(`{"Records":[]}`), 0, "Records"},
		{"Records not a list", []byte(`{"Records":{"a":1}}`), 0, "Records"},
		{"SQS record without messageId", []byte(`{"Records":[{"eventSource":"aws:sqs","body":"{}"}]}`), 0, "Records[0].messageId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := amievents.ParseSQS(tt.raw)
			if tt.field != "" {
				var ie *amievents.InvalidEventError
				if !errors.As(err, &ie) || ie.Field != tt.field {
					t.Fatalf("err = %v, want an invalid event naming %s", err, tt.field)
				}
				return
			}
			if err != nil || len(recs) != tt.records {
				t.Fatalf("records = %d, err = %v; want %d records", len(recs), err, tt.records)
			}
		})
	}
}

func TestParseSQSRecordFields(t *testing.T) {
	plain := string(fixture(t, "valid/cloudtrail-createimage.json"))
	recs, err := amievents.ParseSQS(sqsBatch(t, plain, "{not json"))
	if err != nil || len(recs) != 2 {
		t.Fatalf("%v %v", recs, err)
	}
	r := recs[0]
	if r.MessageID != "m0" || r.ReceiptHandle != "rh0" || r.ReceiveCount != 3 || !r.SentAt.Equal(time.UnixMilli(1795000000000)) ||
		r.QueueARN != queueARN || r.QueueRegion != "us-east-1" || r.QueueAccount != "123456789012" || r.QueueName != "ami-housekeeper-tagger" {
		t.Errorf("record = %+v", r)
	}
	// Each body goes through Parse, unchanged: the same event as delivered directly.
	ev, err := amievents.Parse(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := ev.(*amievents.ImageCreated); !ok || e.Meta().ImageID != "ami-0123456789abcdef0" || e.Operation != "CreateImage" {
		t.Errorf("body parsed to %+v", ev)
	}
	if _, err := amievents.Parse(recs[1].Body); !amievents.IsInvalid(err) || !strings.Contains(err.Error(), "malformed JSON") {
		t.Errorf("malformed body: err = %v", err)
	}
}

// Lambda's attributes are trusted for the backoff only: an absent or odd
// receive count is the first receive, an absent timestamp is zero.
func TestParseSQSAttributeDefaults(t *testing.T) {
	raw := []byte(`{"Records":[{"messageId":"a","eventSource":"aws:sqs","body":"{}","attributes":{"ApproximateReceiveCount":"x"},"eventSourceARN":"arn:aws:s3:::bucket"}]}`)
	recs, err := amievents.ParseSQS(raw)
	if err != nil || len(recs) != 1 {
		t.Fatalf("%v %v", recs, err)
	}
	if r := recs[0]; r.ReceiveCount != 1 || !r.SentAt.IsZero() || r.QueueName != "" {
		t.Errorf("record = %+v", r)
	}
}
