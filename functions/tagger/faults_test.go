package main_test

// Fault scenario: the real tagger binary under the runtime emulator gets the
// same events twice, on fresh moto state each time: once straight to moto,
// once through the fault proxy (EC2's token buckets, empty at the start as if
// other tooling had just used them; 5% server errors; 5% dropped connections,
// half of them after the call took effect; a few slow answers). Failed
// invocations are re-invoked as Lambda's asynchronous retry does. Both runs
// must end with exactly the same tags on every AMI and snapshot.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// faultSeed fixes which requests of each action fail; with it, the run
// meets every kind of fault, including mutating calls that took effect while
// their client saw the connection drop (the test checks that it did).
const faultSeed = 20261129

const faultPolicy = `
version: 1
tagging:
  copy_from_source: [team]
  static_tags: {managed-by: ami-housekeeper}
`

// taggerRun is one pass of the scenario: what it found and what it did.
type taggerRun struct {
	state    map[string]map[string]string // logical resource name -> tags, IDs and times normalized
	attempts int                          // invocations, retries included
	retried  int                          // events that needed a Lambda retry
	failed   []string                     // events still failing after the retries
	outcomes []string
}

func TestFaultsTaggerEndsInTheFaultFreeState(t *testing.T) {
	started := time.Now()
	moto := emulator.SharedMoto(t)
	direct := runTaggerScenario(t, moto, nil)
	if len(direct.failed) > 0 || direct.retried > 0 {
		t.Fatalf("the fault-free run failed: %v", direct.failed)
	}
	// The comparison means something only if the fault-free run tagged.
	for name, tags := range direct.state {
		if tags["ami-housekeeper:created-via"] == "" || tags["managed-by"] != "ami-housekeeper" {
			t.Fatalf("fault-free run left %s with %v", name, tags)
		}
	}
	if err := moto.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	proxy, err := emulator.StartFaultProxy(moto.URL, emulator.ScenarioFaults(emulator.ScenarioSeed(t, faultSeed)))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	faulty := runTaggerScenario(t, moto, proxy)
	stats := proxy.Stats()
	tot := stats.Total()
	t.Logf("fault run: %d invocations for %d events, %d events retried by Lambda; proxy:\n%s",
		faulty.attempts, len(faulty.outcomes), faulty.retried, stats)

	if len(faulty.failed) > 0 {
		t.Errorf("invocations still failed after Lambda's retries: %v", faulty.failed)
	}
	if !reflect.DeepEqual(direct.state, faulty.state) {
		t.Errorf("final tags differ from the fault-free run:\n%s", diffStates(direct.state, faulty.state))
	}
	// The run was really under fire: throttled, faulted, and at least one
	// mutating call applied although its client saw the connection drop.
	droppedAfterMutating := 0
	for action, a := range stats.Actions {
		if !emulator.IsNonMutating(action) {
			droppedAfterMutating += a.DroppedAfter
		}
	}
	if tot.Throttled == 0 || tot.InternalError+tot.Unavailable == 0 || tot.DroppedBefore+tot.DroppedAfter == 0 || droppedAfterMutating == 0 {
		t.Errorf("the proxy injected too little to prove anything: %+v, %d mutating calls dropped after forwarding", tot, droppedAfterMutating)
	}
	t.Logf("wall time %v", time.Since(started).Round(time.Millisecond))
}

// runTaggerScenario resets nothing: the caller hands it fresh moto state.
// With proxy nil the function talks to moto directly.
func runTaggerScenario(t *testing.T, moto *emulator.Moto, proxy *emulator.FaultProxy) taggerRun {
	t.Helper()
	ctx := context.Background()
	cfg, err := moto.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	// The world is built straight on moto; only the function goes through
	// the proxy.
	seed := emulator.Seeder{EC2: ec2.NewFromConfig(cfg)}
	names := map[string]string{} // real ID -> logical name
	inst, err := seed.Instance(ctx, emulator.ForeignImageID, "team", "web")
	if err != nil {
		t.Fatal(err)
	}
	names[inst] = "i-builder"
	resources := []string{} // AMIs and snapshots whose tags are compared
	addImage := func(name, ami string) {
		names[ami] = "ami-" + name
		resources = append(resources, ami)
		snaps, err := seed.Snapshots(ctx, ami)
		if err != nil || len(snaps) == 0 {
			t.Fatalf("%s snapshots: %v %v", name, snaps, err)
		}
		for i, s := range snaps {
			names[s] = fmt.Sprintf("snap-%s-%d", name, i)
			resources = append(resources, s)
		}
	}
	var web []string
	for i := range 6 {
		ami, err := seed.CreateImage(ctx, inst, fmt.Sprintf("web-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		addImage(fmt.Sprintf("web-%d", i), ami)
		web = append(web, ami)
	}
	src, err := seed.CreateImage(ctx, inst, "src", "team", "payments")
	if err != nil {
		t.Fatal(err)
	}
	names[src] = "ami-src"
	copied, err := seed.EC2.CopyImage(ctx, &ec2.CopyImageInput{Name: aws.String("copy"), SourceImageId: aws.String(src), SourceRegion: aws.String("us-east-1")})
	if err != nil {
		t.Fatal(err)
	}
	addImage("copy", aws.ToString(copied.ImageId))
	reg, err := seed.EC2.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("appliance")})
	if err != nil {
		t.Fatal(err)
	}
	addImage("appliance", aws.ToString(reg.ImageId))

	type event struct{ fixture, image string }
	events := []event{
		{"valid/cloudtrail-createimage.json", web[0]},
		{"valid/cloudtrail-createimage.json", web[1]},
		{"valid/cloudtrail-createimage.json", web[0]}, // duplicate delivery
		{"valid/statechange-available.json", web[2]},  // state change before CloudTrail
		{"valid/cloudtrail-createimage.json", web[2]},
		{"valid/statechange-available.json", web[3]},
		{"valid/statechange-available.json", web[3]},
		{"valid/cloudtrail-createimage.json", web[3]},
		{"valid/statechange-available.json", web[4]}, // only the state change
		{"valid/cloudtrail-createimage.json", web[5]},
		{"valid/statechange-available.json", web[5]}, // state change after CloudTrail
		{"valid/cloudtrail-copyimage.json", aws.ToString(copied.ImageId)},
		{"valid/statechange-available.json", aws.ToString(copied.ImageId)},
		{"valid/cloudtrail-registerimage.json", aws.ToString(reg.ImageId)},
		{"valid/cloudtrail-registerimage.json", aws.ToString(reg.ImageId)},
	}

	bin, err := emulator.FunctionBinary("tagger")
	if err != nil {
		t.Fatal(err)
	}
	env := append(moto.Env("us-east-1"), "HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+faultPolicy)
	if proxy != nil {
		env = proxy.Env(env)
	}
	rie, err := emulator.StartRIE(ctx, emulator.RIEOptions{Bootstrap: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		rie.Stop()
		if t.Failed() {
			t.Logf("function output:\n%s", rie.Logs())
		}
	}()

	var run taggerRun
	for i, ev := range events {
		raw, err := emulator.Fixture(filepath.Join("events", ev.fixture))
		if err != nil {
			t.Fatal(err)
		}
		payload := emulator.Fill(raw, map[string]string{"IMAGE_ID": ev.image, "INSTANCE_ID": inst, "SOURCE_IMAGE_ID": src, "SOURCE_REGION": "us-east-1"})
		res := rie.InvokeAsync(ctx, payload, emulator.LambdaAsyncRetries)
		run.attempts += res.Attempts
		label := fmt.Sprintf("#%d %s %s", i, ev.fixture, names[ev.image])
		if res.Attempts > 1 {
			run.retried++
			t.Logf("%s: Lambda retried after %v", label, res.Errors)
		}
		if res.Failed() {
			run.failed = append(run.failed, label+": "+strings.Join(res.Errors, "; "))
			continue
		}
		var r struct{ Outcome string }
		_ = json.Unmarshal(res.Body, &r)
		run.outcomes = append(run.outcomes, label+" -> "+r.Outcome)
	}

	run.state = map[string]map[string]string{}
	for _, id := range resources {
		tags, err := seed.Tags(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		run.state[names[id]] = normalize(tags, names)
	}
	return run
}

var timestamp = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}`)

// normalize makes two runs comparable: resource IDs become logical names
// and times (moto stamps CreationDate with the wall clock) a placeholder.
func normalize(tags map[string]string, names map[string]string) map[string]string {
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		for id, name := range names {
			v = strings.ReplaceAll(v, id, name)
		}
		if timestamp.MatchString(v) {
			v = "<time>"
		}
		out[k] = v
	}
	return out
}

func diffStates(want, got map[string]map[string]string) string {
	var b strings.Builder
	keys := slices.Sorted(maps.Keys(want))
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if !reflect.DeepEqual(want[k], got[k]) {
			fmt.Fprintf(&b, "%s:\n  fault-free %v\n  faulty     %v\n", k, want[k], got[k])
		}
	}
	return b.String()
}
