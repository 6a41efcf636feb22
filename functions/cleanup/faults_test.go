package main_test

// Fault scenario: the real cleanup binary under the runtime emulator sweeps
// the cleanup fleet (pkg/emulator/cleanup_fleet.go) in enforce mode twice, on
// a fresh moto each time: once straight to moto, once through the fault proxy
// (emulator.ScenarioFaults: EC2's token buckets, empty at the start; 5%
// server errors; 5% dropped connections, after the call took effect for
// mutating calls; a few slow answers). A scheduled sweep that fails is done
// again by the next scheduled run, so the faulty run is invoked until its
// report says nothing failed, three times at most. Both runs must end with
// the same AMIs, snapshots and tags; nothing the fault-free run kept may be
// gone; and no invocation may log or publish a decision twice for one AMI.

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// faultSeed fixes which requests of each action fail (the k-th request of an
// action that passes its bucket always meets the same fault). With it, the
// first CreateTags (delete-with), the first DeregisterImage and the second
// DeleteSnapshot take effect while their client sees the connection drop;
// the retries of the first two meet a 503 and a 500; the inventory's
// DescribeInstances gets a 500 and DescribeSpotInstanceRequests a dropped
// connection. The test checks that the run was hit.
const faultSeed = 20351478

// maxScheduledRuns is how many scheduled invocations the faulty run gets.
const maxScheduledRuns = 3

// cleanupRun is one pass of the scenario.
type cleanupRun struct {
	// state maps a logical resource name (an AMI ID, which the fixture
	// fixes, or "snap-of-<ami>") to its tags, times masked.
	state       map[string]map[string]string
	invocations int
	summaries   []summaryLine
	errors      []string // function errors, per invocation that had one
	events      int      // AMI Cleanup Report events delivered
}

func TestFaultsCleanupEndsInTheFaultFreeState(t *testing.T) {
	started := time.Now()
	direct := runCleanupScenario(t, nil)
	if direct.invocations != 1 || len(direct.errors) > 0 {
		t.Fatalf("the fault-free run needed %d invocations: %v", direct.invocations, direct.errors)
	}
	// The comparison means something only if the fault-free run removed
	// the two stale AMIs and their snapshots and kept the rest.
	if s := direct.summaries[0]; s.Deregistered != 2 || s.SnapshotsDeleted != 2 || s.Failed != 0 {
		t.Fatalf("fault-free run: %+v", s)
	}
	for _, gone := range []string{amiStale1, amiStale2, "snap-of-" + amiStale1, "snap-of-" + amiStale2} {
		if _, ok := direct.state[gone]; ok {
			t.Fatalf("fault-free run kept %s", gone)
		}
	}
	if len(direct.state) != 2*(len(emulator.FleetAMIs)-2) {
		t.Fatalf("fault-free run left %d resources, want %d: %v", len(direct.state), 2*(len(emulator.FleetAMIs)-2), slices.Sorted(maps.Keys(direct.state)))
	}

	cfg := emulator.ScenarioFaults(emulator.ScenarioSeed(t, faultSeed))
	faulty := runCleanupScenario(t, &cfg)
	t.Logf("fault run: %d scheduled invocations, errors %v, summaries %+v", faulty.invocations, faulty.errors, faulty.summaries)

	last := faulty.summaries[len(faulty.summaries)-1]
	if last.Failed != 0 || len(faulty.errors) == faulty.invocations {
		t.Errorf("still failing after %d scheduled runs: %v", faulty.invocations, faulty.errors)
	}
	for name := range direct.state {
		if _, ok := faulty.state[name]; !ok {
			t.Errorf("%s was removed under faults; the fault-free run kept it", name)
		}
	}
	if !reflect.DeepEqual(direct.state, faulty.state) {
		t.Errorf("final state differs from the fault-free run:\n%s", diffCleanupStates(direct.state, faulty.state))
	}
	// Every scheduled run reported, once.
	if faulty.events != faulty.invocations {
		t.Errorf("%d report events for %d invocations", faulty.events, faulty.invocations)
	}
	t.Logf("wall time %v", time.Since(started).Round(time.Millisecond))
}

// runCleanupScenario builds the fleet on a fresh moto and sweeps it; with
// faults nil the function talks to moto directly, else through a fault
// proxy with that configuration, invoked until a run reports nothing failed.
func runCleanupScenario(t *testing.T, faults *emulator.FaultConfig) cleanupRun {
	t.Helper()
	f := newFleet(t) // the world is built straight on moto
	env := append(f.moto.Env("us-east-1"), "HOUSEKEEPER_ACCOUNT_ID="+account,
		"HOUSEKEEPER_POLICY="+policyYAML("enforce"), "HOUSEKEEPER_REPORT_EVENT_BUS=default", f.recordsKey(t))
	var proxy *emulator.FaultProxy
	if faults != nil {
		var err error
		if proxy, err = emulator.StartFaultProxy(f.moto.URL, *faults); err != nil {
			t.Fatal(err)
		}
		defer proxy.Close()
		env = proxy.Env(env)
	}
	bin, err := emulator.FunctionBinary("cleanup")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := emulator.Fixture("events/valid/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}

	var run cleanupRun
	limit := 1
	if faults != nil {
		limit = maxScheduledRuns
	}
	for run.invocations < limit {
		run.invocations++
		// A new runtime each time: the next scheduled run is a cold start.
		rie, err := emulator.StartRIE(f.ctx, emulator.RIEOptions{Bootstrap: bin, Env: env})
		if err != nil {
			t.Fatal(err)
		}
		body, ierr := rie.Invoke(f.ctx, raw)
		logs := waitForLog(rie, `"msg":"cleanup summary"`, 1)
		rie.Stop()
		if ierr != nil {
			t.Fatalf("invocation %d: %v\n%s", run.invocations, ierr, logs)
		}
		sums := summaries(logs)
		if len(sums) != 1 {
			t.Fatalf("invocation %d: %d summary lines\n%s", run.invocations, len(sums), logs)
		}
		run.summaries = append(run.summaries, sums[0])
		if dup := duplicateDecisions(logs); len(dup) > 0 {
			t.Errorf("invocation %d logged more than one decision for %v", run.invocations, dup)
		}
		var r response
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("invocation %d: response %s: %v", run.invocations, body, err)
		}
		if r.ErrorType != "" {
			run.errors = append(run.errors, fmt.Sprintf("#%d %s", run.invocations, body))
		}
		if r.ErrorType == "" && r.Outcome != "enforced" {
			t.Fatalf("invocation %d: %s\n%s", run.invocations, body, logs)
		}
		if r.ErrorType == "" && sums[0].Failed == 0 {
			break
		}
	}
	if proxy != nil {
		stats := proxy.Stats()
		t.Logf("proxy:\n%s", stats)
		requireUnderFire(t, stats)
	}
	run.events = f.reportEvents(t)
	run.state = f.state(t)
	return run
}

// requireUnderFire fails the test if the proxy injected too little to prove
// anything: no throttling, no server error, no dropped read, or no mutating
// call that took effect while its client saw the connection drop.
func requireUnderFire(t *testing.T, stats emulator.ProxyStats) {
	t.Helper()
	tot := stats.Total()
	droppedAfterMutating := 0
	for action, a := range stats.Actions {
		if !emulator.IsNonMutating(action) {
			droppedAfterMutating += a.DroppedAfter
		}
	}
	if tot.Throttled == 0 || tot.InternalError+tot.Unavailable == 0 || tot.DroppedBefore == 0 || droppedAfterMutating == 0 {
		t.Errorf("the proxy injected too little to prove anything: %+v, %d mutating calls dropped after forwarding", tot, droppedAfterMutating)
	}
}

// duplicateDecisions returns the AMIs with more than one "cleanup decision"
// line in one invocation's output.
func duplicateDecisions(logs string) []string {
	seen := map[string]int{}
	logLines(logs, func(m map[string]any, _ string) {
		if m["msg"] == "cleanup decision" {
			id, _ := m["image_id"].(string)
			seen[id]++
		}
	})
	var dup []string
	for id, n := range seen {
		if n > 1 {
			dup = append(dup, id)
		}
	}
	slices.Sort(dup)
	return dup
}

// reportEvents drains the report queue, fails the test if an event lists
// one AMI twice, and returns how many events arrived.
func (f *fleet) reportEvents(t *testing.T) int {
	t.Helper()
	n := 0
	for {
		out, err := f.sqs.ReceiveMessage(f.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.queue), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return n
		}
		for _, m := range out.Messages {
			var ev struct {
				Detail struct {
					Decisions []struct {
						ImageID string `json:"image_id"`
					} `json:"decisions"`
				} `json:"detail"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
				t.Fatal(err)
			}
			ids := map[string]bool{}
			for _, d := range ev.Detail.Decisions {
				if ids[d.ImageID] {
					t.Errorf("report event %d lists %s twice", n, d.ImageID)
				}
				ids[d.ImageID] = true
			}
			n++
			if _, err := f.sqs.DeleteMessage(f.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(f.queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

var isoTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}`)

// state reads, straight from moto, every owned AMI and snapshot with its
// tags. AMI IDs are fixed by the fixture; a snapshot is named after the AMI
// it was made for (its ID is random), and snapshot IDs in tag values are
// replaced by those names and times masked, so two runs compare.
func (f *fleet) state(t *testing.T) map[string]map[string]string {
	t.Helper()
	names := map[string]string{}
	for ami, snap := range f.snaps {
		names[snap] = "snap-of-" + ami
	}
	out := map[string]map[string]string{}
	norm := func(tags []types.Tag) map[string]string {
		m := map[string]string{}
		for _, tg := range tags {
			v := aws.ToString(tg.Value)
			for id, name := range names {
				v = strings.ReplaceAll(v, id, name)
			}
			if isoTime.MatchString(v) {
				v = "<time>"
			}
			m[aws.ToString(tg.Key)] = v
		}
		return m
	}
	imgs, err := f.ec2.DescribeImages(f.ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs.Images {
		out[aws.ToString(img.ImageId)] = norm(img.Tags)
	}
	snaps, err := f.ec2.DescribeSnapshots(f.ctx, &ec2.DescribeSnapshotsInput{
		Filters: []types.Filter{{Name: aws.String("owner-id"), Values: []string{account}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps.Snapshots {
		id := aws.ToString(s.SnapshotId)
		name, ok := names[id]
		if !ok {
			name = "unexpected " + id
		}
		out[name] = norm(s.Tags)
	}
	return out
}

func diffCleanupStates(want, got map[string]map[string]string) string {
	var b strings.Builder
	keys := slices.Sorted(maps.Keys(want))
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		w, inW := want[k]
		g, inG := got[k]
		if inW != inG || !reflect.DeepEqual(w, g) {
			fmt.Fprintf(&b, "%s:\n  fault-free %v (present %v)\n  faulty     %v (present %v)\n", k, w, inW, g, inG)
		}
	}
	return b.String()
}
