package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Output formats.
const (
	OutputTable    = "table"
	OutputJSON     = "json"
	OutputMarkdown = "markdown"
)

// app is one run of the CLI: the global flags and what they load.
type app struct {
	io IO

	policyFile       string
	regions          []string
	profile          string
	roleARN          string
	externalID       string
	endpointURL      string
	output           string
	yes              bool
	detailedExitcode bool
	noColor          bool

	// callerARN is who the credentials are (sts GetCallerIdentity), once
	// connected: its partition names the member roles.
	callerARN string
	// stdin reads the answers to every question of the run: a reader per
	// question could buffer, and lose, the next one's answer.
	stdin *bufio.Reader
}

func newApp(io IO) *app {
	if io.Getenv == nil {
		io.Getenv = func(string) string { return "" }
	}
	return &app{io: io}
}

// Version is the CLI's version, set at build time
// (-ldflags "-X github.com/ami-housekeeper/ami-housekeeper/pkg/cli.Version=v1.2.3").
var Version = "dev"

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "ami-housekeeper",
		Short: "Keep an AWS account's AMIs in order: plan and apply the cleanup, explain a decision, audit sharing, restore",
		Long: `ami-housekeeper runs the same engines as the ami-housekeeper Lambda functions,
from a terminal, against the account your AWS credentials reach.

Nothing changes without your say: plan, explain and audit-sharing only read;
apply, audit-sharing --enforce, tag and restore show what they will do and ask
(--yes answers for you; without a terminal they refuse without it).`,
		Example: `  ami-housekeeper plan --policy policy.yaml --region eu-west-1
  ami-housekeeper explain ami-0123456789abcdef0 --region eu-west-1
  ami-housekeeper apply --policy policy.yaml --region eu-west-1 --yes`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetFlagErrorFunc(flagErrorFunc)
	f := root.PersistentFlags()
	f.StringVar(&a.policyFile, "policy", "", "policy document, YAML or JSON (default: the built-in defaults)")
	f.StringArrayVar(&a.regions, "region", nil, "region to work in; repeat for several; \"all\" for every region enabled in the account (default: the SDK's region)")
	f.StringVar(&a.profile, "profile", "", "AWS shared-config profile")
	f.StringVar(&a.roleARN, "role-arn", "", "assume this role first")
	f.StringVar(&a.externalID, "external-id", "", "external ID for --role-arn")
	f.StringVar(&a.endpointURL, "endpoint-url", "", "AWS endpoint (default: AWS_ENDPOINT_URL, else AWS's)")
	f.StringVarP(&a.output, "output", "o", OutputTable, "table, json or markdown")
	f.BoolVarP(&a.yes, "yes", "y", false, "answer yes to every confirmation (required without a terminal)")
	f.BoolVar(&a.detailedExitcode, "detailed-exitcode", false, "exit 3 when the plan or audit has changes to make")
	f.BoolVar(&a.noColor, "no-color", false, "no colour (also NO_COLOR)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return a.checkFlags() }
	root.AddCommand(a.versionCmd(), a.policyCmd())
	for _, add := range commands {
		root.AddCommand(add(a))
	}
	return root
}

// commands are the command constructors other files register (init), so
// each command lives in a file of its own.
var commands []func(*app) *cobra.Command

func (a *app) checkFlags() error {
	if !slices.Contains([]string{OutputTable, OutputJSON, OutputMarkdown}, a.output) {
		return usageError("--output %q: want table, json or markdown", a.output)
	}
	if a.externalID != "" && a.roleARN == "" {
		return usageError("--external-id needs --role-arn")
	}
	if a.roleARN != "" && !strings.HasPrefix(a.roleARN, "arn:") {
		return usageError("--role-arn %q is not an ARN", a.roleARN)
	}
	for _, r := range a.regions {
		if r != "all" && !regionShape(r) {
			return usageError("--region %q is not a region name", r)
		}
	}
	return nil
}

// color reports whether output may use colour.
func (a *app) color() bool {
	return a.io.Terminal && !a.noColor && a.io.Getenv("NO_COLOR") == ""
}

// loadPolicy reads --policy, or the defaults. A bad document is bad usage:
// every problem is printed with its path, and nothing is called.
func (a *app) loadPolicy() (*policy.Policy, error) {
	if a.policyFile == "" {
		return policy.Default(), nil
	}
	data, err := os.ReadFile(a.policyFile)
	if err != nil {
		return nil, usageError("--policy: %v", err)
	}
	p, err := policy.Parse(data, a.policyFile)
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: err}
	}
	return p, nil
}

// awsConfig builds the SDK configuration the flags ask for: profile,
// endpoint (AWS_ENDPOINT_URL is honoured by the SDK itself), assumed role.
func (a *app) awsConfig(ctx context.Context) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if a.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(a.profile))
	}
	if a.endpointURL != "" {
		opts = append(opts, config.WithBaseEndpoint(a.endpointURL))
	}
	cfg, err := awsapi.LoadConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, err
	}
	if a.roleARN != "" {
		provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), a.roleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "ami-housekeeper-cli"
			if a.externalID != "" {
				o.ExternalID = aws.String(a.externalID)
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(provider)
	}
	return cfg, nil
}

// connect builds the SDK configuration, resolves the regions and asks who
// the caller is: what every command that reads the account starts with. An
// empty configured region becomes the first target region.
func (a *app) connect(ctx context.Context) (cfg aws.Config, regions []string, acct string, err error) {
	if cfg, err = a.awsConfig(ctx); err != nil {
		return cfg, nil, "", err
	}
	if regions, err = a.targetRegions(ctx, cfg); err != nil {
		return cfg, nil, "", err
	}
	if cfg.Region == "" {
		cfg.Region = regions[0]
	}
	acct, a.callerARN, err = callerIdentity(ctx, cfg)
	return cfg, regions, acct, err
}

// callerIdentity returns the caller's account ID and ARN.
func callerIdentity(ctx context.Context, cfg aws.Config) (acct, callerARN string, err error) {
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", "", fmt.Errorf("who am I (sts GetCallerIdentity): %w", err)
	}
	return aws.ToString(out.Account), aws.ToString(out.Arn), nil
}

// targetRegions resolves --region: the SDK's region by default, "all" for
// every region the account has enabled.
func (a *app) targetRegions(ctx context.Context, cfg aws.Config) ([]string, error) {
	if len(a.regions) == 0 {
		if cfg.Region == "" {
			return nil, usageError("no region: give --region, or set AWS_REGION")
		}
		return []string{cfg.Region}, nil
	}
	if !slices.Contains(a.regions, "all") {
		return slices.Compact(slices.Sorted(slices.Values(a.regions))), nil
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	out, err := ec2.NewFromConfig(cfg).DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err != nil {
		return nil, fmt.Errorf("listing the account's regions: %w", err)
	}
	var regions []string
	for _, r := range out.Regions {
		regions = append(regions, aws.ToString(r.RegionName))
	}
	slices.Sort(regions)
	return regions, nil
}

// confirm asks before a change. --yes answers; without a terminal and
// without --yes the answer is no, and the command says why.
func (a *app) confirm(question string) error {
	if a.yes {
		return nil
	}
	if !a.io.Terminal {
		return usageError("%s: refusing without a terminal; give --yes to proceed", question)
	}
	fmt.Fprintf(a.io.Out, "%s [y/N] ", question)
	if a.stdin == nil {
		a.stdin = bufio.NewReader(a.io.In)
	}
	line, _ := a.stdin.ReadString('\n')
	if ans := strings.ToLower(strings.TrimSpace(line)); ans != "y" && ans != "yes" {
		return &exitError{code: ExitError, err: fmt.Errorf("%s: not confirmed; nothing changed", question)}
	}
	return nil
}

// regionShape is the shape of an AWS region name (us-east-1, eusc-de-east-1).
func regionShape(s string) bool { return amievents.IsRegion(s) }
