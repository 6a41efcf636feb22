// Command cleanup is the Lambda function that, on a schedule, deregisters
// stale AMIs nothing uses and deletes their snapshots, in stages, explaining
// every decision. It is a composition root only.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Where the report goes; both optional.
const (
	envReportBus   = "HOUSEKEEPER_REPORT_EVENT_BUS"
	envReportTopic = "HOUSEKEEPER_REPORT_TOPIC_ARN"
)

func main() {
	ctx := context.Background()
	log := logging.New(os.Stdout, os.Getenv("LOG_LEVEL"))

	cfg, err := awsapi.LoadConfig(ctx)
	if err != nil {
		log.Error("cold start failed", logging.KeyError, err.Error())
		os.Exit(1)
	}
	clients := awsapi.NewClients(cfg)
	pol, origin, err := policy.Load(ctx, os.Getenv, clients.SSM(""))
	if err != nil {
		log.Error("cold start failed: policy invalid", logging.KeyPolicy, origin, logging.KeyError, err.Error())
		os.Exit(1)
	}
	log.Info("cold start", logging.KeyFunction, "cleanup", logging.KeyPolicy, origin, logging.KeyMode, string(pol.Retention.Mode))

	h := &handlers.Cleanup{
		Sweeper: func(region string) *sweep.Sweeper {
			return &sweep.Sweeper{
				Collector: &collect.Collector{
					EC2:         clients.EC2(region),
					AutoScaling: clients.AutoScaling(region),
					SSM:         clients.SSM(region),
					RecycleBin:  clients.RecycleBin(region),
				},
				Executor: &execute.Executor{EC2: clients.EC2(region), Clock: execute.RealClock(), Log: log},
			}
		},
		Notifier: func(region string) notify.Notifier {
			return notify.For(clients, region, os.Getenv(envReportBus), os.Getenv(envReportTopic))
		},
		Policy:  pol.Retention,
		Account: os.Getenv("HOUSEKEEPER_ACCOUNT_ID"),
		Log:     log,
		Metrics: os.Stdout,
	}
	lambda.Start(h)
}
