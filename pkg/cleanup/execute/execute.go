// Package execute applies a cleanup plan: it marks and unmarks candidate
// AMIs (with their optional deprecate/disable stages), deregisters AMIs and
// deletes their snapshots, and deletes orphaned snapshots.
//
// Safety properties, in order of importance:
//   - A snapshot is deleted only after its AMI is gone: DeleteSnapshot is
//     called only once DeregisterImage succeeded or said the AMI is gone.
//   - Right before each batch of deregistrations, a Rechecker (EC2's own
//     DescribeImageReferences and the AMIs' tags as they are now) may keep
//     any of them; if it cannot answer, the batch is kept.
//   - Write-ahead: every stage is recorded before it is applied. The
//     snapshots are tagged cleanup.TagDeleteWith=<ami> before the AMI is
//     deregistered, so an interrupted run is finished by the next one; the
//     records of the lifecycle stages (TagDeprecatedByUs, TagDisabledByUs)
//     are written with the mark, before the stages, so a crash can never
//     leave an AMI deprecated or disabled without the record an unmark
//     needs; an unmark removes a record only after undoing its stage.
//   - No call chain outlives the caller's deadline by more than one call:
//     nothing is started once ctx ends, and a call in flight is bounded by
//     CallTimeout (below the sweep's report reserve).
//   - Every mutating call is paced by a client-side token bucket per EC2
//     throttling bucket, so a backlog drains at EC2's refill rate without
//     RequestLimitExceeded; throttling that still happens is retried.
//   - One decision failing does not stop the others; each gets a Result.
//   - A Halt check (the kill switch) stops the run before its next batch of
//     deregistrations, mark, unmark or orphan deletion.
//
// Deregistrations run as a pipeline, so each EC2 bucket works at its own
// rate: one lane rechecks and tags the snapshots a batch ahead, one
// deregisters back to back, and a few workers delete the snapshots behind
// their AMIs. Marks and unmarks run in a lane of their own.
package execute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/time/rate"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// Default client-side rates, per second: EC2's refill rates for the
// DeregisterImage and DeleteSnapshot buckets (100/5), CreateTags and
// DeleteTags (100/10 each, shared here), and the default mutating bucket
// (50/5) that the deprecation and enable/disable calls fall in. The default
// burst is half of EC2's bucket: a backlog starts at full speed, and other
// tools in the account keep the other half.
const (
	DefaultDeregisterPerSec     = 5
	DefaultDeleteSnapshotPerSec = 5
	DefaultTagsPerSec           = 10
	DefaultLifecyclePerSec      = 5
	DefaultBurst                = 50
	DefaultLifecycleBurst       = 25
	DefaultInUseRetries         = 6
	DefaultInUseBackoff         = 2 * time.Second
	// RecheckBatch is how many AMIs one recheck covers: the most one
	// DescribeImageReferences call accepts.
	RecheckBatch = 10
	// DefaultSnapshotWorkers delete snapshots behind the deregistrations;
	// several, so one waiting out InvalidSnapshot.InUse does not hold up the
	// others (they share one limiter: the rate stays EC2's).
	DefaultSnapshotWorkers = 4
)

const (
	// throttleRetries is how often a throttled call (or one that failed on
	// the server side or in transport) is retried, after throttleBackoff,
	// doubling. The SDK's own retryer retries too; this covers what is left.
	throttleRetries = 3
	throttleBackoff = time.Second
)

// CallTimeout bounds one API call, the SDK's own retries included. Calls
// run on a context that the caller's cancellation does not reach, so a
// started DeregisterImage is not abandoned halfway with its outcome
// unknown; the caller's deadline reserve must exceed it (sweep checks).
const CallTimeout = 10 * time.Second

// Via values of SnapshotResult.
const (
	ViaDeleteAssociatedSnapshots = "DeleteAssociatedSnapshots"
	ViaDeleteSnapshot            = "DeleteSnapshot"
	ViaAlreadyGone               = "already gone"
)

// NotStarted is the Error of a decision the run had no time to start.
const NotStarted = "not started: out of time"

// Halted is the Error of a decision not started because Executor.Halt
// stopped the run (Results.Halted says why).
const Halted = "not started: the run was halted"

// Limits are client-side rates per EC2 action bucket (per second); zero (or
// negative) values take the defaults: Deregister 5, DeleteSnapshot 5, Tags 10
// (CreateTags+DeleteTags), Lifecycle 5 (deprecation/enable/disable). Burst,
// when set, is the burst of every limiter; otherwise DefaultBurst (and
// DefaultLifecycleBurst for the 50-token lifecycle bucket).
type Limits struct {
	DeregisterPerSec, DeleteSnapshotPerSec, TagsPerSec, LifecyclePerSec float64
	Burst                                                               int
}

// Rechecker is the second look right before a batch of deregistrations
// (at most RecheckBatch decisions): it returns, per AMI to keep, why (a
// reference EC2 knows and the inventory missed, a share read only now, a
// protect tag or time lock added since the plan, a changed mark). An error
// keeps the whole batch: no deregistration without the second look.
type Rechecker interface {
	Recheck(ctx context.Context, batch []cleanup.Decision) (map[string]Kept, error)
}

// Kept is why the recheck keeps an AMI the plan would deregister.
type Kept struct {
	Reasons []string
	// Unmark: the AMI is no longer a candidate for a reason the next plan
	// cannot see (a share read only now, a user only EC2 knows), so the
	// executor unmarks it now, undoing the stages it recorded.
	Unmark bool
}

// Executor applies plans. The zero values of Clock, Limits, InUseRetries
// and InUseBackoff take the defaults.
type Executor struct {
	EC2    awsapi.CleanupEC2
	Clock  clock.Clock
	Limits Limits
	// Recheck, when set, is asked before every batch of deregistrations.
	Recheck Rechecker
	// Halt, when set, is asked before every batch of deregistrations and
	// every mark, unmark and orphan deletion; once it says halted (the kill
	// switch was engaged, or could not be read, since the run started),
	// nothing more is started. Removals already handed on (a batch past its
	// recheck, the snapshots of an AMI deregistered) complete.
	Halt func(ctx context.Context) (reason string, halted bool)
	// Records seals the record tags the executor writes and opens the ones
	// an unmark reads; Apply refuses to run without it.
	Records *records.Key
	// Log, if set, gets one line per action (keys image_id, snapshot_id,
	// action, outcome, error).
	Log *slog.Logger
	// InUseRetries is how often a DeleteSnapshot that races the AMI's
	// deregistration (InvalidSnapshot.InUse) is retried; default 6, negative
	// means never.
	InUseRetries int
	// InUseBackoff is the first wait between those retries, doubling;
	// default 2s.
	InUseBackoff time.Duration
	// SnapshotWorkers is how many snapshot deletions run at once; zero
	// means DefaultSnapshotWorkers.
	SnapshotWorkers int
	// ImageTags returns an image's tags as the inventory read them. Unmark
	// needs it to know which stages the cleanup applied (TagDeprecatedByUs,
	// TagDisabledByUs) and must undo; without it, or without tags for the
	// image, an unmark fails rather than guess.
	ImageTags func(imageID string) map[string]string
}

// Results are the outcome of Apply: one ImageResult per mark, unmark and
// deregister decision, one SnapshotResult per snapshot of a deregister
// decision (plus any EC2 deleted unasked) and per orphan deletion, in plan
// order.
type Results struct {
	// Refused is set, and nothing else, when Apply refused the plan (see Err).
	Refused   string           `json:"refused,omitempty"`
	Images    []ImageResult    `json:"images,omitempty"`
	Snapshots []SnapshotResult `json:"snapshots,omitempty"`
	// Deregistered counts AMIs this run deregistered (not those found gone).
	Deregistered int `json:"deregistered"`
	// SnapshotsDeleted counts snapshots this run deleted (not those found gone).
	SnapshotsDeleted int `json:"snapshots_deleted"`
	// GiBFreed is the plan's size of every deregister decision whose AMI and
	// planned snapshots are all gone now, and of every orphan that is gone.
	GiBFreed int64 `json:"gib_freed"`
	// KeptOnRecheck counts deregistrations the recheck stopped (the
	// inventory had missed something, or something changed since the plan).
	KeptOnRecheck int `json:"kept_on_recheck"`
	// Failed counts decisions (image and orphan) that were started and did
	// not complete.
	Failed int `json:"failed"`
	// NotStarted counts decisions the run had no time for (Error NotStarted)
	// or did not start because it was halted (Error Halted); the next run
	// resumes them.
	NotStarted int `json:"not_started"`
	// Halted, when set, is why Executor.Halt stopped the run.
	Halted string `json:"halted,omitempty"`
	// Throttled counts rate-limit errors seen (RequestLimitExceeded and
	// kin); it should stay 0 with the limiter.
	Throttled int `json:"throttled"`
}

// Err returns the refusal as an error (nil when the plan was applied; the
// outcome of each decision, failed or not, is in the results).
func (r Results) Err() error {
	if r.Refused == "" {
		return nil
	}
	return errors.New(r.Refused)
}

// ImageResult is the outcome of one image decision.
type ImageResult struct {
	ImageID string         `json:"image_id"`
	Action  cleanup.Action `json:"action"`
	Done    bool           `json:"done"`
	Error   string         `json:"error,omitempty"`
	// KeptBecause is set when the recheck kept a planned deregistration.
	KeptBecause []string `json:"kept_because,omitempty"`
	Notes       []string `json:"notes,omitempty"`
}

// SnapshotResult is the outcome for one snapshot.
type SnapshotResult struct {
	SnapshotID string `json:"snapshot_id"`
	ImageID    string `json:"image_id,omitempty"`
	Deleted    bool   `json:"deleted"`
	Error      string `json:"error,omitempty"`
	// Via is ViaDeleteAssociatedSnapshots, ViaDeleteSnapshot or ViaAlreadyGone.
	Via string `json:"via,omitempty"`
}

// Apply carries out the plan's mark, unmark, deregister and orphan-delete
// decisions. It refuses (Results.Refused set, Results.Err non-nil, nothing
// done) unless plan.Mode is enforce and plan.Blocked is empty. Keep, skip,
// wait and pending decisions are not touched (beyond clearing stale
// delete-with tags). It does not stop at the first failure: each decision
// gets its own result.
//
// Deregistrations are made in plan order, which is why a snapshot shared by
// several AMIs deregistered in one run is deleted with the last of them.
//
// When ctx ends (the Lambda deadline: give it a margin above CallTimeout),
// no new decision and no new call is started; calls in flight complete.
// The decisions left are reported NotStarted, and the next run resumes them.
func (e *Executor) Apply(ctx context.Context, plan *cleanup.Plan) Results {
	switch {
	case plan == nil:
		return Results{Refused: "execute: no plan"}
	case plan.Mode != policy.ModeEnforce:
		return Results{Refused: fmt.Sprintf("execute: refusing a plan in %q mode (only %q plans are applied)", plan.Mode, policy.ModeEnforce)}
	case plan.Blocked != "":
		return Results{Refused: "execute: refusing a blocked plan: " + plan.Blocked}
	case e.EC2 == nil:
		return Results{Refused: "execute: no EC2 client"}
	case e.Records == nil:
		return Results{Refused: "execute: no records key: the cleanup seals every record it writes (pkg/records)"}
	}
	r := e.newRun(plan)
	var wg sync.WaitGroup
	wg.Go(func() { r.lifecycleLane(ctx, plan) })
	r.removalLanes(ctx, plan)
	wg.Wait()
	return r.results(plan)
}

// run is the state of one Apply, shared by its lanes.
type run struct {
	ec2          awsapi.CleanupEC2
	clock        clock.Clock
	log          *slog.Logger
	recheck      Rechecker
	halt         func(context.Context) (string, bool)
	records      *records.Key
	inUseRetries int
	inUseBackoff time.Duration
	imageTags    func(string) map[string]string
	// snapshotWorkers is Executor.SnapshotWorkers or its default.
	snapshotWorkers int

	limDeregister, limSnapshot, limTags, limLifecycle *rate.Limiter

	mu  sync.Mutex // guards everything below
	res Results    // counters; the result lists are assembled in results()
	// images and snaps hold, per decision index, its result and its
	// snapshots' results; orphans per orphan index.
	images  []*ImageResult
	snaps   [][]SnapshotResult
	orphans []*SnapshotResult
	// gone holds the AMIs this run confirmed deregistered (or already gone):
	// a shared snapshot is deleted only once all its users are in it.
	gone map[string]bool
}

func (e *Executor) newRun(plan *cleanup.Plan) *run {
	r := &run{ec2: e.EC2, clock: e.Clock, log: e.Log, recheck: e.Recheck, halt: e.Halt, records: e.Records, imageTags: e.ImageTags,
		inUseRetries: e.InUseRetries, inUseBackoff: e.InUseBackoff, gone: map[string]bool{},
		images: make([]*ImageResult, len(plan.Decisions)), snaps: make([][]SnapshotResult, len(plan.Decisions)),
		orphans: make([]*SnapshotResult, len(plan.Orphans))}
	if r.clock == nil {
		r.clock = clock.Real()
	}
	switch {
	case r.inUseRetries == 0:
		r.inUseRetries = DefaultInUseRetries
	case r.inUseRetries < 0:
		r.inUseRetries = 0
	}
	if r.inUseBackoff <= 0 {
		r.inUseBackoff = DefaultInUseBackoff
	}
	r.snapshotWorkers = e.SnapshotWorkers
	if r.snapshotWorkers <= 0 {
		r.snapshotWorkers = DefaultSnapshotWorkers
	}
	limit := func(v, def float64, burst int) *rate.Limiter {
		if v <= 0 {
			v = def
		}
		if e.Limits.Burst > 0 {
			burst = e.Limits.Burst
		}
		return newLimiter(v, burst)
	}
	r.limDeregister = limit(e.Limits.DeregisterPerSec, DefaultDeregisterPerSec, DefaultBurst)
	r.limSnapshot = limit(e.Limits.DeleteSnapshotPerSec, DefaultDeleteSnapshotPerSec, DefaultBurst)
	r.limTags = limit(e.Limits.TagsPerSec, DefaultTagsPerSec, DefaultBurst)
	r.limLifecycle = limit(e.Limits.LifecyclePerSec, DefaultLifecyclePerSec, DefaultLifecycleBurst)
	return r
}

// count updates the counters under the lock.
func (r *run) count(f func(*Results)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.res)
}

// halted asks Executor.Halt, unless the run is halted already (it stays
// halted); it logs the halt once.
func (r *run) halted(ctx context.Context) bool {
	if r.halt == nil {
		return false
	}
	r.mu.Lock()
	done := r.res.Halted != ""
	r.mu.Unlock()
	if done {
		return true
	}
	reason, halted := r.halt(ctx)
	if !halted {
		return false
	}
	if reason == "" {
		reason = "halted"
	}
	r.mu.Lock()
	first := r.res.Halted == ""
	if first {
		r.res.Halted = reason
	}
	r.mu.Unlock()
	if first {
		r.logLine(ctx, "", "", "halt", "halted: nothing more is started: "+reason, nil)
	}
	return true
}

// haltedResult is the result of decision d, not started because the run
// was halted.
func (r *run) haltedResult(d cleanup.Decision) ImageResult {
	r.count(func(c *Results) { c.NotStarted++ })
	return ImageResult{ImageID: d.ImageID, Action: d.Action, Error: Halted}
}

func (r *run) isGone(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gone[id]
}

func (r *run) setGone(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gone[id] = true
}

// setImage stores decision k's result and snapshot results.
func (r *run) setImage(k int, res ImageResult, snaps []SnapshotResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.images[k] = &res
	r.snaps[k] = append(r.snaps[k], snaps...)
}

// results assembles the lists in plan order.
func (r *run) results(plan *cleanup.Plan) Results {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.res
	for k := range plan.Decisions {
		if r.images[k] != nil {
			out.Images = append(out.Images, *r.images[k])
		}
		out.Snapshots = append(out.Snapshots, r.snaps[k]...)
	}
	for _, o := range r.orphans {
		if o != nil {
			out.Snapshots = append(out.Snapshots, *o)
		}
	}
	return out
}

// lane is one goroutine's view of the run: what it started and whether it
// saw the deadline.
type lane struct {
	*run
	// calls counts API calls this lane made (to tell "not started" from
	// "failed").
	calls int
	// stopped is set once ctx ended: nothing new is started.
	stopped bool
}

// lifecycleLane applies marks, unmarks and stale delete-with clean-ups in
// plan order.
func (r *run) lifecycleLane(ctx context.Context, plan *cleanup.Plan) {
	l := &lane{run: r}
	for k, d := range plan.Decisions {
		if len(d.ClearDeleteWith) > 0 && d.Action != cleanup.ActionDeregister && !l.outOfTime(ctx) && !r.halted(ctx) {
			l.clearDeleteWith(ctx, d)
		}
		var act func(context.Context, cleanup.Decision) ImageResult
		switch d.Action {
		case cleanup.ActionMark:
			act = l.mark
		case cleanup.ActionUnmark:
			act = l.unmark
		default:
			continue
		}
		if !l.outOfTime(ctx) && r.halted(ctx) {
			r.setImage(k, r.haltedResult(d), nil)
			continue
		}
		before := l.calls
		var res ImageResult
		if !l.outOfTime(ctx) {
			res = act(ctx, d)
		}
		switch {
		case !res.Done && l.calls == before && l.stopped:
			res = l.notStarted(ctx, d)
		case !res.Done:
			r.count(func(c *Results) { c.Failed++ })
		}
		r.setImage(k, res, nil)
	}
}

func (l *lane) notStarted(ctx context.Context, d cleanup.Decision) ImageResult {
	l.count(func(c *Results) { c.NotStarted++ })
	l.logLine(ctx, d.ImageID, "", string(d.Action), "not started", nil)
	return ImageResult{ImageID: d.ImageID, Action: d.Action, Error: NotStarted}
}

// removal is one deregistration on its way through the pipeline.
type removal struct {
	k     int
	d     cleanup.Decision
	snaps []string // the planned snapshots, deduplicated
	// tagged holds the snapshots tagged delete-with; gone the ones found
	// already deleted while tagging.
	tagged []string
	gone   map[string]bool
	out    *ec2.DeregisterImageOutput
	res    ImageResult
}

// removalLanes runs the deregistrations and the orphan deletions: the
// recheck-and-tag lane, the deregister lane (this goroutine) and the
// snapshot workers, connected by small buffers so the recheck stays at most
// a couple of batches ahead of the deregistrations.
func (r *run) removalLanes(ctx context.Context, plan *cleanup.Plan) {
	tagged := make(chan *removal, RecheckBatch)
	work := make(chan func(*lane), 4*r.snapshotWorkers)
	var workers sync.WaitGroup
	for range r.snapshotWorkers {
		workers.Go(func() {
			l := &lane{run: r}
			for w := range work {
				w(l)
			}
		})
	}
	go r.prepareLane(ctx, plan, tagged)

	dl := &lane{run: r}
	for rm := range tagged {
		if !dl.deregister(ctx, rm) {
			r.setImage(rm.k, rm.res, nil)
			continue
		}
		work <- func(l *lane) {
			snaps := l.deleteSnapshotsOf(ctx, rm)
			r.setImage(rm.k, rm.res, snaps)
		}
	}
	for k, o := range plan.Orphans {
		if o.Action != cleanup.ActionDeregister {
			continue
		}
		work <- func(l *lane) { l.deleteOrphan(ctx, k, o) }
	}
	close(work)
	workers.Wait()
}

// prepareLane takes the deregistrations in plan order, batch by batch:
// rechecks the batch, then tags each AMI's snapshots delete-with and hands
// it on. It closes out when done.
func (r *run) prepareLane(ctx context.Context, plan *cleanup.Plan, out chan<- *removal) {
	defer close(out)
	l := &lane{run: r}
	var batch []*removal
	flush := func() {
		if len(batch) > 0 {
			l.prepareBatch(ctx, batch, out)
			batch = batch[:0]
		}
	}
	for k, d := range plan.Decisions {
		if d.Action != cleanup.ActionDeregister {
			continue
		}
		rm := &removal{k: k, d: d, res: ImageResult{ImageID: d.ImageID, Action: d.Action}}
		for _, s := range d.DeleteSnapshots {
			if s != "" && !slices.Contains(rm.snaps, s) {
				rm.snaps = append(rm.snaps, s)
			}
		}
		batch = append(batch, rm)
		if len(batch) == RecheckBatch {
			flush()
		}
	}
	flush()
}

func (l *lane) prepareBatch(ctx context.Context, batch []*removal, out chan<- *removal) {
	if l.outOfTime(ctx) {
		for _, rm := range batch {
			l.setImage(rm.k, l.notStarted(ctx, rm.d), nil)
		}
		return
	}
	if l.halted(ctx) {
		for _, rm := range batch {
			l.setImage(rm.k, l.haltedResult(rm.d), nil)
		}
		return
	}
	var keep map[string]Kept
	if l.recheck != nil {
		ds := make([]cleanup.Decision, len(batch))
		for i, rm := range batch {
			ds[i] = rm.d
		}
		var err error
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CallTimeout)
		keep, err = l.recheck.Recheck(cctx, ds)
		cancel()
		if err != nil {
			for _, rm := range batch {
				rm.res.Error = "not deregistered: the recheck before removal failed: " + err.Error()
				l.logLine(ctx, rm.d.ImageID, "", "recheck", "failed", err)
				l.count(func(c *Results) { c.Failed++ })
				l.setImage(rm.k, rm.res, nil)
			}
			return
		}
	}
	for _, rm := range batch {
		if l.recheck == nil && rm.d.CheckShares {
			// Its launch permissions were left to the recheck: none, no removal.
			keep = map[string]Kept{rm.d.ImageID: {Reasons: []string{"launch permissions were to be read right before removal, and there is no recheck: kept"}}}
		}
		if kept := keep[rm.d.ImageID]; len(kept.Reasons) > 0 {
			why := kept.Reasons
			rm.res.KeptBecause = why
			rm.res.Notes = append(rm.res.Notes, "kept: "+strings.Join(why, "; "))
			l.logLine(ctx, rm.d.ImageID, "", "recheck", "kept: "+strings.Join(why, "; "), nil)
			l.count(func(c *Results) { c.KeptOnRecheck++ })
			if kept.Unmark && !l.outOfTime(ctx) {
				u := l.unmark(ctx, cleanup.Decision{ImageID: rm.d.ImageID, Action: cleanup.ActionUnmark})
				switch {
				case u.Done:
					rm.res.Notes = append(rm.res.Notes, append([]string{"unmarked"}, u.Notes...)...)
				case u.Error != "":
					rm.res.Notes = append(rm.res.Notes, "unmark: "+u.Error)
				}
			}
			l.setImage(rm.k, rm.res, nil)
			continue
		}
		if l.outOfTime(ctx) {
			l.setImage(rm.k, l.notStarted(ctx, rm.d), nil)
			continue
		}
		// Write-ahead: the snapshots say which AMI they go with before the
		// AMI goes, so an interrupted run is finished by the next one.
		var err error
		rm.tagged, rm.gone, err = l.tagDeleteWith(ctx, rm.d.ImageID, rm.snaps)
		if errors.Is(err, errOutOfTime) {
			// The AMI was not touched; a tag written is harmless while it
			// exists (the planner clears it).
			l.setImage(rm.k, l.notStarted(ctx, rm.d), nil)
			continue
		}
		if err != nil {
			rm.res.Error = "tag snapshots " + cleanup.TagDeleteWith + " (AMI not deregistered): " + err.Error()
			l.count(func(c *Results) { c.Failed++ })
			l.setImage(rm.k, rm.res, notDeleted(rm, "not deleted: AMI not deregistered"))
			continue
		}
		out <- rm
	}
}

// notDeleted reports every planned snapshot of rm as kept, for why.
func notDeleted(rm *removal, why string) []SnapshotResult {
	out := make([]SnapshotResult, 0, len(rm.snaps))
	for _, s := range rm.snaps {
		out = append(out, SnapshotResult{SnapshotID: s, ImageID: rm.d.ImageID, Error: why})
	}
	return out
}

// deleteOrphan deletes orphan k.
func (l *lane) deleteOrphan(ctx context.Context, k int, o cleanup.SnapshotDecision) {
	sr := SnapshotResult{SnapshotID: o.SnapshotID, ImageID: o.ImageID}
	before := l.calls
	halted := !l.outOfTime(ctx) && l.halted(ctx)
	if !l.outOfTime(ctx) && !halted {
		l.deleteSnapshot(ctx, &sr, 0, "not an orphan after all")
	}
	switch {
	case halted:
		sr.Error = Halted
		l.count(func(c *Results) { c.NotStarted++ })
	case sr.Deleted:
		l.count(func(c *Results) { c.GiBFreed += o.SizeGiB })
	case l.calls == before && l.stopped:
		sr.Error = NotStarted
		l.count(func(c *Results) { c.NotStarted++ })
		l.logLine(ctx, o.ImageID, o.SnapshotID, "delete-snapshot", "not started", nil)
	default:
		l.count(func(c *Results) { c.Failed++ })
	}
	l.mu.Lock()
	l.orphans[k] = &sr
	l.mu.Unlock()
}

// clearDeleteWith removes a stale TagDeleteWith=<d.ImageID> from snapshots
// of an AMI that stays. A failure is counted and logged; the next run tries
// again (the tag is still there).
func (l *lane) clearDeleteWith(ctx context.Context, d cleanup.Decision) {
	err := l.call(ctx, l.limTags, func(c context.Context) error {
		_, err := l.ec2.DeleteTags(c, &ec2.DeleteTagsInput{Resources: d.ClearDeleteWith,
			Tags: []types.Tag{deleteWithKey}})
		return err
	})
	l.logLine(ctx, d.ImageID, strings.Join(d.ClearDeleteWith, ","), "clear-delete-with", outcome(err), err)
	if err != nil && !awserr.IsNotFound(err) {
		l.count(func(c *Results) { c.Failed++ })
	}
}

// userStays returns a planned co-user of snapshot s (an AMI deregistered
// earlier in this run, per the plan) that is not confirmed gone; "" if none.
func (r *run) userStays(d cleanup.Decision, s string) string {
	for _, u := range d.SnapshotUsers[s] {
		if !r.isGone(u) {
			return u
		}
	}
	return ""
}

// errOutOfTime marks a call that was not made because ctx ended.
var errOutOfTime = errors.New("out of time")

func (l *lane) outOfTime(ctx context.Context) bool {
	if ctx.Err() != nil {
		l.stopped = true
	}
	return l.stopped
}

// pace waits for lim's next slot: ReserveN at the clock's now, then sleep
// for the reservation's delay on the same clock.
func (l *lane) pace(ctx context.Context, lim *rate.Limiter) error {
	if err := ctx.Err(); err != nil {
		l.stopped = true
		return fmt.Errorf("%w: %w", errOutOfTime, err)
	}
	res := lim.ReserveN(l.clock.Now(), 1)
	if err := l.clock.Sleep(ctx, res.DelayFrom(l.clock.Now())); err != nil {
		res.CancelAt(l.clock.Now())
		l.stopped = true
		return fmt.Errorf("%w: %w", errOutOfTime, err)
	}
	return nil
}

// call makes one API call, paced by lim, retrying throttling, server and
// transport errors (awserr.KindThrottled) a few times with backoff. Nothing
// is started once ctx has ended; a call in flight never sees the
// cancellation and is bounded by CallTimeout instead, so the chain of one
// decision outlives the deadline by one call at most.
func (l *lane) call(ctx context.Context, lim *rate.Limiter, fn func(context.Context) error) error {
	backoff := throttleBackoff
	for attempt := 0; ; attempt++ {
		if err := l.pace(ctx, lim); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CallTimeout)
		l.calls++
		err := fn(cctx)
		cancel()
		if awserr.Classify(err) != awserr.KindThrottled {
			return err
		}
		if isRateLimit(err) {
			l.count(func(c *Results) { c.Throttled++ })
		}
		if attempt == throttleRetries {
			return err
		}
		if serr := l.clock.Sleep(ctx, backoff); serr != nil {
			l.stopped = true
			return fmt.Errorf("%w (%w before a retry)", err, errOutOfTime)
		}
		backoff *= 2
	}
}

// isRateLimit tells a rate-limit error from the other retryable ones
// (5xx, transport) that awserr also classifies KindThrottled, with the same
// SDK list awserr uses, so Results.Throttled counts only what the limiter
// is meant to prevent.
func isRateLimit(err error) bool {
	return retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool()
}

func (r *run) logLine(ctx context.Context, imageID, snapshotID, action, outcome string, err error) {
	if r.log == nil {
		return
	}
	attrs := make([]slog.Attr, 0, 5)
	level := slog.LevelInfo
	if imageID != "" {
		attrs = append(attrs, slog.String("image_id", imageID))
	}
	if snapshotID != "" {
		attrs = append(attrs, slog.String("snapshot_id", snapshotID))
	}
	attrs = append(attrs, slog.String("action", action), slog.String("outcome", outcome))
	if err != nil {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	r.log.LogAttrs(context.WithoutCancel(ctx), level, "cleanup "+action, attrs...)
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "done"
	case errors.Is(err, errOutOfTime):
		return "out of time"
	case awserr.IsNotFound(err):
		return "already gone"
	}
	return "failed"
}

// sealed is the record tag k=v on resourceID, sealed (pkg/records).
func (r *run) sealed(k, resourceID, v string) types.Tag {
	return types.Tag{Key: aws.String(k), Value: aws.String(r.records.Seal(k, resourceID, v))}
}

// deleteWith is the delete-with record for ami on snapshot, sealed for that
// snapshot (the planner also requires its description to name the AMI).
func (r *run) deleteWith(snapshot, ami string) types.Tag {
	return r.sealed(cleanup.TagDeleteWith, snapshot, ami)
}

// deleteWithKey removes a delete-with record whatever its value (the plan
// decided which snapshots' records go).
var deleteWithKey = types.Tag{Key: aws.String(cleanup.TagDeleteWith)}

// deprecateAt is the earliest deprecation time EC2 is sure to accept: the
// next whole minute, plus a minute for clock skew and the call's latency
// (EC2 rounds to the minute and rejects past dates).
func deprecateAt(now time.Time) time.Time {
	t := now.UTC().Truncate(time.Minute)
	if t.Before(now) {
		t = t.Add(time.Minute)
	}
	return t.Add(time.Minute)
}

// mark tags the AMI with its delete-after date and applies the stages the
// decision asks for.
//
// Write-ahead: ONE CreateTags writes the mark and the record of every stage
// about to be applied, then the stages are applied. A crash between the two
// leaves a record of a stage that did not happen, which is harmless (the
// unmark's EnableImage and DisableImageDeprecation are no-ops then); the
// reverse, a stage without its record, can no longer happen. A stage that
// EC2 refuses for good has its record removed again; one whose outcome is
// unknown (a timeout, a 5xx) keeps it, since it may have been applied. A
// failed stage leaves the mark standing: the result is Done with a note (the
// mark is what the deregistration schedule hangs on; the stages are a
// courtesy to users), and it is logged as failed.
func (l *lane) mark(ctx context.Context, d cleanup.Decision) ImageResult {
	res := ImageResult{ImageID: d.ImageID, Action: d.Action}
	if _, err := time.Parse(cleanup.DateLayout, d.DeleteAfter); err != nil {
		res.Error = fmt.Sprintf("plan error: delete-after date %q: %v", d.DeleteAfter, err)
		return res
	}
	id := aws.String(d.ImageID)
	type stage struct {
		name, record string
		fn           func(context.Context) error
	}
	var stages []stage
	if d.Deprecate {
		at := deprecateAt(l.clock.Now())
		stages = append(stages, stage{"deprecate", cleanup.TagDeprecatedByUs, func(c context.Context) error {
			_, err := l.ec2.EnableImageDeprecation(c, &ec2.EnableImageDeprecationInput{ImageId: id, DeprecateAt: &at})
			return err
		}})
	}
	if d.Disable {
		stages = append(stages, stage{"disable", cleanup.TagDisabledByUs, func(c context.Context) error {
			_, err := l.ec2.DisableImage(c, &ec2.DisableImageInput{ImageId: id})
			return err
		}})
	}
	tags := []types.Tag{l.sealed(cleanup.TagDeleteAfter, d.ImageID, d.DeleteAfter)}
	for _, s := range stages {
		// A stage record carries its mark's date, so one written back
		// from an older mark does not count.
		tags = append(tags, l.sealed(s.record, d.ImageID, d.DeleteAfter))
	}
	err := l.call(ctx, l.limTags, func(c context.Context) error {
		_, err := l.ec2.CreateTags(c, &ec2.CreateTagsInput{Resources: []string{d.ImageID}, Tags: tags})
		return err
	})
	l.logLine(ctx, d.ImageID, "", "mark", outcome(err), err)
	if err != nil {
		res.Error = "mark: " + err.Error()
		return res
	}
	res.Done = true
	for _, s := range stages {
		err := l.call(ctx, l.limLifecycle, s.fn)
		l.logLine(ctx, d.ImageID, "", s.name, outcome(err), err)
		if err == nil {
			continue
		}
		res.Notes = append(res.Notes, fmt.Sprintf("%s not applied: %v", s.name, err))
		if awserr.Classify(err) != awserr.KindPermanent || errors.Is(err, errOutOfTime) {
			res.Notes = append(res.Notes, fmt.Sprintf("%s may have been applied: its record stays, so an unmark undoes it", s.name))
			continue
		}
		derr := l.call(ctx, l.limTags, func(c context.Context) error {
			_, err := l.ec2.DeleteTags(c, &ec2.DeleteTagsInput{Resources: []string{d.ImageID}, Tags: []types.Tag{{Key: aws.String(s.record)}}})
			return err
		})
		l.logLine(ctx, d.ImageID, "", "unrecord-"+s.name, outcome(derr), derr)
		if derr != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("record %s of the stage not applied could not be removed (harmless: undoing it is a no-op): %v", s.record, derr))
		}
	}
	return res
}

// unmark undoes exactly the stages the image's record tags say the cleanup
// applied (EnableImage for TagDisabledByUs, then DisableImageDeprecation for
// TagDeprecatedByUs), then deletes, in one DeleteTags, the record of each
// stage undone and, only when all were undone, the mark: an image whose
// stage could not be undone stays marked, so the next plan unmarks it again.
func (l *lane) unmark(ctx context.Context, d cleanup.Decision) ImageResult {
	res := ImageResult{ImageID: d.ImageID, Action: d.Action}
	var tags map[string]string
	if l.imageTags != nil {
		tags = l.imageTags(d.ImageID)
	}
	if tags == nil {
		res.Error = "cannot unmark safely: the image's tags (which stages the cleanup applied) are unknown; set Executol.ImageTags"
		return res
	}
	id := aws.String(d.ImageID)
	var drop []types.Tag
	undoneAll := true
	undo := func(record, name string, fn func(context.Context) error) bool {
		markDate, marked := l.records.Open(cleanup.TagDeleteAfter, d.ImageID, tags[cleanup.TagDeleteAfter])
		if v, sealed := l.records.Open(record, d.ImageID, tags[record]); !sealed || !marked || v != markDate {
			return true
		}
		err := l.call(ctx, l.limLifecycle, fn)
		l.logLine(ctx, d.ImageID, "", name, outcome(err), err)
		switch {
		case err == nil:
			drop = append(drop, types.Tag{Key: aws.String(record)})
			if name == "enable" {
				res.Notes = append(res.Notes, "enabled again (launch permissions removed by the disable are not restored)")
			} else {
				res.Notes = append(res.Notes, "deprecation removed")
			}
		case awserr.IsNotFound(err):
			res.Error = "image is gone: " + err.Error()
			return false
		default:
			undoneAll = false
			res.Notes = append(res.Notes, fmt.Sprintf("%s failed, stays recorded and marked: %v", name, err))
		}
		return true
	}
	if !undo(cleanup.TagDisabledByUs, "enable", func(c context.Context) error {
		_, err := l.ec2.EnableImage(c, &ec2.EnableImageInput{ImageId: id})
		return err
	}) {
		return res
	}
	if !undo(cleanup.TagDeprecatedByUs, "undeprecate", func(c context.Context) error {
		_, err := l.ec2.DisableImageDeprecation(c, &ec2.DisableImageDeprecationInput{ImageId: id})
		return err
	}) {
		return res
	}
	if undoneAll {
		drop = append(drop, types.Tag{Key: aws.String(cleanup.TagDeleteAfter)})
	}
	if len(drop) == 0 {
		res.Error = "no recorded stage could be undone; the image stays marked"
		return res
	}
	// A record outliving its undone stage is harmless: the next run undoes
	// the stage again (a no-op) and retries this.
	err := l.call(ctx, l.limTags, func(c context.Context) error {
		_, err := l.ec2.DeleteTags(c, &ec2.DeleteTagsInput{Resources: []string{d.ImageID}, Tags: drop})
		return err
	})
	l.logLine(ctx, d.ImageID, "", "unmark", outcome(err), err)
	switch {
	case err != nil:
		res.Error = "delete tags: " + err.Error()
	case !undoneAll:
		res.Error = "a recorded stage could not be undone; the image stays marked"
	default:
		res.Done = true
	}
	return res
}

// deregister removes rm's AMI (its snapshots are already tagged
// delete-with). It reports whether the AMI is gone, so its snapshots can
// follow; otherwise rm.res says why.
//
// It asks EC2 to delete the snapshots with the AMI (DeleteAssociatedSnapshots)
// when the plan deletes some and keeps none: that flag deletes every
// snapshot no other AMI uses, including ones the plan keeps (protected).
// The one gap is a race: another AMI using a snapshot was itself
// deregistered after the plan was made; EC2 then deletes the now unused
// snapshot, and the result says so.
func (l *lane) deregister(ctx context.Context, rm *removal) bool {
	d := rm.d
	if l.outOfTime(ctx) {
		rm.res = l.notStarted(ctx, d)
		rm.res.Notes = append(rm.res.Notes, "its snapshots may carry "+cleanup.TagDeleteWith+"; harmless while the AMI exists")
		return false
	}
	before := l.calls
	err := l.call(ctx, l.limDeregister, func(c context.Context) error {
		o, err := l.ec2.DeregisterImage(c, &ec2.DeregisterImageInput{ImageId: aws.String(d.ImageID),
			DeleteAssociatedSnapshots: aws.Bool(len(rm.snaps) > 0 && len(d.KeptSnapshots) == 0)})
		rm.out = o
		return err
	})
	l.logLine(ctx, d.ImageID, "", "deregister", outcome(err), err)
	switch {
	case err == nil:
		l.count(func(c *Results) { c.Deregistered++ })
		l.setGone(d.ImageID)
		return true
	case awserr.IsNotFound(err):
		l.setGone(d.ImageID)
		rm.res.Notes = append(rm.res.Notes, "AMI already gone ("+awserr.Code(err)+")")
		return true
	case errors.Is(err, errOutOfTime) && l.calls == before:
		rm.res = l.notStarted(ctx, d)
		return false
	case errors.Is(err, errOutOfTime):
		// A call was made and failed; the deadline struck before a retry:
		// EC2 may have deregistered the AMI. The next run finds out.
		rm.res.Error = "deregister: outcome unknown, the deadline struck before a retry: " + err.Error()
		l.count(func(c *Results) { c.Failed++ })
		l.mu.Lock()
		l.snaps[rm.k] = append(l.snaps[rm.k], notDeleted(rm, "not deleted: the AMI's deregistration is not confirmed (tagged "+cleanup.TagDeleteWith+"; the next run finishes it)")...)
		l.mu.Unlock()
		return false
	}
	rm.res.Error = "deregister: " + err.Error()
	l.count(func(c *Results) { c.Failed++ })
	// A permanent refusal (protection, permissions, AWS Backup) leaves the
	// AMI in place: take the delete-with tags off again. After a retryable
	// failure the outcome is unknown (EC2 may have deregistered it) and the
	// tags stay for the next run; either way a stale tag approves nothing
	// while the AMI exists, and the planner clears it.
	if awserr.Classify(err) == awserr.KindPermanent && len(rm.tagged) > 0 {
		uerr := l.call(ctx, l.limTags, func(c context.Context) error {
			_, err := l.ec2.DeleteTags(c, &ec2.DeleteTagsInput{Resources: rm.tagged,
				Tags: []types.Tag{deleteWithKey}})
			return err
		})
		l.logLine(ctx, d.ImageID, "", "untag-delete-with", outcome(uerr), uerr)
		if uerr != nil {
			rm.res.Notes = append(rm.res.Notes, "could not remove "+cleanup.TagDeleteWith+" from the snapshots: "+uerr.Error())
		}
	}
	l.mu.Lock()
	l.snaps[rm.k] = append(l.snaps[rm.k], notDeleted(rm, "not deleted: AMI not deregistered")...)
	l.mu.Unlock()
	return false
}

// deleteSnapshotsOf deletes the planned snapshots of a deregistered AMI and
// completes rm.res; it returns the snapshots' results.
func (l *lane) deleteSnapshotsOf(ctx context.Context, rm *removal) []SnapshotResult {
	d := rm.d
	var out []SnapshotResult
	codes := map[string]types.SnapshotReturnCodes{}
	if rm.out != nil {
		for _, c := range rm.out.DeleteSnapshotResults {
			sid := aws.ToString(c.SnapshotId)
			codes[sid] = c.ReturnCode
			if c.ReturnCode == types.SnapshotReturnCodesSuccess && !slices.Contains(rm.snaps, sid) {
				rm.res.Notes = append(rm.res.Notes, fmt.Sprintf("snapshot %s was not in the plan but DeleteAssociatedSnapshots deleted it (no other AMI used it any more)", sid))
				out = append(out, SnapshotResult{SnapshotID: sid, ImageID: d.ImageID, Deleted: true, Via: ViaDeleteAssociatedSnapshots})
				l.count(func(c *Results) { c.SnapshotsDeleted++ })
				l.logLine(ctx, d.ImageID, sid, "delete-snapshot", "done (unplanned)", nil)
			}
		}
	}
	failed := 0
	for _, s := range rm.snaps {
		sr := SnapshotResult{SnapshotID: s, ImageID: d.ImageID}
		switch code := codes[s]; {
		case code == types.SnapshotReturnCodesSuccess:
			sr.Deleted, sr.Via = true, ViaDeleteAssociatedSnapshots
			l.count(func(c *Results) { c.SnapshotsDeleted++ })
			l.logLine(ctx, d.ImageID, s, "delete-snapshot", "done", nil)
		case rm.gone[s]:
			sr.Deleted, sr.Via = true, ViaAlreadyGone
			l.logLine(ctx, d.ImageID, s, "delete-snapshot", "already gone", nil)
		case code == types.SnapshotReturnCodesWarnSkipped:
			// EC2 says another AMI still uses it: keep it. Its delete-with
			// tag stays; the planner only acts on it once no AMI uses it.
			sr.Error = "kept: EC2 reports another AMI still uses it (DeleteAssociatedSnapshots skipped it)"
		case l.userStays(d, s) != "":
			sr.Error = "kept: also used by " + l.userStays(d, s) + ", which this run did not deregister"
		default:
			// No result (moto), or an error code: delete it ourselves,
			// retrying the race with the deregistration.
			why := "still in use after the AMI was deregistered"
			if code != "" {
				why += " (DeleteAssociatedSnapshots: " + string(code) + ")"
			}
			l.deleteSnapshot(ctx, &sr, l.inUseRetries, why)
		}
		if !sr.Deleted {
			failed++
			if l.stopped {
				sr.Error += " (tagged " + cleanup.TagDeleteWith + "; the next run deletes it)"
			}
		}
		out = append(out, sr)
	}
	if failed > 0 {
		rm.res.Error = fmt.Sprintf("%d of %d snapshots not deleted", failed, len(rm.snaps))
		l.count(func(c *Results) { c.Failed++ })
		return out
	}
	rm.res.Done = true
	l.count(func(c *Results) { c.GiBFreed += d.SizeGiB })
	return out
}

// tagDeleteWith writes TagDeleteWith=<ami> on each snapshot, one call each:
// the record is sealed for the snapshot, so a copy on another snapshot of
// the same AMI approves nothing. A snapshot already gone is reported.
func (l *lane) tagDeleteWith(ctx context.Context, imageID string, snaps []string) (tagged []string, gone map[string]bool, err error) {
	gone = map[string]bool{}
	for _, s := range snaps {
		err := l.call(ctx, l.limTags, func(c context.Context) error {
			_, err := l.ec2.CreateTags(c, &ec2.CreateTagsInput{Resources: []string{s}, Tags: []types.Tag{l.deleteWith(s, imageID)}})
			return err
		})
		l.logLine(ctx, imageID, s, "tag-delete-with", outcome(err), err)
		switch {
		case err == nil:
			tagged = append(tagged, s)
		case awserr.IsNotFound(err):
			gone[s] = true
		default:
			return tagged, gone, err
		}
	}
	return tagged, gone, nil
}

// deleteSnapshot deletes one snapshot whose AMI is gone (or an orphan),
// retrying InvalidSnapshot.InUse up to inUseRetries times with a doubling
// backoff; NotFound means already gone. inUse explains a final InUse.
func (l *lane) deleteSnapshot(ctx context.Context, sr *SnapshotResult, inUseRetries int, inUse string) {
	wait := l.inUseBackoff
	for attempt := 0; ; attempt++ {
		err := l.call(ctx, l.limSnapshot, func(c context.Context) error {
			_, err := l.ec2.DeleteSnapshot(c, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(sr.SnapshotID)})
			return err
		})
		inUseErr := awserr.Code(err) == "InvalidSnapshot.InUse"
		if inUseErr && attempt < inUseRetries {
			if serr := l.clock.Sleep(ctx, wait); serr == nil {
				wait *= 2
				continue
			}
			l.stopped = true
		}
		switch {
		case err == nil:
			sr.Deleted, sr.Via = true, ViaDeleteSnapshot
			l.count(func(c *Results) { c.SnapshotsDeleted++ })
		case awserr.IsNotFound(err):
			sr.Deleted, sr.Via = true, ViaAlreadyGone
		case inUseErr:
			sr.Error = fmt.Sprintf("not deleted: %s: %v", inUse, err)
		default:
			sr.Error = "not deleted: " + err.Error()
		}
		out := outcome(err)
		if inUseErr {
			out = "in use"
		}
		l.logLine(ctx, sr.ImageID, sr.SnapshotID, "delete-snapshot", out, err)
		return
	}
}
