// Command tagger is the Lambda function that tags new AMIs and their EBS
// snapshots. It is a composition root only.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/coldstart"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

func main() {
	rt := coldstart.Boot(context.Background(), "tagger", func(p *policy.Policy) policy.Mode { return p.Tagging.Mode })
	ec2 := func(region string) awsapi.TaggerEC2 { return rt.Clients.EC2(region) }
	batch := handlers.BatchConfig{Queues: handlers.NewQueues(rt.Clients.SQS), Usage: rt.Limits.Usage, Metrics: os.Stdout}
	rt.Serve(func(pol *policy.Policy, log *slog.Logger) lambda.Handler {
		return handlers.NewTagger(tagger.New(ec2, pol.Tagging), log, rt.Account).WithBatch(batch)
	})
}
