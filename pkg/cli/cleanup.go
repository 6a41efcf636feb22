package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/jedib0t/go-pretty/v6/progress"
	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// The cleanup commands (plan, apply, explain) share this: the records key,
// the sweep engine wired as functions/cleanup wires it, and the sweep of
// several regions at once.

// regionsAtOnce bounds the regions swept concurrently. Each region has its
// own clients and EC2 buckets, so regions do not slow each other; the bound
// keeps a laptop's connections and memory in reason with --region all.
const regionsAtOnce = 4

// recordsKeyFlag adds --records-key to cmd.
func recordsKeyFlag(cmd *cobra.Command, keyID *string) {
	cmd.Flags().StringVar(keyID, "records-key", "",
		"KMS HMAC key (ID, ARN or alias) the cleanup seals its record tags with (default: "+records.EnvKeyID+")")
}

// recordsKeyID is --records-key, else the environment's.
func (a *app) recordsKeyID(flag string) string {
	if flag != "" {
		return flag
	}
	return a.io.Getenv(records.EnvKeyID)
}

// cleanupRun is what a cleanup command has loaded before its first AWS call
// that matters: configuration, clients, account and regions.
type cleanupRun struct {
	cfg     aws.Config
	clients *awsapi.Clients
	account string
	regions []string
	key     *records.Key
}

// startReading is what the read-only cleanup commands (plan, explain) start
// with: the policy, then the run, the records key from keyFlag if any (its
// absence is said loudly: marks cannot be verified without it).
func (a *app) startReading(ctx context.Context, keyFlag string) (*policy.Policy, *cleanupRun, error) {
	pol, err := a.loadPolicy()
	if err != nil {
		return nil, nil, err
	}
	keyID := a.recordsKeyID(keyFlag)
	run, err := a.startCleanup(ctx, keyID)
	if err != nil {
		return nil, nil, err
	}
	if keyID == "" {
		a.warnNoRecordsKey()
	}
	return pol, run, nil
}

// startCleanup loads the SDK configuration, the regions and the account,
// and derives the records key when keyID is set. Flags and policy must be
// checked before: from here on, AWS is called.
func (a *app) startCleanup(ctx context.Context, keyID string) (*cleanupRun, error) {
	cfg, regions, acct, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	r := &cleanupRun{cfg: cfg, clients: awsapi.NewClients(cfg), regions: regions, account: acct}
	if keyID != "" {
		// A key ARN names its region; an ID or alias lives in the
		// configuration's region, as the functions' key does.
		region := cfg.Region
		if parsed, perr := arn.Parse(keyID); perr == nil && parsed.Region != "" {
			region = parsed.Region
		}
		if r.key, err = records.Derive(ctx, r.clients.KMS(region), keyID); err != nil {
			return nil, fmt.Errorf("records key %s: %w", keyID, err)
		}
	}
	return r, nil
}

// warnNoRecordsKey says, loudly, what a plan without the records key cannot
// know.
func (a *app) warnNoRecordsKey() {
	fmt.Fprintf(a.io.Err, "WARNING: no records key (--records-key or %s): the cleanup's marks cannot be verified.\n"+
		"         Every mark is treated as absent: AMIs marked by an earlier run show as marked anew, not as due.\n", records.EnvKeyID)
}

// sweeper is the cleanup engine for one region of the caller's account.
func (r *cleanupRun) sweeper(region string) *sweep.Sweeper { return r.sweeperWith(r.clients, region) }

// sweeperWith is the cleanup engine for one region of the account c works
// in, wired as the cleanup function wires it (functions/cleanup/main.go).
func (r *cleanupRun) sweeperWith(c *awsapi.Clients, region string) *sweep.Sweeper {
	return &sweep.Sweeper{
		Collector: &collect.Collector{
			EC2:         c.EC2(region),
			AutoScaling: c.AutoScaling(region),
			SSM:         c.SSM(region),
			RecycleBin:  c.RecycleBin(region),
			References:  c.EC2(region),
			Usage:       c.EC2(region),
		},
		// The executor's per-action log lines are for the functions' logs;
		// the CLI prints the results instead.
		Executor: &execute.Executor{EC2: c.EC2(region), Clock: clock.Real(), Log: slog.New(slog.DiscardHandler)},
		Records:  r.key,
	}
}

// eachRegion runs fn for every region, regionsAtOnce at a time, and returns
// the reports in region order. On a terminal, stderr shows progress.
func (a *app) eachRegion(ctx context.Context, regions []string, verb string, fn func(ctx context.Context, region string) *sweep.Report) []*sweep.Report {
	labels := make([]string, len(regions))
	for i, r := range regions {
		labels[i] = verb + " " + r
	}
	return a.runUnits(ctx, labels, regionsAtOnce, func(ctx context.Context, i int) *sweep.Report { return fn(ctx, regions[i]) })
}

// acrossAccounts runs fn for every reached account × region of cov,
// accountsAtOnce at a time, and returns each account's reports in region
// order.
func (a *app) acrossAccounts(ctx context.Context, targets []*acctTarget, regions []string, verb string, fn func(ctx context.Context, t *acctTarget, region string) *sweep.Report) map[string][]*sweep.Report {
	type unit struct {
		t      *acctTarget
		region string
	}
	var units []unit
	var labels []string
	for _, t := range targets {
		if t.NotCovered != "" {
			continue
		}
		for _, r := range regions {
			units = append(units, unit{t, r})
			labels = append(labels, verb+" "+t.Account+" "+r)
		}
	}
	reps := a.runUnits(ctx, labels, accountsAtOnce, func(ctx context.Context, i int) *sweep.Report { return fn(ctx, units[i].t, units[i].region) })
	out := map[string][]*sweep.Report{}
	for i, u := range units {
		out[u.t.Account] = append(out[u.t.Account], reps[i])
	}
	return out
}

// runUnits runs fn for every label's index, at most at at once, and
// returns the reports in label order. On a terminal, stderr shows progress.
func (a *app) runUnits(ctx context.Context, labels []string, at int, fn func(ctx context.Context, i int) *sweep.Report) []*sweep.Report {
	out := make([]*sweep.Report, len(labels))
	var pw progress.Writer
	if a.stderrTerminal() {
		pw = progress.NewWriter()
		pw.SetOutputWriter(a.io.Err)
		pw.SetAutoStop(false)
		pw.SetMessageLength(32)
		pw.SetTrackerLength(20)
		pw.Style().Visibility.Time = true
		pw.Style().Visibility.Value = false // a sweep has no count to show
		go pw.Render()
	}
	sem := make(chan struct{}, at)
	var wg sync.WaitGroup
	for i, label := range labels {
		var tr *progress.Tracker
		if pw != nil {
			// Total 0: indeterminate; a sweep does not know its length ahead.
			tr = &progress.Tracker{Message: label}
			pw.AppendTracker(tr)
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rep := fn(ctx, i)
			out[i] = rep
			if tr != nil {
				if regionFailure(rep) != "" {
					tr.MarkAsErrored()
				} else {
					tr.MarkAsDone()
				}
			}
		})
	}
	wg.Wait()
	if pw != nil {
		pw.Stop()
		for pw.IsRenderInProgress() {
			// Stop returns before the last frame is drawn; wait so the
			// output that follows is not interleaved with it.
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out
}

// regionFailure says why a region's sweep failed: its inventory could not
// be read whole (nothing is changed then), the executor refused, or
// actions failed. "" means it did not fail.
func regionFailure(rep *sweep.Report) string {
	var why []string
	if rep.Plan.Blocked != "" {
		why = append(why, rep.Plan.Blocked)
	}
	if res := rep.Results; res != nil {
		if res.Refused != "" {
			why = append(why, res.Refused)
		}
		if res.Failed > 0 {
			why = append(why, fmt.Sprintf("%d actions failed", res.Failed))
		}
	}
	return strings.Join(why, "; ")
}

// reportFailuresAcross is reportFailures over several accounts: one line
// per failed account and region.
func (a *app) reportFailuresAcross(targets []*acctTarget, reps map[string][]*sweep.Report) error {
	var failed []string
	total := 0
	for _, t := range targets {
		for _, rep := range reps[t.Account] {
			total++
			if why := regionFailure(rep); why != "" {
				fmt.Fprintf(a.io.Err, "account %s region %s failed: %s\n", t.Account, rep.Region, escapeText(why))
				failed = append(failed, t.Account+" "+rep.Region)
			}
		}
	}
	if len(failed) > 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("%d of %d account regions failed: %s", len(failed), total, strings.Join(failed, ", "))}
	}
	return nil
}

// reportFailures prints one line per failed region on stderr and returns
// the error that makes the command exit 1, or nil.
func (a *app) reportFailures(reps []*sweep.Report) error {
	var failed []string
	for _, rep := range reps {
		if why := regionFailure(rep); why != "" {
			fmt.Fprintf(a.io.Err, "region %s failed: %s\n", rep.Region, why)
			failed = append(failed, rep.Region)
		}
	}
	if len(failed) > 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("%d of %d regions failed: %s", len(failed), len(reps), strings.Join(failed, ", "))}
	}
	return nil
}

// hasChanges reports whether a plan has work to do: a mark, an unmark, a
// deregistration or an orphan snapshot deletion.
func hasChanges(p cleanup.Plan) bool {
	for _, d := range p.Decisions {
		switch d.Action {
		case cleanup.ActionMark, cleanup.ActionUnmark, cleanup.ActionDeregister:
			return true
		}
	}
	for _, o := range p.Orphans {
		if o.Action == cleanup.ActionDeregister {
			return true
		}
	}
	return false
}
