package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// Job runs one unit in its account and region with that account's clients
// and returns what it did: Status done, or partial (with Reason) when it
// stopped before its end. An error means it may succeed later.
type Job func(ctx context.Context, clients *awsapi.Clients, acct org.Account, u Unit) (UnitResult, error)

// AccountClients hands out an account's clients (awsapi.Accounts): a
// *awsapi.RoleError when the account cannot be reached.
type AccountClients interface {
	For(ctx context.Context, account string) (*awsapi.Clients, error)
}

var _ AccountClients = (*awsapi.Accounts)(nil)

// unreachableCodes are the errors that say an account or region refuses
// this deployment (member role without a permission, region not enabled,
// credentials not valid there): retrying cannot help, so the unit is
// recorded unreachable with the error, never silently dropped.
var unreachableCodes = map[string]bool{
	"AuthFailure":                 true,
	"UnauthorizedOperation":       true,
	"OptInRequired":               true,
	"AccessDenied":                true,
	"AccessDeniedException":       true,
	"InvalidClientTokenId":        true,
	"UnrecognizedClientException": true,
}

// Unreachable says whether err means the account or region cannot be
// worked on and a retry will not change that: a *awsapi.RoleError that is
// not transient (STS throttled or unavailable is retried, as the event path
// does), or one of unreachableCodes.
func Unreachable(err error) bool {
	if _, ok := errors.AsType[*awsapi.RoleError](err); ok {
		return awserr.Classify(err) != awserr.KindThrottled
	}
	return unreachableCodes[awserr.Code(err)]
}

// Worker runs the units of organization sweeps, one per call: the cleanup
// and the sharing guard's audit, fed by their units queues.
type Worker struct {
	// Directory returns the organization as it is now (org.Cache).
	Directory func(ctx context.Context) (*org.Directory, error)
	Accounts  AccountClients
	Ledger    *Ledger
	// Publish sends the summary of a sweep this worker completes (nil:
	// logged only).
	Publish func(context.Context, Summary) error
	Log     *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// Run runs unit u with job, at most once per sweep, and logs one line.
//
// A unit of a sweep the ledger does not know, or of another job, is
// rejected; one already recorded is skipped (a duplicate delivery). A unit
// out of scope is recorded "out-of-scope" without any call; one whose
// account cannot be reached "unreachable", not retried. A job error is
// returned (the caller reports a batch item failure and SQS delivers the
// unit again), except on the unit's last allowed receive (lastAttempt),
// where it is recorded "failed" so that the sweep still completes. The
// worker whose record completes the sweep publishes its summary; if that
// fails, a *SummaryError is returned and the redelivered unit, skipped as
// done, tries again.
//
// A nil error means the unit is settled: delete it from the queue.
func (w *Worker) Run(ctx context.Context, u Unit, lastAttempt bool, job Job) (UnitResult, error) {
	start := time.Now()
	res, summarized, err := w.run(ctx, u, lastAttempt, job)
	attrs := []any{slog.String(logging.KeySweep, u.Sweep), slog.String(logging.KeyUnit, u.ID()), slog.String(logging.KeyJob, u.Job),
		slog.String(logging.KeyAccount, u.Account), slog.String(logging.KeyRegion, u.Region), slog.String(logging.KeyOU, u.OU),
		slog.String(logging.KeyStatus, res.Status), slog.Bool("last_attempt", lastAttempt), slog.Bool("summarized", summarized),
		slog.Int64(logging.KeyDurationMS, time.Since(start).Milliseconds())}
	if res.Reason != "" {
		attrs = append(attrs, slog.String(logging.KeyReason, res.Reason))
	}
	if err != nil {
		attrs = append(attrs, slog.String(logging.KeyOutcome, "retry"), slog.String(logging.KeyError, err.Error()),
			slog.String(logging.KeyErrorKind, awserr.Classify(err).String()))
		w.Log.ErrorContext(ctx, "unit", attrs...)
		return res, err
	}
	level := slog.LevelInfo
	if res.Status != StatusDone && res.Status != StatusDuplicate {
		level = slog.LevelWarn
	}
	w.Log.Log(ctx, level, "unit", append(attrs, slog.String(logging.KeyOutcome, res.Status))...)
	return res, nil
}

func (w *Worker) run(ctx context.Context, u Unit, lastAttempt bool, job Job) (UnitResult, bool, error) {
	res := UnitResult{Unit: u}
	meta, found, err := w.Ledger.Meta(ctx, u.Sweep)
	if err != nil {
		return res, false, err
	}
	if !found || meta.Job != u.Job {
		res.Status, res.Reason = StatusRejected, fmt.Sprintf("sweep %q is not a %s sweep the ledger knows", u.Sweep, u.Job)
		return res, false, nil
	}
	// Only the sweep's own units count toward it: an extra one (a direct
	// invocation) could otherwise complete the sweep before a real unit.
	if len(meta.Targets) > 0 && !slices.ContainsFunc(meta.Targets, func(t org.Target) bool { return t.Account == u.Account && t.Region == u.Region }) {
		res.Status, res.Reason = StatusRejected, fmt.Sprintf("unit %s is not one of sweep %s's units", u.ID(), u.Sweep)
		return res, false, nil
	}
	done, err := w.Ledger.Done(ctx, u.Sweep, u.ID())
	if err != nil {
		return res, false, err
	}
	if done {
		// A duplicate delivery, or the redelivery of a unit whose summary
		// could not be sent: the sweep may be complete and unpublished.
		res.Status = StatusDuplicate
		summarized, err := finish(ctx, w.Ledger, w.Publish, w.Log, u.Sweep)
		return res, summarized, err
	}

	// The job gets the invocation's time but RecordReserve: a job that used
	// it all could not be recorded, and its redelivery would run it again
	// with a fresh per-run cap. Recording and the summary then run on their
	// own bounded time, even if the job ended on its deadline.
	jctx, cancel := withReserve(ctx, RecordReserve)
	res, err = w.attempt(jctx, u, job)
	cancel()
	// The record's time ends a second before the invocation's, if it has
	// a deadline: past it Lambda ends the process mid-record.
	var rctx context.Context
	var rcancel context.CancelFunc
	if dl, ok := ctx.Deadline(); ok {
		rctx, rcancel = context.WithDeadline(context.WithoutCancel(ctx), dl.Add(-time.Second))
	} else {
		rctx, rcancel = context.WithTimeout(context.WithoutCancel(ctx), RecordReserve)
	}
	defer rcancel()
	ctx = rctx
	if err != nil {
		if !lastAttempt {
			return res, false, fmt.Errorf("unit %s of sweep %s: %w", u.ID(), u.Sweep, err)
		}
		res.Status, res.Reason = StatusFailed, "last attempt: "+err.Error()
	}
	res.Unit = u
	if res.Finished.IsZero() {
		res.Finished = w.now()
	}
	rec, err := w.Ledger.Record(ctx, res)
	if err != nil {
		return res, false, err
	}
	if rec.Duplicate {
		// Another delivery recorded it while this one ran (the job is
		// idempotent); its record stands.
		res.Status, res.Reason = StatusDuplicate, "recorded by another delivery while this one ran"
	}
	if !rec.Complete {
		return res, false, nil
	}
	summarized, err := finish(ctx, w.Ledger, w.Publish, w.Log, u.Sweep)
	return res, summarized, err
}

// runJob runs job, turning a panic into an error: a unit whose job panics
// on every delivery is then recorded "failed" on its last receive instead
// of dying into the DLQ and holding back its sweep's summary. (A panic in
// a goroutine the job starts, or running out of memory, still ends the
// process.)
func (w *Worker) runJob(ctx context.Context, job Job, clients *awsapi.Clients, acct org.Account, u Unit) (r UnitResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			w.Log.ErrorContext(ctx, "unit job panicked", slog.String(logging.KeySweep, u.Sweep), slog.String(logging.KeyUnit, u.ID()),
				slog.String(logging.KeyError, fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
			r, err = UnitResult{Unit: u}, fmt.Errorf("the job panicked: %v", p)
		}
	}()
	return job(ctx, clients, acct, u)
}

// RecordReserve is the time kept, out of the invocation's, to record a
// unit and publish its sweep's summary after the job.
const RecordReserve = 30 * time.Second

// withReserve returns ctx with its deadline moved reserve earlier (ctx
// itself when it has none).
func withReserve(ctx context.Context, reserve time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, dl.Add(-reserve))
	}
	return context.WithCancel(ctx)
}

// attempt checks the unit's scope, reaches its account and runs the job.
// An error is one that may pass; every other outcome is in the result.
func (w *Worker) attempt(ctx context.Context, u Unit, job Job) (UnitResult, error) {
	res := UnitResult{Unit: u}
	dir, err := w.Directory(ctx)
	if err != nil {
		return res, fmt.Errorf("reading the organization: %w", err)
	}
	acct, ok := dir.InScope(u.Account)
	if !ok {
		res.Status, res.Reason = StatusOutOfScope, fmt.Sprintf("account %s is not in the deployment's scope", u.Account)
		if why := dir.Skipped[u.Account]; why != "" {
			res.Reason += ": " + why
		}
		return res, nil
	}
	if !dir.HasRegion(u.Region) {
		res.Status, res.Reason = StatusOutOfScope, fmt.Sprintf("region %s is not in the deployment's scope", u.Region)
		return res, nil
	}
	clients, err := w.Accounts.For(ctx, u.Account)
	if err != nil {
		if Unreachable(err) {
			res.Status, res.Reason = StatusUnreachable, err.Error()
			return res, nil
		}
		return res, fmt.Errorf("reaching account %s: %w", u.Account, err)
	}
	r, err := w.runJob(ctx, job, clients, acct, u)
	if err != nil {
		if Unreachable(err) {
			r.Status, r.Reason = StatusUnreachable, err.Error()
			return r, nil
		}
		return r, err
	}
	switch r.Status {
	case "":
		r.Status = StatusDone
	case StatusDone, StatusPartial:
	default:
		return r, fmt.Errorf("job %s returned status %q (done or partial expected)", u.Job, r.Status)
	}
	return r, nil
}
