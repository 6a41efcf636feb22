// Command cleanup is the Lambda function that, on a schedule, deregisters
// stale AMIs nothing uses and deletes their snapshots, in stages, explaining
// every decision. In organization mode it runs the units of the
// dispatcher's cleanup sweeps instead, one account and region each, fed by
// its units queue. It is a composition root only.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/coldstart"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

func main() {
	ctx := context.Background()
	rt := coldstart.Boot(ctx, "cleanup", func(p *policy.Policy) policy.Mode { return p.Retention.Mode })
	key := rt.RecordsKey(ctx, "cleanup")
	if rt.Org != nil {
		serveUnits(rt, key)
		return
	}
	clients := rt.Clients
	rt.Serve(func(pol *policy.Policy, log *slog.Logger) lambda.Handler {
		return &handlers.Cleanup{
			Sweeper: func(region string) *sweep.Sweeper {
				return sweeper(clients, region, pol, key, rt.Halt, log)
			},
			Notifier: rt.Notifier,
			Policy:   pol.Retention,
			Account:  rt.Account,
			Log:      log,
			Metrics:  os.Stdout,
		}
	})
}

// sweeper is one account's sweep engine in region, over its clients.
func sweeper(clients *awsapi.Clients, region string, pol *policy.Policy, key *records.Key, halt func(context.Context) (string, bool), log *slog.Logger) *sweep.Sweeper {
	return &sweep.Sweeper{
		Collector: &collect.Collector{
			EC2:         clients.EC2(region),
			AutoScaling: clients.AutoScaling(region),
			SSM:         clients.SSM(region),
			RecycleBin:  clients.RecycleBin(region),
			References:  clients.EC2(region),
			// EC2's image usage reports (retention.shared_usage: check).
			Usage: clients.EC2(region),
		},
		// A sweep can run for minutes: the kill switch, engaged
		// meanwhile, stops it before its next batch of removals.
		Executor: &execute.Executor{EC2: clients.EC2(region), Clock: clock.Real(), Log: log, Halt: halt},
		Records:  key,
		Tagging:  sweep.WatchTagger(pol.Tagging),
	}
}

// serveUnits serves organization mode: the units of the cleanup sweeps,
// each run in its account (through the member role) and region with the
// account's effective policy; the kill switch is read on every invocation
// and forces audit in every account, and halts a running sweep. The
// records key, the ledger, the reports and the summary are the central
// account's. Anything but a batch of the units queue is rejected.
func serveUnits(rt *coldstart.Runtime, key *records.Key) {
	q, err := handlers.UnitsQueueFromEnv(os.Getenv, fanout.JobCleanup)
	if err != nil {
		rt.Log.Error("cold start failed: organization mode", logging.KeyFunction, "cleanup", logging.KeyError, err.Error())
		os.Exit(1)
	}
	// Reports and summaries go to the central account's bus and topic in
	// the function's own region, whatever region a unit sweeps.
	central := rt.Notifier("")
	// Each unit's report goes to the bus only: one message per account and
	// region would flood the topic's subscribers; the sweep's summary goes
	// to both.
	reports := notify.For(rt.Clients, "", os.Getenv(coldstart.EnvReportBus), "")
	deps := &handlers.UnitsDeps{Queue: q, Home: rt.Account, Directory: rt.Org.Directory, Accounts: rt.Org.Accounts,
		LedgerDB: rt.LedgerDB(), Summary: &central, Metrics: os.Stdout}
	rt.Serve(func(pol *policy.Policy, log *slog.Logger) lambda.Handler {
		job := &handlers.CleanupUnits{
			Sweeper: func(clients *awsapi.Clients, region string, p *policy.Policy) *sweep.Sweeper {
				return sweeper(clients, region, p, key, rt.Halt, log)
			},
			// For keeps the forced audit of the kill switch and the dry run.
			Policy:   func(a org.Account) (*policy.Policy, error) { return pol.For(a.ID, a.Path) },
			Notifier: &reports,
			Log:      log,
			Metrics:  os.Stdout,
		}
		return handlers.NewUnits("cleanup", fanout.JobCleanup, deps, job.Run, log)
	})
}
