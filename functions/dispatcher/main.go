// Command dispatcher is the Lambda function that starts organization
// sweeps: on the schedule's {"job", "time"} it lists the accounts in scope
// × the scope's regions and sends one unit each to the job's FIFO units
// queue, after beginning the sweep in the ledger. It is a composition root
// only, and runs in organization mode only.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/coldstart"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func main() {
	ctx := context.Background()
	// The dispatcher changes nothing in any account, whatever the policy
	// says: its mode, for the logs, is audit.
	rt := coldstart.Boot(ctx, "dispatcher", func(*policy.Policy) policy.Mode { return policy.ModeAudit })
	fail := func(msg, problem string) {
		rt.Log.Error("cold start failed: "+msg, logging.KeyFunction, "dispatcher", logging.KeyError, problem)
		os.Exit(1)
	}
	if rt.Org == nil {
		fail("organization mode", "the dispatcher runs in organization mode only: "+org.EnvScope+" is not set")
	}
	table := os.Getenv(fanout.EnvLedgerTable)
	if table == "" {
		fail("ledger", fanout.EnvLedgerTable+" is not set")
	}
	queues := map[string]string{}
	for job, env := range map[string]string{fanout.JobCleanup: fanout.EnvUnitsQueueCleanup, fanout.JobSharingAudit: fanout.EnvUnitsQueueSharingAudit} {
		if q := os.Getenv(env); q != "" {
			queues[job] = q
		}
	}
	if len(queues) == 0 {
		fail("units queues", "neither "+fanout.EnvUnitsQueueCleanup+" nor "+fanout.EnvUnitsQueueSharingAudit+" is set")
	}
	// The ledger and the units queues are the home account's, reached with
	// the function's own role (no EC2 limiter concerns them).
	cfg, err := awsapi.LoadConfig(ctx)
	if err != nil {
		fail("AWS SDK configuration", err.Error())
	}
	d := &fanout.Dispatcher{
		Directory: rt.Org.Directory,
		Queues:    queues,
		SQS:       sqs.NewFromConfig(cfg),
		Ledger:    &fanout.Ledger{DB: dynamodb.NewFromConfig(cfg), Table: table},
		Publish:   fanout.Publisher(rt.Notifier(""), os.Stdout),
		Log:       rt.Log,
		Policy:    rt.Policy,
	}
	// Not rt.Serve: the kill switch is not read here. The dispatcher only
	// sends units; the workers read the switch on every invocation and run
	// a unit in audit (or halt the cleanup) while it is engaged, so a sweep
	// dispatched under the switch changes nothing.
	lambda.Start(&handlers.Dispatch{Dispatcher: d, Log: rt.Log})
}
