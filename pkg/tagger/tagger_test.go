package tagger_test

// Engine tests against the stateful fake in pkg/fake: they cover what moto
// cannot show — pending AMIs whose snapshots appear late, several snapshots
// per AMI, snapshots owned by someone else, throttling and races.
// The wire path is covered against moto in integration_test.go.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

const acct = "123456789012"

func oneRegion(api awsapi.TaggerEC2) tagger.ClientSource {
	return func(string) awsapi.TaggerEC2 { return api }
}

func image(id, owner string, state types.ImageState, snaps ...string) *types.Image {
	img := &types.Image{ImageId: aws.String(id), OwnerId: aws.String(owner), State: state,
		CreationDate: aws.String("2026-11-28T10:00:00.000Z")}
	for i, s := range snaps {
		m := types.BlockDeviceMapping{DeviceName: aws.String("/dev/sd" + string(rune('a'+i))), Ebs: &types.EbsBlockDevice{}}
		if s != "" {
			m.Ebs.SnapshotId = aws.String(s)
		}
		img.BlockDeviceMappings = append(img.BlockDeviceMappings, m)
	}
	return img
}

func snapshot(id, owner string, tags ...string) *types.Snapshot {
	s := &types.Snapshot{SnapshotId: aws.String(id), OwnerId: aws.String(owner)}
	for i := 0; i+1 < len(tags); i += 2 {
		s.Tags = append(s.Tags, types.Tag{Key: aws.String(tags[i]), Value: aws.String(tags[i+1])})
	}
	return s
}

func newTagger(f *fake.EC2, mut func(*policy.Tagging)) *tagger.Tagger {
	p := policy.Default().Tagging
	if mut != nil {
		mut(&p)
	}
	return tagger.New(oneRegion(f), p).WithPoll(time.Second, func(context.Context, time.Duration) error { return nil })
}

var createReq = tagger.Request{Account: acct, Region: "us-east-1", ImageID: "ami-00000001", Operation: "CreateImage",
	Principal: "arn:aws:iam::123456789012:user/alice", SourceInstanceID: "i-00000001"}

func TestTagFourSnapshotsOneCall(t *testing.T) {
	f := fake.NewEC2()
	f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateAvailable, "snap-1", "snap-2", "snap-3", "snap-4")
	for _, s := range []string{"snap-1", "snap-2", "snap-3", "snap-4"} {
		f.Snapshots[s] = snapshot(s, acct)
	}
	res, err := newTagger(f, nil).Tag(context.Background(), createReq)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != tagger.OutcomeTagged || f.Calls["CreateTags"] != 1 {
		t.Fatalf("outcome %s, CreateTags calls %d", res.Outcome, f.Calls["CreateTags"])
	}
	for _, id := range []string{"ami-00000001", "snap-1", "snap-2", "snap-3", "snap-4"} {
		tags := f.Tags(id)
		if tags["ami-housekeeper:created-by"] != "arn:aws:iam::123456789012:user/alice" || tags["ami-housekeeper:created-via"] != "CreateImage" ||
			tags["ami-housekeeper:source-instance"] != "i-00000001" || tags["ami-housekeeper:created-at"] != "2026-11-28T10:00:00.000Z" {
			t.Errorf("%s tags = %v", id, tags)
		}
	}
	if got := f.Calls["DescribeImages"] + f.Calls["DescribeSnapshots"] + f.Calls["CreateTags"] + f.Calls["DescribeTags"]; got > 4 {
		t.Errorf("%d calls, budget is 4: %v", got, f.Calls)
	}
	// A replay writes nothing.
	res, err = newTagger(f, nil).Tag(context.Background(), createReq)
	if err != nil || res.Outcome != tagger.OutcomeUpToDate || f.Calls["CreateTags"] != 1 {
		t.Fatalf("replay: %s %v, CreateTags %d", res.Outcome, err, f.Calls["CreateTags"])
	}
}

func TestTagPendingWaitsForSnapshots(t *testing.T) {
	f := fake.NewEC2()
	f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStatePending, "", "")
	f.Snapshots["snap-1"] = snapshot("snap-1", acct)
	f.Snapshots["snap-2"] = snapshot("snap-2", acct)
	polls := 0
	f.BeforeDescribeImages = func(f *fake.EC2) {
		polls++
		if polls == 3 { // the snapshots are listed on the third look
			f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStatePending, "snap-1", "snap-2")
		}
	}
	res, err := newTagger(f, nil).Tag(context.Background(), createReq)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != tagger.OutcomeTagged || len(res.SnapshotIDs) != 2 || f.Tags("snap-2")["ami-housekeeper:created-by"] == "" {
		t.Fatalf("outcome %s snapshots %v", res.Outcome, res.SnapshotIDs)
	}
	if f.Calls["DescribeImages"] != 3 {
		t.Errorf("DescribeImages calls = %d, want 3", f.Calls["DescribeImages"])
	}
}

func TestTagPendingBeyondTheWaitIsPartialThenCompletedByAvailableEvent(t *testing.T) {
	f := fake.NewEC2()
	f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStatePending, "snap-1", "")
	f.Snapshots["snap-1"] = snapshot("snap-1", acct)
	tg := newTagger(f, func(p *policy.Tagging) { p.SnapshotWait = policy.Duration{Duration: 3 * time.Second} })
	res, err := tg.Tag(context.Background(), createReq)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != tagger.OutcomePartial || f.Calls["DescribeImages"] != 4 { // first look + 3 polls of 1s
		t.Fatalf("outcome %s, DescribeImages %d", res.Outcome, f.Calls["DescribeImages"])
	}
	// Later the AMI is available; the state-change event (no CloudTrail facts) finishes the job.
	f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateAvailable, "snap-1", "snap-2")
	f.Images["ami-00000001"].Tags = f.TagList("ami-00000001")
	f.Snapshots["snap-2"] = snapshot("snap-2", acct)
	res, err = tg.Tag(context.Background(), tagger.Request{Account: acct, Region: "us-east-1", ImageID: "ami-00000001"})
	if err != nil || res.Outcome != tagger.OutcomeTagged {
		t.Fatalf("outcome %s %v", res.Outcome, err)
	}
	if got := f.Tags("snap-2"); got["ami-housekeeper:created-at"] == "" {
		t.Errorf("snap-2 tags = %v", got)
	}
}

func TestTagOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fake.EC2)
		mut     func(*policy.Tagging)
		want    tagger.Outcome
		wantErr bool
	}{
		{"gone", func(f *fake.EC2) {}, nil, tagger.OutcomeGone, false},
		{"not owned", func(f *fake.EC2) {
			f.Images["ami-00000001"] = image("ami-00000001", "099720109477", types.ImageStateAvailable, "snap-1")
			f.Snapshots["snap-1"] = snapshot("snap-1", "099720109477")
		}, nil, tagger.OutcomeNotOwned, false},
		{"failed image", func(f *fake.EC2) {
			f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateFailed)
		}, nil, tagger.OutcomeSkipped, false},
		{"audit mode computes but does not write", func(f *fake.EC2) {
			f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateAvailable, "snap-1")
			f.Snapshots["snap-1"] = snapshot("snap-1", acct)
		}, func(p *policy.Tagging) { p.Mode = policy.ModeAudit }, tagger.OutcomeAudit, false},
		{"deregistered between describe and tag", func(f *fake.EC2) {
			f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateAvailable, "snap-1")
			f.Snapshots["snap-1"] = snapshot("snap-1", acct)
			f.Errors["CreateTags"] = []error{fake.APIError("InvalidAMIID.NotFound")}
		}, nil, tagger.OutcomeGone, false},
		{"throttled is returned for a retry", func(f *fake.EC2) {
			f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateAvailable, "snap-1")
			f.Snapshots["snap-1"] = snapshot("snap-1", acct)
			f.Errors["CreateTags"] = []error{fake.APIError("RequestLimitExceeded")}
		}, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake.NewEC2()
			tt.setup(f)
			res, err := newTagger(f, tt.mut).Tag(context.Background(), createReq)
			if tt.wantErr {
				if err == nil || !awserr.IsRetryable(errors.Unwrap(err)) {
					t.Fatalf("want a retryable error, got %v (%s)", err, res.Outcome)
				}
				return
			}
			if err != nil || res.Outcome != tt.want || res.Reason == "" {
				t.Fatalf("got %q (%s), %v; want %q with a reason", res.Outcome, res.Reason, err, tt.want)
			}
			if tt.want != tagger.OutcomeTagged && f.Calls["CreateTags"] > 0 && tt.want != tagger.OutcomeGone {
				t.Errorf("CreateTags called %d times for outcome %s", f.Calls["CreateTags"], tt.want)
			}
		})
	}
}

func TestTagKeepsExistingTagsAndForeignSnapshots(t *testing.T) {
	f := fake.NewEC2()
	f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateAvailable, "snap-1", "snap-2", "snap-3")
	f.Snapshots["snap-1"] = snapshot("snap-1", acct, "team", "set-by-hand")
	f.Snapshots["snap-2"] = snapshot("snap-2", acct)
	f.Snapshots["snap-3"] = snapshot("snap-3", "210987654321")
	res, err := newTagger(f, func(p *policy.Tagging) { p.StaticTags = map[string]string{"team": "platform"} }).Tag(context.Background(), createReq)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Tags("snap-1")["team"]; got != "set-by-hand" {
		t.Errorf("overwrote a tag someone set: %q", got)
	}
	if len(f.Tags("snap-3")) != 0 {
		t.Errorf("tagged a snapshot owned by another account: %v", f.Tags("snap-3"))
	}
	if len(res.Skips) != 1 || len(res.Notes) != 1 || f.Calls["CreateTags"] != 2 {
		t.Errorf("skips %v notes %v CreateTags %d", res.Skips, res.Notes, f.Calls["CreateTags"])
	}
}

// TestTagForgedCreator: CreateImage's TagSpecifications let the caller put
// any tag on the new AMI and its snapshots, the tagger's own included. On
// the CloudTrail path the record's userIdentity wins; on the state-change
// path (no identity) a value present is left alone and reported unverified.
func TestTagForgedCreator(t *testing.T) {
	forged := []string{"ami-housekeeper:created-by", "arn:aws:iam::123456789012:user/ceo",
		"ami-housekeeper:created-by-issuer", "arn:aws:iam::123456789012:role/admin",
		"ami-housekeeper:source-image", "ami-0fedcba9876543210"}
	setup := func() *fake.EC2 {
		f := fake.NewEC2()
		f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateAvailable, "snap-1")
		for i := 0; i+1 < len(forged); i += 2 {
			f.Images["ami-00000001"].Tags = append(f.Images["ami-00000001"].Tags, types.Tag{Key: aws.String(forged[i]), Value: aws.String(forged[i+1])})
		}
		f.Snapshots["snap-1"] = snapshot("snap-1", acct, forged[:2]...)
		return f
	}

	t.Run("CloudTrail path: the record's identity replaces the forged one", func(t *testing.T) {
		f := setup()
		req := createReq
		req.CallerTags = map[string]map[string]string{"image": {"ami-housekeeper:created-by": "arn:aws:iam::123456789012:user/ceo"}}
		res, err := newTagger(f, nil).Tag(context.Background(), req)
		if err != nil || res.Outcome != tagger.OutcomeTagged {
			t.Fatalf("%s %v", res.Outcome, err)
		}
		for _, id := range []string{"ami-00000001", "snap-1"} {
			tags := f.Tags(id)
			if tags["ami-housekeeper:created-by"] != createReq.Principal {
				t.Errorf("%s: created-by = %q, want the CloudTrail principal", id, tags["ami-housekeeper:created-by"])
			}
			if v, ok := tags["ami-housekeeper:created-by-issuer"]; id == "ami-00000001" && (!ok || v != "") {
				t.Errorf("%s: an IAM user has no issuer, yet created-by-issuer = %q", id, v)
			}
			if tags["ami-housekeeper:source-image"] != "" {
				t.Errorf("%s: a CreateImage AMI kept a forged source-image %q", id, tags["ami-housekeeper:source-image"])
			}
		}
		if _, ok := f.Tags("snap-1")["ami-housekeeper:created-by-issuer"]; ok {
			t.Error("an empty tag was added where nothing was forged")
		}
		if len(res.Replaced) != 4 || !strings.Contains(res.Replaced[0].Reason, "TagSpecifications") {
			t.Errorf("replacements = %+v", res.Replaced)
		}
		if got := f.Calls["DescribeImages"] + f.Calls["DescribeSnapshots"] + f.Calls["CreateTags"] + f.Calls["DescribeTags"]; got > 4 {
			t.Errorf("%d calls, budget is 4: %v", got, f.Calls)
		}
		// A state-change event afterwards leaves the verified values alone.
		res, err = newTagger(f, nil).Tag(context.Background(), tagger.Request{Account: acct, Region: "us-east-1", ImageID: "ami-00000001"})
		if err != nil || res.Outcome != tagger.OutcomeUpToDate || f.Tags("snap-1")["ami-housekeeper:created-by"] != createReq.Principal {
			t.Errorf("state change after CloudTrail: %s %v, %v", res.Outcome, err, f.Tags("snap-1"))
		}
	})

	t.Run("state-change path: left as it is, reported unverified, never vouched for", func(t *testing.T) {
		f := setup()
		res, err := newTagger(f, nil).Tag(context.Background(), tagger.Request{Account: acct, Region: "us-east-1", ImageID: "ami-00000001"})
		if err != nil || res.Outcome != tagger.OutcomeTagged {
			t.Fatalf("%s %v", res.Outcome, err)
		}
		if got := f.Tags("ami-00000001")["ami-housekeeper:created-by"]; got != "arn:aws:iam::123456789012:user/ceo" {
			t.Errorf("created-by = %q: the state-change path has no identity to write", got)
		}
		for _, w := range res.Writes {
			if _, ok := w.Tags["ami-housekeeper:created-by"]; ok {
				t.Errorf("wrote created-by without an identity: %+v", w)
			}
		}
		unverified := map[string]bool{}
		for _, u := range res.Unverified {
			unverified[u.ResourceID+" "+u.Key] = true
		}
		for _, want := range []string{"ami-00000001 ami-housekeeper:created-by", "ami-00000001 ami-housekeeper:created-by-issuer",
			"ami-00000001 ami-housekeeper:source-image", "snap-1 ami-housekeeper:created-by"} {
			if !unverified[want] {
				t.Errorf("%s not reported unverified: %+v", want, res.Unverified)
			}
		}
		// The CloudTrail event, arriving later, settles it.
		if _, err := newTagger(f, nil).Tag(context.Background(), createReq); err != nil {
			t.Fatal(err)
		}
		if got := f.Tags("snap-1")["ami-housekeeper:created-by"]; got != createReq.Principal {
			t.Errorf("after the CloudTrail event: created-by = %q", got)
		}
	})
}

// TestTagWritesEmptyStaticValues: a static tag with an empty value is what
// the policy asks for; EC2 accepts it.
func TestTagWritesEmptyStaticValues(t *testing.T) {
	f := fake.NewEC2()
	f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateAvailable, "snap-1")
	f.Snapshots["snap-1"] = snapshot("snap-1", acct)
	tg := newTagger(f, func(p *policy.Tagging) { p.StaticTags = map[string]string{"backup": "", "team": "web"} })
	if _, err := tg.Tag(context.Background(), createReq); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ami-00000001", "snap-1"} {
		if v, ok := f.Tags(id)["backup"]; !ok || v != "" {
			t.Errorf("%s: backup tag = %q, present %v; want present and empty", id, v, ok)
		}
	}
	if res, err := tg.Tag(context.Background(), createReq); err != nil || res.Outcome != tagger.OutcomeUpToDate {
		t.Errorf("replay: %s %v", res.Outcome, err)
	}
}

func TestTagCopiesSourceTags(t *testing.T) {
	f := fake.NewEC2()
	f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateAvailable, "snap-1")
	f.Snapshots["snap-1"] = snapshot("snap-1", acct)
	f.Instances["i-00000001"] = &types.Instance{InstanceId: aws.String("i-00000001"),
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("web")}, {Key: aws.String("secret"), Value: aws.String("no")}}}
	tg := newTagger(f, func(p *policy.Tagging) { p.CopyFromSource = []string{"team"} })
	if _, err := tg.Tag(context.Background(), createReq); err != nil {
		t.Fatal(err)
	}
	if got := f.Tags("snap-1"); got["team"] != "web" || got["secret"] != "" {
		t.Errorf("snapshot tags = %v", got)
	}
	// Replay: the source is not read again.
	if _, err := tg.Tag(context.Background(), createReq); err != nil || f.Calls["DescribeTags"] != 1 {
		t.Errorf("DescribeTags = %d, %v", f.Calls["DescribeTags"], err)
	}
}

// WithMayWrite limits the writes to the tags it accepts (the CLI's
// confirmed plan): the rest are Skips with NotConfirmed, the accepted ones
// still go in one call per set of resources that get the same tags, and
// nothing accepted writes nothing.
func TestTagWithMayWriteWritesOnlyTheConfirmed(t *testing.T) {
	f := fake.NewEC2()
	f.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateAvailable, "snap-1", "snap-2")
	for _, s := range []string{"snap-1", "snap-2"} {
		f.Snapshots[s] = snapshot(s, acct)
	}
	var asked []string
	may := func(img, res, k, v string) bool {
		asked = append(asked, img+" "+res+" "+k)
		// The creator everywhere; the creating call only on the AMI.
		return img == "ami-00000001" && (k == "ami-housekeeper:created-by" || k == "ami-housekeeper:created-via" && res == "ami-00000001")
	}
	res, err := newTagger(f, nil).WithMayWrite(may).Tag(context.Background(), createReq)
	if err != nil || res.Outcome != tagger.OutcomeTagged {
		t.Fatalf("%+v %v", res, err)
	}
	if got := f.Tags("ami-00000001"); len(got) != 2 || got["ami-housekeeper:created-via"] != "CreateImage" || got["ami-housekeeper:created-by"] == "" {
		t.Errorf("AMI tags %v", got)
	}
	for _, s := range []string{"snap-1", "snap-2"} {
		if got := f.Tags(s); len(got) != 1 || got["ami-housekeeper:created-by"] == "" {
			t.Errorf("%s tags %v", s, got)
		}
	}
	if f.Calls["CreateTags"] != 2 {
		t.Errorf("CreateTags calls %d, want 2 (the AMI's set, the snapshots' set)", f.Calls["CreateTags"])
	}
	notConfirmed := 0
	for _, s := range res.Skips {
		if s.Reason == tagger.NotConfirmed {
			notConfirmed++
		}
	}
	if len(asked) == 0 || notConfirmed != len(asked)-4 {
		t.Errorf("%d skips not confirmed of %d asked (4 accepted): %+v", notConfirmed, len(asked), res.Skips)
	}

	// Nothing accepted: nothing written, and the outcome says why.
	g := fake.NewEC2()
	g.Images["ami-00000001"] = image("ami-00000001", acct, types.ImageStateAvailable, "snap-1")
	g.Snapshots["snap-1"] = snapshot("snap-1", acct)
	res, err = newTagger(g, nil).WithMayWrite(func(_, _, _, _ string) bool { return false }).Tag(context.Background(), createReq)
	if err != nil || res.Outcome != tagger.OutcomeSkipped || g.Calls["CreateTags"] != 0 || len(res.Writes) != 0 {
		t.Fatalf("%+v %v, CreateTags %d", res, err, g.Calls["CreateTags"])
	}
}
