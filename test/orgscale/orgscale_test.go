// Package orgscale_test is the organization-scale benchmark of issue 10: a
// simulated organization (50 accounts × 4 regions × 2,000 AMIs in the
// benchmark) swept by the cleanup through the real dispatcher, units
// handler, worker and cleanup engine, against fakes with EC2's token
// buckets per account and region, on a simulated clock. See
// docs/benchmarks-org.md.
//
//	go test ./test/orgscale/                                                   # 4 accounts × 2 regions × 200 AMIs (make test)
//	go test -run '^$' -bench OrgSweep -benchtime 1x -timeout 60m -v ./test/orgscale/ # the full organization
//	ORGSCALE_CONFIG='{"accounts":1,"regions":1,"amis":2500,"timeout_s":600,"max_receive":5}' \
//	  go test -count=1 -run '^TestOrgSweep$' -v ./test/orgscale/                     # any other size
package orgscale_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
)

// small is the organization TestOrgSweep sweeps in make test.
var small = config{Accounts: 4, Regions: 2, AMIs: 200, Timeout: Duration(10 * time.Minute), MaxReceive: 5}

// full is the organization: 50 accounts × 4 regions × 2,000 AMIs.
// The timeout is the cleanup function's (infra: 10 minutes).
var full = config{Accounts: 50, Regions: 4, AMIs: 2000, Timeout: Duration(10 * time.Minute), MaxReceive: 5}

// hour is the target: the whole sweep inside one hour.
const hour = time.Hour

// The benchmark runs TestOrgSweep in a child process (testing/synctest
// needs a *testing.T, which a benchmark has not): envConfig carries the
// configuration as JSON, envReport the file the child writes its report to.
const (
	envConfig = "ORGSCALE_CONFIG"
	envReport = "ORGSCALE_REPORT"
)

// report is what one simulated organization sweep measured.
type report struct {
	Config config `json:"config"`
	Units  int    `json:"units"`
	// Calls and Throttled per EC2 action, over the whole sweep; OtherCalls
	// to Organizations, the ledger and the units queue.
	Calls      map[string]int            `json:"calls"`
	Throttled  int                       `json:"throttled"`
	OtherCalls map[string]map[string]int `json:"other_calls"`
	Totals     fanout.Totals             `json:"totals"`
	// Reports is how many cleanup reports the units published; the largest
	// report and the summary event, in bytes (EventBridge takes 256 KB).
	Reports        int `json:"reports"`
	LargestReport  int `json:"largest_report_bytes"`
	LargestSummary int `json:"largest_summary_bytes"`
	// CriticalPath is the longest unit: no W finishes the sweep sooner.
	CriticalPath Duration `json:"critical_path_s"`
	Critical     unitRun  `json:"critical_unit"`
	// SumOfUnits is every unit's time added up: one slot's makespan.
	SumOfUnits Duration `json:"sum_of_units_s"`
	// ByOU is each OU's longest and mean unit.
	ByOU map[string][2]Duration `json:"by_ou_s"`
	// WNeeded is ⌈SumOfUnits ÷ 1 h⌉, raised until the schedule fits the hour.
	WNeeded int `json:"w_needed"`
	// Predicted is the list schedule's makespan per W; Measured the
	// simulated runs' (W = 1 and WNeeded, and the small test's W).
	Predicted map[int]Duration `json:"predicted_s"`
	Measured  map[int]Duration `json:"measured_s"`
	// What the process spent, per run (W): wall seconds, peak heap MB.
	Wall     map[int]float64 `json:"wall_s"`
	PeakHeap map[int]float64 `json:"peak_heap_mb"`
	// PeakRSSMB is the process's peak resident set; TotalAllocMB all it allocated.
	PeakRSSMB    float64 `json:"peak_rss_mb"`
	TotalAllocMB float64 `json:"total_alloc_mb"`
}

// TestOrgSweep sweeps a small organization twice, with one slot and with
// more, and checks the invariants of each run (every unit recorded once,
// each account × region's result what its own fleet asks for and its fleet
// changed accordingly, the unreachable account's units recorded, the
// suspended account skipped, one complete summary, no mutation throttled) and
// that the list schedule of the units' times predicts the concurrent run's
// makespan. Run by BenchmarkOrgSweep with envConfig set, it sweeps that
// organization instead and writes the report to envReport.
func TestOrgSweep(t *testing.T) {
	cfg, ws := small, []int{3}
	out := os.Getenv(envReport)
	if raw := os.Getenv(envConfig); raw != "" {
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			t.Fatalf("%s: %v", envConfig, err)
		}
		ws = nil // the full run's other Ws: the one the hour needs, and 20
	}
	var peak atomic.Uint64
	stop := sampleHeap(&peak)
	defer stop()
	rep := sweepAndCheck(t, cfg, ws, &peak)
	if t.Failed() {
		return
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rep.TotalAllocMB = float64(ms.TotalAlloc) / (1 << 20)
	rep.PeakRSSMB = peakRSSMB()
	t.Log(rep.text())
	if out != "" {
		raw, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// sweepAndCheck sweeps with W = 1 first (each unit's time), then with each
// W of ws, or the W the hour needs; each sweep in a bubble of its own.
func sweepAndCheck(t *testing.T, cfg config, ws []int, peak *atomic.Uint64) report {
	rep := report{Config: cfg, Predicted: map[int]Duration{}, Measured: map[int]Duration{}, Wall: map[int]float64{}, PeakHeap: map[int]float64{},
		OtherCalls: map[string]map[string]int{}, ByOU: map[string][2]Duration{}}
	one := func(w int) run {
		t.Helper()
		runtime.GC()
		peak.Store(0)
		began := time.Now()
		var r run
		synctest.Test(t, func(t *testing.T) {
			var err error
			if r, err = simulate(context.Background(), cfg, w); err != nil {
				t.Fatalf("W=%d: %v", w, err)
			}
			for _, p := range verify(r, cfg) {
				t.Errorf("W=%d: %s", w, p)
			}
		})
		rep.Measured[w] = Duration(r.Makespan)
		rep.Wall[w] = time.Since(began).Seconds()
		rep.PeakHeap[w] = float64(peak.Load()) / (1 << 20)
		return r
	}
	seq := one(1)
	durations := seq.durations()
	rep.Units = len(seq.Units)
	rep.Calls, rep.Throttled = map[string]int{}, 0
	var sum time.Duration
	perOU := map[string][]time.Duration{}
	for i, u := range seq.Units {
		for op, n := range u.Calls {
			rep.Calls[op] += n
		}
		for _, n := range u.Throttled {
			rep.Throttled += n
		}
		sum += durations[i]
		if durations[i] > time.Duration(rep.CriticalPath) {
			rep.CriticalPath, rep.Critical = Duration(durations[i]), u
		}
		if u.Account != unreachableAccount {
			perOU[ouName(u.OU)] = append(perOU[ouName(u.OU)], durations[i])
		}
	}
	for ou, ds := range perOU {
		var total time.Duration
		for _, d := range ds {
			total += d
		}
		rep.ByOU[ou] = [2]Duration{Duration(slices.Max(ds)), Duration(total / time.Duration(len(ds)))}
	}
	rep.SumOfUnits = Duration(sum)
	rep.OtherCalls["organizations"], rep.OtherCalls["dynamodb"], rep.OtherCalls["sqs"] = seq.OrgCalls, seq.LedgerCalls, seq.SQSCalls
	if seq.Summary != nil {
		rep.Totals = seq.Summary.Totals
	}
	rep.Reports, rep.LargestReport, rep.LargestSummary = seq.Reports, seq.LargestReport, seq.LargestSummary
	if time.Duration(rep.Measured[1]) != sum {
		t.Errorf("W=1: makespan %v, but the units add up to %v", time.Duration(rep.Measured[1]), sum)
	}

	// The W the hour needs: the work divided by the hour, rounded up, and
	// raised while the list schedule (whose last units may end unevenly)
	// does not fit.
	rep.WNeeded = max(1, int(math.Ceil(sum.Seconds()/hour.Seconds())))
	for listSchedule(durations, rep.WNeeded) > hour && rep.WNeeded < len(durations) {
		rep.WNeeded++
	}
	for _, w := range []int{1, 10, 20, 50, 200, rep.WNeeded} {
		rep.Predicted[w] = Duration(listSchedule(durations, w))
	}
	if ws == nil {
		ws = []int{rep.WNeeded, 20}
	}
	for _, w := range slices.Compact(slices.Sorted(slices.Values(ws))) {
		if w == 1 {
			continue // measured already
		}
		predicted := listSchedule(durations, w)
		rep.Predicted[w] = Duration(predicted)
		r := one(w)
		// Units do not share a bucket, so each takes as long beside others
		// as alone: the schedule predicts the run, up to the SDK's random
		// retry jitter (a second and 1 %).
		if diff := (r.Makespan - predicted).Abs(); diff > time.Second+predicted/100 {
			t.Errorf("W=%d: simulated makespan %v, list schedule of the W=1 units %v", w, r.Makespan, predicted)
		}
	}
	if cfg == full && time.Duration(rep.Measured[rep.WNeeded]) > hour {
		t.Errorf("W=%d: %v, more than the hour", rep.WNeeded, time.Duration(rep.Measured[rep.WNeeded]))
	}
	return rep
}

func ouName(id string) string {
	for _, ou := range ous {
		if ou.id == id {
			return ou.name
		}
	}
	return id
}

// text renders the report for the logs.
func (r report) text() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "organization: %d accounts × %d regions × %d AMIs (+1 account without a role, +1 suspended): %d units\n",
		c.Accounts, c.Regions, c.AMIs, r.Units)
	t := r.Totals
	fmt.Fprintf(&b, "summary: %d done, %d unreachable; %d AMIs seen, %d deregistered, %d snapshots deleted, %d GiB freed (%.0f USD/month)\n",
		t.Done, t.Unreachable, t.AMIsSeen, t.Deregistered, t.SnapshotsDeleted, t.GiBFreed, t.USDPerMonthSaved)
	fmt.Fprintf(&b, "published: %d cleanup reports (largest %d bytes), one summary (%d bytes)\n", r.Reports, r.LargestReport, r.LargestSummary)
	fmt.Fprintf(&b, "EC2 calls (throttled: %d):\n", r.Throttled)
	for _, op := range slices.Sorted(maps.Keys(r.Calls)) {
		fmt.Fprintf(&b, "  %-32s %9d  (%.2f per unit)\n", op, r.Calls[op], float64(r.Calls[op])/float64(max(1, r.Units-c.Regions)))
	}
	for _, svc := range slices.Sorted(maps.Keys(r.OtherCalls)) {
		fmt.Fprintf(&b, "%s calls: %v\n", svc, r.OtherCalls[svc])
	}
	fmt.Fprintf(&b, "critical path (longest unit): %.1f s, %s (OU %s)\n", time.Duration(r.CriticalPath).Seconds(), r.Critical.ID, ouName(r.Critical.OU))
	spans := r.Critical.Spans
	ops := slices.Sorted(maps.Keys(spans))
	sort.SliceStable(ops, func(i, j int) bool { return spans[ops[i]][0] < spans[ops[j]][0] })
	for _, op := range ops {
		s := spans[op]
		fmt.Fprintf(&b, "  %-32s %6d calls  %7.1f s .. %7.1f s\n", op, r.Critical.Calls[op], time.Duration(s[0]).Seconds(), time.Duration(s[1]).Seconds())
	}
	for _, ou := range slices.Sorted(maps.Keys(r.ByOU)) {
		fmt.Fprintf(&b, "  OU %-8s longest unit %6.1f s, mean %6.1f s\n", ou, time.Duration(r.ByOU[ou][0]).Seconds(), time.Duration(r.ByOU[ou][1]).Seconds())
	}
	fmt.Fprintf(&b, "units added up: %.0f s; W for one hour: ⌈%.0f ÷ 3600⌉ → %d\n", time.Duration(r.SumOfUnits).Seconds(), time.Duration(r.SumOfUnits).Seconds(), r.WNeeded)
	for _, w := range slices.Sorted(maps.Keys(r.Predicted)) {
		fmt.Fprintf(&b, "  W=%-4d list schedule %8.1f s", w, time.Duration(r.Predicted[w]).Seconds())
		if m, ok := r.Measured[w]; ok {
			fmt.Fprintf(&b, "   simulated %8.1f s  (wall %.1f s, peak heap %.0f MB)", time.Duration(m).Seconds(), r.Wall[w], r.PeakHeap[w])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "process: peak RSS %.0f MB, %.0f MB allocated in all", r.PeakRSSMB, r.TotalAllocMB)
	return b.String()
}

// BenchmarkOrgSweep sweeps the organization (full) in a child
// process running TestOrgSweep, and reports what it measured: the
// simulated makespan at W = 1 and at the W the hour needs, the critical
// path, that W, the calls, and the run's wall time and memory.
func BenchmarkOrgSweep(b *testing.B) {
	raw, err := json.Marshal(full)
	if err != nil {
		b.Fatal(err)
	}
	var rep report
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "report.json")
		cmd := exec.Command(os.Args[0], "-test.run=^TestOrgSweep$", "-test.count=1", "-test.timeout=0", "-test.v") //nolint:gosec // the test binary itself
		cmd.Env = append(os.Environ(), envConfig+"="+string(raw), envReport+"="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("the simulation failed: %v\n%s", err, tail(string(out), 8000))
		}
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatalf("no report: %v\n%s", err, tail(string(out), 8000))
		}
		if err := json.Unmarshal(data, &rep); err != nil {
			b.Fatal(err)
		}
	}
	b.Log("\n" + rep.text())
	b.ReportMetric(time.Duration(rep.CriticalPath).Seconds(), "critical-path-s")
	b.ReportMetric(time.Duration(rep.SumOfUnits).Seconds(), "sim-W1-s")
	b.ReportMetric(float64(rep.WNeeded), "W-for-1h")
	b.ReportMetric(time.Duration(rep.Measured[rep.WNeeded]).Seconds(), "sim-Wneeded-s")
	b.ReportMetric(float64(rep.Throttled), "throttled")
	var calls int
	for _, n := range rep.Calls {
		calls += n
	}
	b.ReportMetric(float64(calls), "ec2-calls")
	b.ReportMetric(rep.Wall[1]+rep.Wall[rep.WNeeded], "wall-s")
	b.ReportMetric(rep.PeakRSSMB, "peak-RSS-MB")
	b.ReportMetric(max(rep.PeakHeap[1], rep.PeakHeap[rep.WNeeded]), "peak-heap-MB")
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// sampleHeap records the largest live heap (HeapAlloc) it sees, every
// 20 ms of wall time, until stop. It runs outside the bubble.
func sampleHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			for {
				p := peak.Load()
				if ms.HeapAlloc <= p || peak.CompareAndSwap(p, ms.HeapAlloc) {
					break
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}
