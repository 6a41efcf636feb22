package main_test

// The cleanup commands (plan, apply, explain) driven through the built
// binary, as a user runs them, against moto seeded with the cleanup fleet
// (pkg/emulator/cleanup_fleet.go): two stale AMIs go, everything in use,
// protected, newest or ruleless stays.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

var (
	cleanupBinOnce sync.Once
	cleanupBinPath string
	cleanupBinErr  error
)

// cleanupCLI returns the CLI binary: HOUSEKEEPER_CLI_BIN, or built once for
// this test binary.
func cleanupCLI(t *testing.T) string {
	t.Helper()
	cleanupBinOnce.Do(func() {
		if p := os.Getenv("HOUSEKEEPER_CLI_BIN"); p != "" {
			cleanupBinPath = p
			return
		}
		dir, err := os.MkdirTemp("", "ami-housekeeper-cleanup-test")
		if err != nil {
			cleanupBinErr = err
			return
		}
		cleanupBinPath = filepath.Join(dir, "ami-housekeeper")
		out, err := exec.Command("go", "build", "-o", cleanupBinPath, ".").CombinedOutput()
		if err != nil {
			cleanupBinErr = fmt.Errorf("building the CLI: %w\n%s", err, out)
		}
	})
	if cleanupBinErr != nil {
		t.Fatal(cleanupBinErr)
	}
	return cleanupBinPath
}

// cliResult is one run of the binary.
type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the binary with env only (no AWS profile, no terminal).
func runCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(cleanupCLI(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "NO_COLOR=1"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// cleanupFleet is moto with the cleanup fleet in us-east-1 and the records
// key, as the cleanup function's tests have it.
type cleanupFleet struct {
	moto  *emulator.Moto
	ec2   *ec2.Client
	snaps map[string]string // AMI -> its snapshot
	key   string            // HOUSEKEEPER_RECORDS_KEY_ID=...
}

const fleetRegion = "us-east-1"

func newCleanupFleet(t *testing.T) *cleanupFleet {
	t.Helper()
	ctx := context.Background()
	m, err := emulator.StartFleetMoto(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	cfg, err := m.Config(ctx, fleetRegion)
	if err != nil {
		t.Fatal(err)
	}
	f := &cleanupFleet{moto: m, ec2: ec2.NewFromConfig(cfg)}
	if f.snaps, err = emulator.UseFleet(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if f.key, err = m.RecordsKeyEnv(ctx, fleetRegion); err != nil {
		t.Fatal(err)
	}
	return f
}

// env is the environment that reaches this moto, with the records key.
func (f *cleanupFleet) env() []string { return append(f.moto.Env(fleetRegion), f.key) }

func (f *cleanupFleet) images(t *testing.T) []string {
	t.Helper()
	ids, err := emulator.OwnedImages(context.Background(), f.ec2)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// snapshots lists the fleet's snapshots that still exist.
func (f *cleanupFleet) snapshots(t *testing.T) []string {
	t.Helper()
	out, err := f.ec2.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range out.Snapshots {
		ids = append(ids, aws.ToString(s.SnapshotId))
	}
	sort.Strings(ids)
	return ids
}

// writePolicy writes a policy document and returns its path.
func writePolicy(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// noAWS is an endpoint that fails the test if anything calls it.
func noAWS(t *testing.T) (env []string, calls *atomic.Int64) {
	t.Helper()
	calls = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no AWS call expected", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	return []string{"AWS_ENDPOINT_URL=" + srv.URL, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing"}, calls
}

// The fleet's expected plan under emulator.FleetPolicy: action and a reason
// each decision must give.
var fleetPlan = map[string][2]string{
	emulator.FleetAMIInLaunchTemplate: {"keep", "in use by launch template"},
	emulator.FleetAMIInUseByInstance:  {"keep", "in use by instance i-"},
	emulator.FleetAMIStale1:           {"deregister", "grace_days is 0: deregistered without marking"},
	emulator.FleetAMIProtected:        {"keep", "protected by tag ami-housekeeper:keep"},
	emulator.FleetAMIStale2:           {"deregister", "grace_days is 0: deregistered without marking"},
	emulator.FleetAMINewest:           {"keep", "newest 1 of family web-base"},
	emulator.FleetAMIInSSMParameter:   {"keep", "in use by ssm parameter /ci/runner-ami"},
	emulator.FleetAMINoRule:           {"keep", "no retention rule matches"},
}

func parseReports(t *testing.T, r cliResult) []sweep.Report {
	t.Helper()
	var reps []sweep.Report
	if err := json.Unmarshal([]byte(r.stdout), &reps); err != nil {
		t.Fatalf("--output json is not one JSON array of reports: %v\n%s", err, r)
	}
	return reps
}

func checkFleetPlan(t *testing.T, p cleanup.Plan) {
	t.Helper()
	got := map[string]cleanup.Decision{}
	for _, d := range p.Decisions {
		got[d.ImageID] = d
	}
	if len(got) != len(fleetPlan) {
		t.Errorf("plan has %d decisions, want %d: %+v", len(got), len(fleetPlan), p.Decisions)
	}
	for id, want := range fleetPlan {
		d, ok := got[id]
		if !ok {
			t.Errorf("no decision for %s", id)
			continue
		}
		if string(d.Action) != want[0] || !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, want[1]) }) {
			t.Errorf("%s: %s %q, want %s with a reason containing %q", id, d.Action, d.Reasons, want[0], want[1])
		}
	}
	if p.Totals.Deregister != 2 || p.Totals.SnapshotsDelete != 2 || p.Totals.GiBFreed != 30 {
		t.Errorf("totals %+v, want 2 deregistrations, 2 snapshots, 30 GiB", p.Totals)
	}
}

func TestCleanupPlanListsTheDecisionsAndChangesNothing(t *testing.T) {
	f := newCleanupFleet(t)
	// An enforce policy: plan must still change nothing.
	pol := writePolicy(t, emulator.FleetPolicy("enforce"))
	imagesBefore, snapsBefore := f.images(t), f.snapshots(t)

	r := runCLI(t, f.env(), "plan", "--policy", pol)
	if r.code != 0 {
		t.Fatalf("plan: %s", r)
	}
	t.Logf("plan:\n%s", r)
	for id, want := range fleetPlan {
		line := ""
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.Contains(l, id) {
				line = l
			}
		}
		if !strings.Contains(line, " "+want[0]+" ") {
			t.Errorf("table row of %s is %q, want action %s", id, line, want[0])
		}
	}
	for _, want := range []string{"in use by instance i-", "in use by launch template", "in use by ssm parameter /ci/runner-ami",
		"protected by tag ami-housekeeper:keep", "newest 1 of family web-base", "no retention rule matches",
		"deregister 2, pending (caps) 0", "Snapshots to delete 2, 30 GiB, about", "USD per month",
		"plan only, nothing was changed (policy retention.mode: enforce)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan output lacks %q\n%s", want, r)
		}
	}
	if strings.Contains(r.stderr, "WARNING: no records key") {
		t.Errorf("plan warns about the records key it was given:\n%s", r.stderr)
	}
	if !slices.Equal(f.images(t), imagesBefore) || !slices.Equal(f.snapshots(t), snapsBefore) {
		t.Fatalf("plan changed the account")
	}

	// JSON: one document, one report per region, the same decisions.
	r = runCLI(t, f.env(), "plan", "--policy", pol, "--output", "json")
	if r.code != 0 {
		t.Fatalf("plan json: %s", r)
	}
	reps := parseReports(t, r)
	if len(reps) != 1 || reps[0].Region != fleetRegion || reps[0].Account != "123456789012" || reps[0].Mode != "audit" || reps[0].Results != nil {
		t.Fatalf("reports %+v", reps)
	}
	checkFleetPlan(t, reps[0].Plan)

	// Markdown: the same rows as a markdown table.
	r = runCLI(t, f.env(), "plan", "--policy", pol, "--output", "markdown")
	if r.code != 0 || !strings.Contains(r.stdout, "## Region us-east-1") || !strings.Contains(r.stdout, "| "+emulator.FleetAMIStale1+" |") {
		t.Errorf("plan markdown: %s", r)
	}

	// --detailed-exitcode: 3 when there is work to do.
	r = runCLI(t, f.env(), "plan", "--policy", pol, "--detailed-exitcode")
	if r.code != 3 {
		t.Errorf("plan --detailed-exitcode with 2 deregistrations: %s", r)
	}
	if !slices.Equal(f.images(t), imagesBefore) || !slices.Equal(f.snapshots(t), snapsBefore) {
		t.Fatalf("plan changed the account")
	}

	// Without the records key, plan works and says loudly what it cannot know.
	r = runCLI(t, f.moto.Env(fleetRegion), "plan", "--policy", pol)
	if r.code != 0 || !strings.Contains(r.stderr, "WARNING: no records key") || !strings.Contains(r.stderr, "marks cannot be verified") {
		t.Errorf("plan without a records key: %s", r)
	}
}

func TestCleanupApplyRemovesExactlyWhatPlanAnnounced(t *testing.T) {
	f := newCleanupFleet(t)
	pol := writePolicy(t, emulator.FleetPolicy("enforce"))
	plan := runCLI(t, f.env(), "plan", "--policy", pol, "--output", "json")
	if plan.code != 0 {
		t.Fatalf("plan: %s", plan)
	}
	var wantGone, wantSnapsGone []string
	for _, d := range parseReports(t, plan)[0].Plan.Decisions {
		if d.Action == cleanup.ActionDeregister {
			wantGone = append(wantGone, d.ImageID)
			wantSnapsGone = append(wantSnapsGone, d.DeleteSnapshots...)
		}
	}
	if len(wantGone) != 2 || len(wantSnapsGone) != 2 {
		t.Fatalf("the plan announces %v and snapshots %v; the fleet has 2 stale AMIs", wantGone, wantSnapsGone)
	}
	imagesBefore, snapsBefore := f.images(t), f.snapshots(t)

	r := runCLI(t, f.env(), "apply", "--policy", pol, "--yes")
	if r.code != 0 {
		t.Fatalf("apply: %s", r)
	}
	t.Logf("apply:\n%s", r)
	wantImages := slices.DeleteFunc(slices.Clone(imagesBefore), func(id string) bool { return slices.Contains(wantGone, id) })
	if got := f.images(t); !slices.Equal(got, wantImages) {
		t.Errorf("AMIs after apply = %v, want %v", got, wantImages)
	}
	wantSnaps := slices.DeleteFunc(slices.Clone(snapsBefore), func(id string) bool { return slices.Contains(wantSnapsGone, id) })
	if got := f.snapshots(t); !slices.Equal(got, wantSnaps) {
		t.Errorf("snapshots after apply = %v, want %v", got, wantSnaps)
	}
	for _, inUse := range []string{emulator.FleetAMIInLaunchTemplate, emulator.FleetAMIInUseByInstance, emulator.FleetAMIInSSMParameter} {
		if !slices.Contains(f.images(t), inUse) {
			t.Errorf("apply removed %s, which is in use", inUse)
		}
	}
	// AMI by AMI, then the totals.
	for _, id := range wantGone {
		row := ""
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.Contains(l, id) {
				row = l
			}
		}
		if !strings.Contains(row, "deregister") || !strings.Contains(row, " done ") || !strings.Contains(row, f.snaps[id]+" deleted") {
			t.Errorf("apply's row for %s is %q, want deregister, done, %s deleted\n%s", id, row, f.snaps[id], r)
		}
	}
	if !strings.Contains(r.stdout, "Done: 2 AMIs deregistered, 2 snapshots deleted, 30 GiB freed, 0 failed") {
		t.Errorf("apply's totals:\n%s", r)
	}

	// A second apply has nothing left to do, and says so in JSON.
	r = runCLI(t, f.env(), "apply", "--policy", pol, "--yes", "--output", "json")
	reps := parseReports(t, r)
	if r.code != 0 || len(reps) != 1 || reps[0].Results == nil || reps[0].Results.Deregistered != 0 || reps[0].Plan.Totals.Deregister != 0 {
		t.Errorf("second apply: %s", r)
	}
}

func TestCleanupApplyRefusesWithoutYesOffATerminal(t *testing.T) {
	f := newCleanupFleet(t)
	pol := writePolicy(t, emulator.FleetPolicy("enforce"))
	imagesBefore, snapsBefore := f.images(t), f.snapshots(t)
	r := runCLI(t, f.env(), "apply", "--policy", pol)
	if r.code != 2 || !strings.Contains(r.stderr, "refusing without a terminal; give --yes") {
		t.Errorf("apply without --yes off a terminal: %s", r)
	}
	if !slices.Equal(f.images(t), imagesBefore) || !slices.Equal(f.snapshots(t), snapsBefore) {
		t.Errorf("apply without --yes changed the account")
	}
}

// Bad usage is decided before anything is called: exit 2 and no request
// reaches the endpoint.
func TestCleanupBadUsageCallsNothing(t *testing.T) {
	badPolicy := writePolicy(t, "version: 1\nretention:\n  mode: sometimes\n")
	auditPolicy := writePolicy(t, emulator.FleetPolicy("audit"))
	enforcePolicy := writePolicy(t, emulator.FleetPolicy("enforce"))
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"plan bad region", []string{"plan", "--region", "moon-base"}, nil, `--region "moon-base" is not a region name`},
		{"plan bad policy", []string{"plan", "--policy", badPolicy}, nil, "/retention/mode: \"sometimes\" is not allowed"},
		{"plan missing policy", []string{"plan", "--policy", filepath.Join(t.TempDir(), "nope.yaml")}, nil, "--policy"},
		{"plan extra argument", []string{"plan", "ami-0123456789abcdef0"}, nil, "accepts 0 arg"},
		{"apply without records key", []string{"apply", "--policy", enforcePolicy, "--yes"}, nil, "needs the records key"},
		{"apply audit policy", []string{"apply", "--policy", auditPolicy, "--yes", "--records-key", "alias/k"}, nil, `retention.mode is "audit"`},
		{"apply bad policy", []string{"apply", "--policy", badPolicy, "--yes", "--records-key", "alias/k"}, nil, "/retention/mode"},
		{"apply no terminal no yes", []string{"apply", "--policy", enforcePolicy}, []string{records.EnvKeyID + "=alias/k"}, "give --yes"},
		{"explain bad id", []string{"explain", "ami-xyz"}, nil, `"ami-xyz" is not an AMI ID`},
		{"explain instance id", []string{"explain", "i-0123456789abcdef0"}, nil, "is not an AMI ID"},
		{"explain no id", []string{"explain"}, nil, "accepts 1 arg"},
		{"explain two regions", []string{"explain", "ami-0123456789abcdef0", "--region", "us-east-1", "--region", "eu-west-1"}, nil, "one region"},
		{"explain bad region", []string{"explain", "ami-0123456789abcdef0", "--region", "x"}, nil, "not a region name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, calls := noAWS(t)
			r := runCLI(t, append(env, tc.env...), tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want exit 2 and %q: %s", tc.want, r)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("%d AWS calls before the usage was decided", n)
			}
		})
	}
}

func TestCleanupApplyAuditPolicyWithEnforce(t *testing.T) {
	f := newCleanupFleet(t)
	pol := writePolicy(t, emulator.FleetPolicy("audit"))
	r := runCLI(t, f.env(), "apply", "--policy", pol, "--yes")
	if r.code != 2 || len(f.images(t)) != len(emulator.FleetAMIs) {
		t.Fatalf("apply on an audit policy without --enforce: %s", r)
	}
	r = runCLI(t, f.env(), "apply", "--policy", pol, "--yes", "--enforce")
	if r.code != 0 || len(f.images(t)) != len(emulator.FleetAMIs)-2 {
		t.Fatalf("apply --enforce on an audit policy: %s (AMIs now %v)", r, f.images(t))
	}
}

func TestCleanupExplain(t *testing.T) {
	f := newCleanupFleet(t)
	pol := writePolicy(t, emulator.FleetPolicy("enforce"))

	r := runCLI(t, f.env(), "explain", emulator.FleetAMIInUseByInstance, "--policy", pol)
	if r.code != 0 {
		t.Fatalf("explain: %s", r)
	}
	t.Logf("explain:\n%s", r)
	for _, want := range []string{"web-base-2026-07-01", "123456789012", "available", "instance", "stopped",
		"web / web-base, 5th newest of 6", "not shared", f.snaps[emulator.FleetAMIInUseByInstance],
		"keep", "reason", "in use by instance i-"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("explain lacks %q\n%s", want, r)
		}
	}

	r = runCLI(t, f.env(), "explain", emulator.FleetAMIStale1, "--policy", pol, "--output", "json")
	var ex struct {
		ImageID    string `json:"image_id"`
		OwnerID    string `json:"owner_id"`
		Family     string `json:"family"`
		Rank       int    `json:"rank"`
		References []any  `json:"references"`
		Snapshots  []struct{ Owned bool }
		Decision   cleanup.Decision `json:"decision"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil || r.code != 0 {
		t.Fatalf("explain json: %v\n%s", err, r)
	}
	if ex.ImageID != emulator.FleetAMIStale1 || ex.OwnerID != "123456789012" || ex.Family != "web-base" || ex.Rank != 4 ||
		len(ex.References) != 0 || len(ex.Snapshots) != 1 || !ex.Snapshots[0].Owned ||
		ex.Decision.Action != cleanup.ActionDeregister || !slices.Equal(ex.Decision.DeleteSnapshots, []string{f.snaps[emulator.FleetAMIStale1]}) {
		t.Errorf("explain json: %+v\n%s", ex, r)
	}

	r = runCLI(t, f.env(), "explain", "ami-0123456789abcdef0", "--policy", pol)
	if r.code != 1 || !strings.Contains(r.stderr, "ami-0123456789abcdef0: no such AMI in us-east-1") {
		t.Errorf("explain of an unknown AMI: %s", r)
	}
}

// failingRegion puts a proxy before moto that refuses every request signed
// for region bad, as AWS answers for a region the account has not enabled.
func failingRegion(t *testing.T, upstream, bad string) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Authorization"), "/"+bad+"/") {
			proxy.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("X-Amz-Target") != "" || strings.Contains(r.Header.Get("Content-Type"), "json") {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.Header().Set("X-Amzn-Errortype", "UnrecognizedClientException")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`))
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors><RequestID>r</RequestID></Response>`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCleanupPlanOneRegionFailsTheOtherCompletes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("moto tests run on Linux and macOS")
	}
	f := newCleanupFleet(t)
	pol := writePolicy(t, emulator.FleetPolicy("enforce"))
	endpoint := failingRegion(t, f.moto.URL, "eu-west-3")
	imagesBefore := f.images(t)

	r := runCLI(t, f.env(), "plan", "--policy", pol, "--region", "us-east-1", "--region", "eu-west-3", "--endpoint-url", endpoint, "--output", "json")
	if r.code != 1 {
		t.Fatalf("plan with a failing region: %s", r)
	}
	reps := parseReports(t, r)
	if len(reps) != 2 || reps[0].Region != "eu-west-3" || reps[1].Region != "us-east-1" {
		t.Fatalf("want both regions' reports in region order: %s", r)
	}
	if reps[0].Plan.Blocked == "" || len(reps[0].Incomplete) == 0 {
		t.Errorf("the failing region's report does not say it is incomplete: %+v", reps[0])
	}
	checkFleetPlan(t, reps[1].Plan)
	if !strings.Contains(r.stderr, "region eu-west-3 failed: inventory incomplete") || !strings.Contains(r.stderr, "1 of 2 regions failed: eu-west-3") ||
		strings.Contains(r.stderr, "region us-east-1 failed") {
		t.Errorf("stderr: %s", r)
	}

	// In a table too, the good region's plan is printed in full.
	r = runCLI(t, f.env(), "plan", "--policy", pol, "--region", "us-east-1", "--region", "eu-west-3", "--endpoint-url", endpoint)
	if r.code != 1 || !strings.Contains(r.stdout, "Region us-east-1") || !strings.Contains(r.stdout, emulator.FleetAMIStale2) ||
		!strings.Contains(r.stdout, "FAILED: inventory incomplete") {
		t.Errorf("table plan with a failing region: %s", r)
	}
	if !slices.Equal(f.images(t), imagesBefore) {
		t.Errorf("plan changed the account")
	}
}

// On a terminal, apply shows the plan's changes and asks: "n" changes
// nothing, "y" applies. (In process: a pipe is not a terminal, so the
// terminal is declared through cli.IO.)
func TestCleanupApplyAsksOnATerminal(t *testing.T) {
	f := newCleanupFleet(t)
	pol := writePolicy(t, emulator.FleetPolicy("enforce"))
	imagesBefore, snapsBefore := f.images(t), f.snapshots(t)
	run := func(answer string) (int, string, string) {
		r := runOnTerminal(t, f.env(), strings.NewReader(answer), "apply", "--policy", pol)
		return r.code, r.stdout, r.stderr
	}

	code, out, errOut := run("n\n")
	if code != 1 || !strings.Contains(errOut, "not confirmed; nothing changed") {
		t.Fatalf("answer n: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"Region us-east-1, account 123456789012: the plan", emulator.FleetAMIStale1, emulator.FleetAMIStale2,
		"deregister 2", "Apply this plan in us-east-1 (account 123456789012)? [y/N]"} {
		if !strings.Contains(out, want) {
			t.Errorf("the question lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, emulator.FleetAMIInUseByInstance) {
		t.Errorf("the preview lists an AMI the plan keeps:\n%s", out)
	}
	if !slices.Equal(f.images(t), imagesBefore) || !slices.Equal(f.snapshots(t), snapsBefore) {
		t.Fatalf("answer n changed the account")
	}

	code, out, errOut = run("y\n")
	if code != 0 || !strings.Contains(out, "Done: 2 AMIs deregistered, 2 snapshots deleted") {
		t.Fatalf("answer y: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := f.images(t); len(got) != len(imagesBefore)-2 || slices.Contains(got, emulator.FleetAMIStale1) || slices.Contains(got, emulator.FleetAMIStale2) {
		t.Errorf("AMIs after y: %v", got)
	}
}

// An AMI another account owns is not the cleanup's to decide: explain says
// whose it is and exits 1. (moto: an assumed role in another account sees
// the seeded AMIs, owned by 123456789012, in its own backend.)
func TestCleanupExplainAnotherAccountsAMI(t *testing.T) {
	f := newCleanupFleet(t)
	r := runCLI(t, f.moto.Env(fleetRegion), "explain", emulator.FleetAMIStale1, "--role-arn", "arn:aws:iam::210987654321:role/operator")
	if r.code != 1 || !strings.Contains(r.stderr, "is owned by account 123456789012, not this account (210987654321)") {
		t.Errorf("explain of another account's AMI: %s", r)
	}
}
