package housekeeper

import (
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/infra/config"
)

// Both cdk-nag packs find nothing unsuppressed, neither error nor warning,
// in every stack of the app: with the defaults, and with a policy that
// widens the roles (stages, an enforcing guard turning on block public
// access), e-mail subscriptions, a Recycle Bin lock and two regions.
func TestNagFindsNothingUnsuppressed(t *testing.T) {
	wide := config.Default()
	wide.PolicyFile = writeFile(t, "policy.yaml", "version: 1\n"+
		"retention: {mode: enforce, grace_days: 0, stages: {deprecate: true, disable: true}, orphaned_snapshots: {delete: true}}\n"+
		"sharing: {mode: enforce, enable_image_block_public_access: true, check_all_snapshots: true}\n"+
		"tagging: {static_tags: {team: platform}, copy_from_source: [Name]}\n")
	wide.Regions = []string{"us-east-1", "eu-west-1"}
	wide.AlarmEmails = []string{"ops@example.com"}
	wide.RecycleBinLockDays = 7

	// Organization mode: the central stack, and the member stack (its
	// findings are reported on the StackSet), with an external id and a
	// policy that widens the member role.
	orgWide := wide
	orgWide.Regions = []string{"eu-west-1"}
	orgWide.Organization = testOrg()
	orgWide.Organization.ExternalID = "ext-123"
	orgWide.Organization.Scope.ExcludeAccounts = []string{"111111111111"}
	orgDefaults := config.Default()
	orgDefaults.Organization = testOrg()

	for _, tc := range []struct {
		name string
		cfg  config.Config
	}{
		{"defaults", config.Default()},
		{"policy file, regions, e-mails, locked Recycle Bin", wide},
		{"organization mode", orgDefaults},
		{"organization mode, policy file, central region, e-mails, locked Recycle Bin", orgWide},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DistDir = testDistWith(t, append(functionNames, DispatcherFunctionName)...)
			app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
			stacks := NewApp(app, tc.cfg)
			ApplyNag(app)
			for _, stack := range stacks {
				a := assertions.Annotations_FromStack(stack)
				for _, pack := range []string{"AwsSolutions-.*", "Serverless-.*"} {
					match := assertions.Match_StringLikeRegexp(jsii.String(pack))
					// The construct path is only in the message's Id, which
					// aws-cdk-go marks deprecated without a replacement.
					for _, m := range *a.FindError(jsii.String("*"), match) {
						t.Errorf("%s: error %s: %v", *stack.Node().Id(), *m.Id, m.Entry.Data) //nolint:staticcheck // see above
					}
					for _, m := range *a.FindWarning(jsii.String("*"), match) {
						t.Errorf("%s: warning %s: %v", *stack.Node().Id(), *m.Id, m.Entry.Data) //nolint:staticcheck // see above
					}
				}
			}
		})
	}
}
