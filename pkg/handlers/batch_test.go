package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

// The SQS path of the handlers. The EC2 side is the stateful fake (with a
// throttling decorator); the SQS side is moto where the visibility timeout
// matters (a real queue, real receipt handles), with a recorder in front to
// read the timeouts asked for.

const testQueueARN = "arn:aws:sqs:us-east-1:123456789012:tagger-queue"

func amiID(i int) string { return fmt.Sprintf("ami-%017x", 0xa0+i) }

// record is one SQS message as Lambda's event source mapping delivers it.
type record struct {
	id, receipt, body, queueARN string
	receiveCount                int
}

func sqsPayload(t *testing.T, recs ...record) []byte {
	t.Helper()
	ev := events.SQSEvent{}
	for _, r := range recs {
		if r.receiveCount == 0 {
			r.receiveCount = 1
		}
		if r.queueARN == "" {
			r.queueARN = testQueueARN
		}
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: r.id, ReceiptHandle: r.receipt, Body: r.body,
			Attributes: map[string]string{"ApproximateReceiveCount": strconv.Itoa(r.receiveCount),
				"SentTimestamp": strconv.FormatInt(time.Now().Add(-4*time.Second).UnixMilli(), 10)},
			EventSource: "aws:sqs", EventSourceARN: r.queueARN, AWSRegion: "us-east-1"})
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// createdEvent and availableEvent are the two events of one new AMI.
func createdEvent(t *testing.T, ami string) string {
	return string(fill(t, "valid/cloudtrail-createimage.json", ami))
}

func availableEvent(t *testing.T, ami string) string {
	return string(fill(t, "valid/statechange-available.json", ami))
}

func fill(t *testing.T, name, ami string) []byte {
	t.Helper()
	raw, err := emulator.Fixture(filepath.Join("events", name))
	if err != nil {
		t.Fatal(err)
	}
	return emulator.Fill(raw, map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": "i-0123456789abcdef0"})
}

// throttled wraps the EC2 fake: CreateTags on the images in deny answers
// RequestLimitExceeded, as an exhausted bucket does after the SDK's retries.
type throttled struct {
	*fake.EC2
	deny map[string]bool
}

func (t throttled) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, o ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	for _, id := range in.Resources {
		if t.deny[id] {
			return nil, fake.APIError("RequestLimitExceeded")
		}
	}
	return t.EC2.CreateTags(ctx, in, o...)
}

// fleet is the EC2 fake with n new AMIs of one snapshot each.
func fleet(n int) *fake.EC2 {
	f := fake.NewEC2()
	for i := range n {
		ami, snap := amiID(i), fmt.Sprintf("snap-%017x", 0xa0+i)
		f.Images[ami] = &types.Image{ImageId: aws.String(ami), OwnerId: aws.String("123456789012"),
			State: types.ImageStateAvailable, CreationDate: aws.String("2026-11-28T10:00:00.000Z"),
			BlockDeviceMappings: []types.BlockDeviceMapping{{Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(snap)}}}}
		f.Snapshots[snap] = &types.Snapshot{SnapshotId: aws.String(snap), OwnerId: aws.String("123456789012")}
	}
	return f
}

func batchTagger(ec2 awsapi.TaggerEC2, cfg handlers.BatchConfig) (*handlers.Tagger, *bytes.Buffer) {
	var logs bytes.Buffer
	return handlers.NewTagger(tagger.New(func(string) awsapi.TaggerEC2 { return ec2 }, policy.Default().Tagging),
		logging.New(&logs, "info"), "123456789012").WithBatch(cfg), &logs
}

func invokeBatch(t *testing.T, h interface {
	Invoke(context.Context, []byte) ([]byte, error)
}, ctx context.Context, payload []byte) []string {
	t.Helper()
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("a batch never fails the invocation: %v", err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.BatchItemFailures == nil {
		t.Fatalf("response %s: %v", out, err)
	}
	ids := []string{}
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

// logLines returns the log lines with message msg.
func logLines(t *testing.T, logs *bytes.Buffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func batchLine(t *testing.T, logs *bytes.Buffer, function string) map[string]any {
	t.Helper()
	lines := logLines(t, logs, function+" batch")
	if len(lines) != 1 {
		t.Fatalf("want one batch line, got %d:\n%s", len(lines), logs)
	}
	for _, k := range []string{"records", "amis", "coalesced", "succeeded", "failed", "rejected", "calls", "throttled",
		"limiter_wait_ms", "queue_age_ms_max", "duration_ms"} {
		if _, ok := lines[0][k]; !ok {
			t.Errorf("batch line lacks %q: %v", k, lines[0])
		}
	}
	return lines[0]
}

func counts(m map[string]any, keys ...string) string {
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%v ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}

// Coalescing, on the EC2 fake: the records of one AMI cost one Tag (one
// DescribeImages), made from the CloudTrail record whatever the order, so
// the creator is tagged; duplicates cost nothing more.
func TestBatchCoalesces(t *testing.T) {
	tests := []struct {
		name   string
		bodies func(t *testing.T) []string
		amis   int
		want   string // counts on the batch line
	}{
		{"both events of an AMI, state change first", func(t *testing.T) []string {
			return []string{availableEvent(t, amiID(0)), createdEvent(t, amiID(0))}
		}, 1, "records=2 amis=1 coalesced=1 succeeded=2 failed=0 rejected=0"},
		{"duplicate deliveries", func(t *testing.T) []string {
			return []string{createdEvent(t, amiID(0)), createdEvent(t, amiID(0)), createdEvent(t, amiID(0))}
		}, 1, "records=3 amis=1 coalesced=2 succeeded=3 failed=0 rejected=0"},
		{"two AMIs, both events each", func(t *testing.T) []string {
			return []string{createdEvent(t, amiID(0)), availableEvent(t, amiID(1)), availableEvent(t, amiID(0)), createdEvent(t, amiID(1))}
		}, 2, "records=4 amis=2 coalesced=2 succeeded=4 failed=0 rejected=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fleet(2)
			set, _ := ratelimit.New("tagger", 1)
			var emf bytes.Buffer
			h, logs := batchTagger(f, handlers.BatchConfig{Usage: set.Usage, Metrics: &emf})
			var recs []record
			for i, b := range tt.bodies(t) {
				recs = append(recs, record{id: "m" + strconv.Itoa(i), receipt: "r", body: b})
			}
			if failed := invokeBatch(t, h, context.Background(), sqsPayload(t, recs...)); len(failed) != 0 {
				t.Fatalf("failures %v\n%s", failed, logs)
			}
			if f.Calls["DescribeImages"] != tt.amis {
				t.Errorf("DescribeImages %d, want one per AMI (%d)", f.Calls["DescribeImages"], tt.amis)
			}
			for i := range tt.amis {
				if got := tagsOf(f, amiID(i)); got["ami-housekeeper:created-by"] == "" || got["ami-housekeeper:created-via"] != "CreateImage" {
					t.Errorf("%s: tags %v, want the CloudTrail record's", amiID(i), got)
				}
			}
			line := batchLine(t, logs, "tagger")
			if got := counts(line, "records", "amis", "coalesced", "succeeded", "failed", "rejected"); got != tt.want {
				t.Errorf("batch line %s, want %s", got, tt.want)
			}
			if age, _ := line["queue_age_ms_max"].(float64); age < 3000 {
				t.Errorf("queue age %v ms, want ≥ 4 s", line["queue_age_ms_max"])
			}
			if got := len(logLines(t, logs, "tagger record")); got != tt.amis {
				t.Errorf("%d record lines, want one per AMI", got)
			}
			for _, m := range []string{`"BatchRecords":` + strconv.Itoa(len(recs)), `"BatchAMIs":` + strconv.Itoa(tt.amis), `"BatchFailures":0`, `"QueueAgeMaxMs":`, `"Function":"tagger"`} {
				if !strings.Contains(emf.String(), m) {
					t.Errorf("EMF line lacks %s: %s", m, emf.String())
				}
			}
		})
	}
}

func tagsOf(f *fake.EC2, id string) map[string]string {
	out := map[string]string{}
	for _, tg := range f.Images[id].Tags {
		out[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return out
}

// A payload with "Records" that are not SQS messages (S3, SNS) is refused
// whole and logged; nothing is retried.
func TestBatchRefusesOtherRecords(t *testing.T) {
	h, logs := batchTagger(fleet(1), handlers.BatchConfig{})
	out, err := h.Invoke(context.Background(), []byte(`{"Records":[{"eventSource":"aws:s3","s3":{"object":{"key":"x"}}}]}`))
	if err != nil || !strings.Contains(string(out), `"outcome":"rejected"`) || !strings.Contains(string(out), "Records[0].eventSource") ||
		!strings.Contains(string(out), "not an SQS message") {
		t.Fatalf("%s %v", out, err)
	}
	if !strings.Contains(logs.String(), `"outcome":"rejected"`) {
		t.Errorf("not logged: %s", logs)
	}
}

// recorder sits in front of moto's SQS and records the timeouts asked for.
type recorder struct {
	awsapi.QueueSQS
	mu       sync.Mutex
	timeouts map[string]int32 // receipt handle → timeout
	urls     int
}

func (r *recorder) GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, o ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	r.mu.Lock()
	r.urls++
	r.mu.Unlock()
	return r.QueueSQS.GetQueueUrl(ctx, in, o...)
}

func (r *recorder) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, o ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	r.mu.Lock()
	r.timeouts[aws.ToString(in.ReceiptHandle)] = in.VisibilityTimeout
	r.mu.Unlock()
	return r.QueueSQS.ChangeMessageVisibility(ctx, in, o...)
}

// motoQueue is a real queue in moto with n messages received once (their
// receipt handles are real), and the recorder in front of the client.
type motoQueue struct {
	client   *sqs.Client
	url, arn string
	rec      *recorder
	messages []sqstypes.Message
}

func newMotoQueue(t *testing.T, n int) *motoQueue {
	t.Helper()
	ctx := context.Background()
	moto := emulator.SharedMoto(t)
	cfg, err := moto.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	c := sqs.NewFromConfig(cfg)
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("tagger-queue")})
	if err != nil {
		t.Fatal(err)
	}
	q := &motoQueue{client: c, url: aws.ToString(out.QueueUrl), rec: &recorder{QueueSQS: c, timeouts: map[string]int32{}}}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	q.arn = attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	for i := range n {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: out.QueueUrl, MessageBody: aws.String("m" + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for len(q.messages) < n {
		got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: out.QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 1})
		if err != nil || len(got.Messages) == 0 {
			t.Fatalf("receiving: %v", err)
		}
		q.messages = append(q.messages, got.Messages...)
	}
	return q
}

func (q *motoQueue) queues() *handlers.Queues {
	return handlers.NewQueues(func(string) awsapi.QueueSQS { return q.rec }).WithJitter(func(time.Duration) time.Duration { return 0 })
}

// visible reports how many messages can be received now (then puts them
// back at once).
func (q *motoQueue) visible(t *testing.T) int {
	t.Helper()
	time.Sleep(1100 * time.Millisecond) // past the 1 s visibility of the first receive
	got, err := q.client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(q.url), MaxNumberOfMessages: 10, VisibilityTimeout: 0})
	if err != nil {
		t.Fatal(err)
	}
	return len(got.Messages)
}

// A throttled AMI (CreateTags RequestLimitExceeded after the SDK's retries)
// fails its records only, and each goes back in the queue with the backoff
// of its receive count; a bad record is not a failure (the queue deletes
// it). Against moto SQS with real receipt handles: moto accepts every
// change, and the delayed message is not visible afterwards.
func TestBatchThrottledRecordsGoBackWithBackoff(t *testing.T) {
	for _, tt := range []struct {
		receiveCount int
		want         int32
	}{{1, 15}, {2, 30}, {5, 240}, {20, 300}} {
		t.Run("receive "+strconv.Itoa(tt.receiveCount), func(t *testing.T) {
			q := newMotoQueue(t, 3)
			f := fleet(2)
			h, logs := batchTagger(throttled{EC2: f, deny: map[string]bool{amiID(1): true}}, handlers.BatchConfig{Queues: q.queues()})
			payload := sqsPayload(t,
				record{id: "ok", receipt: aws.ToString(q.messages[0].ReceiptHandle), body: createdEvent(t, amiID(0)), queueARN: q.arn},
				record{id: "hot", receipt: aws.ToString(q.messages[1].ReceiptHandle), body: createdEvent(t, amiID(1)), queueARN: q.arn, receiveCount: tt.receiveCount},
				record{id: "bad", receipt: aws.ToString(q.messages[2].ReceiptHandle), body: "{not json", queueARN: q.arn})
			failed := invokeBatch(t, h, context.Background(), payload)
			if !slices.Equal(failed, []string{"hot"}) {
				t.Fatalf("failures %v, want [hot]\n%s", failed, logs)
			}
			hot := aws.ToString(q.messages[1].ReceiptHandle)
			if got, ok := q.rec.timeouts[hot]; !ok || got != tt.want || len(q.rec.timeouts) != 1 {
				t.Errorf("visibility timeouts %v, want %d s for the throttled record only", q.rec.timeouts, tt.want)
			}
			if strings.Contains(logs.String(), "record not delayed") {
				t.Errorf("moto refused the change: %s", logs)
			}
			// The two not delayed come back after the first receive's 1 s.
			if n := q.visible(t); n != 2 {
				t.Errorf("%d messages visible, want 2 (the throttled one waits)", n)
			}
			line := batchLine(t, logs, "tagger")
			if got := counts(line, "records", "amis", "succeeded", "failed", "rejected"); got != "records=3 amis=2 succeeded=1 failed=1 rejected=1" {
				t.Errorf("batch line %s", got)
			}
		})
	}
}

// The jitter stays within 20 % above the backoff, and the URL is looked up
// once per queue per instance.
func TestQueuesJitterAndURLCache(t *testing.T) {
	q := handlers.NewQueues(nil)
	for n := 1; n <= 12; n++ {
		b := handlers.Backoff(n)
		for range 50 {
			if d := q.VisibilityTimeout(n); d < b || d >= b+b/5 {
				t.Fatalf("receive %d: %v outside [%v, %v)", n, d, b, b+b/5)
			}
		}
	}
	mq := newMotoQueue(t, 2)
	qs := mq.queues()
	for i, m := range mq.messages {
		if err := qs.Delay(context.Background(), recordOf(mq, m, i), 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if mq.rec.urls != 1 || len(mq.rec.timeouts) != 2 {
		t.Errorf("GetQueueUrl %d times, %d changes; want 1 and 2", mq.rec.urls, len(mq.rec.timeouts))
	}
}

func recordOf(q *motoQueue, m sqstypes.Message, i int) amievents.SQSRecord {
	return amievents.SQSRecord{MessageID: "m" + strconv.Itoa(i), ReceiptHandle: aws.ToString(m.ReceiptHandle), QueueARN: q.arn,
		QueueRegion: "us-east-1", QueueAccount: "123456789012", QueueName: "tagger-queue"}
}

// Too close to the deadline nothing starts: every record of work is a
// failure and goes back in the queue; the bad record is still not one. A
// queue that cannot be reached is logged, never fatal.
func TestBatchDeadlineTooClose(t *testing.T) {
	q := newMotoQueue(t, 3)
	f := fleet(2)
	h, logs := batchTagger(f, handlers.BatchConfig{Queues: q.queues()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // < ratelimit.Reserve
	defer cancel()
	payload := sqsPayload(t,
		record{id: "a", receipt: aws.ToString(q.messages[0].ReceiptHandle), body: createdEvent(t, amiID(0)), queueARN: q.arn, receiveCount: 2},
		record{id: "b", receipt: aws.ToString(q.messages[1].ReceiptHandle), body: availableEvent(t, amiID(1)), queueARN: q.arn},
		record{id: "bad", receipt: aws.ToString(q.messages[2].ReceiptHandle), body: `{"source":"aws.s3"}`, queueARN: q.arn},
		record{id: "lost", receipt: "not-a-handle", body: availableEvent(t, amiID(1)), queueARN: "arn:aws:sqs:us-east-1:123456789012:no-such-queue"})
	failed := invokeBatch(t, h, ctx, payload)
	if !slices.Equal(failed, []string{"a", "b", "lost"}) {
		t.Fatalf("failures %v, want [a b lost]\n%s", failed, logs)
	}
	if f.Calls["DescribeImages"] != 0 {
		t.Errorf("work started: %v", f.Calls)
	}
	if got := q.rec.timeouts; got[aws.ToString(q.messages[0].ReceiptHandle)] != 30 || got[aws.ToString(q.messages[1].ReceiptHandle)] != 15 {
		t.Errorf("timeouts %v, want 30 s and 15 s", got)
	}
	if !strings.Contains(logs.String(), "record not delayed") || !strings.Contains(logs.String(), "no-such-queue") {
		t.Errorf("the unreachable queue is not logged: %s", logs)
	}
	if got := counts(batchLine(t, logs, "tagger"), "records", "amis", "coalesced", "failed", "rejected"); got != "records=4 amis=2 coalesced=1 failed=3 rejected=1" {
		t.Errorf("batch line %s", got)
	}
}

// The sharing guard's event path through SQS: a permission change and the
// AMI's state change cost one check (attributed to the caller), which
// revokes as a direct invocation does; a scheduled event in a queue is
// refused (the audit is invoked directly).
func TestSharingBatch(t *testing.T) {
	h, f, logs := sharingHandler(t)
	h.Auditor = func(string) *audit.Auditor { t.Fatal("no audit through a queue"); return nil }
	payload := sqsPayload(t,
		record{id: "state", body: string(sharingEvent(t, "valid/statechange-available.json"))},
		record{id: "change", body: string(sharingEvent(t, "valid/cloudtrail-modifyimageattribute.json"))},
		record{id: "again", body: string(sharingEvent(t, "valid/cloudtrail-modifyimageattribute.json"))},
		record{id: "audit", body: string(sharingEvent(t, "valid/scheduled.json"))})
	failed := invokeBatch(t, h, context.Background(), payload)
	if len(failed) != 0 {
		t.Fatalf("failures %v\n%s", failed, logs)
	}
	if got := f.LaunchPermissions(sharedAMI); len(got) != 0 {
		t.Errorf("still shared: %v", got)
	}
	if f.Calls["DescribeImageAttribute"] > 2 {
		t.Errorf("more than one check: %v", f.Calls)
	}
	var recs []map[string]any
	for _, l := range logLines(t, logs, "sharing record") {
		if l["outcome"] != handlers.OutcomeRejected {
			recs = append(recs, l)
		}
	}
	if len(recs) != 1 || recs[0]["outcome"] != sharing.OutcomeRevoked || !strings.Contains(fmt.Sprint(recs[0]["findings"]), "mallory") {
		t.Errorf("record lines %v", recs)
	}
	if got := counts(batchLine(t, logs, "sharing"), "records", "amis", "coalesced", "succeeded", "rejected"); got != "records=4 amis=1 coalesced=2 succeeded=3 rejected=1" {
		t.Errorf("batch line %s", got)
	}
	if !strings.Contains(logs.String(), "scheduled event is invoked directly") {
		t.Errorf("scheduled record not rejected: %s", logs)
	}
}
