package sweep_test

// Crash tests: the cleanup killed at every step, then run again.
//
// A fake.Crash wraps the executor's EC2 client. It lets the first N
// mutating calls through and then "kills the process": call N+1 and every
// later one fail and the sweep's context is cancelled, as when the Lambda
// runtime ends an invocation. For every N from 0 to the number of mutating
// calls of a crash-free run, on fresh state each time, the schedule of
// sweeps is run with the crash at N, the interrupted sweep and the rest of
// the schedule are run again, and one more sweep must find nothing to do.
// The final state must equal the crash-free run's, and nothing the
// crash-free run keeps may disappear at any point.
//
// Two worlds:
//   - moto (TestCrashEveryStepMoto*): the real Sweeper, collector included,
//     through the SDK. moto lacks DescribeImageReferences (500), so the
//     second opinion is disabled; moto's RegisterImage ignores block device
//     mappings, so no AMI can share a snapshot with another, and CreateImage
//     gives one snapshot per AMI; moto ignores DeleteAssociatedSnapshots, so
//     each snapshot goes by its own DeleteSnapshot; moto answers 500 to
//     EnableImageDeprecation, so the lifecycle stages are off there.
//   - the stateful fake (TestCrashEveryStepFake*), for what moto cannot
//     show: the deprecate and disable stages and their undoing, an AMI with
//     two snapshots, a snapshot shared by a removed and a kept AMI, and
//     DeleteAssociatedSnapshots as EC2 applies it. There the planner and the
//     executor run directly on an inventory read from the fake.

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

const (
	crashAccount = "123456789012"
	crashRegion  = "us-east-1"
)

// state is a world's state in logical names: "ami app-005" or
// "snap app-005" -> its state and every ami-housekeeper: tag, with AMI IDs
// in tag values replaced by names, so runs on fresh moto state compare.
type state map[string]string

func (s state) has(key string) bool { _, ok := s[key]; return ok }

// diff lists the differences, for a failure message.
func (s state) diff(want state) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got, ok := s[k]; !ok {
			out = append(out, fmt.Sprintf("  %s: missing (want %q)", k, want[k]))
		} else if got != want[k] {
			out = append(out, fmt.Sprintf("  %s: %q, want %q", k, got, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s)) {
		if !want.has(k) {
			out = append(out, fmt.Sprintf("  %s: left over (%q)", k, s[k]))
		}
	}
	return strings.Join(out, "\n")
}

// render is the value of a state entry. A sealed record shows as its value
// and "+sealed" (the seal itself differs between runs: it binds IDs).
func render(status string, tags map[string]string, name func(string) string) string {
	var kv []string
	for k, v := range tags {
		if strings.HasPrefix(k, "ami-housekeeper:") {
			shown := name(v)
			if m := sealedValue.FindStringSubmatch(v); m != nil {
				shown = name(m[1]) + "+sealed"
			}
			kv = append(kv, strings.TrimPrefix(k, "ami-housekeeper:")+"="+shown)
		}
	}
	sort.Strings(kv)
	return strings.TrimSpace(status + " " + strings.Join(kv, " "))
}

// sealedValue matches a value sealed by pkg/records: value "/" 32 hex digits.
var sealedValue = regexp.MustCompile(`^(.*)/[0-9a-f]{32}$`)

func tagsOf(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// --- moto ---

// motoWorld is one seeding of moto: the cleanup fleet's AMIs (seeded with
// old dates by MOTO_AMIS_PATH, none of which the policy below touches: they
// have no rule) and the app family made by CreateImage, whose snapshots
// carry EC2's "Created by CreateImage(...) for ami-..." description, which
// the planner requires before it finishes a deletion.
type motoWorld struct {
	cfg   aws.Config
	ec2   *ec2.Client
	names map[string]string // resource ID -> logical name
	ids   map[string]string // AMI name -> ID
}

// The app family: 001 protected, 002 used by a stopped instance, 003 by a
// launch template, 004 by an SSM parameter, 005-007 unused (they go), 008
// the newest (kept by keep_newest: 1).
var (
	appStale = []string{"app-005", "app-006", "app-007"}
	appKept  = []string{"app-001", "app-002", "app-003", "app-004", "app-008"}
)

func crashPolicy(t *testing.T, graceDays int) policy.Retention {
	t.Helper()
	p, err := policy.Parse([]byte(fmt.Sprintf(`version: 1
retention:
  mode: enforce
  grace_days: %d
  second_opinion: disabled
  rules:
    - name: app
      match: {name: "app-*"}
      keep_newest: 1
      min_age_days: 7
`, graceDays)), "crash test")
	if err != nil {
		t.Fatal(err)
	}
	return p.Retention
}

func seedMoto(t *testing.T, m *emulator.Moto) *motoWorld {
	t.Helper()
	ctx := context.Background()
	if err := m.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := m.Config(ctx, crashRegion)
	if err != nil {
		t.Fatal(err)
	}
	w := &motoWorld{cfg: cfg, ec2: ec2.NewFromConfig(cfg), names: map[string]string{}, ids: map[string]string{}}
	fleetSnaps, err := emulator.UseFleet(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for ami, snap := range fleetSnaps {
		w.names[ami], w.names[snap] = "fleet "+ami, "fleet "+ami
	}
	s := emulator.NewFleetSeeder(cfg)
	base, err := s.Instance(ctx, emulator.FleetAMINewest)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	snapOf := map[string]string{}
	for i := 1; i <= 8; i++ {
		name := fmt.Sprintf("app-%03d", i)
		var tags []string
		if i == 1 {
			tags = []string{"ami-housekeeper:keep", "golden"}
		}
		id, err := s.CreateImage(ctx, base, name, tags...)
		must(err)
		snaps, err := s.Snapshots(ctx, id)
		must(err)
		if len(snaps) != 1 {
			t.Fatalf("moto gave %s %d snapshots, this test expects 1", name, len(snaps))
		}
		w.ids[name], w.names[id], w.names[snaps[0]], snapOf[name] = id, name, name, snaps[0]
	}
	user, err := s.Instance(ctx, w.ids["app-002"])
	must(err)
	must(s.StopInstance(ctx, user))
	_, err = s.LaunchTemplate(ctx, "app", w.ids["app-003"])
	must(err)
	must(s.Parameter(ctx, "/app/ami", w.ids["app-004"], "aws:ec2:image"))

	tag := func(id, key, value string) {
		t.Helper()
		_, err := w.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id},
			Tags: []types.Tag{{Key: aws.String(key), Value: aws.String(value)}}})
		must(err)
	}
	// Left by an earlier run whose deregistration of app-003 did not
	// happen (sealed, as the cleanup writes it): the planner clears it (one
	// DeleteTags in every run below).
	tag(snapOf["app-003"], cleanup.TagDeleteWith, crashKey.Seal(cleanup.TagDeleteWith, snapOf["app-003"], w.ids["app-003"]))
	// Forged by someone with ec2:CreateTags: a production backup, and the
	// snapshot of a kept AMI, each tagged as if it went with an AMI that
	// this very run deregisters. Neither may ever be deleted.
	vol, err := w.ec2.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(crashRegion + "a"), Size: aws.Int32(500)})
	must(err)
	prod, err := w.ec2.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId, Description: aws.String("prod database nightly backup")})
	must(err)
	w.names[aws.ToString(prod.SnapshotId)] = "prod-backup"
	tag(aws.ToString(prod.SnapshotId), cleanup.TagDeleteWith, w.ids["app-005"])
	tag(snapOf["app-004"], cleanup.TagDeleteWith, w.ids["app-006"])
	return w
}

func (w *motoWorld) name(id string) string {
	if n, ok := w.names[id]; ok {
		return n
	}
	return id
}

func (w *motoWorld) state(t *testing.T) state {
	t.Helper()
	ctx := context.Background()
	s := state{}
	imgs, err := w.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs.Images {
		s["ami "+w.name(aws.ToString(img.ImageId))] = render(string(img.State), tagsOf(img.Tags), w.name)
	}
	snaps, err := w.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{
		Filters: []types.Filter{{Name: aws.String("owner-id"), Values: []string{crashAccount}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range snaps.Snapshots {
		s["snap "+w.name(aws.ToString(sn.SnapshotId))] = render("", tagsOf(sn.Tags), w.name)
	}
	return s
}

// sweep runs one sweep planned at now, its mutations through cr.
func (w *motoWorld) sweep(ctx context.Context, t *testing.T, p policy.Retention, now time.Time, cr *fake.Crash) *sweep.Report {
	t.Helper()
	return w.run(ctx, t, p, func() time.Time { return now }, cr, nil)
}

// run is one sweep over the moto world: actions through exec (moto itself
// when nil), image usage reports from usage (not read when nil).
func (w *motoWorld) run(ctx context.Context, t *testing.T, p policy.Retention, now func() time.Time, exec awsapi.CleanupEC2, usage awsapi.ImageUsageEC2) *sweep.Report {
	t.Helper()
	cl := ec2.NewFromConfig(w.cfg)
	if exec == nil {
		exec = cl
	}
	s := &sweep.Sweeper{
		Collector: &collect.Collector{EC2: cl, AutoScaling: autoscaling.NewFromConfig(w.cfg), SSM: ssm.NewFromConfig(w.cfg), References: cl, Usage: usage},
		// A simulated clock: the executor's backoff before retrying a call
		// whose answer was lost passes at once (the wall clock would add a
		// second per lost answer).
		Executor: &execute.Executor{EC2: exec, Clock: fake.NewClock(time.Now())},
		Now:      now,
		Records:  crashKey,
	}
	rep := s.Run(ctx, crashAccount, crashRegion, p)
	if len(rep.Incomplete) > 0 || rep.Plan.Blocked != "" {
		t.Fatalf("inventory incomplete, the test proves nothing: %v %s", rep.Incomplete, rep.Plan.Blocked)
	}
	return rep
}

// mustStay is what the crash-free run keeps and no run may ever remove.
func (w *motoWorld) mustStay() []string {
	var out []string
	for _, n := range appKept {
		out = append(out, "ami "+n, "snap "+n)
	}
	for _, id := range emulator.FleetAMIs {
		out = append(out, "ami fleet "+id, "snap fleet "+id)
	}
	return append(out, "snap prod-backup")
}

// schedule is the sweeps of one scenario, by their planning clock.
type schedule []time.Time

// crashRun is the outcome of one scenario run with a crash.
type crashRun struct {
	calls   []fake.CrashCall // the crashed process's mutating calls
	crashed int              // index of the sweep the crash hit; -1 if none
	atCrash state            // the world right after the crash
	// after holds the world once each step of the schedule completed
	// (for the crashed one: after its restart).
	after []state
	final state
}

// runner abstracts the two worlds for runScenario.
type runner interface {
	// sweep runs step i of the schedule with mutations through cr.
	sweep(ctx context.Context, t *testing.T, i int, cr *fake.Crash)
	state(t *testing.T) state
	mustStay() []string
}

// runScenario runs the schedule with a crash after `after` mutating calls
// (negative: none), restarts the interrupted sweep and the rest, then runs
// one more sweep, which must make no call. check runs after every sweep.
func runScenario(t *testing.T, r runner, steps int, after int, mode fake.CrashMode, check func(when string, s state)) crashRun {
	t.Helper()
	return runScenarioWith(t, r, steps, &fake.Crash{After: after, Mode: mode}, check)
}

// runScenarioWith is runScenario with the crash configured by the caller
// (its Kill is set here).
func runScenarioWith(t *testing.T, r runner, steps int, cr *fake.Crash, check func(when string, s state)) crashRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cr.Kill = cancel
	after, mode := cr.After, cr.Mode
	out := crashRun{crashed: -1}
	next := steps
	for i := range steps {
		r.sweep(ctx, t, i, cr)
		s := r.state(t)
		check(fmt.Sprintf("sweep %d (crash at %d, %s)", i, after, mode), s)
		if cr.Killed() {
			out.crashed, next = i, i
			break
		}
		out.after = append(out.after, s)
	}
	out.calls = cr.Calls()
	out.atCrash = r.state(t)
	for i := next; i < steps; i++ {
		r.sweep(context.Background(), t, i, &fake.Crash{After: -1})
		s := r.state(t)
		check(fmt.Sprintf("restarted sweep %d (crash at %d, %s)", i, after, mode), s)
		out.after = append(out.after, s)
	}
	last := &fake.Crash{After: -1}
	r.sweep(context.Background(), t, steps-1, last)
	if n := last.Count(); n > 0 {
		t.Errorf("crash at %d (%s): the sweep after the schedule still made %d mutating calls: %v\ncrashed run: %v", after, mode, n, last.Calls(), out.calls)
	}
	out.final = r.state(t)
	check("final", out.final)
	return out
}

// motoRunner binds a motoWorld to a schedule and a policy.
type motoRunner struct {
	w     *motoWorld
	p     policy.Retention
	steps schedule
}

func (r motoRunner) sweep(ctx context.Context, t *testing.T, i int, cr *fake.Crash) {
	cr.EC2 = ec2.NewFromConfig(r.w.cfg)
	r.w.sweep(ctx, t, r.p, r.steps[i], cr)
}
func (r motoRunner) state(t *testing.T) state { return r.w.state(t) }
func (r motoRunner) mustStay() []string       { return r.w.mustStay() }

func checkSafety(t *testing.T) func(runner) func(string, state) {
	return func(r runner) func(string, state) { return safety(t, r) }
}

// safety returns the check every state must pass: nothing the crash-free
// run keeps is missing.
func safety(t *testing.T, r runner) func(string, state) {
	stay := r.mustStay()
	return func(when string, s state) {
		t.Helper()
		for _, k := range stay {
			if !s.has(k) {
				t.Errorf("%s: %s was removed; the crash-free run keeps it", when, k)
			}
		}
	}
}

// stagesResumeAfterCrash says whether a sweep applies a recorded stage
// that a crash kept from being applied: a crash after the mark's CreateTags
// (mark and stage records, written ahead) and before EnableImageDeprecation
// or DisableImage leaves the AMI marked and recorded but neither deprecated
// nor disabled. The planner marks such an AMI again (same date), so the next
// sweep applies the stage; with false, the test expects the old gap.
const stagesResumeAfterCrash = true

// crashKey seals the cleanup's records in these tests, as the key derived
// from the deployment's KMS key does in AWS.
var crashKey = records.NewKey([]byte("ami-housekeeper crash test records key"))

// stageNotResumed reports whether a difference between a crashed run's
// state and the crash-free run's, after the same step, is exactly the gap
// above: same tags, the records of a stage present, the stage missing.
func stageNotResumed(got, want string) bool {
	split := func(v string) (status, tags []string) {
		for _, f := range strings.Fields(v) {
			if strings.Contains(f, "=") {
				tags = append(tags, f)
			} else {
				status = append(status, f)
			}
		}
		return status, tags
	}
	gs, gt := split(got)
	ws, wt := split(want)
	if !slices.Equal(gt, wt) || slices.Equal(gs, ws) {
		return false
	}
	for _, st := range ws {
		if slices.Contains(gs, st) || st == "available" {
			continue
		}
		// A stage record's value is its mark's date.
		record := map[string]string{"disabled": "disabled-by-cleanup=", "deprecated": "deprecated-by-cleanup="}[st]
		if record == "" || !slices.ContainsFunc(gt, func(tag string) bool { return strings.HasPrefix(tag, record) }) {
			return false
		}
	}
	return true
}

// crashEveryStep runs the scenario crash-free, then with the crash at every
// N in each mode, on fresh state each time. After every step of the
// schedule, and at the end, the state must equal the crash-free run's
// (but for the known gap above, which is logged and counted). check runs
// on every state. It returns the crash-free run and the crashed runs.
func crashEveryStep(t *testing.T, fresh func() runner, steps int, check func(runner) func(string, state), modes ...fake.CrashMode) (ref crashRun, runs []crashRun, gaps int) {
	t.Helper()
	r := fresh()
	ref = runScenario(t, r, steps, -1, fake.CrashKill, check(r))
	total := len(ref.calls)
	if total == 0 {
		t.Fatal("the crash-free run made no mutating call: nothing to crash")
	}
	t.Logf("crash-free run: %d mutating calls:\n  %s", total, callList(ref.calls))
	for _, mode := range modes {
		first := 0
		if mode == fake.CrashLoseAnswer {
			first = 1
		}
		for n := first; n <= total; n++ {
			r := fresh()
			run := runScenario(t, r, steps, n, mode, check(r))
			if mode != fake.CrashLoseAnswer && n < total && run.crashed < 0 {
				t.Errorf("crash at %d (%s) never happened: %v", n, mode, run.calls)
			}
			if d := run.final.diff(ref.final); d != "" {
				t.Errorf("crash at %d (%s): final state differs from the crash-free run:\n%s\ncrashed run's calls:\n  %s", n, mode, d, callList(run.calls))
			}
			for i := range run.after[:len(run.after)-1] {
				got, want := run.after[i], ref.after[i]
				for _, k := range slices.Sorted(maps.Keys(want)) {
					if got[k] == want[k] {
						continue
					}
					if !stagesResumeAfterCrash && got.has(k) && stageNotResumed(got[k], want[k]) {
						gaps++
						t.Logf("known gap, crash at %d (%s): after step %d %s is %q, the crash-free run has %q; calls:\n  %s", n, mode, i, k, got[k], want[k], callList(run.calls))
						continue
					}
					t.Errorf("crash at %d (%s): after step %d %s is %q, the crash-free run has %q; calls:\n  %s", n, mode, i, k, got[k], want[k], callList(run.calls))
				}
				for k := range got {
					if !want.has(k) {
						t.Errorf("crash at %d (%s): after step %d %s left over: %q", n, mode, i, k, got[k])
					}
				}
			}
			runs = append(runs, run)
		}
	}
	if !stagesResumeAfterCrash && gaps > 0 {
		t.Logf("known gap: %d step states lacked a recorded stage (see stagesResumeAfterCrash)", gaps)
	}
	return ref, runs, gaps
}

func callList(calls []fake.CrashCall) string {
	var s []string
	for _, c := range calls {
		s = append(s, c.String())
	}
	return strings.Join(s, "\n  ")
}

// moto is one server for the moto crash tests, reset per scenario run
// (seeded with the cleanup fleet on every reset).
var moto struct {
	once sync.Once
	m    *emulator.Moto
	err  error
}

func fleetMoto(t *testing.T) *emulator.Moto {
	t.Helper()
	moto.once.Do(func() { moto.m, moto.err = emulator.StartFleetMoto(context.Background()) })
	if moto.err != nil {
		t.Fatalf("moto server: %v", moto.err)
	}
	return moto.m
}

// planClock is the sweeps' planning clock: a month after the AMIs were
// created (CreateImage stamps "now"), so the app family is past
// min_age_days.
func planClock() time.Time { return time.Now().UTC().AddDate(0, 1, 0) }

// TestCrashEveryStepMoto: grace 0, so one sweep deregisters app-005..007
// (delete-with tag, DeregisterImage, DeleteSnapshot each) and clears the
// stale delete-with of app-003. The crash hits every one of those calls.
func TestCrashEveryStepMoto(t *testing.T) {
	m := fleetMoto(t)
	p := crashPolicy(t, 0)
	steps := schedule{planClock()}
	var w *motoWorld
	fresh := func() runner { w = seedMoto(t, m); return motoRunner{w: w, p: p, steps: steps} }
	// CrashLanded is upstream the same as CrashKill at the same N; it runs
	// on the fake below, so moto's time goes to kills and lost answers
	// (whose retries meet moto's real error codes: InvalidAMIID.Unavailable
	// for a second DeregisterImage, InvalidSnapshot.NotFound for a second
	// DeleteSnapshot).
	ref, runs, gaps := crashEveryStep(t, fresh, len(steps), checkSafety(t), fake.CrashKill, fake.CrashLoseAnswer)
	if gaps > 0 {
		t.Errorf("%d states lacked a recorded stage, with the stages off", gaps)
	}
	want := ref.final

	for _, n := range appStale {
		if want.has("ami "+n) || want.has("snap "+n) {
			t.Errorf("the crash-free run did not remove %s and its snapshot: %v", n, want)
		}
	}
	for _, k := range []string{"snap app-003", "snap app-004", "snap prod-backup"} {
		t.Logf("left after the crash-free run: %s: %q", k, want[k])
	}
	if strings.Contains(want["snap app-003"], "delete-with") {
		t.Errorf("the stale delete-with on app-003's snapshot was not cleared: %q", want["snap app-003"])
	}
	// The crash must have hit each step of a removal: crash-time states
	// prove it, whatever order the pipeline's lanes interleaved in.
	seen := map[string]int{}
	for _, run := range runs {
		if run.crashed < 0 {
			continue
		}
		s := run.atCrash
		gone := 0
		for _, n := range appStale {
			ami, snap := s.has("ami "+n), s.has("snap "+n)
			switch {
			case ami && strings.Contains(s["snap "+n], "delete-with="+n):
				seen["snapshots tagged delete-with, AMI still registered"]++
			case !ami && snap:
				seen["AMI deregistered, its snapshot not yet deleted"]++
			}
			if !snap {
				gone++
			}
		}
		if gone > 0 && gone < len(appStale) {
			seen["between two DeleteSnapshot calls"]++
		}
		if strings.Contains(s["snap app-003"], "delete-with") && gone > 0 {
			seen["stale delete-with not yet cleared while removals went on"]++
		}
	}
	t.Logf("crash points covered: %v", seen)
	for _, k := range []string{"snapshots tagged delete-with, AMI still registered", "AMI deregistered, its snapshot not yet deleted", "between two DeleteSnapshot calls"} {
		if seen[k] == 0 {
			t.Errorf("no crash hit %q", k)
		}
	}
}

// TestCrashEveryStepMotoMarks: grace 3 days. The first sweep marks
// app-005..007 (one CreateTags each, mark and stage records together) and
// clears app-003's stale tag; the second, four days later, deregisters. The
// crash hits every call of both. The stages are off: moto answers 500 to
// EnableImageDeprecation, and its DisableImage leaves launch permissions;
// the crash between a mark and its stage is on the fake below. What moto
// can show here: a crash between marks leaves some marked, the restart
// marks the rest with the same date, and the removal follows on schedule.
func TestCrashEveryStepMotoMarks(t *testing.T) {
	m := fleetMoto(t)
	p := crashPolicy(t, 3)
	day0 := planClock()
	steps := schedule{day0, day0.AddDate(0, 0, 4)}
	fresh := func() runner { return motoRunner{w: seedMoto(t, m), p: p, steps: steps} }
	ref, runs, gaps := crashEveryStep(t, fresh, len(steps), checkSafety(t), fake.CrashKill)
	if gaps > 0 {
		t.Errorf("%d states lacked a recorded stage, with the stages off", gaps)
	}
	want := ref.final
	for _, n := range appStale {
		if want.has("ami " + n) {
			t.Errorf("the crash-free run did not remove %s", n)
		}
	}
	partly := 0
	for _, run := range runs {
		if run.crashed != 0 {
			continue
		}
		marked := 0
		for _, n := range appStale {
			if strings.Contains(run.atCrash["ami "+n], "delete-after=") {
				marked++
			}
		}
		if marked > 0 && marked < len(appStale) {
			partly++
		}
	}
	if partly == 0 {
		t.Error("no crash hit between two marks")
	}
}

// --- the stateful fake ---

// fakeWorld is what moto cannot model, in pkg/fake's EC2:
//
//	app-001 protected; its snapshot snap-0shared is also app-002's
//	app-002 stale: snap-0a02 and snap-0shared (kept: app-001 uses it)
//	app-003 stale: two snapshots, snap-0a03a and snap-0a03b
//	app-004 stale on day 0, in use by an instance from day 1 (unmarked)
//	app-005 in use by an instance; app-006 the newest
//	snap-0prod a 500 GiB production backup tagged delete-with=ami-0a03
//
// The schedule: day 0 marks 002-004 with both stages (deprecate,
// disable), day 1 unmarks 004 (both stages undone), day 3 deregisters 002
// and 003. The planner and the executor run on an inventory read from the
// fake; a Rechecker reads the AMIs back from it, like the sweep's.
type fakeWorld struct {
	f     *fake.EC2
	p     policy.Retention
	day0  time.Time
	steps []fakeStep
}

type fakeStep struct {
	now  time.Time
	refs map[string][]cleanup.Reference
}

const fakeBase = "i-0base"

func newFakeWorld(t *testing.T, mimicMoto bool) *fakeWorld {
	t.Helper()
	p := crashPolicy(t, 2)
	p.Stages = policy.Stages{Deprecate: true, Disable: true}
	day0 := time.Now().UTC()
	f := fake.NewEC2()
	// mimicMoto: DeregisterImage ignores DeleteAssociatedSnapshots, so
	// app-003's two snapshots go by two DeleteSnapshot calls.
	f.IgnoreDeleteAssociatedSnapshots = mimicMoto
	snap := func(id, desc string, gib int32, tags ...types.Tag) {
		f.Snapshots[id] = &types.Snapshot{SnapshotId: aws.String(id), OwnerId: aws.String(crashAccount), VolumeSize: aws.Int32(gib),
			Description: aws.String(desc), StartTime: aws.Time(day0.AddDate(0, 0, -60)), State: types.SnapshotStateCompleted, Tags: tags}
	}
	image := func(n int, tags []types.Tag, snaps ...string) {
		id := fmt.Sprintf("ami-0a%02d", n)
		img := &types.Image{ImageId: aws.String(id), Name: aws.String(fmt.Sprintf("app-%03d", n)), OwnerId: aws.String(crashAccount),
			State: types.ImageStateAvailable, Public: aws.Bool(false), Tags: tags,
			CreationDate: aws.String(day0.AddDate(0, 0, -60).Add(time.Duration(n) * time.Hour).Format("2006-01-02T15:04:05.000Z"))}
		for _, s := range snaps {
			if _, ok := f.Snapshots[s]; !ok {
				snap(s, "Created by CreateImage("+fakeBase+") for "+id, 8)
			}
			img.BlockDeviceMappings = append(img.BlockDeviceMappings, types.BlockDeviceMapping{
				DeviceName: aws.String(fmt.Sprintf("/dev/xvd%c", 'a'+len(img.BlockDeviceMappings))),
				Ebs:        &types.EbsBlockDevice{SnapshotId: aws.String(s), VolumeSize: aws.Int32(8)}})
		}
		f.Images[id] = img
	}
	keep := types.Tag{Key: aws.String("ami-housekeeper:keep"), Value: aws.String("golden")}
	image(1, []types.Tag{keep}, "snap-0a01", "snap-0shared")
	image(2, nil, "snap-0a02", "snap-0shared")
	image(3, nil, "snap-0a03a", "snap-0a03b")
	image(4, nil, "snap-0a04")
	image(5, nil, "snap-0a05")
	image(6, nil, "snap-0a06")
	snap("snap-0prod", "prod database nightly backup", 500,
		types.Tag{Key: aws.String(cleanup.TagDeleteWith), Value: aws.String("ami-0a03")})

	user := map[string][]cleanup.Reference{"ami-0a05": {{Kind: cleanup.RefInstance, ID: "i-0user", Detail: "running"}}}
	later := maps.Clone(user)
	later["ami-0a04"] = []cleanup.Reference{{Kind: cleanup.RefInstance, ID: "i-0late", Detail: "running"}}
	return &fakeWorld{f: f, p: p, day0: day0, steps: []fakeStep{
		{day0, user}, {day0.AddDate(0, 0, 1), later}, {day0.AddDate(0, 0, 3), later},
	}}
}

func (w *fakeWorld) mustStay() []string {
	return []string{"ami app-001", "ami app-004", "ami app-005", "ami app-006",
		"snap snap-0a01", "snap snap-0shared", "snap snap-0a04", "snap snap-0a05", "snap snap-0a06", "snap snap-0prod"}
}

func (w *fakeWorld) name(id string) string {
	if img, ok := w.f.Images[id]; ok {
		return aws.ToString(img.Name)
	}
	if n, err := fmt.Sscanf(id, "ami-0a%d", new(int)); err == nil && n == 1 {
		return "app-0" + strings.TrimPrefix(id, "ami-0a")
	}
	return id
}

// state reads the fake between sweeps (no call is in flight then: Apply
// returns only once all its lanes have).
func (w *fakeWorld) state(*testing.T) state {
	s := state{}
	for _, img := range w.f.Images {
		status := string(img.State)
		if img.DeprecationTime != nil {
			status += " deprecated"
		}
		s["ami "+aws.ToString(img.Name)] = render(status, tagsOf(img.Tags), w.name)
	}
	for id, sn := range w.f.Snapshots {
		s["snap "+id] = render("", tagsOf(sn.Tags), w.name)
	}
	return s
}

func (w *fakeWorld) inventory(refs map[string][]cleanup.Reference) *cleanup.Inventory {
	inv := &cleanup.Inventory{Account: crashAccount, Region: crashRegion, References: map[string][]cleanup.Reference{}, Records: crashKey}
	for _, id := range slices.Sorted(maps.Keys(w.f.Images)) {
		inv.Images = append(inv.Images, fakeImage(w.f.Images[id]))
		if r := refs[id]; r != nil {
			inv.References[id] = r
		}
	}
	for _, id := range slices.Sorted(maps.Keys(w.f.Snapshots)) {
		sn := w.f.Snapshots[id]
		inv.Snapshots = append(inv.Snapshots, cleanup.Snapshot{ID: id, SizeGiB: int64(aws.ToInt32(sn.VolumeSize)),
			Description: aws.ToString(sn.Description), StartTime: aws.ToTime(sn.StartTime), State: string(sn.State), Tags: tagsOf(sn.Tags)})
	}
	return inv
}

func fakeImage(img *types.Image) cleanup.Image {
	ci := cleanup.Image{ID: aws.ToString(img.ImageId), Name: aws.ToString(img.Name), OwnerID: aws.ToString(img.OwnerId),
		State: string(img.State), Tags: tagsOf(img.Tags), SharesKnown: true}
	ci.CreationDate, _ = time.Parse(time.RFC3339, aws.ToString(img.CreationDate))
	if img.DeprecationTime != nil {
		ci.DeprecationTime, _ = time.Parse(time.RFC3339, *img.DeprecationTime)
	}
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs != nil {
			ci.SnapshotIDs = append(ci.SnapshotIDs, aws.ToString(m.Ebs.SnapshotId))
			ci.SizeGiB += int64(aws.ToInt32(m.Ebs.VolumeSize))
		}
	}
	return ci
}

// fakeRecheck is the sweep's recheck on the fake: the AMIs as the fake
// describes them now, and the step's references as EC2's second opinion.
type fakeRecheck struct {
	w    *fakeWorld
	step fakeStep
}

func (r fakeRecheck) Recheck(ctx context.Context, batch []cleanup.Decision) (map[string]execute.Kept, error) {
	keep := map[string]execute.Kept{}
	for _, d := range batch {
		var cur *cleanup.Image
		if out, err := r.w.f.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{d.ImageID}}); err == nil {
			img := fakeImage(&out.Images[0])
			cur = &img
		}
		if why, _ := cleanup.RecheckReasons(r.step.now, d, cur, r.step.refs[d.ImageID], r.w.p, crashKey); len(why) > 0 {
			keep[d.ImageID] = execute.Kept{Reasons: why}
		}
	}
	return keep, nil
}

func (w *fakeWorld) sweep(ctx context.Context, t *testing.T, i int, cr *fake.Crash) {
	t.Helper()
	st := w.steps[i]
	inv := w.inventory(st.refs)
	plan := cleanup.MakePlan(st.now, inv, w.p)
	tags := map[string]map[string]string{}
	for _, img := range inv.Images {
		tags[img.ID] = img.Tags
	}
	cr.EC2 = w.f
	ex := &execute.Executor{EC2: cr, Clock: fake.NewClock(time.Now()), Recheck: fakeRecheck{w, st}, Records: crashKey,
		ImageTags: func(id string) map[string]string { return tags[id] }}
	ex.Apply(ctx, &plan)
}

// stageRecords checks the write-ahead invariant on every state: a stage the
// cleanup applied always has its record (nobody else sets stages here).
func stageRecords(t *testing.T, when string, s state) {
	t.Helper()
	for k, v := range s {
		if !strings.HasPrefix(k, "ami ") {
			continue
		}
		if strings.HasPrefix(v, "disabled") && !strings.Contains(v, "disabled-by-cleanup=") {
			t.Errorf("%s: %s is disabled without its record: %q", when, k, v)
		}
		if strings.Contains(v, " deprecated") && !strings.Contains(v, "deprecated-by-cleanup=") {
			t.Errorf("%s: %s is deprecated without its record: %q", when, k, v)
		}
	}
}

type fakeRunner struct{ *fakeWorld }

func testCrashEveryStepFake(t *testing.T, mimicMoto bool) {
	fresh := func() runner { return fakeRunner{newFakeWorld(t, mimicMoto)} }
	check := func(r runner) func(string, state) {
		s := safety(t, r)
		return func(when string, st state) { s(when, st); stageRecords(t, when, st) }
	}
	ref, runs, gaps := crashEveryStep(t, fresh, 3, check, fake.CrashKill, fake.CrashLanded, fake.CrashLoseAnswer)
	// The tripwire of stagesResumeAfterCrash: the crashes between a mark
	// and its stages show the gap until a sweep resumes the stages.
	if !stagesResumeAfterCrash && gaps == 0 {
		t.Error("no crash left a recorded stage unapplied: the gap seems closed; set stagesResumeAfterCrash = true")
	}
	want := ref.final
	for _, k := range []string{"ami app-002", "ami app-003", "snap snap-0a02", "snap snap-0a03a", "snap snap-0a03b"} {
		if want.has(k) {
			t.Errorf("the crash-free run kept %s: %q", k, want[k])
		}
	}
	if want["ami app-004"] != "available" {
		t.Errorf("app-004 after its unmark = %q, want available with no tag left", want["ami app-004"])
	}
	if !strings.HasPrefix(ref.after[0]["ami app-002"], "disabled deprecated delete-after=") {
		t.Errorf("the crash-free mark did not apply both stages: %q", ref.after[0]["ami app-002"])
	}
	if mimicMoto {
		// The snapshot workers and the deregister lane start their calls
		// in an order that varies from run to run, so the crash at a given
		// N does not always fall between app-003's two DeleteSnapshot
		// calls: one more run kills the process right after the first.
		r := fresh()
		run := runScenarioWith(t, r, 3, &fake.Crash{After: -1, KillAfter: func(op, target string) bool {
			return op == "DeleteSnapshot" && strings.HasPrefix(target, "snap-0a03")
		}}, check(r))
		if d := run.final.diff(want); d != "" {
			t.Errorf("crash after app-003's first DeleteSnapshot: final state differs:\n%s\ncalls:\n  %s", d, callList(run.calls))
		}
		runs = append(runs, run)
	}
	seen := map[string]int{}
	for _, run := range runs {
		if run.crashed >= 0 {
			classifyFake(run.crashed, run.atCrash, seen)
		}
	}
	t.Logf("crash points covered: %v", seen)
	need := []string{"mark and records written, no stage applied", "deprecated, not yet disabled",
		"re-enabled, deprecation and records left", "stages undone, records left",
		"snapshots tagged delete-with, AMI still registered"}
	if mimicMoto {
		need = append(need, "AMI deregistered, its snapshots not yet deleted", "between two DeleteSnapshot calls of one AMI")
	}
	for _, k := range need {
		if seen[k] == 0 {
			t.Errorf("no crash hit %q", k)
		}
	}
}

// classifyFake names the crash point a crash-time state shows, by the
// sweep the crash hit (0 marks, 1 unmarks, 2 removes).
func classifyFake(step int, s state, seen map[string]int) {
	marked := func(v string) bool {
		return strings.Contains(v, "delete-after=") && strings.Contains(v, "disabled-by-cleanup=")
	}
	switch step {
	case 0:
		for _, n := range []string{"app-002", "app-003", "app-004"} {
			switch v := s["ami "+n]; {
			case marked(v) && strings.HasPrefix(v, "available ") && !strings.HasPrefix(v, "available deprecated"):
				seen["mark and records written, no stage applied"]++
			case marked(v) && strings.HasPrefix(v, "available deprecated"):
				seen["deprecated, not yet disabled"]++
			}
		}
	case 1:
		switch v := s["ami app-004"]; {
		case marked(v) && strings.HasPrefix(v, "available deprecated"):
			seen["re-enabled, deprecation and records left"]++
		case marked(v) && strings.HasPrefix(v, "available "):
			seen["stages undone, records left"]++
		}
	case 2:
		for ami, snaps := range map[string][]string{"app-002": {"snap-0a02"}, "app-003": {"snap-0a03a", "snap-0a03b"}} {
			left := 0
			for _, sn := range snaps {
				if s.has("snap " + sn) {
					left++
					if s.has("ami "+ami) && strings.Contains(s["snap "+sn], "delete-with="+ami) {
						seen["snapshots tagged delete-with, AMI still registered"]++
					}
				}
			}
			if !s.has("ami "+ami) && left == len(snaps) {
				seen["AMI deregistered, its snapshots not yet deleted"]++
			}
			if !s.has("ami "+ami) && left > 0 && left < len(snaps) {
				seen["between two DeleteSnapshot calls of one AMI"]++
			}
		}
	}
}

// TestCrashEveryStepFake: EC2's semantics (DeleteAssociatedSnapshots
// deletes app-003's snapshots in the DeregisterImage call itself).
func TestCrashEveryStepFake(t *testing.T) { testCrashEveryStepFake(t, false) }

// TestCrashEveryStepFakeMotoSnapshots: moto's semantics for snapshots
// (DeleteAssociatedSnapshots ignored), so the crash falls between the two
// DeleteSnapshot calls of app-003.
func TestCrashEveryStepFakeMotoSnapshots(t *testing.T) { testCrashEveryStepFake(t, true) }

// describedOnlyFinish says whether a deletion interrupted after the
// DeregisterImage is finished for a snapshot whose description EC2 did not
// write for CreateImage or CopyImage. It is not: the planner approves a
// delete-with tag only when the snapshot's description names the same AMI
// (a tag alone can be forged), so such a snapshot stays forever, kept with
// a reason ("not proven to be an AMI's snapshot"). Safe, but a leak. moto
// shows it with the AMIs it seeds ("Auto-created snapshot for AMI ..."); in
// EC2 it is an AMI registered from snapshots (RegisterImage, imports) when
// DeleteAssociatedSnapshots does not take the snapshot with the AMI (the
// plan keeps another of its snapshots, or EC2 reports an error for it).
// Reported to the lead (a record only the cleanup can write would close
// it); set to true once it is closed.
const describedOnlyFinish = false

// TestCrashAfterDeregisterOfSnapshotWithoutEC2Description: the fleet's
// stale AMIs (seeded by moto, so their snapshots lack EC2's CreateImage
// description) are removed with the crash right after the first
// DeregisterImage. Everything else ends as in the crash-free run; the
// snapshot of that AMI is the known leak, and every later sweep reports it
// kept and never deletes anything for it.
func TestCrashAfterDeregisterOfSnapshotWithoutEC2Description(t *testing.T) {
	m := fleetMoto(t)
	pol, err := policy.Parse([]byte(emulator.FleetPolicy("enforce")), "fleet policy")
	if err != nil {
		t.Fatal(err)
	}
	p := pol.Retention
	steps := schedule{planClock()}
	var w *motoWorld
	fresh := func() runner { w = seedMoto(t, m); return motoRunner{w: w, p: p, steps: steps} }
	stale := map[string]bool{emulator.FleetAMIStale1: true, emulator.FleetAMIStale2: true}
	check := func(r runner) func(string, state) {
		var stay []string
		for _, k := range r.mustStay() {
			if id := strings.TrimPrefix(strings.TrimPrefix(k, "ami fleet "), "snap fleet "); !stale[id] {
				stay = append(stay, k)
			}
		}
		return func(when string, s state) {
			t.Helper()
			for _, k := range stay {
				if !s.has(k) {
					t.Errorf("%s: %s was removed; the crash-free run keeps it", when, k)
				}
			}
		}
	}
	r := fresh()
	ref := runScenario(t, r, 1, -1, fake.CrashKill, check(r))
	n, ami := 0, ""
	for _, c := range ref.calls {
		if c.Op == "DeregisterImage" {
			n, ami = c.Seq, c.Target
			break
		}
	}
	if !stale[ami] {
		t.Fatalf("the crash-free run deregistered %q first, not a fleet stale AMI; calls:\n  %s", ami, callList(ref.calls))
	}
	r = fresh()
	run := runScenario(t, r, 1, n, fake.CrashKill, check(r))
	leak := "snap fleet " + ami
	if !run.atCrash.has(leak) || run.atCrash.has("ami fleet "+ami) {
		t.Fatalf("the crash at %d did not fall between DeregisterImage and DeleteSnapshot of %s: %v", n, ami, callList(run.calls))
	}
	if describedOnlyFinish {
		if d := run.final.diff(ref.final); d != "" {
			t.Errorf("final state differs from the crash-free run:\n%s", d)
		}
		return
	}
	if !run.final.has(leak) {
		t.Fatal("the snapshot was deleted after all: the gap seems closed; set describedOnlyFinish = true")
	}
	rest := maps.Clone(run.final)
	delete(rest, leak)
	if d := rest.diff(ref.final); d != "" {
		t.Errorf("besides %s, the final state differs from the crash-free run:\n%s", leak, d)
	}
	rep := w.sweep(context.Background(), t, p, steps[0], &fake.Crash{EC2: w.ec2, After: -1})
	for _, o := range rep.Plan.Orphans {
		if w.name(o.SnapshotID) == "fleet "+ami {
			if o.Action != cleanup.ActionKeep || !strings.Contains(strings.Join(o.Reasons, "; "), "not proven") {
				t.Errorf("the leaked snapshot's decision: %s %v", o.Action, o.Reasons)
			}
			t.Logf("known gap: %s stays %q: %s", leak, run.final[leak], strings.Join(o.Reasons, "; "))
			return
		}
	}
	t.Errorf("no sweep reports the leaked snapshot %s", leak)
}
