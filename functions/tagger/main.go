// Command tagger is the Lambda function that tags new AMIs and their EBS
// snapshots. It is a composition root only: configuration is read and
// validated once per cold start, then every event goes to the handler.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
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
		// Failing the init makes every invocation fail loudly (errors metric,
		// DLQ) instead of tagging with a policy nobody wrote.
		log.Error("cold start failed: policy invalid", logging.KeyPolicy, origin, logging.KeyError, err.Error())
		os.Exit(1)
	}
	log.Info("cold start", logging.KeyFunction, "tagger", logging.KeyPolicy, origin, logging.KeyMode, string(pol.Tagging.Mode))

	engine := tagger.New(func(region string) awsapi.TaggerEC2 { return clients.EC2(region) }, pol.Tagging)
	h := handlers.NewTagger(engine, log, os.Getenv("HOUSEKEEPER_ACCOUNT_ID"), string(pol.Tagging.Mode))
	lambda.Start(h)
}
