package main_test

// The executor at EC2's limit: the real cleanup binary under the runtime
// emulator removes n stale AMIs (one snapshot each) in enforce mode, through
// the fault proxy with EC2's documented token buckets on (full at the start,
// as in an idle account) and no injected faults.
//
// The physical limit is the DeregisterImage bucket: 100 tokens, then 5 a
// second, so n removals cannot finish in less than max(0, n-100)/5 seconds.
// The benchmark reports the whole invocation (cold start, inventory, plan,
// removals, report) against that bound. The client's own limiter keeps half
// of the bucket for other tools (burst 50), so it cannot reach 100%: at
// 1,000 AMIs its ceiling is 180 s / 190 s = 94.7%.
//
//	make build-host
//	MOTO_SERVER=$PWD/.tools/venv/bin/moto_server AWS_LAMBDA_RIE=$PWD/.tools/bin/aws-lambda-rie \
//	HOUSEKEEPER_BIN_DIR=$PWD/.build/host go test -run '^$' -bench CleanupBehindThrottle -benchtime 1x -timeout 30m ./functions/cleanup/

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// benchTimeout is the Lambda timeout the runtime emulator enforces
// (AWS_LAMBDA_FUNCTION_TIMEOUT, default 300 s): Lambda's maximum, so a slow
// run shows as slow rather than as cut short.
const benchTimeout = "900"

// BenchmarkCleanupBehindThrottle runs two schedules:
//   - marked/n: the default policy's steady state, grace 7 days: n AMIs an
//     earlier run marked, whose date has passed. Their launch permissions
//     are read by the recheck, alongside the deregistrations;
//   - grace0/n: grace_days 0: the launch permissions of every candidate are
//     read before planning (a mark-less removal must know them first).
func BenchmarkCleanupBehindThrottle(b *testing.B) {
	for _, sc := range []struct {
		name  string
		grace int
		ns    []int
	}{{"marked", 7, []int{200, 1000}}, {"grace0", 0, []int{1000}}} {
		for _, n := range sc.ns {
			b.Run(sc.name+"/"+strconv.Itoa(n), func(b *testing.B) { benchCleanup(b, n, sc.grace) })
		}
	}
}

// throttleRun is what one measured invocation did.
type throttleRun struct {
	elapsed time.Duration
	resp    response
	summary summaryLine
	proxy   emulator.ProxyStats
	spans   map[string]span
}

func benchCleanup(b *testing.B, n, graceDays int) {
	var sum struct {
		secs, throttled, dereg, deleted, failed, reportThrottled float64
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r := runBehindThrottle(b, n, graceDays, func() { b.StartTimer() }, func() { b.StopTimer() })
		if r.resp.Outcome != "enforced" || r.resp.Deregistered != n || r.resp.SnapshotsDeleted != n || r.resp.Failed != 0 || r.summary.Throttled != 0 {
			b.Fatalf("run %d: response %+v, summary %+v; proxy:\n%s", i, r.resp, r.summary, r.proxy)
		}
		sum.secs += r.elapsed.Seconds()
		sum.throttled += float64(r.proxy.Total().Throttled)
		sum.dereg += float64(r.resp.Deregistered)
		sum.deleted += float64(r.resp.SnapshotsDeleted)
		sum.failed += float64(r.resp.Failed)
		sum.reportThrottled += float64(r.summary.Throttled)
		b.Logf("%d AMIs: %.1f s (bound %.0f s, %.1f%%); sweep %.1f s; %s\nproxy:\n%s",
			n, r.elapsed.Seconds(), physicalBound(n), 100*physicalBound(n)/r.elapsed.Seconds(),
			float64(r.summary.DurationMS)/1000, spansText(r.spans), r.proxy)
	}
	runs := float64(b.N)
	secs := sum.secs / runs
	b.ReportMetric(secs, "s")
	b.ReportMetric(float64(n)/secs, "AMIs/s")
	b.ReportMetric(100*physicalBound(n)/secs, "pct-of-limit")
	b.ReportMetric(sum.throttled/runs, "proxy-throttled")
	b.ReportMetric(sum.dereg/runs, "deregistered")
	b.ReportMetric(sum.deleted/runs, "snapshots-deleted")
	b.ReportMetric(sum.failed/runs, "failed")
	b.ReportMetric(sum.reportThrottled/runs, "report-throttled")
}

// physicalBound is the least time EC2's DeregisterImage bucket (100 tokens,
// 5 a second) allows for n deregistrations, in seconds.
func physicalBound(n int) float64 { return float64(max(0, n-100)) / 5 }

// runBehindThrottle seeds n stale AMIs, starts the proxy (buckets full, no
// faults) and the function, and invokes it once between start and stop
// (which bracket only the invocation). It checks moto's state afterwards.
func runBehindThrottle(tb testing.TB, n, graceDays int, start, stop func()) throttleRun {
	tb.Helper()
	ctx := context.Background()
	moto, ids, err := emulator.StartStaleMoto(ctx, tb.TempDir(), account, "us-east-1", n)
	if err != nil {
		tb.Fatal(err)
	}
	defer moto.Stop()
	if graceDays > 0 {
		if err := moto.MarkStale(ctx, "us-east-1", ids, time.Now().UTC().AddDate(0, 0, -2).Format("2006-01-02")); err != nil {
			tb.Fatal(err)
		}
	}
	proxy, err := emulator.StartFaultProxy(moto.URL, emulator.FaultConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	defer proxy.Close()
	bin, err := emulator.FunctionBinary("cleanup")
	if err != nil {
		tb.Fatal(err)
	}
	keyEnv, err := moto.RecordsKeyEnv(ctx, "us-east-1")
	if err != nil {
		tb.Fatal(err)
	}
	env := proxy.Env(append(moto.Env("us-east-1"), "HOUSEKEEPER_ACCOUNT_ID="+account, keyEnv,
		"HOUSEKEEPER_POLICY="+emulator.StaleFleetPolicy("enforce", graceDays), "AWS_LAMBDA_FUNCTION_TIMEOUT="+benchTimeout))
	rie, err := emulator.StartRIE(ctx, emulator.RIEOptions{Bootstrap: bin, Env: env})
	if err != nil {
		tb.Fatal(err)
	}
	defer rie.Stop()
	raw, err := emulator.Fixture("events/valid/scheduled.json")
	if err != nil {
		tb.Fatal(err)
	}

	start()
	began := time.Now()
	body, err := rie.Invoke(ctx, raw)
	elapsed := time.Since(began)
	stop()
	if err != nil {
		tb.Fatalf("%v\n%s", err, tail(rie.Logs(), 4000))
	}
	r := throttleRun{elapsed: elapsed, proxy: proxy.Stats()}
	if err := json.Unmarshal(body, &r.resp); err != nil {
		tb.Fatalf("response %s: %v", body, err)
	}
	logs := waitForLog(rie, `"msg":"cleanup summary"`, 1)
	sums := summaries(logs)
	if len(sums) != 1 {
		tb.Fatalf("%d summary lines\n%s", len(sums), tail(logs, 4000))
	}
	r.summary = sums[0]
	r.spans = actionSpans(logs, began)

	// What moto holds now, straight rather than through the proxy.
	cfg, err := moto.Config(ctx, "us-east-1")
	if err != nil {
		tb.Fatal(err)
	}
	c := ec2.NewFromConfig(cfg)
	imgs, err := emulator.OwnedImageCount(ctx, c)
	if err != nil {
		tb.Fatal(err)
	}
	snaps, err := emulator.SnapshotCount(ctx, c, account)
	if err != nil {
		tb.Fatal(err)
	}
	if imgs != n-r.resp.Deregistered || snaps != n-r.resp.SnapshotsDeleted {
		tb.Fatalf("moto holds %d AMIs and %d snapshots of %d; the response says %+v", imgs, snaps, n, r.resp)
	}
	return r
}

// summaryLine is the numbers of the "cleanup summary" log line.
type summaryLine struct {
	Deregistered     int   `json:"deregistered"`
	SnapshotsDeleted int   `json:"snapshots_deleted"`
	Failed           int   `json:"failed"`
	Throttled        int   `json:"throttled"`
	KeptOnRecheck    int   `json:"kept_on_recheck"`
	DurationMS       int64 `json:"duration_ms"`
}

// logLines calls f with every JSON line of the function's output.
func logLines(logs string, f func(line map[string]any, raw string)) {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		raw := sc.Text()
		if !strings.HasPrefix(raw, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(raw), &m) == nil {
			f(m, raw)
		}
	}
}

func summaries(logs string) []summaryLine {
	var out []summaryLine
	logLines(logs, func(m map[string]any, raw string) {
		if m["msg"] == "cleanup summary" {
			var s summaryLine
			_ = json.Unmarshal([]byte(raw), &s)
			out = append(out, s)
		}
	})
	return out
}

// span is when the executor's lines of one action came, from the start of
// the invocation.
type span struct {
	first, last time.Duration
	lines       int
}

// actionSpans reads the executor's per-action log lines ("cleanup
// deregister", "cleanup delete-snapshot", ...) and the decisions.
func actionSpans(logs string, began time.Time) map[string]span {
	out := map[string]span{}
	logLines(logs, func(m map[string]any, _ string) {
		msg, _ := m["msg"].(string)
		ts, _ := m["time"].(string)
		at, err := time.Parse(time.RFC3339Nano, ts)
		if !strings.HasPrefix(msg, "cleanup ") || err != nil {
			return
		}
		d := at.Sub(began)
		s, ok := out[msg]
		if !ok || d < s.first {
			s.first = d
		}
		s.last = max(s.last, d)
		s.lines++
		out[msg] = s
	})
	return out
}

func spansText(spans map[string]span) string {
	keys := make([]string, 0, len(spans))
	for k := range spans {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return spans[keys[i]].first < spans[keys[j]].first })
	var b strings.Builder
	for _, k := range keys {
		s := spans[k]
		fmt.Fprintf(&b, "\n  %-32s %5d lines  %7.2f s .. %7.2f s", k, s.lines, s.first.Seconds(), s.last.Seconds())
		if s.lines > 1 && s.last > s.first {
			fmt.Fprintf(&b, "  (%.2f/s)", float64(s.lines-1)/(s.last-s.first).Seconds())
		}
	}
	return b.String()
}

// waitForLog waits (a few seconds at most) until the emulator has copied at
// least want lines containing marker from the function's output: the
// response can arrive before the output is copied.
func waitForLog(rie *emulator.RIE, marker string, want int) string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		logs := rie.Logs()
		if strings.Count(logs, marker) >= want || time.Now().After(deadline) {
			return logs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
