// Package audit is the sharing guard's scheduled sweep. Events are best
// effort (CloudTrail can be late, a rule can be missing, sharing can predate
// the deployment), so on a schedule the audit checks EVERY AMI the account
// owns in a region, disabled and deprecated ones included, with their
// snapshots, and, when the policy asks for it, every owned snapshot that is
// not behind an AMI.
//
// One run:
//
//  1. reads the block-public-access guardrails (and turns image block public
//     access on when the policy asks for it and the mode is enforce);
//  2. lists the owned AMIs in one paginated DescribeImages pass, which also
//     finds the public ones at no extra cost (Report.Public);
//  3. checks each AMI (and each stand-alone snapshot) through the per-AMI
//     engine, in ID order, with bounded concurrency, each check paced on a
//     client-side token bucket so the sweep stays under EC2's rate limits;
//  4. stops starting checks when the Lambda deadline is near, or when Halt
//     says so (the kill switch, engaged or unreadable since the run
//     started), and saves a cursor so the next run resumes where this one
//     stopped.
//
// # Halt
//
// Halt is asked by each worker right before it starts a check (a check
// reads an AMI's permissions and revokes what the policy forbids), and
// before the guardrail is turned on. Once it says halted, no check starts
// and none is dispatched; the checks already past their Halt (at most
// Concurrency) finish and are reported. The halted checks hold the cursor
// back, so the next run checks them. The report says Halted and why, and
// the pass is not complete. With the kill switch, Halt answers from a read
// at most a second old (killswitch.HaltTTL), so asking per check costs SSM
// at most one read a second.
//
// # Rate accounting
//
// The engine reads one launch-permission attribute per AMI
// (DescribeImageAttribute) and one create-volume-permission attribute per
// snapshot (DescribeSnapshotAttribute). Both are non-mutating reads, refilled
// by EC2 at 20 a second; the audit charges them all to one client-side
// limiter (AttributeRate, default 20/s, burst 20), so each action's bucket
// sees at most that rate whatever EC2's exact bucket boundaries are. Before a
// check starts, the dispatcher reserves its weight: 1 + the number of EBS
// snapshots the listing shows for an AMI, 1 for a stand-alone snapshot. Each
// DescribeImages or DescribeSnapshots page of the listing costs 1. A check
// that revoked something made one confirming re-read per changed resource;
// those are charged after the fact (the debt delays the next checks). AMIs
// are checked as listed (CheckListedImage: no second DescribeImages per AMI);
// a stand-alone snapshot is described once by ID, in DescribeSnapshots' own
// bucket (EC2 throttles per action), so it is not charged. The
// mutations (ModifyImageAttribute, ModifySnapshotAttribute, CreateTags) have
// their own buckets too and are rare; the SDK retries them if throttled.
//
// Only the dispatcher goroutine sleeps on the clock; workers just run checks.
// That keeps pacing exact on a simulated clock too (concurrent sleepers would
// each advance it).
//
// # Cursor
//
// AMIs and stand-alone snapshots form one list sorted by ID (every "ami-" ID
// sorts before every "snap-" ID, so the images come first). The cursor is the
// last ID of the longest prefix of that list whose checks all finished; a
// run skips every ID <= the cursor. With concurrent checks, a check still
// running or cut short by the deadline holds the cursor back even if later
// IDs finished: they are checked again next time (at least once, never
// skipped). A check that failed for any other reason counts as finished (its
// error is in Report.Errors and the next full pass retries it), so one broken
// AMI cannot pin the cursor and stall the sweep.
//
// The cursor is an SSM String parameter, written with Overwrite=true when a
// run stops early and every CheckpointEvery during a run (so a crash loses
// little). A complete pass resets it to the sentinel "-" (CursorStart): SSM
// values cannot be empty, and "-" sorts before every ID, so it means "from
// the beginning" even to a reader that only compares strings. A missing
// parameter also means the beginning. The parameter name must be unique per
// account and region.
//
// AMIs created with an ID below the cursor while a pass is under way are
// checked on the next pass; their creation event covers them meanwhile.
package audit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Defaults of the Auditor's zero values.
const (
	// DefaultAttributeRate is EC2's refill rate for non-mutating calls such
	// as DescribeImageAttribute, per second.
	DefaultAttributeRate = 20
	// Burst is the client-side limiter's burst: a fifth of EC2's bucket of
	// 100, leaving the rest to the event-driven guard and other callers.
	Burst = 20
	// DefaultConcurrency bounds the checks in flight.
	DefaultConcurrency = 8
	// DefaultMargin is how close to the deadline no new check is started:
	// enough for the checks in flight to finish and the cursor to be saved.
	DefaultMargin = 20 * time.Second
	// DefaultCheckpointEvery is how often (clock time) the cursor is saved
	// during a run.
	DefaultCheckpointEvery = time.Minute
	// DefaultCursorName is the SSM parameter used when CursorName is empty.
	DefaultCursorName = "/ami-housekeeper/sharing-audit-cursor"
	// CursorStart is the cursor value that means "from the beginning".
	CursorStart = "-"
	// pageSize is MaxResults for the listing calls.
	pageSize = 1000
	// cursorTimeout bounds one SSM call on the cursor; it runs even when the
	// run's context has ended.
	cursorTimeout = 10 * time.Second
)

// Finding actions that mean a resource's permissions were changed, and so
// were read once more to confirm (see the rate accounting).
var changedActions = map[string]bool{sharing.ActionRevoked: true, sharing.ActionPartial: true}

// Checker is the per-resource engine; *sharing.Enforcer satisfies it.
type Checker interface {
	// CheckListedImage checks an AMI from the listing pass without reading
	// it again.
	CheckListedImage(ctx context.Context, account, region string, img *types.Image, actor string) (sharing.Result, error)
	CheckSnapshot(ctx context.Context, account, region, snapshotID, actor string) (sharing.Result, error)
}

var _ Checker = (*sharing.Enforcer)(nil)

// Auditor sweeps one account and region. Zero values of the optional fields
// take the defaults above.
type Auditor struct {
	// EC2 lists the owned AMIs (DescribeImages, Owners=self, disabled and
	// deprecated included, MaxResults 1000, paginated) and, when
	// Policy.CheckAllSnapshots, the owned snapshots (DescribeSnapshots with
	// an owner-id filter, paginated).
	EC2 awsapi.SharingEC2
	// Guardrail reads (and may enable) block public access; nil: not checked.
	Guardrail awsapi.GuardrailEC2
	Checker   Checker
	// Cursor keeps the position between runs; nil: every run starts at the
	// beginning.
	Cursor awsapi.CursorSSM
	// CursorName is the SSM parameter (DefaultCursorName when empty).
	CursorName string
	Policy     policy.Sharing
	// Clock paces the checks and tells the time against the deadline
	// (clock.Real() when nil).
	Clock clock.Clock
	// AttributeRate is the client-side limit, per second, for the per-AMI
	// reads (see the rate accounting), burst Burst; math.Inf(1) means no
	// limit (tests only).
	AttributeRate float64
	// Concurrency bounds parallel checks.
	Concurrency int
	// Margin: no check starts when the context's deadline is closer.
	Margin time.Duration
	// CheckpointEvery is how often the cursor is saved during a run; a
	// negative value saves it only at the end.
	CheckpointEvery time.Duration
	// Halt, when set, is asked before every check and before turning the
	// guardrail on (see Halt above); the cleanup's executor takes the same
	// function. It must be safe for concurrent use.
	Halt func(ctx context.Context) (reason string, halted bool)
}

// Report is the outcome of one run.
type Report struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	Mode    string `json:"mode"`
	// ImagesChecked and SnapshotsChecked count checks that finished without
	// error; an AMI's checked snapshots are the EBS snapshots the listing
	// showed for it.
	ImagesChecked    int `json:"images_checked"`
	SnapshotsChecked int `json:"snapshots_checked"`
	// Violations counts findings (resources shared beyond the policy);
	// Revoked those whose action is "revoked".
	Violations int               `json:"violations"`
	Revoked    int               `json:"revoked"`
	Findings   []sharing.Finding `json:"findings,omitempty"`
	Guardrail  Guardrail         `json:"guardrail"`
	// Complete is set when the pass reached the end of the list (the pass
	// may have started in an earlier run: see ResumedFrom).
	Complete bool `json:"complete"`
	// ResumeFrom, for an incomplete pass, is the cursor saved for the next
	// run: the last ID fully checked ("-": the beginning).
	ResumeFrom string `json:"resume_from,omitempty"`
	// ResumedFrom is the cursor this run started after ("" or "-": the
	// beginning).
	ResumedFrom string `json:"resumed_from,omitempty"`
	// Halted, when set, is why Auditor.Halt stopped the run (the kill
	// switch): the pass is incomplete and resumes from ResumeFrom. It is
	// not an error.
	Halted string `json:"halted,omitempty"`
	// Errors are what kept the audit from doing its job: a listing, a check
	// or an enforcement call that failed (principals left included), the
	// guardrail that could not be turned on, the cursor that could not be
	// read or saved. Any error fails the invocation (Err), so the function's
	// Errors alarm fires; the report is logged first.
	Errors []string `json:"errors,omitempty"`
	// Unfinished are the checks cut short by the Lambda deadline: expected
	// on a large account, they resume from ResumeFrom and fail nothing.
	Unfinished []string `json:"unfinished,omitempty"`
	// Public are the AMIs DescribeImages says are public, sorted.
	Public []string `json:"public,omitempty"`
	// Exceptions lists every exception tag the checks read, by the AMI or
	// snapshot that carries it, sorted by ID: active ones with their ticket,
	// principals and expiry, expired and ignored ones with why.
	Exceptions []sharing.ExceptionStatus `json:"exceptions,omitempty"`
}

// Err is nil when the run did its job (a run cut short by the deadline
// included), else an error that lists Report.Errors.
func (r Report) Err() error {
	if len(r.Errors) == 0 {
		return nil
	}
	const shown = 3
	msg := strings.Join(r.Errors[:min(len(r.Errors), shown)], "; ")
	if len(r.Errors) > shown {
		msg += fmt.Sprintf("; and %d more", len(r.Errors)-shown)
	}
	return fmt.Errorf("sharing audit of account %s in %s failed: %d error(s): %s", r.Account, r.Region, len(r.Errors), msg)
}

// Guardrail is the account's block-public-access state in the region.
type Guardrail struct {
	// ImageBlockPublicAccess and SnapshotBlockPublicAccess are the states
	// EC2 returned, or "unknown: <error>".
	ImageBlockPublicAccess    string `json:"image_block_public_access"`
	SnapshotBlockPublicAccess string `json:"snapshot_block_public_access"`
	// Enabled is set when this run turned image block public access on.
	Enabled bool `json:"enabled,omitempty"`
}

// item is one resource to check, in the sweep's ID order.
type item struct {
	id       string
	snapshot bool // a stand-alone snapshot; else an AMI
	// snapshots are an AMI's EBS snapshots, from the listing.
	snapshots []string
	// image is the AMI as listed (nil for a snapshot).
	image *types.Image
}

// weight is the number of paced reads a check of it makes.
func (it item) weight() int {
	if it.snapshot {
		return 1
	}
	return 1 + len(it.snapshots)
}

// outcome is what a worker found for one item.
type outcome struct {
	res sharing.Result
	err error
}

// run is the state of one Run.
type run struct {
	a               *Auditor
	account, region string
	actor           string
	clock           clock.Clock
	lim             *rate.Limiter
	margin          time.Duration
	rep             *Report

	haltMu sync.Mutex
	halt   string // why Halt stopped the run; it stays stopped
}

// halted asks Auditor.Halt, unless the run is halted already. Workers call
// it concurrently.
func (r *run) halted(ctx context.Context) bool {
	if r.a.Halt == nil {
		return false
	}
	r.haltMu.Lock()
	defer r.haltMu.Unlock()
	if r.halt != "" {
		return true
	}
	reason, halted := r.a.Halt(ctx)
	if !halted {
		return false
	}
	if reason == "" {
		reason = "halted"
	}
	r.halt = reason
	return true
}

// stopped reports whether the run was halted, without asking again.
func (r *run) stopped() bool {
	r.haltMu.Lock()
	defer r.haltMu.Unlock()
	return r.halt != ""
}

// Run sweeps the account in region. It always returns the whole report:
// what went wrong is in Report.Errors (Report.Err turns it into the
// invocation's error), and an interrupted or failed pass resumes from
// Report.ResumeFrom next time. actor is passed to the checker ("" for the
// scheduled audit).
func (a *Auditor) Run(ctx context.Context, account, region, actor string) Report {
	rep := &Report{Account: account, Region: region, Mode: string(a.Policy.Mode)}
	r := a.newRun(account, region, actor, rep)
	r.pass(ctx)
	rep.Halted = r.halt // the workers have ended
	return *rep
}

// pass is one run's work; Run reports it.
func (r *run) pass(ctx context.Context) {
	a, rep := r.a, r.rep
	r.guardrail(ctx)
	if a.EC2 == nil || a.Checker == nil {
		rep.Errors = append(rep.Errors, "audit: no EC2 client or no checker")
		return
	}
	prev := r.readCursor(ctx)
	rep.ResumedFrom = prev
	if r.halted(ctx) {
		rep.ResumeFrom = prev // nothing checked: the cursor stays
		return
	}

	items, listed, err := r.list(ctx)
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		if len(items) == 0 {
			// Nothing listed: keep the cursor as it was.
			rep.ResumeFrom = prev
			return
		}
	}
	start := sort.Search(len(items), func(i int) bool { return items[i].id > prev })
	results := r.sweep(ctx, items, start, prev)
	r.collect(items, start, results)

	next := start
	for next < len(items) && results[next].finished() {
		next++
	}
	if listed && next == len(items) && !r.stopped() {
		rep.Complete = true
		r.writeCursor(ctx, CursorStart)
		return
	}
	rep.ResumeFrom = cursorAt(items, start, next, prev)
	r.writeCursor(ctx, rep.ResumeFrom)
}

func (a *Auditor) newRun(account, region, actor string, rep *Report) *run {
	r := &run{a: a, account: account, region: region, actor: actor, clock: a.Clock, margin: a.Margin, rep: rep}
	if r.clock == nil {
		r.clock = clock.Real()
	}
	if r.margin <= 0 {
		r.margin = DefaultMargin
	}
	perSec := a.AttributeRate
	switch {
	case math.IsInf(perSec, 1):
		r.lim = rate.NewLimiter(rate.Inf, Burst)
	case perSec <= 0:
		r.lim = rate.NewLimiter(DefaultAttributeRate, Burst)
	default:
		r.lim = rate.NewLimiter(rate.Limit(perSec), Burst)
	}
	return r
}

// cursorAt is the cursor for a run that started at index start (after
// prev) and finished everything before next.
func cursorAt(items []item, start, next int, prev string) string {
	if next <= start {
		return prev
	}
	return items[next-1].id
}

// slot is one item's outcome; started is false for items never dispatched.
type slot struct {
	started bool
	outcome
}

// finished tells whether the item counts as done for the cursor: it was
// checked, or its check failed for a reason other than the run ending.
func (s slot) finished() bool {
	return s.started && !isOutOfTime(s.err)
}

func isOutOfTime(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// progress tracks the contiguous prefix of finished items, for checkpoints.
type progress struct {
	mu   sync.Mutex
	done []bool
	next int
}

func (p *progress) finish(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done[i] = true
	for p.next < len(p.done) && p.done[p.next] {
		p.next++
	}
}

func (p *progress) prefix() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next
}

// sweep dispatches items[start:] to the workers, paced, until the end or
// until the deadline is near, and waits for the checks in flight.
func (r *run) sweep(ctx context.Context, items []item, start int, prev string) []slot {
	results := make([]slot, len(items))
	prog := &progress{done: make([]bool, len(items)), next: start}
	workers := r.a.Concurrency
	if workers <= 0 {
		workers = DefaultConcurrency
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				if r.halted(ctx) {
					continue // not started: holds the cursor back
				}
				res, err := r.check(ctx, items[i])
				results[i] = slot{started: true, outcome: outcome{res, err}}
				if !isOutOfTime(err) {
					prog.finish(i)
				}
				r.chargeConfirmingReads(res)
			}
		})
	}

	every := r.a.CheckpointEvery
	if every == 0 {
		every = DefaultCheckpointEvery
	}
	lastSave, saved := r.clock.Now(), prev
	for i := start; i < len(items); i++ {
		if r.stopped() || !r.pace(ctx, items[i].weight()) {
			break
		}
		jobs <- i
		if every > 0 && r.clock.Now().Sub(lastSave) >= every {
			lastSave = r.clock.Now()
			if c := cursorAt(items, start, prog.prefix(), prev); c != saved {
				r.writeCursor(ctx, c)
				saved = c
			}
		}
	}
	close(jobs)
	wg.Wait()
	return results
}

func (r *run) check(ctx context.Context, it item) (sharing.Result, error) {
	if it.snapshot {
		return r.a.Checker.CheckSnapshot(ctx, r.account, r.region, it.id, r.actor)
	}
	return r.a.Checker.CheckListedImage(ctx, r.account, r.region, it.image, r.actor)
}

// pace reserves n reads and sleeps until they are due. It reports false, and
// reserves nothing, when the run must stop: the context ended, or the wait
// would reach into the margin before the deadline.
func (r *run) pace(ctx context.Context, n int) bool {
	if r.outOfTime(ctx, 0) {
		return false
	}
	now := r.clock.Now()
	var last *rate.Reservation
	var all []*rate.Reservation
	for left := n; left > 0; left -= Burst {
		last = r.lim.ReserveN(now, min(left, Burst))
		all = append(all, last)
	}
	delay := last.DelayFrom(now)
	if r.outOfTime(ctx, delay) {
		for _, res := range all {
			res.CancelAt(now)
		}
		return false
	}
	return r.clock.Sleep(ctx, delay) == nil
}

// chargeConfirmingReads takes from the limiter, without waiting, the
// re-reads a check made after changing permissions.
func (r *run) chargeConfirmingReads(res sharing.Result) {
	n := 0
	for _, f := range res.Findings {
		if changedActions[f.Action] {
			n++
		}
	}
	now := r.clock.Now()
	for ; n > 0; n -= Burst {
		r.lim.ReserveN(now, min(n, Burst))
	}
}

// outOfTime tells whether a check starting after wait would start within the
// margin before ctx's deadline (or ctx has ended).
func (r *run) outOfTime(ctx context.Context, wait time.Duration) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && dl.Sub(r.clock.Now().Add(wait)) < r.margin
}

// collect fills the report from the outcomes, in ID order.
func (r *run) collect(items []item, start int, results []slot) {
	rep := r.rep
	exceptions := map[string]sharing.ExceptionStatus{}
	for i := start; i < len(items); i++ {
		s := results[i]
		if !s.started {
			continue
		}
		it := items[i]
		// What a failed check found and did is reported too: a partial
		// revocation removed some principals and names the ones left.
		for _, f := range s.res.Findings {
			rep.Findings = append(rep.Findings, f)
			rep.Violations++
			if f.Action == sharing.ActionRevoked {
				rep.Revoked++
			}
		}
		for _, x := range s.res.Exceptions {
			exceptions[x.ResourceID] = x
		}
		switch {
		case isOutOfTime(s.err):
			rep.Unfinished = append(rep.Unfinished, fmt.Sprintf("not finished (out of time) %s: %v", it.id, s.err))
			continue
		case s.err != nil:
			rep.Errors = append(rep.Errors, fmt.Sprintf("checking %s: %v", it.id, s.err))
			continue
		}
		if it.snapshot {
			rep.SnapshotsChecked++
		} else {
			rep.ImagesChecked++
			rep.SnapshotsChecked += len(it.snapshots)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(exceptions)) {
		rep.Exceptions = append(rep.Exceptions, exceptions[id])
	}
}
