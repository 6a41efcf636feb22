package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func (a *app) policyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Validate a policy document, or print its JSON Schema",
	}
	validate := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a policy document: every problem, with its path, as the functions print them",
		Example: `  ami-housekeeper policy validate policy.yaml
  ami-housekeeper policy validate policy.json --output json`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			if a.output == OutputJSON {
				return writeJSON(a.io.Out, p)
			}
			fmt.Fprintf(a.io.Out, "%s: valid (tagging, sharing %s, retention %s)\n", args[0], p.Sharing.Mode, p.Retention.Mode)
			return nil
		},
	}
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
