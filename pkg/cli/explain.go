package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func init() { commands = append(commands, (*app).explainCmd) }

// imageIDShape is an AMI ID: ami- and 8 or 17 hex digits.
var imageIDShape = regexp.MustCompile(`^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$`)

func (a *app) explainCmd() *cobra.Command {
	var keyFlag string
	cmd := &cobra.Command{
		Use:   "explain AMI_ID",
		Short: "Everything known about one AMI, and the cleanup's decision for it with every reason",
		Long: `explain reads the region's inventory as the cleanup function does and shows,
for one AMI the account owns: owner, state, family and rank in it, age, last
launch, every usage reference (instance, launch template and version, Auto
Scaling group, launch configuration, SSM parameter, fleets), sharing (launch
permissions), tags, its snapshots and which other AMIs use them, and the
decision the plan makes for it, with every reason. Nothing is changed.

It works in one region (--region, or the SDK's). The decision is the one
plan shows: the same inventory and planner, in audit. Without the records
key (--records-key, or HOUSEKEEPER_RECORDS_KEY_ID) the cleanup's marks
cannot be verified, and the command says so.

An ID that is not an AMI ID is bad usage (exit 2, nothing called); an AMI
that does not exist in the region, or that another account owns, exits 1.`,
		Example: `  ami-housekeeper explain ami-0123456789abcdef0 --region eu-west-1
  ami-housekeeper explain ami-0123456789abcdef0 --policy policy.yaml --output json`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if !imageIDShape.MatchString(id) {
				return usageError("%q is not an AMI ID (ami- and 8 or 17 hexadecimal digits)", id)
			}
			if len(a.regions) > 1 || slices.Contains(a.regions, "all") {
				return usageError("explain works in one region: give one --region")
			}
			ctx := cmd.Context()
			pol, run, err := a.startReading(ctx, keyFlag)
			if err != nil {
				return err
			}
			// The account's own policy: its overrides apply here as in plan.
			cov, err := a.coverRun(ctx, run, &scopeFlags{}, pol)
			if err != nil {
				return err
			}
			a.sayOverrides(cov.targets[0])
			ex, err := a.explain(ctx, run, run.regions[0], id, cov.targets[0].Policy.Retention)
			if err != nil {
				return err
			}
			if a.output == OutputJSON {
				return writeJSON(a.io.Out, ex)
			}
			a.renderExplanation(ex)
			return nil
		},
	}
	recordsKeyFlag(cmd, &keyFlag)
	return cmd
}

// explanation is everything explain knows about one AMI (--output json).
type explanation struct {
	Account                  string            `json:"account"`
	Region                   string            `json:"region"`
	ImageID                  string            `json:"image_id"`
	Name                     string            `json:"name"`
	OwnerID                  string            `json:"owner_id"`
	State                    string            `json:"state"`
	CreationDate             time.Time         `json:"creation_date"`
	AgeDays                  int               `json:"age_days"`
	LastLaunched             *time.Time        `json:"last_launched,omitempty"`
	DeprecationTime          *time.Time        `json:"deprecation_time,omitempty"`
	DeregistrationProtection string            `json:"deregistration_protection,omitempty"`
	Rule                     string            `json:"rule,omitempty"`
	Family                   string            `json:"family,omitempty"`
	Rank                     int               `json:"rank,omitempty"`
	FamilySize               int               `json:"family_size,omitempty"`
	Public                   bool              `json:"public"`
	SharesKnown              bool              `json:"shares_known"`
	SharedWith               []string          `json:"shared_with"`
	Tags                     map[string]string `json:"tags"`
	References               []reference       `json:"references"`
	Snapshots                []snapshotInfo    `json:"snapshots"`
	Decision                 cleanup.Decision  `json:"decision"`
	RecoverableUntil         string            `json:"recoverable_until,omitempty"`
	Problems                 []string          `json:"problems,omitempty"`
	Incomplete               []string          `json:"incomplete,omitempty"`
}

type reference struct {
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	Detail string `json:"detail,omitempty"`
}

type snapshotInfo struct {
	SnapshotID string `json:"snapshot_id"`
	// Owned is false when another account owns it (it is never deleted).
	Owned   bool   `json:"owned"`
	SizeGiB int64  `json:"size_gib,omitempty"`
	State   string `json:"state,omitempty"`
	// UsedBy lists the other AMIs of the account that use it.
	UsedBy []string `json:"used_by"`
}

// explain collects the region's inventory, plans it as plan does, and picks
// out one AMI.
func (a *app) explain(ctx context.Context, run *cleanupRun, region, id string, p policy.Retention) (*explanation, error) {
	p.Mode = policy.ModeAudit
	c := run.sweeper(region).Collector
	inv := c.Collect(ctx, run.account, region, p.InUse)
	inv.Records = run.key
	idx := slices.IndexFunc(inv.Images, func(img cleanup.Image) bool { return img.ID == id })
	if idx < 0 {
		return nil, a.notOwned(ctx, run, region, id, inv.Incomplete)
	}
	at := time.Now().UTC()
	// The launch permissions plan reads, and this AMI's, for the sharing
	// section (a shared AMI that is kept anyway still shows who has it).
	ids := cleanup.SharesToCheck(at, inv, p)
	if img := &inv.Images[idx]; !img.SharesKnown && !img.Public && !slices.Contains(ids, id) {
		ids = append(ids, id)
	}
	c.ReadShares(ctx, inv, ids)
	plan := cleanup.MakePlan(at, inv, p)

	img := inv.Images[idx]
	ex := &explanation{
		Account: run.account, Region: region, ImageID: img.ID, Name: img.Name, OwnerID: img.OwnerID, State: img.State,
		CreationDate: img.CreationDate, DeregistrationProtection: img.DeregistrationProtection,
		Public: img.Public, SharesKnown: img.SharesKnown, SharedWith: img.SharedWith, Tags: img.Tags,
		RecoverableUntil: plan.RecoverableUntil, Problems: inv.Problems, Incomplete: inv.Incomplete,
		References: []reference{}, Snapshots: []snapshotInfo{},
	}
	if ex.SharedWith == nil {
		ex.SharedWith = []string{}
	}
	if ex.Tags == nil {
		ex.Tags = map[string]string{}
	}
	if !img.CreationDate.IsZero() {
		ex.AgeDays = int(at.Sub(img.CreationDate).Hours() / 24)
	}
	if !img.LastLaunched.IsZero() {
		ex.LastLaunched = &img.LastLaunched
	}
	if !img.DeprecationTime.IsZero() {
		ex.DeprecationTime = &img.DeprecationTime
	}
	for _, r := range inv.References[id] {
		ex.References = append(ex.References, reference{Kind: r.Kind, ID: r.ID, Detail: r.Detail})
	}
	ex.Snapshots = snapshotsOf(inv, img)
	states := map[string]string{}
	for _, im := range inv.Images {
		states[im.ID] = im.State
	}
	for _, d := range plan.Decisions {
		if d.ImageID == id {
			ex.Decision = d
		}
	}
	ex.Rule, ex.Family = ex.Decision.Rule, ex.Decision.Family
	ex.Rank, ex.FamilySize = rankIn(plan.Decisions, states, id)
	return ex, nil
}

// rankIn is the AMI's place, newest first, among the available and
// disabled AMIs of its rule and family, and how many there are. The plan
// lists each family newest first (MakePlan's order) and ranks only those
// states, so this is the rank keep_newest counts.
func rankIn(ds []cleanup.Decision, states map[string]string, id string) (rank, size int) {
	k := slices.IndexFunc(ds, func(d cleanup.Decision) bool { return d.ImageID == id })
	if k < 0 || ds[k].Family == "" {
		return 0, 0
	}
	for _, d := range ds {
		if d.Rule != ds[k].Rule || d.Family != ds[k].Family {
			continue
		}
		if s := states[d.ImageID]; s != "available" && s != "disabled" {
			continue
		}
		size++
		if d.ImageID == id {
			rank = size
		}
	}
	return rank, size
}

// snapshotsOf describes the AMI's snapshots and the other AMIs using them.
func snapshotsOf(inv *cleanup.Inventory, img cleanup.Image) []snapshotInfo {
	owned := map[string]cleanup.Snapshot{}
	for _, s := range inv.Snapshots {
		owned[s.ID] = s
	}
	out := []snapshotInfo{}
	for _, sid := range img.SnapshotIDs {
		si := snapshotInfo{SnapshotID: sid, UsedBy: []string{}}
		if s, ok := owned[sid]; ok {
			si.Owned, si.SizeGiB, si.State = true, s.SizeGiB, s.State
		}
		for _, other := range inv.Images {
			if other.ID != img.ID && slices.Contains(other.SnapshotIDs, sid) {
				si.UsedBy = append(si.UsedBy, other.ID)
			}
		}
		out = append(out, si)
	}
	return out
}

// notOwned explains why an AMI is not in the account's inventory.
func (a *app) notOwned(ctx context.Context, run *cleanupRun, region, id string, incomplete []string) error {
	out, err := run.clients.EC2(region).DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	switch {
	case err != nil && awserr.IsNotFound(err), err == nil && len(out.Images) == 0:
		msg := fmt.Sprintf("%s: no such AMI in %s", id, region)
		if len(incomplete) > 0 {
			msg += " (and the inventory is incomplete: " + strings.Join(incomplete, "; ") + ")"
		}
		return &exitError{code: ExitError, err: errors.New(msg)}
	case err != nil:
		return fmt.Errorf("%s is not among the AMIs the account owns in %s, and describing it failed: %w", id, region, err)
	}
	img := out.Images[0]
	if owner := aws.ToString(img.OwnerId); owner != run.account {
		return &exitError{code: ExitError, err: fmt.Errorf("%s (%s) is owned by account %s, not this account (%s): the cleanup decides only the AMIs the account owns",
			id, aws.ToString(img.Name), owner, run.account)}
	}
	return &exitError{code: ExitError, err: fmt.Errorf("%s is owned by this account but the inventory could not read it: %s", id, strings.Join(incomplete, "; "))}
}

func (a *app) renderExplanation(ex *explanation) {
	a.heading(fmt.Sprintf("AMI %s (%s), account %s, region %s", ex.ImageID, ex.Name, ex.Account, ex.Region))
	t := a.newTable(table.Row{"Field", "Value"}, "Value")
	row := func(k, v string) { t.AppendRow(table.Row{k, escapeText(v)}) }
	row("Owner", ex.OwnerID)
	row("State", ex.State)
	if ex.DeprecationTime != nil {
		row("Deprecation", ex.DeprecationTime.UTC().Format(time.RFC3339))
	}
	if ex.DeregistrationProtection != "" {
		row("Deregistration protection", ex.DeregistrationProtection)
	}
	created := "unknown"
	if !ex.CreationDate.IsZero() {
		created = fmt.Sprintf("%s (%d days ago)", ex.CreationDate.UTC().Format(time.RFC3339), ex.AgeDays)
	}
	row("Created", created)
	launched := "never, or not known (EC2 reports it up to 24 h late)"
	if ex.LastLaunched != nil {
		launched = ex.LastLaunched.UTC().Format(time.RFC3339)
	}
	row("Last launched", launched)
	switch {
	case ex.Rule == "":
		row("Rule", "none matches")
	case ex.Family == "":
		row("Rule / family", ex.Rule+" / family unknown")
	case ex.Rank > 0:
		row("Rule / family", fmt.Sprintf("%s / %s, %s newest of %d", ex.Rule, ex.Family, cleanup.Ordinal(ex.Rank), ex.FamilySize))
	default:
		row("Rule / family", fmt.Sprintf("%s / %s (not ranked in state %s)", ex.Rule, ex.Family, ex.State))
	}
	switch {
	case ex.Public:
		row("Sharing", "PUBLIC")
	case !ex.SharesKnown:
		row("Sharing", "launch permissions not read")
	case len(ex.SharedWith) == 0:
		row("Sharing", "not shared")
	default:
		row("Sharing", "shared with "+strings.Join(ex.SharedWith, ", "))
	}
	var tags []string
	for _, k := range slices.Sorted(maps.Keys(ex.Tags)) {
		tags = append(tags, escapeText(k)+"="+escapeText(ex.Tags[k]))
	}
	// One tag a line: the table escapes the rest, the lines are ours.
	t.AppendRow(table.Row{"Tags", orNone(strings.Join(tags, "\n"))})
	a.renderTable(t)

	refs := a.newTable(table.Row{"Used by", "ID", "Detail"})
	for _, r := range ex.References {
		refs.AppendRow(table.Row{r.Kind, escapeText(r.ID), escapeText(r.Detail)})
	}
	if len(ex.References) == 0 {
		refs.AppendRow(table.Row{"(nothing the inventory knows)", "", ""})
	}
	a.renderTable(refs)

	snaps := a.newTable(table.Row{"Snapshot", "GiB", "State", "Also used by"})
	for _, s := range ex.Snapshots {
		size, state := gib(s.SizeGiB), s.State
		if !s.Owned {
			state = "not owned by this account: never deleted"
		}
		snaps.AppendRow(table.Row{s.SnapshotID, size, escapeText(state), orNone(cellLines(s.UsedBy))})
	}
	a.renderTable(snaps)

	d := ex.Decision
	dec := a.newTable(table.Row{"Decision", "Detail"}, "Detail")
	dec.AppendRow(table.Row{"action", escapeText(actionText(d))})
	for _, r := range d.Reasons {
		dec.AppendRow(table.Row{"reason", escapeText(r)})
	}
	if len(d.DeleteSnapshots) > 0 {
		dec.AppendRow(table.Row{"deletes snapshots", escapeText(strings.Join(d.DeleteSnapshots, ", ")) + fmt.Sprintf(" (%d GiB)", d.SizeGiB)})
	}
	for _, k := range d.KeptSnapshots {
		dec.AppendRow(table.Row{"keeps snapshot", escapeText(k)})
	}
	if ex.RecoverableUntil != "" && d.Action == cleanup.ActionDeregister {
		dec.AppendRow(table.Row{"recoverable until", ex.RecoverableUntil + " (Recycle Bin)"})
	}
	a.renderTable(dec)
	for _, p := range ex.Problems {
		fmt.Fprintf(a.io.Out, "Problem: %s\n", escapeText(p))
	}
	for _, p := range ex.Incomplete {
		fmt.Fprintf(a.io.Out, "Inventory incomplete (nothing would be changed): %s\n", escapeText(p))
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
