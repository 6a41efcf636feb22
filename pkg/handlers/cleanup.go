package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Cleanup outcomes.
const (
	OutcomeAudit    = "audit"    // planned and reported, nothing changed
	OutcomeEnforced = "enforced" // planned and applied
	OutcomeBlocked  = "blocked"  // inventory incomplete: nothing changed
)

// SweepIncompleteError is returned when a sweep could not read its whole
// inventory or some actions failed: Lambda retries the (idempotent) sweep,
// and the errors alarm fires if it keeps happening. Its type name is what
// Lambda reports as errorType.
type SweepIncompleteError struct{ Reason string }

func (e *SweepIncompleteError) Error() string { return "cleanup sweep incomplete: " + e.Reason }

// CleanupResponse is what an invocation returns.
type CleanupResponse struct {
	Outcome          string         `json:"outcome"`
	Reason           string         `json:"reason,omitempty"`
	Account          string         `json:"account,omitempty"`
	Region           string         `json:"region,omitempty"`
	Totals           cleanup.Totals `json:"totals"`
	Deregistered     int            `json:"deregistered"`
	SnapshotsDeleted int            `json:"snapshots_deleted"`
	GiBFreed         int64          `json:"gib_freed"`
	Failed           int            `json:"failed"`
}

// Cleanup handles the cleanup function's scheduled invocations.
type Cleanup struct {
	// Sweeper builds the sweep engine for a region.
	Sweeper func(region string) *sweep.Sweeper
	// Notifier builds the report's notifier for a region (nil: no report).
	Notifier func(region string) notify.Notifier
	Policy   policy.Retention
	// Account is the account this deployment serves ("" = from the function ARN).
	Account string
	Log     *slog.Logger
	// Metrics receives the Embedded Metric Format line (stdout in Lambda).
	Metrics io.Writer
}

// Invoke implements lambda.Handler on the raw payload.
func (h *Cleanup) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	resp, err := h.Handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

// Handle runs one sweep for the account and region of a scheduled event.
func (h *Cleanup) Handle(ctx context.Context, raw []byte) (CleanupResponse, error) {
	ev, err := amievents.Parse(raw)
	if err == nil {
		if _, ok := ev.(*amievents.Scheduled); !ok {
			err = &amievents.InvalidEventError{Field: "source/detail-type", Problem: "the cleanup function runs on \"aws.events\" / \"Scheduled Event\" only; got a " + ev.Meta().Kind + " event"}
		}
	}
	if err != nil {
		h.Log.ErrorContext(ctx, "cleanup invocation", slog.String(logging.KeyFunction, "cleanup"),
			slog.String(logging.KeyOutcome, OutcomeRejected), slog.String(logging.KeyReason, err.Error()))
		return CleanupResponse{Outcome: OutcomeRejected, Reason: err.Error()}, nil
	}
	meta := ev.Meta()
	if want := expectedAccount(ctx, h.Account); want != "" && meta.Account != want {
		reason := fmt.Sprintf("invalid event: account: %q is not this deployment's account %q", meta.Account, want)
		h.Log.ErrorContext(ctx, "cleanup invocation", slog.String(logging.KeyFunction, "cleanup"),
			slog.String(logging.KeyOutcome, OutcomeRejected), slog.String(logging.KeyReason, reason))
		return CleanupResponse{Outcome: OutcomeRejected, Reason: reason}, nil
	}

	rep := h.Sweeper(meta.Region).Run(ctx, meta.Account, meta.Region, h.Policy)
	rep.Log(ctx, h.Log)
	if h.Metrics != nil {
		if err := rep.WriteEMF(h.Metrics, time.Now()); err != nil {
			h.Log.ErrorContext(ctx, "writing metrics", slog.String(logging.KeyError, err.Error()))
		}
	}
	if h.Notifier != nil {
		if err := rep.Publish(ctx, h.Notifier(meta.Region)); err != nil {
			h.Log.ErrorContext(ctx, "publishing the cleanup report", slog.String(logging.KeyError, err.Error()))
		}
	}

	resp := CleanupResponse{Account: meta.Account, Region: meta.Region, Totals: rep.Plan.Totals, Outcome: OutcomeAudit}
	switch {
	case rep.Plan.Blocked != "":
		resp.Outcome, resp.Reason = OutcomeBlocked, rep.Plan.Blocked
	case rep.Results != nil:
		resp.Outcome = OutcomeEnforced
		resp.Deregistered, resp.SnapshotsDeleted = rep.Results.Deregistered, rep.Results.SnapshotsDeleted
		resp.GiBFreed, resp.Failed = rep.Results.GiBFreed, rep.Results.Failed
	}
	if resp.Outcome == OutcomeBlocked || resp.Failed > 0 {
		return resp, &SweepIncompleteError{Reason: firstNonEmpty(resp.Reason, fmt.Sprintf("%d actions failed", resp.Failed))}
	}
	return resp, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
