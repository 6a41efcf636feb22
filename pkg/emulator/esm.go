package emulator

// An SQS event source mapping (ESM) as Lambda runs one, in front of runtime
// emulator instances: it polls the queue, hands each batch to an
// instance as an events.SQSEvent, and deletes what the function did not
// report as failed. Lambda's own poller is not available locally; this
// reproduces the parts a function can observe:
//   - the payload, field for field (messageId, receiptHandle, body,
//     attributes, messageAttributes, md5OfBody, eventSource, eventSourceARN,
//     awsRegion);
//   - ReportBatchItemFailures: every record not named in batchItemFailures
//     is deleted; a function error, an invocation that does not complete or
//     a malformed response deletes nothing (the whole batch comes back after
//     its visibility timeout), as Lambda's documentation lists;
//   - MaximumConcurrency: never more invocations at once than the maximum.
//
// What it does differently, on purpose: one poller per instance, which
// gathers the instance's next batch while the instance runs the current one
// (Lambda's pollers also work apart from the instances and can hold records
// while all instances are busy; their visibility timeout then runs down in
// the poller), so at most one batch per instance waits. Long polls last
// ESMConfig.WaitTime (default 1 s, Lambda's are 20 s) so a drained queue is
// noticed quickly.
//
// FIFO queues (CreateFIFOQueueWithDLQ) need nothing more: moto holds a
// message group back while one of its messages is in flight, as SQS does.
// Stopping the mapping lets the receive in flight complete and makes what
// it got visible again (see poll).
//
// The dead-letter queue is SQS's business, not the ESM's: moto (5.2.5, as
// pinned in requirements-dev.txt) moves a message to the RedrivePolicy's
// target on the receive after its maxReceiveCount-th, as SQS does
// (TestESMRedrivesToTheDLQAfterMaxReceiveCount checks it), so the emulator
// does not model it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Invoker runs one invocation and returns the function's response body (a
// function error is a 200 answer with errorType, as the runtime emulator
// gives it). *RIE is one.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// ESMConfig configures an event source mapping.
type ESMConfig struct {
	// SQS reaches the queue (moto directly: the ESM is Lambda's, its calls
	// count against no EC2 bucket).
	SQS      *sqs.Client
	QueueURL string
	// Instances are the function's execution environments; each runs one
	// invocation at a time (one runtime emulator process each).
	Instances []Invoker
	// BatchSize is the most records per invocation, 1 to 10 (default 10).
	BatchSize int
	// BatchingWindow is how long a batch that is not full may keep
	// gathering records (MaximumBatchingWindowInSeconds; 0: none).
	BatchingWindow time.Duration
	// MaxConcurrency is ScalingConfig.MaximumConcurrency (default: one per
	// instance).
	MaxConcurrency int
	// WaitTime is each ReceiveMessage's long poll, whole seconds (default 1 s).
	WaitTime time.Duration
}

// Invocation is what one invocation of the mapping did.
type Invocation struct {
	Instance int
	Start    time.Time
	Duration time.Duration
	Records  int
	// Failures is the number of records the function listed in
	// batchItemFailures.
	Failures int
	// Deleted is the number of records deleted after it.
	Deleted int
	// MaxReceiveCount is the highest ApproximateReceiveCount in the batch
	// (1: every record on its first delivery).
	MaxReceiveCount int
	// Error is set when the whole batch failed: a function error, an
	// invocation that did not complete, or a response Lambda treats as a
	// failure. Nothing was deleted.
	Error string
}

// ESMTotals sums the invocations.
type ESMTotals struct {
	Invocations int
	Records     int
	// Failures counts records listed in batchItemFailures.
	Failures int
	Deleted  int
	// Errors counts invocations whose whole batch failed.
	Errors int
	// Redelivered counts records received more than once.
	Redelivered int
	// MaxInFlight is the most invocations that ran at once.
	MaxInFlight int
	// PollErrors and DeleteErrors count the mapping's own failed SQS calls.
	PollErrors   int
	DeleteErrors int
}

// ESM is a running (or runnable) event source mapping.
type ESM struct {
	cfg        ESMConfig
	arn        string
	region     string
	visibility int32

	mu          sync.Mutex
	invocations []Invocation
	inFlight    int
	maxInFlight int
	redelivered int
	pollErrors  int
	deleteErrs  int
	lastErr     error
}

// NewESM reads the queue's ARN and visibility timeout and checks cfg.
func NewESM(ctx context.Context, cfg ESMConfig) (*ESM, error) {
	if cfg.SQS == nil || cfg.QueueURL == "" || len(cfg.Instances) == 0 {
		return nil, errors.New("event source mapping: SQS client, queue URL and at least one instance are required")
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 10
	}
	if cfg.BatchSize < 1 || cfg.BatchSize > 10 {
		// Lambda allows up to 10,000 with a batching window; one
		// ReceiveMessage returns at most 10, which is all the tests need.
		return nil, fmt.Errorf("event source mapping %s: batch size %d: this emulator takes 1 to 10", cfg.QueueURL, cfg.BatchSize)
	}
	if cfg.MaxConcurrency == 0 {
		cfg.MaxConcurrency = len(cfg.Instances)
	}
	if cfg.MaxConcurrency < 1 {
		return nil, fmt.Errorf("event source mapping %s: maximum concurrency %d", cfg.QueueURL, cfg.MaxConcurrency)
	}
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = time.Second
	}
	out, err := cfg.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(cfg.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn, sqstypes.QueueAttributeNameVisibilityTimeout},
	})
	if err != nil {
		return nil, fmt.Errorf("event source mapping: reading %s: %w", cfg.QueueURL, err)
	}
	e := &ESM{cfg: cfg, arn: out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]}
	// arn:aws:sqs:<region>:<account>:<name>
	if parts := strings.Split(e.arn, ":"); len(parts) == 6 {
		e.region = parts[3]
	} else {
		return nil, fmt.Errorf("event source mapping: queue ARN %q of %s", e.arn, cfg.QueueURL)
	}
	vt, err := strconv.ParseInt(out.Attributes[string(sqstypes.QueueAttributeNameVisibilityTimeout)], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("event source mapping: visibility timeout of %s: %w", cfg.QueueURL, err)
	}
	e.visibility = int32(vt)
	return e, nil
}

// QueueARN is the eventSourceARN the records carry.
func (e *ESM) QueueARN() string { return e.arn }

// Run polls and invokes until ctx ends.
func (e *ESM) Run(ctx context.Context) {
	var wg sync.WaitGroup
	// One poller per instance, at most MaxConcurrency of them: each invokes
	// its instance one batch at a time, so the number of invocations at once
	// cannot exceed the maximum.
	for i := range min(len(e.cfg.Instances), e.cfg.MaxConcurrency) {
		wg.Go(func() { e.poll(ctx, i) })
	}
	wg.Wait()
}

// RunUntilEmpty runs the mapping until the queue holds no message (visible,
// in flight or delayed) and no invocation is running, or ctx ends (then it
// returns ctx's error with what is left).
func (e *ESM) RunUntilEmpty(ctx context.Context) error {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() { e.Run(runCtx); close(done) }()
	empty := 0
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stop()
			<-done
			d, _ := QueueDepthOf(context.WithoutCancel(ctx), e.cfg.SQS, e.cfg.QueueURL)
			return fmt.Errorf("event source mapping %s: %w with %s left", e.arn, ctx.Err(), d)
		case <-tick.C:
		}
		d, err := QueueDepthOf(ctx, e.cfg.SQS, e.cfg.QueueURL)
		e.mu.Lock()
		idle := e.inFlight == 0
		e.mu.Unlock()
		if err == nil && d.Total() == 0 && idle {
			empty++
		} else {
			empty = 0
		}
		// Twice in a row: moto's counts and the pollers' state are read at
		// different moments.
		if empty == 2 {
			stop()
			<-done
			return nil
		}
	}
}

// Invocations returns every invocation so far, in the order they ended.
func (e *ESM) Invocations() []Invocation {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.invocations)
}

// Totals sums the invocations so far.
func (e *ESM) Totals() ESMTotals {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := ESMTotals{Invocations: len(e.invocations), MaxInFlight: e.maxInFlight, Redelivered: e.redelivered,
		PollErrors: e.pollErrors, DeleteErrors: e.deleteErrs}
	for _, inv := range e.invocations {
		t.Records += inv.Records
		t.Failures += inv.Failures
		t.Deleted += inv.Deleted
		if inv.Error != "" {
			t.Errors++
		}
	}
	return t
}

// LastPollError is the mapping's last failed SQS call, if any.
func (e *ESM) LastPollError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastErr
}

func (e *ESM) poll(ctx context.Context, instance int) {
	// The next batch is received while the instance runs the current one:
	// Lambda's pollers work apart from the function's instances, so an
	// instance does not sit idle while its next batch is gathered.
	type fetched struct {
		msgs []sqstypes.Message
		err  error
	}
	next := make(chan fetched, 1)
	// A receive is never cut short: moto's long poll goes on when the
	// client hangs up and takes the messages that arrive meanwhile, which
	// nobody would then see until their visibility timeout ran out. So the
	// receive in flight when the mapping stops completes, and what it got
	// is made visible again, as Lambda's poller returns what it holds.
	fetch := func() {
		go func() {
			msgs, err := e.gather(context.WithoutCancel(ctx))
			next <- fetched{msgs, err}
		}()
	}
	fetch()
	for {
		var f fetched
		select {
		case f = <-next:
		case <-ctx.Done():
			f = <-next
		}
		if ctx.Err() != nil {
			e.release(context.WithoutCancel(ctx), f.msgs)
			return
		}
		if f.err != nil {
			e.mu.Lock()
			e.pollErrors++
			e.lastErr = f.err
			e.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
		fetch()
		if len(f.msgs) > 0 {
			e.invoke(ctx, instance, f.msgs)
		}
	}
}

// release makes messages received but not invoked visible again at once.
func (e *ESM) release(ctx context.Context, msgs []sqstypes.Message) {
	for start := 0; start < len(msgs); start += 10 {
		var entries []sqstypes.ChangeMessageVisibilityBatchRequestEntry
		for i, m := range msgs[start:min(start+10, len(msgs))] {
			entries = append(entries, sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		out, err := e.cfg.SQS.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(e.cfg.QueueURL), Entries: entries})
		if err == nil && len(out.Failed) > 0 {
			err = fmt.Errorf("%s: %s", aws.ToString(out.Failed[0].Code), aws.ToString(out.Failed[0].Message))
		}
		if err != nil {
			e.mu.Lock()
			e.pollErrors++
			e.lastErr = fmt.Errorf("ChangeMessageVisibilityBatch %s: %w", e.cfg.QueueURL, err)
			e.mu.Unlock()
		}
	}
}

// gather receives up to a batch: one long poll, then, while the batch is
// not full and the batching window is open, more.
func (e *ESM) gather(ctx context.Context) ([]sqstypes.Message, error) {
	msgs, err := e.receive(ctx, e.cfg.BatchSize, int32(min(e.cfg.WaitTime/time.Second, 20))) //nolint:gosec // G115: at most 20
	if err != nil || len(msgs) == 0 {
		return msgs, err
	}
	deadline := time.Now().Add(e.cfg.BatchingWindow)
	for len(msgs) < e.cfg.BatchSize && time.Now().Before(deadline) {
		more, err := e.receive(ctx, e.cfg.BatchSize-len(msgs), 0)
		if err != nil {
			// What was received is invoked; the error is counted.
			e.mu.Lock()
			e.pollErrors++
			e.lastErr = err
			e.mu.Unlock()
			break
		}
		msgs = append(msgs, more...)
		if len(more) == 0 {
			time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
		}
	}
	return msgs, nil
}

func (e *ESM) receive(ctx context.Context, n int, wait int32) ([]sqstypes.Message, error) {
	out, err := e.cfg.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(e.cfg.QueueURL),
		MaxNumberOfMessages:         int32(min(n, 10)), //nolint:gosec // G115: at most 10
		WaitTimeSeconds:             wait,
		VisibilityTimeout:           e.visibility,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return nil, fmt.Errorf("ReceiveMessage %s: %w", e.cfg.QueueURL, err)
	}
	return out.Messages, nil
}

// Event builds the payload Lambda sends for these messages.
func (e *ESM) Event(msgs []sqstypes.Message) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, 0, len(msgs))}
	for _, m := range msgs {
		r := events.SQSMessage{
			MessageId:              aws.ToString(m.MessageId),
			ReceiptHandle:          aws.ToString(m.ReceiptHandle),
			Body:                   aws.ToString(m.Body),
			Md5OfBody:              aws.ToString(m.MD5OfBody),
			Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
			Attributes:             map[string]string{},
			MessageAttributes:      map[string]events.SQSMessageAttribute{},
			EventSource:            "aws:sqs",
			EventSourceARN:         e.arn,
			AWSRegion:              e.region,
		}
		for k, v := range m.Attributes {
			r.Attributes[k] = v
		}
		for k, v := range m.MessageAttributes {
			r.MessageAttributes[k] = events.SQSMessageAttribute{
				StringValue:      v.StringValue,
				BinaryValue:      v.BinaryValue,
				StringListValues: nonNil(v.StringListValues),
				BinaryListValues: nonNilBytes(v.BinaryListValues),
				DataType:         aws.ToString(v.DataType),
			}
		}
		ev.Records = append(ev.Records, r)
	}
	return ev
}

func (e *ESM) invoke(ctx context.Context, instance int, msgs []sqstypes.Message) {
	ev := e.Event(msgs)
	inv := Invocation{Instance: instance, Records: len(msgs)}
	redelivered := 0
	for _, r := range ev.Records {
		n, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"])
		inv.MaxReceiveCount = max(inv.MaxReceiveCount, n)
		if n > 1 {
			redelivered++
		}
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		panic(err) // plain strings and maps: cannot fail
	}

	e.mu.Lock()
	e.inFlight++
	e.maxInFlight = max(e.maxInFlight, e.inFlight)
	e.redelivered += redelivered
	e.mu.Unlock()
	inv.Start = time.Now()
	body, err := e.cfg.Instances[instance].Invoke(ctx, payload)
	inv.Duration = time.Since(inv.Start)

	var retry map[string]bool
	if err == nil {
		retry, err = batchFailures(body, ev)
	}
	if err != nil {
		inv.Error = err.Error()
	} else {
		inv.Failures = len(retry)
		inv.Deleted = e.delete(context.WithoutCancel(ctx), msgs, retry)
	}
	e.mu.Lock()
	e.inFlight--
	e.invocations = append(e.invocations, inv)
	e.mu.Unlock()
}

// batchFailures reads a response as Lambda does with
// ReportBatchItemFailures: the message IDs to keep, or an error when the
// whole batch counts as failed (a function error, invalid JSON, an empty or
// unknown itemIdentifier). An empty or null response, or one without
// batchItemFailures, is complete success.
func batchFailures(body []byte, ev events.SQSEvent) (map[string]bool, error) {
	var fe struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal(body, &fe) == nil && fe.ErrorType != "" {
		return nil, functionError(fe.ErrorType + ": " + fe.ErrorMessage)
	}
	trimmed := strings.TrimSpace(string(body))
	if trimmed == "" || trimmed == "null" {
		return nil, nil
	}
	var resp struct {
		BatchItemFailures []map[string]*string `json:"batchItemFailures"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("invalid batch response %q: %w", truncate(trimmed, 200), err)
	}
	ids := map[string]bool{}
	for _, r := range ev.Records {
		ids[r.MessageId] = true
	}
	retry := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		id, ok := f["itemIdentifier"]
		switch {
		case !ok || len(f) != 1:
			return nil, fmt.Errorf("batch response: item failure %v: not {\"itemIdentifier\": ...}", f)
		case id == nil || *id == "":
			return nil, errors.New("batch response: empty or null itemIdentifier")
		case !ids[*id]:
			return nil, fmt.Errorf("batch response: itemIdentifier %q is not a record of the batch", *id)
		}
		retry[*id] = true
	}
	return retry, nil
}

// delete removes every message not kept for a retry and returns how many
// it removed.
func (e *ESM) delete(ctx context.Context, msgs []sqstypes.Message, keep map[string]bool) int {
	var entries []sqstypes.DeleteMessageBatchRequestEntry
	for i, m := range msgs {
		if !keep[aws.ToString(m.MessageId)] {
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
	}
	if len(entries) == 0 {
		return 0
	}
	out, err := e.cfg.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(e.cfg.QueueURL), Entries: entries})
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.deleteErrs += len(entries)
		e.lastErr = fmt.Errorf("DeleteMessageBatch %s: %w", e.cfg.QueueURL, err)
		return 0
	}
	if len(out.Failed) > 0 {
		e.deleteErrs += len(out.Failed)
		e.lastErr = fmt.Errorf("DeleteMessageBatch %s: %s: %s", e.cfg.QueueURL, aws.ToString(out.Failed[0].Code), aws.ToString(out.Failed[0].Message))
	}
	return len(out.Successful)
}

// QueueDepth is what a queue holds.
type QueueDepth struct {
	Visible, InFlight, Delayed int
}

// Total is every message still in the queue.
func (d QueueDepth) Total() int { return d.Visible + d.InFlight + d.Delayed }

func (d QueueDepth) String() string {
	return fmt.Sprintf("%d visible, %d in flight, %d delayed", d.Visible, d.InFlight, d.Delayed)
}

// QueueDepthOf reads a queue's approximate counts.
func QueueDepthOf(ctx context.Context, c *sqs.Client, url string) (QueueDepth, error) {
	out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed},
	})
	if err != nil {
		return QueueDepth{}, fmt.Errorf("reading the depth of %s: %w", url, err)
	}
	n := func(k sqstypes.QueueAttributeName) int { v, _ := strconv.Atoi(out.Attributes[string(k)]); return v }
	return QueueDepth{
		Visible:  n(sqstypes.QueueAttributeNameApproximateNumberOfMessages),
		InFlight: n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:  n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed),
	}, nil
}

// Queue is an SQS queue with its dead-letter queue.
type Queue struct {
	URL, ARN       string
	DLQURL, DLQARN string
}

// CreateQueueWithDLQ creates name and name-dlq; a message received
// maxReceiveCount times without being deleted moves to the DLQ.
func CreateQueueWithDLQ(ctx context.Context, c *sqs.Client, name string, visibility time.Duration, maxReceiveCount int) (Queue, error) {
	return createQueueWithDLQ(ctx, c, name, name+"-dlq", visibility, maxReceiveCount, nil)
}

// CreateFIFOQueueWithDLQ creates the FIFO queue name (which must end in
// ".fifo", as SQS requires) and its FIFO dead-letter queue
// <name without .fifo>-dlq.fifo (a FIFO queue's DLQ must be FIFO too).
// Deduplication is by the sender's MessageDeduplicationId, not the body.
//
// moto (5.2.5) keeps a message group's later messages back while one of
// its messages is in flight, as SQS does, so the event source mapping
// needs nothing of its own for FIFO queues; it differs from SQS in one
// way a test can meet: it deduplicates only against messages still in
// the queue, not every message sent in the last 5 minutes.
func CreateFIFOQueueWithDLQ(ctx context.Context, c *sqs.Client, name string, visibility time.Duration, maxReceiveCount int) (Queue, error) {
	base, ok := strings.CutSuffix(name, ".fifo")
	if !ok {
		return Queue{}, fmt.Errorf("FIFO queue %q: the name must end in .fifo", name)
	}
	return createQueueWithDLQ(ctx, c, name, base+"-dlq.fifo", visibility, maxReceiveCount, map[string]string{
		string(sqstypes.QueueAttributeNameFifoQueue):                 "true",
		string(sqstypes.QueueAttributeNameContentBasedDeduplication): "false",
	})
}

func createQueueWithDLQ(ctx context.Context, c *sqs.Client, name, dlq string, visibility time.Duration, maxReceiveCount int, extra map[string]string) (Queue, error) {
	var q Queue
	var err error
	if q.DLQURL, q.DLQARN, err = createQueue(ctx, c, dlq, extra); err != nil {
		return q, err
	}
	redrive, _ := json.Marshal(map[string]any{"deadLetterTargetArn": q.DLQARN, "maxReceiveCount": maxReceiveCount})
	attrs := map[string]string{
		string(sqstypes.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(visibility / time.Second)),
		string(sqstypes.QueueAttributeNameRedrivePolicy):     string(redrive),
	}
	for k, v := range extra {
		attrs[k] = v
	}
	q.URL, q.ARN, err = createQueue(ctx, c, name, attrs)
	return q, err
}

func createQueue(ctx context.Context, c *sqs.Client, name string, attrs map[string]string) (url, arn string, err error) {
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		return "", "", fmt.Errorf("CreateQueue %s: %w", name, err)
	}
	a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", "", fmt.Errorf("GetQueueAttributes %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), a.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
}

// SendAll puts bodies on a queue, ten per SendMessageBatch call.
func SendAll(ctx context.Context, c *sqs.Client, url string, bodies []string) error {
	for start := 0; start < len(bodies); start += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for i, b := range bodies[start:min(start+10, len(bodies))] {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(b)})
		}
		out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			return fmt.Errorf("SendMessageBatch %s: %w", url, err)
		}
		if len(out.Failed) > 0 {
			return fmt.Errorf("SendMessageBatch %s: %d failed, first %s: %s", url, len(out.Failed), aws.ToString(out.Failed[0].Code), aws.ToString(out.Failed[0].Message))
		}
	}
	return nil
}

// FIFOMessage is one message for a FIFO queue.
type FIFOMessage struct {
	Body, Group, DeduplicationID string
}

// SendFIFO puts messages on a FIFO queue, ten per SendMessageBatch call,
// in order.
func SendFIFO(ctx context.Context, c *sqs.Client, url string, msgs []FIFOMessage) error {
	for start := 0; start < len(msgs); start += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for i, m := range msgs[start:min(start+10, len(msgs))] {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(m.Body),
				MessageGroupId: aws.String(m.Group), MessageDeduplicationId: aws.String(m.DeduplicationID)})
		}
		out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			return fmt.Errorf("SendMessageBatch %s: %w", url, err)
		}
		if len(out.Failed) > 0 {
			return fmt.Errorf("SendMessageBatch %s: %d failed, first %s: %s", url, len(out.Failed), aws.ToString(out.Failed[0].Code), aws.ToString(out.Failed[0].Message))
		}
	}
	return nil
}

// Percentile returns the p-th percentile (0 to 100, nearest rank) of d.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilBytes(s [][]byte) [][]byte {
	if s == nil {
		return [][]byte{}
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
