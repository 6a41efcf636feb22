package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// These tests check the units path's contract without AWS: which records
// reach the worker, with which lastAttempt, and which come back. The real
// worker, ledger, queue and sweep run together against moto in test/org.

const (
	home       = "123456789012"
	unitsQueue = "housekeeper-cleanup-units.fifo"
	maxReceive = 3
)

// workerCall is what the stub worker was asked.
type workerCall struct {
	Unit fanout.Unit
	Last bool
}

// stubWorker records its calls and fails the units named in fail.
type stubWorker struct {
	mu    sync.Mutex
	calls []workerCall
	fail  map[string]error // unit account -> error
}

func (w *stubWorker) Run(_ context.Context, u fanout.Unit, last bool, _ fanout.Job) (fanout.UnitResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, workerCall{u, last})
	if err := w.fail[u.Account]; err != nil {
		return fanout.UnitResult{Unit: u}, err
	}
	return fanout.UnitResult{Unit: u, Status: fanout.StatusDone}, nil
}

func (w *stubWorker) accounts() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, c := range w.calls {
		out = append(out, c.Unit.Account)
	}
	return out
}

func noJob(context.Context, *awsapi.Clients, org.Account, fanout.Unit) (fanout.UnitResult, error) {
	panic("the stub worker never runs the job")
}

func unitsHandler(w handlers.UnitWorker) (*handlers.Units, *bytes.Buffer) {
	var logs bytes.Buffer
	return &handlers.Units{Function: "cleanup", Job: fanout.JobCleanup, Account: home, Worker: w, Run: noJob,
		Queue: handlers.UnitsQueue{Name: unitsQueue, MaxReceive: maxReceive, Ledger: "ledger"},
		Log:   logging.New(&logs, "info")}, &logs
}

// unitBody is a valid unit of account in us-east-1 (job cleanup unless
// given).
func unitBody(account string, job ...string) string {
	j := fanout.JobCleanup
	if len(job) > 0 {
		j = job[0]
	}
	u := fanout.Unit{Sweep: fanout.SweepID(j, time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)), Job: j, Account: account, Region: "us-east-1",
		OU: "ou-ab12-cdef3456", Dispatched: time.Date(2026, 11, 29, 3, 0, 5, 0, time.UTC)}
	b, _ := json.Marshal(u)
	return string(b)
}

type unitRecord struct {
	body     string
	queueARN string // default: the units queue in the home account
	receives int    // default 1
}

func batchPayload(t *testing.T, recs ...unitRecord) []byte {
	t.Helper()
	ev := events.SQSEvent{}
	for i, r := range recs {
		if r.queueARN == "" {
			r.queueARN = "arn:aws:sqs:us-east-1:" + home + ":" + unitsQueue
		}
		if r.receives == 0 {
			r.receives = 1
		}
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: "m" + strconv.Itoa(i), ReceiptHandle: "rh", Body: r.body,
			EventSource: "aws:sqs", EventSourceARN: r.queueARN, AWSRegion: "us-east-1",
			Attributes: map[string]string{"ApproximateReceiveCount": strconv.Itoa(r.receives), "MessageGroupId": "g"}})
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Only units of this function's job, from its units queue in the
// deployment's account, reach the worker; the rest are rejected (logged,
// not retried, not run).
func TestUnitsRejectsWhatIsNotItsQueuesUnit(t *testing.T) {
	const a = "111111111111"
	for _, tt := range []struct {
		name string
		rec  unitRecord
		want string // in the reason
	}{
		{"another queue", unitRecord{body: unitBody(a), queueARN: "arn:aws:sqs:us-east-1:" + home + ":housekeeper-audit-units.fifo"}, "not this function's units queue"},
		{"a queue of the same name elsewhere", unitRecord{body: unitBody(a), queueARN: "arn:aws:sqs:us-east-1:999999999999:" + unitsQueue}, "not of this deployment's account"},
		{"the other job's unit", unitRecord{body: unitBody(a, fanout.JobSharingAudit)}, "on the cleanup units queue"},
		{"not a unit", unitRecord{body: `{"job":"cleanup","account":"111111111111"}`}, "invalid unit"},
		{"an unknown field", unitRecord{body: strings.Replace(unitBody(a), `{`, `{"extra":1,`, 1)}, "unknown field"},
		{"an EventBridge event", unitRecord{body: `{"source":"aws.events","detail-type":"Scheduled Event"}`}, "invalid unit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &stubWorker{}
			h, logs := unitsHandler(w)
			if failed := invokeBatch(t, h, context.Background(), batchPayload(t, tt.rec)); len(failed) != 0 {
				t.Errorf("rejected unitRecord retried: %v", failed)
			}
			if len(w.calls) != 0 {
				t.Errorf("the worker ran %+v", w.calls)
			}
			if !strings.Contains(logs.String(), `"outcome":"rejected"`) || !strings.Contains(logs.String(), tt.want) {
				t.Errorf("no rejection naming %q:\n%s", tt.want, logs)
			}
		})
	}
}

// The receive count against the queue's maxReceiveCount says whether a
// delivery is the unit's last attempt (the worker then records a failure
// instead of asking for another delivery).
func TestUnitsLastAttemptFromTheReceiveCount(t *testing.T) {
	for _, tt := range []struct {
		receives int
		last     bool
	}{{1, false}, {maxReceive - 1, false}, {maxReceive, true}, {maxReceive + 2, true}} {
		w := &stubWorker{}
		h, _ := unitsHandler(w)
		invokeBatch(t, h, context.Background(), batchPayload(t, unitRecord{body: unitBody("111111111111"), receives: tt.receives}))
		if len(w.calls) != 1 || w.calls[0].Last != tt.last {
			t.Errorf("receive %d of %d: worker called %+v, want last=%v", tt.receives, maxReceive, w.calls, tt.last)
		}
	}
}

// A unit the worker could not settle comes back, and so does every later
// record of the batch, not started: a FIFO group's later unit must never
// overtake an earlier one. Rejected records before it stay dropped.
func TestUnitsStopsAtTheFirstFailure(t *testing.T) {
	w := &stubWorker{fail: map[string]error{"222222222222": errors.New("ledger throttled")}}
	h, logs := unitsHandler(w)
	failed := invokeBatch(t, h, context.Background(), batchPayload(t,
		unitRecord{body: unitBody("111111111111")},
		unitRecord{body: `not json`},
		unitRecord{body: unitBody("222222222222")},
		unitRecord{body: unitBody("333333333333")},
		unitRecord{body: `not json either`},
	))
	if !slices.Equal(failed, []string{"m2", "m3", "m4"}) {
		t.Errorf("retried %v, want m2 (failed) and m3, m4 (not started)", failed)
	}
	if got := w.accounts(); !slices.Equal(got, []string{"111111111111", "222222222222"}) {
		t.Errorf("worker ran %v", got)
	}
	if !strings.Contains(logs.String(), "an earlier unit of the batch failed") ||
		!strings.Contains(logs.String(), `"records":5,"succeeded":1,"failed":3,"rejected":1`) {
		t.Errorf("logs:\n%s", logs)
	}
}

// No unit starts in the last minute of the invocation: it goes back.
func TestUnitsNotStartedNearTheDeadline(t *testing.T) {
	w := &stubWorker{}
	h, _ := unitsHandler(w)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if failed := invokeBatch(t, h, ctx, batchPayload(t, unitRecord{body: unitBody("111111111111")})); !slices.Equal(failed, []string{"m0"}) || len(w.calls) != 0 {
		t.Errorf("retried %v, worker ran %+v; want the unit back, not started", failed, w.calls)
	}
}

// A direct invocation (a scheduled event) is not a unit: rejected, with
// the reason; a malformed batch is rejected whole.
func TestUnitsRejectsDirectInvocations(t *testing.T) {
	for _, payload := range []string{`{"source":"aws.events","detail-type":"Scheduled Event","account":"123456789012","region":"us-east-1","time":"2026-11-29T03:00:00Z","detail":{}}`,
		`{"Records":[{"eventSource":"aws:s3"}]}`} {
		w := &stubWorker{}
		h, _ := unitsHandler(w)
		out, err := h.Invoke(context.Background(), []byte(payload))
		if err != nil || !bytes.Contains(out, []byte(`"outcome":"rejected"`)) || len(w.calls) != 0 {
			t.Errorf("%s: %s %v, worker %+v", payload, out, err, w.calls)
		}
	}
}

// eventPath is the event path WithUnits falls back to.
type eventPath struct{ got [][]byte }

func (r *eventPath) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	r.got = append(r.got, payload)
	return []byte(`{"outcome":"event path"}`), nil
}

// WithUnits sends the units queue's batches to the units path and
// everything else (the events queue's batches, direct invocations) to the
// function's event path.
func TestWithUnitsRoutesByQueue(t *testing.T) {
	w := &stubWorker{}
	units, _ := unitsHandler(w)
	next := &eventPath{}
	h := handlers.WithUnits(units, next)
	invokeBatch(t, h, context.Background(), batchPayload(t, unitRecord{body: unitBody("111111111111")}))
	if len(w.calls) != 1 || len(next.got) != 0 {
		t.Fatalf("units batch: worker %d calls, event path %d", len(w.calls), len(next.got))
	}
	events := batchPayload(t, unitRecord{body: `{"source":"aws.ec2"}`, queueARN: "arn:aws:sqs:us-east-1:" + home + ":housekeeper-sharing-events"})
	for _, p := range [][]byte{events, []byte(`{"source":"aws.events"}`)} {
		if out, err := h.Invoke(context.Background(), p); err != nil || string(out) != `{"outcome":"event path"}` {
			t.Errorf("%s: %s %v", p, out, err)
		}
	}
	if len(w.calls) != 1 || len(next.got) != 2 {
		t.Errorf("worker %d calls, event path %d; want 1 and 2", len(w.calls), len(next.got))
	}
}

func TestUnitsQueueFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	good := []string{fanout.EnvUnitsQueueCleanup, unitsQueue, fanout.EnvLedgerTable, "ledger", handlers.EnvUnitsMaxReceive, "5"}
	q, err := handlers.UnitsQueueFromEnv(env(good...), fanout.JobCleanup)
	if err != nil || q != (handlers.UnitsQueue{Name: unitsQueue, MaxReceive: 5, Ledger: "ledger"}) {
		t.Fatalf("%+v %v", q, err)
	}
	for _, tt := range []struct {
		name string
		env  []string
		job  string
		want string
	}{
		{"the audit's queue unset", good, fanout.JobSharingAudit, fanout.EnvUnitsQueueSharingAudit + " is not set"},
		{"not FIFO", []string{fanout.EnvUnitsQueueCleanup, "units", fanout.EnvLedgerTable, "l", handlers.EnvUnitsMaxReceive, "5"}, fanout.JobCleanup, "not a FIFO queue"},
		{"no ledger", []string{fanout.EnvUnitsQueueCleanup, unitsQueue, handlers.EnvUnitsMaxReceive, "5"}, fanout.JobCleanup, fanout.EnvLedgerTable},
		{"no max receive", good[:4], fanout.JobCleanup, handlers.EnvUnitsMaxReceive},
		{"max receive 0", append(good[:4:4], handlers.EnvUnitsMaxReceive, "0"), fanout.JobCleanup, "1 to 1000"},
		{"max receive not a number", append(good[:4:4], handlers.EnvUnitsMaxReceive, "ten"), fanout.JobCleanup, "1 to 1000"},
		{"unknown job", good, "tagging", "not a job"},
	} {
		if _, err := handlers.UnitsQueueFromEnv(env(tt.env...), tt.job); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error naming %q", tt.name, err, tt.want)
		}
	}
}
