package fake_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
)

func entry(id, body, group, dedup string) sqstypes.SendMessageBatchRequestEntry {
	e := sqstypes.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String(body)}
	if group != "" {
		e.MessageGroupId = aws.String(group)
	}
	if dedup != "" {
		e.MessageDeduplicationId = aws.String(dedup)
	}
	return e
}

func TestUnitsQueueFIFO(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	f := fake.NewSQS("111111111111", "eu-west-1")
	f.Now = func() time.Time { return now }
	url := f.CreateQueue("hk-cleanup-units.fifo", false)
	got, err := f.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("hk-cleanup-units.fifo")})
	if err != nil || aws.ToString(got.QueueUrl) != url {
		t.Fatalf("GetQueueUrl: %v, %v", got, err)
	}
	if _, err := f.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("nope")}); !errors.As(err, new(*sqstypes.QueueDoesNotExist)) {
		t.Fatalf("unknown queue: %v", err)
	}
	out, err := f.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []sqstypes.SendMessageBatchRequestEntry{
		entry("a1", "A1", "acct-a/eu-west-1", "d-a1"),
		entry("b1", "B1", "acct-b/eu-west-1", "d-b1"),
		entry("a2", "A2", "acct-a/eu-west-1", "d-a2"),
		entry("nogroup", "X", "", "d-x"),
		entry("nodedup", "Y", "acct-c/eu-west-1", ""),
		func() sqstypes.SendMessageBatchRequestEntry {
			e := entry("delay", "Z", "acct-c/eu-west-1", "d-z")
			e.DelaySeconds = 5
			return e
		}(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]string{}
	for _, e := range out.Failed {
		failed[aws.ToString(e.Id)] = aws.ToString(e.Code)
	}
	if len(out.Successful) != 3 || fmt.Sprint(failed) != "map[delay:InvalidParameterValue nodedup:InvalidParameterValue nogroup:MissingParameter]" {
		t.Fatalf("successful %d, failed %v", len(out.Successful), failed)
	}
	// A retried dispatch inside the window is accepted and not enqueued
	// again; after the window it is a new message.
	again, err := f.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []sqstypes.SendMessageBatchRequestEntry{entry("a1", "A1", "acct-a/eu-west-1", "d-a1")}})
	if err != nil || len(again.Successful) != 1 || aws.ToString(again.Successful[0].MessageId) != aws.ToString(out.Successful[0].MessageId) || f.Waiting(url) != 3 {
		t.Fatalf("duplicate inside the window: %+v, %v, waiting %d", again, err, f.Waiting(url))
	}

	// One message of a group at a time, in order; other groups go on.
	m1, _ := f.Receive(url)
	m2, _ := f.Receive(url)
	if m1.Body != "A1" || m2.Body != "B1" {
		t.Fatalf("received %s, %s", m1.Body, m2.Body)
	}
	if m, ok := f.Receive(url); ok {
		t.Fatalf("A2 was delivered while A1 is in flight: %s", m.Body)
	}
	f.Return(url, m1.MessageID) // a batch item failure: A1 comes back first
	if m, _ := f.Receive(url); m.Body != "A1" || m.Receives != 2 {
		t.Fatalf("after Return: %s (receives %d)", m.Body, m.Receives)
	}
	f.Delete(url, m1.MessageID)
	if m, _ := f.Receive(url); m.Body != "A2" {
		t.Fatalf("after Delete: %s", m.Body)
	}
	now = now.Add(fake.DedupWindow)
	if _, err := f.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []sqstypes.SendMessageBatchRequestEntry{entry("a1", "A1", "acct-a/eu-west-1", "d-a1")}}); err != nil || len(f.Sent(url)) != 4 {
		t.Fatalf("after the window: %v, sent %d", err, len(f.Sent(url)))
	}
}

func TestUnitsQueueBatchLimits(t *testing.T) {
	ctx := context.Background()
	f := fake.NewSQS("111111111111", "eu-west-1")
	url := f.CreateQueue("q.fifo", true)
	many := func(n int, size int) []sqstypes.SendMessageBatchRequestEntry {
		var out []sqstypes.SendMessageBatchRequestEntry
		for i := range n {
			out = append(out, entry(fmt.Sprint("e", i), strings.Repeat("x", size)+fmt.Sprint(i), "g", ""))
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		entries []sqstypes.SendMessageBatchRequestEntry
		want    error
	}{
		{"empty", nil, &sqstypes.EmptyBatchRequest{}},
		{"eleven", many(11, 1), &sqstypes.TooManyEntriesInBatchRequest{}},
		{"repeated id", []sqstypes.SendMessageBatchRequestEntry{entry("a", "1", "g", ""), entry("a", "2", "g", "")}, &sqstypes.BatchEntryIdsNotDistinct{}},
		{"bad id", []sqstypes.SendMessageBatchRequestEntry{entry("a/b", "1", "g", "")}, &sqstypes.InvalidBatchEntryId{}},
		{"over 1 MiB", many(2, 600_000), &sqstypes.BatchRequestTooLong{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: tc.entries})
			if code(err) != code(tc.want) {
				t.Fatalf("got %v, want %T", err, tc.want)
			}
		})
	}
	// Content-based deduplication: the same body twice is one message.
	if _, err := f.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []sqstypes.SendMessageBatchRequestEntry{entry("a", "same", "g", ""), entry("b", "same", "g", "")}}); err != nil || f.Waiting(url) != 1 {
		t.Fatalf("content-based deduplication: %v, waiting %d", err, f.Waiting(url))
	}
	f.FailEntries = []string{"", "InternalError"}
	out, err := f.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []sqstypes.SendMessageBatchRequestEntry{entry("a", "p", "g", ""), entry("b", "q", "g", "")}})
	if err != nil || len(out.Failed) != 1 || aws.ToString(out.Failed[0].Id) != "b" || out.Failed[0].SenderFault {
		t.Fatalf("injected entry failure: %+v, %v", out, err)
	}
}
