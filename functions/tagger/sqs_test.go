package main_test

// End-to-end through the SQS path: the real tagger binary under the runtime
// emulator, moto as the account, and an SQS batch shaped as Lambda's event
// source mapping delivers it (the bodies are the EventBridge events,
// unchanged, as EventBridge's SQS target puts them).

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

func (e *e2e) body(t *testing.T, fixture string, values map[string]string) string {
	t.Helper()
	raw, err := emulator.Fixture(filepath.Join("events", fixture))
	if err != nil {
		t.Fatal(err)
	}
	return string(emulator.Fill(raw, values))
}

// Both events of 4 AMIs, a duplicate delivery and a malformed body: every
// AMI tagged with its creator, nothing to retry, one batch line counting it.
func TestE2ESQSBatch(t *testing.T) {
	e := start(t)
	var amis, snaps []string
	var bodies []string
	for i := range 4 {
		ami, snap := e.image(t, "burst-"+strconv.Itoa(i))
		amis, snaps = append(amis, ami), append(snaps, snap)
		v := map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": e.inst}
		bodies = append(bodies, e.body(t, "valid/statechange-available.json", v), e.body(t, "valid/cloudtrail-createimage.json", v))
	}
	bodies = append(bodies, bodies[1], `{"version":"0","detail-type":`) // a duplicate, a malformed body
	sent := time.Now().Add(-2 * time.Second).UnixMilli()
	var batch events.SQSEvent
	for i, b := range bodies {
		batch.Records = append(batch.Records, events.SQSMessage{MessageId: "msg-" + strconv.Itoa(i), ReceiptHandle: "rh-" + strconv.Itoa(i), Body: b,
			Attributes:  map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": strconv.FormatInt(sent, 10)},
			EventSource: "aws:sqs", EventSourceARN: "arn:aws:sqs:us-east-1:" + account + ":ami-housekeeper-tagger", AWSRegion: "us-east-1"})
	}
	if len(batch.Records) != 10 {
		t.Fatalf("%d records", len(batch.Records))
	}
	payload, err := json.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.rie.Invoke(e.ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.BatchItemFailures == nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("response %s (%v), want an empty batchItemFailures", out, err)
	}
	for i, ami := range amis {
		for _, id := range []string{ami, snaps[i]} {
			got := e.tags(t, id)
			if got["ami-housekeeper:created-by"] != "arn:aws:sts::123456789012:assumed-role/image-builder/packer-build-42" ||
				got["ami-housekeeper:created-via"] != "CreateImage" || got["team"] != "web" {
				t.Errorf("%s tags = %v", id, got)
			}
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(e.rie.SettledLogs(), "\n") {
		if !strings.Contains(l, `"msg":"tagger batch"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l[strings.Index(l, "{"):]), &m); err != nil {
			t.Fatalf("batch line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 1 {
		t.Fatalf("%d batch lines, want 1:\n%s", len(lines), e.rie.Logs())
	}
	m := lines[0]
	want := map[string]float64{"records": 10, "amis": 4, "coalesced": 5, "succeeded": 9, "failed": 0, "rejected": 1, "throttled": 0}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("batch line %s = %v, want %v (%v)", k, m[k], v, m)
		}
	}
	calls, _ := m["calls"].(map[string]any)
	if calls["DescribeImages"] != 4.0 || calls["CreateTags"] == nil {
		t.Errorf("calls %v: want one DescribeImages per AMI", calls)
	}
	if age, _ := m["queue_age_ms_max"].(float64); age < 2000 {
		t.Errorf("queue_age_ms_max %v, want ≥ 2000", m["queue_age_ms_max"])
	}
	if logs := e.rie.SettledLogs(); !strings.Contains(logs, `"BatchRecords":10`) || !strings.Contains(logs, `"BatchAMIs":4`) {
		t.Errorf("no EMF batch metrics:\n%s", e.rie.Logs())
	}
}

// A HOUSEKEEPER_MAX_CONCURRENCY the limiters cannot be sized from fails the
// cold start, naming the variable and the value; nothing is tagged.
func TestE2EBadMaxConcurrencyFailsColdStart(t *testing.T) {
	moto := emulator.SharedMoto(t)
	bin, err := emulator.FunctionBinary("tagger")
	if err != nil {
		t.Fatal(err)
	}
	env := append(moto.Env("us-east-1"), "HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+policyYAML, "HOUSEKEEPER_MAX_CONCURRENCY=five")
	rie, err := emulator.StartRIE(t.Context(), emulator.RIEOptions{Bootstrap: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer rie.Stop()
	body, err := rie.Invoke(t.Context(), []byte(`{"Records":[]}`))
	if err == nil && !strings.Contains(string(body), "errorType") {
		t.Fatalf("the function started: %s", body)
	}
	for _, want := range []string{"cold start failed: rate limits", `HOUSEKEEPER_MAX_CONCURRENCY=\"five\"`, "1 to 1000"} {
		if !strings.Contains(rie.SettledLogs(), want) {
			t.Errorf("cold start log lacks %q:\n%s", want, rie.Logs())
		}
	}
}
