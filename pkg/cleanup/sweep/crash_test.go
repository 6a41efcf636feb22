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

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
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

// render is the value of a state entry.
func render(status string, tags map[string]string, name func(string) string) string {
	var kv []string
	for k, v := range tags {
		if strings.HasPrefix(k, "ami-housekeeper:") {
			kv = append(kv, strings.TrimPrefix(k, "ami-housekeeper:")+"="+name(v))
		}
	}
	sort.Strings(kv)
	return strings.TrimSpace(status + " " + strings.Join(kv, " "))
}

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
	// happen: the planner clears it (one DeleteTags in every run below).
	tag(snapOf["app-003"], cleanup.TagDeleteWith, w.ids["app-003"])
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
	cl := ec2.NewFromConfig(w.cfg)
	s := &sweep.Sweeper{
		Collector: &collect.Collector{EC2: cl, AutoScaling: autoscaling.NewFromConfig(w.cfg), SSM: ssm.NewFromConfig(w.cfg), References: cl},
		Executor:  &execute.Executor{EC2: cr, Clock: clock.Real()},
		Now:       func() time.Time { return now },
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
	final   state
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cr := &fake.Crash{After: after, Mode: mode, Kill: cancel}
	out := crashRun{crashed: -1}
	next := steps
	for i := range steps {
		r.sweep(ctx, t, i, cr)
		check(fmt.Sprintf("sweep %d (crash at %d, %s)", i, after, mode), r.state(t))
		if cr.Killed() {
			out.crashed, next = i, i
			break
		}
	}
	out.calls = cr.Calls()
	out.atCrash = r.state(t)
	for i := next; i < steps; i++ {
		r.sweep(context.Background(), t, i, &fake.Crash{After: -1})
		check(fmt.Sprintf("restarted sweep %d (crash at %d, %s)", i, after, mode), r.state(t))
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

// crashEveryStep runs the scenario crash-free, then with the crash at every
// N in each mode, comparing final states; it returns the crashed runs.
func crashEveryStep(t *testing.T, fresh func() runner, steps int, modes ...fake.CrashMode) (want state, runs []crashRun) {
	t.Helper()
	r := fresh()
	ref := runScenario(t, r, steps, -1, fake.CrashKill, safety(t, r))
	want, total := ref.final, len(ref.calls)
	if total == 0 {
		t.Fatal("the crash-free run made no mutating call: nothing to crash")
	}
	var seq []string
	for _, c := range ref.calls {
		seq = append(seq, c.String())
	}
	t.Logf("crash-free run: %d mutating calls:\n  %s", total, strings.Join(seq, "\n  "))
	for _, mode := range modes {
		first := 0
		if mode == fake.CrashLoseAnswer {
			first = 1
		}
		for n := first; n <= total; n++ {
			r := fresh()
			run := runScenario(t, r, steps, n, mode, safety(t, r))
			if mode != fake.CrashLoseAnswer && n < total && run.crashed < 0 {
				t.Errorf("crash at %d (%s) never happened: %v", n, mode, run.calls)
			}
			if d := run.final.diff(want); d != "" {
				t.Errorf("crash at %d (%s): final state differs from the crash-free run:\n%s\ncrashed run's calls:\n  %s", n, mode, d, callList(run.calls))
			}
			runs = append(runs, run)
		}
	}
	return want, runs
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
	want, runs := crashEveryStep(t, fresh, len(steps), fake.CrashKill, fake.CrashLanded, fake.CrashLoseAnswer)

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
	want, runs := crashEveryStep(t, fresh, len(steps), fake.CrashKill)
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
