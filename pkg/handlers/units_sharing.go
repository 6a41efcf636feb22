package handlers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

// AuditUnits is the sharing guard's job on an organization sweep's unit:
// the scheduled audit of the unit's account and region through that
// account's clients, with the account's effective policy and the
// organization's membership, resuming from the unit's own cursor (a
// parameter of the central account named CursorName/<account>/<region>).
type AuditUnits struct {
	// Auditor builds the audit over an account's clients for a region,
	// with the effective policy and the organization's membership.
	Auditor func(clients *awsapi.Clients, region string, pol *policy.Policy, members sharing.Membership) *audit.Auditor
	// Policy returns an account's effective policy for this invocation
	// (forced audit kept: see CleanupUnits.Policy).
	Policy func(acct org.Account) (*policy.Policy, error)
	// Directory is the organization the membership is resolved against.
	Directory func(ctx context.Context) (*org.Directory, error)
	// Cursor keeps the units' cursors: the central account's SSM, never a
	// member's (nil: every audit starts from the beginning).
	Cursor awsapi.CursorSSM
	// CursorName is the base name (audit.DefaultCursorName when empty).
	CursorName string
	// Notifier, when set, publishes the findings (the central account's
	// bus and topic).
	Notifier *notify.Notifier
	Log      *slog.Logger
	// Metrics receives each unit's EMF line (nil: none).
	Metrics io.Writer
}

var _ fanout.Job = (&AuditUnits{}).Run

// UnitCursorName is the cursor parameter of one account and region: base
// (audit.DefaultCursorName when empty) suffixed /<account>/<region>, so
// that each unit resumes its own pass.
func UnitCursorName(base, account, region string) string {
	if base == "" {
		base = audit.DefaultCursorName
	}
	return base + "/" + account + "/" + region
}

// Run is a fanout.Job. The result counts the AMIs checked and the
// violations found and revoked; a pass that did not reach the end of the
// list (the deadline, the kill switch) or met errors after checking some
// is "partial", and the next sweep resumes from the cursor. An audit that
// could check nothing because of errors (the listing failed) returns an
// error: retried until the unit's last receive, then recorded "failed".
func (j *AuditUnits) Run(ctx context.Context, clients *awsapi.Clients, acct org.Account, u fanout.Unit) (fanout.UnitResult, error) {
	start := time.Now()
	pol, err := j.Policy(acct)
	if err != nil {
		return fanout.UnitResult{}, fmt.Errorf("effective policy of account %s: %w", acct.ID, err)
	}
	dir, err := j.Directory(ctx)
	if err != nil {
		return fanout.UnitResult{}, fmt.Errorf("reading the organization: %w", err)
	}
	members := sharing.Members{OrgID: dir.OrgID, Path: func(account string) ([]string, bool) {
		m, ok := dir.Member(account)
		return m.Path, ok
	}}
	a := j.Auditor(clients, u.Region, pol, members)
	if j.Cursor != nil {
		a.Cursor, a.CursorName = j.Cursor, UnitCursorName(j.CursorName, u.Account, u.Region)
	}
	rep := a.Run(ctx, u.Account, u.Region, "")

	// The line, metrics and findings of a scheduled audit, as the
	// single-account guard writes them.
	resp := SharingResponse{Event: fanout.JobSharingAudit, Outcome: OutcomeAudited, Audit: &rep, Findings: rep.Findings}
	switch {
	case rep.Halted != "":
		resp.Outcome, resp.Reason = OutcomeAuditIncomplete, "halted ("+rep.Halted+"): resumes from "+rep.ResumeFrom+" on the next sweep"
	case !rep.Complete:
		resp.Outcome, resp.Reason = OutcomeAuditIncomplete, "resumes from "+rep.ResumeFrom+" on the next sweep"
	}
	auditErr := rep.Err()
	if auditErr != nil {
		resp.Outcome = OutcomeAuditFailed
	}
	g := &Sharing{Log: j.Log.With(slog.String(logging.KeySweep, u.Sweep), slog.String(logging.KeyUnit, u.ID())), Metrics: j.Metrics}
	if j.Notifier != nil {
		n := *j.Notifier
		g.Notifier = func(string) notify.Notifier { return n }
	}
	g.finish(ctx, "sharing audit unit", resp, auditErr, time.Since(start))
	g.publish(ctx, u.Region, rep.Findings)

	res := fanout.UnitResult{Unit: u, Status: fanout.StatusDone, AMIsSeen: rep.ImagesChecked, Violations: rep.Violations, Revoked: rep.Revoked}
	switch {
	case auditErr != nil && rep.ImagesChecked == 0 && rep.SnapshotsChecked == 0:
		return res, auditErr
	case auditErr != nil:
		res.Status, res.Reason = fanout.StatusPartial, auditErr.Error()+"; the next sweep resumes from "+cursorOrStart(rep.ResumeFrom)
	case !rep.Complete:
		res.Status, res.Reason = fanout.StatusPartial, resp.Reason
	}
	return res, nil
}

func cursorOrStart(c string) string {
	if c == "" || c == audit.CursorStart {
		return "the beginning"
	}
	return c
}

// UnitsDeps is what a worker function's units path is built from, once
// per cold start (main.go).
type UnitsDeps struct {
	// Queue is the function's units queue (UnitsQueueFromEnv).
	Queue UnitsQueue
	// Home is the deployment's (central) account, which owns the queue.
	Home string
	// Directory is the organization (coldstart.Org.Directory).
	Directory func(ctx context.Context) (*org.Directory, error)
	// Accounts reaches the units' accounts, paced to the job's share of
	// each account's buckets.
	Accounts fanout.AccountClients
	// LedgerDB is the central account's DynamoDB.
	LedgerDB awsapi.LedgerDynamoDB
	// Summary publishes the summary of a sweep this worker completes (the
	// central account's bus and topic; nil: logged only).
	Summary *notify.Notifier
	// Metrics receives the summary's EMF line (stdout in Lambda; nil: none).
	Metrics io.Writer
}

// worker is the fanout worker of one invocation, logging to log.
func (d *UnitsDeps) worker(log *slog.Logger) *fanout.Worker {
	w := &fanout.Worker{Directory: d.Directory, Accounts: d.Accounts, Ledger: &fanout.Ledger{DB: d.LedgerDB, Table: d.Queue.Ledger}, Log: log}
	if d.Summary != nil {
		w.Publish = fanout.Publisher(*d.Summary, d.Metrics)
	}
	return w
}

// NewUnits returns the units handler of function running job's units
// with run, through a fanout worker built from deps.
func NewUnits(function, job string, deps *UnitsDeps, run fanout.Job, log *slog.Logger) *Units {
	return &Units{Function: function, Job: job, Queue: deps.Queue, Account: deps.Home, Worker: deps.worker(log), Run: run, Log: log}
}

// SharingUnitsConfig is the rest of the sharing guard's units path, per
// invocation.
type SharingUnitsConfig struct {
	// Policy is the invocation's policy (the kill switch applied); each
	// account's effective policy is derived from it.
	Policy *policy.Policy
	// Cursor is the central account's SSM and CursorName the base name
	// (HOUSEKEEPER_AUDIT_CURSOR_PARAMETER; audit.DefaultCursorName when
	// empty).
	Cursor     awsapi.CursorSSM
	CursorName string
	// Halt stops an audit before its next check (the kill switch).
	Halt func(ctx context.Context) (reason string, halted bool)
	// Notifier publishes findings (nil: none).
	Notifier *notify.Notifier
	// Metrics receives the EMF lines (nil: none).
	Metrics io.Writer
}

// NewSharingUnits returns the sharing guard's units handler: the audit of
// one account and region per unit of the sharing-audit units queue, with
// the clients deps.Accounts hands out (paced to the audit's share of each
// account's buckets), the account's effective policy and the
// organization's membership. The sharing function routes its units
// queue's batches to it (WithUnits).
func NewSharingUnits(deps *UnitsDeps, cfg SharingUnitsConfig, log *slog.Logger) *Units {
	job := &AuditUnits{
		Auditor: func(clients *awsapi.Clients, region string, pol *policy.Policy, members sharing.Membership) *audit.Auditor {
			ec2 := clients.EC2(region)
			// An audit can run for 15 minutes: the kill switch, engaged
			// meanwhile, stops it before its next check.
			return &audit.Auditor{EC2: ec2, Guardrail: ec2, Checker: &sharing.Enforcer{EC2: ec2, Policy: pol.Sharing, Membership: members},
				Policy: pol.Sharing, Clock: clock.Real(), Halt: cfg.Halt}
		},
		Policy:     func(a org.Account) (*policy.Policy, error) { return cfg.Policy.For(a.ID, a.Path) },
		Directory:  deps.Directory,
		Cursor:     cfg.Cursor,
		CursorName: cfg.CursorName,
		Notifier:   cfg.Notifier,
		Log:        log,
		Metrics:    cfg.Metrics,
	}
	return NewUnits("sharing", fanout.JobSharingAudit, deps, job.Run, log)
}
