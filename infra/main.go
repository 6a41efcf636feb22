// Command infra is the CDK app of ami-housekeeper; cdk.json runs it.
//
// Its configuration is the app's context: every key, with its default, is
// listed in cdk.json and documented in docs/deploy.md; `-c key=value`
// overrides one. Unknown keys and invalid values fail the synth (package
// infra/config).
//
// With no regions configured the app has one environment-agnostic stack,
// deployed where the CLI's credentials point, and synthesis needs no AWS
// credentials. With regions, it has one stack per region, each named
// stackName in its region.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/infra/config"
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
	ctx, _ := app.Node().GetAllContext(nil).(map[string]any)
	cfg, err := config.FromContext(ctx)
	if err != nil {
		return err
	}
	stacks := housekeeper.NewApp(app, cfg)
	// An unsuppressed cdk-nag error is an error annotation: it fails the synth.
	housekeeper.ApplyNag(app)
	app.Synth(nil)
	// The member stack deploys only inside the StackSet's TemplateBody;
	// beside the templates (<stack>-member.template.json) cfn-lint checks
	// it like the others. The CDK CLI reads only the manifest.
	return housekeeper.WriteMemberTemplates(*app.Outdir(), stacks)
}
