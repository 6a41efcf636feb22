package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

func init() { commands = append(commands, (*app).tagCmd) }

var (
	reAMIArg = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	// EC2's descriptions of the snapshots it makes for an AMI: they are
	// written at creation and cannot be changed, and only EC2 knows the new
	// AMI's ID when they are, so one naming this AMI is EC2's word.
	reCreatedBy = regexp.MustCompile(`^Created by CreateImage\((i-[0-9a-f]{8,17})\) for (ami-[0-9a-f]{8,17})\b`)
	reCopiedFor = regexp.MustCompile(`^Copied for DestinationAmi (ami-[0-9a-f]{8,17}) from SourceAmi (ami-[0-9a-f]{8,17})\b`)
)

const (
	// creationWindow is how far from an AMI's CreationDate its creating
	// call is looked for in CloudTrail.
	creationWindow = time.Hour
	// snapshotFilterChunk bounds the snapshot IDs in one DescribeSnapshots
	// filter.
	snapshotFilterChunk = 200
)

func (a *app) tagCmd() *cobra.Command {
	var all, dryRun, useTrail bool
	cmd := &cobra.Command{
		Use:   "tag [AMI_ID...]",
		Short: "Tag existing AMIs and their snapshots as the tagger tags new ones (backfill)",
		Long: `tag applies the tagger's logic (the same engine) to AMIs that already exist:
the backfill for AMIs created before ami-housekeeper was deployed. Give AMI IDs,
or --all for every AMI the account owns in the chosen regions.

The tagger writes what it can prove:
  how        created-via: CreateImage or CopyImage from what EC2 shows (the
             AMI's SourceInstanceId / SourceImageId, or the description EC2
             gave its snapshots: "Created by CreateImage(i-…) for ami-…",
             "Copied for DestinationAmi ami-… from SourceAmi ami-…");
             RegisterImage when its snapshots predate it and none was made
             for it;
  when       created-at: the AMI's CreationDate;
  from what  source-instance, source-image and source-region, from the same;
  who        created-by (and created-by-issuer): only from the creating call's
             CloudTrail record (LookupEvents, which keeps 90 days of
             management events), when CloudTrail still has it.
It never overwrites what the tagger's rules forbid: a tag someone else set is
kept unless the policy lists it in tagging.overwrite; provenance tags are
replaced only by the creating call's record, and a value it cannot confirm is
left and reported as unverified.

It shows what it will write and asks (--yes answers; without a terminal --yes
is required, and it refuses before any AWS call). The writing pass re-reads
each AMI and writes only the tags shown (same AMI, key and value): a tag
planned since is not written, and is reported; run again to see it. --dry-run only shows. The policy's tagging.mode does not apply:
the command is the operator's explicit request. With --detailed-exitcode and
--dry-run, exit 3 when there are tags to write.`,
		Example: `  ami-housekeeper tag ami-0123456789abcdef0 --region eu-west-1
  ami-housekeeper tag --all --region eu-west-1 --dry-run
  ami-housekeeper tag --all --region all --policy policy.yaml --yes
  ami-housekeeper tag --all --region eu-west-1 --cloudtrail=false --output json --dry-run`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return &flagError{err: errors.New("give AMI IDs or --all, not both")}
			case !all && len(args) == 0:
				return &flagError{err: errors.New("give one or more AMI IDs, or --all")}
			}
			for _, id := range args {
				if !reAMIArg.MatchString(id) {
					return &flagError{err: fmt.Errorf("%q is not an AMI ID (ami- followed by 8 to 17 hex digits)", id)}
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.tag(cmd.Context(), slices.Compact(slices.Sorted(slices.Values(args))), dryRun, useTrail)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every AMI the account owns in the chosen regions")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the tags that would be written; change nothing")
	cmd.Flags().BoolVar(&useTrail, "cloudtrail", true, "look up the creating call in CloudTrail (LookupEvents, 90 days) for who created each AMI")
	return cmd
}

// tagItem is one AMI's backfill: what was known and what the tagger did.
type tagItem struct {
	Region string `json:"region"`
	// Evidence says where the provenance came from: the creating call's
	// CloudTrail record, or what EC2 shows.
	Evidence []string `json:"evidence,omitempty"`
	tagger.Result
	req tagger.Request
	err error
}

// tagDocument is tag's JSON output.
type tagDocument struct {
	Account string `json:"account"`
	// Applied is set when the results are those of the writing pass.
	Applied  bool      `json:"applied"`
	Results  []tagItem `json:"results"`
	NotFound []string  `json:"not_found,omitempty"`
	Errors   []string  `json:"errors,omitempty"`
}

func (a *app) tag(ctx context.Context, ids []string, dryRun, useTrail bool) error {
	pol, err := a.loadPolicy()
	if err != nil {
		return err
	}
	if !dryRun && !a.yes && !a.io.Terminal {
		// Decided before any AWS call: the question could not be asked.
		return usageError("tag: refusing without a terminal; give --yes to proceed (or --dry-run to only show)")
	}
	cfg, regions, acct, err := a.connect(ctx)
	if err != nil {
		return err
	}
	clients := awsapi.NewClients(cfg)
	doc := tagDocument{Account: acct}
	// The account's own policy: its overrides apply here as in plan.
	cov, err := a.cover(ctx, cfg, acct, clients, regions, &scopeFlags{}, pol)
	if err != nil {
		return err
	}
	pol = cov.targets[0].Policy
	a.sayOverrides(cov.targets[0])

	// Gather the facts and plan, region by region, concurrently.
	type regionOut struct {
		items []tagItem
		err   error
	}
	outs := make([]regionOut, len(regions))
	var wg sync.WaitGroup
	for i, region := range regions {
		wg.Go(func() {
			var tr *trail
			if useTrail {
				rc := cfg.Copy()
				rc.Region = region
				tr = newTrail(cloudtrail.NewFromConfig(rc), acct, region)
			}
			items, err := gatherTagRequests(ctx, clients.EC2(region), tr, acct, region, ids)
			outs[i] = regionOut{items, err}
		})
	}
	wg.Wait()
	found := map[string]bool{}
	for i, o := range outs {
		if o.err != nil {
			doc.Errors = append(doc.Errors, fmt.Sprintf("%s: %v", regions[i], o.err))
		}
		for _, it := range o.items {
			found[it.ImageID] = true
			doc.Results = append(doc.Results, it)
		}
	}
	for _, id := range ids {
		if !found[id] {
			doc.NotFound = append(doc.NotFound, id)
		}
	}

	planning := pol.Tagging
	planning.Mode = policy.ModeAudit // computed, not written
	runTagger(ctx, clients, planning, doc.Results, nil)
	writes := 0
	for _, it := range doc.Results {
		if it.Outcome == tagger.OutcomeAudit {
			writes++
		}
	}
	if dryRun || writes == 0 {
		if err := a.renderTags(doc); err != nil {
			return err
		}
		if err := doc.err(); err != nil {
			return err
		}
		if writes > 0 && a.detailedExitcode {
			return changesPending
		}
		return nil
	}

	if a.output != OutputJSON {
		if err := a.renderTags(doc); err != nil {
			return err
		}
	}
	if err := a.confirm(fmt.Sprintf("Write these tags on %d AMI(s) and their snapshots in %s?", writes, strings.Join(regions, ", "))); err != nil {
		return err
	}
	var todo []tagItem
	shown := map[string]bool{}
	for _, it := range doc.Results {
		if it.Outcome == tagger.OutcomeAudit {
			todo = append(todo, tagItem{Region: it.Region, Evidence: it.Evidence, Result: tagger.Result{ImageID: it.ImageID}, req: it.req})
			for _, w := range it.Writes {
				for _, rid := range w.ResourceIDs {
					for k, v := range w.Tags {
						shown[shownTag(it.Region, it.ImageID, rid, k, v)] = true
					}
				}
			}
		}
	}
	writing := pol.Tagging
	writing.Mode = policy.ModeEnforce
	// The writing pass re-reads and re-plans each AMI; it writes only what
	// the operator was shown and confirmed.
	runTagger(ctx, clients, writing, todo, shown)
	for _, it := range todo {
		for _, s := range it.Skips {
			if s.Reason == tagger.NotConfirmed {
				fmt.Fprintf(a.io.Err, "Not written: %s on %s (AMI %s): %s\n", s.Key, s.ResourceID, it.ImageID, tagger.NotConfirmed)
			}
		}
	}
	done := tagDocument{Account: acct, Applied: true, Results: todo, NotFound: doc.NotFound, Errors: doc.Errors}
	if a.output != OutputJSON {
		fmt.Fprintln(a.io.Out)
		fmt.Fprintln(a.io.Out, "Written:")
	}
	if err := a.renderTags(done); err != nil {
		return err
	}
	return done.err()
}

// err is exit 1 when an AMI could not be read or tagged, or was not found.
func (d tagDocument) err() error {
	errs := slices.Clone(d.Errors)
	for _, it := range d.Results {
		if it.err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", it.ImageID, it.err))
		}
	}
	if len(d.NotFound) > 0 {
		errs = append(errs, "not found (or not visible) in the chosen regions: "+strings.Join(d.NotFound, ", "))
	}
	if len(errs) == 0 {
		return nil
	}
	return &exitError{code: ExitError, err: errors.New(strings.Join(errs, "; "))}
}

// shownTag names one tag value planned on one resource of one AMI.
func shownTag(region, imageID, resourceID, key, value string) string {
	return strings.Join([]string{region, imageID, resourceID, key, value}, "\x00")
}

// runTagger runs the tagger on each item, region by region concurrently.
// When shown is not nil, an enforcing run writes only the tags it holds
// (shownTag); the others are skipped (tagger.NotConfirmed).
func runTagger(ctx context.Context, clients *awsapi.Clients, p policy.Tagging, items []tagItem, shown map[string]bool) {
	byRegion := map[string][]int{}
	for i, it := range items {
		byRegion[it.Region] = append(byRegion[it.Region], i)
	}
	var wg sync.WaitGroup
	for region, idx := range byRegion {
		engine := tagger.New(func(region string) awsapi.TaggerEC2 { return clients.EC2(region) }, p)
		if shown != nil {
			engine.WithMayWrite(func(imageID, resourceID, key, value string) bool {
				return shown[shownTag(region, imageID, resourceID, key, value)]
			})
		}
		wg.Go(func() {
			for _, i := range idx {
				res, err := engine.Tag(ctx, items[i].req)
				res.ImageID = items[i].req.ImageID
				items[i].Result, items[i].err = res, err
				if err != nil {
					items[i].Outcome, items[i].Reason = "error", err.Error()
				}
			}
		})
	}
	wg.Wait()
}

// gatherTagRequests finds the AMIs to tag in one region and what is known
// of their creation: the tagger's Request for each.
func gatherTagRequests(ctx context.Context, api awsapi.EC2API, tr *trail, acct, region string, ids []string) ([]tagItem, error) {
	images, err := imagesToTag(ctx, api, ids)
	if err != nil {
		return nil, err
	}
	if len(images) == 0 {
		return nil, nil
	}
	snaps, err := snapshotsByID(ctx, api, images)
	if err != nil {
		return nil, err
	}
	var records map[string]*amievents.ImageCreated
	var trailNotes map[string]string
	if tr != nil {
		records, trailNotes = creationRecords(ctx, tr, images)
	}
	items := make([]tagItem, 0, len(images))
	for i := range images {
		img := &images[i]
		id := aws.ToString(img.ImageId)
		it := tagItem{Region: region, Result: tagger.Result{ImageID: id}}
		it.req = tagger.Request{Account: acct, Region: region, ImageID: id}
		if ev := records[id]; ev != nil {
			// As the tagger's handler does with the same record.
			it.req.Operation = ev.Operation
			it.req.Principal = ev.Principal.Who()
			it.req.Issuer = ev.Principal.IssuerARN
			it.req.SourceInstanceID = ev.SourceInstanceID
			it.req.SourceImageID = ev.SourceImageID
			it.req.SourceRegion = ev.SourceRegion
			it.req.CallerTags = ev.CallerTags
			it.Evidence = append(it.Evidence, fmt.Sprintf("CloudTrail: %s by %s at %s", ev.Operation, ev.Principal.Who(), ev.CallTime.Format(time.RFC3339)))
		} else {
			if tr != nil {
				it.Evidence = append(it.Evidence, "CloudTrail: "+trailNotes[id])
			}
			op, inst, src, why := inferCreation(img, snaps)
			it.req.Operation, it.req.SourceInstanceID, it.req.SourceImageID = op, inst, src
			it.Evidence = append(it.Evidence, why...)
		}
		items = append(items, it)
	}
	return items, nil
}

// imagesToTag lists the owned AMIs (ids empty: --all), or describes the
// given ones, which may be in another region (then not found here).
func imagesToTag(ctx context.Context, api awsapi.EC2API, ids []string) ([]types.Image, error) {
	if len(ids) == 0 {
		var out []types.Image
		p := ec2.NewDescribeImagesPaginator(api, &ec2.DescribeImagesInput{Owners: []string{"self"}, IncludeDisabled: aws.Bool(true), MaxResults: aws.Int32(1000)})
		seen := map[string]bool{}
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("listing images: %w", err)
			}
			for _, img := range page.Images {
				if id := aws.ToString(img.ImageId); !seen[id] {
					seen[id] = true
					out = append(out, img)
				}
			}
		}
		return out, nil
	}
	var out []types.Image
	for _, id := range ids {
		// One by one: EC2 fails a whole call for one ID it does not know.
		res, err := api.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}, IncludeDisabled: aws.Bool(true)})
		if awserr.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("describing image %s: %w", id, err)
		}
		for _, img := range res.Images {
			if aws.ToString(img.ImageId) == id {
				out = append(out, img)
			}
		}
	}
	return out, nil
}

// snapshotsByID reads the images' EBS snapshots (for their descriptions
// and start times). A filter, unlike SnapshotIds, does not fail the call
// for a snapshot that is gone.
func snapshotsByID(ctx context.Context, api awsapi.EC2API, images []types.Image) (map[string]types.Snapshot, error) {
	var ids []string
	for _, img := range images {
		for _, m := range img.BlockDeviceMappings {
			if m.Ebs != nil && aws.ToString(m.Ebs.SnapshotId) != "" {
				ids = append(ids, aws.ToString(m.Ebs.SnapshotId))
			}
		}
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	out := map[string]types.Snapshot{}
	for chunk := range slices.Chunk(ids, snapshotFilterChunk) {
		p := ec2.NewDescribeSnapshotsPaginator(api, &ec2.DescribeSnapshotsInput{
			Filters: []types.Filter{{Name: aws.String("snapshot-id"), Values: chunk}}})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describing snapshots: %w", err)
			}
			for _, s := range page.Snapshots {
				out[aws.ToString(s.SnapshotId)] = s
			}
		}
	}
	return out, nil
}

// inferCreation reads how an AMI was made from what EC2 shows, for the
// facts EC2's own image fields lack (the tagger reads those itself:
// SourceInstanceId means CreateImage, SourceImageId CopyImage). why lists
// the evidence.
func inferCreation(img *types.Image, snaps map[string]types.Snapshot) (op, instance, sourceImage string, why []string) {
	id := aws.ToString(img.ImageId)
	if v := aws.ToString(img.SourceInstanceId); v != "" {
		return "", "", "", []string{"EC2: SourceInstanceId " + v + " (CreateImage)"}
	}
	if v := aws.ToString(img.SourceImageId); v != "" {
		return "", "", "", []string{"EC2: SourceImageId " + v + " (CopyImage)"}
	}
	var ebs []types.Snapshot
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs == nil || aws.ToString(m.Ebs.SnapshotId) == "" {
			continue
		}
		sid := aws.ToString(m.Ebs.SnapshotId)
		s, ok := snaps[sid]
		if !ok {
			return "", "", "", []string{"EC2: snapshot " + sid + " not readable: how it was made is unknown"}
		}
		d := aws.ToString(s.Description)
		if m := reCreatedBy.FindStringSubmatch(d); m != nil && m[2] == id {
			return amievents.OpCreateImage, m[1], "", []string{fmt.Sprintf("EC2: snapshot %s %q", sid, d)}
		}
		if m := reCopiedFor.FindStringSubmatch(d); m != nil && m[1] == id {
			return amievents.OpCopyImage, "", m[2], []string{fmt.Sprintf("EC2: snapshot %s %q", sid, d)}
		}
		ebs = append(ebs, s)
	}
	created, err := time.Parse(time.RFC3339, aws.ToString(img.CreationDate))
	if len(ebs) == 0 || err != nil {
		return "", "", "", []string{"EC2 shows nothing of how it was made"}
	}
	for _, s := range ebs {
		// Only EC2 names a new AMI in its snapshots' descriptions; any
		// mention of this one is a form this reader does not know.
		if strings.Contains(aws.ToString(s.Description), id) || s.StartTime == nil || !s.StartTime.Before(created) {
			return "", "", "", []string{"EC2 shows nothing certain of how it was made"}
		}
	}
	return amievents.OpRegisterImage, "", "", []string{fmt.Sprintf("EC2: its %d snapshot(s) predate it and none was made for it (RegisterImage)", len(ebs))}
}

// creationRecords finds each AMI's creating call in CloudTrail: one lookup
// per event name over each stretch of time around the AMIs' creation dates
// (stretches that overlap are merged, so a backfill of many AMIs made close
// together costs few calls). notes says, for each AMI without a record, why.
func creationRecords(ctx context.Context, tr *trail, images []types.Image) (map[string]*amievents.ImageCreated, map[string]string) {
	records, notes := map[string]*amievents.ImageCreated{}, map[string]string{}
	oldest := time.Now().Add(-cloudTrailRetention)
	type window struct{ start, end time.Time }
	var windows []window
	for _, img := range images {
		id := aws.ToString(img.ImageId)
		created, err := time.Parse(time.RFC3339, aws.ToString(img.CreationDate))
		switch {
		case err != nil:
			notes[id] = "no creation date to look it up by: creator unknown"
			continue
		case created.Before(oldest):
			notes[id] = "created over 90 days ago: CloudTrail no longer has the call; creator unknown"
			continue
		}
		notes[id] = "no CreateImage, CopyImage or RegisterImage record for it: creator unknown"
		start := created.Add(-creationWindow)
		if start.Before(oldest) {
			start = oldest
		}
		windows = append(windows, window{start, created.Add(creationWindow)})
	}
	sort.Slice(windows, func(i, j int) bool { return windows[i].start.Before(windows[j].start) })
	var merged []window
	for _, w := range windows {
		if n := len(merged); n > 0 && !w.start.After(merged[n-1].end) {
			if w.end.After(merged[n-1].end) {
				merged[n-1].end = w.end
			}
			continue
		}
		merged = append(merged, w)
	}
	for _, w := range merged {
		for _, name := range []string{amievents.OpCreateImage, amievents.OpCopyImage, amievents.OpRegisterImage} {
			events, truncated, err := tr.lookup(ctx, cttypes.LookupAttributeKeyEventName, name, w.start, w.end)
			if err != nil {
				for id, n := range notes {
					if records[id] == nil && strings.HasPrefix(n, "no ") {
						notes[id] = "not read (" + err.Error() + "): creator unknown"
					}
				}
				return records, notes
			}
			for _, ev := range events {
				if c, ok := ev.(*amievents.ImageCreated); ok && records[c.Meta().ImageID] == nil {
					records[c.Meta().ImageID] = c
				}
			}
			if truncated {
				for id, n := range notes {
					if records[id] == nil && strings.HasPrefix(n, "no ") {
						notes[id] = fmt.Sprintf("too many %s calls around its creation to read them all: creator unknown", name)
					}
				}
			}
		}
	}
	return records, notes
}

func (a *app) renderTags(doc tagDocument) error {
	if a.output == OutputJSON {
		return writeJSON(a.io.Out, doc)
	}
	if len(doc.Results) == 0 {
		fmt.Fprintln(a.io.Out, "No AMIs to tag.")
	} else {
		tagsHeader := "Would write"
		if doc.Applied {
			tagsHeader = "Written"
		}
		t := a.newTable(table.Row{"AMI", "Region", "Outcome", "Evidence", tagsHeader, "Notes"}, "Evidence", tagsHeader, "Notes")
		for _, it := range doc.Results {
			outcome := string(it.Outcome)
			if it.Outcome == tagger.OutcomeAudit {
				outcome = "would tag"
			}
			t.AppendRow(table.Row{it.ImageID, it.Region, outcome, cellLines(it.Evidence), writesText(it.Writes), notesText(it)})
		}
		a.renderTable(t)
	}
	for _, id := range doc.NotFound {
		fmt.Fprintf(a.io.Err, "Not found in the chosen regions: %s\n", id)
	}
	for _, e := range doc.Errors {
		fmt.Fprintf(a.io.Err, "Error: %s\n", e)
	}
	return nil
}

func writesText(ws []tagger.Write) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "on %s:\n", escapeText(strings.Join(w.ResourceIDs, ", ")))
		for _, k := range slices.Sorted(maps.Keys(w.Tags)) {
			fmt.Fprintf(&b, "  %s=%s\n", escapeText(k), escapeText(w.Tags[k]))
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func notesText(it tagItem) string {
	var lines []string
	if it.Outcome != tagger.OutcomeAudit && it.Outcome != tagger.OutcomeTagged && it.Reason != "" {
		lines = append(lines, it.Reason)
	}
	for _, r := range it.Replaced {
		lines = append(lines, fmt.Sprintf("%s %s: %q replaced by %q (%s)", r.ResourceID, r.Key, r.Was, r.Now, r.Reason))
	}
	for _, s := range it.Skips {
		lines = append(lines, fmt.Sprintf("%s %s not written: %s", s.ResourceID, s.Key, s.Reason))
	}
	for _, s := range it.Unverified {
		lines = append(lines, fmt.Sprintf("%s %s unverified: %s", s.ResourceID, s.Key, s.Reason))
	}
	lines = append(lines, it.Notes...)
	return cellLines(lines)
}
