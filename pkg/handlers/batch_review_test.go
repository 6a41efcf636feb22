package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

// Regressions of the review of the SQS path: attribution, region, the
// limiter's refusals, which record stands for a group, partial results.

// idsOf is a record line's message_ids.
func idsOf(line map[string]any) []string {
	var out []string
	l, _ := line["message_ids"].([]any)
	for _, v := range l {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// lineFor returns the one record line listing exactly ids.
func lineFor(t *testing.T, lines []map[string]any, ids ...string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, l := range lines {
		if slices.Equal(idsOf(l), ids) {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d record lines for %v, want 1: %v", len(found), ids, lines)
	}
	return found[0]
}

// A harmless change by alice and mallory's public share of the same AMI in
// one batch are two checks, never one credited to whoever came first: the
// share is checked first (its request added grants), so the finding names
// mallory, and alice's check finds nothing left. Duplicates of mallory's
// event still coalesce.
func TestSharingBatchCreditsTheCallerWhoShared(t *testing.T) {
	const aliceARN, malloryARN = "assumed-role/developer/alice", "assumed-role/developer/mallory"
	tests := []struct {
		name  string
		order []string
		want  string // counts on the batch line
	}{
		{"alice first", []string{"alice", "mallory"}, "records=2 amis=1 coalesced=0 succeeded=2 failed=0"},
		{"mallory first", []string{"mallory", "alice"}, "records=2 amis=1 coalesced=0 succeeded=2 failed=0"},
		{"alice first, mallory's event twice", []string{"alice", "mallory", "mallory-again"}, "records=3 amis=1 coalesced=1 succeeded=3 failed=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, f, logs := sharingHandler(t)
			body := map[string]string{
				// The fixture's caller is mallory; alice changes the description.
				"alice":         strings.ReplaceAll(string(sharingEvent(t, "valid/cloudtrail-modifyimageattribute-description.json")), "mallory", "alice"),
				"mallory":       string(sharingEvent(t, "valid/cloudtrail-modifyimageattribute.json")),
				"mallory-again": string(sharingEvent(t, "valid/cloudtrail-modifyimageattribute.json")),
			}
			var recs []record
			for _, id := range tt.order {
				recs = append(recs, record{id: id, body: body[id]})
			}
			if failed := invokeBatch(t, h, context.Background(), sqsPayload(t, recs...)); len(failed) != 0 {
				t.Fatalf("failures %v\n%s", failed, logs)
			}
			if got := f.LaunchPermissions(sharedAMI); len(got) != 0 {
				t.Errorf("still shared: %v", got)
			}
			lines := logLines(t, logs, "sharing record")
			malloryIDs := []string{"mallory"}
			if slices.Contains(tt.order, "mallory-again") {
				malloryIDs = append(malloryIDs, "mallory-again")
			}
			m := lineFor(t, lines, malloryIDs...)
			if m["outcome"] != sharing.OutcomeRevoked || !strings.Contains(fmt.Sprint(m["findings"]), malloryARN) {
				t.Errorf("mallory's record: %v", m)
			}
			a := lineFor(t, lines, "alice")
			if _, ok := a["findings"]; ok || a["outcome"] == sharing.OutcomeRevoked {
				t.Errorf("alice's record credits her with mallory's share: %v", a)
			}
			if strings.Contains(fmt.Sprint(m["findings"]), aliceARN) {
				t.Errorf("a finding names alice: %v", m["findings"])
			}
			// Each record line names its own caller.
			if !strings.Contains(fmt.Sprint(m["caller"]), "mallory") || !strings.Contains(fmt.Sprint(a["caller"]), "alice") {
				t.Errorf("record lines' callers: mallory's %v, alice's %v", m["caller"], a["caller"])
			}
			if got := counts(batchLine(t, logs, "sharing"), "records", "amis", "coalesced", "succeeded", "failed"); got != tt.want {
				t.Errorf("batch line %s, want %s", got, tt.want)
			}
		})
	}
}

// inRegion moves an event to another region (envelope, CloudTrail region,
// ARNs).
func inRegion(body, region string) string { return strings.ReplaceAll(body, "us-east-1", region) }

// An event of another region than its queue's is bad input: rejected with
// both regions named, not retried (IAM would refuse it on every receive
// until the DLQ). Without a queue ARN the function's own region counts. A
// direct invocation keeps working on it, as before.
func TestBatchRejectsOtherRegions(t *testing.T) {
	t.Setenv("AWS_REGION", "us-west-2")
	f := fleet(3)
	h, logs := batchTagger(f, handlers.BatchConfig{})
	payload := sqsPayload(t,
		record{id: "eu", body: inRegion(createdEvent(t, amiID(0)), "eu-west-1")},
		record{id: "home", body: createdEvent(t, amiID(1))},
		record{id: "no-arn", body: createdEvent(t, amiID(2)), queueARN: "not-an-arn"})
	if failed := invokeBatch(t, h, context.Background(), payload); len(failed) != 0 {
		t.Fatalf("bad input retried: %v\n%s", failed, logs)
	}
	reasons := map[string]string{}
	for _, l := range logLines(t, logs, "tagger record") {
		if l["outcome"] == handlers.OutcomeRejected {
			reasons[fmt.Sprint(l["message_id"])] = fmt.Sprint(l["reason"])
		}
	}
	for id, regions := range map[string][]string{"eu": {`"eu-west-1"`, `"us-east-1"`}, "no-arn": {`"us-east-1"`, `"us-west-2"`}} {
		for _, r := range regions {
			if !strings.Contains(reasons[id], r) {
				t.Errorf("%s: reason %q does not name %s", id, reasons[id], r)
			}
		}
	}
	if len(tagsOf(f, amiID(0))) != 0 || len(tagsOf(f, amiID(2))) != 0 || len(tagsOf(f, amiID(1))) == 0 || f.Calls["DescribeImages"] != 1 {
		t.Errorf("worked on the wrong records: calls %v", f.Calls)
	}
	if got := counts(batchLine(t, logs, "tagger"), "records", "succeeded", "failed", "rejected"); got != "records=3 succeeded=1 failed=0 rejected=2" {
		t.Errorf("batch line %s", got)
	}
	resp, err := h.Handle(context.Background(), []byte(inRegion(createdEvent(t, amiID(0)), "eu-west-1")))
	if err != nil || resp.Outcome == handlers.OutcomeRejected {
		t.Errorf("direct invocation: %+v %v", resp, err)
	}
}

// noTime wraps the EC2 fake: CreateTags on the images in deny is refused by
// the client-side limiter, as the SDK returns it (no time left before the
// invocation's deadline less the reserve).
type noTime struct {
	*fake.EC2
	deny map[string]bool
}

func (n noTime) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, o ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	for _, id := range in.Resources {
		if n.deny[id] {
			return nil, &smithy.OperationError{ServiceID: "EC2", OperationName: "CreateTags",
				Err: &ratelimit.NoTimeError{Action: "CreateTags", Reason: "rate: Wait(n=1) would exceed context deadline"}}
		}
	}
	return n.EC2.CreateTags(ctx, in, o...)
}

// A call the limiter had no time for sends its record back to the queue
// with error_kind "throttled", not "permanent".
func TestBatchNoTimeIsThrottled(t *testing.T) {
	f := fleet(2)
	h, logs := batchTagger(noTime{EC2: f, deny: map[string]bool{amiID(1): true}}, handlers.BatchConfig{})
	failed := invokeBatch(t, h, context.Background(), sqsPayload(t,
		record{id: "ok", body: createdEvent(t, amiID(0))}, record{id: "late", body: createdEvent(t, amiID(1))}))
	if !slices.Equal(failed, []string{"late"}) {
		t.Fatalf("failures %v, want [late]\n%s", failed, logs)
	}
	if l := lineFor(t, logLines(t, logs, "tagger record"), "late"); l["error_kind"] != "throttled" || l["outcome"] != handlers.OutcomeError {
		t.Errorf("record line %v, want error_kind throttled", l)
	}
}

// Only an event the running function acts on stands for a group: a
// permission change (the guard's) beside the AMI's available state change
// in the tagger's batch leaves the tagging to the state change, and a
// CreateImage (the tagger's) beside it in the guard's batch leaves the check
// to it. The other record is ignored on its own line.
func TestBatchRepresentativeIsActedOn(t *testing.T) {
	t.Run("tagger", func(t *testing.T) {
		f := fleet(1)
		h, logs := batchTagger(f, handlers.BatchConfig{})
		modify := strings.ReplaceAll(string(sharingEvent(t, "valid/cloudtrail-modifyimageattribute.json")), sharedAMI, amiID(0))
		if failed := invokeBatch(t, h, context.Background(), sqsPayload(t,
			record{id: "modify", body: modify}, record{id: "state", body: availableEvent(t, amiID(0))})); len(failed) != 0 {
			t.Fatalf("failures %v\n%s", failed, logs)
		}
		if len(tagsOf(f, amiID(0))) == 0 {
			t.Errorf("the AMI is not tagged:\n%s", logs)
		}
		lines := logLines(t, logs, "tagger record")
		if l := lineFor(t, lines, "modify"); l["outcome"] != handlers.OutcomeIgnored {
			t.Errorf("modify: %v", l)
		}
		if l := lineFor(t, lines, "state"); l["outcome"] != string(tagger.OutcomeTagged) {
			t.Errorf("state: %v", l)
		}
		if got := counts(batchLine(t, logs, "tagger"), "records", "amis", "coalesced", "succeeded"); got != "records=2 amis=1 coalesced=0 succeeded=2" {
			t.Errorf("batch line %s", got)
		}
	})
	t.Run("sharing", func(t *testing.T) {
		h, f, logs := sharingHandler(t)
		if failed := invokeBatch(t, h, context.Background(), sqsPayload(t,
			record{id: "created", body: string(sharingEvent(t, "valid/cloudtrail-createimage.json"))},
			record{id: "state", body: string(sharingEvent(t, "valid/statechange-available.json"))})); len(failed) != 0 {
			t.Fatalf("failures %v\n%s", failed, logs)
		}
		if got := f.LaunchPermissions(sharedAMI); len(got) != 0 {
			t.Errorf("the new AMI was not checked, still shared: %v\n%s", got, logs)
		}
		if l := lineFor(t, logLines(t, logs, "sharing record"), "created"); l["outcome"] != handlers.OutcomeIgnored {
			t.Errorf("created: %v", l)
		}
	})
}

// visibility is an SQS stand-in that records the timeouts asked for.
type visibility struct {
	mu       sync.Mutex
	timeouts map[string]int32 // receipt handle → seconds
}

func (v *visibility) GetQueueUrl(_ context.Context, in *sqs.GetQueueUrlInput, _ ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	return &sqs.GetQueueUrlOutput{QueueUrl: aws.String("https://sqs.us-east-1.amazonaws.com/123456789012/" + aws.ToString(in.QueueName))}, nil
}

func (v *visibility) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.timeouts[aws.ToString(in.ReceiptHandle)] = in.VisibilityTimeout
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

// When the CloudTrail record's work is partial (the AMI still pending, its
// snapshots not listed), the available state change merged into it is the
// event that would finish the job: it goes back to the queue with the
// backoff, and its line says why. Alone, the CloudTrail record succeeds as
// before.
func TestBatchPartialRetriesTheStateChange(t *testing.T) {
	tests := []struct {
		name   string
		recs   []string // ids: ct (CloudTrail), av, av2 (available)
		failed []string
	}{
		{"CloudTrail and state change", []string{"ct", "av"}, []string{"av"}},
		{"state change first, delivered twice", []string{"av", "ct", "av2"}, []string{"av", "av2"}},
		{"CloudTrail alone", []string{"ct"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ami := amiID(0)
			f := fake.NewEC2()
			f.Images[ami] = &types.Image{ImageId: aws.String(ami), OwnerId: aws.String("123456789012"), State: types.ImageStatePending,
				CreationDate:        aws.String("2026-11-28T10:00:00.000Z"),
				BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{}}}}
			pol := policy.Default().Tagging
			pol.SnapshotWait.Duration = 0
			var logs bytes.Buffer
			q := &visibility{timeouts: map[string]int32{}}
			h := handlers.NewTagger(tagger.New(func(string) awsapi.TaggerEC2 { return f }, pol), logging.New(&logs, "info"), "123456789012").
				WithBatch(handlers.BatchConfig{Queues: handlers.NewQueues(func(string) awsapi.QueueSQS { return q }).
					WithJitter(func(time.Duration) time.Duration { return 0 })})
			var recs []record
			for _, id := range tt.recs {
				b := createdEvent(t, ami)
				if id != "ct" {
					b = availableEvent(t, ami)
				}
				recs = append(recs, record{id: id, receipt: "rh-" + id, body: b})
			}
			failed := invokeBatch(t, h, context.Background(), sqsPayload(t, recs...))
			if !slices.Equal(failed, tt.failed) {
				t.Fatalf("failures %v, want %v\n%s", failed, tt.failed, logs.String())
			}
			if tagsOf(f, ami)["ami-housekeeper:created-by"] == "" {
				t.Errorf("the pending AMI is not tagged from CloudTrail: %v", tagsOf(f, ami))
			}
			if len(q.timeouts) != len(tt.failed) {
				t.Errorf("timeouts %v, want one per failure", q.timeouts)
			}
			for _, id := range tt.failed {
				if q.timeouts["rh-"+id] != 15 {
					t.Errorf("%s: timeout %d s, want the first backoff, 15 s", id, q.timeouts["rh-"+id])
				}
			}
			if len(tt.failed) == 0 {
				return
			}
			l := lineFor(t, logLines(t, &logs, "tagger record"), tt.failed...)
			if l["outcome"] != string(tagger.OutcomePartial) || !strings.Contains(fmt.Sprint(l["reason"]), "goes back to the queue") {
				t.Errorf("state change line %v", l)
			}
		})
	}
}
