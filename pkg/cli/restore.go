package cli

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/rbin"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/restore"
)

func init() { commands = append(commands, (*app).restoreCmd) }

// RestoreBackend is the restore command's AWS side in one region.
type RestoreBackend struct {
	EC2        awsapi.RestoreEC2
	RecycleBin awsapi.RecycleBinAPI
	// Caller names who runs the command (sts GetCallerIdentity's ARN).
	Caller func(ctx context.Context) (string, error)
	// RecordsKey derives the records key keyID names (KMS GenerateMac).
	RecordsKey func(ctx context.Context, keyID string) (*records.Key, error)
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

// maxTagValue is EC2's limit on a tag value, in Unicode characters.
const maxTagValue = 256

// maxReason is the longest --reason, in characters: the protect tag's value
// is "restored by <caller ARN> on <date>: <reason>", and the reason must
// fit whole with room left for the caller (cut, by characters, if longer).
const maxReason = 128

func (a *app) restoreCmd() *cobra.Command {
	var reason, keyFlag string
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
     them as snapshot_ids; see ami-housekeeper report). A delete-with tag
     counts only when its seal opens with the records key (--records-key,
     or HOUSEKEEPER_RECORDS_KEY_ID); without it such tags are shown as hints
     and left alone. A description counts only when EC2 wrote it for this
     AMI (CreateImage "... for ami-X", CopyImage "Copied for DestinationAmi
     ami-X");
  2. it shows what it will do and asks (--yes answers; without a terminal
     it refuses without --yes);
  3. it writes the policy's protect_tag on the AMI first (value: who, from
     sts GetCallerIdentity, when, and --reason), so no sweep takes it again,
     takes the delete-with tags off its proven snapshots, then restores the
     image (RestoreImageFromRecycleBin);
  4. it reads the restored AMI's block device mappings and restores exactly
     the snapshots they name that are in the bin
     (RestoreSnapshotFromRecycleBin), re-enables and un-deprecates it where the
     cleanup's records say the cleanup disabled or deprecated it, and
     removes those records and the delete-after mark.

It says when the AMI cannot come back, and why: the region has no Recycle Bin
rule for AMIs (a deregistered AMI is deleted at once), its retention ended,
no rule covered it, it is in another region or account, or a snapshot it
needs is gone (then nothing is restored). An AMI still registered is not
restored; its marks come off, it is protected, and snapshots its mappings
name are taken out of the bin. An AMI another account owns is refused. Exit 0 when done or
nothing was to do, 1 when it cannot be restored or a step failed, 2 for bad
usage (nothing called).`,
		Example: `  ami-housekeeper restore ami-0123456789abcdef0 --region eu-west-1 --reason "build 41 is still deployed in staging"
  ami-housekeeper restore ami-0123456789abcdef0 --region eu-west-1 --reason "rollback" --snapshot snap-0123456789abcdef0 --yes
  ami-housekeeper restore ami-0123456789abcdef0 --region eu-west-1 --reason "audit" --output json --yes`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.restore(cmd.Context(), args[0], reason, a.recordsKeyID(keyFlag), snapshots)
		},
	}
	recordsKeyFlag(cmd, &keyFlag)
	cmd.Flags().StringVar(&reason, "reason", "", "why the AMI is restored (required; written in the protect tag)")
	cmd.Flags().StringArrayVar(&snapshots, "snapshot", nil, "a snapshot ID of the AMI the Recycle Bin may not name (repeatable; from the cleanup decision's snapshot_ids)")
	return cmd
}

func (a *app) restore(ctx context.Context, imageID, reason, keyID string, snapshots []string) error {
	// Every usage check before any AWS call.
	if !restoreImageIDShape.MatchString(imageID) {
		return usageError("%q is not an AMI ID (ami- and 8 or 17 hex digits)", imageID)
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return usageError("--reason is required: say why the AMI comes back (it is written in the protect tag)")
	}
	if n := utf8.RuneCountInString(reason); n > maxReason {
		return usageError("--reason is %d characters; at most %d fit in the protect tag with who and when", n, maxReason)
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
	// Off a terminal nobody can answer: refuse before AWS is called.
	if !a.yes && !a.io.Terminal {
		return usageError("restore %s: refusing without a terminal; give --yes to proceed", imageID)
	}
	if a.policyFile == "" {
		fmt.Fprintf(a.io.Err, "WARNING: no --policy: the protect tag written is the default %s; if the deployment's policy sets another protect_tag, the next sweep will not see it. Give --policy with the deployment's policy.\n", pol.Retention.ProtectTag)
	}
	region, backend, err := a.restoreBackend(ctx)
	if err != nil {
		return err
	}
	who, err := backend.Caller(ctx)
	if err != nil {
		return err
	}
	account := ""
	if parsed, perr := arn.Parse(who); perr == nil {
		account = parsed.AccountID
	}
	r := &restore.Restorer{EC2: backend.EC2, Rules: backend.RecycleBin, Region: region, Account: account}
	if keyID != "" {
		if backend.RecordsKey == nil {
			return fmt.Errorf("records key %s: this backend cannot derive it", keyID)
		}
		if r.Key, err = backend.RecordsKey(ctx, keyID); err != nil {
			return fmt.Errorf("records key %s: %w", keyID, err)
		}
	} else {
		fmt.Fprintf(a.io.Err, "WARNING: no records key (--records-key or %s): delete-with tags cannot be verified; they are shown as hints and left alone.\n"+
			"         Only the restored AMI's block device mappings (and --snapshot) decide its snapshots.\n", records.EnvKeyID)
	}
	facts, err := r.Inspect(ctx, imageID, snapshots)
	if err != nil {
		return err
	}
	value := protectValue(who, time.Now(), reason)
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

// protectValue is the protect tag's value: who, when and why, at most
// maxTagValue characters. The reason (at most maxReason characters) is kept
// whole; a caller ARN too long for the rest is cut by characters, so the
// value stays valid UTF-8.
func protectValue(who string, now time.Time, reason string) string {
	head, tail := "restored by ", " on "+now.UTC().Format("2006-01-02")+": "+reason
	room := maxTagValue - utf8.RuneCountInString(head) - utf8.RuneCountInString(tail)
	if r := []rune(who); len(r) > room {
		who = string(r[:room-1]) + "…"
	}
	return head + who + tail
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
		RecordsKey: func(ctx context.Context, keyID string) (*records.Key, error) {
			// A key ARN names its region; an ID or alias lives in the
			// command's region, as the functions' key does.
			kmsRegion := cfg.Region
			if parsed, perr := arn.Parse(keyID); perr == nil && parsed.Region != "" {
				kmsRegion = parsed.Region
			}
			return records.Derive(ctx, awsapi.NewClients(cfg).KMS(kmsRegion), keyID)
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
	if p.RestoreImage {
		s = append(s, "restore "+p.ImageID+" from the Recycle Bin")
	}
	for _, id := range p.RestoreSnapshots {
		s = append(s, "restore snapshot "+id+" from the Recycle Bin (if its block device mappings name it)")
	}
	s = append(s, "restore any snapshot its block device mappings name that is in the Recycle Bin; no other")
	s = append(s, "enable / un-deprecate it where the cleanup's records say the cleanup did it")
	if len(p.UnmarkKeys) > 0 {
		s = append(s, "remove "+strings.Join(p.UnmarkKeys, ", "))
	}
	return s
}
