// Package execute applies a cleanup plan: it marks and unmarks candidate
// AMIs (with their optional deprecate/disable stages), deregisters AMIs and
// deletes their snapshots, and deletes orphaned snapshots.
//
// Safety properties, in order of importance:
//   - A snapshot is deleted only after its AMI is gone: DeleteSnapshot is
//     called only once DeregisterImage succeeded or said the AMI is gone.
//   - Every run can be interrupted and resumed: before an AMI is
//     deregistered, its snapshots are tagged cleanup.TagDeleteWith=<ami>, so
//     if the run stops in between, the next plan finds them as approved
//     orphans; a lifecycle stage is recorded (TagDeprecatedByUs,
//     TagDisabledByUs) in the same CreateTags as the mark, only after the
//     stage succeeded, and an unmark removes the mark only once every
//     recorded stage was undone.
//   - Every mutating call is paced by a client-side token bucket per EC2
//     throttling bucket, so a backlog drains at EC2's refill rate without
//     RequestLimitExceeded; throttling that still happens is retried.
//   - One decision failing does not stop the others; each gets a Result.
package execute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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
)

// Default client-side rates, per second: EC2's refill rates for the
// DeregisterImage and DeleteSnapshot buckets (100/5), CreateTags and
// DeleteTags (100/10 each, shared here), and the default mutating bucket
// (50/5) that the deprecation and enable/disable calls fall in.
const (
	DefaultDeregisterPerSec     = 5
	DefaultDeleteSnapshotPerSec = 5
	DefaultTagsPerSec           = 10
	DefaultLifecyclePerSec      = 5
	DefaultInUseRetries         = 6
	DefaultInUseBackoff         = 2 * time.Second
)

const (
	// throttleRetries is how often a throttled call (or one that failed on
	// the server side or in transport) is retried, after throttleBackoff,
	// doubling. The SDK's own retryer retries too; this covers what is left.
	throttleRetries = 3
	throttleBackoff = time.Second
	// callTimeout bounds one API call. Calls run on a context that the
	// caller's cancellation does not reach, so a started DeregisterImage is
	// not abandoned halfway with its outcome unknown.
	callTimeout = 30 * time.Second
)

// Via values of SnapshotResult.
const (
	ViaDeleteAssociatedSnapshots = "DeleteAssociatedSnapshots"
	ViaDeleteSnapshot            = "DeleteSnapshot"
	ViaAlreadyGone               = "already gone"
)

// NotStarted is the Error of a decision the run had no time to start.
const NotStarted = "not started: out of time"

// Limits are client-side rates per EC2 action bucket (per second); zero (or
// negative) values take the defaults: Deregister 5, DeleteSnapshot 5, Tags 10
// (CreateTags+DeleteTags), Lifecycle 5 (deprecation/enable/disable). Burst
// is 1 for each unless set.
type Limits struct {
	DeregisterPerSec, DeleteSnapshotPerSec, TagsPerSec, LifecyclePerSec float64
	Burst                                                               int
}

// Executor applies plans. The zero values of Clock, Limits, InUseRetries
// and InUseBackoff take the defaults.
type Executor struct {
	EC2    awsapi.CleanupEC2
	Clock  clock.Clock
	Limits Limits
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
	// ImageTags returns an image's tags as the inventory read them. Unmark
	// needs it to know which stages the cleanup applied (TagDeprecatedByUs,
	// TagDisabledByUs) and must undo; without it, or without tags for the
	// image, an unmark fails rather than guess.
	ImageTags func(imageID string) map[string]string
}

// Results are the outcome of Apply: one ImageResult per mark, unmark and
// deregister decision, one SnapshotResult per snapshot of a deregister
// decision (plus any EC2 deleted unasked) and per orphan deletion.
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
	// Failed counts decisions (image and orphan) that were started and did
	// not complete.
	Failed int `json:"failed"`
	// NotStarted counts decisions the run had no time for (Error NotStarted);
	// the next run resumes them.
	NotStarted int `json:"not_started"`
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
	Notes   []string       `json:"notes,omitempty"`
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
// decisions, in plan order (image decisions, then orphans). It refuses
// (Results.Refused set, Results.Err non-nil, nothing done) unless plan.Mode
// is enforce and plan.Blocked is empty. Keep, skip, wait and pending
// decisions are not touched. It does not stop at the first failure: each
// decision gets its own result.
//
// When ctx ends (the Lambda deadline: give it a margin of a few seconds), no
// new decision and no new call is started; a call in flight completes. The
// decisions left are reported NotStarted, and the next run resumes them.
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
	}
	r := e.newRun()
	for _, d := range plan.Decisions {
		if len(d.ClearDeleteWith) > 0 && d.Action != cleanup.ActionDeregister && !r.outOfTime(ctx) {
			r.clearDeleteWith(ctx, d)
		}
		var act func(context.Context, cleanup.Decision) ImageResult
		switch d.Action {
		case cleanup.ActionMark:
			act = r.mark
		case cleanup.ActionUnmark:
			act = r.unmark
		case cleanup.ActionDeregister:
			act = r.deregister
		default:
			continue
		}
		before := r.calls
		var res ImageResult
		if !r.outOfTime(ctx) {
			res = act(ctx, d)
		}
		if !res.Done && r.calls == before && r.stopped {
			res = ImageResult{ImageID: d.ImageID, Action: d.Action, Error: NotStarted}
			r.res.NotStarted++
			r.logLine(ctx, d.ImageID, "", string(d.Action), "not started", nil)
		} else if !res.Done {
			r.res.Failed++
		}
		r.res.Images = append(r.res.Images, res)
	}
	for _, o := range plan.Orphans {
		if o.Action != cleanup.ActionDeregister {
			continue
		}
		sr := SnapshotResult{SnapshotID: o.SnapshotID, ImageID: o.ImageID}
		before := r.calls
		if !r.outOfTime(ctx) {
			r.deleteSnapshot(ctx, &sr, 0, "not an orphan after all")
		}
		switch {
		case sr.Deleted:
			r.res.GiBFreed += o.SizeGiB
		case r.calls == before && r.stopped:
			sr.Error = NotStarted
			r.res.NotStarted++
			r.logLine(ctx, o.ImageID, o.SnapshotID, "delete-snapshot", "not started", nil)
		default:
			r.res.Failed++
		}
		r.res.Snapshots = append(r.res.Snapshots, sr)
	}
	return *r.res
}

// run is the state of one Apply.
type run struct {
	ec2          awsapi.CleanupEC2
	clock        clock.Clock
	log          *slog.Logger
	inUseRetries int
	inUseBackoff time.Duration
	imageTags    func(string) map[string]string

	limDeregister, limSnapshot, limTags, limLifecycle *rate.Limiter

	res *Results
	// gone holds the AMIs this run confirmed deregistered (or already gone):
	// a shared snapshot is deleted only once all its users are in it.
	gone map[string]bool
	// calls counts API calls made (to tell "not started" from "failed").
	calls int
	// stopped is set once ctx ended: nothing new is started.
	stopped bool
}

func (e *Executor) newRun() *run {
	r := &run{ec2: e.EC2, clock: e.Clock, log: e.Log, imageTags: e.ImageTags,
		inUseRetries: e.InUseRetries, inUseBackoff: e.InUseBackoff, res: &Results{}, gone: map[string]bool{}}
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
	burst := e.Limits.Burst
	if burst < 1 {
		burst = 1
	}
	limit := func(v, def float64) *rate.Limiter {
		if v <= 0 {
			v = def
		}
		return newLimiter(v, burst)
	}
	r.limDeregister = limit(e.Limits.DeregisterPerSec, DefaultDeregisterPerSec)
	r.limSnapshot = limit(e.Limits.DeleteSnapshotPerSec, DefaultDeleteSnapshotPerSec)
	r.limTags = limit(e.Limits.TagsPerSec, DefaultTagsPerSec)
	r.limLifecycle = limit(e.Limits.LifecyclePerSec, DefaultLifecyclePerSec)
	return r
}

// clearDeleteWith removes a stale TagDeleteWith=<d.ImageID> from snapshots
// of an AMI that stays. A failure is counted and logged; the next run tries
// again (the tag is still there).
func (r *run) clearDeleteWith(ctx context.Context, d cleanup.Decision) {
	err := r.call(ctx, r.limTags, false, func(c context.Context) error {
		_, err := r.ec2.DeleteTags(c, &ec2.DeleteTagsInput{Resources: d.ClearDeleteWith,
			Tags: []types.Tag{tag(cleanup.TagDeleteWith, d.ImageID)}})
		return err
	})
	r.logLine(ctx, d.ImageID, strings.Join(d.ClearDeleteWith, ","), "clear-delete-with", outcome(err), err)
	if err != nil && !awserr.IsNotFound(err) {
		r.res.Failed++
	}
}

// userStays returns a planned co-user of snapshot s (an AMI deregistered
// earlier in this run, per the plan) that is not confirmed gone; "" if none.
func (r *run) userStays(d cleanup.Decision, s string) string {
	for _, u := range d.SnapshotUsers[s] {
		if !r.gone[u] {
			return u
		}
	}
	return ""
}

// errOutOfTime marks a call that was not made because ctx ended.
var errOutOfTime = errors.New("out of time")

func (r *run) outOfTime(ctx context.Context) bool {
	if ctx.Err() != nil {
		r.stopped = true
	}
	return r.stopped
}

// pace waits for lim's next slot: ReserveN at the clock's now, then sleep
// for the reservation's delay on the same clock.
func (r *run) pace(ctx context.Context, lim *rate.Limiter) error {
	if err := ctx.Err(); err != nil {
		r.stopped = true
		return fmt.Errorf("%w: %w", errOutOfTime, err)
	}
	res := lim.ReserveN(r.clock.Now(), 1)
	if err := r.clock.Sleep(ctx, res.DelayFrom(r.clock.Now())); err != nil {
		r.stopped = true
		return fmt.Errorf("%w: %w", errOutOfTime, err)
	}
	return nil
}

// call makes one API call, paced by lim, retrying throttling, server and
// transport errors (awserr.KindThrottled) a few times with backoff. A
// critical call (one that records or rolls back what a previous call did)
// is made even when ctx has ended; the others are not started then. The
// call itself never sees ctx's cancellation (see callTimeout).
func (r *run) call(ctx context.Context, lim *rate.Limiter, critical bool, fn func(context.Context) error) error {
	wait := ctx
	if critical {
		wait = context.WithoutCancel(ctx)
	}
	backoff := throttleBackoff
	for attempt := 0; ; attempt++ {
		if err := r.pace(wait, lim); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
		r.calls++
		err := fn(cctx)
		cancel()
		if awserr.Classify(err) != awserr.KindThrottled {
			return err
		}
		if isRateLimit(err) {
			r.res.Throttled++
		}
		if attempt == throttleRetries {
			return err
		}
		if serr := r.clock.Sleep(wait, backoff); serr != nil {
			r.stopped = true
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

func tag(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }

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
// Order: the stages first, then ONE CreateTags with the mark and the record
// of each stage that succeeded (fewest calls; a record is never written for
// a stage that did not happen). Once a stage succeeded, that CreateTags is
// made even if time runs out, and if it fails the stages are rolled back, so
// an image is never left deprecated or disabled by us without the record an
// unmark needs. A stage that fails leaves the mark standing: the result is
// Done with a note (the mark is what the deregistration schedule hangs on;
// the stages are a courtesy to users), and it is logged as failed.
func (r *run) mark(ctx context.Context, d cleanup.Decision) ImageResult {
	res := ImageResult{ImageID: d.ImageID, Action: d.Action}
	if _, err := time.Parse(cleanup.DateLayout, d.DeleteAfter); err != nil {
		res.Error = fmt.Sprintf("plan error: delete-after date %q: %v", d.DeleteAfter, err)
		return res
	}
	id := aws.String(d.ImageID)
	tags := []types.Tag{tag(cleanup.TagDeleteAfter, d.DeleteAfter)}
	var applied []string
	stage := func(name, record string, fn func(context.Context) error) {
		err := r.call(ctx, r.limLifecycle, false, fn)
		r.logLine(ctx, d.ImageID, "", name, outcome(err), err)
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("%s not applied: %v", name, err))
			return
		}
		applied = append(applied, name)
		tags = append(tags, tag(record, "true"))
	}
	if d.Deprecate {
		at := deprecateAt(r.clock.Now())
		stage("deprecate", cleanup.TagDeprecatedByUs, func(c context.Context) error {
			_, err := r.ec2.EnableImageDeprecation(c, &ec2.EnableImageDeprecationInput{ImageId: id, DeprecateAt: &at})
			return err
		})
	}
	if d.Disable {
		stage("disable", cleanup.TagDisabledByUs, func(c context.Context) error {
			_, err := r.ec2.DisableImage(c, &ec2.DisableImageInput{ImageId: id})
			return err
		})
	}
	err := r.call(ctx, r.limTags, len(applied) > 0, func(c context.Context) error {
		_, err := r.ec2.CreateTags(c, &ec2.CreateTagsInput{Resources: []string{d.ImageID}, Tags: tags})
		return err
	})
	r.logLine(ctx, d.ImageID, "", "mark", outcome(err), err)
	if err == nil {
		res.Done = true
		return res
	}
	res.Error = "mark: " + err.Error()
	if awserr.IsNotFound(err) {
		return res
	}
	// Roll back, newest first, what has no record now.
	for _, name := range slices.Backward(applied) {
		undo, fn := "enable", func(c context.Context) error {
			_, err := r.ec2.EnableImage(c, &ec2.EnableImageInput{ImageId: id})
			return err
		}
		if name == "deprecate" {
			undo, fn = "undeprecate", func(c context.Context) error {
				_, err := r.ec2.DisableImageDeprecation(c, &ec2.DisableImageDeprecationInput{ImageId: id})
				return err
			}
		}
		uerr := r.call(ctx, r.limLifecycle, true, fn)
		r.logLine(ctx, d.ImageID, "", undo, outcome(uerr), uerr)
		if uerr != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("%s applied but not recorded, and the rollback (%s) failed: %v", name, undo, uerr))
		} else {
			res.Notes = append(res.Notes, fmt.Sprintf("%s rolled back (%s) because the mark could not be written", name, undo))
		}
	}
	return res
}

// unmark undoes exactly the stages the image's record tags say the cleanup
// applied (EnableImage for TagDisabledByUs, then DisableImageDeprecation for
// TagDeprecatedByUs), then deletes, in one DeleteTags, the record of each
// stage undone and, only when all were undone, the mark: an image whose
// stage could not be undone stays marked, so the next plan unmarks it again.
func (r *run) unmark(ctx context.Context, d cleanup.Decision) ImageResult {
	res := ImageResult{ImageID: d.ImageID, Action: d.Action}
	var tags map[string]string
	if r.imageTags != nil {
		tags = r.imageTags(d.ImageID)
	}
	if tags == nil {
		res.Error = "cannot unmark safely: the image's tags (which stages the cleanup applied) are unknown; set Executor.ImageTags"
		return res
	}
	id := aws.String(d.ImageID)
	var drop []types.Tag
	undoneAll := true
	undo := func(record, name string, fn func(context.Context) error) bool {
		if _, ok := tags[record]; !ok {
			return true
		}
		err := r.call(ctx, r.limLifecycle, false, fn)
		r.logLine(ctx, d.ImageID, "", name, outcome(err), err)
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
		_, err := r.ec2.EnableImage(c, &ec2.EnableImageInput{ImageId: id})
		return err
	}) {
		return res
	}
	if !undo(cleanup.TagDeprecatedByUs, "undeprecate", func(c context.Context) error {
		_, err := r.ec2.DisableImageDeprecation(c, &ec2.DisableImageDeprecationInput{ImageId: id})
		return err
	}) {
		return res
	}
	undone := len(drop)
	if undoneAll {
		drop = append(drop, types.Tag{Key: aws.String(cleanup.TagDeleteAfter)})
	}
	if len(drop) == 0 {
		res.Error = "no recorded stage could be undone; the image stays marked"
		return res
	}
	// Critical once a stage was undone: its record must go with it.
	err := r.call(ctx, r.limTags, undone > 0, func(c context.Context) error {
		_, err := r.ec2.DeleteTags(c, &ec2.DeleteTagsInput{Resources: []string{d.ImageID}, Tags: drop})
		return err
	})
	r.logLine(ctx, d.ImageID, "", "unmark", outcome(err), err)
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

// deregister removes the AMI and then the snapshots the plan assigned to it.
//
// It asks EC2 to delete the snapshots with the AMI (DeleteAssociatedSnapshots)
// when the plan deletes any. That cannot remove a snapshot the planner chose
// to keep: the planner puts into DeleteSnapshots every snapshot of the AMI
// the account owns and no other registered AMI references, and keeps the
// rest for exactly two reasons, "not owned" (EC2 cannot delete another
// account's snapshot: missing-permissions) and "also used by <ami>" (EC2
// skips a snapshot associated with other AMIs: skipped). The one gap is a
// race: the other AMI was itself deregistered after the plan was made; EC2
// then deletes the now unused snapshot, and the result reports it in Notes
// and Snapshots (it is gone; said so). When the plan deletes none, the flag
// is not set at all.
func (r *run) deregister(ctx context.Context, d cleanup.Decision) ImageResult {
	res := ImageResult{ImageID: d.ImageID, Action: d.Action}
	before := r.calls
	var snaps []string
	for _, s := range d.DeleteSnapshots {
		if s != "" && !slices.Contains(snaps, s) {
			snaps = append(snaps, s)
		}
	}
	snapResults := func(reason string) {
		if r.calls == before {
			return // not started: no snapshot results
		}
		for _, s := range snaps {
			r.res.Snapshots = append(r.res.Snapshots, SnapshotResult{SnapshotID: s, ImageID: d.ImageID, Error: reason})
		}
	}

	// (1) Tag the snapshots delete-with=<ami>, so an interrupted run is
	// finished by the next one.
	tagged, gone, err := r.tagDeleteWith(ctx, d.ImageID, snaps)
	if err != nil {
		res.Error = "tag snapshots " + cleanup.TagDeleteWith + " (AMI not deregistered): " + err.Error()
		snapResults("not deleted: AMI not deregistered")
		return res
	}

	// (2) Deregister.
	var out *ec2.DeregisterImageOutput
	err = r.call(ctx, r.limDeregister, false, func(c context.Context) error {
		// DeleteAssociatedSnapshots deletes every snapshot no other AMI
		// uses, including ones the plan keeps (protected): only ask for it
		// when the plan keeps none of this AMI's snapshots.
		o, err := r.ec2.DeregisterImage(c, &ec2.DeregisterImageInput{ImageId: aws.String(d.ImageID),
			DeleteAssociatedSnapshots: aws.Bool(len(snaps) > 0 && len(d.KeptSnapshots) == 0)})
		out = o
		return err
	})
	r.logLine(ctx, d.ImageID, "", "deregister", outcome(err), err)
	switch {
	case err == nil:
		r.res.Deregistered++
		r.gone[d.ImageID] = true
	case awserr.IsNotFound(err):
		r.gone[d.ImageID] = true
		res.Notes = append(res.Notes, "AMI already gone ("+awserr.Code(err)+")")
	default:
		res.Error = "deregister: " + err.Error()
		// A permanent refusal (protection, permissions, AWS Backup) leaves
		// the AMI in place: take the delete-with tags off again, so nothing
		// treats its snapshots as leftovers. After a retryable failure the
		// outcome is unknown (EC2 may have deregistered it) and the tags
		// stay for the next run.
		if awserr.Classify(err) == awserr.KindPermanent && len(tagged) > 0 {
			uerr := r.call(ctx, r.limTags, true, func(c context.Context) error {
				_, err := r.ec2.DeleteTags(c, &ec2.DeleteTagsInput{Resources: tagged,
					Tags: []types.Tag{tag(cleanup.TagDeleteWith, d.ImageID)}})
				return err
			})
			r.logLine(ctx, d.ImageID, "", "untag-delete-with", outcome(uerr), uerr)
			if uerr != nil {
				res.Notes = append(res.Notes, "could not remove "+cleanup.TagDeleteWith+" from the snapshots: "+uerr.Error())
			}
		}
		snapResults("not deleted: AMI not deregistered")
		return res
	}

	// (3) The snapshots, now that the AMI is gone.
	codes := map[string]types.SnapshotReturnCodes{}
	if out != nil {
		for _, c := range out.DeleteSnapshotResults {
			sid := aws.ToString(c.SnapshotId)
			codes[sid] = c.ReturnCode
			if c.ReturnCode == types.SnapshotReturnCodesSuccess && !slices.Contains(snaps, sid) {
				res.Notes = append(res.Notes, fmt.Sprintf("snapshot %s was not in the plan but DeleteAssociatedSnapshots deleted it (no other AMI used it any more)", sid))
				r.res.Snapshots = append(r.res.Snapshots, SnapshotResult{SnapshotID: sid, ImageID: d.ImageID, Deleted: true, Via: ViaDeleteAssociatedSnapshots})
				r.res.SnapshotsDeleted++
				r.logLine(ctx, d.ImageID, sid, "delete-snapshot", "done (unplanned)", nil)
			}
		}
	}
	failed := 0
	for _, s := range snaps {
		sr := SnapshotResult{SnapshotID: s, ImageID: d.ImageID}
		switch code := codes[s]; {
		case code == types.SnapshotReturnCodesSuccess:
			sr.Deleted, sr.Via = true, ViaDeleteAssociatedSnapshots
			r.res.SnapshotsDeleted++
			r.logLine(ctx, d.ImageID, s, "delete-snapshot", "done", nil)
		case gone[s]:
			sr.Deleted, sr.Via = true, ViaAlreadyGone
			r.logLine(ctx, d.ImageID, s, "delete-snapshot", "already gone", nil)
		case code == types.SnapshotReturnCodesWarnSkipped:
			// EC2 says another AMI still uses it: keep it. Its delete-with
			// tag stays; the planner only acts on it once no AMI uses it.
			sr.Error = "kept: EC2 reports another AMI still uses it (DeleteAssociatedSnapshots skipped it)"
		case r.userStays(d, s) != "":
			sr.Error = "kept: also used by " + r.userStays(d, s) + ", which this run did not deregister"
		default:
			// No result (moto), or an error code: delete it ourselves,
			// retrying the race with the deregistration.
			why := "still in use after the AMI was deregistered"
			if code != "" {
				why += " (DeleteAssociatedSnapshots: " + string(code) + ")"
			}
			r.deleteSnapshot(ctx, &sr, r.inUseRetries, why)
		}
		if !sr.Deleted {
			failed++
			if r.stopped {
				sr.Error += " (tagged " + cleanup.TagDeleteWith + "; the next run deletes it)"
			}
		}
		r.res.Snapshots = append(r.res.Snapshots, sr)
	}
	if failed > 0 {
		res.Error = fmt.Sprintf("%d of %d snapshots not deleted", failed, len(snaps))
		return res
	}
	res.Done = true
	r.res.GiBFreed += d.SizeGiB
	return res
}

// tagDeleteWith writes TagDeleteWith=<ami> on the snapshots in one call.
// When that fails because some are gone (CreateTags is all or nothing), it
// tags them one by one and reports the gone ones.
func (r *run) tagDeleteWith(ctx context.Context, imageID string, snaps []string) (tagged []string, gone map[string]bool, err error) {
	gone = map[string]bool{}
	if len(snaps) == 0 {
		return nil, gone, nil
	}
	create := func(ids []string) error {
		err := r.call(ctx, r.limTags, false, func(c context.Context) error {
			_, err := r.ec2.CreateTags(c, &ec2.CreateTagsInput{Resources: ids, Tags: []types.Tag{tag(cleanup.TagDeleteWith, imageID)}})
			return err
		})
		r.logLine(ctx, imageID, strings.Join(ids, ","), "tag-delete-with", outcome(err), err)
		return err
	}
	switch err = create(snaps); {
	case err == nil:
		return snaps, gone, nil
	case !awserr.IsNotFound(err):
		return nil, gone, err
	case len(snaps) == 1:
		gone[snaps[0]] = true
		return nil, gone, nil
	}
	for _, s := range snaps {
		switch err := create([]string{s}); {
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
func (r *run) deleteSnapshot(ctx context.Context, sr *SnapshotResult, inUseRetries int, inUse string) {
	wait := r.inUseBackoff
	for attempt := 0; ; attempt++ {
		err := r.call(ctx, r.limSnapshot, false, func(c context.Context) error {
			_, err := r.ec2.DeleteSnapshot(c, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(sr.SnapshotID)})
			return err
		})
		inUseErr := awserr.Code(err) == "InvalidSnapshot.InUse"
		if inUseErr && attempt < inUseRetries {
			if serr := r.clock.Sleep(ctx, wait); serr == nil {
				wait *= 2
				continue
			}
			r.stopped = true
		}
		switch {
		case err == nil:
			sr.Deleted, sr.Via = true, ViaDeleteSnapshot
			r.res.SnapshotsDeleted++
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
		r.logLine(ctx, sr.ImageID, sr.SnapshotID, "delete-snapshot", out, err)
		return
	}
}
