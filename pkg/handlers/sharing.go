package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emf"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

// ViolationDetailType is the detail-type of the finding events.
const ViolationDetailType = "AMI Sharing Violation"

// SharingResponse is what an invocation returns.
type SharingResponse struct {
	Outcome    string            `json:"outcome"`
	Event      string            `json:"event,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	ResourceID string            `json:"resource_id,omitempty"`
	Findings   []sharing.Finding `json:"findings,omitempty"`
	Audit      *audit.Report     `json:"audit,omitempty"`
	// account and region are logged in organization mode; cause is the
	// permanent error behind a rejection (an unreachable account).
	account, region string
	cause           error
}

// Sharing handles the sharing guard's invocations: permission-change events,
// new AMIs, and the scheduled audit.
type Sharing struct {
	// Enforcer and Auditor build the engines for a region.
	Enforcer func(region string) *sharing.Enforcer
	Auditor  func(region string) *audit.Auditor
	// Notifier builds the findings' notifier for a region (nil: none).
	Notifier func(region string) notify.Notifier
	Account  string
	// Log is the invocation's logger: it carries the mode and why
	// (pkg/coldstart), so the handler does not log them itself.
	Log *slog.Logger
	// Metrics receives the Embedded Metric Format line of each check and
	// audit (stdout in Lambda; nil: none).
	Metrics io.Writer
	// Batch is what the SQS path needs: the queues, the call counters, the
	// metrics writer.
	Batch BatchConfig
	// Org is organization mode (nil: single account): an event is checked
	// only if its account and region are in the scope, in that account,
	// with the enforcer EnforcerFor builds for it (the account's clients
	// and effective policy; Enforcer is then unused).
	Org         *Org
	EnforcerFor func(t *Target, region string) *sharing.Enforcer
}

// Invoke implements lambda.Handler on the raw payload. Permission changes
// and new AMIs may come in SQS batches, answered with the records to retry
// (events.SQSEventResponse); the scheduled audit is always a direct
// invocation.
func (h *Sharing) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	recs, err := amievents.ParseSQS(payload)
	switch {
	case err != nil:
		return json.Marshal(rejectedBatch(ctx, h.Log, "sharing", err))
	case recs != nil:
		return json.Marshal(h.HandleBatch(ctx, recs))
	}
	resp, err := h.Handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

// Handle checks what the event names. Bad input and unrelated events are
// logged and dropped (no error: a retry cannot help). An error is returned,
// after the response is logged and the findings published, when the work
// is not done: an AWS call failed, a check left principals the policy does
// not allow (*sharing.PartialError: removals are idempotent, so Lambda's
// retry is safe), or the scheduled audit could not complete its job
// (audit.Report.Err), so the function's Errors alarm fires.
func (h *Sharing) Handle(ctx context.Context, raw []byte) (SharingResponse, error) {
	start := time.Now()
	resp, err := h.handle(ctx, raw)
	h.finish(ctx, "sharing invocation", resp, err, time.Since(start))
	return resp, err
}

// HandleBatch handles an SQS batch: the records of one AMI or snapshot
// (a permission change and the new AMI's state change, duplicates) cost
// one check, made for the CloudTrail record when there is one.
func (h *Sharing) HandleBatch(ctx context.Context, recs []amievents.SQSRecord) events.SQSEventResponse {
	b := &batch{function: "sharing", log: h.Log, cfg: h.Batch, account: h.Account, org: h.Org,
		process: func(ctx context.Context, ev amievents.Event, ids []string) (string, error) {
			start := time.Now()
			resp, err := h.handleEvent(ctx, ev)
			h.finish(ctx, "sharing record", resp, err, time.Since(start), append(callerAttrs(ev), slog.Any(logging.KeyMessageIDs, ids))...)
			return resp.Outcome, err
		}}
	return b.run(ctx, recs)
}

// finish logs the line of one invocation or record and writes its metrics.
func (h *Sharing) finish(ctx context.Context, msg string, resp SharingResponse, err error, d time.Duration, extra ...any) {
	level := slog.LevelInfo
	attrs := []any{
		slog.String(logging.KeyFunction, "sharing"),
		slog.String(logging.KeyEvent, resp.Event),
		slog.String("resource_id", resp.ResourceID),
		slog.String(logging.KeyOutcome, resp.Outcome),
		slog.Int64(logging.KeyDurationMS, d.Milliseconds()),
	}
	if resp.account != "" {
		attrs = append(attrs, slog.String(logging.KeyAccount, resp.account), slog.String(logging.KeyRegion, resp.region))
	}
	if resp.Reason != "" {
		attrs = append(attrs, slog.String(logging.KeyReason, resp.Reason))
	}
	if len(resp.Findings) > 0 {
		attrs = append(attrs, slog.Any("findings", resp.Findings))
		level = slog.LevelWarn
	}
	if resp.Audit != nil {
		a := resp.Audit
		attrs = append(attrs, slog.Int("images_checked", a.ImagesChecked), slog.Int("snapshots_checked", a.SnapshotsChecked),
			slog.Int("violations", a.Violations), slog.Int("revoked", a.Revoked), slog.Bool("complete", a.Complete),
			slog.Any("guardrail", a.Guardrail))
		if a.ResumeFrom != "" {
			attrs = append(attrs, slog.String("resume_from", a.ResumeFrom))
		}
		if a.Halted != "" {
			attrs = append(attrs, slog.String("halted", a.Halted))
		}
		if len(a.Errors) > 0 {
			attrs = append(attrs, slog.Any("errors", a.Errors))
		}
	}
	switch {
	case err != nil:
		level = slog.LevelError
		attrs = append(attrs, slog.String(logging.KeyError, err.Error()), slog.String(logging.KeyErrorKind, awserr.Classify(err).String()))
	case resp.Outcome == OutcomeRejected:
		level = slog.LevelError
		attrs = append(attrs, causeAttrs(resp.cause)...)
	}
	h.Log.Log(ctx, level, msg, append(attrs, extra...)...)
	h.writeMetrics(ctx, resp, err)
}

// writeMetrics writes the EMF line of a check or an audit: Violations
// (findings: resources shared beyond the policy) and PrincipalsRevoked,
// and for the scheduled audit AMIsAudited and AuditsCompleted, 1 when the
// pass reached the end of the list without an error (the stack alarms when
// it stays missing). Rejected and ignored events write none.
func (h *Sharing) writeMetrics(ctx context.Context, resp SharingResponse, err error) {
	if h.Metrics == nil || resp.Outcome == OutcomeRejected || resp.Outcome == OutcomeIgnored {
		return
	}
	metrics := []emf.Metric{
		{Name: emf.Violations, Value: float64(len(resp.Findings))},
		{Name: emf.PrincipalsRevoked, Value: float64(principalsRevoked(resp.Findings))},
	}
	if a := resp.Audit; a != nil {
		completed := 0.0
		if a.Complete && err == nil {
			completed = 1
		}
		metrics = []emf.Metric{
			{Name: emf.AuditsCompleted, Value: completed},
			{Name: emf.AMIsAudited, Value: float64(a.ImagesChecked)},
			{Name: emf.Violations, Value: float64(a.Violations)},
			{Name: emf.PrincipalsRevoked, Value: float64(principalsRevoked(a.Findings))},
		}
	}
	if werr := emf.Write(h.Metrics, time.Now(), "sharing", nil, metrics); werr != nil {
		h.Log.ErrorContext(ctx, "writing metrics", slog.String(logging.KeyError, werr.Error()))
	}
}

// principalsRevoked counts the principals removed, as the confirming read
// showed them gone (audit mode removes none).
func principalsRevoked(findings []sharing.Finding) int {
	n := 0
	for _, f := range findings {
		if f.Action == sharing.ActionRevoked || f.Action == sharing.ActionPartial {
			n += len(f.Removed)
		}
	}
	return n
}

func (h *Sharing) handle(ctx context.Context, raw []byte) (SharingResponse, error) {
	ev, err := amievents.Parse(raw)
	if err != nil {
		return SharingResponse{Outcome: OutcomeRejected, Reason: err.Error()}, nil //nolint:nilerr // bad input is dropped, never retried
	}
	return h.handleEvent(ctx, ev)
}

// handleEvent is the per-event path, shared by direct invocations and the
// records of a batch.
func (h *Sharing) handleEvent(ctx context.Context, ev amievents.Event) (SharingResponse, error) {
	var err error
	meta := ev.Meta()
	resp := SharingResponse{Event: meta.Kind}
	var dir *org.Directory
	if h.Org != nil {
		resp.account, resp.region = meta.Account, meta.Region
		var reason string
		if dir, reason, err = h.Org.scope(ctx, meta); err != nil {
			resp.Outcome, resp.Reason = OutcomeError, err.Error()
			return resp, err
		}
		if reason != "" {
			resp.Outcome, resp.Reason = OutcomeRejected, reason
			return resp, nil
		}
	} else if want := expectedAccount(ctx, h.Account); want != "" && meta.Account != want {
		resp.Outcome = OutcomeRejected
		resp.Reason = fmt.Sprintf("invalid event: account: %q is not this deployment's account %q", meta.Account, want)
		return resp, nil
	}
	// enforcer reaches the event's account in organization mode, once the
	// event is known to need a check; ok false means resp says why not.
	enforcer := func() (*sharing.Enforcer, bool, error) {
		if h.Org == nil {
			return h.Enforcer(meta.Region), true, nil
		}
		t, refused, rerr := h.Org.reach(ctx, dir, meta.Account)
		switch {
		case rerr != nil:
			resp.Outcome, resp.Reason = OutcomeError, rerr.Error()
			return nil, false, rerr
		case refused != nil:
			resp.Outcome, resp.Reason, resp.cause = OutcomeRejected, refused.Error(), refused
			return nil, false, nil //nolint:nilerr // an unreachable account is rejected, never retried forever
		}
		return h.EnforcerFor(t, meta.Region), true, nil
	}
	var res sharing.Result
	switch e := ev.(type) {
	case amievents.SharingTrigger:
		// Every successful permission change and every restore is re-checked
		// from what EC2 says now, whatever the request looked like: the
		// parsed request (attribute, grants) is for the report only, so an
		// unexpected shape or another attribute cannot hide a share.
		resp.ResourceID = e.Resource()
		resp.Reason = triggerNote(e)
		// The guard's own revocations come back through CloudTrail too, from
		// its own role at home and from the member role elsewhere; they are
		// not skipped by caller name (anyone can choose a session name):
		// re-checking finds the resource compliant in three reads.
		enf, ok, rerr := enforcer()
		if !ok {
			return resp, rerr
		}
		if e.IsSnapshot() {
			res, err = enf.CheckSnapshot(ctx, meta.Account, meta.Region, e.Resource(), e.Caller().Who())
		} else {
			res, err = enf.CheckImage(ctx, meta.Account, meta.Region, e.Resource(), e.Caller().Who())
		}
	case *amievents.ImageStateChanged:
		resp.ResourceID = e.Meta().ImageID
		if e.State != amievents.StateAvailable {
			resp.Outcome, resp.Reason = OutcomeIgnored, "state "+e.State+" needs no check"
			return resp, nil
		}
		enf, ok, rerr := enforcer()
		if !ok {
			return resp, rerr
		}
		res, err = enf.CheckImage(ctx, meta.Account, meta.Region, e.Meta().ImageID, "")
	case *amievents.Scheduled:
		if h.Org != nil {
			// Organization mode audits through the dispatcher's units, one
			// per account and region; a schedule aimed here is miswired.
			resp.Outcome, resp.Reason = OutcomeRejected, reasonOrgSchedule
			return resp, nil
		}
		rep := h.Auditor(meta.Region).Run(ctx, meta.Account, meta.Region, "")
		resp.Audit, resp.Findings = &rep, rep.Findings
		resp.Outcome = OutcomeAudited
		switch {
		case rep.Halted != "":
			resp.Outcome, resp.Reason = OutcomeAuditIncomplete, "halted ("+rep.Halted+"): resumes from "+rep.ResumeFrom+" on the next run"
		case !rep.Complete:
			resp.Outcome, resp.Reason = OutcomeAuditIncomplete, "resumes from "+rep.ResumeFrom+" on the next run"
		}
		h.publish(ctx, meta.Region, rep.Findings)
		if err := rep.Err(); err != nil {
			resp.Outcome = OutcomeAuditFailed
			return resp, err
		}
		return resp, nil
	default:
		resp.Outcome, resp.Reason = OutcomeIgnored, "event kind "+meta.Kind+" is not a sharing change"
		return resp, nil
	}
	resp.Outcome, resp.Findings = res.Outcome, res.Findings
	// What was removed before an error is published now: the retry will not
	// find it again.
	h.publish(ctx, meta.Region, res.Findings)
	var partial *sharing.PartialError
	switch {
	case errors.As(err, &partial):
		return resp, err // outcome "partial": Failed names each principal left
	case err != nil:
		resp.Outcome = OutcomeError
		return resp, err
	}
	return resp, nil
}

// reasonOrgSchedule rejects a scheduled event in organization mode.
const reasonOrgSchedule = "in organization mode the sharing audit runs per account and region as units of the dispatcher's " +
	"sharing-audit sweep, not on a schedule event sent to this function"

// Outcomes of the scheduled audit.
const (
	OutcomeAudited         = "audited"
	OutcomeAuditIncomplete = "audit-incomplete"
	// OutcomeAuditFailed: the audit ran but could not do its job (see
	// audit.Report.Errors); the invocation fails.
	OutcomeAuditFailed = "audit-failed"
)

// triggerNote says what was odd about a trigger, for the log: a restore, a
// request of an unexpected shape, or a change to another attribute (all are
// re-checked).
func triggerNote(e amievents.SharingTrigger) string {
	switch t := e.(type) {
	case *amievents.ResourceRestored:
		return t.Operation + ": a restore can bring sharing back"
	case *amievents.PermissionChanged:
		switch {
		case t.ShapeProblem != "":
			return "request of an unexpected shape (" + t.ShapeProblem + "): re-checked"
		case t.Attribute != "" && t.Attribute != amievents.AttrLaunchPermission && t.Attribute != amievents.AttrCreateVolumePermission:
			return "attribute " + t.Attribute + " changed: re-checked"
		}
	}
	return ""
}

// publish sends one "AMI Sharing Violation" per finding.
func (h *Sharing) publish(ctx context.Context, region string, findings []sharing.Finding) {
	if h.Notifier == nil {
		return
	}
	n := h.Notifier(region)
	for _, f := range findings {
		msg := notify.Message{
			DetailType: ViolationDetailType,
			Detail:     f,
			Subject:    fmt.Sprintf("ami-housekeeper: %s %s %s", f.ResourceType, f.ResourceID, f.Action),
			Text:       findingText(f),
		}
		if err := n.Send(ctx, msg); err != nil {
			h.Log.ErrorContext(ctx, "publishing a sharing finding", slog.String("resource_id", f.ResourceID), slog.String(logging.KeyError, err.Error()))
		}
	}
}

func findingText(f sharing.Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Sharing of %s %s (account %s, %s): %s\n", f.ResourceType, f.ResourceID, f.Account, f.Region, f.Action)
	if f.Actor != "" {
		fmt.Fprintf(&b, "Changed by: %s\n", f.Actor)
	}
	for _, p := range f.Removed {
		fmt.Fprintf(&b, "Removed: %s\n", p)
	}
	for _, p := range f.Kept {
		fmt.Fprintf(&b, "Kept: %s\n", p)
	}
	for _, r := range f.Reasons {
		fmt.Fprintf(&b, "- %s\n", r)
	}
	return b.String()
}
