package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

// These tests use the stateful EC2 fake: they check the handler's contract
// (what is logged, what is returned to Lambda), not the AWS wire path.

func setup(t *testing.T, account string) (*handlers.Tagger, *fake.EC2, *bytes.Buffer) {
	f := fake.NewEC2()
	f.Images["ami-0123456789abcdef0"] = &types.Image{ImageId: aws.String("ami-0123456789abcdef0"), OwnerId: aws.String("123456789012"),
		State: types.ImageStateAvailable, CreationDate: aws.String("2026-11-28T10:00:00.000Z"),
		BlockDeviceMappings: []types.BlockDeviceMapping{{Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-1")}}}}
	f.Snapshots["snap-1"] = &types.Snapshot{SnapshotId: aws.String("snap-1"), OwnerId: aws.String("123456789012")}
	var logs bytes.Buffer
	h := handlers.NewTagger(tagger.New(func(string) awsapi.TaggerEC2 { return f }, policy.Default().Tagging), logging.New(&logs, "info"), account)
	return h, f, &logs
}

func event(t *testing.T, name string) []byte {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return emulator.Fill(raw, map[string]string{"IMAGE_ID": "ami-0123456789abcdef0", "INSTANCE_ID": "i-0123456789abcdef0"})
}

func summary(t *testing.T, logs *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one log line per invocation, got %d:\n%s", len(lines), logs)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"image_id", "snapshot_ids", "event", "outcome"} {
		if _, ok := m[k]; !ok {
			t.Errorf("log line lacks stable key %q: %s", k, lines[0])
		}
	}
	return m
}

func TestHandlerLogsOneSummaryLine(t *testing.T) {
	h, f, logs := setup(t, "123456789012")
	out, err := h.Invoke(context.Background(), event(t, "valid/cloudtrail-createimage.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := summary(t, logs)
	if m["outcome"] != "tagged" || m["event"] != "CreateImage" || m["image_id"] != "ami-0123456789abcdef0" || m["level"] != "INFO" {
		t.Errorf("summary = %v", m)
	}
	if !bytes.Contains(out, []byte(`"outcome":"tagged"`)) || f.Calls["CreateTags"] != 1 {
		t.Errorf("response %s, CreateTags %d", out, f.Calls["CreateTags"])
	}
}

func TestHandlerAccountFromFunctionARN(t *testing.T) {
	h, f, logs := setup(t, "")
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{
		InvokedFunctionArn: "arn:aws:lambda:us-east-1:210987654321:function:tagger"})
	if _, err := h.Invoke(ctx, event(t, "valid/cloudtrail-createimage.json")); err != nil {
		t.Fatal(err)
	}
	m := summary(t, logs)
	if m["outcome"] != "rejected" || !strings.Contains(m["reason"].(string), "210987654321") || m["level"] != "ERROR" {
		t.Errorf("summary = %v", m)
	}
	if len(f.Calls) != 0 {
		t.Errorf("made AWS calls for an event from another account: %v", f.Calls)
	}
}

func TestHandlerReturnsErrorOnlyForRetryableFailures(t *testing.T) {
	h, f, logs := setup(t, "123456789012")
	f.Errors["DescribeImages"] = []error{fake.APIError("RequestLimitExceeded")}
	if _, err := h.Invoke(context.Background(), event(t, "valid/statechange-available.json")); err == nil {
		t.Fatal("a throttled call must surface so Lambda retries the event")
	}
	m := summary(t, logs)
	if m["outcome"] != "error" || m["error_kind"] != "throttled" {
		t.Errorf("summary = %v", m)
	}
}

func TestHandlerIgnoresOtherStates(t *testing.T) {
	h, f, logs := setup(t, "123456789012")
	raw := bytes.Replace(event(t, "valid/statechange-available.json"), []byte(`"State": "available"`), []byte(`"State": "deregistered"`), 1)
	if _, err := h.Invoke(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	if m := summary(t, logs); m["outcome"] != "ignored" || len(f.Calls) != 0 {
		t.Errorf("summary = %v, calls %v", m, f.Calls)
	}
}

// TestHandlerForgedCreator: the caller put the tagger's created-by on the
// new AMI through CreateImage's TagSpecifications. The CloudTrail record's
// identity replaces it, and the summary line says what was replaced and that
// the creating call set it.
func TestHandlerForgedCreator(t *testing.T) {
	h, f, logs := setup(t, "123456789012")
	forged := "arn:aws:iam::123456789012:user/ceo"
	f.Images["ami-0123456789abcdef0"].Tags = []types.Tag{{Key: aws.String("ami-housekeeper:created-by"), Value: aws.String(forged)}}
	raw := bytes.Replace(event(t, "valid/cloudtrail-createimage.json"),
		[]byte(`"key": "team"`), []byte(`"key": "ami-housekeeper:created-by"`), 1)
	raw = bytes.Replace(raw, []byte(`"value": "web"`), []byte(`"value": "`+forged+`"`), 1)
	if _, err := h.Invoke(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	want := "arn:aws:sts::123456789012:assumed-role/image-builder/packer-build-42"
	if got := f.Tags("ami-0123456789abcdef0")["ami-housekeeper:created-by"]; got != want {
		t.Errorf("created-by = %q, want %q from CloudTrail", got, want)
	}
	m := summary(t, logs)
	replaced, _ := m["replaced"].([]any)
	if len(replaced) != 1 {
		t.Fatalf("summary lacks the replacement: %v", m)
	}
	r := replaced[0].(map[string]any)
	if r["was"] != forged || r["now"] != want || !strings.Contains(r["reason"].(string), "TagSpecifications") {
		t.Errorf("replacement = %v", r)
	}
}

// TestHandlerStateChangeReportsUnverifiedCreator: with no identity in the
// event, a created-by already present is neither written nor vouched for.
func TestHandlerStateChangeReportsUnverifiedCreator(t *testing.T) {
	h, f, logs := setup(t, "123456789012")
	f.Images["ami-0123456789abcdef0"].Tags = []types.Tag{{Key: aws.String("ami-housekeeper:created-by"), Value: aws.String("arn:aws:iam::123456789012:user/ceo")}}
	if _, err := h.Invoke(context.Background(), event(t, "valid/statechange-available.json")); err != nil {
		t.Fatal(err)
	}
	m := summary(t, logs)
	unverified, _ := m["unverified"].([]any)
	if len(unverified) != 1 || unverified[0].(map[string]any)["key"] != "ami-housekeeper:created-by" {
		t.Errorf("summary = %v", m)
	}
}
