// Command infra is the CDK app of ami-housekeeper; cdk.json runs it.
//
// Context keys (cdk.json, or -c key=value):
//
//	distDir     folder holding <function>/bootstrap (default "dist")
//	policyFile  policy document to validate and deploy (default: none, the
//	            functions use their built-in default policy)
//	cleanupSchedule  EventBridge schedule expression of the cleanup sweep
//	            (default "cron(0 3 * * ? *)", daily at 03:00 UTC)
//	sharingSchedule  EventBridge schedule expression of the sharing audit
//	            (default "cron(0 4 * * ? *)", daily at 04:00 UTC)
//
// The stack is environment-agnostic, so synthesis needs no AWS credentials.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/infra/housekeeper"
)

func main() {
	err := synth()
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "synth failed:", err)
		os.Exit(1)
	}
}

// synth builds and synthesizes the app. The stack reports bad input by
// panicking; that becomes an error so the CLI shows the message, not a trace.
func synth() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()

	app := awscdk.NewApp(nil)
	housekeeper.NewHousekeeperStack(app, "AmiHousekeeper", &housekeeper.StackProps{
		DistDir:         contextString(app, "distDir"),
		PolicyFile:      contextString(app, "policyFile"),
		CleanupSchedule: contextString(app, "cleanupSchedule"),
		SharingSchedule: contextString(app, "sharingSchedule"),
	})
	app.Synth(nil)
	return nil
}

// contextString returns a context value as a string, "" when unset.
func contextString(app awscdk.App, key string) string {
	v := app.Node().TryGetContext(jsii.String(key))
	if v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		panic(fmt.Sprintf("context %q: want a string, got %v", key, v))
	}
	return s
}
