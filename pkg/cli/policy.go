package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func (a *app) policyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Validate a policy document, or print its JSON Schema",
	}
	var vf validateFlags
	validate := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a policy document: every problem, with its path, as the functions print them; --account shows an account's effective policy",
		Long: `validate checks a policy document as the functions do at cold start (and
the CDK app at synth): the schema, the checks done in Go, and every override
merged onto the top level. Every problem is printed with its path; an
override's problems name it: /overrides/1 (sandboxes)/retention/grace_days.

With --account, it also prints that account's effective policy: the top
level, then the overrides of the OUs on the account's path (from the root
down), then the overrides naming the account, and which applied, in order.
The path is --ou-path (root id first, down to the account's own OU), or read
from Organizations with --org (ListParents, with your credentials: the
management or delegated administrator account); without either, only the
overrides naming the account apply. --output json prints {"account",
"path", "overrides", "policy"}; otherwise the policy is printed as YAML.`,
		Example: `  ami-housekeeper policy validate policy.yaml
  ami-housekeeper policy validate policy.json --output json
  ami-housekeeper policy validate policy.yaml --account 111122223333 --ou-path r-ab12,ou-ab12-workload1,ou-ab12-sandbox1
  ami-housekeeper policy validate policy.yaml --account 111122223333 --org --output json`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := vf.check(); err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usageError("%v", err)
			}
			p, err := policy.Parse(data, args[0])
			if err != nil {
				var ve *policy.ValidationError
				if a.output == OutputJSON && errors.As(err, &ve) {
					_ = writeJSON(a.io.Out, ve)
				}
				return &exitError{code: ExitUsage, err: err}
			}
			if vf.account != "" {
				return a.effectivePolicy(cmd.Context(), args[0], p, vf)
			}
			if a.output == OutputJSON {
				return writeJSON(a.io.Out, p)
			}
			fmt.Fprintf(a.io.Out, "%s: valid (tagging, sharing %s, retention %s%s)\n", args[0], p.Sharing.Mode, p.Retention.Mode, overridesNote(p))
			return nil
		},
	}
	fl := validate.Flags()
	fl.StringVar(&vf.account, "account", "", "also print this account's effective policy, and the overrides applied")
	fl.StringSliceVar(&vf.ouPath, "ou-path", nil, "the account's OU path, root id first, comma-separated (r-…,ou-…,ou-…)")
	fl.BoolVar(&vf.fromOrg, "org", false, "read the account's OU path from Organizations")
	schema := &cobra.Command{
		Use:   "schema",
		Short: "Print the policy document's JSON Schema (for editors: yaml-language-server, VS Code)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := a.io.Out.Write(policy.Schema())
			return err
		},
	}
	cmd.AddCommand(validate, schema)
	return cmd
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the CLI's version",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.io.Out, "ami-housekeeper", Version)
			return nil
		},
	}
}

// exactArgs is cobra.ExactArgs whose error is bad usage (exit 2).
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return &flagError{err: err}
		}
		return nil
	}
}

// validateFlags are policy validate's --account, --ou-path and --org.
type validateFlags struct {
	account string
	ouPath  []string
	fromOrg bool
}

func (f validateFlags) check() error {
	if f.account == "" {
		if len(f.ouPath) > 0 || f.fromOrg {
			return usageError("--ou-path and --org need --account")
		}
		return nil
	}
	if !accountIDShape.MatchString(f.account) {
		return usageError("--account: %q is not a 12-digit account ID", f.account)
	}
	if len(f.ouPath) > 0 && f.fromOrg {
		return usageError("give --ou-path or --org, not both")
	}
	for i, id := range f.ouPath {
		if !ouIDShape.MatchString(id) {
			return usageError("--ou-path: entry %d %q is neither an OU id (ou-…) nor a root id (r-…)", i, id)
		}
		if (i == 0) != strings.HasPrefix(id, "r-") {
			return usageError("--ou-path: %q: the path starts with the root id (r-…), then the OUs down to the account's own", strings.Join(f.ouPath, ","))
		}
	}
	return nil
}

// overridesNote counts a document's overrides for the one-line verdict.
func overridesNote(p *policy.Policy) string {
	switch n := len(p.Overrides); n {
	case 0:
		return ""
	case 1:
		return ", 1 override"
	default:
		return fmt.Sprintf(", %d overrides", n)
	}
}

// effectiveDocument is policy validate --account's JSON output.
type effectiveDocument struct {
	Account   string         `json:"account"`
	Path      []string       `json:"path"`
	Overrides []string       `json:"overrides"`
	Policy    *policy.Policy `json:"policy"`
}

// effectivePolicy prints the account's effective policy and the overrides
// applied, in order.
func (a *app) effectivePolicy(ctx context.Context, file string, p *policy.Policy, f validateFlags) error {
	path := f.ouPath
	if f.fromOrg {
		cfg, err := a.awsConfig(ctx)
		if err != nil {
			return err
		}
		if path, err = ouPathOf(ctx, organizations.NewFromConfig(cfg), f.account); err != nil {
			return err
		}
	}
	eff, err := p.For(f.account, path)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	applied := eff.Applied()
	if applied == nil {
		applied = []string{}
	}
	if path == nil {
		path = []string{}
	}
	if a.output == OutputJSON {
		return writeJSON(a.io.Out, effectiveDocument{Account: f.account, Path: path, Overrides: applied, Policy: eff})
	}
	doc, err := yaml.Marshal(eff)
	if err != nil {
		return fmt.Errorf("rendering the effective policy: %w", err)
	}
	where := "OU path unknown: only the overrides naming the account apply (give --ou-path or --org)"
	if len(path) > 0 {
		where = "OU path " + strings.Join(path, " / ")
	}
	order := "none"
	if len(applied) > 0 {
		order = strings.Join(applied, ", ")
	}
	fmt.Fprintf(a.io.Out, "%s: valid (tagging, sharing %s, retention %s%s)\n", file, p.Sharing.Mode, p.Retention.Mode, overridesNote(p))
	a.heading(fmt.Sprintf("Effective policy for account %s (%s)", f.account, where))
	fmt.Fprintf(a.io.Out, "Overrides applied, in order: %s\n\n", order)
	if a.output == OutputMarkdown {
		fmt.Fprintf(a.io.Out, "```yaml\n%s```\n", doc)
		return nil
	}
	_, err = a.io.Out.Write(doc)
	return err
}

// maxOUDepth bounds the walk up from an account: Organizations nests OUs
// five deep under the root.
const maxOUDepth = 8

// ouPathOf reads the account's OU path from Organizations, root first
// (ListParents from the account up to the root).
func ouPathOf(ctx context.Context, api awsapi.OrganizationsAPI, account string) ([]string, error) {
	var path []string
	child := account
	for range maxOUDepth {
		out, err := api.ListParents(ctx, &organizations.ListParentsInput{ChildId: aws.String(child)})
		if err != nil {
			return nil, fmt.Errorf("reading the OU path of account %s from Organizations (the management or delegated administrator account's credentials are needed): %w", account, err)
		}
		if len(out.Parents) != 1 {
			return nil, fmt.Errorf("reading the OU path of account %s: %s has %d parents, want 1", account, child, len(out.Parents))
		}
		parent := out.Parents[0]
		path = append([]string{aws.ToString(parent.Id)}, path...)
		if parent.Type == types.ParentTypeRoot {
			return path, nil
		}
		child = aws.ToString(parent.Id)
	}
	return nil, fmt.Errorf("reading the OU path of account %s: no root within %d levels", account, maxOUDepth)
}
