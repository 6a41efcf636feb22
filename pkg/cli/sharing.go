package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

func init() { commands = append(commands, (*app).auditSharingCmd) }

func (a *app) auditSharingCmd() *cobra.Command {
	var enforce, useTrail bool
	var sf scopeFlags
	cmd := &cobra.Command{
		Use:   "audit-sharing",
		Short: "List the AMIs and snapshots shared beyond the sharing policy; --enforce revokes those shares",
		Long: `audit-sharing runs the sharing guard's scheduled audit (the same engine) over
every AMI the account owns in the chosen regions, disabled and deprecated ones
included, with their EBS snapshots (and every owned snapshot when the policy
sets check_all_snapshots). It lists each principal the policy does not allow
(an account, an organization or OU, or public), why, and who shared it when
CloudTrail still has the call (ModifyImageAttribute / ModifySnapshotAttribute,
90 days); the principals kept and why; and the exception tags read, with their
ticket and expiry.

It is a full pass from the first AMI: it neither reads nor moves the
scheduled audit's SSM cursor.

Nothing changes unless --enforce is given, whatever the policy's
sharing.mode. With --enforce it shows the findings, asks (--yes answers;
without a terminal --yes is required, and it refuses before any AWS call),
then runs the audit again in enforce mode: every resource is re-read and the
principals the policy does not allow are removed, confirmed by a second read,
and the AMI is tagged as the function tags it. Only the shares shown and
confirmed are revoked: one the second pass finds that the preview did not show
(shared since) is left in place and reported; run again to see it. When the policy sets
enable_image_block_public_access, the enforcing pass also turns image block
public access on where it is off.

With --detailed-exitcode, exit 3 when there are shares to revoke (without
--enforce). JSON output is one document: the audit's report per region, as
the sharing function logs it.

Across accounts: --accounts and --ou (every ACTIVE account under the OUs,
listed through Organizations) audit each account through its member role
(--role-name), with the account's own sharing policy (the document's
overrides applied), and when the organization was read, a removed account's
membership of a kept organization or OU is known rather than "may keep
access". Findings are grouped by account; with --enforce each account's
revocations are shown and asked for in turn (an account answered no is left
as it is). JSON output is then {"accounts": [{"account", "path",
"overrides", "not_covered", "enforced", "reports"}], "skipped": {...}}. An
account whose role cannot be assumed is listed with the reason and the
others complete; the command then exits 4.`,
		Example: `  ami-housekeeper audit-sharing --policy policy.yaml --region eu-west-1
  ami-housekeeper audit-sharing --region all --output json
  ami-housekeeper audit-sharing --policy policy.yaml --region eu-west-1 --enforce
  ami-housekeeper audit-sharing --region eu-west-1 --detailed-exitcode || echo "shares to revoke"
  ami-housekeeper audit-sharing --policy policy.yaml --ou r-ab12 --region all --output json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := sf.check(cmd); err != nil {
				return err
			}
			return a.auditSharing(cmd.Context(), enforce, useTrail, &sf)
		},
	}
	addScopeFlags(cmd, &sf)
	cmd.Flags().BoolVar(&enforce, "enforce", false, "revoke the shares the policy does not allow (asks first; --yes without a terminal)")
	cmd.Flags().BoolVar(&useTrail, "cloudtrail", true, "look up in CloudTrail (LookupEvents, 90 days) who shared each resource")
	return cmd
}

// sharingDocument is audit-sharing's JSON output.
type sharingDocument struct {
	Account string `json:"account"`
	// Enforced is set when the reports are those of the enforcing pass.
	Enforced bool           `json:"enforced"`
	Reports  []audit.Report `json:"reports"`
	// actors are who added each principal (actorKey), for the table.
	actors map[string]string
}

func (a *app) auditSharing(ctx context.Context, enforce, useTrail bool, sf *scopeFlags) error {
	pol, err := a.loadPolicy()
	if err != nil {
		return err
	}
	if enforce && !a.yes && !a.io.Terminal {
		// Decided before any AWS call: the question could not be asked.
		return usageError("audit-sharing --enforce: refusing without a terminal; give --yes to proceed")
	}
	cfg, regions, acct, err := a.connect(ctx)
	if err != nil {
		return err
	}
	clients := awsapi.NewClients(cfg)
	cov, err := a.cover(ctx, cfg, acct, clients, regions, sf, pol)
	if err != nil {
		return err
	}
	if cov.multi {
		return a.auditSharingAccounts(ctx, cov, regions, enforce, useTrail)
	}
	pol = cov.targets[0].Policy
	a.sayOverrides(cov.targets[0])
	members := cov.membership()

	// Whatever the policy's mode, the first pass only reads.
	readOnly := pol.Sharing
	readOnly.Mode = policy.ModeAudit
	reports := auditRegions(ctx, clients, acct, regions, readOnly, nil, members)
	var actors map[string]string
	if useTrail {
		actors = a.sharingActors(ctx, cfg, acct, reports)
		applyActors(reports, actors)
	}
	toRevoke, resources := revocations(reports)
	if !enforce || toRevoke == 0 {
		if err := a.renderSharing(sharingDocument{Account: acct, Reports: reports, actors: actors}); err != nil {
			return err
		}
		if err := reportErrors(reports); err != nil {
			return err
		}
		if enforce {
			fmt.Fprintln(a.io.Err, "Nothing to revoke.")
		}
		if toRevoke > 0 && a.detailedExitcode {
			return changesPending
		}
		return nil
	}

	if a.output != OutputJSON {
		if err := a.renderSharing(sharingDocument{Account: acct, Reports: reports, actors: actors}); err != nil {
			return err
		}
	}
	q := fmt.Sprintf("Revoke %d share(s) on %d resource(s) in %s", toRevoke, resources, strings.Join(regions, ", "))
	if pol.Sharing.EnableImageBlockPublicAccess {
		q += ", and turn image block public access on where it is off"
	}
	if err := a.confirm(q + "?"); err != nil {
		return err
	}
	enforcing := pol.Sharing
	enforcing.Mode = policy.ModeEnforce
	// The enforcing pass re-reads everything; it removes only what the
	// operator was shown and confirmed, never a share made since.
	done := auditRegions(ctx, clients, acct, regions, enforcing, confirmedRevocations(reports), members)
	applyActors(done, actors)
	if a.output != OutputJSON {
		fmt.Fprintln(a.io.Out)
		fmt.Fprintln(a.io.Out, "Enforced:")
	}
	if err := a.renderSharing(sharingDocument{Account: acct, Enforced: true, Reports: done, actors: actors}); err != nil {
		return err
	}
	held := 0
	for _, r := range done {
		for _, f := range r.Findings {
			for _, p := range f.Held {
				fmt.Fprintf(a.io.Err, "Not revoked: %s %s %s in %s is not in the confirmed audit: run again to see it\n", f.ResourceType, f.ResourceID, p, r.Region)
				held++
			}
		}
	}
	if err := reportErrors(done); err != nil {
		return err
	}
	if held > 0 && a.detailedExitcode {
		return changesPending
	}
	return nil
}

// confirmedRevocations is the set of (region, resource, principal) the
// read-only pass would revoke, as shown to the operator (actorKey).
func confirmedRevocations(reports []audit.Report) map[string]bool {
	set := map[string]bool{}
	for _, r := range reports {
		for _, f := range r.Findings {
			if f.Action != sharing.ActionWouldRevoke {
				continue
			}
			for _, p := range f.Removed {
				set[actorKey(r.Region, f.ResourceID, p)] = true
			}
		}
	}
	return set
}

// auditRegions runs one full audit pass per region, concurrently (each
// paced within its region's EC2 limits by the Auditor), without a cursor:
// the CLI never reads or moves the scheduled audit's position. When
// confirmed is not nil, an enforcing pass removes only the principals it
// holds (actorKey); the others are left and reported as held. members,
// when not nil, is the organization the guard resolves membership against.
func auditRegions(ctx context.Context, clients *awsapi.Clients, acct string, regions []string, p policy.Sharing, confirmed map[string]bool, members sharing.Membership) []audit.Report {
	reports := make([]audit.Report, len(regions))
	var wg sync.WaitGroup
	for i, region := range regions {
		wg.Go(func() {
			ec2c := clients.EC2(region)
			enf := &sharing.Enforcer{EC2: ec2c, Policy: p, Membership: members}
			if confirmed != nil {
				enf.MayRemove = func(_ sharing.ResourceKind, id string, pr sharing.Principal) bool {
					return confirmed[actorKey(region, id, pr)]
				}
			}
			au := &audit.Auditor{EC2: ec2c, Guardrail: ec2c, Checker: enf, Policy: p, Clock: clock.Real()}
			reports[i] = au.Run(ctx, acct, region, "")
		})
	}
	wg.Wait()
	return reports
}

// revocations counts the principals the read-only pass would remove, and
// the resources they are on.
func revocations(reports []audit.Report) (principals, resources int) {
	for _, r := range reports {
		for _, f := range r.Findings {
			if f.Action == sharing.ActionWouldRevoke && len(f.Removed) > 0 {
				principals += len(f.Removed)
				resources++
			}
		}
	}
	return principals, resources
}

// reportErrors fails the command (exit 1) when an audit could not do its
// job in a region; the other regions' reports were printed.
func reportErrors(reports []audit.Report) error {
	var errs []error
	for _, r := range reports {
		if err := r.Err(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &exitError{code: ExitError, err: errors.Join(errs...)}
}

// actorKey names one principal on one resource in one region.
func actorKey(region, resourceID string, p sharing.Principal) string {
	return region + "/" + resourceID + "/" + p.String()
}

// sharingActors finds, for each principal a finding names, the latest
// permission change in CloudTrail that added it: "who (when)". CloudTrail
// being unreadable is a warning, not a failure: the findings stand.
func (a *app) sharingActors(ctx context.Context, cfg aws.Config, acct string, reports []audit.Report) map[string]string {
	actors := map[string]string{}
	var warned []string
	for _, r := range reports {
		if len(r.Findings) == 0 {
			continue
		}
		rc := cfg.Copy()
		rc.Region = r.Region
		tr := newTrail(cloudtrail.NewFromConfig(rc), acct, r.Region)
		end := time.Now()
		for _, f := range r.Findings {
			events, _, err := tr.lookup(ctx, cttypes.LookupAttributeKeyResourceName, f.ResourceID, end.Add(-cloudTrailRetention), end)
			if err != nil {
				warned = append(warned, err.Error())
				break // one failure per region is enough to say so
			}
			for _, p := range slices.Concat(f.Removed, f.Remaining) {
				key := actorKey(r.Region, f.ResourceID, p)
				if _, ok := actors[key]; !ok {
					if who := whoAdded(events, f.ResourceID, p); who != "" {
						actors[key] = who
					}
				}
			}
		}
	}
	for _, w := range warned {
		fmt.Fprintln(a.io.Err, "Warning: who shared what is unknown:", w)
	}
	return actors
}

// whoAdded returns the caller of the latest change (events are newest
// first) that added p to resourceID, or "".
func whoAdded(events []amievents.Event, resourceID string, p sharing.Principal) string {
	var best *amievents.PermissionChanged
	for _, ev := range events {
		pc, ok := ev.(*amievents.PermissionChanged)
		if !ok || pc.ResourceID != resourceID || !slices.ContainsFunc(pc.Added, func(g amievents.Grant) bool { return grantIs(g, p) }) {
			continue
		}
		if best == nil || pc.CallTime.After(best.CallTime) {
			best = pc
		}
	}
	if best == nil {
		return ""
	}
	return fmt.Sprintf("%s (%s)", best.Principal.Who(), best.CallTime.UTC().Format(time.RFC3339))
}

// grantIs tells whether a grant the caller asked for is principal p.
func grantIs(g amievents.Grant, p sharing.Principal) bool {
	if g.Kind == "group" {
		return g.Value == "all" && p.Kind == sharing.KindPublic
	}
	return g.Kind == p.Kind && g.Value == p.Value
}

// applyActors fills each finding's Actor (the audit leaves it empty: it
// has no event) with who added its principals, when known.
func applyActors(reports []audit.Report, actors map[string]string) {
	for i := range reports {
		for j := range reports[i].Findings {
			f := &reports[i].Findings[j]
			var who []string
			for _, p := range slices.Concat(f.Removed, f.Remaining) {
				if w, ok := actors[actorKey(reports[i].Region, f.ResourceID, p)]; ok && !slices.Contains(who, w) {
					who = append(who, w)
				}
			}
			if len(who) > 0 && f.Actor == "" {
				f.Actor = strings.Join(who, "; ")
			}
		}
	}
}

func (a *app) renderSharing(doc sharingDocument) error {
	if a.output == OutputJSON {
		return writeJSON(a.io.Out, doc)
	}
	findings := a.newTable(table.Row{"Region", "Resource", "Principal", "Action", "Why", "Shared by"}, "Why", "Shared by")
	n := 0
	for _, r := range doc.Reports {
		for _, f := range r.Findings {
			res := string(f.ResourceType) + " " + f.ResourceID
			if f.ImageID != "" {
				res += " (of " + f.ImageID + ")"
			}
			failed := map[sharing.Principal]string{}
			for _, pf := range f.Failed {
				failed[pf.Principal] = pf.Error
			}
			for _, p := range f.Removed {
				findings.AppendRow(table.Row{r.Region, res, p.String(), actionWord(f.Action), reasonsFor(f, p), doc.sharedBy(r.Region, f, p)})
				n++
			}
			for _, p := range f.Remaining {
				findings.AppendRow(table.Row{r.Region, res, p.String(), "left: " + failed[p], reasonsFor(f, p), doc.sharedBy(r.Region, f, p)})
				n++
			}
			for _, p := range f.Held {
				findings.AppendRow(table.Row{r.Region, res, p.String(), "left: not in the confirmed audit (run again to see it)", reasonsFor(f, p), doc.sharedBy(r.Region, f, p)})
				n++
			}
			for _, p := range f.Kept {
				findings.AppendRow(table.Row{r.Region, res, p.String(), "keep", reasonsFor(f, p), ""})
			}
		}
	}
	if n == 0 {
		fmt.Fprintln(a.io.Out, "No sharing findings: every AMI and snapshot checked is shared only as the policy allows.")
	} else {
		a.renderTable(findings)
	}

	var exc []table.Row
	for _, r := range doc.Reports {
		for _, x := range r.Exceptions {
			ps := make([]string, len(x.Principals))
			for i, p := range x.Principals {
				ps[i] = p.String()
			}
			exc = append(exc, table.Row{r.Region, x.ResourceID, x.Ticket, strings.Join(ps, ", "), x.Until, x.State, x.Reason})
		}
	}
	if len(exc) > 0 {
		fmt.Fprintln(a.io.Out)
		t := a.newTable(table.Row{"Region", "Exception on", "Ticket", "Principals", "Until", "State", "Note"}, "Note")
		t.AppendRows(exc)
		a.renderTable(t)
	}

	fmt.Fprintln(a.io.Out)
	sum := a.newTable(table.Row{"Region", "Images", "Snapshots", "Findings", "Revoked", "Public AMIs", "Image BPA", "Snapshot BPA", "Errors"}, "Errors")
	for _, r := range doc.Reports {
		sum.AppendRow(table.Row{r.Region, r.ImagesChecked, r.SnapshotsChecked, r.Violations, r.Revoked,
			strings.Join(r.Public, ", "), bpaState(r.Guardrail.ImageBlockPublicAccess), bpaState(r.Guardrail.SnapshotBlockPublicAccess), strings.Join(r.Errors, "; ")})
	}
	a.renderTable(sum)
	return nil
}

// bpaState shortens an unreadable block-public-access state for the table
// (the JSON output has the error).
func bpaState(s string) string {
	if strings.HasPrefix(s, "unknown: ") {
		return "unknown (not readable)"
	}
	return s
}

func actionWord(action string) string {
	if action == sharing.ActionWouldRevoke {
		return "would revoke"
	}
	return action
}

// reasonsFor picks the finding's reasons about p (the engine writes one
// line per principal, starting with it, plus lines on accounts that keep
// access through an organization).
func reasonsFor(f sharing.Finding, p sharing.Principal) string {
	var out []string
	for _, r := range f.Reasons {
		if strings.HasPrefix(r, p.String()+" ") {
			out = append(out, r)
		}
	}
	if p.Kind == sharing.KindAccount {
		for _, s := range f.Shadowed {
			if strings.HasPrefix(s, "account "+p.Value+" ") {
				out = append(out, s)
			}
		}
	}
	return strings.Join(out, "; ")
}

// sharedBy is who added p to the finding's resource, when CloudTrail
// still has the call.
func (d sharingDocument) sharedBy(region string, f sharing.Finding, p sharing.Principal) string {
	if w, ok := d.actors[actorKey(region, f.ResourceID, p)]; ok {
		return w
	}
	return "unknown"
}
