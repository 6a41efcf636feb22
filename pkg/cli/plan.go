package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func init() { commands = append(commands, (*app).planCmd) }

func (a *app) planCmd() *cobra.Command {
	var keyFlag string
	var sf scopeFlags
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show the cleanup's decision for every AMI and orphan snapshot, with every reason and the totals; changes nothing",
		Long: `plan runs the cleanup function's engine (inventory, launch permissions,
planning) in each region and prints its decision for every AMI the account
owns (keep, skip, mark, unmark, wait, deregister, pending) and for every
snapshot whose AMI is gone, with every reason, the totals, and the GiB and
USD a month that apply would free.

plan never changes anything, whatever the policy's retention.mode: it plans
as an audit run does (launch permissions are read before planning, so the
plan is exact).

Several regions are planned concurrently, each on its own clients. A region
that fails (its inventory cannot be read whole, for example) is reported on
stderr and the others complete; the command then exits 1.

--output json prints one JSON document: an array with one element per
region, in region order, each the report the cleanup function emits
(account, region, mode, plan with decisions, orphans and totals, problems,
incomplete).

Without the records key (--records-key, or HOUSEKEEPER_RECORDS_KEY_ID), the
cleanup's sealed marks cannot be verified: every mark is then treated as
absent, and the command says so on stderr.

With --detailed-exitcode, plan exits 3 when there is something to do (a
mark, unmark, deregistration or orphan snapshot deletion), 0 when not.

Across accounts: --accounts and --ou (every ACTIVE account under the OUs,
listed through Organizations) plan each account through its member role
(--role-name), with the account's own policy: the document's overrides for
its OUs and for it applied (see policy validate --account). The output is
grouped by account, then region; --output json is then one document,
{"accounts": [{"account", "path", "overrides", "not_covered", "reports"}],
"skipped": {...}}. An account whose role cannot be assumed is listed with
the reason and the others complete; the command then exits 4. Without these
flags, the caller's own account is planned with its overrides applied
(Organizations is read for its OU path only when the policy has overrides
by OU).`,
		Example: `  ami-housekeeper plan --policy policy.yaml --region eu-west-1
  ami-housekeeper plan --policy policy.yaml --region eu-west-1 --region us-east-1 --output json
  ami-housekeeper plan --region all --records-key alias/ami-housekeeper-records --detailed-exitcode
  ami-housekeeper plan --policy policy.yaml --output markdown > plan.md
  ami-housekeeper plan --policy policy.yaml --ou ou-ab12-cdefgh34 --region eu-west-1 --region us-east-1
  ami-housekeeper plan --policy policy.yaml --accounts 111122223333,444455556666 --role-name housekeeper-readonly`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := sf.check(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			pol, run, err := a.startReading(ctx, keyFlag)
			if err != nil {
				return err
			}
			cov, err := a.coverRun(ctx, run, &sf, pol)
			if err != nil {
				return err
			}
			if cov.multi {
				return a.planAccounts(ctx, run, cov)
			}
			eff := cov.targets[0].Policy
			a.sayOverrides(cov.targets[0])
			reps := a.planRegions(ctx, run, eff.Retention)
			if err := a.renderReports(reps, eff.Retention.Mode, false); err != nil {
				return err
			}
			if err := a.reportFailures(reps); err != nil {
				return err
			}
			if a.detailedExitcode {
				for _, rep := range reps {
					if hasChanges(rep.Plan) {
						return changesPending
					}
				}
			}
			return nil
		},
	}
	recordsKeyFlag(cmd, &keyFlag)
	addScopeFlags(cmd, &sf)
	return cmd
}

// planAccounts plans every reached account × region, each with its
// account's effective retention policy in audit, and renders them by
// account.
func (a *app) planAccounts(ctx context.Context, run *cleanupRun, cov *coverage) error {
	reps := a.acrossAccounts(ctx, cov.targets, run.regions, "plan", func(ctx context.Context, t *acctTarget, region string) *sweep.Report {
		return run.sweeperWith(t.clients, region).Run(ctx, t.Account, region, planOnly(t.Policy.Retention))
	})
	if err := a.renderAccountReports(cov, reps, false); err != nil {
		return err
	}
	if err := a.reportFailuresAcross(cov.targets, reps); err != nil {
		return err
	}
	if err := cov.notCovered(); err != nil {
		return err
	}
	if a.detailedExitcode {
		for _, rs := range reps {
			for _, rep := range rs {
				if hasChanges(rep.Plan) {
					return changesPending
				}
			}
		}
	}
	return nil
}

// accountReports is one account of a multi-account plan or apply in JSON.
type accountReports struct {
	accountJSON
	Reports []*sweep.Report `json:"reports"`
}

// accountsDocument is plan's and apply's JSON output across accounts.
type accountsDocument struct {
	Accounts []accountReports  `json:"accounts"`
	Skipped  map[string]string `json:"skipped"`
}

// renderAccountReports prints each account's reports under its heading
// (NOT COVERED with the reason for an unreachable one), then who was
// skipped and not covered; or one JSON document.
func (a *app) renderAccountReports(cov *coverage, reps map[string][]*sweep.Report, applied bool) error {
	if a.output == OutputJSON {
		doc := accountsDocument{Accounts: []accountReports{}, Skipped: cov.skipped}
		for _, t := range cov.targets {
			rs := reps[t.Account]
			if rs == nil {
				rs = []*sweep.Report{}
			}
			doc.Accounts = append(doc.Accounts, accountReports{accountJSON: t.json(), Reports: rs})
		}
		return writeJSON(a.io.Out, doc)
	}
	for _, t := range cov.targets {
		a.accountHeading(t)
		for _, rep := range reps[t.Account] {
			a.renderReport(rep, t.Policy.Retention.Mode, applied)
		}
	}
	a.renderCoverage(cov)
	return nil
}

// accountHeading writes one account's title, above its regions' headings.
func (a *app) accountHeading(t *acctTarget) {
	s := escapeText(t.heading())
	if a.output == OutputMarkdown {
		fmt.Fprintf(a.io.Out, "# %s\n\n", s)
		return
	}
	fmt.Fprintf(a.io.Out, "=== %s ===\n\n", s)
}

// sayOverrides says, for the caller's own account, which overrides its
// policy has (nothing when none: the output is as it always was).
func (a *app) sayOverrides(t *acctTarget) {
	if applied := t.Policy.Applied(); len(applied) > 0 && a.output != OutputJSON {
		fmt.Fprintf(a.io.Out, "Policy for account %s: the document's overrides %s applied\n\n", t.Account, strings.Join(applied, ", "))
	}
}

// coverRun resolves the accounts of a cleanup command.
func (a *app) coverRun(ctx context.Context, run *cleanupRun, f *scopeFlags, pol *policy.Policy) (*coverage, error) {
	return a.cover(ctx, run.cfg, run.account, run.clients, run.regions, f, pol)
}

// planRegions plans every region of run in audit mode: the sweep stops
// after planning, so nothing is changed whatever p's mode.
func (a *app) planRegions(ctx context.Context, run *cleanupRun, p policy.Retention) []*sweep.Report {
	p = planOnly(p)
	return a.eachRegion(ctx, run.regions, "plan", func(ctx context.Context, region string) *sweep.Report {
		return run.sweeper(region).Run(ctx, run.account, region, p)
	})
}

// planOnly is p in audit mode: the sweep stops after planning, so nothing
// is changed whatever the policy's mode (plan, in one account or many).
func planOnly(p policy.Retention) policy.Retention {
	p.Mode = policy.ModeAudit
	return p
}

// renderReports prints the reports in a.output's format. policyMode is the
// policy's retention mode (a plan runs in audit whatever it is); applied
// says the reports carry results (apply).
func (a *app) renderReports(reps []*sweep.Report, policyMode policy.Mode, applied bool) error {
	if a.output == OutputJSON {
		return writeJSON(a.io.Out, reps)
	}
	for _, rep := range reps {
		a.renderReport(rep, policyMode, applied)
	}
	return nil
}

func (a *app) renderReport(rep *sweep.Report, policyMode policy.Mode, applied bool) {
	heading := fmt.Sprintf("Region %s, account %s", rep.Region, rep.Account)
	if applied {
		heading += ": applied"
	} else {
		heading += fmt.Sprintf(": plan only, nothing was changed (policy retention.mode: %s)", policyMode)
	}
	a.heading(heading)
	if why := regionFailure(rep); why != "" {
		fmt.Fprintf(a.io.Out, "FAILED: %s\n\n", escapeText(why))
	}
	if applied && rep.Results != nil {
		a.renderResults(rep)
	} else {
		a.renderDecisions(rep.Plan.Decisions)
	}
	if len(rep.Plan.Orphans) > 0 {
		a.renderOrphans(rep.Plan.Orphans)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(a.io.Out, "Problem: %s\n", escapeText(p))
	}
	a.block(rep.Summary())
}

// heading writes a section title: a markdown heading, or a plain line. It
// may quote an AMI name: it is escaped (escapeText).
func (a *app) heading(s string) {
	s = escapeText(s)
	if a.output == OutputMarkdown {
		fmt.Fprintf(a.io.Out, "## %s\n\n", s)
		return
	}
	fmt.Fprintf(a.io.Out, "%s\n", s)
}

// block writes text that keeps its lines in markdown too; what is in the
// lines is escaped (escapeCell).
func (a *app) block(s string) {
	s = escapeCell(s)
	if a.output == OutputMarkdown {
		fmt.Fprintf(a.io.Out, "```\n%s```\n\n", s)
		return
	}
	fmt.Fprintln(a.io.Out, s)
}

// renderDecisions is one row per AMI: what the plan does and every reason.
func (a *app) renderDecisions(ds []cleanup.Decision) {
	t := a.newTable(table.Row{"AMI", "Name", "Action", "Rule", "Family", "Reasons", "GiB"}, "Reasons")
	for _, d := range ds {
		t.AppendRow(table.Row{d.ImageID, escapeText(d.Name), actionText(d), escapeText(d.Rule), escapeText(d.Family), cellLines(d.Reasons), gib(d.SizeGiB)})
	}
	if len(ds) == 0 {
		t.AppendRow(table.Row{"(no AMIs owned in this region)", "", "", "", "", "", ""})
	}
	a.renderTable(t)
}

// actionText is the action, with the mark date where there is one.
func actionText(d cleanup.Decision) string {
	if d.DeleteAfter != "" && d.Action != cleanup.ActionDeregister {
		return string(d.Action) + " (after " + d.DeleteAfter + ")"
	}
	return string(d.Action)
}

// renderOrphans is one row per snapshot whose AMI is gone.
func (a *app) renderOrphans(os []cleanup.SnapshotDecision) {
	t := a.newTable(table.Row{"Orphan snapshot", "Was for AMI", "Action", "Reasons", "GiB"}, "Reasons")
	for _, o := range os {
		action := string(o.Action)
		if o.Action == cleanup.ActionDeregister {
			action = "delete"
		}
		t.AppendRow(table.Row{o.SnapshotID, o.ImageID, action, cellLines(o.Reasons), gib(o.SizeGiB)})
	}
	a.renderTable(t)
}

func gib(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}
