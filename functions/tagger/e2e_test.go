package main_test

// End-to-end: the real tagger binary (built for this machine by
// `make build-host`) under the AWS Lambda Runtime Interface Emulator, real-
// shaped EventBridge events from testdata/events, moto server as the account.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

const account = "123456789012"

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}

type e2e struct {
	ctx  context.Context
	rie  *emulator.RIE
	seed emulator.Seeder
	inst string
}

// policyYAML is handed to the function inline, as a deployment would.
const policyYAML = `
version: 1
tagging:
  copy_from_source: [team]
  static_tags: {managed-by: ami-housekeeper}
`

func start(t *testing.T) *e2e { return startB(t) }

func startB(t testing.TB) *e2e {
	t.Helper()
	ctx := context.Background()
	moto := emulator.SharedMoto(t)
	bin, err := emulator.FunctionBinary("tagger")
	if err != nil {
		t.Fatal(err)
	}
	env := append(moto.Env("us-east-1"), "HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+policyYAML)
	rie, err := emulator.StartRIE(ctx, emulator.RIEOptions{Bootstrap: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rie.Stop()
		if t.Failed() {
			t.Logf("function output:\n%s", rie.Logs())
		}
	})
	cfg, err := moto.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{ctx: ctx, rie: rie, seed: emulator.Seeder{EC2: ec2.NewFromConfig(cfg)}}
	if e.inst, err = e.seed.Instance(ctx, emulator.ForeignImageID, "team", "web"); err != nil {
		t.Fatal(err)
	}
	return e
}

type response struct {
	Outcome     string   `json:"outcome"`
	Event       string   `json:"event"`
	Reason      string   `json:"reason"`
	ImageID     string   `json:"image_id"`
	SnapshotIDs []string `json:"snapshot_ids"`
	ErrorType   string   `json:"errorType"`
}

func (e *e2e) send(t *testing.T, fixture string, values map[string]string) response {
	t.Helper()
	raw, err := emulator.Fixture(filepath.Join("events", fixture))
	if err != nil {
		t.Fatal(err)
	}
	body, err := e.rie.Invoke(e.ctx, emulator.Fill(raw, values))
	if err != nil {
		t.Fatalf("%s: %v", fixture, err)
	}
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%s: response %s: %v", fixture, body, err)
	}
	if r.ErrorType != "" {
		t.Fatalf("%s: function error %s", fixture, body)
	}
	return r
}

func (e *e2e) image(t testing.TB, name string) (string, string) {
	t.Helper()
	ami, err := e.seed.CreateImage(e.ctx, e.inst, name)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := e.seed.Snapshots(e.ctx, ami)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots %v %v", snaps, err)
	}
	return ami, snaps[0]
}

func (e *e2e) tags(t *testing.T, id string) map[string]string {
	t.Helper()
	m, err := e.seed.Tags(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestE2ECreateImage(t *testing.T) {
	e := start(t)
	ami, snap := e.image(t, "web-base-1")
	r := e.send(t, "valid/cloudtrail-createimage.json", map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": e.inst})
	if r.Outcome != "tagged" || r.Event != "CreateImage" {
		t.Fatalf("%+v", r)
	}
	for _, id := range []string{ami, snap} {
		got := e.tags(t, id)
		if got["ami-housekeeper:created-by"] != "arn:aws:sts::123456789012:assumed-role/image-builder/packer-build-42" ||
			got["ami-housekeeper:created-by-issuer"] != "arn:aws:iam::123456789012:role/image-builder" ||
			got["ami-housekeeper:created-via"] != "CreateImage" || got["ami-housekeeper:source-instance"] != e.inst ||
			got["team"] != "web" || got["managed-by"] != "ami-housekeeper" || got["ami-housekeeper:created-at"] == "" {
			t.Errorf("%s tags = %v", id, got)
		}
	}
	// Duplicate delivery: same tags, no error.
	before := e.tags(t, snap)
	if r := e.send(t, "valid/cloudtrail-createimage.json", map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": e.inst}); r.Outcome != "up-to-date" {
		t.Errorf("duplicate: %+v", r)
	}
	if after := e.tags(t, snap); len(after) != len(before) {
		t.Errorf("duplicate changed tags: %v -> %v", before, after)
	}
}

func TestE2ECopyImage(t *testing.T) {
	e := start(t)
	src, _ := e.image(t, "web-base-src")
	if _, err := e.seed.EC2.CreateTags(e.ctx, &ec2.CreateTagsInput{Resources: []string{src}, Tags: tagList("team", "payments")}); err != nil {
		t.Fatal(err)
	}
	out, err := e.seed.EC2.CopyImage(e.ctx, &ec2.CopyImageInput{Name: aws.String("copy"), SourceImageId: aws.String(src), SourceRegion: aws.String("us-east-1")})
	if err != nil {
		t.Fatal(err)
	}
	ami := aws.ToString(out.ImageId)
	r := e.send(t, "valid/cloudtrail-copyimage.json", map[string]string{"IMAGE_ID": ami, "SOURCE_IMAGE_ID": src, "SOURCE_REGION": "us-east-1"})
	if r.Outcome != "tagged" || len(r.SnapshotIDs) != 1 {
		t.Fatalf("%+v", r)
	}
	for _, id := range []string{ami, r.SnapshotIDs[0]} {
		got := e.tags(t, id)
		if got["ami-housekeeper:created-via"] != "CopyImage" || got["ami-housekeeper:source-image"] != src ||
			got["ami-housekeeper:source-region"] != "us-east-1" || got["team"] != "payments" ||
			got["ami-housekeeper:created-by"] != "arn:aws:iam::123456789012:user/alice" {
			t.Errorf("%s tags = %v", id, got)
		}
	}
}

func TestE2ERegisterImage(t *testing.T) {
	e := start(t)
	out, err := e.seed.EC2.RegisterImage(e.ctx, &ec2.RegisterImageInput{Name: aws.String("appliance")})
	if err != nil {
		t.Fatal(err)
	}
	ami := aws.ToString(out.ImageId)
	r := e.send(t, "valid/cloudtrail-registerimage.json", map[string]string{"IMAGE_ID": ami})
	if r.Outcome != "tagged" {
		t.Fatalf("%+v", r)
	}
	for _, id := range append([]string{ami}, r.SnapshotIDs...) {
		if got := e.tags(t, id); got["ami-housekeeper:created-via"] != "RegisterImage" || got["ami-housekeeper:created-by"] != "arn:aws:iam::123456789012:root" {
			t.Errorf("%s tags = %v", id, got)
		}
	}
}

// The state-change event arrives first (it carries no caller): the AMI and
// snapshot get what EC2 knows; the CloudTrail event then adds the caller.
func TestE2EStateChangeFirst(t *testing.T) {
	e := start(t)
	ami, snap := e.image(t, "web-base-2")
	r := e.send(t, "valid/statechange-available.json", map[string]string{"IMAGE_ID": ami})
	if r.Outcome != "tagged" || r.Event != "StateChange" {
		t.Fatalf("%+v", r)
	}
	got := e.tags(t, snap)
	if got["ami-housekeeper:created-via"] != "CreateImage" || got["ami-housekeeper:source-instance"] != e.inst || got["ami-housekeeper:created-by"] != "" {
		t.Errorf("after state change: %v", got)
	}
	e.send(t, "valid/statechange-available.json", map[string]string{"IMAGE_ID": ami}) // duplicate
	if r := e.send(t, "valid/cloudtrail-createimage.json", map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": e.inst}); r.Outcome != "tagged" {
		t.Fatalf("%+v", r)
	}
	if got := e.tags(t, snap); got["ami-housekeeper:created-by"] == "" || got["team"] != "web" {
		t.Errorf("after CloudTrail: %v", got)
	}
}

// TestE2EForgedCreator: the caller forges the tagger's provenance tags
// through CreateImage's TagSpecifications. The state-change event, which has
// no identity, leaves them and reports them unverified; the CloudTrail event
// replaces them with the record's identity and says who had set them.
func TestE2EForgedCreator(t *testing.T) {
	e := start(t)
	forged := "arn:aws:iam::123456789012:user/ceo"
	ami, err := e.seed.CreateImage(e.ctx, e.inst, "forged", "ami-housekeeper:created-by", forged, "ami-housekeeper:source-image", "ami-0fedcba9876543210")
	if err != nil {
		t.Fatal(err)
	}
	invoke := func(raw []byte) map[string]any {
		t.Helper()
		body, err := e.rie.Invoke(e.ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil || m["errorType"] != nil {
			t.Fatalf("response %s: %v", body, err)
		}
		return m
	}
	fixture := func(name string) []byte {
		raw, err := emulator.Fixture(filepath.Join("events", name))
		if err != nil {
			t.Fatal(err)
		}
		return emulator.Fill(raw, map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": e.inst})
	}

	m := invoke(fixture("valid/statechange-available.json"))
	if unverified, _ := m["unverified"].([]any); m["outcome"] != "tagged" || len(unverified) != 2 {
		t.Errorf("state change: %v", m)
	}
	if got := e.tags(t, ami)["ami-housekeeper:created-by"]; got != forged {
		t.Errorf("the state-change path wrote created-by %q without an identity", got)
	}

	ct := bytes.Replace(fixture("valid/cloudtrail-createimage.json"), []byte(`"key": "team"`), []byte(`"key": "ami-housekeeper:created-by"`), 1)
	ct = bytes.Replace(ct, []byte(`"value": "web"`), []byte(`"value": "`+forged+`"`), 1)
	m = invoke(ct)
	if m["outcome"] != "tagged" {
		t.Fatalf("CloudTrail: %v", m)
	}
	got := e.tags(t, ami)
	if got["ami-housekeeper:created-by"] != "arn:aws:sts::123456789012:assumed-role/image-builder/packer-build-42" || got["ami-housekeeper:source-image"] != "" {
		t.Errorf("after CloudTrail: %v", got)
	}
	replaced, _ := m["replaced"].([]any)
	if len(replaced) != 2 || !strings.Contains(replaced[0].(map[string]any)["reason"].(string), "TagSpecifications") {
		t.Errorf("replaced = %v", m["replaced"])
	}
	if !strings.Contains(e.rie.SettledLogs(), `"replaced":[`) {
		t.Errorf("the summary log line lacks the replacements:\n%s", e.rie.Logs())
	}
}

// Every bad event is rejected with a reason, changes nothing and does not
// return a function error (which would make Lambda retry it).
func TestE2EBadEvents(t *testing.T) {
	e := start(t)
	ami, snap := e.image(t, "canary")
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "events", "invalid", "*.json"))
	if err != nil || len(files) < 10 {
		t.Fatalf("want at least 10 bad-event fixtures, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			r := e.send(t, "invalid/"+name, map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": e.inst, "SOURCE_IMAGE_ID": ami, "SOURCE_REGION": "us-east-1"})
			if r.Outcome != "rejected" || !strings.Contains(r.Reason, "invalid event") {
				t.Errorf("%s: %+v", name, r)
			}
		})
	}
	for _, id := range []string{ami, snap} {
		if got := e.tags(t, id); len(got) != 0 {
			t.Errorf("bad events changed %s: %v", id, got)
		}
	}
	if n := strings.Count(e.rie.SettledLogs(), `"outcome":"rejected"`); n != len(files) {
		t.Errorf("%d rejected log lines for %d bad events", n, len(files))
	}
}

func tagList(kv ...string) []ec2types.Tag {
	var tags []ec2types.Tag
	for i := 0; i+1 < len(kv); i += 2 {
		tags = append(tags, ec2types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return tags
}
