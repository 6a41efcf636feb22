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
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

func main() {
	rt := coldstart.Boot(context.Background(), "tagger", func(p *policy.Policy) policy.Mode { return p.Tagging.Mode })
	ec2 := func(region string) awsapi.TaggerEC2 { return rt.Clients.EC2(region) }
	batch := handlers.BatchConfig{Queues: handlers.NewQueues(rt.Clients.SQS), Usage: rt.Usage, Metrics: os.Stdout}
	rt.Serve(func(pol *policy.Policy, log *slog.Logger) lambda.Handler {
		h := handlers.NewTagger(tagger.New(ec2, pol.Tagging), log, rt.Account).WithBatch(batch)
		if rt.Org == nil {
			return h
		}
		// Organization mode: each event is tagged in its own account, with
		// that account's effective policy (overrides by OU and account).
		o := &handlers.Org{Directory: rt.Org.Directory, Lookup: rt.Org.Lookup, Accounts: rt.Org.Accounts,
			Policy: func(a org.Account) (*policy.Policy, error) { return pol.For(a.ID, a.Path) }}
		return h.WithOrg(o, func(t *handlers.Target) *tagger.Tagger {
			return tagger.New(func(region string) awsapi.TaggerEC2 { return t.Clients.EC2(region) }, t.Policy.Tagging)
		})
	})
}
