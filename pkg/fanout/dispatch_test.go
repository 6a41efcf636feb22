package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// flakySQS passes calls to moto, failing the entries of the units fail
// names (unit id → how many more times), and counts the batch calls.
type flakySQS struct {
	awsapi.UnitsSQS
	mu      sync.Mutex
	fail    map[string]int
	batches []int
}

func (f *flakySQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.mu.Lock()
	f.batches = append(f.batches, len(in.Entries))
	pass := *in
	pass.Entries = nil
	var failed []sqstypes.BatchResultErrorEntry
	for _, e := range in.Entries {
		u, err := fanout.ParseUnit([]byte(aws.ToString(e.MessageBody)))
		if err != nil {
			f.mu.Unlock()
			return nil, fmt.Errorf("the dispatcher sent a unit ParseUnit refuses: %w", err)
		}
		if f.fail[u.ID()] > 0 {
			f.fail[u.ID()]--
			failed = append(failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), Message: aws.String("try again"), SenderFault: false})
			continue
		}
		pass.Entries = append(pass.Entries, e)
	}
	f.mu.Unlock()
	out := &sqs.SendMessageBatchOutput{}
	if len(pass.Entries) > 0 {
		var err error
		if out, err = f.UnitsSQS.SendMessageBatch(ctx, &pass, optFns...); err != nil {
			return nil, err
		}
	}
	out.Failed = append(out.Failed, failed...)
	return out, nil
}

func (w *world) dispatcher(dir *org.Directory, pub *publisher) (*fanout.Dispatcher, *flakySQS) {
	q := &flakySQS{UnitsSQS: w.sqs, fail: map[string]int{}}
	return &fanout.Dispatcher{Directory: staticDirectory(dir), Queues: map[string]string{fanout.JobCleanup: testQueue}, SQS: q,
		Ledger: w.ledger, Publish: pub.Publish, Log: w.log, Now: func() time.Time { return sweepTime.Add(5 * time.Second) },
		SendBackoff: time.Millisecond}, q
}

var cleanupRequest = fanout.DispatchRequest{Job: fanout.JobCleanup, Time: sweepTime}

func TestDispatchSendsOneUnitPerAccountAndRegion(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	d, q := w.dispatcher(directory(12), &publisher{})
	res, err := d.Dispatch(ctx, cleanupRequest)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sweep != testSweep || res.Units != 24 || res.Sent != 24 || res.Expected != 24 || res.Resumed || res.Skipped["999999999999"] == "" {
		t.Fatalf("DispatchResult = %+v", res)
	}
	if fmt.Sprint(q.batches) != "[10 10 4]" {
		t.Fatalf("SendMessageBatch entries per call = %v, want [10 10 4]", q.batches)
	}
	msgs := w.receiveAll(t, false)
	if len(msgs) != 24 {
		t.Fatalf("queue holds %d units, want 24", len(msgs))
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		u, err := fanout.ParseUnit([]byte(aws.ToString(m.Body)))
		if err != nil {
			t.Fatal(err)
		}
		if seen[u.ID()] {
			t.Fatalf("unit %s sent twice", u.ID())
		}
		seen[u.ID()] = true
		if u.Sweep != testSweep || !u.Dispatched.Equal(sweepTime.Add(5*time.Second)) || !strings.HasPrefix(u.OU, "ou-ab12-") {
			t.Fatalf("unit %+v", u)
		}
		if g := m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]; g != u.Account+"/"+u.Region {
			t.Fatalf("unit %s in message group %q", u.ID(), g)
		}
		if id := m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageDeduplicationId)]; id != fanout.DeduplicationID(u) {
			t.Fatalf("unit %s deduplication id %q", u.ID(), id)
		}
	}
	m, found, err := w.ledger.Meta(ctx, testSweep)
	if err != nil || !found || m.Expected != 24 || m.Done != 0 || m.Skipped["999999999999"] != "status SUSPENDED" {
		t.Fatalf("meta = %+v, %v, %v", m, found, err)
	}
	logs := w.logs.String()
	for _, want := range []string{`"msg":"dispatch"`, `"sweep":"cleanup/2026-11-29T03:00:00Z"`, `"units":24`, `"sent":24`, `"outcome":"dispatched"`, `"skipped":1`} {
		if !strings.Contains(logs, want) {
			t.Errorf("dispatch log lacks %s:\n%s", want, logs)
		}
	}
}

func TestDispatchRetriedSendsNoDuplicateAndKeepsTheMeta(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	d, _ := w.dispatcher(directory(5), &publisher{})
	if _, err := d.Dispatch(ctx, cleanupRequest); err != nil {
		t.Fatal(err)
	}
	// Retried at once (the function timed out after sending): the FIFO
	// queue drops the copies.
	res, err := d.Dispatch(ctx, cleanupRequest)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Expected != 10 {
		t.Fatalf("retried DispatchResult = %+v; want resumed, expected 10", res)
	}
	if n := w.depth(t); n != 10 {
		t.Fatalf("queue holds %d units after a retried dispatch, want 10", n)
	}
	// Two units are worked and recorded; a later retry does not send them
	// again and does not reset the count.
	msgs := w.receiveAll(t, true)
	for _, m := range msgs[:2] {
		u, _ := fanout.ParseUnit([]byte(aws.ToString(m.Body)))
		if _, err := w.ledger.Record(ctx, fanout.UnitResult{Unit: u, Status: fanout.StatusDone}); err != nil {
			t.Fatal(err)
		}
	}
	res, err = d.Dispatch(ctx, cleanupRequest)
	if err != nil {
		t.Fatal(err)
	}
	if res.AlreadyDone != 2 || res.Sent != 8 {
		t.Fatalf("third DispatchResult = %+v; want 2 already done, 8 sent", res)
	}
	m, _, err := w.ledger.Meta(ctx, testSweep)
	if err != nil || m.Done != 2 || m.Expected != 10 {
		t.Fatalf("meta after retries = %+v (%v); want done 2 of 10", m, err)
	}
	for _, msg := range w.receiveAll(t, false) {
		u, _ := fanout.ParseUnit([]byte(aws.ToString(msg.Body)))
		if done, _ := w.ledger.Done(ctx, testSweep, u.ID()); done {
			t.Fatalf("a retried dispatch sent unit %s, already done", u.ID())
		}
	}
}

func TestDispatchWithoutTargetsPublishesAtOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	pub := &publisher{}
	dir := directory(0)
	d, q := w.dispatcher(dir, pub)
	res, err := d.Dispatch(ctx, cleanupRequest)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Summarized || res.Units != 0 || len(q.batches) != 0 {
		t.Fatalf("DispatchResult = %+v, %d sends; want summarized, nothing sent", res, len(q.batches))
	}
	if pub.count() != 1 {
		t.Fatalf("%d summaries published, want 1", pub.count())
	}
	s := pub.sent[0]
	if !s.Complete || s.Expected != 0 || len(s.Skipped) != 1 || s.Skipped[0].Account != "999999999999" {
		t.Fatalf("summary = %+v", s)
	}
	if res, err := d.Dispatch(ctx, cleanupRequest); err != nil || res.Summarized || pub.count() != 1 {
		t.Fatalf("retried dispatch: %+v, %v, %d summaries; want none more", res, err, pub.count())
	}
}

func TestDispatchResendsFailedEntriesOnly(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	d, q := w.dispatcher(directory(5), &publisher{})
	flaky := fanout.Unit{Job: fanout.JobCleanup, Account: "100000000001", Region: "us-east-1"}.ID()
	broken := fanout.Unit{Job: fanout.JobCleanup, Account: "100000000003", Region: "eu-west-1"}.ID()
	q.fail[flaky] = 1
	q.fail[broken] = 100
	res, err := d.Dispatch(ctx, cleanupRequest)
	var ue *fanout.UnsentError
	if !errors.As(err, &ue) {
		t.Fatalf("Dispatch error = %v, want *UnsentError", err)
	}
	if len(ue.Units) != 1 || ue.Units[broken] == "" || !strings.Contains(err.Error(), broken) || !strings.Contains(err.Error(), "InternalError") {
		t.Fatalf("UnsentError = %v; want %s only, with its reason", err, broken)
	}
	if res.Sent != 9 {
		t.Fatalf("sent %d, want 9", res.Sent)
	}
	// One batch of 10, then the two failed entries, then the broken one
	// until the attempts run out.
	if fmt.Sprint(q.batches) != "[10 2 1]" {
		t.Fatalf("SendMessageBatch entries per call = %v, want [10 2 1]", q.batches)
	}
	if n := w.depth(t); n != 9 {
		t.Fatalf("queue holds %d units, want 9", n)
	}
	if !strings.Contains(w.logs.String(), `"outcome":"error"`) {
		t.Fatalf("no error line logged:\n%s", w.logs.String())
	}
	// The retried dispatch sends the missing unit, and only it reaches the
	// queue anew.
	q.fail[broken] = 0
	if _, err := d.Dispatch(ctx, cleanupRequest); err != nil {
		t.Fatal(err)
	}
	if n := w.depth(t); n != 10 {
		t.Fatalf("queue holds %d units after the retry, want 10", n)
	}
}

func TestDispatchRefusals(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	d, q := w.dispatcher(directory(2), &publisher{})
	d.Directory = func(context.Context) (*org.Directory, error) {
		return nil, errors.New("AccessDeniedException: ListAccounts")
	}
	if _, err := d.Dispatch(ctx, cleanupRequest); err == nil || !strings.Contains(err.Error(), "reading the organization") {
		t.Fatalf("Dispatch with an unreadable organization = %v", err)
	}
	if _, err := d.Dispatch(ctx, fanout.DispatchRequest{Job: fanout.JobSharingAudit, Time: sweepTime}); err == nil || !strings.Contains(err.Error(), "no units queue") {
		t.Fatalf("Dispatch of a job without a queue = %v", err)
	}
	if len(q.batches) != 0 {
		t.Fatalf("%d sends after refusals", len(q.batches))
	}
	if _, found, _ := w.ledger.Meta(ctx, testSweep); found {
		t.Fatal("a refused dispatch began the sweep")
	}
}
