package main_test

// tag (the tagger's backfill) driven through the built binary against moto.
//
// moto has no CloudTrail LookupEvents (its cloudtrail backend implements
// trails, not event history), so CloudTrail is a stateful fake here: an
// HTTP server speaking LookupEvents' wire protocol (awsJson1_1), reached
// through AWS_ENDPOINT_URL_CLOUDTRAIL, which the SDK prefers to
// AWS_ENDPOINT_URL for that service alone. The CLI calls it through
// awsapi.CloudTrailLookup. The fake holds the records a test puts in and
// answers by event name or resource name and time range, newest first, two
// events a page so pagination is exercised.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cli"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

const (
	motoAccount = "123456789012"
	motoRegion  = "us-east-1"
)

// trailEvent is one management event the fake CloudTrail holds.
type trailEvent struct {
	ID, Name  string
	Time      time.Time
	Resources []string
	Record    string
}

// fakeTrail is a stateful CloudTrail event history.
type fakeTrail struct {
	mu     sync.Mutex
	events []trailEvent
	calls  []string // "key=value" of each LookupEvents
	url    string
}

func newFakeTrail(t *testing.T) *fakeTrail {
	t.Helper()
	f := &fakeTrail{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// env points the CLI's CloudTrail client at the fake.
func (f *fakeTrail) env() string { return "AWS_ENDPOINT_URL_CLOUDTRAIL=" + f.url }

// record adds one CloudTrail record of an EC2 call by caller.
func (f *fakeTrail) record(t *testing.T, name, caller, issuer string, at time.Time, resources []string, params, response map[string]any) {
	t.Helper()
	id := fmt.Sprintf("evt-%d", len(f.events)+1)
	identity := map[string]any{"type": "IAMUser", "arn": caller, "accountId": motoAccount}
	if issuer != "" {
		identity = map[string]any{"type": "AssumedRole", "arn": caller, "accountId": motoAccount,
			"sessionContext": map[string]any{"sessionIssuer": map[string]any{"type": "Role", "arn": issuer}}}
	}
	rec, err := json.Marshal(map[string]any{
		"eventVersion": "1.09", "userIdentity": identity, "eventTime": at.UTC().Format(time.RFC3339),
		"eventSource": "ec2.amazonaws.com", "eventName": name, "awsRegion": motoRegion,
		"requestParameters": params, "responseElements": response, "eventID": id,
		"recipientAccountId": motoAccount, "eventType": "AwsApiCall",
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, trailEvent{ID: id, Name: name, Time: at, Resources: resources, Record: string(rec)})
}

func (f *fakeTrail) lookups() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

const trailPage = 2

func (f *fakeTrail) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, typ, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Header.Get("X-Amz-Target") != "CloudTrail_20131101.LookupEvents" {
		fail(http.StatusBadRequest, "UnknownOperationException", "only LookupEvents: "+r.Header.Get("X-Amz-Target"))
		return
	}
	var in struct {
		LookupAttributes []struct{ AttributeKey, AttributeValue string }
		StartTime        *float64
		EndTime          *float64
		NextToken        string
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.LookupAttributes) != 1 {
		fail(http.StatusBadRequest, "InvalidLookupAttributesException", "exactly one lookup attribute")
		return
	}
	attr := in.LookupAttributes[0]
	f.mu.Lock()
	f.calls = append(f.calls, attr.AttributeKey+"="+attr.AttributeValue)
	var match []trailEvent
	for _, e := range f.events {
		sec := float64(e.Time.Unix())
		if (in.StartTime != nil && sec < *in.StartTime) || (in.EndTime != nil && sec > *in.EndTime) {
			continue
		}
		switch attr.AttributeKey {
		case "EventName":
			if e.Name != attr.AttributeValue {
				continue
			}
		case "ResourceName":
			if !slices.Contains(e.Resources, attr.AttributeValue) {
				continue
			}
		default:
			f.mu.Unlock()
			fail(http.StatusBadRequest, "InvalidLookupAttributesException", "unsupported key "+attr.AttributeKey)
			return
		}
		match = append(match, e)
	}
	f.mu.Unlock()
	sort.SliceStable(match, func(i, j int) bool { return match[i].Time.After(match[j].Time) })
	start, _ := strconv.Atoi(in.NextToken)
	end := min(start+trailPage, len(match))
	out := map[string]any{}
	var events []map[string]any
	for _, e := range match[min(start, len(match)):end] {
		var res []map[string]string
		for _, name := range e.Resources {
			res = append(res, map[string]string{"ResourceName": name})
		}
		events = append(events, map[string]any{"EventId": e.ID, "EventName": e.Name, "EventTime": e.Time.Unix(),
			"EventSource": "ec2.amazonaws.com", "CloudTrailEvent": e.Record, "Resources": res})
	}
	out["Events"] = events
	if end < len(match) {
		out["NextToken"] = strconv.Itoa(end)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

// startMoto starts a moto of its own for one test, with the seeded public
// AMI to launch instances from.
func startMoto(t *testing.T) (*emulator.Moto, *ec2.Client) {
	t.Helper()
	ctx := context.Background()
	root, err := emulator.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	m, err := emulator.StartMoto(ctx, emulator.MotoOptions{Env: []string{"MOTO_AMIS_PATH=" + filepath.Join(root, "testdata", "moto", "amis.json")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	cfg, err := m.Config(ctx, motoRegion)
	if err != nil {
		t.Fatal(err)
	}
	return m, ec2.NewFromConfig(cfg)
}

// tagsOf reads a resource's tags.
func tagsOf(t *testing.T, c *ec2.Client, id string) map[string]string {
	t.Helper()
	tags, err := emulator.Seeder{EC2: c}.Tags(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

// tagOut is the part of tag's JSON output the tests read.
type tagOut struct {
	Applied bool `json:"applied"`
	Results []struct {
		ImageID  string   `json:"image_id"`
		Outcome  string   `json:"outcome"`
		Evidence []string `json:"evidence"`
	} `json:"results"`
}

func TestTagAllBackfillsUntaggedAMIs(t *testing.T) {
	ctx := context.Background()
	m, client := startMoto(t)
	trail := newFakeTrail(t)
	seed := emulator.Seeder{EC2: client}
	inst, err := seed.Instance(ctx, emulator.ForeignImageID, "team", "payments")
	if err != nil {
		t.Fatal(err)
	}
	// known: CloudTrail has its CreateImage (by alice, through a role);
	// it carries a forged created-by, which the record replaces.
	known, err := seed.CreateImage(ctx, inst, "known", "ami-housekeeper:created-by", "forged")
	if err != nil {
		t.Fatal(err)
	}
	// unknown: no record (made before the trail's 90 days, say); its
	// created-by was set by hand and nothing can confirm or deny it.
	unknown, err := seed.CreateImage(ctx, inst, "unknown", "ami-housekeeper:created-by", "someone", "owner", "web-team")
	if err != nil {
		t.Fatal(err)
	}
	// plain: no tags at all, no record.
	plain, err := seed.CreateImage(ctx, inst, "plain")
	if err != nil {
		t.Fatal(err)
	}
	const alice = "arn:aws:sts::123456789012:assumed-role/builder/alice"
	const builder = "arn:aws:iam::123456789012:role/builder"
	trail.record(t, "CreateImage", alice, builder, time.Now(), []string{inst, known},
		map[string]any{"instanceId": inst, "name": "known"}, map[string]any{"requestId": "r-1", "imageId": known})
	// A CreateImage of another AMI in the same window must not be taken.
	trail.record(t, "CreateImage", "arn:aws:iam::123456789012:user/bob", "", time.Now(), []string{"i-0000000000000000f", "ami-00000000000000099"},
		map[string]any{"instanceId": "i-0000000000000000f"}, map[string]any{"imageId": "ami-00000000000000099"})
	env := append(m.Env(motoRegion), trail.env())

	images := map[string]types.Image{}
	out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{known, unknown, plain}})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range out.Images {
		images[aws.ToString(img.ImageId)] = img
	}
	before := map[string]map[string]string{}
	for _, id := range []string{known, unknown, plain} {
		before[id] = tagsOf(t, client, id)
	}

	// --dry-run shows and changes nothing; --detailed-exitcode says there is work.
	r := runCLI(t, env, "tag", "--all", "--dry-run", "--detailed-exitcode")
	if r.code != 3 || !strings.Contains(r.stdout, "ami-housekeeper:created-via=CreateImage") || !strings.Contains(r.stdout, alice) {
		t.Fatalf("tag --all --dry-run --detailed-exitcode: want exit 3 and the planned tags\n%s", r)
	}
	// Off a terminal without --yes it refuses: exit 2, nothing written.
	r = runCLI(t, env, "tag", "--all")
	if r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("tag --all without --yes off a terminal: want exit 2 naming --yes\n%s", r)
	}
	for id, want := range before {
		if got := tagsOf(t, client, id); !maps.Equal(got, want) {
			t.Fatalf("%s changed without --yes: %v, was %v", id, got, want)
		}
	}

	r = runCLI(t, env, "tag", "--all", "--yes", "--output", "json")
	if r.code != 0 {
		t.Fatalf("tag --all --yes: want exit 0\n%s", r)
	}
	var doc tagOut
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("--output json: %v\n%s", err, r)
	}
	if !doc.Applied || len(doc.Results) != 3 {
		t.Fatalf("want the three AMIs tagged, applied: %+v\n%s", doc, r)
	}
	for _, res := range doc.Results {
		if res.Outcome != "tagged" {
			t.Errorf("%s: outcome %q, want tagged", res.ImageID, res.Outcome)
		}
	}

	for _, id := range []string{known, unknown, plain} {
		img := images[id]
		snaps, err := seed.Snapshots(ctx, id)
		if err != nil || len(snaps) == 0 {
			t.Fatalf("snapshots of %s: %v %v", id, snaps, err)
		}
		for _, res := range append([]string{id}, snaps...) {
			got := tagsOf(t, client, res)
			want := map[string]string{
				"ami-housekeeper:created-via":     "CreateImage",
				"ami-housekeeper:created-at":      aws.ToString(img.CreationDate),
				"ami-housekeeper:source-instance": inst,
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s (of %s): %s=%q, want %q (all: %v)", res, id, k, got[k], v, got)
				}
			}
		}
	}
	// Who: only the record says, and it replaces the forged value.
	if got := tagsOf(t, client, known); got["ami-housekeeper:created-by"] != alice || got["ami-housekeeper:created-by-issuer"] != builder {
		t.Errorf("known: created-by %q issuer %q, want %q %q", got["ami-housekeeper:created-by"], got["ami-housekeeper:created-by-issuer"], alice, builder)
	}
	// Without a record, a value someone set is neither replaced nor vouched
	// for, and nothing claims a creator that is not known; other tags stay.
	if got := tagsOf(t, client, unknown); got["ami-housekeeper:created-by"] != "someone" || got["owner"] != "web-team" {
		t.Errorf("unknown: created-by %q owner %q, want them as they were", got["ami-housekeeper:created-by"], got["owner"])
	}
	if got := tagsOf(t, client, plain); got["ami-housekeeper:created-by"] != "" || got["ami-housekeeper:created-by-issuer"] != "" {
		t.Errorf("plain: created-by %q issuer %q written without a record", got["ami-housekeeper:created-by"], got["ami-housekeeper:created-by-issuer"])
	}
	// The lookups are by event name over the AMIs' creation window, never
	// one per AMI.
	for _, c := range trail.lookups() {
		if !strings.HasPrefix(c, "EventName=") {
			t.Errorf("unexpected lookup %s", c)
		}
	}

	// Run again: the tagger is idempotent, nothing left to write.
	r = runCLI(t, env, "tag", "--all", "--dry-run", "--detailed-exitcode")
	if r.code != 0 || !strings.Contains(r.stdout, "up-to-date") {
		t.Fatalf("second run: want exit 0, every AMI up to date\n%s", r)
	}
}

func TestTagNamedAMIWithoutCloudTrail(t *testing.T) {
	ctx := context.Background()
	m, client := startMoto(t)
	seed := emulator.Seeder{EC2: client}
	inst, err := seed.Instance(ctx, emulator.ForeignImageID)
	if err != nil {
		t.Fatal(err)
	}
	one, err := seed.CreateImage(ctx, inst, "one")
	if err != nil {
		t.Fatal(err)
	}
	other, err := seed.CreateImage(ctx, inst, "other")
	if err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, m.Env(motoRegion), "tag", one, "--cloudtrail=false", "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, one) {
		t.Fatalf("tag %s --yes: want exit 0\n%s", one, r)
	}
	if got := tagsOf(t, client, one); got["ami-housekeeper:created-via"] != "CreateImage" || got["ami-housekeeper:source-instance"] != inst {
		t.Errorf("%s: tags %v, want created-via and source-instance", one, got)
	}
	if got := tagsOf(t, client, other); len(got) != 0 {
		t.Errorf("%s was not named but got tags %v", other, got)
	}
	// An AMI that is not there: exit 1, said so.
	r = runCLI(t, m.Env(motoRegion), "tag", "ami-0000000000000dead", "--cloudtrail=false", "--yes")
	if r.code != 1 || !strings.Contains(r.stderr, "ami-0000000000000dead") {
		t.Fatalf("tag of a missing AMI: want exit 1 naming it\n%s", r)
	}
}

func TestTagBadUsageCallsNothing(t *testing.T) {
	env, calls := noAWS(t)
	for _, args := range [][]string{
		{"tag", "ami-12345"},
		{"tag", "i-0123456789abcdef0"},
		{"tag", "ami-0123456789abcdef0", "not-an-ami"},
		{"tag"},
		{"tag", "--all", "ami-0123456789abcdef0"},
		{"tag", "--all", "--policy", writePolicy(t, "version: 1\ntagging:\n  mode: sometimes\n")},
	} {
		r := runCLI(t, env, args...)
		if r.code != 2 {
			t.Errorf("%v: want exit 2\n%s", args, r)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("bad usage made %d AWS call(s)", n)
	}
}

// answerAfter is a terminal's stdin for an in-process run: when the command
// reads the answer (the preview is on screen), it first runs meanwhile, the
// account changing while the operator reads, then answers.
type answerAfter struct {
	meanwhile func()
	answer    string
	done      bool
}

func (a *answerAfter) Read(p []byte) (int, error) {
	if a.done {
		return 0, io.EOF
	}
	a.done = true
	a.meanwhile()
	return copy(p, a.answer), nil
}

// runOnTerminal runs the CLI in process with a terminal declared (a pipe is
// not one), the environment env, and stdin in.
func runOnTerminal(t *testing.T, env []string, in io.Reader, args ...string) cliResult {
	t.Helper()
	for _, kv := range append(env, "AWS_EC2_METADATA_DISABLED=true", "NO_COLOR=1", "AWS_CONFIG_FILE="+filepath.Join(t.TempDir(), "none"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(t.TempDir(), "none")) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), args, cli.IO{In: in, Out: &out, Err: &errOut, Terminal: true, Getenv: os.Getenv})
	return cliResult{stdout: out.String(), stderr: errOut.String(), code: code}
}

// The writing pass writes only the tags the operator was shown: a tag
// planned only since (its key removed while the question was on screen) and
// an AMI made since are left, and said so.
func TestTagWritesOnlyWhatWasShown(t *testing.T) {
	ctx := context.Background()
	m, client := startMoto(t)
	seed := emulator.Seeder{EC2: client}
	inst, err := seed.Instance(ctx, emulator.ForeignImageID)
	if err != nil {
		t.Fatal(err)
	}
	// The AMI already says where it came from: the preview does not plan
	// that tag on it.
	one, err := seed.CreateImage(ctx, inst, "one", "ami-housekeeper:source-instance", inst)
	if err != nil {
		t.Fatal(err)
	}
	var later string
	in := &answerAfter{answer: "y\n", meanwhile: func() {
		if _, err := client.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{one},
			Tags: []types.Tag{{Key: aws.String("ami-housekeeper:source-instance")}}}); err != nil {
			t.Error(err)
		}
		if later, err = seed.CreateImage(ctx, inst, "later"); err != nil {
			t.Error(err)
		}
	}}
	r := runOnTerminal(t, m.Env(motoRegion), in, "tag", "--all", "--cloudtrail=false")
	if r.code != 0 || !in.done {
		t.Fatalf("tag --all, answered y: want exit 0 after the question\n%s", r)
	}
	preview, _, _ := strings.Cut(r.stdout, "Written:")
	if strings.Count(preview, "source-instance") == 0 || !strings.Contains(preview, "Write these tags on 1 AMI(s)") {
		t.Fatalf("the preview lacks the snapshots' source-instance or the question\n%s", r)
	}
	want := "Not written: ami-housekeeper:source-instance on " + one + " (AMI " + one + "): not in the confirmed plan: run again to see it"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q\n%s", want, r)
	}
	got := tagsOf(t, client, one)
	if _, ok := got["ami-housekeeper:source-instance"]; ok || got["ami-housekeeper:created-via"] != "CreateImage" {
		t.Errorf("%s tags %v: want the shown tags written, source-instance (not shown on it) not", one, got)
	}
	snaps, err := seed.Snapshots(ctx, one)
	if err != nil || len(snaps) == 0 {
		t.Fatal(snaps, err)
	}
	if got := tagsOf(t, client, snaps[0]); got["ami-housekeeper:source-instance"] != inst {
		t.Errorf("snapshot %s tags %v: want source-instance, which was shown on it", snaps[0], got)
	}
	if got := tagsOf(t, client, later); len(got) != 0 {
		t.Errorf("%s was made after the preview but got tags %v", later, got)
	}
}

// Without --dry-run, tag off a terminal without --yes refuses before any
// AWS call.
func TestTagRefusesWithoutYesBeforeAnyCall(t *testing.T) {
	env, calls := noAWS(t)
	for _, args := range [][]string{
		{"tag", "--all"},
		{"tag", "ami-0123456789abcdef0", "--policy", writePolicy(t, "version: 1\n")},
	} {
		r := runCLI(t, env, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "--yes") {
			t.Errorf("%v: want exit 2 naming --yes\n%s", args, r)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("refusing made %d AWS call(s)", n)
	}
}
