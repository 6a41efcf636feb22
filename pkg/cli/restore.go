package cli

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/rbin"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/restore"
)

func init() { commands = append(commands, (*app).restoreCmd) }

// RestoreBackend is the restore command's AWS side in one region.
type RestoreBackend struct {
	EC2        awsapi.RestoreEC2
	RecycleBin awsapi.RecycleBinAPI
	// Caller names who runs the command (sts GetCallerIdentity's ARN).
	Caller func(ctx context.Context) (string, error)
}

// RestoreBackendForTests replaces, when set, the restore command's AWS
// clients. It exists for tests only: moto has no Recycle Bin, so the
// command's tests call Main in-process with pkg/fake's RecycleBin here. The
// binary never sets it.
var RestoreBackendForTests func(region string) RestoreBackend

var (
	restoreImageIDShape    = regexp.MustCompile(`^ami-[0-9a-f]{8}([0-9a-f]{9})?$`)
	restoreSnapshotIDShape = regexp.MustCompile(`^snap-[0-9a-f]{8}([0-9a-f]{9})?$`)
)

// maxTagValue is EC2's limit on a tag value.
const maxTagValue = 256

func (a *app) restoreCmd() *cobra.Command {
	var reason string
	var snapshots []string
	cmd := &cobra.Command{
		Use:   "restore AMI_ID",
		Short: "Bring a removed AMI back from the Recycle Bin, with its snapshots, and keep it from the next sweep",
		Long: `restore brings back an AMI the cleanup (or anyone) deregistered, while the
region's Recycle Bin still holds it:

  1. it finds the AMI in the Recycle Bin (ListImagesInRecycleBin) and its
     snapshots: those the cleanup tagged ami-housekeeper:delete-with=<AMI>
     before removing them, those whose description names the AMI, and any
     given with --snapshot (the cleanup's "cleanup decision" log line lists
     them as snapshot_ids; see ami-housekeeper report);
  2. it shows what it will do and asks (--yes answers; without a terminal
     it refuses without --yes);
  3. it writes the policy's protect_tag on the AMI first (value: who, from
     sts GetCallerIdentity, when, and --reason), so no sweep takes it again,
     takes the delete-with tags off its snapshots, restores the snapshots
     (RestoreSnapshotFromRecycleBin), then the image
     (RestoreImageFromRecycleBin);
  4. it reads the restored AMI's block device mappings and restores any
     snapshot still in the bin, re-enables and un-deprecates it where the
     cleanup's records say the cleanup disabled or deprecated it, and
     removes those records and the delete-after mark.

It says when the AMI cannot come back, and why: the region has no Recycle Bin
rule for AMIs (a deregistered AMI is deleted at once), its retention ended,
no rule covered it, it is in another region or account, or a snapshot it
needs is gone (then nothing is restored). An AMI still registered is not
restored; its marks come off and it is protected. Exit 0 when done or
nothing was to do, 1 when it cannot be restored or a step failed, 2 for bad
usage (nothing called).`,
		Example: `  ami-housekeeper restore ami-0123456789abcdef0 --region eu-west-1 --reason "build 41 is still deployed in staging"
  ami-housekeeper restore ami-0123456789abcdef0 --region eu-west-1 --reason "rollback" --snapshot snap-0123456789abcdef0 --yes
  ami-housekeeper restore ami-0123456789abcdef0 --region eu-west-1 --reason "audit" --output json --yes`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.restore(cmd.Context(), args[0], reason, snapshots)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the AMI is restored (required; written in the protect tag)")
	cmd.Flags().StringArrayVar(&snapshots, "snapshot", nil, "a snapshot ID of the AMI the Recycle Bin may not name (repeatable; from the cleanup decision's snapshot_ids)")
	return cmd
}

func (a *app) restore(ctx context.Context, imageID, reason string, snapshots []string) error {
	// Every usage check before any AWS call.
	if !restoreImageIDShape.MatchString(imageID) {
		return usageError("%q is not an AMI ID (ami- and 8 or 17 hex digits)", imageID)
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return usageError("--reason is required: say why the AMI comes back (it is written in the protect tag)")
	}
	for _, s := range snapshots {
		if !restoreSnapshotIDShape.MatchString(s) {
			return usageError("--snapshot %q is not a snapshot ID", s)
		}
	}
	if len(a.regions) > 1 || slices.Contains(a.regions, "all") {
		return usageError("restore works in one region: give one --region (the AMI's)")
	}
	pol, err := a.loadPolicy()
	if err != nil {
		return err
	}
	region, backend, err := a.restoreBackend(ctx)
	if err != nil {
		return err
	}
	who, err := backend.Caller(ctx)
	if err != nil {
		return err
	}
	r := &restore.Restorer{EC2: backend.EC2, Rules: backend.RecycleBin, Region: region}
	facts, err := r.Inspect(ctx, imageID, snapshots)
	if err != nil {
		return err
	}
	value := fmt.Sprintf("restored by %s on %s: %s", who, time.Now().UTC().Format("2006-01-02"), reason)
	if len(value) > maxTagValue {
		value = value[:maxTagValue]
	}
	plan := restore.Decide(facts, pol.Retention.ProtectTag, value, time.Now())
	doc := restoreDocument{Plan: plan}
	if !plan.Changes() {
		if err := a.renderRestore(doc); err != nil {
			return err
		}
		if plan.Outcome == restore.OutcomeUnrecoverable {
			return &exitError{code: ExitError, err: fmt.Errorf("%s cannot be restored", imageID)}
		}
		return nil
	}
	if a.output != OutputJSON {
		if err := a.renderRestore(doc); err != nil {
			return err
		}
	}
	if err := a.confirm(fmt.Sprintf("Restore %s in %s", imageID, region)); err != nil {
		return err
	}
	res, err := r.Apply(ctx, plan)
	doc.Result = &res
	if rerr := a.renderRestore(doc); rerr != nil {
		return rerr
	}
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	if res.Failed() {
		return &exitError{code: ExitError, err: fmt.Errorf("%s is registered again, but cannot launch: snapshot %s is gone", imageID, strings.Join(res.Missing, ", "))}
	}
	return nil
}

// restoreBackend returns the region and the clients the command uses.
func (a *app) restoreBackend(ctx context.Context) (string, RestoreBackend, error) {
	region := ""
	if len(a.regions) == 1 {
		region = a.regions[0]
	}
	if RestoreBackendForTests != nil {
		if region == "" {
			return "", RestoreBackend{}, usageError("no region: give --region")
		}
		return region, RestoreBackendForTests(region), nil
	}
	cfg, err := a.awsConfig(ctx)
	if err != nil {
		return "", RestoreBackend{}, err
	}
	if region != "" {
		cfg.Region = region
	}
	if cfg.Region == "" {
		return "", RestoreBackend{}, usageError("no region: give --region, or set AWS_REGION")
	}
	return cfg.Region, RestoreBackend{
		EC2:        ec2.NewFromConfig(cfg),
		RecycleBin: rbin.NewFromConfig(cfg),
		Caller: func(ctx context.Context) (string, error) {
			out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if err != nil {
				return "", fmt.Errorf("who am I (sts GetCallerIdentity): %w", err)
			}
			return aws.ToString(out.Arn), nil
		},
	}, nil
}

// restoreDocument is the restore's JSON output: the plan, and what was
// done when it was carried out.
type restoreDocument struct {
	Plan   restore.Plan    `json:"plan"`
	Result *restore.Result `json:"result,omitempty"`
}

func (a *app) renderRestore(doc restoreDocument) error {
	if a.output == OutputJSON {
		return writeJSON(a.io.Out, doc)
	}
	out := a.io.Out
	p := doc.Plan
	if doc.Result == nil {
		fmt.Fprintf(out, "%s in %s: %s\n", p.ImageID, p.Region, p.Outcome)
		for _, r := range p.Reasons {
			fmt.Fprintf(out, "  - %s\n", r)
		}
		if len(p.Snapshots) > 0 {
			t := a.newTable(table.Row{"Snapshot", "Where", "Known by", "Recoverable until"})
			for _, s := range p.Snapshots {
				until := ""
				if s.Where == restore.InBin {
					until = s.Leaves.UTC().Format(time.RFC3339)
				}
				t.AppendRow(table.Row{s.ID, string(s.Where), strings.Join(s.Because, ", "), until})
			}
			a.renderTable(t)
		}
		if p.Changes() {
			fmt.Fprintln(out, "Will:")
			for _, s := range planSteps(p) {
				fmt.Fprintf(out, "  %s\n", s)
			}
		}
		return nil
	}
	res := doc.Result
	t := a.newTable(table.Row{"Step", "Target", "Result"})
	for _, s := range res.Steps {
		result := "done"
		if s.Error != "" {
			result = "failed: " + s.Error
		}
		t.AppendRow(table.Row{s.Action, s.Target, result})
	}
	a.renderTable(t)
	switch {
	case len(res.Missing) > 0:
		fmt.Fprintf(out, "%s is registered again but cannot launch: snapshot %s is neither in the account nor in the Recycle Bin.\n", p.ImageID, strings.Join(res.Missing, ", "))
	case res.Failed():
		fmt.Fprintf(out, "%s: a step failed; what is marked done was done, run restore again to finish.\n", p.ImageID)
	default:
		fmt.Fprintf(out, "%s is back (state %s) and carries %s: the next sweep keeps it.\n", p.ImageID, res.State, p.ProtectTag)
	}
	return nil
}

// planSteps says in words what Apply will do, in its order.
func planSteps(p restore.Plan) []string {
	var s []string
	if p.ProtectValue != "" {
		s = append(s, fmt.Sprintf("tag %s %s=%q", p.ImageID, p.ProtectTag, p.ProtectValue))
	}
	if len(p.UntagSnapshots) > 0 {
		s = append(s, "remove ami-housekeeper:delete-with from "+strings.Join(p.UntagSnapshots, ", "))
	}
	for _, id := range p.RestoreSnapshots {
		s = append(s, "restore snapshot "+id+" from the Recycle Bin")
	}
	if p.RestoreImage {
		s = append(s, "restore "+p.ImageID+" from the Recycle Bin, then restore any other snapshot its block device mappings name")
	}
	s = append(s, "enable / un-deprecate it where the cleanup's records say the cleanup did it")
	if len(p.UnmarkKeys) > 0 {
		s = append(s, "remove "+strings.Join(p.UnmarkKeys, ", "))
	}
	return s
}
