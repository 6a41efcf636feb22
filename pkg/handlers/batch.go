package handlers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emf"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
)

// BatchConfig is what the SQS path needs besides the per-event handler.
// Its parts are built once per instance (main.go).
type BatchConfig struct {
	// Queues puts failed records back in their queue with a backoff (nil:
	// they come back after the queue's own visibility timeout).
	Queues *Queues
	// Usage returns the instance's call counters (nil: calls not reported).
	Usage func() ratelimit.Usage
	// Metrics receives the batch's EMF line (nil: none).
	Metrics io.Writer
	// Reserve is the end of the invocation left to answer and to move the
	// failed records back: no record starts in it (0: ratelimit.Reserve).
	Reserve time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Reasons of batch item failures and rejections on the SQS path.
const (
	reasonNotStarted = "not started: the invocation's deadline is too close; back in the queue"
	reasonScheduled  = "a scheduled event is invoked directly, never through a queue"
)

// workCutoff is kept free at the very end of an invocation, even for work
// already started, to set the failed records' visibility and answer.
const workCutoff = time.Second

// processFunc is a function's per-event path: it does the work one event
// names, logs its line, and returns its outcome; an error means the work is
// not done and every record of it goes back to the queue.
type processFunc func(ctx context.Context, ev amievents.Event, messageIDs []string) (outcome string, err error)

// batchWork is one piece of work: the records of one (account, region,
// resource), and the event that stands for them all.
type batchWork struct {
	key     string
	event   amievents.Event
	records []int // indexes into the batch
}

// BatchSummary is the batch line's counts, in records: Records = Succeeded
// + Failed + Rejected; AMIs counts distinct pieces of work, Coalesced the
// records they saved.
type BatchSummary struct {
	Records   int `json:"records"`
	AMIs      int `json:"amis"`
	Coalesced int `json:"coalesced"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Rejected  int `json:"rejected"`
}

// batch is one SQS batch being handled.
type batch struct {
	function string
	log      *slog.Logger
	cfg      BatchConfig
	account  string // the deployment's account ("" = any)
	process  processFunc
}

// resourceOf is what an event asks work on: the AMI, or the snapshot of a
// snapshot permission change.
func resourceOf(ev amievents.Event) string {
	if t, ok := ev.(amievents.SharingTrigger); ok {
		return t.Resource()
	}
	return ev.Meta().ImageID
}

// rank orders the events of one resource: the one that stands for all is a
// CloudTrail record (it names the caller; the tagger's tags from it are a
// superset of the state change's), then an "available" state change.
func rank(ev amievents.Event) int {
	switch e := ev.(type) {
	case *amievents.ImageCreated, amievents.SharingTrigger:
		return 2
	case *amievents.ImageStateChanged:
		if e.State == amievents.StateAvailable {
			return 1
		}
	}
	return 0
}

func (b *batch) now() time.Time {
	if b.cfg.Now != nil {
		return b.cfg.Now()
	}
	return time.Now()
}

// run handles the batch: it parses and vets every record, coalesces them
// into pieces of work, runs those concurrently, puts failed records back in
// the queue, and answers with exactly the records to retry. Bad input is
// never a failure: the queue deletes it.
func (b *batch) run(ctx context.Context, recs []amievents.SQSRecord) events.SQSEventResponse {
	start := b.now()
	var before ratelimit.Usage
	if b.cfg.Usage != nil {
		before = b.cfg.Usage()
	}
	sum := BatchSummary{Records: len(recs)}
	var queueAge time.Duration
	works := map[string]*batchWork{}
	var order []*batchWork
	for i, rec := range recs {
		if !rec.SentAt.IsZero() {
			queueAge = max(queueAge, start.Sub(rec.SentAt))
		}
		ev, reason := b.vet(ctx, rec)
		if reason != "" {
			sum.Rejected++
			b.log.ErrorContext(ctx, b.function+" record", slog.String(logging.KeyFunction, b.function),
				slog.String(logging.KeyMessageID, rec.MessageID), slog.String(logging.KeyOutcome, OutcomeRejected),
				slog.String(logging.KeyReason, reason))
			continue
		}
		m := ev.Meta()
		key := m.Account + "/" + m.Region + "/" + resourceOf(ev)
		w, ok := works[key]
		if !ok {
			w = &batchWork{key: key, event: ev}
			works[key] = w
			order = append(order, w)
		} else if rank(ev) > rank(w.event) {
			w.event = ev
		}
		w.records = append(w.records, i)
	}
	sum.AMIs = len(order)
	sum.Coalesced = len(recs) - sum.Rejected - len(order)

	failed := b.work(ctx, recs, order)
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, i := range failed {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: recs[i].MessageID})
	}
	sum.Failed = len(failed)
	sum.Succeeded = sum.Records - sum.Rejected - sum.Failed
	b.delay(ctx, recs, failed)

	var used ratelimit.Usage
	if b.cfg.Usage != nil {
		used = b.cfg.Usage().Since(before)
	}
	b.report(ctx, sum, used, queueAge, b.now().Sub(start))
	return resp
}

// vet parses a record's body and returns its event, or why it is rejected.
func (b *batch) vet(ctx context.Context, rec amievents.SQSRecord) (amievents.Event, string) {
	ev, err := amievents.Parse(rec.Body)
	if err != nil {
		return nil, err.Error()
	}
	m := ev.Meta()
	if want := expectedAccount(ctx, b.account); want != "" && m.Account != want {
		return nil, fmt.Sprintf("invalid event: account: %q is not this deployment's account %q", m.Account, want)
	}
	if _, ok := ev.(*amievents.Scheduled); ok {
		return nil, reasonScheduled
	}
	return ev, ""
}

// work runs every piece of work concurrently (a batch holds at most 10
// records; the limiters pace the calls) and returns the indexes of the
// records to retry, sorted.
func (b *batch) work(ctx context.Context, recs []amievents.SQSRecord, order []*batchWork) []int {
	reserve := b.cfg.Reserve
	if reserve == 0 {
		reserve = ratelimit.Reserve
	}
	wctx := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, dl.Add(-workCutoff))
		defer cancel()
	}
	var mu sync.Mutex
	var failed []int
	var wg sync.WaitGroup
	for _, w := range order {
		ids := make([]string, len(w.records))
		for j, i := range w.records {
			ids[j] = recs[i].MessageID
		}
		if dl, ok := ctx.Deadline(); ok && dl.Sub(b.now()) < reserve {
			b.log.WarnContext(ctx, b.function+" record", slog.String(logging.KeyFunction, b.function),
				slog.String(logging.KeyEvent, w.event.Meta().Kind), slog.String(logging.KeyResourceID, resourceOf(w.event)),
				slog.Any(logging.KeyMessageIDs, ids), slog.String(logging.KeyOutcome, OutcomeError), slog.String(logging.KeyReason, reasonNotStarted))
			failed = append(failed, w.records...)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.process(wctx, w.event, ids); err != nil {
				mu.Lock()
				failed = append(failed, w.records...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Ints(failed)
	return failed
}

// delay sets the failed records' visibility timeout to the backoff of their
// receive count. A failure is logged, never fatal: the record then comes
// back after the queue's own visibility timeout.
func (b *batch) delay(ctx context.Context, recs []amievents.SQSRecord, failed []int) {
	if b.cfg.Queues == nil {
		return
	}
	for _, i := range failed {
		rec := recs[i]
		d := b.cfg.Queues.VisibilityTimeout(rec.ReceiveCount)
		if err := b.cfg.Queues.Delay(ctx, rec, d); err != nil {
			b.log.WarnContext(ctx, "record not delayed", slog.String(logging.KeyFunction, b.function),
				slog.String(logging.KeyMessageID, rec.MessageID), slog.String(logging.KeyError, err.Error()))
		}
	}
}

// report writes the batch line and its EMF metrics.
func (b *batch) report(ctx context.Context, sum BatchSummary, used ratelimit.Usage, queueAge, d time.Duration) {
	level := slog.LevelInfo
	if sum.Failed > 0 || sum.Rejected > 0 {
		level = slog.LevelWarn
	}
	b.log.Log(ctx, level, b.function+" batch",
		slog.String(logging.KeyFunction, b.function),
		slog.Int(logging.KeyRecords, sum.Records), slog.Int(logging.KeyAMIs, sum.AMIs),
		slog.Int(logging.KeyCoalesced, sum.Coalesced), slog.Int(logging.KeySucceeded, sum.Succeeded),
		slog.Int(logging.KeyFailed, sum.Failed), slog.Int(logging.KeyRejected, sum.Rejected),
		slog.Any(logging.KeyCalls, nonNilCounts(used.Calls)), slog.Int(logging.KeyThrottled, used.Throttled),
		slog.Int64(logging.KeyLimiterWaitMS, used.Waited.Milliseconds()),
		slog.Int64(logging.KeyQueueAgeMaxMS, queueAge.Milliseconds()),
		slog.Int64(logging.KeyDurationMS, d.Milliseconds()))
	if b.cfg.Metrics == nil {
		return
	}
	err := emf.Write(b.cfg.Metrics, b.now(), b.function, nil, []emf.Metric{
		{Name: emf.BatchRecords, Value: float64(sum.Records)},
		{Name: emf.BatchAMIs, Value: float64(sum.AMIs)},
		{Name: emf.BatchFailures, Value: float64(sum.Failed)},
		{Name: emf.ThrottledAnswers, Value: float64(used.Throttled)},
		{Name: emf.QueueAgeMaxMs, Value: float64(queueAge.Milliseconds()), Unit: emf.Milliseconds},
	})
	if err != nil {
		b.log.ErrorContext(ctx, "writing metrics", slog.String(logging.KeyError, err.Error()))
	}
}

func nonNilCounts(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}

// rejectedBatch is the answer to a payload that claims to be a batch and is
// not one (e.g. S3 or SNS notifications): nothing to retry, logged.
func rejectedBatch(ctx context.Context, log *slog.Logger, function string, err error) map[string]string {
	log.ErrorContext(ctx, function+" invocation", slog.String(logging.KeyFunction, function),
		slog.String(logging.KeyOutcome, OutcomeRejected), slog.String(logging.KeyReason, err.Error()))
	return map[string]string{"outcome": OutcomeRejected, "reason": err.Error()}
}
