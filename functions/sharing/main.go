// Command sharing is the Lambda function that enforces the sharing policy:
// on launch-permission and create-volume-permission changes, on new AMIs,
// and in a scheduled audit of every AMI the account owns. In organization
// mode it checks the events of every account in scope, in that account,
// and runs the units of the dispatcher's sharing-audit sweeps. It is a
// composition root only.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/coldstart"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

// envCursor names the SSM parameter where an unfinished audit resumes.
const envCursor = "HOUSEKEEPER_AUDIT_CURSOR_PARAMETER"

func main() {
	rt := coldstart.Boot(context.Background(), "sharing", func(p *policy.Policy) policy.Mode { return p.Sharing.Mode })
	clients, cursor := rt.Clients, os.Getenv(envCursor)
	// The scheduled audit runs alone and reads every AMI's permissions: it
	// paces its calls to its own part of the buckets, not the event path's.
	auditClients := rt.PacedClients(ratelimit.FunctionSharingAudit)
	batch := handlers.BatchConfig{Queues: handlers.NewQueues(clients.SQS), Usage: rt.Usage, Metrics: os.Stdout}
	units := unitsDeps(rt)
	rt.Serve(func(pol *policy.Policy, log *slog.Logger) lambda.Handler {
		enforcer := func(region string) *sharing.Enforcer {
			return &sharing.Enforcer{EC2: clients.EC2(region), Policy: pol.Sharing}
		}
		h := &handlers.Sharing{
			Enforcer: enforcer,
			Auditor: func(region string) *audit.Auditor {
				// An audit can run for 15 minutes: the kill switch, engaged
				// meanwhile, stops it before its next check.
				a := &audit.Auditor{EC2: auditClients.EC2(region), Guardrail: auditClients.EC2(region),
					Checker: &sharing.Enforcer{EC2: auditClients.EC2(region), Policy: pol.Sharing},
					Policy:  pol.Sharing, Clock: clock.Real(), Halt: rt.Halt}
				if cursor != "" {
					a.Cursor, a.CursorName = clients.Cursor(region), cursor
				}
				return a
			},
			Notifier: rt.Notifier,
			Account:  rt.Account,
			Log:      log,
			Metrics:  os.Stdout,
			Batch:    batch,
		}
		if rt.Org == nil {
			return h
		}
		// Organization mode: each event is checked in its own account, with
		// that account's effective policy (For keeps the forced audit of
		// the kill switch and the dry run), and the organization's
		// membership resolves who keeps access through an OU. Findings go
		// to the central account's bus and topic in the function's region,
		// whatever region the event came from.
		central := rt.Notifier("")
		h.Notifier = func(string) notify.Notifier { return central }
		h.Org = &handlers.Org{Directory: rt.Org.Directory, Lookup: rt.Org.Lookup, Accounts: rt.Org.Accounts,
			Policy: func(a org.Account) (*policy.Policy, error) { return pol.For(a.ID, a.Path) }}
		h.EnforcerFor = func(t *handlers.Target, region string) *sharing.Enforcer {
			return &sharing.Enforcer{EC2: t.Clients.EC2(region), Policy: t.Policy.Sharing, Membership: t.Membership()}
		}
		// The audit-units queue's batches go to the sweep's units; the
		// events queue's and direct invocations to h.
		audits := handlers.NewSharingUnits(units, handlers.SharingUnitsConfig{Policy: pol, Cursor: clients.Cursor(""), CursorName: cursor,
			Halt: rt.Halt, Notifier: &central, Metrics: os.Stdout}, log)
		return handlers.WithUnits(audits, h)
	})
}

// unitsDeps is what organization mode's audit units are built from, once
// per cold start (nil in single-account mode): the units queue, the
// ledger, and the accounts reached with clients paced to the audit's share
// of each account's buckets.
func unitsDeps(rt *coldstart.Runtime) *handlers.UnitsDeps {
	if rt.Org == nil {
		return nil
	}
	q, err := handlers.UnitsQueueFromEnv(os.Getenv, fanout.JobSharingAudit)
	if err != nil {
		rt.Log.Error("cold start failed: organization mode", logging.KeyFunction, "sharing", logging.KeyError, err.Error())
		os.Exit(1)
	}
	central := rt.Notifier("")
	return &handlers.UnitsDeps{Queue: q, Home: rt.Account, Directory: rt.Org.Directory,
		Accounts: rt.OrgAccounts(ratelimit.FunctionSharingAudit), LedgerDB: rt.LedgerDB(), Summary: &central, Metrics: os.Stdout}
}
