package sweep

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emf"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
)

// Published report identity.
const (
	EventDetailType = "AMI Cleanup Report"
	// maxEventDecisions bounds the decisions listed in the EventBridge event
	// (events are limited to 256 KB); the logs always have all of them.
	maxEventDecisions = 200
)

// outcome says what happened to a decision: audit, done, failed, not done,
// halted (the kill switch stopped the run first), or kept on the recheck
// right before removal (then the second string is why).
func (r *Report) outcome(d cleanup.Decision) (string, string) {
	switch d.Action {
	case cleanup.ActionKeep, cleanup.ActionSkip, cleanup.ActionWait, cleanup.ActionPending:
		return "no-change", ""
	}
	if r.Results == nil {
		if r.Plan.Blocked != "" {
			return "blocked", ""
		}
		return "audit", ""
	}
	for _, ir := range r.Results.Images {
		if ir.ImageID == d.ImageID {
			switch {
			case ir.Done:
				return "done", ""
			case len(ir.KeptBecause) > 0:
				return "kept-on-recheck", strings.Join(ir.KeptBecause, "; ")
			case ir.Error == execute.Halted:
				return "halted", r.Results.Halted
			}
			return "failed", ir.Error
		}
	}
	return "not-done", ""
}

// Log writes one line per decision and per orphaned snapshot, then one
// summary line, all with stable keys. The mode is not among them: log is
// the invocation's logger, which carries logging.KeyMode and
// logging.KeyModeReason on every line (pkg/coldstart).
func (r *Report) Log(ctx context.Context, log *slog.Logger) {
	for _, d := range r.Plan.Decisions {
		outcome, errText := r.outcome(d)
		attrs := []any{
			slog.String(logging.KeyFunction, "cleanup"),
			slog.String(logging.KeyImageID, d.ImageID),
			slog.String("name", d.Name),
			slog.String("action", string(d.Action)),
			slog.Any("reasons", d.Reasons),
			slog.String(logging.KeyOutcome, outcome),
		}
		if d.Rule != "" {
			attrs = append(attrs, slog.String("rule", d.Rule), slog.String("family", d.Family))
		}
		if d.DeleteAfter != "" {
			attrs = append(attrs, slog.String("delete_after", d.DeleteAfter))
		}
		if len(d.DeleteSnapshots) > 0 {
			attrs = append(attrs, slog.Any(logging.KeySnapshotIDs, d.DeleteSnapshots), slog.Int64("size_gib", d.SizeGiB))
		}
		if len(d.KeptSnapshots) > 0 {
			attrs = append(attrs, slog.Any("kept_snapshots", d.KeptSnapshots))
		}
		if d.UsageReport != "" {
			attrs = append(attrs, slog.String("usage_report", d.UsageReport))
		}
		switch {
		case outcome == "kept-on-recheck":
			attrs = append(attrs, slog.String("kept_because", errText))
		case outcome == "halted":
			attrs = append(attrs, slog.String("halted", errText))
		case errText != "":
			attrs = append(attrs, slog.String(logging.KeyError, errText))
		}
		log.InfoContext(ctx, "cleanup decision", attrs...)
	}
	for _, o := range r.Plan.Orphans {
		log.InfoContext(ctx, "cleanup snapshot decision",
			slog.String(logging.KeyFunction, "cleanup"),
			slog.String("snapshot_id", o.SnapshotID),
			slog.String(logging.KeyImageID, o.ImageID),
			slog.String("action", string(o.Action)),
			slog.Any("reasons", o.Reasons),
			slog.Int64("size_gib", o.SizeGiB))
	}
	attrs := []any{
		slog.String(logging.KeyFunction, "cleanup"),
		slog.String(logging.KeyAccount, r.Account),
		slog.String(logging.KeyRegion, r.Region),
		slog.Any("totals", r.Plan.Totals),
		slog.Bool("completed", r.Completed()),
		slog.Int64(logging.KeyDurationMS, r.Duration.Milliseconds()),
	}
	level := slog.LevelInfo
	if r.Plan.Blocked != "" {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("blocked", r.Plan.Blocked))
	}
	if r.Plan.RecoverableUntil != "" {
		attrs = append(attrs, slog.String("recoverable_until", r.Plan.RecoverableUntil))
	}
	if len(r.Problems) > 0 {
		attrs = append(attrs, slog.Any("problems", r.Problems))
	}
	if r.UsageReportsRequested > 0 {
		attrs = append(attrs, slog.Int("usage_reports_requested", r.UsageReportsRequested))
	}
	if c := r.Tagger; c != nil {
		attrs = append(attrs, slog.Any("tagger", c))
		if c.Untagged > 0 || c.WithoutCreator > 0 {
			level = max(level, slog.LevelWarn) // the tagger's events are not arriving
		}
	}
	if r.Results != nil {
		attrs = append(attrs, slog.Int("deregistered", r.Results.Deregistered), slog.Int("snapshots_deleted", r.Results.SnapshotsDeleted),
			slog.Int64("gib_freed", r.Results.GiBFreed), slog.Int("failed", r.Results.Failed), slog.Int("throttled", r.Results.Throttled),
			slog.Int("kept_on_recheck", r.Results.KeptOnRecheck))
		if r.Results.KeptOnRecheck > 0 {
			level = max(level, slog.LevelWarn) // the inventory missed something, or it changed
		}
		if r.Results.NotStarted > 0 {
			attrs = append(attrs, slog.Int("not_started", r.Results.NotStarted))
		}
		if r.Results.Halted != "" {
			level = max(level, slog.LevelWarn)
			attrs = append(attrs, slog.String("halted", r.Results.Halted))
		}
		if r.Results.Failed > 0 {
			level = slog.LevelError
		}
	}
	log.Log(ctx, level, "cleanup summary", attrs...)
}

// Completed tells whether the sweep read its whole inventory and carried
// out its whole plan: planned it in audit mode, or applied every decision in
// enforce mode with none failed, left for lack of time or halted. It is the
// RunsCompleted metric, on which the stack alarms when it goes missing.
func (r *Report) Completed() bool {
	if r.Plan.Blocked != "" {
		return false
	}
	if res := r.Results; res != nil {
		return res.Refused == "" && res.Halted == "" && res.Failed == 0 && res.NotStarted == 0
	}
	return true
}

// Metrics are the numbers published as CloudWatch metrics.
func (r *Report) Metrics() map[string]float64 {
	t := r.Plan.Totals
	m := map[string]float64{
		emf.AMIsConsidered:   float64(t.Considered),
		emf.AMIsMarked:       float64(t.Mark),
		emf.AMIsUnmarked:     float64(t.Unmark),
		emf.AMIsPending:      float64(t.Pending),
		emf.AMIsDeregistered: 0,
		emf.SnapshotsDeleted: 0,
		emf.GiBFreed:         0,
		emf.ActionsFailed:    0,
		emf.InventoryBlocked: 0,
		// AMIsKeptOnRecheck counts planned deregistrations stopped right
		// before removal: an inventory gap or a change since the plan.
		emf.AMIsKeptOnRecheck: 0,
		// RunsCompleted is 1 for a run that completed (Completed): the
		// "cleanup did not complete a run" alarm treats its absence as
		// breaching.
		emf.RunsCompleted: 0,
	}
	if r.Completed() {
		m[emf.RunsCompleted] = 1
	}
	if r.Plan.Blocked != "" {
		m[emf.InventoryBlocked] = 1
	}
	if c := r.Tagger; c != nil {
		m[emf.AMIsUntagged] = float64(c.Untagged)
		m[emf.AMIsWithoutCreator] = float64(c.WithoutCreator)
	}
	if r.Results != nil {
		m[emf.AMIsDeregistered] = float64(r.Results.Deregistered)
		m[emf.SnapshotsDeleted] = float64(r.Results.SnapshotsDeleted)
		m[emf.GiBFreed] = float64(r.Results.GiBFreed)
		m[emf.ActionsFailed] = float64(r.Results.Failed)
		m[emf.AMIsKeptOnRecheck] = float64(r.Results.KeptOnRecheck)
	}
	return m
}

// WriteEMF writes the metrics as one CloudWatch Embedded Metric Format line
// (pkg/emf: namespace AmiHousekeeper, dimension Function=cleanup), sorted
// by name; Lambda's log pipeline turns it into metrics with no API call.
func (r *Report) WriteEMF(w io.Writer, now time.Time) error {
	m := r.Metrics()
	metrics := make([]emf.Metric, 0, len(m))
	for name, v := range m {
		unit := emf.Count
		if name == emf.GiBFreed {
			unit = emf.Gigabytes
		}
		metrics = append(metrics, emf.Metric{Name: name, Value: v, Unit: unit})
	}
	slices.SortFunc(metrics, func(a, b emf.Metric) int { return strings.Compare(a.Name, b.Name) })
	return emf.Write(w, now, "cleanup", map[string]string{"Region": r.Region}, metrics)
}

// EventDetail is the detail of the "AMI Cleanup Report" event.
type EventDetail struct {
	Account          string             `json:"account"`
	Region           string             `json:"region"`
	Mode             string             `json:"mode"`
	Totals           cleanup.Totals     `json:"totals"`
	Blocked          string             `json:"blocked,omitempty"`
	Halted           string             `json:"halted,omitempty"`
	RecoverableUntil string             `json:"recoverable_until,omitempty"`
	Deregistered     int                `json:"deregistered"`
	SnapshotsDeleted int                `json:"snapshots_deleted"`
	GiBFreed         int64              `json:"gib_freed"`
	Failed           int                `json:"failed"`
	Decisions        []cleanup.Decision `json:"decisions"`
	MoreDecisions    int                `json:"more_decisions,omitempty"`
	Tagger           *TaggerCoverage    `json:"tagger,omitempty"`
}

// Detail builds the event detail: totals and every decision that changes
// something (mark, unmark, deregister, pending), up to a bound.
func (r *Report) Detail() EventDetail {
	d := EventDetail{Account: r.Account, Region: r.Region, Mode: string(r.Mode), Totals: r.Plan.Totals,
		Blocked: r.Plan.Blocked, RecoverableUntil: r.Plan.RecoverableUntil, Decisions: []cleanup.Decision{}, Tagger: r.Tagger}
	if r.Results != nil {
		d.Deregistered, d.SnapshotsDeleted, d.GiBFreed, d.Failed = r.Results.Deregistered, r.Results.SnapshotsDeleted, r.Results.GiBFreed, r.Results.Failed
		d.Halted = r.Results.Halted
	}
	for _, dec := range r.Plan.Decisions {
		switch dec.Action {
		case cleanup.ActionKeep, cleanup.ActionSkip, cleanup.ActionWait:
			continue
		}
		if len(d.Decisions) == maxEventDecisions {
			d.MoreDecisions++
			continue
		}
		d.Decisions = append(d.Decisions, dec)
	}
	return d
}

// Summary is a short human-readable text of the report (SNS, CLI).
func (r *Report) Summary() string {
	t := r.Plan.Totals
	var b strings.Builder
	fmt.Fprintf(&b, "ami-housekeeper cleanup, account %s, region %s, mode %s\n", r.Account, r.Region, r.Mode)
	if r.Plan.Blocked != "" {
		fmt.Fprintf(&b, "NOTHING WAS CHANGED: %s\n", r.Plan.Blocked)
	}
	fmt.Fprintf(&b, "AMIs considered %d: keep %d, skip %d, mark %d, unmark %d, waiting %d, deregister %d, pending (caps) %d\n",
		t.Considered, t.Keep, t.Skip, t.Mark, t.Unmark, t.Wait, t.Deregister, t.Pending)
	fmt.Fprintf(&b, "Snapshots to delete %d, %d GiB, about %.2f USD per month\n", t.SnapshotsDelete, t.GiBFreed, t.MonthlySavingUSD)
	if r.Results != nil {
		fmt.Fprintf(&b, "Done: %d AMIs deregistered, %d snapshots deleted, %d GiB freed, %d failed\n",
			r.Results.Deregistered, r.Results.SnapshotsDeleted, r.Results.GiBFreed, r.Results.Failed)
		if r.Results.Halted != "" {
			fmt.Fprintf(&b, "HALTED before finishing, nothing more was started: %s\n", r.Results.Halted)
		}
		if n := r.Results.KeptOnRecheck; n > 0 {
			fmt.Fprintf(&b, "Kept on the recheck right before removal: %d AMIs (a reference EC2 knows and the inventory missed, or a change since the plan; see the decisions)\n", n)
		}
	}
	if c := r.Tagger; c != nil && (c.Untagged > 0 || c.WithoutCreator > 0) {
		fmt.Fprintf(&b, "Tagger: of %d AMIs created 2 to 26 hours ago, %d have no tagger tags (its rules or function are not working) and %d no creator (CloudTrail events are not arriving), e.g. %s\n",
			c.Recent, c.Untagged, c.WithoutCreator, strings.Join(c.Examples, ", "))
	}
	if r.Plan.RecoverableUntil != "" {
		fmt.Fprintf(&b, "Removed AMIs are recoverable from the Recycle Bin until %s\n", r.Plan.RecoverableUntil)
	}
	return b.String()
}

// Publish sends the report through n: the "AMI Cleanup Report" event and a
// text summary.
func (r *Report) Publish(ctx context.Context, n notify.Notifier) error {
	return n.Send(ctx, notify.Message{
		DetailType: EventDetailType,
		Detail:     r.Detail(),
		Subject:    fmt.Sprintf("ami-housekeeper cleanup %s: %d deregistered, %d pending", r.Region, r.Plan.Totals.Deregister, r.Plan.Totals.Pending),
		Text:       r.Summary(),
	})
}
