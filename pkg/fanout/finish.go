package fanout

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
)

// SummaryError is a complete sweep whose summary could not be built or
// sent. The claim was given back: the next delivery of any of the sweep's
// units (the unit itself is skipped as done) or the next dispatch attempt
// tries again.
type SummaryError struct {
	Sweep string
	Err   error
}

func (e *SummaryError) Error() string {
	return fmt.Sprintf("sweep %s complete, summary not published: %v", e.Sweep, e.Err)
}

func (e *SummaryError) Unwrap() error { return e.Err }

// finish publishes the summary of sweep if it is complete and this caller
// wins the claim (Ledger.Claim): exactly one caller publishes, and a failed
// publication is given back for a later caller. It logs the summary line
// and says whether this caller published.
func finish(ctx context.Context, l *Ledger, publish func(context.Context, Summary) error, log *slog.Logger, sweep string) (bool, error) {
	claimed, ok, err := l.Claim(ctx, sweep)
	if err != nil || !ok {
		return false, err
	}
	release := func(cause error) error {
		if rerr := l.Release(ctx, sweep, claimed); rerr != nil {
			log.ErrorContext(ctx, "summary claim not released", slog.String(logging.KeySweep, sweep), slog.String(logging.KeyError, rerr.Error()))
		}
		return &SummaryError{Sweep: sweep, Err: cause}
	}
	sum, err := l.Summary(ctx, sweep)
	if err != nil {
		return false, release(err)
	}
	t := sum.Totals
	log.InfoContext(ctx, "sweep summary", slog.String(logging.KeySweep, sweep), slog.String(logging.KeyJob, sum.Job),
		slog.Int(logging.KeyExpected, sum.Expected), slog.Int(logging.KeyUnits, t.Units), slog.Int("done", t.Done), slog.Int("partial", t.Partial),
		slog.Int("unreachable", t.Unreachable), slog.Int(logging.KeyFailed, t.Failed), slog.Int("out_of_scope", t.OutOfScope),
		slog.Int("accounts_covered", len(sum.Accounts)), slog.Int(logging.KeySkipped, len(sum.Skipped)),
		slog.Int("deregistered", t.Deregistered), slog.Int64("gib_freed", t.GiBFreed), slog.Float64("usd_per_month_saved", t.USDPerMonthSaved),
		slog.Int("violations", t.Violations), slog.Int("revoked", t.Revoked))
	if publish != nil {
		if err := publish(ctx, sum); err != nil {
			return false, release(err)
		}
	}
	if err := l.Published(ctx, sweep); err != nil {
		// The summary is out; only a delivery after the claim's lease could
		// send it again.
		log.ErrorContext(ctx, "summary published but not marked", slog.String(logging.KeySweep, sweep), slog.String(logging.KeyError, err.Error()))
	}
	return true, nil
}
