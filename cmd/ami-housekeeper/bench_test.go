package main_test

// BenchmarkPlan5000: the built binary's `plan` over 5,000 AMIs in moto on
// loopback, timed, with every API call it makes counted and held to the
// collector's lower bound. Run by `make bench`; the numbers are in README.md
// ("CLI").
//
// The lower bound is one call per page of each inventory list the collector
// reads (pkg/cleanup/collect: "Collect makes one call per page of each list
// and no call per AMI"), plus the one call every CLI run makes to learn the
// account (sts GetCallerIdentity). With keep_shared (the default), plan also
// reads the launch permissions of every candidate, one DescribeImageAttribute
// each, since EC2 offers them per AMI only; that is part of what plan must do,
// so the sub-benchmark keep_shared=true adds one call per candidate to the
// bound, and keep_shared=false measures the page-only bound.
//
// Calls are counted where they arrive, not in the binary: EC2, Auto Scaling,
// SSM and STS through the fault proxy with its buckets off (it counts per
// action, retries included), and the Recycle Bin at a stub, because moto has
// none (its errors would be retried five times each and counted as calls no
// real account makes): the stub answers ListRules with no rules, one page.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

const (
	benchAMIs    = 5000
	benchAccount = "123456789012" // moto's default account
	benchBudget  = 10 * time.Second
)

// planBound is the fewest calls a plan of the stale fleet can make against
// this moto, per action (as the fault proxy names them): one per page of
// each list, plus candidates launch-permission reads. Every list but the
// AMIs and their snapshots is empty (one page); moto returns all AMIs and
// all snapshots in one page, as it ignores MaxResults on DescribeImages and
// DescribeSnapshots (moto-notes.md). Against AWS those two lists take
// ceil(5000/1000) = 5 pages each: 8 more calls, the bound still met.
func planBound(candidates int) map[string]int {
	b := map[string]int{
		"sts:GetCallerIdentity":                    1, // the account, once per run
		"DescribeImages":                           1, // owned AMIs
		"DescribeSnapshots":                        1, // owned snapshots
		"DescribeInstances":                        1,
		"DescribeLaunchTemplateVersions":           1, // $Default and $Latest of every template, in one list
		"DescribeFleets":                           1,
		"DescribeSpotFleetRequests":                1,
		"DescribeSpotInstanceRequests":             1,
		"autoscaling:DescribeAutoScalingGroups":    1,
		"autoscaling:DescribeLaunchConfigurations": 1,
		"ssm:DescribeParameters":                   1, // parameters of data type aws:ec2:image
		"rbin:ListRules":                           2, // one list per resource type: AMIs, snapshots
	}
	if candidates > 0 {
		b["DescribeImageAttribute"] = candidates
	}
	return b
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// benchCLI is HOUSEKEEPER_CLI_BIN (make bench passes the binary make build
// ships), else the CLI built as make build builds it.
func benchCLI(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("HOUSEKEEPER_CLI_BIN"); p != "" {
		return p
	}
	p := filepath.Join(b.TempDir(), "ami-housekeeper")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", p, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the CLI: %v\n%s", err, out)
	}
	return p
}

// emptyRecycleBin is a Recycle Bin with no rules that counts the calls it
// gets by operation.
type emptyRecycleBin struct {
	mu    sync.Mutex
	calls map[string]int
}

func (r *emptyRecycleBin) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Method == http.MethodPost && req.URL.Path == "/list-rules" {
		r.calls["rbin:ListRules"]++
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"Rules":[]}`))
		return
	}
	r.calls["rbin:"+req.Method+" "+req.URL.Path]++
	http.Error(w, `{"message":"not in this stub"}`, http.StatusBadRequest)
}

func (r *emptyRecycleBin) take() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = map[string]int{}
	return out
}

func BenchmarkPlan5000(b *testing.B) {
	ctx := context.Background()
	bin := benchCLI(b)
	seeded := time.Now()
	m, _, err := emulator.StartStaleMoto(ctx, b.TempDir(), benchAccount, fleetRegion, benchAMIs)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Stop()
	b.Logf("moto holds %d stale AMIs (seeded and loaded in %s)", benchAMIs, time.Since(seeded).Round(time.Millisecond))

	for _, tc := range []struct {
		keepShared bool
		// budget: the 10 s holds for the lists; launch
		// permissions are one call per candidate on top (reported, see
		// README).
		budget time.Duration
	}{
		{keepShared: false, budget: benchBudget},
		{keepShared: true},
	} {
		b.Run(fmt.Sprintf("keep_shared=%t", tc.keepShared), func(b *testing.B) {
			doc := strings.Replace(emulator.StaleFleetPolicy("audit", 0), "  grace_days: 0\n",
				fmt.Sprintf("  grace_days: 0\n  keep_shared: %t\n", tc.keepShared), 1)
			pol := filepath.Join(b.TempDir(), "policy.yaml")
			if err := os.WriteFile(pol, []byte(doc), 0o600); err != nil {
				b.Fatal(err)
			}
			proxy, err := emulator.StartFaultProxy(m.URL, emulator.FaultConfig{NoThrottle: true})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = proxy.Close() }()
			rb := &emptyRecycleBin{calls: map[string]int{}}
			rbSrv := httptest.NewServer(rb)
			defer rbSrv.Close()
			env := append(proxy.Env(m.Env(fleetRegion)), "AWS_ENDPOINT_URL_RBIN="+rbSrv.URL,
				"PATH="+os.Getenv("PATH"), "HOME="+b.TempDir(), "NO_COLOR=1")
			candidates := 0
			if tc.keepShared {
				candidates = benchAMIs
			}
			bound := planBound(candidates)

			var runs int
			var elapsed, slowest time.Duration
			var calls map[string]int
			for b.Loop() {
				before := proxy.Stats()
				cmd := exec.Command(bin, "plan", "--output", "json", "--policy", pol, "--region", fleetRegion)
				cmd.Env = env
				var stderr strings.Builder
				cmd.Stderr = &stderr
				start := time.Now()
				out, err := cmd.Output()
				d := time.Since(start)
				if err != nil {
					b.Fatalf("plan: %v\n%s", err, stderr.String())
				}
				calls = rb.take()
				for action, st := range proxy.Stats().Actions {
					if n := st.Requests - before.Actions[action].Requests; n > 0 {
						calls[action] = n
					}
				}
				checkPlan5000(b, out)
				runs++
				elapsed += d
				slowest = max(slowest, d)
			}

			mean := elapsed / time.Duration(runs)
			b.ReportMetric(mean.Seconds(), "s/plan")
			b.ReportMetric(float64(total(calls)), "calls")
			b.ReportMetric(float64(total(bound)), "bound")
			for _, action := range slices.Sorted(maps.Keys(bound)) {
				if calls[action] > bound[action] {
					b.Errorf("%s: %d calls, the bound is %d", action, calls[action], bound[action])
				}
				if calls[action] < bound[action] {
					// Below a lower bound: a list was not read (an
					// incomplete inventory), or the bound is wrong.
					b.Errorf("%s: %d calls, fewer than the bound %d", action, calls[action], bound[action])
				}
			}
			for action, n := range calls {
				if _, ok := bound[action]; !ok {
					b.Errorf("%s: %d calls outside the bound", action, n)
				}
			}
			if tc.budget > 0 && slowest >= tc.budget {
				b.Errorf("slowest plan took %s, the budget is %s", slowest.Round(time.Millisecond), tc.budget)
			}
		})
	}
}

// checkPlan5000: one region's report, every AMI planned, nothing blocked or
// missing: the time measured is a whole plan's.
func checkPlan5000(b *testing.B, out []byte) {
	b.Helper()
	var reps []sweep.Report
	if err := json.Unmarshal(out, &reps); err != nil {
		b.Fatalf("plan --output json: %v", err)
	}
	if len(reps) != 1 {
		b.Fatalf("%d reports, want 1", len(reps))
	}
	r := reps[0]
	if len(r.Plan.Decisions) != benchAMIs || r.Plan.Totals.Considered != benchAMIs {
		b.Fatalf("%d decisions (%d considered), want %d", len(r.Plan.Decisions), r.Plan.Totals.Considered, benchAMIs)
	}
	if r.Plan.Blocked != "" || len(r.Incomplete) > 0 || len(r.Problems) > 0 {
		b.Fatalf("blocked %q, incomplete %q, problems %q", r.Plan.Blocked, r.Incomplete, r.Problems)
	}
	// The policy's cap (1,000 a run) holds; the rest waits for later runs.
	if r.Plan.Totals.Deregister != 1000 || r.Plan.Totals.Pending != benchAMIs-1000 {
		b.Fatalf("totals %+v: want 1000 deregistrations and %d pending", r.Plan.Totals, benchAMIs-1000)
	}
}
