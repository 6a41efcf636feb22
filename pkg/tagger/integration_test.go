package tagger_test

// Integration tests: the real SDK, the real wire protocol, moto server as
// the AWS account (started by the tests, see pkg/emulator). One test uses a
// decorator (multiSnapshotEC2) because moto's CreateImage always makes
// exactly one snapshot; the extra snapshots are real moto snapshots.

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}

type motoWorld struct {
	ctx     context.Context
	clients *awsapi.Clients
	calls   *awsapi.CallCounter
	seed    emulator.Seeder
	instID  string
}

func newMotoWorld(t *testing.T) *motoWorld { return newMotoWorldB(t) }

func newMotoWorldB(t testing.TB) *motoWorld {
	t.Helper()
	ctx := context.Background()
	moto := emulator.SharedMoto(t)
	cfg, err := moto.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	w := &motoWorld{ctx: ctx, calls: awsapi.NewCallCounter()}
	w.clients = awsapi.NewClients(w.calls.Attach(cfg))
	w.seed = emulator.Seeder{EC2: ec2.NewFromConfig(cfg)}
	if w.instID, err = w.seed.Instance(ctx, emulator.ForeignImageID, "team", "web", "Name", "builder"); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *motoWorld) source() tagger.ClientSource {
	return func(region string) awsapi.TaggerEC2 { return w.clients.EC2(region) }
}

func (w *motoWorld) tags(t *testing.T, id string) map[string]string {
	t.Helper()
	m, err := w.seed.Tags(w.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (w *motoWorld) newImage(t *testing.T, name string, tags ...string) (string, []string) {
	t.Helper()
	id, err := w.seed.CreateImage(w.ctx, w.instID, name, tags...)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := w.seed.Snapshots(w.ctx, id)
	if err != nil || len(snaps) == 0 {
		t.Fatalf("snapshots of %s: %v %v", id, snaps, err)
	}
	return id, snaps
}

func copyPolicy() policy.Tagging {
	p := policy.Default().Tagging
	p.CopyFromSource = []string{"team"}
	p.StaticTags = map[string]string{"managed-by": "ami-housekeeper"}
	return p
}

func TestMotoCreateImage(t *testing.T) {
	w := newMotoWorld(t)
	ami, snaps := w.newImage(t, "web-base-1")
	req := tagger.Request{Account: acct, Region: "us-east-1", ImageID: ami, Operation: "CreateImage",
		Principal: "arn:aws:sts::123456789012:assumed-role/builder/s1", Issuer: "arn:aws:iam::123456789012:role/builder", SourceInstanceID: w.instID}
	res, err := tagger.New(w.source(), copyPolicy()).Tag(w.ctx, req)
	if err != nil || res.Outcome != tagger.OutcomeTagged {
		t.Fatalf("%s %v", res.Outcome, err)
	}
	if w.calls.Total() > 4 {
		t.Errorf("%d API calls for a new AMI, budget 4: %v", w.calls.Total(), w.calls.Counts())
	}
	for _, id := range append([]string{ami}, snaps...) {
		got := w.tags(t, id)
		want := map[string]string{
			"ami-housekeeper:created-by":        req.Principal,
			"ami-housekeeper:created-by-issuer": req.Issuer,
			"ami-housekeeper:created-via":       "CreateImage",
			"ami-housekeeper:source-instance":   w.instID,
			"team":                              "web",
			"managed-by":                        "ami-housekeeper",
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", id, k, got[k], v)
			}
		}
		if got["ami-housekeeper:created-at"] == "" || got["Name"] != "" {
			t.Errorf("%s: tags %v", id, got)
		}
	}
}

func TestMotoCopyImageFromAnotherRegion(t *testing.T) {
	w := newMotoWorld(t)
	// The source AMI lives in eu-west-1 with a team tag.
	euSeed := emulator.Seeder{EC2: w.clients.EC2("eu-west-1").(*ec2.Client)}
	euInst, err := euSeed.Instance(w.ctx, emulator.ForeignImageID)
	if err != nil {
		t.Fatal(err)
	}
	src, err := euSeed.CreateImage(w.ctx, euInst, "web-base-eu", "team", "payments")
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.seed.EC2.CopyImage(w.ctx, &ec2.CopyImageInput{Name: aws.String("web-base-copy"), SourceImageId: aws.String(src), SourceRegion: aws.String("eu-west-1")})
	if err != nil {
		t.Fatal(err)
	}
	ami := aws.ToString(out.ImageId)
	res, err := tagger.New(w.source(), copyPolicy()).Tag(w.ctx, tagger.Request{Account: acct, Region: "us-east-1", ImageID: ami,
		Operation: "CopyImage", Principal: "arn:aws:iam::123456789012:user/alice", SourceImageID: src, SourceRegion: "eu-west-1"})
	if err != nil || res.Outcome != tagger.OutcomeTagged || len(res.SnapshotIDs) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	for _, id := range []string{ami, res.SnapshotIDs[0]} {
		got := w.tags(t, id)
		if got["ami-housekeeper:source-image"] != src || got["ami-housekeeper:source-region"] != "eu-west-1" ||
			got["ami-housekeeper:created-via"] != "CopyImage" || got["team"] != "payments" {
			t.Errorf("%s tags = %v", id, got)
		}
	}
}

func TestMotoRegisterImage(t *testing.T) {
	w := newMotoWorld(t)
	out, err := w.seed.EC2.RegisterImage(w.ctx, &ec2.RegisterImageInput{Name: aws.String("appliance"), RootDeviceName: aws.String("/dev/xvda")})
	if err != nil {
		t.Fatal(err)
	}
	ami := aws.ToString(out.ImageId)
	res, err := tagger.New(w.source(), policy.Default().Tagging).Tag(w.ctx, tagger.Request{Account: acct, Region: "us-east-1", ImageID: ami,
		Operation: "RegisterImage", Principal: "arn:aws:iam::123456789012:root"})
	if err != nil || res.Outcome != tagger.OutcomeTagged {
		t.Fatalf("%+v %v", res, err)
	}
	for _, id := range append([]string{ami}, res.SnapshotIDs...) {
		if got := w.tags(t, id); got["ami-housekeeper:created-via"] != "RegisterImage" || got["ami-housekeeper:created-by"] != "arn:aws:iam::123456789012:root" {
			t.Errorf("%s tags = %v", id, got)
		}
	}
}

// Either event may arrive first; the final tags must be the same.
func TestMotoEventOrderConverges(t *testing.T) {
	w := newMotoWorld(t)
	tg := tagger.New(w.source(), copyPolicy())
	final := map[string]map[string]string{}
	for _, order := range []string{"cloudtrail-first", "state-change-first"} {
		ami, snaps := w.newImage(t, "order-"+order)
		ct := tagger.Request{Account: acct, Region: "us-east-1", ImageID: ami, Operation: "CreateImage",
			Principal: "arn:aws:iam::123456789012:user/bob", SourceInstanceID: w.instID}
		sc := tagger.Request{Account: acct, Region: "us-east-1", ImageID: ami}
		seq := []tagger.Request{ct, sc}
		if order == "state-change-first" {
			seq = []tagger.Request{sc, ct}
		}
		for _, r := range append(seq, seq...) { // and each delivered twice
			if _, err := tg.Tag(w.ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		got := w.tags(t, snaps[0])
		if !reflect.DeepEqual(got, w.tags(t, ami)) {
			t.Errorf("%s: AMI and snapshot tags differ", order)
		}
		delete(got, "ami-housekeeper:created-at") // differs per AMI, checked below
		final[order] = got
		if w.tags(t, ami)["ami-housekeeper:created-at"] == "" {
			t.Errorf("%s: no created-at", order)
		}
	}
	if !reflect.DeepEqual(final["cloudtrail-first"], final["state-change-first"]) {
		t.Errorf("final tags depend on event order:\n%v\n%v", final["cloudtrail-first"], final["state-change-first"])
	}
}

// TestMotoDuplicateDeliveryAndExistingTags: tags the caller set at creation
// (TagSpecifications) are kept, except a forged provenance tag, which the
// CloudTrail record replaces; replays then write nothing.
func TestMotoDuplicateDeliveryAndExistingTags(t *testing.T) {
	w := newMotoWorld(t)
	ami, snaps := w.newImage(t, "dup", "ami-housekeeper:created-by", "arn:aws:iam::123456789012:user/ceo",
		"ami-housekeeper:created-by-issuer", "arn:aws:iam::123456789012:role/admin", "managed-by", "set-at-creation")
	req := tagger.Request{Account: acct, Region: "us-east-1", ImageID: ami, Operation: "CreateImage",
		Principal: "arn:aws:iam::123456789012:user/bob", SourceInstanceID: w.instID,
		CallerTags: map[string]map[string]string{"image": {"ami-housekeeper:created-by": "arn:aws:iam::123456789012:user/ceo"}}}
	p := policy.Default().Tagging
	p.StaticTags = map[string]string{"managed-by": "ami-housekeeper"}
	tg := tagger.New(w.source(), p)
	w.calls.Reset()
	first, err := tg.Tag(w.ctx, req)
	if err != nil || first.Outcome != tagger.OutcomeTagged {
		t.Fatalf("%+v %v", first, err)
	}
	if n := w.calls.Total(); n > 4 {
		t.Errorf("%d API calls for a new AMI, budget 4: %v", n, w.calls.Counts())
	}
	before := w.tags(t, ami)
	w.calls.Reset()
	for i := 0; i < 3; i++ {
		res, err := tg.Tag(w.ctx, req)
		if err != nil || res.Outcome != tagger.OutcomeUpToDate {
			t.Fatalf("replay %d: %+v %v", i, res, err)
		}
	}
	if n := w.calls.Counts()["CreateTags"]; n != 0 {
		t.Errorf("replays made %d CreateTags calls", n)
	}
	if after := w.tags(t, ami); !reflect.DeepEqual(before, after) {
		t.Errorf("replay changed tags:\n%v\n%v", before, after)
	}
	if before["ami-housekeeper:created-by"] != req.Principal || before["ami-housekeeper:created-by-issuer"] != "" {
		t.Errorf("kept a forged creator: %v", before)
	}
	if before["managed-by"] != "set-at-creation" {
		t.Errorf("overwrote a non-provenance tag set at creation: %v", before)
	}
	if len(first.Replaced) != 2 || !strings.Contains(first.Replaced[0].Reason, "TagSpecifications") {
		t.Errorf("replacements not reported: %+v", first.Replaced)
	}
	if w.tags(t, snaps[0])["ami-housekeeper:created-by"] != req.Principal {
		t.Errorf("snapshot not tagged with the creator: %v", w.tags(t, snaps[0]))
	}
}

func TestMotoNotOwnedAndGone(t *testing.T) {
	w := newMotoWorld(t)
	tg := tagger.New(w.source(), policy.Default().Tagging)
	res, err := tg.Tag(w.ctx, tagger.Request{Account: acct, Region: "us-east-1", ImageID: emulator.ForeignImageID, Operation: "CopyImage"})
	if err != nil || res.Outcome != tagger.OutcomeNotOwned {
		t.Fatalf("%+v %v", res, err)
	}
	if n := w.calls.Counts()["CreateTags"]; n != 0 || len(w.tags(t, emulator.ForeignImageID)) != 0 {
		t.Errorf("changed an AMI we do not own")
	}
	ami, _ := w.newImage(t, "gone")
	if _, err := w.seed.EC2.DeregisterImage(w.ctx, &ec2.DeregisterImageInput{ImageId: aws.String(ami)}); err != nil {
		t.Fatal(err)
	}
	res, err = tg.Tag(w.ctx, tagger.Request{Account: acct, Region: "us-east-1", ImageID: ami})
	if err != nil || res.Outcome != tagger.OutcomeGone {
		t.Fatalf("%+v %v", res, err)
	}
}

// multiSnapshotEC2 adds real moto snapshots to an AMI's block device
// mappings in DescribeImages answers: moto's CreateImage makes one snapshot,
// Packer-style AMIs have several.
type multiSnapshotEC2 struct {
	awsapi.TaggerEC2
	extra map[string][]string
}

func (m multiSnapshotEC2) DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, o ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	out, err := m.TaggerEC2.DescribeImages(ctx, in, o...)
	if err != nil {
		return out, err
	}
	for i := range out.Images {
		for j, s := range m.extra[aws.ToString(out.Images[i].ImageId)] {
			out.Images[i].BlockDeviceMappings = append(out.Images[i].BlockDeviceMappings, types.BlockDeviceMapping{
				DeviceName: aws.String("/dev/sd" + string(rune('f'+j))), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(s)}})
		}
	}
	return out, nil
}

// fourSnapshotWorld makes an AMI with four snapshots (one from CreateImage, three added).
func fourSnapshotWorld(t testing.TB, w *motoWorld) (tagger.ClientSource, string, []string) {
	ami, err := w.seed.CreateImage(w.ctx, w.instID, "four")
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for i := 0; i < 3; i++ {
		s, err := w.seed.Snapshot(w.ctx)
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, s)
	}
	return oneRegion(multiSnapshotEC2{w.clients.EC2("us-east-1"), map[string][]string{ami: extra}}), ami, extra
}

func TestMotoFourSnapshotsWithinCallBudget(t *testing.T) {
	w := newMotoWorld(t)
	clients, ami, extra := fourSnapshotWorld(t, w)
	w.calls.Reset()
	res, err := tagger.New(clients, copyPolicy()).Tag(w.ctx, tagger.Request{Account: acct, Region: "us-east-1", ImageID: ami,
		Operation: "CreateImage", Principal: "arn:aws:iam::123456789012:user/bob", SourceInstanceID: w.instID})
	if err != nil || len(res.SnapshotIDs) != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	if got := w.calls.Total(); got > 4 || w.calls.Counts()["CreateTags"] != 1 {
		t.Errorf("calls = %v, want at most 4 with one CreateTags", w.calls.Counts())
	}
	for _, s := range extra {
		if w.tags(t, s)["team"] != "web" {
			t.Errorf("%s not tagged: %v", s, w.tags(t, s))
		}
	}
}
