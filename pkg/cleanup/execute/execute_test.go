package execute_test

// The executor is tested against the stateful fake in pkg/fake, not moto:
// moto returns no DeleteSnapshotResults for DeregisterImage (it ignores
// DeleteAssociatedSnapshots), answers 500 to EnableImageDeprecation,
// DisableImageDeprecation, DisableImage and EnableImage, and never throttles.
// The fake models all four (and moto's behaviour, with
// IgnoreDeleteAssociatedSnapshots), and runs on a simulated clock, so the
// pacing tests drain a 1,000-item backlog in milliseconds of real time.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

const acct = "123456789012"

var (
	_ clock.Clock       = (*fake.Clock)(nil)
	_ awsapi.CleanupEC2 = (*fake.EC2)(nil)
	_ awsapi.CleanupEC2 = (*spy)(nil)
)

var t0 = time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)

func image(id string, snaps ...string) *types.Image {
	img := &types.Image{ImageId: aws.String(id), OwnerId: aws.String(acct), State: types.ImageStateAvailable,
		Public: aws.Bool(false), CreationDate: aws.String("2025-01-01T00:00:00.000Z")}
	for i, s := range snaps {
		img.BlockDeviceMappings = append(img.BlockDeviceMappings, types.BlockDeviceMapping{
			DeviceName: aws.String("/dev/sd" + string(rune('a'+i))), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(s)}})
	}
	return img
}

func snapshot(id string) *types.Snapshot {
	return &types.Snapshot{SnapshotId: aws.String(id), OwnerId: aws.String(acct), VolumeSize: aws.Int32(8)}
}

type world struct {
	f     *fake.EC2
	clock *fake.Clock
	spy   *spy
	ex    *execute.Executor
	log   *bytes.Buffer
}

func newWorld() *world {
	w := &world{f: fake.NewEC2(), clock: fake.NewClock(t0), log: &bytes.Buffer{}}
	w.f.Clock = w.clock
	w.spy = &spy{CleanupEC2: w.f}
	w.ex = &execute.Executor{EC2: w.spy, Clock: w.clock, Records: testKey, Log: slog.New(slog.NewJSONHandler(w.log, nil))}
	return w
}

func (w *world) addImage(id string, snaps ...string) {
	w.f.Images[id] = image(id, snaps...)
	for _, s := range snaps {
		w.f.Snapshots[s] = snapshot(s)
	}
}

// testKey seals records as an earlier run of the cleanup did.
var testKey = records.NewKey([]byte("ami-housekeeper test records key"))

var recordTags = map[string]bool{cleanup.TagDeleteAfter: true, cleanup.TagDeprecatedByUs: true, cleanup.TagDisabledByUs: true, cleanup.TagDeleteWith: true}

// seal returns the value the cleanup writes for record tag k=v on id.
func seal(k, id, v string) string { return testKey.Seal(k, id, v) }

// setTags writes tags on id as an earlier run would: record tags sealed.
func (w *world) setTags(id string, kv ...string) {
	var tags []types.Tag
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if recordTags[kv[i]] {
			v = seal(kv[i], id, v)
		}
		tags = append(tags, types.Tag{Key: aws.String(kv[i]), Value: aws.String(v)})
	}
	if _, err := w.f.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{id}, Tags: tags}); err != nil {
		panic(err)
	}
	delete(w.f.Calls, "CreateTags")
}

// tags returns id's tags with every record tag opened; one whose seal does
// not hold reads "UNSEALED:<value>".
func (w *world) tags(id string) map[string]string {
	out := w.f.Tags(id)
	for k, v := range out {
		if !recordTags[k] {
			continue
		}
		if opened, ok := testKey.Open(k, id, v); ok {
			out[k] = opened
		} else {
			out[k] = "UNSEALED:" + v
		}
	}
	return out
}

func (w *world) apply(t *testing.T, ctx context.Context, plan *cleanup.Plan) execute.Results {
	t.Helper()
	res := w.ex.Apply(ctx, plan)
	if err := res.Err(); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func enforce(ds []cleanup.Decision, orphans ...cleanup.SnapshotDecision) *cleanup.Plan {
	return &cleanup.Plan{Now: t0, Mode: policy.ModeEnforce, Decisions: ds, Orphans: orphans}
}

// spy wraps the fake: it records the order of calls, can run a hook after
// each (to cancel the context mid-run), and can rewrite DeregisterImage's
// results (to produce EC2's error codes). The executor calls it from several
// lanes at once.
type spy struct {
	awsapi.CleanupEC2
	mu        sync.Mutex
	ops       []string
	after     func(op string)
	rewriteDR func(in *ec2.DeregisterImageInput, out *ec2.DeregisterImageOutput)
}

// seen counts the calls of op so far; for the after hook, which runs with
// the spy's lock held (the fake's own counters are not safe to read there).
func (s *spy) seen(op string) int {
	n := 0
	for _, o := range s.ops {
		if o == op {
			n++
		}
	}
	return n
}

func (s *spy) note(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, op)
	if s.after != nil {
		s.after(op)
	}
}

func (s *spy) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, o ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	defer s.note("CreateTags")
	return s.CleanupEC2.CreateTags(ctx, in, o...)
}

func (s *spy) DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, o ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error) {
	defer s.note("DeleteTags")
	return s.CleanupEC2.DeleteTags(ctx, in, o...)
}

func (s *spy) EnableImageDeprecation(ctx context.Context, in *ec2.EnableImageDeprecationInput, o ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error) {
	defer s.note("EnableImageDeprecation")
	return s.CleanupEC2.EnableImageDeprecation(ctx, in, o...)
}

func (s *spy) DisableImageDeprecation(ctx context.Context, in *ec2.DisableImageDeprecationInput, o ...func(*ec2.Options)) (*ec2.DisableImageDeprecationOutput, error) {
	defer s.note("DisableImageDeprecation")
	return s.CleanupEC2.DisableImageDeprecation(ctx, in, o...)
}

func (s *spy) DisableImage(ctx context.Context, in *ec2.DisableImageInput, o ...func(*ec2.Options)) (*ec2.DisableImageOutput, error) {
	defer s.note("DisableImage")
	return s.CleanupEC2.DisableImage(ctx, in, o...)
}

func (s *spy) EnableImage(ctx context.Context, in *ec2.EnableImageInput, o ...func(*ec2.Options)) (*ec2.EnableImageOutput, error) {
	defer s.note("EnableImage")
	return s.CleanupEC2.EnableImage(ctx, in, o...)
}

func (s *spy) DeregisterImage(ctx context.Context, in *ec2.DeregisterImageInput, o ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	defer s.note("DeregisterImage")
	out, err := s.CleanupEC2.DeregisterImage(ctx, in, o...)
	if err == nil && s.rewriteDR != nil {
		s.rewriteDR(in, out)
	}
	return out, err
}

func (s *spy) DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, o ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	defer s.note("DeleteSnapshot")
	return s.CleanupEC2.DeleteSnapshot(ctx, in, o...)
}

// motoNotImplemented is what moto answers to the lifecycle calls: HTTP 500.
func motoNotImplemented(op string) error {
	return &smithy.GenericAPIError{Code: "InternalFailure", Message: "The " + op + " action has not been implemented", Fault: smithy.FaultServer}
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

func hasNote(notes []string, sub string) bool {
	for _, n := range notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

func TestMark(t *testing.T) {
	mark := cleanup.Decision{ImageID: "ami-1", Action: cleanup.ActionMark, DeleteAfter: "2026-12-31"}
	staged := mark
	staged.Deprecate, staged.Disable = true, true
	cases := []struct {
		name  string
		d     cleanup.Decision
		setup func(w *world)
		check func(t *testing.T, w *world, r execute.ImageResult)
	}{
		{"mark only", mark, nil, func(t *testing.T, w *world, r execute.ImageResult) {
			if !r.Done || w.f.Calls["CreateTags"] != 1 || w.f.Calls["EnableImageDeprecation"]+w.f.Calls["DisableImage"] != 0 {
				t.Fatalf("result %+v, calls %v", r, w.f.Calls)
			}
		}},
		{"deprecate and disable: one CreateTags with the records, written ahead of the stages", staged, func(w *world) { w.f.Images["ami-1"].Public = aws.Bool(true) },
			func(t *testing.T, w *world, r execute.ImageResult) {
				img := w.f.Images["ami-1"]
				// now 10:00:30 -> next minute 10:01 + 1 minute.
				if !r.Done || len(r.Notes) != 0 || aws.ToString(img.DeprecationTime) != "2026-12-01T10:02:00.000Z" ||
					img.State != types.ImageStateDisabled || aws.ToBool(img.Public) {
					t.Fatalf("result %+v, image deprecation %v state %s public %v", r, aws.ToString(img.DeprecationTime), img.State, aws.ToBool(img.Public))
				}
				tags := w.tags("ami-1")
				if tags[cleanup.TagDeprecatedByUs] != "2026-12-31" || tags[cleanup.TagDisabledByUs] != "2026-12-31" || w.f.Calls["CreateTags"] != 1 {
					t.Fatalf("tags %v, CreateTags calls %d", tags, w.f.Calls["CreateTags"])
				}
				if got := strings.Join(w.spy.ops, ","); got != "CreateTags,EnableImageDeprecation,DisableImage" {
					t.Fatalf("order %s", got)
				}
			}},
		{"deprecation fails with a 5xx (moto's 500): outcome unknown, mark and record stand", staged, func(w *world) {
			w.f.Errors["EnableImageDeprecation"] = repeat(motoNotImplemented("EnableImageDeprecation"), 10)
		}, func(t *testing.T, w *world, r execute.ImageResult) {
			tags := w.tags("ami-1")
			if !r.Done || !hasNote(r.Notes, "deprecate not applied") || !hasNote(r.Notes, "record stays") || w.f.Images["ami-1"].DeprecationTime != nil {
				t.Fatalf("result %+v", r)
			}
			// A 5xx may hide a stage that happened: its record stays, so an
			// unmark undoes it (a no-op if it did not happen).
			if tags[cleanup.TagDeprecatedByUs] != "2026-12-31" || tags[cleanup.TagDisabledByUs] != "2026-12-31" || tags[cleanup.TagDeleteAfter] != "2026-12-31" {
				t.Fatalf("tags %v", tags)
			}
			// A 500 is retried (3 times) before giving up; a 500 is not throttling.
			if w.f.Calls["EnableImageDeprecation"] != 4 {
				t.Fatalf("EnableImageDeprecation calls %d", w.f.Calls["EnableImageDeprecation"])
			}
		}},
		{"disable not permitted (permanent): mark stands, its record is removed", staged, func(w *world) {
			w.f.Errors["DisableImage"] = []error{fake.APIError("UnauthorizedOperation")}
		}, func(t *testing.T, w *world, r execute.ImageResult) {
			tags := w.tags("ami-1")
			if !r.Done || !hasNote(r.Notes, "disable not applied") || w.f.Images["ami-1"].State != types.ImageStateAvailable {
				t.Fatalf("result %+v", r)
			}
			if _, ok := tags[cleanup.TagDisabledByUs]; ok || tags[cleanup.TagDeprecatedByUs] != "2026-12-31" || w.f.Calls["DisableImage"] != 1 {
				t.Fatalf("tags %v, calls %v", tags, w.f.Calls)
			}
		}},
		{"mark and records cannot be written: no stage is applied", staged, func(w *world) {
			w.f.Errors["CreateTags"] = []error{fake.APIError("UnauthorizedOperation")}
		}, func(t *testing.T, w *world, r execute.ImageResult) {
			img := w.f.Images["ami-1"]
			if r.Done || !strings.Contains(r.Error, "UnauthorizedOperation") || img.State != types.ImageStateAvailable || img.DeprecationTime != nil {
				t.Fatalf("result %+v, image %s %v", r, img.State, aws.ToString(img.DeprecationTime))
			}
			if w.f.Calls["EnableImageDeprecation"]+w.f.Calls["DisableImage"] != 0 {
				t.Fatalf("a stage was applied without its record: %v", w.f.Calls)
			}
		}},
		{"bad date in the plan: nothing done", cleanup.Decision{ImageID: "ami-1", Action: cleanup.ActionMark}, nil,
			func(t *testing.T, w *world, r execute.ImageResult) {
				if r.Done || !strings.Contains(r.Error, "plan error") || len(w.spy.ops) != 0 {
					t.Fatalf("result %+v ops %v", r, w.spy.ops)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld()
			w.addImage("ami-1", "snap-1")
			if c.setup != nil {
				c.setup(w)
			}
			res := w.apply(t, context.Background(), enforce([]cleanup.Decision{c.d}))
			if len(res.Images) != 1 || res.Throttled != 0 {
				t.Fatalf("results %+v", res)
			}
			c.check(t, w, res.Images[0])
		})
	}
}

// Write-ahead: whenever the run stops (the deadline, a crash), no stage the
// cleanup applied is left without its record, so the next unmark undoes it.
func TestStageRecordsAroundDeadline(t *testing.T) {
	t.Run("mark: records are written before the stages", func(t *testing.T) {
		w := newWorld()
		w.addImage("ami-1")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w.spy.after = func(op string) {
			if op == "EnableImageDeprecation" {
				cancel()
			}
		}
		res := w.apply(t, ctx, enforce([]cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionMark, DeleteAfter: "2026-12-31", Deprecate: true, Disable: true}}))
		tags := w.tags("ami-1")
		if r := res.Images[0]; !r.Done || !hasNote(r.Notes, "disable not applied") || w.f.Calls["DisableImage"] != 0 {
			t.Fatalf("result %+v, calls %v", r, w.f.Calls)
		}
		if tags[cleanup.TagDeprecatedByUs] != "2026-12-31" || tags[cleanup.TagDeleteAfter] != "2026-12-31" {
			t.Fatalf("tags %v", tags)
		}
		if got := strings.Join(w.spy.ops, ","); got != "CreateTags,EnableImageDeprecation" {
			t.Fatalf("order %s", got)
		}
	})
	t.Run("unmark: a record goes only after its stage is undone, and the next run finishes", func(t *testing.T) {
		w := newWorld()
		w.addImage("ami-1")
		w.f.Images["ami-1"].State = types.ImageStateDisabled
		w.f.Images["ami-1"].DeprecationTime = aws.String("2026-12-01T10:02:00.000Z")
		w.setTags("ami-1", cleanup.TagDeleteAfter, "2026-12-31", cleanup.TagDeprecatedByUs, "2026-12-31", cleanup.TagDisabledByUs, "2026-12-31")
		inv := w.f.Tags("ami-1")
		w.ex.ImageTags = func(string) map[string]string { return inv }
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w.spy.after = func(op string) {
			if op == "EnableImage" {
				cancel()
			}
		}
		res := w.apply(t, ctx, enforce([]cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionUnmark}}))
		tags := w.tags("ami-1")
		if res.Images[0].Done || w.f.Images["ami-1"].DeprecationTime == nil || tags[cleanup.TagDeprecatedByUs] == "" || tags[cleanup.TagDeleteAfter] == "" {
			t.Fatalf("result %+v, tags %v", res.Images[0], tags)
		}
		// The next run undoes everything recorded (enabling again is a no-op).
		w.spy.after = nil
		res = w.apply(t, context.Background(), enforce([]cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionUnmark}}))
		tags = w.tags("ami-1")
		if !res.Images[0].Done || w.f.Images["ami-1"].State != types.ImageStateAvailable || w.f.Images["ami-1"].DeprecationTime != nil || len(tags) != 0 {
			t.Fatalf("second run: result %+v, state %s, tags %v", res.Images[0], w.f.Images["ami-1"].State, tags)
		}
	})
}

func TestUnmarkUndoesExactlyTheRecordedStages(t *testing.T) {
	unmark := []cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionUnmark}}
	cases := []struct {
		name      string
		state     types.ImageState
		deprecate bool
		tags      []string
		errs      map[string][]error
		noTags    bool
		wantDone  bool
		wantCalls map[string]int
		wantState types.ImageState
		wantDepr  bool
		wantTags  []string // keys left among the cleanup's and "team"
	}{
		{name: "both recorded", state: types.ImageStateDisabled, deprecate: true,
			tags:     []string{cleanup.TagDeleteAfter, "2026-12-31", cleanup.TagDeprecatedByUs, "2026-12-31", cleanup.TagDisabledByUs, "2026-12-31", "team", "web"},
			wantDone: true, wantCalls: map[string]int{"EnableImage": 1, "DisableImageDeprecation": 1, "DeleteTags": 1},
			wantState: types.ImageStateAvailable, wantTags: []string{"team"}},
		{name: "only deprecation recorded; disabled by someone else stays", state: types.ImageStateDisabled, deprecate: true,
			tags:     []string{cleanup.TagDeleteAfter, "2026-12-31", cleanup.TagDeprecatedByUs, "2026-12-31"},
			wantDone: true, wantCalls: map[string]int{"EnableImage": 0, "DisableImageDeprecation": 1, "DeleteTags": 1},
			wantState: types.ImageStateDisabled},
		{name: "nothing recorded; the owner's deprecation stays", state: types.ImageStateAvailable, deprecate: true,
			tags:     []string{cleanup.TagDeleteAfter, "2026-12-31"},
			wantDone: true, wantCalls: map[string]int{"EnableImage": 0, "DisableImageDeprecation": 0, "DeleteTags": 1},
			wantState: types.ImageStateAvailable, wantDepr: true},
		{name: "enable fails: stays marked and recorded, deprecation undone", state: types.ImageStateDisabled, deprecate: true,
			tags:      []string{cleanup.TagDeleteAfter, "2026-12-31", cleanup.TagDeprecatedByUs, "2026-12-31", cleanup.TagDisabledByUs, "2026-12-31"},
			errs:      map[string][]error{"EnableImage": {fake.APIError("UnauthorizedOperation")}},
			wantCalls: map[string]int{"EnableImage": 1, "DisableImageDeprecation": 1, "DeleteTags": 1},
			wantState: types.ImageStateDisabled, wantTags: []string{cleanup.TagDeleteAfter, cleanup.TagDisabledByUs}},
		{name: "image tags unknown: refuses to guess", state: types.ImageStateDisabled, noTags: true,
			tags:      []string{cleanup.TagDeleteAfter, "2026-12-31", cleanup.TagDisabledByUs, "2026-12-31"},
			wantCalls: map[string]int{"EnableImage": 0, "DeleteTags": 0},
			wantState: types.ImageStateDisabled, wantTags: []string{cleanup.TagDeleteAfter, cleanup.TagDisabledByUs}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld()
			w.addImage("ami-1", "snap-1")
			img := w.f.Images["ami-1"]
			img.State = c.state
			if c.deprecate {
				img.DeprecationTime = aws.String("2027-01-01T00:00:00.000Z")
			}
			w.setTags("ami-1", c.tags...)
			inventory := map[string]map[string]string{"ami-1": w.f.Tags("ami-1")}
			if !c.noTags {
				w.ex.ImageTags = func(id string) map[string]string { return inventory[id] }
			}
			for op, errs := range c.errs {
				w.f.Errors[op] = errs
			}
			res := w.apply(t, context.Background(), enforce(unmark))
			r := res.Images[0]
			if r.Done != c.wantDone || (!r.Done && r.Error == "") || res.Failed != map[bool]int{true: 0, false: 1}[c.wantDone] {
				t.Fatalf("result %+v (failed %d)", r, res.Failed)
			}
			for op, n := range c.wantCalls {
				if w.f.Calls[op] != n {
					t.Errorf("%s calls %d, want %d", op, w.f.Calls[op], n)
				}
			}
			if img.State != c.wantState || (img.DeprecationTime != nil) != c.wantDepr {
				t.Errorf("state %s deprecation %v", img.State, aws.ToString(img.DeprecationTime))
			}
			var left []string
			for _, k := range []string{cleanup.TagDeleteAfter, cleanup.TagDeprecatedByUs, cleanup.TagDisabledByUs, "team"} {
				if _, ok := w.tags("ami-1")[k]; ok {
					left = append(left, k)
				}
			}
			if strings.Join(left, ",") != strings.Join(c.wantTags, ",") {
				t.Errorf("tags left %v, want %v", left, c.wantTags)
			}
		})
	}
}

func TestDeregister(t *testing.T) {
	dereg := func(id string, snaps ...string) cleanup.Decision {
		return cleanup.Decision{ImageID: id, Action: cleanup.ActionDeregister, DeleteAfter: "2026-11-30", DeleteSnapshots: snaps, SizeGiB: 8 * int64(len(snaps))}
	}
	type want struct {
		done                    bool
		deregistered, deleted   int
		gib                     int64
		via                     map[string]string // snapshot -> Via ("" = not deleted)
		calls                   map[string]int
		snapshotsLeft, imgsLeft []string
		note, errSub            string
		// deleteWith is the TagDeleteWith value expected on snapshots left.
		deleteWith map[string]string
	}
	cases := []struct {
		name  string
		setup func(w *world)
		d     cleanup.Decision
		want  want
	}{
		{"DeleteAssociatedSnapshots deletes both", func(w *world) { w.addImage("ami-1", "snap-1", "snap-2") }, dereg("ami-1", "snap-1", "snap-2"),
			want{done: true, deregistered: 1, deleted: 2, gib: 16,
				via: map[string]string{"snap-1": execute.ViaDeleteAssociatedSnapshots, "snap-2": execute.ViaDeleteAssociatedSnapshots},
				// One sealed delete-with record per snapshot.
				calls: map[string]int{"CreateTags": 2, "DeregisterImage": 1, "DeleteSnapshot": 0}}},
		{"moto ignores the flag: DeleteSnapshot after", func(w *world) {
			w.addImage("ami-1", "snap-1", "snap-2")
			w.f.IgnoreDeleteAssociatedSnapshots = true
		}, dereg("ami-1", "snap-1", "snap-2"),
			want{done: true, deregistered: 1, deleted: 2, gib: 16,
				via:   map[string]string{"snap-1": execute.ViaDeleteSnapshot, "snap-2": execute.ViaDeleteSnapshot},
				calls: map[string]int{"DeregisterImage": 1, "DeleteSnapshot": 2}}},
		{"InUse races the deregistration twice, then succeeds", func(w *world) {
			w.addImage("ami-1", "snap-1")
			w.f.IgnoreDeleteAssociatedSnapshots = true
			w.f.Errors["DeleteSnapshot"] = repeat(fake.APIError("InvalidSnapshot.InUse"), 2)
		}, dereg("ami-1", "snap-1"),
			want{done: true, deregistered: 1, deleted: 1, gib: 8, via: map[string]string{"snap-1": execute.ViaDeleteSnapshot},
				calls: map[string]int{"DeleteSnapshot": 3}}},
		{"EC2 reports internal-error: DeleteSnapshot after", func(w *world) {
			w.addImage("ami-1", "snap-1")
			w.spy.rewriteDR = func(in *ec2.DeregisterImageInput, out *ec2.DeregisterImageOutput) {
				// Undo the fake's deletion, report an error code instead.
				w.f.Snapshots["snap-1"] = snapshot("snap-1")
				out.DeleteSnapshotResults = []types.DeleteSnapshotReturnCode{{SnapshotId: aws.String("snap-1"), ReturnCode: types.SnapshotReturnCodesErrorCodeInternalError}}
			}
		}, dereg("ami-1", "snap-1"),
			want{done: true, deregistered: 1, deleted: 1, gib: 8, via: map[string]string{"snap-1": execute.ViaDeleteSnapshot},
				calls: map[string]int{"DeleteSnapshot": 1}}},
		{"a planned snapshot is already gone", func(w *world) {
			w.addImage("ami-1", "snap-1", "snap-2")
			delete(w.f.Snapshots, "snap-2")
			w.f.IgnoreDeleteAssociatedSnapshots = true
		}, dereg("ami-1", "snap-1", "snap-2"),
			want{done: true, deregistered: 1, deleted: 1, gib: 16,
				via:   map[string]string{"snap-1": execute.ViaDeleteSnapshot, "snap-2": execute.ViaAlreadyGone},
				calls: map[string]int{"CreateTags": 2, "DeleteSnapshot": 1}}},
		{"the AMI is already gone (interrupted earlier run)", func(w *world) {
			w.f.Snapshots["snap-1"] = snapshot("snap-1")
		}, dereg("ami-1", "snap-1"),
			want{done: true, deleted: 1, gib: 8, via: map[string]string{"snap-1": execute.ViaDeleteSnapshot},
				calls: map[string]int{"DeregisterImage": 1, "DeleteSnapshot": 1}, note: "AMI already gone"}},
		{"snapshot still used by another AMI (EC2 skips it): kept, no delete attempt, reported", func(w *world) {
			w.addImage("ami-1", "snap-1", "snap-s")
			w.addImage("ami-2", "snap-s")
		}, dereg("ami-1", "snap-1", "snap-s"),
			want{deregistered: 1, deleted: 1, via: map[string]string{"snap-1": execute.ViaDeleteAssociatedSnapshots, "snap-s": ""},
				calls: map[string]int{"DeleteSnapshot": 0}, snapshotsLeft: []string{"snap-s"}, imgsLeft: []string{"ami-2"},
				errSub: "1 of 2 snapshots not deleted", deleteWith: map[string]string{"snap-s": "ami-1"}}},
		{"snapshot still used by another AMI, moto: InUse forever, retried, reported", func(w *world) {
			w.addImage("ami-1", "snap-s")
			w.addImage("ami-2", "snap-s")
			w.f.IgnoreDeleteAssociatedSnapshots = true
		}, dereg("ami-1", "snap-s"),
			want{deregistered: 1, via: map[string]string{"snap-s": ""},
				calls: map[string]int{"DeleteSnapshot": 7}, snapshotsLeft: []string{"snap-s"}, imgsLeft: []string{"ami-2"},
				errSub: "1 of 1 snapshots not deleted"}},
		{"EC2 deletes a snapshot the plan kept (its other AMI went meanwhile): reported", func(w *world) {
			w.addImage("ami-1", "snap-1", "snap-k")
		}, dereg("ami-1", "snap-1"),
			want{done: true, deregistered: 1, deleted: 2, gib: 8,
				via:  map[string]string{"snap-1": execute.ViaDeleteAssociatedSnapshots, "snap-k": execute.ViaDeleteAssociatedSnapshots},
				note: "snap-k was not in the plan"}},
		{"no snapshots to delete: flag not set, kept snapshot stays", func(w *world) {
			w.addImage("ami-1", "snap-k")
		}, dereg("ami-1"),
			want{done: true, deregistered: 1, calls: map[string]int{"CreateTags": 0, "DeleteSnapshot": 0}, snapshotsLeft: []string{"snap-k"}}},
		{"protected AMI: not deregistered, delete-with tag taken off", func(w *world) {
			w.addImage("ami-1", "snap-1")
			w.f.Images["ami-1"].DeregistrationProtection = aws.String("enabled")
		}, dereg("ami-1", "snap-1"),
			want{via: map[string]string{"snap-1": ""}, calls: map[string]int{"CreateTags": 1, "DeleteTags": 1, "DeleteSnapshot": 0},
				snapshotsLeft: []string{"snap-1"}, imgsLeft: []string{"ami-1"}, errSub: "OperationNotPermitted",
				deleteWith: map[string]string{"snap-1": ""}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld()
			c.setup(w)
			res := w.apply(t, context.Background(), enforce([]cleanup.Decision{c.d}))
			r := res.Images[0]
			if r.Done != c.want.done || res.Deregistered != c.want.deregistered || res.SnapshotsDeleted != c.want.deleted || res.GiBFreed != c.want.gib {
				t.Fatalf("result %+v; deregistered %d deleted %d GiB %d", r, res.Deregistered, res.SnapshotsDeleted, res.GiBFreed)
			}
			if c.want.errSub != "" && !strings.Contains(r.Error, c.want.errSub) {
				t.Errorf("error %q, want %q", r.Error, c.want.errSub)
			}
			if c.want.note != "" && !hasNote(r.Notes, c.want.note) {
				t.Errorf("notes %v, want %q", r.Notes, c.want.note)
			}
			got := map[string]string{}
			for _, s := range res.Snapshots {
				got[s.SnapshotID] = s.Via
				if s.Deleted == (s.Error != "") || s.Deleted != (s.Via != "") {
					t.Errorf("inconsistent %+v", s)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want.via) {
				t.Errorf("snapshots %v, want %v", got, c.want.via)
			}
			for op, n := range c.want.calls {
				if w.f.Calls[op] != n {
					t.Errorf("%s calls %d, want %d", op, w.f.Calls[op], n)
				}
			}
			var snaps, imgs []string
			for id := range w.f.Snapshots {
				snaps = append(snaps, id)
			}
			for id := range w.f.Images {
				imgs = append(imgs, id)
			}
			if fmt.Sprint(snaps) != fmt.Sprint(c.want.snapshotsLeft) && !(len(snaps) == 0 && c.want.snapshotsLeft == nil) {
				t.Errorf("snapshots left %v, want %v", snaps, c.want.snapshotsLeft)
			}
			if fmt.Sprint(imgs) != fmt.Sprint(c.want.imgsLeft) && !(len(imgs) == 0 && c.want.imgsLeft == nil) {
				t.Errorf("images left %v, want %v", imgs, c.want.imgsLeft)
			}
			for s, v := range c.want.deleteWith {
				if got := w.tags(s)[cleanup.TagDeleteWith]; got != v {
					t.Errorf("%s %s = %q, want %q", s, cleanup.TagDeleteWith, got, v)
				}
			}
			if res.Throttled != 0 {
				t.Errorf("throttled %d", res.Throttled)
			}
		})
	}
}

func TestDeregisterNeverDeletesBeforeTheAMIIsGone(t *testing.T) {
	w := newWorld()
	w.addImage("ami-1", "snap-1", "snap-2")
	w.f.IgnoreDeleteAssociatedSnapshots = true
	w.apply(t, context.Background(), enforce([]cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionDeregister, DeleteSnapshots: []string{"snap-1", "snap-2"}}}))
	if got := strings.Join(w.spy.ops, ","); got != "CreateTags,CreateTags,DeregisterImage,DeleteSnapshot,DeleteSnapshot" {
		t.Fatalf("order %s", got)
	}
	// One log line per action, with the documented keys.
	var sawDelete bool
	for _, line := range strings.Split(strings.TrimSpace(w.log.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m["action"] == "delete-snapshot" && m["image_id"] == "ami-1" && m["snapshot_id"] == "snap-2" && m["outcome"] == "done" {
			sawDelete = true
		}
	}
	if !sawDelete {
		t.Fatalf("log:\n%s", w.log)
	}
}

func TestOrphanDelete(t *testing.T) {
	w := newWorld()
	w.f.Snapshots["snap-o1"] = snapshot("snap-o1")
	w.f.Snapshots["snap-used"] = snapshot("snap-used")
	w.f.Images["ami-9"] = image("ami-9", "snap-used")
	w.f.Snapshots["snap-keep"] = snapshot("snap-keep")
	plan := enforce(nil,
		cleanup.SnapshotDecision{SnapshotID: "snap-o1", ImageID: "ami-old", Action: cleanup.ActionDeregister, SizeGiB: 8},
		cleanup.SnapshotDecision{SnapshotID: "snap-gone", Action: cleanup.ActionDeregister, SizeGiB: 4},
		cleanup.SnapshotDecision{SnapshotID: "snap-used", Action: cleanup.ActionDeregister, SizeGiB: 2},
		cleanup.SnapshotDecision{SnapshotID: "snap-keep", Action: cleanup.ActionKeep, SizeGiB: 1},
		cleanup.SnapshotDecision{SnapshotID: "snap-keep", Action: cleanup.ActionPending, SizeGiB: 1},
	)
	res := w.apply(t, context.Background(), plan)
	if len(res.Snapshots) != 3 || res.SnapshotsDeleted != 1 || res.GiBFreed != 12 || res.Failed != 1 {
		t.Fatalf("results %+v", res)
	}
	want := []execute.SnapshotResult{
		{SnapshotID: "snap-o1", ImageID: "ami-old", Deleted: true, Via: execute.ViaDeleteSnapshot},
		{SnapshotID: "snap-gone", Deleted: true, Via: execute.ViaAlreadyGone},
	}
	for i, s := range want {
		if fmt.Sprint(res.Snapshots[i]) != fmt.Sprint(s) {
			t.Errorf("snapshot %d: %+v, want %+v", i, res.Snapshots[i], s)
		}
	}
	if s := res.Snapshots[2]; s.Deleted || !strings.Contains(s.Error, "not an orphan after all") {
		t.Errorf("in-use orphan: %+v", s)
	}
	if w.f.Calls["DeleteSnapshot"] != 3 || w.f.Snapshots["snap-used"] == nil || w.f.Snapshots["snap-keep"] == nil {
		t.Fatalf("calls %v, snapshots %v", w.f.Calls, w.f.Snapshots)
	}
}

func TestRefuses(t *testing.T) {
	d := []cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionDeregister, DeleteSnapshots: []string{"snap-1"}}}
	audit := enforce(d)
	audit.Mode = policy.ModeAudit
	blocked := enforce(d)
	blocked.Blocked = "inventory incomplete: DescribeInstances: throttled"
	for name, plan := range map[string]*cleanup.Plan{"audit": audit, "blocked": blocked, "nil": nil, "no mode": {Decisions: d}} {
		t.Run(name, func(t *testing.T) {
			w := newWorld()
			w.addImage("ami-1", "snap-1")
			res := w.ex.Apply(context.Background(), plan)
			err := res.Err()
			if err == nil || res.Refused == "" || len(res.Images)+len(res.Snapshots) != 0 || len(w.spy.ops) != 0 || w.f.Images["ami-1"] == nil {
				t.Fatalf("err %v, results %+v, ops %v", err, res, w.spy.ops)
			}
		})
	}
}

func TestKeepSkipWaitPendingUntouched(t *testing.T) {
	w := newWorld()
	var ds []cleanup.Decision
	for i, a := range []cleanup.Action{cleanup.ActionKeep, cleanup.ActionSkip, cleanup.ActionWait, cleanup.ActionPending} {
		id := fmt.Sprintf("ami-%d", i)
		w.addImage(id, "snap-"+id)
		ds = append(ds, cleanup.Decision{ImageID: id, Action: a, DeleteAfter: "2026-11-30", DeleteSnapshots: []string{"snap-" + id}})
	}
	res := w.apply(t, context.Background(), enforce(ds))
	if len(res.Images) != 0 || len(w.spy.ops) != 0 || len(w.f.Images) != 4 {
		t.Fatalf("results %+v ops %v", res, w.spy.ops)
	}
}

func TestDeadlineMidRun(t *testing.T) {
	for _, moto := range []bool{false, true} {
		t.Run(fmt.Sprintf("moto=%v", moto), func(t *testing.T) {
			w := newWorld()
			w.f.IgnoreDeleteAssociatedSnapshots = moto
			var ds []cleanup.Decision
			for i := 1; i <= 5; i++ {
				id := fmt.Sprintf("ami-%d", i)
				w.addImage(id, "snap-"+id)
				ds = append(ds, cleanup.Decision{ImageID: id, Action: cleanup.ActionDeregister, DeleteSnapshots: []string{"snap-" + id}, SizeGiB: 8})
				ds = append(ds, cleanup.Decision{ImageID: "ami-kept", Action: cleanup.ActionKeep})
			}
			w.f.Snapshots["snap-orphan"] = snapshot("snap-orphan")
			plan := enforce(ds, cleanup.SnapshotDecision{SnapshotID: "snap-orphan", Action: cleanup.ActionDeregister})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// The Lambda deadline strikes while the 2nd DeregisterImage is in flight.
			w.spy.after = func(op string) {
				if op == "DeregisterImage" && w.spy.seen(op) == 2 {
					cancel()
				}
			}
			res := w.apply(t, ctx, plan)
			if len(res.Images) != 5 || len(w.f.Images) != 3 || res.Deregistered != 2 || res.NotStarted != 4 {
				t.Fatalf("images %+v, left %d, deregistered %d, not started %d", res.Images, len(w.f.Images), res.Deregistered, res.NotStarted)
			}
			// The two started deregistrations finished their calls: both AMIs
			// are gone. With EC2's DeleteAssociatedSnapshots their snapshots
			// went with them; with moto the snapshot workers trail the
			// deregistrations, and a deletion the deadline stopped is left
			// tagged delete-with, for the next run to finish.
			for i, id := range []string{"ami-1", "ami-2"} {
				r, snap := res.Images[i], "snap-"+id
				switch {
				case !moto && (!r.Done || w.f.Snapshots[snap] != nil):
					t.Errorf("%s: %+v", id, r)
				case moto && w.f.Snapshots[snap] != nil && (r.Done || w.tags(snap)[cleanup.TagDeleteWith] != id || !strings.Contains(res.Snapshots[i].Error, "next run")):
					t.Errorf("%s: %+v, snapshot %+v, tags %v", id, r, res.Snapshots[i], w.tags(snap))
				case moto && w.f.Snapshots[snap] == nil && !r.Done:
					t.Errorf("%s: snapshot deleted but %+v", id, r)
				}
			}
			if !moto && res.Failed != 0 {
				t.Errorf("failed %d", res.Failed)
			}
			for _, r := range res.Images[2:] {
				if r.Done || r.Error != execute.NotStarted {
					t.Errorf("%+v", r)
				}
			}
			if last := res.Snapshots[len(res.Snapshots)-1]; last.SnapshotID != "snap-orphan" || last.Error != execute.NotStarted || w.f.Snapshots["snap-orphan"] == nil {
				t.Errorf("orphan: %+v", last)
			}
		})
	}
}

func TestInterruptedRunResumes(t *testing.T) {
	w := newWorld()
	w.addImage("ami-1", "snap-1")
	w.f.IgnoreDeleteAssociatedSnapshots = true
	// The run "crashes" after DeregisterImage: DeleteSnapshot never succeeds.
	w.f.Errors["DeleteSnapshot"] = repeat(fake.APIError("UnauthorizedOperation"), 1)
	res := w.apply(t, context.Background(), enforce([]cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionDeregister, DeleteSnapshots: []string{"snap-1"}}}))
	if res.Images[0].Done || w.f.Images["ami-1"] != nil || w.f.Snapshots["snap-1"] == nil {
		t.Fatalf("results %+v", res)
	}
	if got := w.tags("snap-1")[cleanup.TagDeleteWith]; got != "ami-1" {
		t.Fatalf("snap-1 %s = %q; the next run could not find it", cleanup.TagDeleteWith, got)
	}
	// The next plan lists it as an approved orphan; the next run finishes.
	res = w.apply(t, context.Background(), enforce(nil, cleanup.SnapshotDecision{SnapshotID: "snap-1", ImageID: "ami-1", Action: cleanup.ActionDeregister, SizeGiB: 8}))
	if !res.Snapshots[0].Deleted || w.f.Snapshots["snap-1"] != nil || res.GiBFreed != 8 {
		t.Fatalf("resume: %+v", res)
	}
}

func TestThrottlingRetried(t *testing.T) {
	w := newWorld()
	w.addImage("ami-1")
	w.f.Errors["DeregisterImage"] = []error{fake.APIError("RequestLimitExceeded"), motoNotImplemented("DeregisterImage")}
	res := w.apply(t, context.Background(), enforce([]cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionDeregister}}))
	if !res.Images[0].Done || res.Throttled != 1 || w.f.Calls["DeregisterImage"] != 3 {
		t.Fatalf("results %+v, calls %d", res, w.f.Calls["DeregisterImage"])
	}
	if !awserr.IsRetryable(motoNotImplemented("x")) {
		t.Fatal("a 500 should be retryable")
	}
}

// backlog builds a fake with EC2's DeregisterImage and DeleteSnapshot
// buckets (100, refill 5/s) and a plan of n deregistrations (no snapshots)
// or n orphan deletions.
func backlog(n int, orphans bool) (*world, *cleanup.Plan, *fake.Bucket) {
	w := newWorld()
	w.ex.EC2 = w.f // no spy: measure the executor alone
	w.ex.Log = nil
	// The simulated clock adds up the sleeps of concurrent lanes, so it
	// measures one snapshot worker only; the pipeline's real rate is
	// measured through the throttling proxy (BenchmarkCleanupBehindThrottle).
	w.ex.SnapshotWorkers = 1
	op := "DeregisterImage"
	if orphans {
		op = "DeleteSnapshot"
	}
	w.f.Buckets["DeregisterImage"] = fake.NewBucket(w.clock, 100, 5)
	w.f.Buckets["DeleteSnapshot"] = fake.NewBucket(w.clock, 100, 5)
	plan := enforce(nil)
	for i := range n {
		if orphans {
			id := fmt.Sprintf("snap-%05d", i)
			w.f.Snapshots[id] = snapshot(id)
			plan.Orphans = append(plan.Orphans, cleanup.SnapshotDecision{SnapshotID: id, Action: cleanup.ActionDeregister, SizeGiB: 8})
		} else {
			id := fmt.Sprintf("ami-%05d", i)
			w.f.Images[id] = image(id)
			plan.Decisions = append(plan.Decisions, cleanup.Decision{ImageID: id, Action: cleanup.ActionDeregister})
		}
	}
	return w, plan, w.f.Buckets[op]
}

func drain(tb testing.TB, w *world, plan *cleanup.Plan) (execute.Results, float64) {
	start := w.clock.Now()
	res := w.ex.Apply(context.Background(), plan)
	if err := res.Err(); err != nil {
		tb.Fatal(err)
	}
	n := len(plan.Decisions) + len(plan.Orphans)
	return res, float64(n) / w.clock.Now().Sub(start).Seconds()
}

func TestBacklogPacedUnderBucket(t *testing.T) {
	for _, orphans := range []bool{false, true} {
		name := map[bool]string{false: "DeregisterImage", true: "DeleteSnapshot"}[orphans]
		t.Run(name+"/paced", func(t *testing.T) {
			w, plan, bucket := backlog(1000, orphans)
			res, rate := drain(t, w, plan)
			t.Logf("%s: 1000 in %v simulated: %.3f/s, throttled %d, bucket refused %d",
				name, w.clock.Slept(), rate, res.Throttled, bucket.Limited())
			if res.Throttled != 0 || bucket.Limited() != 0 || res.Failed != 0 || res.Deregistered+res.SnapshotsDeleted != 1000 {
				t.Fatalf("results: throttled %d, refused %d, failed %d", res.Throttled, bucket.Limited(), res.Failed)
			}
			if rate < 0.9*5 {
				t.Fatalf("rate %.3f/s < 90%% of 5/s", rate)
			}
		})
		t.Run(name+"/limiter disabled", func(t *testing.T) {
			w, plan, bucket := backlog(1000, orphans)
			w.ex.Limits = execute.Limits{DeregisterPerSec: 1e9, DeleteSnapshotPerSec: 1e9, Burst: 1 << 20}
			res, rate := drain(t, w, plan)
			t.Logf("%s without limiter: %.3f/s, throttled %d, bucket refused %d", name, rate, res.Throttled, bucket.Limited())
			if res.Throttled == 0 || bucket.Limited() != res.Throttled {
				t.Fatalf("the bucket should throttle without the limiter: throttled %d, refused %d", res.Throttled, bucket.Limited())
			}
		})
	}
}

func BenchmarkBacklog1000(b *testing.B) {
	for _, orphans := range []bool{false, true} {
		b.Run(map[bool]string{false: "DeregisterImage", true: "DeleteSnapshot"}[orphans], func(b *testing.B) {
			var rate float64
			var throttles int
			for b.Loop() {
				b.StopTimer()
				w, plan, _ := backlog(1000, orphans)
				b.StartTimer()
				res, r := drain(b, w, plan)
				rate, throttles = r, res.Throttled
			}
			b.ReportMetric(rate, "per-sec")
			b.ReportMetric(float64(throttles), "throttles")
		})
	}
}

func TestFakeSemantics(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	f := w.f
	w.addImage("ami-1", "snap-1")
	if _, err := f.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String("snap-1")}); awserr.Code(err) != "InvalidSnapshot.InUse" {
		t.Fatalf("delete in-use snapshot: %v", err)
	}
	past := t0.Add(-time.Hour)
	if _, err := f.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: aws.String("ami-1"), DeprecateAt: &past}); err == nil {
		t.Fatal("a past deprecation date was accepted")
	}
	if _, err := f.DisableImage(ctx, &ec2.DisableImageInput{ImageId: aws.String("ami-1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String("snap-1")}); awserr.Code(err) != "InvalidSnapshot.InUse" {
		t.Fatalf("delete a disabled AMI's snapshot: %v", err)
	}
	if _, err := f.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String("ami-1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String("ami-1")}); awserr.Code(err) != "InvalidAMIID.Unavailable" {
		t.Fatalf("second deregister: %v", err)
	}
	if _, err := f.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String("ami-x")}); awserr.Code(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("unknown: %v", err)
	}
	w.setTags("snap-1", "a", "1", "b", "2")
	if _, err := f.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{"snap-1"}, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("other")}, {Key: aws.String("b")}}}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(f.Tags("snap-1")); got != "map[a:1]" {
		t.Fatalf("tags after DeleteTags: %s", got)
	}

	clock := fake.NewClock(t0)
	b := fake.NewBucket(clock, 2, 1)
	if !b.Take() || !b.Take() || b.Take() { //nolint:staticcheck // each Take spends a token: full, full, then empty
		t.Fatal("bucket of 2 should allow 2")
	}
	_ = clock.Sleep(ctx, time.Second)
	if !b.Take() || b.Take() || b.Limited() != 2 || b.Allowed() != 3 {
		t.Fatalf("refill: allowed %d limited %d", b.Allowed(), b.Limited())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if clock.Sleep(cctx, time.Second) == nil {
		t.Fatal("Sleep on a cancelled context should fail")
	}
}

// A snapshot two departing AMIs share is deleted with the second only once
// the first is confirmed gone: if the first cannot be deregistered, the
// snapshot stays, whatever DeleteAssociatedSnapshots reports.
func TestSharedSnapshotWaitsForEveryUser(t *testing.T) {
	f := fake.NewEC2()
	clock := fake.NewClock(time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC))
	for _, img := range []struct{ id, state string }{{"ami-1", "available"}, {"ami-2", "available"}} {
		f.Images[img.id] = &types.Image{ImageId: aws.String(img.id), State: types.ImageState(img.state),
			BlockDeviceMappings: []types.BlockDeviceMapping{{Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-s")}}}}
	}
	f.Snapshots["snap-s"] = &types.Snapshot{SnapshotId: aws.String("snap-s")}
	f.IgnoreDeleteAssociatedSnapshots = true // like moto: the executor deletes snapshots itself
	f.Errors["DeregisterImage"] = []error{fake.APIError("OperationNotPermitted")}
	plan := &cleanup.Plan{Mode: policy.ModeEnforce, Decisions: []cleanup.Decision{
		{ImageID: "ami-1", Action: cleanup.ActionDeregister, KeptSnapshots: []string{"snap-s also used by ami-2; deleted with it"}},
		{ImageID: "ami-2", Action: cleanup.ActionDeregister, DeleteSnapshots: []string{"snap-s"},
			SnapshotUsers: map[string][]string{"snap-s": {"ami-1"}}},
	}}
	ex := &execute.Executor{EC2: f, Clock: clock, Records: testKey}
	res := ex.Apply(context.Background(), plan)
	if f.Calls["DeleteSnapshot"] != 0 {
		t.Errorf("DeleteSnapshot called %d times while ami-1 still uses the snapshot", f.Calls["DeleteSnapshot"])
	}
	if _, ok := f.Snapshots["snap-s"]; !ok {
		t.Fatal("the shared snapshot was deleted")
	}
	found := false
	for _, s := range res.Snapshots {
		if s.SnapshotID == "snap-s" && strings.Contains(s.Error, "also used by ami-1") {
			found = true
		}
	}
	if !found {
		t.Errorf("the kept snapshot is not reported with its reason: %+v", res.Snapshots)
	}
}

// A stale delete-with tag on a snapshot of an AMI that stays is removed, so
// it can never approve deleting that snapshot later.
func TestClearStaleDeleteWith(t *testing.T) {
	f := fake.NewEC2()
	f.Images["ami-1"] = &types.Image{ImageId: aws.String("ami-1"), State: types.ImageStateAvailable}
	f.Snapshots["snap-1"] = &types.Snapshot{SnapshotId: aws.String("snap-1"),
		Tags: []types.Tag{{Key: aws.String(cleanup.TagDeleteWith), Value: aws.String(seal(cleanup.TagDeleteWith, "snap-1", "ami-1"))}, {Key: aws.String("team"), Value: aws.String("web")}}}
	plan := &cleanup.Plan{Mode: policy.ModeEnforce, Decisions: []cleanup.Decision{
		{ImageID: "ami-1", Action: cleanup.ActionKeep, Reasons: []string{"in use by instance i-1 (running)"}, ClearDeleteWith: []string{"snap-1"}},
	}}
	res := (&execute.Executor{EC2: f, Clock: fake.NewClock(time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)), Records: testKey}).Apply(context.Background(), plan)
	tags := f.Tags("snap-1")
	if _, stale := tags[cleanup.TagDeleteWith]; stale || tags["team"] != "web" || res.Failed != 0 {
		t.Errorf("tags after = %v, failed %d", tags, res.Failed)
	}
	if _, ok := f.Images["ami-1"]; !ok || f.Calls["DeregisterImage"] != 0 {
		t.Errorf("a kept AMI was touched: %v", f.Calls)
	}
}
