package main_test

// The report command through the built binary against moto's CloudWatch
// Logs: the tests put the lines the functions log (same msg keys and
// fields as pkg/cleanup/sweep/report.go and pkg/handlers/sharing.go) into
// log groups named as CloudFormation names the stack's, and read them back.
// moto's FilterLogEvents matches quoted phrases (the pattern report uses)
// and filters by stream and time.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cli"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

var (
	reportBinOnce sync.Once
	reportBinPath string
	reportBinErr  error
)

// reportCLI returns the CLI binary: HOUSEKEEPER_CLI_BIN, or built once.
func reportCLI(t *testing.T) string {
	t.Helper()
	reportBinOnce.Do(func() {
		if p := os.Getenv("HOUSEKEEPER_CLI_BIN"); p != "" {
			reportBinPath = p
			return
		}
		dir, err := os.MkdirTemp("", "ami-housekeeper-report-test")
		if err != nil {
			reportBinErr = err
			return
		}
		reportBinPath = filepath.Join(dir, "ami-housekeeper")
		if out, err := exec.Command("go", "build", "-o", reportBinPath, ".").CombinedOutput(); err != nil {
			reportBinErr = fmt.Errorf("building the CLI: %w\n%s", err, out)
		}
	})
	if reportBinErr != nil {
		t.Fatal(reportBinErr)
	}
	return reportBinPath
}

type binRun struct {
	code        int
	out, errOut string
}

// runReportBin runs the binary with env only (no profile, no terminal).
func runReportBin(t *testing.T, bin string, env []string, args ...string) binRun {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
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
	t.Logf("%v: exit %d\n--- stdout\n%s--- stderr\n%s", args, code, stdout.String(), stderr.String())
	return binRun{code, stdout.String(), stderr.String()}
}

// counted is one run against a server that fails the test on any request.
type counted struct {
	code int
	err  string
}

func runCounted(t *testing.T, bin string, args ...string) counted {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	r := runReportBin(t, bin, []string{"AWS_ENDPOINT_URL=" + srv.URL, "AWS_REGION=eu-west-1",
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing"}, args...)
	if n := calls.Load(); n != 0 {
		t.Errorf("%d AWS request(s) for bad usage", n)
	}
	return counted{r.code, r.errOut}
}

const (
	reportRegion  = "eu-west-1"
	cleanupGroup  = "AmiHousekeeper-CleanupLogGroupA1B2C3D4-1AbCdEfGh"
	sharingGroup  = "AmiHousekeeper-SharingLogGroupE5F6A7B8-2IjKlMnOp"
	cleanupStream = "2026/05/01/[$LATEST]0123456789abcdef"
)

// line is one JSON log line as slog writes it.
func line(t *testing.T, at time.Time, msg string, fields map[string]any) cwtypes.InputLogEvent {
	t.Helper()
	m := map[string]any{"time": at.Format(time.RFC3339Nano), "level": "INFO", "msg": msg}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return cwtypes.InputLogEvent{Timestamp: aws.Int64(at.UnixMilli()), Message: aws.String(string(b))}
}

func putLines(t *testing.T, c *cloudwatchlogs.Client, group, stream string, events ...cwtypes.InputLogEvent) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil && !strings.Contains(err.Error(), "ResourceAlreadyExists") {
		t.Fatal(err)
	}
	if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream), LogEvents: events}); err != nil {
		t.Fatal(err)
	}
}

func decisionLine(id, action, outcome string, snaps ...string) map[string]any {
	d := map[string]any{"function": "cleanup", "image_id": id, "name": "app-" + id[len(id)-2:], "action": action,
		"reasons": []string{"rule app: older than 30 days"}, "outcome": outcome, "mode": "enforce"}
	if len(snaps) > 0 {
		d["snapshot_ids"] = snaps
		d["size_gib"] = 8
	}
	return d
}

// seedReports writes two cleanup runs (a day apart) and two sharing lines
// (a scheduled audit with a finding, and an event-driven check).
func seedReports(t *testing.T, m *emulator.Moto) {
	t.Helper()
	cfg, err := m.Config(context.Background(), reportRegion)
	if err != nil {
		t.Fatal(err)
	}
	c := cloudwatchlogs.NewFromConfig(cfg)
	newRun := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	oldRun := newRun.Add(-24 * time.Hour)
	summary := func(mode string, dereg int) map[string]any {
		return map[string]any{"function": "cleanup", "account": "123456789012", "region": reportRegion, "mode": mode,
			"totals":       map[string]any{"considered": 12, "keep": 9, "mark": 1, "deregister": dereg, "snapshots_delete": dereg, "gib_freed": 8 * dereg, "monthly_saving_usd": 0.4 * float64(dereg)},
			"deregistered": dereg, "snapshots_deleted": dereg, "failed": 0, "recoverable_until": "2026-05-08"}
	}
	putLines(t, c, cleanupGroup, cleanupStream,
		line(t, oldRun.Add(-time.Minute), "cleanup decision", decisionLine("ami-0000000000000000a", "mark", "done")),
		line(t, oldRun, "cleanup summary", summary("enforce", 0)),
		line(t, newRun.Add(-2*time.Minute), "cleanup decision", decisionLine("ami-0000000000000000b", "keep", "no-change")),
		line(t, newRun.Add(-time.Minute), "cleanup decision", decisionLine("ami-0000000000000000c", "deregister", "done", "snap-0000000000000000c")),
		line(t, newRun, "cleanup summary", summary("enforce", 1)),
	)
	finding := map[string]any{"resource_type": "image", "resource_id": "ami-0000000000000000d", "action": "revoked",
		"removed": []any{map[string]any{"account": "210987654321"}}, "reasons": []string{"account 210987654321 is not allowed"}}
	putLines(t, c, sharingGroup, "2026/05/01/[$LATEST]fedcba9876543210",
		line(t, newRun.Add(-time.Hour), "sharing invocation", map[string]any{"function": "sharing", "event": "Scheduled", "outcome": "enforced", "mode": "enforce",
			"images_checked": 40, "snapshots_checked": 55, "violations": 1, "revoked": 1, "complete": true, "findings": []any{finding}}),
		line(t, newRun.Add(-30*time.Minute), "sharing invocation", map[string]any{"function": "sharing", "event": "StateChange", "outcome": "compliant", "resource_id": "ami-0000000000000000e"}),
	)
}

func TestReportCommand(t *testing.T) {
	bin := reportCLI(t)
	m, err := emulator.StartMoto(context.Background(), emulator.MotoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	seedReports(t, m)
	env := m.Env(reportRegion)

	t.Run("table: newest run, its changes only, the audit", func(t *testing.T) {
		r := runReportBin(t, bin, env, "report")
		if r.code != cli.ExitOK {
			t.Fatalf("exit %d", r.code)
		}
		for _, want := range []string{cleanupGroup, sharingGroup, "ami-0000000000000000c", "snap-0000000000000000c", "deregister",
			"recoverable until: 2026-05-08", "210987654321", "revoked"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		// The old run's decision, the no-change decision and the
		// event-driven sharing line are not this report's.
		for _, not := range []string{"ami-0000000000000000a", "ami-0000000000000000b", "ami-0000000000000000e"} {
			if strings.Contains(r.out, not) {
				t.Errorf("output shows %s", not)
			}
		}
	})

	t.Run("json: newest first, lines as emitted", func(t *testing.T) {
		r := runReportBin(t, bin, env, "report", "--last", "2", "--all-decisions", "-o", "json")
		var doc struct {
			Cleanup []struct {
				Summary   map[string]any   `json:"summary"`
				Decisions []map[string]any `json:"decisions"`
			} `json:"cleanup"`
			Sharing []struct {
				Audit map[string]any `json:"audit"`
			} `json:"sharing"`
		}
		if err := json.Unmarshal([]byte(r.out), &doc); err != nil || r.code != cli.ExitOK {
			t.Fatalf("exit %d, %v", r.code, err)
		}
		if len(doc.Cleanup) != 2 || doc.Cleanup[0].Summary["deregistered"] != 1.0 || doc.Cleanup[1].Summary["deregistered"] != 0.0 {
			t.Fatalf("cleanup reports = %+v, want the newest (1 deregistered) first, then the older", doc.Cleanup)
		}
		if ids := decisionIDs(doc.Cleanup[0].Decisions); ids != "ami-0000000000000000b,ami-0000000000000000c" {
			t.Errorf("newest run's decisions = %s", ids)
		}
		if ids := decisionIDs(doc.Cleanup[1].Decisions); ids != "ami-0000000000000000a" {
			t.Errorf("older run's decisions = %s", ids)
		}
		if len(doc.Sharing) != 1 || doc.Sharing[0].Audit["images_checked"] != 40.0 {
			t.Errorf("sharing = %+v, want the one scheduled audit", doc.Sharing)
		}
	})

	t.Run("markdown", func(t *testing.T) {
		r := runReportBin(t, bin, env, "report", "-o", "markdown")
		if r.code != cli.ExitOK || !strings.Contains(r.out, "| ami-0000000000000000c |") {
			t.Errorf("exit %d, want a markdown row for the deregistered AMI", r.code)
		}
	})

	t.Run("log groups named outright; none found", func(t *testing.T) {
		r := runReportBin(t, bin, env, "report", "--cleanup-log-group", cleanupGroup, "--sharing-log-group", sharingGroup, "--since", "1h")
		if r.code != cli.ExitOK || !strings.Contains(r.out, "no cleanup summary in the last 1h0m0s") {
			t.Errorf("--since 1h: exit %d", r.code)
		}
		r = runReportBin(t, bin, env, "report", "--stack", "Other")
		if r.code != cli.ExitError || !strings.Contains(r.errOut, `no log group starts with "Other-CleanupLogGroup"`) {
			t.Errorf("unknown stack: exit %d", r.code)
		}
	})
}

func decisionIDs(ds []map[string]any) string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, fmt.Sprint(d["image_id"]))
	}
	return strings.Join(ids, ",")
}

func TestReportBadUsage(t *testing.T) {
	bin := reportCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "--last", "0"}, "--last 0"},
		{[]string{"report", "--since", "-1h"}, "--since"},
		{[]string{"report", "--region", "eu-west-1", "--region", "us-east-1"}, "one --region"},
		{[]string{"report", "extra"}, "accepts 0 arg(s)"},
		{[]string{"report", "--output", "yaml"}, "--output"},
	} {
		r := runCounted(t, bin, tc.args...)
		if r.code != cli.ExitUsage || !strings.Contains(r.err, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.err, tc.want)
		}
	}
}
