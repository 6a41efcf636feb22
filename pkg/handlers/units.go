package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
)

// EnvUnitsMaxReceive is the units queues' maxReceiveCount (the stack sets
// the queues' redrive policy and this from one value): the receive that is
// a unit's last, on which a failing unit is recorded "failed" so that its
// sweep's summary still completes.
const EnvUnitsMaxReceive = "HOUSEKEEPER_UNITS_MAX_RECEIVE"

// maxReceiveLimit is SQS's bound on a redrive policy's maxReceiveCount.
const maxReceiveLimit = 1000

// unitReserve is the end of an invocation in which no further unit of a
// batch is started (the stack's batch size is 1, so only a batch larger
// than configured meets it): it goes back to the queue instead.
const unitReserve = time.Minute

// Reasons of the units path.
const (
	reasonUnitNotStarted = "not started: the invocation's deadline is too close; back in the queue"
	reasonAfterFailure   = "not started: an earlier unit of the batch failed, and a FIFO queue's group must not be overtaken; back in the queue"
	reasonUnitsOnly      = "in organization mode the cleanup runs per account and region as units of the dispatcher's " +
		"sweeps (its units queue), never on a direct invocation"
)

// UnitsQueue is a worker function's units queue as the environment names
// it.
type UnitsQueue struct {
	// Name is the queue's name (the end of the records' eventSourceARN).
	Name string
	// MaxReceive is its redrive policy's maxReceiveCount.
	MaxReceive int
	// Ledger is the ledger table's name.
	Ledger string
}

// UnitsQueueFromEnv reads job's units queue (fanout.EnvUnitsQueueCleanup
// or fanout.EnvUnitsQueueSharingAudit), EnvUnitsMaxReceive and
// fanout.EnvLedgerTable through getenv. Each is required in organization
// mode: the error names what is missing or wrong, and the cold start
// fails on it.
func UnitsQueueFromEnv(getenv func(string) string, job string) (UnitsQueue, error) {
	var env string
	switch job {
	case fanout.JobCleanup:
		env = fanout.EnvUnitsQueueCleanup
	case fanout.JobSharingAudit:
		env = fanout.EnvUnitsQueueSharingAudit
	default:
		return UnitsQueue{}, fmt.Errorf("units queue: %q is not a job with a units queue", job)
	}
	q := UnitsQueue{Name: strings.TrimSpace(getenv(env)), Ledger: strings.TrimSpace(getenv(fanout.EnvLedgerTable))}
	switch {
	case q.Name == "":
		return q, fmt.Errorf("organization mode: %s is not set (the %s units queue's name)", env, job)
	case !strings.HasSuffix(q.Name, ".fifo"):
		return q, fmt.Errorf("organization mode: %s=%q is not a FIFO queue's name (.fifo)", env, q.Name)
	case q.Ledger == "":
		return q, fmt.Errorf("organization mode: %s is not set (the ledger table's name)", fanout.EnvLedgerTable)
	}
	raw := strings.TrimSpace(getenv(EnvUnitsMaxReceive))
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > maxReceiveLimit {
		return q, fmt.Errorf("organization mode: %s=%q: want the units queues' maxReceiveCount, 1 to %d", EnvUnitsMaxReceive, raw, maxReceiveLimit)
	}
	q.MaxReceive = n
	return q, nil
}

// UnitWorker runs one unit of a sweep (*fanout.Worker): a nil error means
// the unit is settled (recorded, or a duplicate, or rejected); an error
// that it must come back.
type UnitWorker interface {
	Run(ctx context.Context, u fanout.Unit, lastAttempt bool, job fanout.Job) (fanout.UnitResult, error)
}

var _ UnitWorker = (*fanout.Worker)(nil)

// Units handles the SQS batches of one units FIFO queue: each record is a
// unit of an organization sweep, run by Worker with Job, and the batch is
// answered with the units to deliver again (ReportBatchItemFailures).
//
// A record is only taken from the configured queue (the end of its
// eventSourceARN, in the deployment's account when Account is set) and
// only for its job; anything else is rejected: logged, dropped, never run,
// never retried. Its receive count against MaxReceive tells the worker
// whether it is the unit's last attempt.
type Units struct {
	// Function names the function in the logs ("cleanup", "sharing").
	Function string
	// Job is the job the queue carries (fanout.JobCleanup or
	// fanout.JobSharingAudit).
	Job   string
	Queue UnitsQueue
	// Account is the deployment's (central) account, which owns the queue
	// ("": not checked).
	Account string
	Worker  UnitWorker
	Run     fanout.Job
	Log     *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// UnitsResponse is the answer to a payload that is not an SQS batch.
type UnitsResponse struct {
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
}

// Invoke implements lambda.Handler: an SQS batch of units is handled; any
// other payload is rejected.
func (h *Units) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	recs, err := amievents.ParseSQS(payload)
	switch {
	case err != nil:
		return json.Marshal(rejectedBatch(ctx, h.Log, h.Function, err))
	case recs == nil:
		h.Log.ErrorContext(ctx, h.Function+" invocation", slog.String(logging.KeyFunction, h.Function),
			slog.String(logging.KeyOutcome, OutcomeRejected), slog.String(logging.KeyReason, reasonUnitsOnly))
		return json.Marshal(UnitsResponse{Outcome: OutcomeRejected, Reason: reasonUnitsOnly})
	}
	return json.Marshal(h.HandleBatch(ctx, recs))
}

// HandleBatch runs the batch's units one after another. A unit whose
// worker returns an error is reported for redelivery, and so is every
// later record of the batch, not started: the FIFO queue must not see a
// message group's later unit overtake an earlier one (AWS asks a FIFO
// consumer to stop at the first failure). A batch near its deadline
// starts no further unit.
func (h *Units) HandleBatch(ctx context.Context, recs []amievents.SQSRecord) events.SQSEventResponse {
	var resp events.SQSEventResponse
	sum := BatchSummary{Records: len(recs)}
	retry := func(rec amievents.SQSRecord) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageID})
		sum.Failed++
	}
	stopped := ""
	for _, rec := range recs {
		if stopped == "" {
			if dl, ok := ctx.Deadline(); ok && dl.Sub(h.now()) < unitReserve {
				stopped = reasonUnitNotStarted
			}
		}
		if stopped != "" {
			h.Log.WarnContext(ctx, h.Function+" unit record", slog.String(logging.KeyFunction, h.Function),
				slog.String(logging.KeyMessageID, rec.MessageID), slog.String(logging.KeyOutcome, "retry"), slog.String(logging.KeyReason, stopped))
			retry(rec)
			continue
		}
		u, reason := h.vet(rec)
		if reason != "" {
			sum.Rejected++
			h.Log.ErrorContext(ctx, h.Function+" unit record", slog.String(logging.KeyFunction, h.Function),
				slog.String(logging.KeyMessageID, rec.MessageID), slog.String(logging.KeyOutcome, OutcomeRejected), slog.String(logging.KeyReason, reason))
			continue
		}
		// The worker logs the unit's own line (status, reason, duration).
		last := h.Queue.MaxReceive > 0 && rec.ReceiveCount >= h.Queue.MaxReceive
		if _, err := h.Worker.Run(ctx, u, last, h.Run); err != nil {
			retry(rec)
			stopped = reasonAfterFailure
			continue
		}
		sum.Succeeded++
	}
	level := slog.LevelInfo
	if sum.Failed > 0 || sum.Rejected > 0 {
		level = slog.LevelWarn
	}
	h.Log.Log(ctx, level, h.Function+" units batch", slog.String(logging.KeyFunction, h.Function), slog.String("queue", h.Queue.Name),
		slog.Int(logging.KeyRecords, sum.Records), slog.Int(logging.KeySucceeded, sum.Succeeded), slog.Int(logging.KeyFailed, sum.Failed),
		slog.Int(logging.KeyRejected, sum.Rejected))
	if resp.BatchItemFailures == nil {
		resp.BatchItemFailures = []events.SQSBatchItemFailure{}
	}
	return resp
}

// vet returns the record's unit, or why it is rejected. It makes no call.
func (h *Units) vet(rec amievents.SQSRecord) (fanout.Unit, string) {
	if rec.QueueName != h.Queue.Name {
		return fanout.Unit{}, fmt.Sprintf("record from %q, not this function's units queue %q: a unit is only taken from its queue", rec.QueueARN, h.Queue.Name)
	}
	if h.Account != "" && rec.QueueAccount != h.Account {
		return fanout.Unit{}, fmt.Sprintf("record from %q, a queue of account %q, not of this deployment's account %q", rec.QueueARN, rec.QueueAccount, h.Account)
	}
	u, err := fanout.ParseUnit(rec.Body)
	if err != nil {
		return fanout.Unit{}, err.Error()
	}
	if u.Job != h.Job {
		return fanout.Unit{}, fmt.Sprintf("unit of job %q on the %s units queue: %s runs %s units only", u.Job, h.Job, h.Function, h.Job)
	}
	return u, ""
}

func (h *Units) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// WithUnits routes an SQS batch whose first record comes from the units
// queue to units, and every other payload to next (the function's event
// path). ESM feeds one queue per mapping, so a batch never mixes queues;
// if one did, Units would reject the records of other queues by name.
func WithUnits(units *Units, next lambda.Handler) lambda.Handler {
	return handlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		recs, err := amievents.ParseSQS(payload)
		if err == nil && len(recs) > 0 && recs[0].QueueName == units.Queue.Name {
			return json.Marshal(units.HandleBatch(ctx, recs))
		}
		return next.Invoke(ctx, payload)
	})
}

type handlerFunc func(context.Context, []byte) ([]byte, error)

func (f handlerFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}
