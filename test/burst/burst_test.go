// Package burst_test holds the release-burst scenario (issue 11): n new AMIs
// at once, both events each, delivered through per-function SQS queues and
// event source mappings to the real tagger and sharing binaries under the
// runtime emulator, with moto behind the fault proxy's EC2 token buckets.
// It lives apart from functions/<name> because it runs both functions
// against one account at once, as a burst meets them.
//
//	go test ./test/burst/                                               # 100 AMIs, the invariants (part of make test)
//	go test -run '^$' -bench Burst -benchtime 1x -timeout 30m ./test/burst/  # 1,000 AMIs, timed
package burst_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
)

const (
	account = "123456789012"
	region  = "us-east-1"

	// The event source mappings' settings as deployed
	// (infra/housekeeper/queue.go; the maximum concurrency per function is
	// ratelimit.MaxConcurrency): batch size, batching window; the DLQ after
	// maxReceiveCount receives.
	batchSize       = 10
	batchingWindow  = time.Second
	maxReceiveCount = 10

	// The functions' timeouts as deployed (infra/housekeeper/tagger.go,
	// sharing.go); each queue's visibility timeout is its function's plus a
	// minute, as deployed.
	taggerTimeout  = 30 * time.Second
	sharingTimeout = 15 * time.Minute

	// shuffleSeed fixes the order the events are enqueued in.
	shuffleSeed = 20261211
)

// policyYAML is the one policy both functions are deployed with.
const policyYAML = `
version: 1
tagging:
  copy_from_source: [team]
  static_tags: {managed-by: ami-housekeeper}
sharing:
  mode: enforce
`

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}

// TestBurst100 is the scenario at 100 AMIs: every invariant of the
// 1,000-AMI benchmark, in about half a minute.
func TestBurst100(t *testing.T) {
	r := runBurst(t, 100, 3*time.Minute)
	r.check(t)
	t.Log(r.report())
}

// BenchmarkBurst is the measure: 1,000 AMIs at once. Besides the
// invariants it holds the drain time to twice the bucket arithmetic's lower
// bound for the calls observed, at the share of each bucket the housekeeper
// allows itself (ratelimit.HousekeeperShare, 80 %: the rest is left to the
// account's other tools, so no faster drain is wanted). The bound at 100 %
// is reported too.
func BenchmarkBurst(b *testing.B) {
	for range b.N {
		r := runBurst(b, 1000, 15*time.Minute)
		r.check(b)
		b.Log(r.report())
		if bound := r.bound(ratelimit.HousekeeperShare); r.drain > 2*bound {
			b.Errorf("drained in %v, more than twice the buckets' lower bound %v at the housekeeper's share", r.drain.Round(time.Second), bound.Round(time.Second))
		}
		b.ReportMetric(r.drain.Seconds(), "drain-s")
		b.ReportMetric(r.bound(1).Seconds(), "bound-s")
		b.ReportMetric(r.bound(0.8).Seconds(), "bound80-s")
		b.ReportMetric(float64(r.proxy.Total().Throttled), "throttled")
		b.ReportMetric(float64(r.tagger.totals.Invocations), "tagger-invocations")
		b.ReportMetric(float64(r.sharing.totals.Invocations), "sharing-invocations")
		b.ReportMetric(ms(r.tagger.p(99)), "tagger-p99-ms")
		b.ReportMetric(ms(r.sharing.p(99)), "sharing-p99-ms")
	}
}

// function is one function's side of a run.
type function struct {
	name   string
	queue  emulator.Queue
	esm    *emulator.ESM
	ries   []*emulator.RIE
	totals emulator.ESMTotals
	durs   []time.Duration
	dlq    emulator.QueueDepth
	logs   []map[string]any // every JSON line the function printed
	drain  time.Duration
	err    error
}

func (f *function) p(pct float64) time.Duration { return emulator.Percentile(f.durs, pct) }

// lines returns the function's log lines with this msg.
func (f *function) lines(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range f.logs {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

type burst struct {
	n        int
	ec2      *ec2.Client
	amis     []string
	creators map[string]string // AMI -> the CloudTrail event's caller
	images   map[string]ec2types.Image
	seeding  time.Duration
	drain    time.Duration
	proxy    emulator.ProxyStats
	tagger   *function
	sharing  *function
}

func runBurst(tb testing.TB, n int, limit time.Duration) *burst {
	tb.Helper()
	ctx := context.Background()
	moto := emulator.SharedMoto(tb)
	cfg, err := moto.Config(ctx, region)
	if err != nil {
		tb.Fatal(err)
	}
	seed := emulator.Seeder{EC2: ec2.NewFromConfig(cfg)}
	// The queues live on a moto server of their own: one moto process is
	// one Python core, and the pollers' receives and deletes on the same
	// server as 9,500 EC2 calls made it the bottleneck of the run (the
	// functions reach it through AWS_ENDPOINT_URL_SQS, below).
	queues, err := emulator.StartMoto(ctx, emulator.MotoOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(queues.Stop)
	qcfg, err := queues.Config(ctx, region)
	if err != nil {
		tb.Fatal(err)
	}
	sq := sqs.NewFromConfig(qcfg)
	r := &burst{n: n, ec2: seed.EC2, creators: map[string]string{}}

	// The AMIs, straight on moto (not through the proxy: the release
	// pipeline's calls are not what is measured).
	start := time.Now()
	inst, err := seed.Instance(ctx, emulator.ForeignImageID, "team", "web")
	if err != nil {
		tb.Fatal(err)
	}
	r.amis = make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				id, err := seed.CreateImage(ctx, inst, fmt.Sprintf("release-%04d", i))
				if err != nil {
					errs <- err
					continue
				}
				r.amis[i] = id
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
	r.seeding = time.Since(start)

	proxy, err := emulator.StartFaultProxy(moto.URL, emulator.FaultConfig{}) // EC2's buckets, full; no faults
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = proxy.Close() })

	r.tagger = &function{name: "tagger"}
	r.sharing = &function{name: "sharing"}
	for _, f := range []struct {
		f       *function
		timeout time.Duration
	}{{r.tagger, taggerTimeout}, {r.sharing, sharingTimeout}} {
		if f.f.queue, err = emulator.CreateQueueWithDLQ(ctx, sq, "ami-housekeeper-"+f.f.name, f.timeout+time.Minute, maxReceiveCount); err != nil {
			tb.Fatal(err)
		}
		bin, err := emulator.FunctionBinary(f.f.name)
		if err != nil {
			tb.Fatal(err)
		}
		env := proxy.Env(append(moto.Env(region),
			"HOUSEKEEPER_ACCOUNT_ID="+account,
			"HOUSEKEEPER_POLICY="+policyYAML,
			"HOUSEKEEPER_REPORT_EVENT_BUS=default",
			"AWS_ENDPOINT_URL_SQS="+queues.URL,
			// As the stack sets it: every instance that may run at once
			// (the sharing guard's audit has a seat too).
			ratelimit.EnvMaxConcurrency+"="+strconv.Itoa(ratelimit.Instances(f.f.name)),
			"AWS_LAMBDA_FUNCTION_NAME=ami-housekeeper-"+f.f.name,
			"AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(int(f.timeout/time.Second))))
		maxConcurrency := ratelimit.MaxConcurrency[f.f.name]
		var instances []emulator.Invoker
		for range maxConcurrency {
			rie, err := emulator.StartRIE(ctx, emulator.RIEOptions{Bootstrap: bin, Env: env})
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(rie.Stop)
			f.f.ries = append(f.f.ries, rie)
			instances = append(instances, rie)
		}
		if f.f.esm, err = emulator.NewESM(ctx, emulator.ESMConfig{SQS: sq, QueueURL: f.f.queue.URL, Instances: instances,
			BatchSize: batchSize, BatchingWindow: batchingWindow, MaxConcurrency: maxConcurrency}); err != nil {
			tb.Fatal(err)
		}
	}

	// Both events of every AMI, in random order, routed as the deployed
	// EventBridge rules route them: the tagger's CloudTrailRule and
	// StateChangeRule take both; the sharing guard's NewImageRule takes
	// the state change (its PermissionRule matches no CreateImage).
	now := time.Now().UTC()
	var toTagger, toSharing []string
	for i, ami := range r.amis {
		created := now.Add(-time.Duration(n-i) * 50 * time.Millisecond)
		ct, creator := createImageEvent(tb, i, ami, inst, created)
		sc := stateChangeEvent(tb, i, ami, created.Add(40*time.Second))
		r.creators[ami] = creator
		toTagger = append(toTagger, ct, sc)
		toSharing = append(toSharing, sc)
	}
	rng := rand.New(rand.NewPCG(shuffleSeed, uint64(n))) //nolint:gosec // G404: a fixed order on purpose
	rng.Shuffle(len(toTagger), func(i, j int) { toTagger[i], toTagger[j] = toTagger[j], toTagger[i] })
	rng.Shuffle(len(toSharing), func(i, j int) { toSharing[i], toSharing[j] = toSharing[j], toSharing[i] })

	// The clock runs from the first message enqueued, as a burst lands,
	// until both queues are empty.
	start = time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for _, q := range []struct {
		f      *function
		bodies []string
	}{{r.tagger, toTagger}, {r.sharing, toSharing}} {
		wg.Go(func() {
			if err := emulator.SendAll(ctx, sq, q.f.queue.URL, q.bodies); err != nil {
				q.f.err = err
				return
			}
			q.f.err = q.f.esm.RunUntilEmpty(ctx)
			q.f.drain = time.Since(start)
		})
	}
	wg.Wait()
	r.drain = max(r.tagger.drain, r.sharing.drain)
	r.proxy = proxy.Stats()

	for _, f := range []*function{r.tagger, r.sharing} {
		f.totals = f.esm.Totals()
		for _, inv := range f.esm.Invocations() {
			f.durs = append(f.durs, inv.Duration)
		}
		if f.dlq, err = emulator.QueueDepthOf(context.Background(), sq, f.queue.DLQURL); err != nil {
			tb.Fatal(err)
		}
		for _, rie := range f.ries {
			f.logs = append(f.logs, jsonLines(rie.Logs())...)
		}
		if f.err != nil {
			tb.Errorf("%s: %v; totals %+v", f.name, f.err, f.totals)
		}
	}
	out, err := seed.EC2.DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil {
		tb.Fatal(err)
	}
	r.images = map[string]ec2types.Image{}
	for _, img := range out.Images {
		r.images[aws.ToString(img.ImageId)] = img
	}
	tb.Cleanup(func() {
		if os.Getenv("BURST_LOGS") != "" {
			for _, f := range []*function{r.tagger, r.sharing} {
				for i, rie := range f.ries {
					tb.Logf("%s instance %d:\n%s", f.name, i, rie.Logs())
				}
			}
		}
	})
	return r
}

// check asserts the invariants.
func (r *burst) check(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	// Every AMI and its snapshot tagged with the creator its CloudTrail
	// event named (each AMI has its own, so a mix-up shows).
	imageTags := map[string]map[string]string{}
	var snaps []string
	for _, ami := range r.amis {
		img, ok := r.images[ami]
		if !ok {
			tb.Fatalf("%s is gone", ami)
		}
		imageTags[ami] = tagMap(img.Tags)
		for _, m := range img.BlockDeviceMappings {
			if m.Ebs != nil && m.Ebs.SnapshotId != nil {
				snaps = append(snaps, aws.ToString(m.Ebs.SnapshotId))
			}
		}
	}
	untagged := 0
	for _, ami := range r.amis {
		if got := imageTags[ami]["ami-housekeeper:created-by"]; got != r.creators[ami] {
			if untagged++; untagged <= 5 {
				tb.Errorf("%s created-by %q, want %q (tags %v)", ami, got, r.creators[ami], imageTags[ami])
			}
		}
	}
	snapTags, err := snapshotTags(ctx, r, snaps)
	if err != nil {
		tb.Fatal(err)
	}
	snapUntagged := 0
	for _, s := range snaps {
		if snapTags[s]["ami-housekeeper:created-by"] == "" {
			snapUntagged++
		}
	}
	if untagged > 0 || snapUntagged > 0 || len(snaps) != r.n {
		tb.Errorf("%d of %d AMIs and %d of %d snapshots without their creator", untagged, r.n, snapUntagged, len(snaps))
	}

	// Every AMI's sharing checked: a sharing line for it with a check's
	// outcome (the AMIs are private: compliant).
	checked := map[string]bool{}
	for _, msg := range []string{"sharing record", "sharing invocation"} {
		for _, l := range r.sharing.lines(msg) {
			if l["outcome"] == "compliant" {
				checked[fmt.Sprint(l["resource_id"])] = true
			}
		}
	}
	missing := 0
	for _, ami := range r.amis {
		if !checked[ami] {
			if missing++; missing <= 5 {
				tb.Errorf("no sharing check of %s logged", ami)
			}
		}
	}
	if missing > 0 {
		tb.Errorf("%d of %d AMIs without a sharing check", missing, r.n)
	}

	for _, f := range []*function{r.tagger, r.sharing} {
		if f.dlq.Total() != 0 {
			tb.Errorf("%s DLQ holds %s", f.name, f.dlq)
		}
		if f.totals.Errors != 0 {
			tb.Errorf("%s: %d invocations failed (the whole batch retried); first: %s", f.name, f.totals.Errors, firstError(f.esm))
		}
		if f.totals.MaxInFlight > ratelimit.MaxConcurrency[f.name] {
			tb.Errorf("%s: %d invocations at once, above the maximum concurrency %d", f.name, f.totals.MaxInFlight, ratelimit.MaxConcurrency[f.name])
		}
		if f.totals.PollErrors+f.totals.DeleteErrors != 0 {
			tb.Errorf("%s: the mapping's own SQS calls failed: %+v, last %v", f.name, f.totals, f.esm.LastPollError())
		}
	}
	if tb.Failed() && os.Getenv("BURST_LOGS") == "" {
		tb.Log("set BURST_LOGS=1 to print every instance's output")
	}
}

func firstError(e *emulator.ESM) string {
	for _, inv := range e.Invocations() {
		if inv.Error != "" {
			return inv.Error
		}
	}
	return ""
}

// bound is the bucket arithmetic's lower bound on the drain for the calls
// observed, when the housekeeper may use share of every bucket.
func (r *burst) bound(share float64) time.Duration {
	b := emulator.BucketBounds(r.proxy, emulator.EC2Buckets(), share)
	if len(b) == 0 {
		return 0
	}
	return b[0].Bound
}

// report is the run in numbers, for the log and docs/benchmarks-burst.md.
func (r *burst) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d AMIs (seeded in %v), drained in %v (tagger %v, sharing %v)\n", r.n, r.seeding.Round(time.Millisecond),
		r.drain.Round(time.Millisecond), r.tagger.drain.Round(time.Millisecond), r.sharing.drain.Round(time.Millisecond))
	for _, f := range []*function{r.tagger, r.sharing} {
		t := f.totals
		fmt.Fprintf(&b, "%-8s invocations=%d records=%d item-failures=%d redelivered=%d invocation-errors=%d max-in-flight=%d p50=%v p99=%v max=%v dlq=%d\n",
			f.name, t.Invocations, t.Records, t.Failures, t.Redelivered, t.Errors, t.MaxInFlight,
			f.p(50).Round(time.Millisecond), f.p(99).Round(time.Millisecond), f.p(100).Round(time.Millisecond), f.dlq.Total())
		fmt.Fprintf(&b, "%-8s batch lines: %s\n", f.name, batchSums(f.lines(f.name+" batch")))
	}
	tot := r.proxy.Total()
	fmt.Fprintf(&b, "throttled answers %d of %d proxied requests\n", tot.Throttled, tot.Requests)
	fmt.Fprintf(&b, "calls per AMI:")
	keys := make([]string, 0, len(r.proxy.Actions))
	for k := range r.proxy.Actions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a := r.proxy.Actions[k]
		fmt.Fprintf(&b, " %s=%.2f", k, float64(a.Requests-a.Throttled)/float64(r.n))
	}
	fmt.Fprintf(&b, "\nproxy:\n%s\n", r.proxy)
	for _, share := range []float64{1, 0.8} {
		cb := emulator.BucketBounds(r.proxy, emulator.EC2Buckets(), share)
		fmt.Fprintf(&b, "bucket lower bound (one bucket per action) at %g%% of each bucket: %.1f s\n", share*100, cb[0].Bound.Seconds())
		for _, c := range cb {
			fmt.Fprintf(&b, "  %s\n", c)
		}
	}
	return b.String()
}

// batchSums adds up the numeric fields of the functions' per-batch lines
// (records, amis, coalesced, succeeded, failed, rejected, throttled,
// limiter_wait_ms) and takes the largest queue age.
func batchSums(lines []map[string]any) string {
	if len(lines) == 0 {
		return "none"
	}
	sums := map[string]float64{}
	for _, l := range lines {
		for k, v := range l {
			f, ok := v.(float64)
			switch {
			case !ok:
			case k == "queue_age_ms_max":
				sums[k] = max(sums[k], f)
			default:
				sums[k] += f
			}
		}
	}
	keys := make([]string, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%d lines", len(lines))
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%g", k, sums[k])
	}
	return b.String()
}

// createImageEvent is testdata's CloudTrail CreateImage for this AMI, with
// its own event ID, time and caller; it returns the caller's ARN.
func createImageEvent(tb testing.TB, i int, ami, inst string, at time.Time) (string, string) {
	tb.Helper()
	raw, err := emulator.Fixture("events/valid/cloudtrail-createimage.json")
	if err != nil {
		tb.Fatal(err)
	}
	session := fmt.Sprintf("release-%04d", i)
	s := string(emulator.Fill(raw, map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": inst}))
	s = strings.NewReplacer(
		"packer-build-42", session,
		"7bf73129-1428-4cd3-a780-95db273d1602", fmt.Sprintf("7bf73129-1428-4cd3-a780-%012d", i),
		"e1f2a3b4-0000-4000-8000-0000000000011", fmt.Sprintf("e1f2a3b4-0000-4000-8000-%012d", i),
		"2026-11-28T10:00:00Z", at.Format(time.RFC3339),
	).Replace(s)
	return compact(tb, s), "arn:aws:sts::" + account + ":assumed-role/image-builder/" + session
}

// stateChangeEvent is testdata's EC2 AMI State Change (available) for it.
func stateChangeEvent(tb testing.TB, i int, ami string, at time.Time) string {
	tb.Helper()
	raw, err := emulator.Fixture("events/valid/statechange-available.json")
	if err != nil {
		tb.Fatal(err)
	}
	s := string(emulator.Fill(raw, map[string]string{"IMAGE_ID": ami}))
	s = strings.NewReplacer(
		"example-9f07-51db-246b-d8b8441bcdf0", fmt.Sprintf("5c1d0e2f-9f07-51db-246b-%012d", i),
		"2026-11-28T10:03:00Z", at.Format(time.RFC3339),
	).Replace(s)
	return compact(tb, s)
}

// compact checks the event is JSON and writes it on one line, as
// EventBridge's SQS target does.
func compact(tb testing.TB, s string) string {
	tb.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		tb.Fatalf("event: %v\n%s", err, s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func tagMap(tags []ec2types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func snapshotTags(ctx context.Context, r *burst, ids []string) (map[string]map[string]string, error) {
	out, err := r.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: ids})
	if err != nil {
		return nil, fmt.Errorf("DescribeSnapshots: %w", err)
	}
	m := map[string]map[string]string{}
	for _, s := range out.Snapshots {
		m[aws.ToString(s.SnapshotId)] = tagMap(s.Tags)
	}
	return m, nil
}

// jsonLines is the function's output as JSON lines (emulator.JSONLines).
func jsonLines(out string) []map[string]any {
	lines, _ := emulator.JSONLines(out) // the invariants read what parsed
	return lines
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
