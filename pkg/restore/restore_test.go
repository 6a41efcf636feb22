package restore_test

// The Recycle Bin is not in moto, so these tests run against pkg/fake's
// stateful RecycleBin: the cleanup's own calls (DeregisterImage with
// DeleteAssociatedSnapshots, DeleteSnapshot) send what a rule covers to the
// bin, and the simulated clock ends retention.

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	rbtypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/restore"
)

// key is the records key the cleanup sealed its delete-with tags with.
var key = records.NewKey([]byte("restore-unit-test-key"))

const (
	ami        = "ami-0123456789abcdef0"
	protectTag = "ami-housekeeper:keep"
	who        = "restored by arn:aws:iam::123456789012:user/ops: build 41 broke"
)

var start = time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)

func rules(imageDays, snapshotDays int) []fake.BinRule {
	var rs []fake.BinRule
	if imageDays > 0 {
		rs = append(rs, fake.BinRule{ID: "img-rule", ResourceType: rbtypes.ResourceTypeEc2Image, Days: imageDays})
	}
	if snapshotDays > 0 {
		rs = append(rs, fake.BinRule{ID: "snap-rule", ResourceType: rbtypes.ResourceTypeEbsSnapshot, Days: snapshotDays})
	}
	return rs
}

// removed builds an account where the cleanup removed ami as it does:
// marked (stages recorded and applied), its snapshots tagged delete-with,
// then deregistered with DeleteAssociatedSnapshots. snap-2 was made by
// RegisterImage (no description naming the AMI).
func removed(t *testing.T, rs []fake.BinRule) (*fake.RecycleBin, *fake.Clock) {
	t.Helper()
	f := fake.NewRecycleBin(rs...)
	clock := fake.NewClock(start)
	f.Clock = clock
	f.Images[ami] = &types.Image{ImageId: aws.String(ami), Name: aws.String("web-41"), State: types.ImageStateDisabled,
		DeprecationTime: aws.String("2026-04-20T00:00:00.000Z"),
		BlockDeviceMappings: []types.BlockDeviceMapping{
			{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-1")}},
			{DeviceName: aws.String("/dev/xvdb"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-2")}},
		},
		Tags: []types.Tag{
			{Key: aws.String(cleanup.TagDeleteAfter), Value: aws.String("2026-04-30/0f0f")},
			{Key: aws.String(cleanup.TagDeprecatedByUs), Value: aws.String("2026-04-30/1e1e")},
			{Key: aws.String(cleanup.TagDisabledByUs), Value: aws.String("2026-04-30/2d2d")},
			{Key: aws.String("team"), Value: aws.String("web")},
		}}
	f.Snapshots["snap-1"] = &types.Snapshot{SnapshotId: aws.String("snap-1"), State: types.SnapshotStateCompleted,
		Description: aws.String("Created by CreateImage(i-0abc) for " + ami)}
	f.Snapshots["snap-2"] = &types.Snapshot{SnapshotId: aws.String("snap-2"), State: types.SnapshotStateCompleted}
	f.Snapshots["snap-other"] = &types.Snapshot{SnapshotId: aws.String("snap-other"), State: types.SnapshotStateCompleted,
		Description: aws.String("Created by CreateImage(i-0def) for ami-0fedcba9876543210")}
	ctx := context.Background()
	for _, s := range []string{"snap-1", "snap-2"} {
		if _, err := f.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{s},
			Tags: []types.Tag{{Key: aws.String(cleanup.TagDeleteWith), Value: aws.String(key.Seal(cleanup.TagDeleteWith, s, ami))}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(ami), DeleteAssociatedSnapshots: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	// An unrelated snapshot in the bin must stay there.
	if _, err := f.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String("snap-other")}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(48 * time.Hour)
	clear(f.Calls)
	return f, clock
}

func run(t *testing.T, f *fake.RecycleBin, clock *fake.Clock, extra ...string) (restore.Plan, restore.Result, error) {
	t.Helper()
	return runWith(t, &restore.Restorer{EC2: f, Rules: f, Region: "eu-west-1", Account: "123456789012", Key: key}, clock, extra...)
}

func runWith(t *testing.T, r *restore.Restorer, clock *fake.Clock, extra ...string) (restore.Plan, restore.Result, error) {
	t.Helper()
	facts, err := r.Inspect(context.Background(), ami, extra)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	p := restore.Decide(facts, protectTag, who, clock.Now())
	res, err := r.Apply(context.Background(), p)
	return p, res, err
}

// mutations counts the calls that change something.
func mutations(f *fake.RecycleBin) int {
	n := 0
	for _, op := range []string{"CreateTags", "DeleteTags", "RestoreImageFromRecycleBin", "RestoreSnapshotFromRecycleBin", "EnableImage", "DisableImageDeprecation"} {
		n += f.Calls[op]
	}
	return n
}

func TestRestoreBringsBackImageAndSnapshotsAndKeepsIt(t *testing.T) {
	f, clock := removed(t, rules(7, 7))
	if !f.InBin(ami) || !f.InBin("snap-1") || !f.InBin("snap-2") {
		t.Fatal("setup: the cleanup's removal did not reach the bin")
	}
	p, res, err := run(t, f, clock)
	if err != nil {
		t.Fatalf("apply: %v (%+v)", err, res)
	}
	if p.Outcome != restore.OutcomeRestore || !slices.Equal(p.RestoreSnapshots, []string{"snap-1", "snap-2"}) {
		t.Fatalf("plan = %+v", p)
	}
	if want := start.Add(7 * 24 * time.Hour); p.RecoverableUntil == nil || !p.RecoverableUntil.Equal(want) {
		t.Errorf("recoverable until %v, want %v", p.RecoverableUntil, want)
	}
	img := f.Images[ami]
	if img == nil {
		t.Fatal("the AMI is not registered again")
	}
	if img.State != types.ImageStateAvailable || img.DeprecationTime != nil {
		t.Errorf("the cleanup's stages were not undone: state %s, deprecation %v", img.State, aws.ToString(img.DeprecationTime))
	}
	tags := f.Tags(ami)
	for _, k := range []string{cleanup.TagDeleteAfter, cleanup.TagDeprecatedByUs, cleanup.TagDisabledByUs, fake.TagInBin} {
		if _, ok := tags[k]; ok {
			t.Errorf("tag %s is still on the AMI: %v", k, tags)
		}
	}
	if tags[protectTag] != who || tags["team"] != "web" {
		t.Errorf("tags = %v, want the protect tag with who and why, and the owner's tags kept", tags)
	}
	for _, s := range []string{"snap-1", "snap-2"} {
		if f.Snapshots[s] == nil {
			t.Fatalf("%s was not restored", s)
		}
		if st := f.Tags(s); st[cleanup.TagDeleteWith] != "" || st[fake.TagInBin] != "" {
			t.Errorf("%s keeps %v", s, st)
		}
	}
	if !f.InBin("snap-other") {
		t.Error("an unrelated snapshot was restored")
	}
	// Order: protected first, delete-with off, the image, then the
	// snapshots its mappings name.
	var order []string
	for _, s := range res.Steps {
		order = append(order, s.Action)
	}
	want := []string{"protect", "remove-delete-with", "restore-image", "restore-snapshot", "restore-snapshot", "enable", "cancel-deprecation", "unmark"}
	if !slices.Equal(order, want) {
		t.Errorf("steps = %v, want %v", order, want)
	}
	if res.Failed() {
		t.Errorf("result failed: %+v", res)
	}
}

func TestRestoreTwiceIsNothingToDo(t *testing.T) {
	f, clock := removed(t, rules(7, 7))
	if _, _, err := run(t, f, clock); err != nil {
		t.Fatal(err)
	}
	clear(f.Calls)
	p, res, err := run(t, f, clock)
	if err != nil {
		t.Fatal(err)
	}
	if p.Outcome != restore.OutcomeNothing || p.Changes() {
		t.Fatalf("second restore: %+v", p)
	}
	if !strings.Contains(strings.Join(p.Reasons, "\n"), "already restored, or never removed") {
		t.Errorf("reasons = %q", p.Reasons)
	}
	if n := mutations(f); n != 0 || len(res.Steps) != 0 {
		t.Errorf("%d changing calls, steps %+v", n, res.Steps)
	}
}

func TestExpiredIsUnrecoverable(t *testing.T) {
	f, clock := removed(t, rules(7, 7))
	clock.Advance(6 * 24 * time.Hour) // 8 days after removal
	p, _, err := run(t, f, clock)
	if err != nil {
		t.Fatal(err)
	}
	if p.Outcome != restore.OutcomeUnrecoverable {
		t.Fatalf("plan = %+v", p)
	}
	why := strings.Join(p.Reasons, "\n")
	for _, want := range []string{"neither registered nor in the Recycle Bin of eu-west-1", "img-rule (7 days, region)", "its retention ended"} {
		if !strings.Contains(why, want) {
			t.Errorf("reasons %q lack %q", why, want)
		}
	}
	if mutations(f) != 0 || f.Images[ami] != nil {
		t.Error("something changed")
	}
}

func TestNeverInTheBin(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []fake.BinRule
		want  string
	}{
		{"no rule", rules(0, 7), "has no Recycle Bin retention rule for AMIs (EC2_IMAGE): a deregistered AMI is deleted at once"},
		{"tag-level rule", []fake.BinRule{{ID: "tagged", ResourceType: rbtypes.ResourceTypeEc2Image, Days: 30, ResourceTags: map[string]string{"keep-in-bin": "yes"}}},
			"tagged (30 days, tagged resources only): its retention ended, no rule covered it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, clock := removed(t, tc.rules)
			if f.InBin(ami) {
				t.Fatal("setup: no rule covers the AMI, yet it is in the bin")
			}
			p, _, err := run(t, f, clock)
			if err != nil {
				t.Fatal(err)
			}
			if p.Outcome != restore.OutcomeUnrecoverable || !strings.Contains(strings.Join(p.Reasons, "\n"), tc.want) {
				t.Fatalf("plan = %+v, want a reason with %q", p, tc.want)
			}
			if mutations(f) != 0 {
				t.Error("something changed")
			}
		})
	}
}

// The snapshots' retention (1 day) ended before the AMI's (30): their
// tags went with them, so nothing before the restore can tell.
func TestSnapshotsGone(t *testing.T) {
	t.Run("found after the image is back", func(t *testing.T) {
		f, clock := removed(t, rules(30, 1))
		p, res, err := run(t, f, clock)
		if err != nil {
			t.Fatal(err)
		}
		if p.Outcome != restore.OutcomeRestore || len(p.RestoreSnapshots) != 0 {
			t.Fatalf("plan = %+v", p)
		}
		if !slices.Equal(res.Missing, []string{"snap-1", "snap-2"}) || !res.Failed() {
			t.Errorf("result = %+v, want both snapshots reported missing", res)
		}
	})
	t.Run("known beforehand: nothing restored", func(t *testing.T) {
		f, clock := removed(t, rules(30, 1))
		p, _, err := run(t, f, clock, "snap-1")
		if err != nil {
			t.Fatal(err)
		}
		why := strings.Join(p.Reasons, "\n")
		if p.Outcome != restore.OutcomeUnrecoverable || !strings.Contains(why, "snap-1 (known by --snapshot)") || !strings.Contains(why, "snap-rule (1 days, region)") {
			t.Fatalf("plan = %+v", p)
		}
		if mutations(f) != 0 || !f.InBin(ami) {
			t.Error("something changed")
		}
	})
}

// A snapshot that neither names the AMI nor carries delete-with (the
// cleanup stopped before tagging it) is found through the restored AMI's
// block device mappings and restored then.
func TestSnapshotFoundOnlyByMappings(t *testing.T) {
	f, clock := removed(t, rules(7, 7))
	if _, err := f.DeleteTags(context.Background(), &ec2.DeleteTagsInput{Resources: []string{"snap-2"},
		Tags: []types.Tag{{Key: aws.String(cleanup.TagDeleteWith)}}}); err != nil {
		t.Fatal(err)
	}
	p, res, err := run(t, f, clock)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.RestoreSnapshots, []string{"snap-1"}) {
		t.Fatalf("plan restores %v, want snap-1 only (snap-2 is not known beforehand)", p.RestoreSnapshots)
	}
	if f.Snapshots["snap-2"] == nil || res.Failed() {
		t.Errorf("snap-2 not restored after the image: %+v", res)
	}
}

func TestRegisteredAndMarkedIsKept(t *testing.T) {
	f := fake.NewRecycleBin(rules(7, 7)...)
	clock := fake.NewClock(start)
	f.Clock = clock
	f.Images[ami] = &types.Image{ImageId: aws.String(ami), State: types.ImageStateAvailable,
		Tags: []types.Tag{{Key: aws.String(cleanup.TagDeleteAfter), Value: aws.String("2026-05-09/abab")}}}
	p, res, err := run(t, f, clock)
	if err != nil {
		t.Fatal(err)
	}
	if p.Outcome != restore.OutcomeKeep || p.RestoreImage {
		t.Fatalf("plan = %+v", p)
	}
	tags := f.Tags(ami)
	if tags[protectTag] != who || tags[cleanup.TagDeleteAfter] != "" {
		t.Errorf("tags = %v", tags)
	}
	if f.Calls["RestoreImageFromRecycleBin"] != 0 || f.Calls["EnableImage"] != 0 || len(res.Steps) != 2 {
		t.Errorf("calls %v, steps %+v", f.Calls, res.Steps)
	}
}

// Without the records key (or with a forged seal) a delete-with tag is a
// hint: shown, its tag left alone, nothing restored for it. A copy's
// snapshot names the AMI as SourceAmi: not the AMI's. The image's own
// mappings still bring back both its snapshots.
func TestOnlyTheAMIsSnapshotsComeBack(t *testing.T) {
	for _, withKey := range []bool{false, true} {
		f, clock := removed(t, rules(7, 7))
		ctx := context.Background()
		f.Snapshots["snap-copy"] = &types.Snapshot{SnapshotId: aws.String("snap-copy"), State: types.SnapshotStateCompleted,
			Description: aws.String("Copied for DestinationAmi ami-0ccccccccccccccc0 from SourceAmi " + ami + " for SourceSnapshot snap-1. Task created on 1,700,000,000,000.")}
		f.Snapshots["snap-forged"] = &types.Snapshot{SnapshotId: aws.String("snap-forged"), State: types.SnapshotStateCompleted,
			Description: aws.String("customer data"), Tags: []types.Tag{{Key: aws.String(cleanup.TagDeleteWith), Value: aws.String(ami + "/0000")}}}
		for _, s := range []string{"snap-copy", "snap-forged"} {
			if _, err := f.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(s)}); err != nil {
				t.Fatal(err)
			}
		}
		r := &restore.Restorer{EC2: f, Rules: f, Region: "eu-west-1", Account: "123456789012"}
		if withKey {
			r.Key = key
		}
		p, res, err := runWith(t, r, clock)
		if err != nil || res.Failed() {
			t.Fatalf("key %v: %v %+v", withKey, err, res)
		}
		wantUntag := []string{"snap-1"} // proven by its description only
		if withKey {
			wantUntag = []string{"snap-1", "snap-2"} // and sealed tags
		}
		if !slices.Equal(p.UntagSnapshots, wantUntag) || slices.Contains(p.RestoreSnapshots, "snap-forged") || slices.Contains(p.RestoreSnapshots, "snap-copy") {
			t.Errorf("key %v: untag %v, restore %v; want untag %v and neither snap-copy nor snap-forged", withKey, p.UntagSnapshots, p.RestoreSnapshots, wantUntag)
		}
		for _, s := range []string{"snap-1", "snap-2"} {
			if f.Snapshots[s] == nil || f.InBin(s) {
				t.Errorf("key %v: %s (in the mappings) was not restored", withKey, s)
			}
		}
		for _, s := range []string{"snap-copy", "snap-forged", "snap-other"} {
			if !f.InBin(s) {
				t.Errorf("key %v: %s is not the AMI's, but left the bin", withKey, s)
			}
		}
		if f.BinTags("snap-forged")[cleanup.TagDeleteWith] == "" {
			t.Errorf("key %v: the forged tag was removed", withKey)
		}
	}
}

// An AMI still registered: only the snapshots its mappings name come out
// of the bin; a copy's snapshot naming it as SourceAmi stays.
func TestKeepRestoresOnlyMappedSnapshots(t *testing.T) {
	f := fake.NewRecycleBin(rules(7, 7)...)
	clock := fake.NewClock(start)
	f.Clock = clock
	ctx := context.Background()
	f.Snapshots["snap-1"] = &types.Snapshot{SnapshotId: aws.String("snap-1"), State: types.SnapshotStateCompleted, Description: aws.String("Created by CreateImage(i-0abc) for " + ami)}
	f.Snapshots["snap-copy"] = &types.Snapshot{SnapshotId: aws.String("snap-copy"), State: types.SnapshotStateCompleted,
		Description: aws.String("Copied for DestinationAmi ami-0ccccccccccccccc0 from SourceAmi " + ami + " for SourceSnapshot snap-1.")}
	for _, s := range []string{"snap-1", "snap-copy"} {
		if _, err := f.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(s)}); err != nil {
			t.Fatal(err)
		}
	}
	// Registered again (an earlier restore brought the image back only).
	f.Images[ami] = &types.Image{ImageId: aws.String(ami), OwnerId: aws.String("123456789012"), State: types.ImageStateAvailable,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-1")}}},
		Tags:                []types.Tag{{Key: aws.String(protectTag), Value: aws.String("earlier")}}}
	p, res, err := run(t, f, clock)
	if err != nil || res.Failed() {
		t.Fatalf("%v %+v", err, res)
	}
	if p.Outcome != restore.OutcomeKeep || !slices.Equal(p.RestoreSnapshots, []string{"snap-1"}) {
		t.Fatalf("plan = %+v", p)
	}
	if f.InBin("snap-1") || !f.InBin("snap-copy") {
		t.Errorf("snap-1 in bin %v (want restored), snap-copy in bin %v (want kept there)", f.InBin("snap-1"), f.InBin("snap-copy"))
	}
}

// Another account's AMI is refused, untouched.
func TestForeignAMIRefused(t *testing.T) {
	f := fake.NewRecycleBin(rules(7, 7)...)
	clock := fake.NewClock(start)
	f.Clock = clock
	f.Images[ami] = &types.Image{ImageId: aws.String(ami), OwnerId: aws.String("999999999999"), State: types.ImageStateAvailable,
		Tags: []types.Tag{{Key: aws.String(cleanup.TagDeleteAfter), Value: aws.String("2026-05-09/abab")}}}
	p, _, err := run(t, f, clock)
	if err != nil {
		t.Fatal(err)
	}
	if p.Outcome != restore.OutcomeUnrecoverable || !strings.Contains(strings.Join(p.Reasons, "\n"), "owned by 999999999999") || mutations(f) != 0 {
		t.Errorf("plan %+v, %d changing calls", p, mutations(f))
	}
}
