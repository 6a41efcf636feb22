package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

func init() { commands = append(commands, (*app).applyCmd) }

func (a *app) applyCmd() *cobra.Command {
	var keyFlag string
	var enforce bool
	var sf scopeFlags
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Carry out the cleanup plan now: mark, unmark, deregister and delete snapshots, as the cleanup function would",
		Long: `apply runs the cleanup function's sweep in each region, enforcing: it plans
as plan does and carries the plan out (marks, unmarks, deregistrations,
snapshot deletions). The policy's caps, grace days and second opinion hold,
and every removal is rechecked right before it happens, as in the function.

It acts only when the policy's retention.mode is enforce, or --enforce is
given. It needs the records key (--records-key, or HOUSEKEEPER_RECORDS_KEY_ID):
the cleanup seals every record tag it writes; without the key it refuses
before calling AWS (exit 2).

On a terminal it first shows the plan's changes and asks; --yes answers for
you. Without a terminal it refuses without --yes (exit 2, nothing changed).
The sweep then plans again at the moment of acting and makes only the changes
you confirmed: anything that would change now but was not in the plan you saw
is kept and reported ("not in the plan you confirmed"). With --yes there is no
preview, and the sweep acts on the account as it is.

It prints what it did, AMI by AMI, and the totals; --output json prints an
array with one report per region, in region order, each the report the
cleanup function emits (plan and results). A region that fails is reported
and the others complete; the command then exits 1.

Across accounts (--accounts, --ou; see plan), each account runs with its own
policy and is acted on only when its retention.mode is enforce (or --enforce
is given); the others are listed as not applied. Every rule above holds per
account: on a terminal each account's changes are shown and asked for in
turn (an account answered no is left as it is, the others go on, and the
command exits 1), and without a terminal --yes is required. JSON output is
then one document by account, as plan's. An account whose role cannot be
assumed is listed with the reason; the command then exits 4.`,
		Example: `  ami-housekeeper apply --policy policy.yaml --region eu-west-1
  ami-housekeeper apply --policy policy.yaml --region eu-west-1 --records-key alias/ami-housekeeper-records --yes
  ami-housekeeper apply --policy audit-policy.yaml --enforce --region eu-west-1 --region us-east-1 --yes --output json
  ami-housekeeper apply --policy policy.yaml --ou ou-ab12-cdefgh34 --region eu-west-1 --records-key alias/ami-housekeeper-records`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := sf.check(cmd); err != nil {
				return err
			}
			pol, err := a.loadPolicy()
			if err != nil {
				return err
			}
			// Decided before any call: no account's policy can say enforce.
			if !enforce && !mayEnforce(pol) {
				return usageError("the policy's retention.mode is %q: apply acts only on an enforce policy; give --enforce to apply it anyway (plan shows what it would do)", pol.Retention.Mode)
			}
			keyID := a.recordsKeyID(keyFlag)
			if keyID == "" {
				return usageError("apply needs the records key the cleanup seals its records with: give --records-key or set %s", records.EnvKeyID)
			}
			if !a.yes && !a.io.Terminal {
				return a.confirm("apply changes AMIs and snapshots")
			}
			ctx := cmd.Context()
			run, err := a.startCleanup(ctx, keyID)
			if err != nil {
				return err
			}
			cov, err := a.coverRun(ctx, run, &sf, pol)
			if err != nil {
				return err
			}
			if cov.multi {
				return a.applyAccounts(ctx, run, cov, enforce)
			}
			t := cov.targets[0]
			p := t.Policy.Retention
			if p.Mode != policy.ModeEnforce && !enforce {
				return usageError("account %s's retention.mode is %q (overrides applied: %s): apply acts only on an enforce policy; give --enforce to apply it anyway (plan shows what it would do)",
					t.Account, p.Mode, orNone(strings.Join(t.Policy.Applied(), ", ")))
			}
			p.Mode = policy.ModeEnforce
			a.sayOverrides(t)
			// What the operator confirmed, per region: the sweep then makes
			// only those changes, whatever the account looks like by then.
			var approved map[string]*cleanup.Approval
			if !a.yes {
				var proceed bool
				if approved, proceed, err = a.previewAndConfirm(ctx, run, t, p); err != nil || !proceed {
					return err
				}
			}
			reps := a.eachRegion(ctx, run.regions, "apply", func(ctx context.Context, region string) *sweep.Report {
				return applyRegion(ctx, run, t, region, p, approved)
			})
			if err := a.renderReports(reps, p.Mode, true); err != nil {
				return err
			}
			return a.reportFailures(reps)
		},
	}
	recordsKeyFlag(cmd, &keyFlag)
	cmd.Flags().BoolVar(&enforce, "enforce", false, "apply even though the policy's retention.mode is audit")
	addScopeFlags(cmd, &sf)
	return cmd
}

// mayEnforce says whether the policy, or any of its overrides, sets
// retention.mode enforce: otherwise apply has nothing to act on in any
// account.
func mayEnforce(pol *policy.Policy) bool {
	vs, err := pol.Variants()
	if err != nil {
		return true // For says what is wrong, naming the account
	}
	for _, v := range vs {
		if v.Retention.Mode == policy.ModeEnforce {
			return true
		}
	}
	return false
}

// previewAndConfirm shows the changes the plan makes in t's regions and
// asks. It returns what was confirmed, per region, and whether to go on:
// false with a nil error when there is nothing to do (said so).
func (a *app) previewAndConfirm(ctx context.Context, run *cleanupRun, t *acctTarget, p policy.Retention) (map[string]*cleanup.Approval, bool, error) {
	audit := p
	audit.Mode = policy.ModeAudit
	preview := a.eachRegion(ctx, run.regions, "plan", func(ctx context.Context, region string) *sweep.Report {
		return run.sweeperWith(t.clients, region).Run(ctx, t.Account, region, audit)
	})
	approved := map[string]*cleanup.Approval{}
	for _, rep := range preview {
		ap := cleanup.ApprovalOf(&rep.Plan)
		approved[rep.Region] = &ap
	}
	changes := false
	for _, rep := range preview {
		a.heading(fmt.Sprintf("Region %s, account %s: the plan", rep.Region, rep.Account))
		a.renderDecisions(changing(rep.Plan.Decisions))
		a.block(rep.Summary())
		changes = changes || hasChanges(rep.Plan)
	}
	if err := a.reportFailures(preview); err != nil {
		return nil, false, err
	}
	if !changes {
		fmt.Fprintln(a.io.Out, "Nothing to do.")
		return nil, false, nil
	}
	if err := a.confirm(fmt.Sprintf("Apply this plan in %s (account %s)?", strings.Join(run.regions, ", "), t.Account)); err != nil {
		return nil, false, err
	}
	return approved, true, nil
}

// applyRegion runs the enforcing sweep of one region of t. approved nil
// (--yes): the sweep acts on the account as it is; otherwise it makes only
// the changes confirmed, and a region the preview did not cover approves
// nothing.
func applyRegion(ctx context.Context, run *cleanupRun, t *acctTarget, region string, p policy.Retention, approved map[string]*cleanup.Approval) *sweep.Report {
	s := run.sweeperWith(t.clients, region)
	if approved != nil {
		s.Approved = approved[region]
		if s.Approved == nil {
			s.Approved = &cleanup.Approval{}
		}
	}
	return s.Run(ctx, t.Account, region, p)
}

// applyAccounts is apply across accounts. An account is acted on only when
// its own retention.mode is enforce (or --enforce is given). On a terminal
// without --yes each account's changes are shown and asked for in turn, as
// for one account; an account answered no (or whose preview failed) is left
// as it is and the others go on.
func (a *app) applyAccounts(ctx context.Context, run *cleanupRun, cov *coverage, enforce bool) error {
	approved := map[string]map[string]*cleanup.Approval{}
	var acting []*acctTarget
	// Why nothing was applied in an account: its policy says audit (as
	// asked, not a failure), or it was answered no or its preview failed.
	audited, held := map[string]string{}, map[string]string{}
	for _, t := range cov.reached() {
		p := t.Policy.Retention
		if p.Mode != policy.ModeEnforce && !enforce {
			audited[t.Account] = fmt.Sprintf("its retention.mode is %q (overrides applied: %s); give --enforce to apply it anyway",
				p.Mode, orNone(strings.Join(t.Policy.Applied(), ", ")))
			continue
		}
		p.Mode = policy.ModeEnforce
		if !a.yes {
			a.accountHeading(t)
			ap, proceed, err := a.previewAndConfirm(ctx, run, t, p)
			var ee *exitError
			switch {
			case errors.As(err, &ee) && ee.code == ExitError:
				held[t.Account] = ee.err.Error()
				continue
			case err != nil:
				return err
			case !proceed:
				continue
			}
			approved[t.Account] = ap
		}
		acting = append(acting, t)
	}
	reps := a.acrossAccounts(ctx, acting, run.regions, "apply", func(ctx context.Context, t *acctTarget, region string) *sweep.Report {
		p := t.Policy.Retention
		p.Mode = policy.ModeEnforce
		return applyRegion(ctx, run, t, region, p, approved[t.Account])
	})
	if a.output != OutputJSON && !a.yes {
		fmt.Fprintln(a.io.Out, "Applied:")
		fmt.Fprintln(a.io.Out)
	}
	if err := a.renderAccountReports(cov, reps, true); err != nil {
		return err
	}
	for _, why := range []map[string]string{audited, held} {
		for _, id := range slices.Sorted(maps.Keys(why)) {
			fmt.Fprintf(a.io.Err, "account %s not applied: %s\n", id, escapeText(why[id]))
		}
	}
	if err := a.reportFailuresAcross(acting, reps); err != nil {
		return err
	}
	if err := cov.notCovered(); err != nil {
		return err
	}
	if len(held) > 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("%d account(s) not applied: %s", len(held), strings.Join(slices.Sorted(maps.Keys(held)), ", "))}
	}
	return nil
}

// changing keeps the decisions that change something now (and those held
// back by a cap, so the preview shows what waits for the next run).
func changing(ds []cleanup.Decision) []cleanup.Decision {
	var out []cleanup.Decision
	for _, d := range ds {
		switch d.Action {
		case cleanup.ActionMark, cleanup.ActionUnmark, cleanup.ActionDeregister, cleanup.ActionPending:
			out = append(out, d)
		}
	}
	return out
}

// renderResults is what apply did, AMI by AMI, then the orphan snapshots.
func (a *app) renderResults(rep *sweep.Report) {
	res := rep.Results
	if res.Refused != "" {
		fmt.Fprintf(a.io.Out, "Nothing was done: %s\n\n", res.Refused)
		return
	}
	decisions := map[string]cleanup.Decision{}
	for _, d := range rep.Plan.Decisions {
		decisions[d.ImageID] = d
	}
	snaps := map[string][]execute.SnapshotResult{}
	for _, s := range res.Snapshots {
		snaps[s.ImageID] = append(snaps[s.ImageID], s)
	}
	t := a.newTable(table.Row{"AMI", "Name", "Action", "Outcome", "Snapshots", "GiB"}, "Outcome")
	for _, ir := range res.Images {
		d := decisions[ir.ImageID]
		size := ""
		if ir.Done && ir.Action == cleanup.ActionDeregister {
			size = gib(d.SizeGiB)
		}
		t.AppendRow(table.Row{ir.ImageID, d.Name, string(ir.Action), imageOutcome(ir), snapshotsText(snaps[ir.ImageID]), size})
	}
	orphans := map[string]bool{}
	for _, o := range rep.Plan.Orphans {
		orphans[o.SnapshotID] = true
	}
	for _, s := range res.Snapshots {
		if orphans[s.SnapshotID] {
			t.AppendRow(table.Row{"(orphan)", "", "delete snapshot", snapshotsText([]execute.SnapshotResult{s}), "", ""})
		}
	}
	if t.Length() == 0 {
		t.AppendRow(table.Row{"(nothing to do)", "", "", "", "", ""})
	}
	a.renderTable(t)
}

// imageOutcome says what happened to one decision.
func imageOutcome(ir execute.ImageResult) string {
	switch {
	case ir.Done:
		return "done" + notes(ir.Notes)
	case len(ir.KeptBecause) > 0:
		return "kept on the recheck right before removal: " + strings.Join(ir.KeptBecause, "; ")
	case ir.Error == execute.NotStarted:
		return ir.Error
	}
	return "FAILED: " + ir.Error + notes(ir.Notes)
}

func notes(ns []string) string {
	if len(ns) == 0 {
		return ""
	}
	return " (" + strings.Join(ns, "; ") + ")"
}

// snapshotsText lists snapshot outcomes: "snap-1 deleted", "snap-2: error".
func snapshotsText(rs []execute.SnapshotResult) string {
	lines := make([]string, 0, len(rs))
	for _, s := range rs {
		switch {
		case s.Deleted:
			lines = append(lines, s.SnapshotID+" deleted")
		case s.Via == execute.ViaAlreadyGone:
			lines = append(lines, s.SnapshotID+" already gone")
		default:
			lines = append(lines, s.SnapshotID+" NOT deleted: "+escapeText(s.Error))
		}
	}
	return strings.Join(lines, "\n")
}
