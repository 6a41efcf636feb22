package handlers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// CleanupUnits is the cleanup's job on an organization sweep's unit: one
// sweep of the unit's account and region through that account's clients,
// with the account's effective policy, reported as the single-account
// sweep is (decision lines, summary line, EMF line, "AMI Cleanup Report"
// event), and returned as the unit's result.
type CleanupUnits struct {
	// Sweeper builds the sweep engine over an account's clients for a
	// region, as the single-account function builds it over its own, with
	// the effective policy (its tagging section, for the tagger's coverage).
	Sweeper func(clients *awsapi.Clients, region string, pol *policy.Policy) *sweep.Sweeper
	// Policy returns an account's effective policy for this invocation
	// ((*policy.Policy).For of the invocation's policy, which keeps a forced
	// audit: the kill switch and the dry run hold in every account).
	Policy func(acct org.Account) (*policy.Policy, error)
	// Notifier, when set, publishes each unit's report (the central
	// account's bus; the summary of the sweep goes out once, apart).
	Notifier *notify.Notifier
	Log      *slog.Logger
	// Metrics receives each unit's EMF line (nil: none).
	Metrics io.Writer
}

var _ fanout.Job = (&CleanupUnits{}).Run

// Run is a fanout.Job. The result counts what the sweep did; a sweep that
// stopped before its end (its deadline, the kill switch, failed actions)
// is "partial", and the next sweep resumes from the cleanup's records; one
// that could not read its whole inventory changed nothing and is "partial"
// with Blocked. An error (the effective policy cannot be made) is retried
// until the unit's last receive, then recorded "failed".
func (j *CleanupUnits) Run(ctx context.Context, clients *awsapi.Clients, acct org.Account, u fanout.Unit) (fanout.UnitResult, error) {
	pol, err := j.Policy(acct)
	if err != nil {
		return fanout.UnitResult{}, fmt.Errorf("effective policy of account %s: %w", acct.ID, err)
	}
	log := j.Log.With(slog.String(logging.KeySweep, u.Sweep), slog.String(logging.KeyUnit, u.ID()))
	rep := j.Sweeper(clients, u.Region, pol).Run(ctx, u.Account, u.Region, pol.Retention)
	rep.Log(ctx, log)
	if j.Metrics != nil {
		if err := rep.WriteEMF(j.Metrics, time.Now()); err != nil {
			log.ErrorContext(ctx, "writing metrics", slog.String(logging.KeyError, err.Error()))
		}
	}
	if j.Notifier != nil {
		if err := rep.Publish(ctx, *j.Notifier); err != nil {
			log.ErrorContext(ctx, "publishing the cleanup report", slog.String(logging.KeyError, err.Error()))
		}
	}
	return cleanupResult(u, rep, pol.Retention.PricePerGiBMonth), nil
}

// cleanupResult is a sweep's report as a unit's result.
func cleanupResult(u fanout.Unit, rep *sweep.Report, pricePerGiBMonth float64) fanout.UnitResult {
	res := fanout.UnitResult{Unit: u, Status: fanout.StatusDone, AMIsSeen: rep.Plan.Totals.Considered}
	if r := rep.Results; r != nil {
		res.Deregistered, res.SnapshotsDeleted, res.GiBFreed = r.Deregistered, r.SnapshotsDeleted, r.GiBFreed
		res.USDPerMonthSaved = float64(r.GiBFreed) * pricePerGiBMonth
	}
	if rep.Plan.Blocked != "" {
		res.Status, res.Blocked = fanout.StatusPartial, rep.Plan.Blocked
		res.Reason = "nothing changed: " + rep.Plan.Blocked
		return res
	}
	r := rep.Results
	if r == nil {
		return res // audit: the plan is the whole job
	}
	var why []string
	if r.Refused != "" {
		why = append(why, "plan refused: "+r.Refused)
	}
	if r.Halted != "" {
		why = append(why, "halted: "+r.Halted)
	}
	if r.Failed > 0 {
		why = append(why, fmt.Sprintf("%d actions failed", r.Failed))
	}
	if r.NotStarted > 0 && r.Halted == "" {
		why = append(why, fmt.Sprintf("%d actions not started: out of time", r.NotStarted))
	}
	if len(why) > 0 {
		res.Status = fanout.StatusPartial
		res.Reason = strings.Join(why, "; ") + "; the next sweep resumes"
	}
	return res
}
