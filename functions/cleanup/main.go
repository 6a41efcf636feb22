// Command cleanup is the Lambda function that, on a schedule, deregisters
// stale AMIs nothing uses and deletes their snapshots, in stages, explaining
// every decision. It is a composition root only.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/coldstart"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func main() {
	rt := coldstart.Boot(context.Background(), "cleanup", func(p *policy.Policy) policy.Mode { return p.Retention.Mode })
	clients := rt.Clients
	key := rt.RecordsKey(context.Background(), "cleanup")
	rt.Serve(func(pol *policy.Policy, log *slog.Logger) lambda.Handler {
		return &handlers.Cleanup{
			Sweeper: func(region string) *sweep.Sweeper {
				return &sweep.Sweeper{
					Collector: &collect.Collector{
						EC2:         clients.EC2(region),
						AutoScaling: clients.AutoScaling(region),
						SSM:         clients.SSM(region),
						RecycleBin:  clients.RecycleBin(region),
						References:  clients.EC2(region),
					},
					// A sweep can run for minutes: the kill switch, engaged
					// meanwhile, stops it before its next batch of removals.
					Executor: &execute.Executor{EC2: clients.EC2(region), Clock: clock.Real(), Log: log, Halt: rt.Halt},
					Records:  key,
					Tagging:  sweep.WatchTagger(pol.Tagging),
				}
			},
			Notifier: rt.Notifier,
			Policy:   pol.Retention,
			Account:  rt.Account,
			Log:      log,
			Metrics:  os.Stdout,
		}
	})
}
