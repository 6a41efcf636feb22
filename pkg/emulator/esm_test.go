package emulator_test

// The event source mapping against moto's SQS, with a stand-in function
// (testdata/sqsfunc) under real runtime emulator processes. What the
// function saw, and when, comes from its own log lines, not from the
// mapping's counters, so the mapping cannot vouch for itself.

import (
	"bufio"
	"context"
	"crypto/md5" //nolint:gosec // G501: SQS's md5OfBody is MD5
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// stubBatch is one invocation as testdata/sqsfunc logged it.
type stubBatch struct {
	Start   int64 `json:"start_ns"`
	End     int64 `json:"end_ns"`
	Crash   bool  `json:"crash"`
	Records []struct {
		MessageID string            `json:"message_id"`
		Body      string            `json:"body"`
		Receives  int               `json:"receives"`
		Record    events.SQSMessage `json:"record"`
	} `json:"records"`
}

type esmWorld struct {
	ctx   context.Context
	sqs   *sqs.Client
	queue emulator.Queue
	ries  []*emulator.RIE
}

// startESMWorld creates a queue with a DLQ on the shared moto and starts n
// runtime emulators hosting the stand-in function.
func startESMWorld(t *testing.T, visibility time.Duration, maxReceive, instances int) *esmWorld {
	t.Helper()
	return startWorld(t, instances, func(ctx context.Context, c *sqs.Client) (emulator.Queue, error) {
		return emulator.CreateQueueWithDLQ(ctx, c, "esm-test", visibility, maxReceive)
	})
}

// startFIFOWorld is startESMWorld with a FIFO queue.
func startFIFOWorld(t *testing.T, visibility time.Duration, maxReceive, instances int) *esmWorld {
	t.Helper()
	return startWorld(t, instances, func(ctx context.Context, c *sqs.Client) (emulator.Queue, error) {
		return emulator.CreateFIFOQueueWithDLQ(ctx, c, "esm-test.fifo", visibility, maxReceive)
	})
}

func startWorld(t *testing.T, instances int, create func(context.Context, *sqs.Client) (emulator.Queue, error)) *esmWorld {
	t.Helper()
	ctx := context.Background()
	moto := emulator.SharedMoto(t)
	cfg, err := moto.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	w := &esmWorld{ctx: ctx, sqs: sqs.NewFromConfig(cfg)}
	if w.queue, err = create(ctx, w.sqs); err != nil {
		t.Fatal(err)
	}
	bin := buildStub(t)
	for range instances {
		r, err := emulator.StartRIE(ctx, emulator.RIEOptions{Bootstrap: bin, Env: moto.Env("us-east-1")})
		if err != nil {
			t.Fatal(err)
		}
		w.ries = append(w.ries, r)
		t.Cleanup(r.Stop)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, r := range w.ries {
				t.Logf("instance %d:\n%s", i, r.Logs())
			}
		}
	})
	return w
}

func buildStub(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sqsfunc")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", out, "./testdata/sqsfunc")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/sqsfunc: %v\n%s", err, b)
	}
	return out
}

func (w *esmWorld) esm(t *testing.T, cfg emulator.ESMConfig) *emulator.ESM {
	t.Helper()
	cfg.SQS, cfg.QueueURL = w.sqs, w.queue.URL
	for _, r := range w.ries {
		cfg.Instances = append(cfg.Instances, r)
	}
	e, err := emulator.NewESM(w.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (w *esmWorld) send(t *testing.T, bodies ...string) {
	t.Helper()
	if err := emulator.SendAll(w.ctx, w.sqs, w.queue.URL, bodies); err != nil {
		t.Fatal(err)
	}
}

func (w *esmWorld) drain(t *testing.T, e *emulator.ESM, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, limit)
	defer cancel()
	if err := e.RunUntilEmpty(ctx); err != nil {
		t.Fatalf("%v; totals %+v, last poll error %v", err, e.Totals(), e.LastPollError())
	}
}

// batches are the function's own records of its invocations, by start.
func (w *esmWorld) batches(t *testing.T) []stubBatch {
	t.Helper()
	var out []stubBatch
	for _, r := range w.ries {
		sc := bufio.NewScanner(strings.NewReader(r.Logs()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, `"msg":"sqsfunc batch"`) {
				continue
			}
			var b stubBatch
			if err := json.Unmarshal([]byte(line[strings.Index(line, "{"):]), &b); err != nil {
				t.Fatalf("stub line %q: %v", line, err)
			}
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// deliveries maps each body to the receive counts and start times of the
// invocations that carried it.
type delivery struct {
	receives int
	at       time.Time
}

func deliveries(batches []stubBatch) map[string][]delivery {
	m := map[string][]delivery{}
	for _, b := range batches {
		for _, r := range b.Records {
			m[r.Body] = append(m[r.Body], delivery{r.Receives, time.Unix(0, b.Start)})
		}
	}
	return m
}

func (w *esmWorld) dlqDepth(t *testing.T) emulator.QueueDepth {
	t.Helper()
	d, err := emulator.QueueDepthOf(w.ctx, w.sqs, w.queue.DLQURL)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A record the function reports in batchItemFailures comes back after the
// queue's visibility timeout, with its receive count up; every other record
// is deleted after its first invocation. The payload is Lambda's.
func TestESMDeletesSuccessesAndRedeliversFailures(t *testing.T) {
	const visibility = 2 * time.Second
	w := startESMWorld(t, visibility, 10, 2)
	var ok, failing []string
	for i := range 14 {
		ok = append(ok, `{"n":`+strconv.Itoa(i)+`}`)
	}
	for i := range 6 {
		failing = append(failing, `{"fail_until":2,"n":`+strconv.Itoa(100+i)+`}`)
	}
	w.send(t, append(append([]string{}, ok...), failing...)...)
	// One more with a message attribute, to check its shape.
	if _, err := w.sqs.SendMessage(w.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(w.queue.URL), MessageBody: aws.String(`{"attr":true}`),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{"origin": {DataType: aws.String("String"), StringValue: aws.String("test")}}}); err != nil {
		t.Fatal(err)
	}
	e := w.esm(t, emulator.ESMConfig{BatchSize: 10})
	w.drain(t, e, time.Minute)

	tot := e.Totals()
	if tot.Failures != 6 || tot.Deleted != 21 || tot.Errors != 0 || tot.Redelivered != 6 || tot.Records != 27 || tot.DeleteErrors != 0 {
		t.Errorf("totals %+v, want 6 failures, 21 deleted, 6 redelivered, 27 records", tot)
	}
	seen := deliveries(w.batches(t))
	for _, b := range append(ok, `{"attr":true}`) {
		if d := seen[b]; len(d) != 1 || d[0].receives != 1 {
			t.Errorf("%s delivered %+v, want once", b, d)
		}
	}
	for _, b := range failing {
		d := seen[b]
		if len(d) != 2 || d[0].receives != 1 || d[1].receives != 2 {
			t.Errorf("%s delivered %+v, want twice, receive counts 1 and 2", b, d)
			continue
		}
		// Back only once its visibility timeout ran out (moto's clock has
		// second resolution: allow a little).
		if gap := d[1].at.Sub(d[0].at); gap < visibility-500*time.Millisecond {
			t.Errorf("%s redelivered %v after its first delivery, before the %v visibility timeout", b, gap, visibility)
		}
	}
	if d := w.dlqDepth(t); d.Total() != 0 {
		t.Errorf("DLQ holds %s", d)
	}

	// The records look like Lambda's.
	for _, b := range w.batches(t) {
		for _, r := range b.Records {
			rec := r.Record
			sum := md5.Sum([]byte(rec.Body)) //nolint:gosec // G401: SQS's checksum
			if rec.EventSource != "aws:sqs" || rec.EventSourceARN != w.queue.ARN || rec.AWSRegion != "us-east-1" ||
				rec.MessageId == "" || rec.ReceiptHandle == "" || rec.Md5OfBody != hex.EncodeToString(sum[:]) ||
				rec.Attributes["SentTimestamp"] == "" || rec.Attributes["ApproximateFirstReceiveTimestamp"] == "" ||
				rec.Attributes["ApproximateReceiveCount"] == "" || rec.MessageAttributes == nil {
				t.Errorf("record not shaped as Lambda's: %+v", rec)
			}
			if rec.Body == `{"attr":true}` {
				a, ok := rec.MessageAttributes["origin"]
				if !ok || aws.ToString(a.StringValue) != "test" || a.DataType != "String" {
					t.Errorf("message attributes %+v", rec.MessageAttributes)
				}
			}
		}
	}
}

// A function error deletes nothing: every record of the batch, the ones
// that would have succeeded too, comes back.
func TestESMInvocationErrorDeletesNothing(t *testing.T) {
	w := startESMWorld(t, time.Second, 10, 1)
	bodies := []string{`{"crash_until":2}`, `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`}
	w.send(t, bodies...)
	// The batching window gathers all five into the first invocation.
	e := w.esm(t, emulator.ESMConfig{BatchSize: 10, BatchingWindow: time.Second})
	w.drain(t, e, time.Minute)

	batches := w.batches(t)
	if len(batches) != 2 || !batches[0].Crash || len(batches[0].Records) != 5 || batches[1].Crash || len(batches[1].Records) != 5 {
		t.Fatalf("want a crashed batch of 5 then a good one of 5, function saw %+v", batches)
	}
	for _, r := range batches[1].Records {
		if r.Receives != 2 {
			t.Errorf("%s came back with receive count %d, want 2", r.Body, r.Receives)
		}
	}
	invs := e.Invocations()
	if tot := e.Totals(); tot.Errors != 1 || tot.Deleted != 5 || len(invs) != 2 || invs[0].Deleted != 0 || !strings.Contains(invs[0].Error, "crash requested") {
		t.Errorf("totals %+v, invocations %+v", tot, invs)
	}
}

// Never more invocations at once than the maximum concurrency, even with
// more instances than that; and the maximum is reached, so the check means
// something.
func TestESMConcurrencyNeverExceedsTheMaximum(t *testing.T) {
	w := startESMWorld(t, 30*time.Second, 10, 3)
	var bodies []string
	for i := range 24 {
		bodies = append(bodies, `{"sleep_ms":150,"n":`+strconv.Itoa(i)+`}`)
	}
	w.send(t, bodies...)
	e := w.esm(t, emulator.ESMConfig{BatchSize: 2, MaxConcurrency: 2})
	w.drain(t, e, time.Minute)

	type edge struct {
		at    int64
		delta int
	}
	var edges []edge
	batches := w.batches(t)
	for _, b := range batches {
		edges = append(edges, edge{b.Start, +1}, edge{b.End, -1})
	}
	// Ends before starts at the same instant: back to back is not overlap.
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at != edges[j].at {
			return edges[i].at < edges[j].at
		}
		return edges[i].delta < edges[j].delta
	})
	running, most := 0, 0
	for _, e := range edges {
		running += e.delta
		most = max(most, running)
	}
	tot := e.Totals()
	if most != 2 || tot.MaxInFlight != 2 {
		t.Errorf("function saw at most %d at once, mapping %d; want 2 (the maximum, reached)", most, tot.MaxInFlight)
	}
	if tot.Records != 24 || tot.Deleted != 24 || len(batches) != tot.Invocations {
		t.Errorf("totals %+v, function saw %d invocations", tot, len(batches))
	}
}

// moto moves a message that was received maxReceiveCount times without
// being deleted to the dead-letter queue, as SQS does; the mapping relies
// on it rather than modelling redrive itself.
func TestESMRedrivesToTheDLQAfterMaxReceiveCount(t *testing.T) {
	w := startESMWorld(t, time.Second, 3, 1)
	w.send(t, `{"fail_until":99}`)
	e := w.esm(t, emulator.ESMConfig{BatchSize: 10})
	w.drain(t, e, time.Minute)

	d := deliveries(w.batches(t))[`{"fail_until":99}`]
	if len(d) != 3 || d[2].receives != 3 {
		t.Errorf("delivered %+v, want 3 times (maxReceiveCount), then moved", d)
	}
	out, err := w.sqs.ReceiveMessage(w.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(w.queue.DLQURL), MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != `{"fail_until":99}` {
		t.Errorf("DLQ holds %+v, want the failing message", out.Messages)
	}
}

// A FIFO queue through the mapping, as the organization sweep's units
// queues are fed to the workers: a message group's messages are invoked one
// at a time and in order (a failed one comes back before the next of its
// group), other groups run meanwhile, and the records carry the FIFO
// attributes. moto deduplicates only against messages still in the queue:
// the same deduplication ID sent again after its message was deleted is
// delivered again (SQS would drop it within 5 minutes), so the workers'
// idempotency cannot lean on the queue's.
func TestESMFIFOKeepsGroupOrder(t *testing.T) {
	const visibility = 2 * time.Second
	w := startFIFOWorld(t, visibility, 5, 2)
	msgs := []emulator.FIFOMessage{
		{Body: `{"n":"a1","fail_until":2,"sleep_ms":100}`, Group: "a", DeduplicationID: "a1"},
		{Body: `{"n":"a2","sleep_ms":100}`, Group: "a", DeduplicationID: "a2"},
		{Body: `{"n":"a3","sleep_ms":100}`, Group: "a", DeduplicationID: "a3"},
		{Body: `{"n":"b1","sleep_ms":100}`, Group: "b", DeduplicationID: "b1"},
		{Body: `{"n":"b2","sleep_ms":100}`, Group: "b", DeduplicationID: "b2"},
		// A duplicate sent at once is dropped.
		{Body: `{"n":"b2","sleep_ms":100}`, Group: "b", DeduplicationID: "b2"},
	}
	if err := emulator.SendFIFO(w.ctx, w.sqs, w.queue.URL, msgs); err != nil {
		t.Fatal(err)
	}
	e := w.esm(t, emulator.ESMConfig{BatchSize: 1})
	w.drain(t, e, time.Minute)

	type run struct {
		body         string
		start, end   int64
		receives     int
		group, dedup string
	}
	groups := map[string][]run{}
	for _, b := range w.batches(t) {
		if len(b.Records) != 1 {
			t.Fatalf("batch of %d records with batch size 1", len(b.Records))
		}
		r := b.Records[0]
		if r.Record.EventSourceARN != w.queue.ARN || !strings.HasSuffix(r.Record.EventSourceARN, ":esm-test.fifo") || r.Record.Attributes["SequenceNumber"] == "" {
			t.Errorf("record not shaped as Lambda's for a FIFO queue: %+v", r.Record)
		}
		g := r.Record.Attributes["MessageGroupId"]
		groups[g] = append(groups[g], run{r.Body, b.Start, b.End, r.Receives, g, r.Record.Attributes["MessageDeduplicationId"]})
	}
	order := func(g string) string {
		var out []string
		for i, r := range groups[g] {
			out = append(out, fmt.Sprintf("%s#%d", r.dedup, r.receives))
			if i > 0 && r.start < groups[g][i-1].end {
				t.Errorf("group %s: %s started before %s ended", g, r.body, groups[g][i-1].body)
			}
		}
		return strings.Join(out, " ")
	}
	if got := order("a"); got != "a1#1 a1#2 a2#1 a3#1" {
		t.Errorf("group a delivered %s; want a1 twice (failed once), then a2, a3", got)
	}
	if got := order("b"); got != "b1#1 b2#1" {
		t.Errorf("group b delivered %s; want b1, b2, the duplicate dropped", got)
	}
	if tot := e.Totals(); tot.MaxInFlight != 2 {
		t.Errorf("totals %+v: the groups did not run side by side", tot)
	}

	// Sent again after its message was deleted: moto delivers it again. (The
	// mapping, stopped, has left no receive behind to take it.)
	if err := emulator.SendFIFO(w.ctx, w.sqs, w.queue.URL, msgs[4:5]); err != nil {
		t.Fatal(err)
	}
	out, err := w.sqs.ReceiveMessage(w.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(w.queue.URL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil || len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != msgs[4].Body {
		t.Errorf("after resending b2's deduplication ID: %+v (%v); moto no longer delivers it again, update CreateFIFOQueueWithDLQ's note", out, err)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var d []time.Duration
		for _, v := range n {
			d = append(d, time.Duration(v)*time.Millisecond)
		}
		return d
	}
	for _, tt := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(5), 99, 5 * time.Millisecond},
		{ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	} {
		if got := emulator.Percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
		}
	}
}
