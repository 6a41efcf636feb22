package emulator

import (
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// The response rules of ReportBatchItemFailures, as Lambda documents them:
// empty, null or no batchItemFailures is complete success; invalid JSON, an
// empty, null or unknown itemIdentifier, or a function error fails the
// whole batch.
func TestBatchFailuresReadsTheResponseAsLambdaDoes(t *testing.T) {
	ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1"}, {MessageId: "m2"}}}
	for _, tt := range []struct {
		name, body string
		retry      []string
		err        string
	}{
		{"empty body", ``, nil, ""},
		{"null", `null`, nil, ""},
		{"empty object", `{}`, nil, ""},
		{"null list", `{"batchItemFailures":null}`, nil, ""},
		{"empty list", `{"batchItemFailures":[]}`, nil, ""},
		{"another shape is success", `{"outcome":"tagged"}`, nil, ""},
		{"one failure", `{"batchItemFailures":[{"itemIdentifier":"m2"}]}`, []string{"m2"}, ""},
		{"both, one twice", `{"batchItemFailures":[{"itemIdentifier":"m1"},{"itemIdentifier":"m2"},{"itemIdentifier":"m1"}]}`, []string{"m1", "m2"}, ""},
		{"function error", `{"errorType":"OperationError","errorMessage":"boom"}`, nil, "OperationError: boom"},
		{"invalid JSON", `{"batchItemFailures":[`, nil, "invalid batch response"},
		{"list of the wrong type", `{"batchItemFailures":"m1"}`, nil, "invalid batch response"},
		{"empty identifier", `{"batchItemFailures":[{"itemIdentifier":""}]}`, nil, "empty or null"},
		{"null identifier", `{"batchItemFailures":[{"itemIdentifier":null}]}`, nil, "empty or null"},
		{"bad key name", `{"batchItemFailures":[{"itemId":"m1"}]}`, nil, "not {\"itemIdentifier\""},
		{"unknown message", `{"batchItemFailures":[{"itemIdentifier":"m9"}]}`, nil, `"m9" is not a record`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			retry, err := batchFailures([]byte(tt.body), ev)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(retry) != len(tt.retry) {
				t.Fatalf("retry %v, want %v", retry, tt.retry)
			}
			for _, id := range tt.retry {
				if !retry[id] {
					t.Errorf("retry %v, want %v", retry, tt.retry)
				}
			}
		})
	}
}
