package main_test

// The restore command's tests. moto has no Recycle Bin (moto-notes.md), and
// a fake cannot sit behind the built binary, so:
//   - the command's wiring (flags, plan, confirmation, output, exit codes,
//     the state it leaves) runs in-process: cli.Main with an IO and
//     cli.RestoreBackendForTests pointing EC2, rbin and "who am I" at
//     pkg/fake's stateful RecycleBin (the cleanup's own DeregisterImage puts
//     the AMI and its snapshots there);
//   - bad usage runs through the built binary against a server that counts
//     requests: exit 2 and no AWS call at all.

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	rbtypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cli"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

const (
	restoreAMI    = "ami-0aaaaaaaaaaaaaaa1"
	restoreCaller = "arn:aws:iam::123456789012:user/ops"
)

// binWorld is an account whose cleanup removed restoreAMI (marked, stages
// recorded, snapshot tagged delete-with, deregistered with its snapshot).
func binWorld(t *testing.T, imageDays, snapshotDays int) (*fake.RecycleBin, *fake.Clock) {
	t.Helper()
	var rules []fake.BinRule
	if imageDays > 0 {
		rules = append(rules, fake.BinRule{ID: "ami-rule", ResourceType: rbtypes.ResourceTypeEc2Image, Days: imageDays})
	}
	rules = append(rules, fake.BinRule{ID: "snap-rule", ResourceType: rbtypes.ResourceTypeEbsSnapshot, Days: snapshotDays})
	f := fake.NewRecycleBin(rules...)
	// The fake's clock starts now: the command decides with the wall clock.
	clock := fake.NewClock(time.Now().Add(-48 * time.Hour))
	f.Clock = clock
	f.Images[restoreAMI] = &types.Image{ImageId: aws.String(restoreAMI), Name: aws.String("web-41"), State: types.ImageStateDisabled,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-0aaaaaaaaaaaaaaa1")}}},
		Tags: []types.Tag{{Key: aws.String(cleanup.TagDeleteAfter), Value: aws.String("2026-04-30/0f0f")},
			{Key: aws.String(cleanup.TagDisabledByUs), Value: aws.String("2026-04-30/2d2d")}}}
	f.Snapshots["snap-0aaaaaaaaaaaaaaa1"] = &types.Snapshot{SnapshotId: aws.String("snap-0aaaaaaaaaaaaaaa1"), State: types.SnapshotStateCompleted,
		Description: aws.String("Created by CreateImage(i-0abc) for " + restoreAMI),
		Tags:        []types.Tag{{Key: aws.String(cleanup.TagDeleteWith), Value: aws.String(restoreAMI + "/3c3c")}}}
	if _, err := f.DeregisterImage(context.Background(), &ec2.DeregisterImageInput{ImageId: aws.String(restoreAMI), DeleteAssociatedSnapshots: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(48 * time.Hour)
	useBackend(t, f, restoreCaller)
	return f, clock
}

// restoreKey stands for the records key the cleanup sealed with.
var restoreKey = records.NewKey([]byte("restore-test-records-key"))

// useBackend points the command at f, run by caller.
func useBackend(t *testing.T, f *fake.RecycleBin, caller string) {
	t.Helper()
	cli.RestoreBackendForTests = func(string) cli.RestoreBackend {
		return cli.RestoreBackend{EC2: f, RecycleBin: f, Caller: func(context.Context) (string, error) { return caller, nil },
			RecordsKey: func(context.Context, string) (*records.Key, error) { return restoreKey, nil }}
	}
	t.Cleanup(func() { cli.RestoreBackendForTests = nil })
}

type inProcess struct {
	code     int
	out, err string
}

func restoreMain(t *testing.T, terminal bool, stdin string, args ...string) inProcess {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), args, cli.IO{In: strings.NewReader(stdin), Out: &out, Err: &errb, Terminal: terminal,
		Getenv: func(string) string { return "" }})
	t.Logf("restore %v: exit %d\n%s%s", args, code, out.String(), errb.String())
	return inProcess{code, out.String(), errb.String()}
}

func TestRestoreCommand(t *testing.T) {
	f, _ := binWorld(t, 7, 7)
	args := []string{"restore", restoreAMI, "--region", "eu-west-1", "--reason", "build 41 still runs in staging"}

	// Without a terminal and without --yes: refused before any AWS call.
	clear(f.Calls)
	r := restoreMain(t, false, "", args...)
	if r.code != cli.ExitUsage || !strings.Contains(r.err, "give --yes") || len(f.Calls) != 0 {
		t.Fatalf("without --yes: exit %d, calls %v (want 2 and none)", r.code, f.Calls)
	}
	// A person who says no.
	if r := restoreMain(t, true, "n\n", args...); r.code != cli.ExitError || !strings.Contains(r.err, "not confirmed") {
		t.Fatalf("answered no: exit %d", r.code)
	}
	if !f.InBin(restoreAMI) || f.Calls["CreateTags"]+f.Calls["RestoreImageFromRecycleBin"] != 0 {
		t.Fatal("something changed without a yes")
	}

	// A person who says yes.
	r = restoreMain(t, true, "y\n", args...)
	if r.code != cli.ExitOK {
		t.Fatalf("exit %d", r.code)
	}
	for _, want := range []string{"restore-snapshot", "restore-image", "is back (state available) and carries ami-housekeeper:keep"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	img := f.Images[restoreAMI]
	if img == nil || img.State != types.ImageStateAvailable || f.Snapshots["snap-0aaaaaaaaaaaaaaa1"] == nil {
		t.Fatalf("not restored: %+v", img)
	}
	tags := f.Tags(restoreAMI)
	keep := tags["ami-housekeeper:keep"]
	if !strings.HasPrefix(keep, "restored by "+restoreCaller+" on ") || !strings.HasSuffix(keep, ": build 41 still runs in staging") {
		t.Errorf("protect tag %q: want who and why", keep)
	}
	if tags[cleanup.TagDeleteAfter] != "" || tags[cleanup.TagDisabledByUs] != "" || f.Tags("snap-0aaaaaaaaaaaaaaa1")[cleanup.TagDeleteWith] != "" {
		t.Errorf("the cleanup's records are still there: %v", tags)
	}

	// Again: already restored, nothing to do, nothing changed.
	clear(f.Calls)
	r = restoreMain(t, false, "", append(args, "--output", "json", "--yes")...)
	var doc struct {
		Plan struct {
			Outcome string   `json:"outcome"`
			Reasons []string `json:"reasons"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("json: %v", err)
	}
	if r.code != cli.ExitOK || doc.Plan.Outcome != "nothing-to-do" || f.Calls["CreateTags"]+f.Calls["DeleteTags"] != 0 {
		t.Errorf("second restore: exit %d, %+v, calls %v", r.code, doc.Plan, f.Calls)
	}
}

func TestRestoreCommandUnrecoverable(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		imageDays, snapDays   int
		advance               time.Duration
		want                  string
		restoredButUnlaunched bool
	}{
		{name: "expired", imageDays: 7, snapDays: 7, advance: 6 * 24 * time.Hour, want: "ami-rule (7 days, region): its retention ended"},
		{name: "never in the bin", imageDays: 0, snapDays: 7, want: "has no Recycle Bin retention rule for AMIs (EC2_IMAGE)"},
		{name: "snapshot gone", imageDays: 30, snapDays: 1, want: "cannot launch: snapshot snap-0aaaaaaaaaaaaaaa1 is gone", restoredButUnlaunched: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, clock := binWorld(t, tc.imageDays, tc.snapDays)
			clock.Advance(tc.advance)
			r := restoreMain(t, false, "", "restore", restoreAMI, "--region", "eu-west-1", "--reason", "rollback", "--yes")
			if r.code != cli.ExitError || !strings.Contains(r.out+r.err, tc.want) {
				t.Fatalf("exit %d, want 1 and %q", r.code, tc.want)
			}
			if !tc.restoredButUnlaunched && f.Calls["CreateTags"]+f.Calls["RestoreImageFromRecycleBin"] != 0 {
				t.Error("something changed")
			}
		})
	}
}

// Bad usage: exit 2, and not one request reaches AWS.
func TestRestoreBadUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no reason", []string{"restore", restoreAMI, "--region", "eu-west-1"}, "--reason is required"},
		{"not an AMI", []string{"restore", "ami-xyz", "--region", "eu-west-1", "--reason", "r"}, "is not an AMI ID"},
		{"no AMI", []string{"restore", "--region", "eu-west-1", "--reason", "r"}, "accepts 1 arg"},
		{"bad snapshot", []string{"restore", restoreAMI, "--region", "eu-west-1", "--reason", "r", "--snapshot", "vol-1"}, "is not a snapshot ID"},
		{"two regions", []string{"restore", restoreAMI, "--region", "eu-west-1", "--region", "us-east-1", "--reason", "r"}, "one region"},
		{"bad policy", []string{"restore", restoreAMI, "--region", "eu-west-1", "--reason", "r", "--policy", "/nonexistent.yaml"}, "--policy"},
		{"no --yes off a terminal", []string{"restore", restoreAMI, "--region", "eu-west-1", "--reason", "r"}, "give --yes"},
		{"reason too long", []string{"restore", restoreAMI, "--region", "eu-west-1", "--reason", strings.Repeat("é", 129), "--yes"}, "--reason is 129 characters; at most 128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCounted(t, tc.args...)
			if r.code != cli.ExitUsage || !strings.Contains(r.err, tc.want) {
				t.Errorf("exit %d, stderr %q: want 2 and %q", r.code, r.err, tc.want)
			}
		})
	}
}

// binSnap creates a snapshot and deletes it into the bin.
func binSnap(t *testing.T, f *fake.RecycleBin, id, desc string, tags ...types.Tag) {
	t.Helper()
	f.Snapshots[id] = &types.Snapshot{SnapshotId: aws.String(id), State: types.SnapshotStateCompleted, Description: aws.String(desc), Tags: tags}
	if _, err := f.DeleteSnapshot(context.Background(), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
}

// Snapshots that are not the AMI's stay in the bin: a copy's snapshot
// (its description names the AMI as SourceAmi), a hand-written description
// naming it, and a forged, unsealed delete-with tag (kept on it), with or
// without the records key. The AMI's own snapshot comes back.
func TestRestoreLeavesOtherSnapshotsInTheBin(t *testing.T) {
	const copySnap, craftedDesc, forgedTag = "snap-0bbbbbbbbbbbbbbb1", "snap-0bbbbbbbbbbbbbbb2", "snap-0bbbbbbbbbbbbbbb3"
	for _, key := range []bool{false, true} {
		f, _ := binWorld(t, 7, 7)
		binSnap(t, f, copySnap, "Copied for DestinationAmi ami-0cccccccccccccccc from SourceAmi "+restoreAMI+" for SourceSnapshot snap-0aaaaaaaaaaaaaaa1. Task created on 1,700,000,000,000.")
		binSnap(t, f, craftedDesc, "db backup, not for "+restoreAMI)
		binSnap(t, f, forgedTag, "customer data export", types.Tag{Key: aws.String(cleanup.TagDeleteWith), Value: aws.String(restoreAMI + "/not-a-real-seal")})
		args := []string{"restore", restoreAMI, "--region", "eu-west-1", "--reason", "rollback", "--yes"}
		if key {
			args = append(args, "--records-key", "alias/records")
		}
		r := restoreMain(t, false, "", args...)
		if r.code != cli.ExitOK {
			t.Fatalf("key %v: exit %d", key, r.code)
		}
		if f.Snapshots["snap-0aaaaaaaaaaaaaaa1"] == nil || f.InBin("snap-0aaaaaaaaaaaaaaa1") {
			t.Errorf("key %v: the AMI's own snapshot was not restored", key)
		}
		for _, id := range []string{copySnap, craftedDesc, forgedTag} {
			if !f.InBin(id) {
				t.Errorf("key %v: %s is not the AMI's snapshot, but restore took it out of the Recycle Bin", key, id)
			}
		}
		if f.BinTags(forgedTag)[cleanup.TagDeleteWith] == "" {
			t.Errorf("key %v: the forged delete-with tag on %s was removed", key, forgedTag)
		}
		if !strings.Contains(r.out, "unsealed: a hint") {
			t.Errorf("key %v: the forged tag is not shown as a hint", key)
		}
	}
}

// A registered AMI only to keep: a copy's snapshot in the bin stays there.
func TestRestoreKeepLeavesACopysSnapshotInTheBin(t *testing.T) {
	f, _ := binWorld(t, 7, 7)
	if r := restoreMain(t, false, "", "restore", restoreAMI, "--region", "eu-west-1", "--reason", "rollback", "--yes"); r.code != cli.ExitOK {
		t.Fatal(r.code)
	}
	const copySnap = "snap-0bbbbbbbbbbbbbbb1"
	binSnap(t, f, copySnap, "Copied for DestinationAmi ami-0cccccccccccccccc from SourceAmi "+restoreAMI+" for SourceSnapshot snap-0aaaaaaaaaaaaaaa1.")
	if _, err := f.DeleteTags(context.Background(), &ec2.DeleteTagsInput{Resources: []string{restoreAMI}, Tags: []types.Tag{{Key: aws.String("ami-housekeeper:keep")}}}); err != nil {
		t.Fatal(err)
	}
	r := restoreMain(t, false, "", "restore", restoreAMI, "--region", "eu-west-1", "--reason", "keep it", "--yes")
	if r.code != cli.ExitOK || !strings.Contains(r.out, "keep") {
		t.Fatalf("exit %d", r.code)
	}
	if !f.InBin(copySnap) {
		t.Errorf("keeping %s brought the copy's snapshot %s back", restoreAMI, copySnap)
	}
	if f.Tags(restoreAMI)["ami-housekeeper:keep"] == "" {
		t.Error("not protected")
	}
}

// Another account's AMI (public, visible to DescribeImages): exit 1, said
// so, nothing tagged.
func TestRestoreForeignAMI(t *testing.T) {
	f, _ := binWorld(t, 7, 7)
	const foreign = "ami-0ddddddddddddddd1"
	f.Images[foreign] = &types.Image{ImageId: aws.String(foreign), OwnerId: aws.String("999999999999"), Public: aws.Bool(true),
		Name: aws.String("vendor-image"), State: types.ImageStateAvailable,
		Tags: []types.Tag{{Key: aws.String(cleanup.TagDeleteAfter), Value: aws.String("2026-01-01/xx")}}}
	clear(f.Calls)
	r := restoreMain(t, false, "", "restore", foreign, "--region", "eu-west-1", "--reason", "x", "--yes")
	if r.code != cli.ExitError || !strings.Contains(r.out, "owned by 999999999999") || f.Calls["CreateTags"]+f.Calls["DeleteTags"] > 0 {
		t.Errorf("exit %d, calls %v: want 1, \"owned by 999999999999\", no tag written", r.code, f.Calls)
	}
}

// The protect value: a non-ASCII reason at the limit stays whole; a long
// caller ARN is cut by characters, so the value is valid UTF-8 and at most
// EC2's 256 characters.
func TestRestoreProtectValueFits(t *testing.T) {
	for _, caller := range []string{restoreCaller, "arn:aws:sts::123456789012:assumed-role/" + strings.Repeat("é", 64) + "/" + strings.Repeat("ü", 64)} {
		f, _ := binWorld(t, 7, 7)
		useBackend(t, f, caller)
		reason := "x" + strings.Repeat("é", 127)
		r := restoreMain(t, false, "", "restore", restoreAMI, "--region", "eu-west-1", "--reason", reason, "--yes")
		if r.code != cli.ExitOK {
			t.Fatalf("exit %d", r.code)
		}
		v := f.Tags(restoreAMI)["ami-housekeeper:keep"]
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > 256 || !strings.HasSuffix(v, ": "+reason) || !strings.HasPrefix(v, "restored by arn:aws:") {
			t.Errorf("caller %d bytes: protect value %q (%d characters, valid UTF-8 %v)", len(caller), v, utf8.RuneCountInString(v), utf8.ValidString(v))
		}
	}
}

// Without --policy the default protect tag is written: said on stderr.
func TestRestoreWarnsWithoutPolicy(t *testing.T) {
	binWorld(t, 7, 7)
	r := restoreMain(t, false, "", "restore", restoreAMI, "--region", "eu-west-1", "--reason", "rollback", "--yes")
	if r.code != cli.ExitOK || !strings.Contains(r.err, "protect_tag") || !strings.Contains(r.err, "--policy") {
		t.Errorf("exit %d, stderr %q: want a warning naming protect_tag and --policy", r.code, r.err)
	}
}
