// Command sharing is the Lambda function that enforces the sharing policy:
// on launch-permission and create-volume-permission changes, on new AMIs,
// and in a scheduled audit of every AMI the account owns. It is a
// composition root only.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

// Configuration read from the environment; all optional.
const (
	envReportBus   = "HOUSEKEEPER_REPORT_EVENT_BUS"
	envReportTopic = "HOUSEKEEPER_REPORT_TOPIC_ARN"
	envCursor      = "HOUSEKEEPER_AUDIT_CURSOR_PARAMETER"
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
	log.Info("cold start", logging.KeyFunction, "sharing", logging.KeyPolicy, origin, logging.KeyMode, string(pol.Sharing.Mode))

	enforcer := func(region string) *sharing.Enforcer {
		return &sharing.Enforcer{EC2: clients.EC2(region), Policy: pol.Sharing}
	}
	h := &handlers.Sharing{
		Enforcer: enforcer,
		Auditor: func(region string) *audit.Auditor {
			a := &audit.Auditor{
				EC2:       clients.EC2(region),
				Guardrail: clients.EC2(region),
				Checker:   enforcer(region),
				Policy:    pol.Sharing,
				Clock:     execute.RealClock(),
			}
			if name := os.Getenv(envCursor); name != "" {
				a.Cursor, a.CursorName = clients.Cursor(region), name
			}
			return a
		},
		Notifier: func(region string) notify.Notifier {
			return notify.For(clients, region, os.Getenv(envReportBus), os.Getenv(envReportTopic))
		},
		Account: os.Getenv("HOUSEKEEPER_ACCOUNT_ID"),
		Mode:    string(pol.Sharing.Mode),
		Log:     log,
		Self:    os.Getenv("AWS_LAMBDA_FUNCTION_NAME"),
	}
	lambda.Start(h)
}
