package handlers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emf"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
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
	reasonPartial    = "the AMI was tagged while still pending, not all its snapshots listed; " +
		"this available state change goes back to the queue to tag the rest"
)

// workCutoff is kept free at the very end of an invocation, even for work
// already started, to set the failed records' visibility and answer.
const workCutoff = time.Second

// processFunc is a function's per-event path: it does the work one event
// names, logs its line, and returns its outcome; an error means the work is
// not done and every record of it goes back to the queue.
type processFunc func(ctx context.Context, ev amievents.Event, messageIDs []string) (outcome string, err error)

// batchWork is one piece of work: the records of one (account, region,
// resource) and one caller, and the event that stands for them all.
type batchWork struct {
	resource string // account/region/resource
	// caller is who made the CloudTrail call of the work's records; a work
	// of state changes alone has none.
	caller    string
	hasCaller bool
	// solo: a record this function does not act on, never merged (it is
	// "ignored" on its own line, as a direct invocation would be).
	solo    bool
	event   amievents.Event
	records []int // indexes into the batch
}

// BatchSummary is the batch line's counts, in records: Records = Succeeded
// + Failed + Rejected; AMIs counts distinct AMIs (or snapshots), Coalesced
// the records that cost no piece of work of their own. Rejected counts the
// records refused when read and, in organization mode, those of an account
// found unreachable.
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
	// org is organization mode (nil: single account): the scope replaces
	// the account and queue region checks.
	org     *Org
	process processFunc

	// The directory, read once per batch (organization mode).
	dir       *org.Directory
	dirErr    error
	dirLoaded bool
}

// resourceOf is what an event asks work on: the AMI, or the snapshot of a
// snapshot permission change.
func resourceOf(ev amievents.Event) string {
	if t, ok := ev.(amievents.SharingTrigger); ok {
		return t.Resource()
	}
	return ev.Meta().ImageID
}

// actsOn reports whether function does work for ev, as its handleEvent
// does: only such an event may stand for others, so that a record the
// function ignores never takes the work of one it does not (a permission
// change in the tagger's batch, a CreateImage in the guard's).
func actsOn(function string, ev amievents.Event) bool {
	if e, ok := ev.(*amievents.ImageStateChanged); ok {
		return e.State == amievents.StateAvailable
	}
	switch function {
	case "tagger":
		_, ok := ev.(*amievents.ImageCreated)
		return ok
	case "sharing":
		_, ok := ev.(amievents.SharingTrigger)
		return ok
	}
	return false
}

// callerOf returns who made the CloudTrail call of ev; a state change has
// no caller (ok false).
func callerOf(ev amievents.Event) (who string, ok bool) {
	if ev == nil {
		return "", false
	}
	switch e := ev.(type) {
	case *amievents.ImageCreated:
		return e.Principal.Who(), true
	case amievents.SharingTrigger:
		return e.Caller().Who(), true
	}
	return "", false
}

// mayShare reports whether ev's call may have shared its resource: a grant
// added, a request whose grants were not all understood, one that does not
// name its attribute, or a restore. The sharing guard's finding names the
// caller of the check that finds the share, so of one resource's works these
// run first: a harmless change by someone else in the same batch (a
// description) is checked after, and finds nothing left to credit.
func mayShare(ev amievents.Event) bool {
	switch e := ev.(type) {
	case *amievents.ResourceRestored:
		return true
	case *amievents.PermissionChanged:
		return len(e.Added) > 0 || e.ShapeProblem != "" || e.Attribute == ""
	}
	return false
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
	evs := make([]amievents.Event, len(recs)) // nil: rejected or failed
	var unread []int                          // failed before any work: the scope could not be read
	for i, rec := range recs {
		if !rec.SentAt.IsZero() {
			queueAge = max(queueAge, start.Sub(rec.SentAt))
		}
		ev, reason, err := b.vet(ctx, rec)
		if err != nil {
			unread = append(unread, i)
			b.log.ErrorContext(ctx, b.function+" record", slog.String(logging.KeyFunction, b.function),
				slog.String(logging.KeyMessageID, rec.MessageID), slog.String(logging.KeyOutcome, OutcomeError),
				slog.String(logging.KeyError, err.Error()), slog.String(logging.KeyErrorKind, awserr.Classify(err).String()))
			continue
		}
		if reason != "" {
			sum.Rejected++
			b.log.ErrorContext(ctx, b.function+" record", slog.String(logging.KeyFunction, b.function),
				slog.String(logging.KeyMessageID, rec.MessageID), slog.String(logging.KeyOutcome, OutcomeRejected),
				slog.String(logging.KeyReason, reason))
			continue
		}
		evs[i] = ev
	}
	chains := b.group(evs)
	works := 0
	for _, c := range chains {
		works += len(c)
	}
	sum.AMIs = len(chains)
	sum.Coalesced = len(recs) - sum.Rejected - len(unread) - works

	failed, refused := b.work(ctx, recs, evs, chains)
	failed = append(failed, unread...)
	sort.Ints(failed)
	sum.Rejected += len(refused)
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

// group coalesces the batch's events (nil: rejected) into pieces of work,
// returned per resource ("chains", in batch order): the records of one
// resource and one caller cost one piece of work, and a state change, which
// names no caller, joins the resource's first. The event that stands for a
// work is its first CloudTrail record (it names the caller; the tagger's
// tags from it are a superset of the state change's). Records of different callers
// are never merged, so each check is credited to its own caller; a chain's
// works run one after the other, those that may have shared first
// (mayShare). A record the function does not act on is a work of its own.
func (b *batch) group(evs []amievents.Event) [][]*batchWork {
	byResource := map[string][]*batchWork{}
	var resources []string
	add := func(w *batchWork) {
		if _, ok := byResource[w.resource]; !ok {
			resources = append(resources, w.resource)
		}
		byResource[w.resource] = append(byResource[w.resource], w)
	}
	resourceKey := func(ev amievents.Event) string {
		m := ev.Meta()
		return m.Account + "/" + m.Region + "/" + resourceOf(ev)
	}
	var callerless []int
	for i, ev := range evs {
		switch {
		case ev == nil:
		case !actsOn(b.function, ev):
			add(&batchWork{resource: resourceKey(ev), solo: true, event: ev, records: []int{i}})
		default:
			who, ok := callerOf(ev)
			if !ok {
				callerless = append(callerless, i)
				continue
			}
			key := resourceKey(ev)
			if j := slices.IndexFunc(byResource[key], func(w *batchWork) bool { return !w.solo && w.hasCaller && w.caller == who }); j >= 0 {
				w := byResource[key][j]
				w.records = append(w.records, i)
				continue
			}
			add(&batchWork{resource: key, caller: who, hasCaller: true, event: ev, records: []int{i}})
		}
	}
	// After every caller's work exists, so a state change ahead of its
	// CloudTrail record in the batch still joins it.
	for _, i := range callerless {
		key := resourceKey(evs[i])
		j := slices.IndexFunc(byResource[key], func(w *batchWork) bool { return !w.solo })
		if j < 0 {
			add(&batchWork{resource: key, event: evs[i], records: []int{i}})
			continue
		}
		w := byResource[key][j]
		w.records = append(w.records, i)
	}
	chains := make([][]*batchWork, 0, len(resources))
	for _, r := range resources {
		c := byResource[r]
		for _, w := range c {
			sort.Ints(w.records)
		}
		sort.SliceStable(c, func(x, y int) bool { return mayShare(c[x].event) && !mayShare(c[y].event) })
		chains = append(chains, c)
	}
	return chains
}

// vet parses a record's body and returns its event, or why it is
// rejected. An error means the record could not be vetted now (organization
// mode: the directory could not be read): it is retried, never admitted.
func (b *batch) vet(ctx context.Context, rec amievents.SQSRecord) (amievents.Event, string, error) {
	ev, err := amievents.Parse(rec.Body)
	if err != nil {
		return nil, err.Error(), nil //nolint:nilerr // bad input is rejected, never retried
	}
	m := ev.Meta()
	if b.org != nil {
		// The scope's accounts and regions replace the two checks below;
		// no AWS call is made for an event outside it.
		dir, err := b.directory(ctx, m.Account)
		if err != nil {
			return nil, "", err
		}
		if reason := scopeProblem(dir, m); reason != "" {
			return nil, reason, nil
		}
	} else {
		if want := expectedAccount(ctx, b.account); want != "" && m.Account != want {
			return nil, fmt.Sprintf("invalid event: account: %q is not this deployment's account %q", m.Account, want), nil
		}
		// The function's role works in its stack's region only: an event of
		// another region (a rule or queue wired across regions) would fail
		// every receive on a permanent error and end in the DLQ. Retrying
		// cannot fix it.
		if want := queueRegion(rec); want != "" && m.Region != want {
			return nil, fmt.Sprintf("invalid event: region: %q is not the region of this function's queue %q; events are handled in their own region's deployment",
				m.Region, want), nil
		}
	}
	if _, ok := ev.(*amievents.Scheduled); ok {
		return nil, reasonScheduled, nil
	}
	return ev, "", nil
}

// directory reads the organization once per batch (records are vetted one
// after the other): a failure fails the batch's valid records without a
// call per record. A record naming an account the directory does not know
// asks again (Org.Lookup may reload it, at most once a minute).
func (b *batch) directory(ctx context.Context, account string) (*org.Directory, error) {
	if !b.dirLoaded {
		b.dirLoaded = true
		b.dir, b.dirErr = b.org.directory(ctx, account)
		return b.dir, b.dirErr
	}
	if b.dirErr == nil && b.org.Lookup != nil {
		if _, known := b.dir.Members[account]; !known {
			// A reload that fails leaves the account unknown, not refused:
			// the record is retried (a new account's public share must not
			// be dropped as "not a member").
			d, err := b.org.directory(ctx, account)
			if err != nil {
				return nil, err
			}
			b.dir = d
		}
	}
	return b.dir, b.dirErr
}

// queueRegion is the region the record was read in: its queue's (from
// eventSourceARN), else the function's own (AWS_REGION).
func queueRegion(rec amievents.SQSRecord) string {
	if rec.QueueRegion != "" {
		return rec.QueueRegion
	}
	return os.Getenv("AWS_REGION")
}

// work runs the chains concurrently and the works of a chain one after the
// other (a batch holds at most 10 records; the limiters pace the calls), and
// returns the indexes of the records to retry, sorted, and of those whose
// work was refused (outcome rejected: organization mode's unreachable
// account), which are deleted.
func (b *batch) work(ctx context.Context, recs []amievents.SQSRecord, evs []amievents.Event, chains [][]*batchWork) (failed, refused []int) {
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
	fail := func(records []int) {
		mu.Lock()
		failed = append(failed, records...)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for _, chain := range chains {
		wg.Go(func() {
			for _, w := range chain {
				ids := messageIDs(recs, w.records)
				if dl, ok := ctx.Deadline(); ok && dl.Sub(b.now()) < reserve {
					b.logRecords(ctx, slog.LevelWarn, w.event, ids, OutcomeError, reasonNotStarted)
					fail(w.records)
					continue
				}
				outcome, err := b.process(wctx, w.event, ids)
				switch {
				case err != nil:
					fail(w.records)
				case outcome == OutcomeRejected:
					mu.Lock()
					refused = append(refused, w.records...)
					mu.Unlock()
				case outcome == string(tagger.OutcomePartial):
					// The state change merged into this work would have
					// finished the job; it goes back to the queue to do so.
					var again []int
					for _, i := range w.records {
						if _, ok := evs[i].(*amievents.ImageStateChanged); ok {
							again = append(again, i)
						}
					}
					if len(again) > 0 {
						b.logRecords(ctx, slog.LevelWarn, evs[again[0]], messageIDs(recs, again), outcome, reasonPartial)
						fail(again)
					}
				}
			}
		})
	}
	wg.Wait()
	sort.Ints(failed)
	sort.Ints(refused)
	return failed, refused
}

// logRecords writes the line of records the batch itself decides on (not
// started, retried after a partial result).
func (b *batch) logRecords(ctx context.Context, level slog.Level, ev amievents.Event, ids []string, outcome, reason string) {
	attrs := []any{slog.String(logging.KeyFunction, b.function),
		slog.String(logging.KeyEvent, ev.Meta().Kind), slog.String(logging.KeyResourceID, resourceOf(ev)),
		slog.Any(logging.KeyMessageIDs, ids), slog.String(logging.KeyOutcome, outcome), slog.String(logging.KeyReason, reason)}
	b.log.Log(ctx, level, b.function+" record", append(attrs, callerAttrs(ev)...)...)
}

func messageIDs(recs []amievents.SQSRecord, idx []int) []string {
	ids := make([]string, len(idx))
	for j, i := range idx {
		ids[j] = recs[i].MessageID
	}
	return ids
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

// callerAttrs are the attributes naming ev's caller on a record line, if
// it has one.
func callerAttrs(ev amievents.Event) []any {
	if who, ok := callerOf(ev); ok {
		return []any{slog.String(logging.KeyCaller, who)}
	}
	return nil
}
