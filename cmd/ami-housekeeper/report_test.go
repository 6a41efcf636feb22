package main_test

// The report command through the built binary against moto's CloudWatch
// Logs: the tests put the lines the functions log (same msg keys and
// fields as pkg/cleanup/sweep/report.go and pkg/handlers/sharing.go) into
// log groups named as CloudFormation names the stack's, and read them back.
// moto's FilterLogEvents matches quoted phrases (the pattern report uses)
// and filters by stream and time.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cli"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// counted is one run against a server that fails the test on any request.
type counted struct {
	code int
	err  string
}

func runCounted(t *testing.T, args ...string) counted {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	r := runCLI(t, []string{"AWS_ENDPOINT_URL=" + srv.URL, "AWS_REGION=eu-west-1",
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing"}, args...)
	if n := calls.Load(); n != 0 {
		t.Errorf("%d AWS request(s) for bad usage", n)
	}
	return counted{r.code, r.stderr}
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
	m, err := emulator.StartMoto(context.Background(), emulator.MotoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	seedReports(t, m)
	env := m.Env(reportRegion)

	t.Run("table: newest run, its changes only, the audit", func(t *testing.T) {
		r := runCLI(t, env, "report")
		if r.code != cli.ExitOK {
			t.Fatalf("exit %d", r.code)
		}
		for _, want := range []string{cleanupGroup, sharingGroup, "ami-0000000000000000c", "snap-0000000000000000c", "deregister",
			"recoverable until: 2026-05-08", "210987654321", "revoked"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		// The old run's decision, the no-change decision and the
		// event-driven sharing line are not this report's.
		for _, not := range []string{"ami-0000000000000000a", "ami-0000000000000000b", "ami-0000000000000000e"} {
			if strings.Contains(r.stdout, not) {
				t.Errorf("output shows %s", not)
			}
		}
	})

	t.Run("json: newest first, lines as emitted", func(t *testing.T) {
		r := runCLI(t, env, "report", "--last", "2", "--all-decisions", "-o", "json")
		var doc struct {
			Cleanup []struct {
				Summary   map[string]any   `json:"summary"`
				Decisions []map[string]any `json:"decisions"`
			} `json:"cleanup"`
			Sharing []struct {
				Audit map[string]any `json:"audit"`
			} `json:"sharing"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != cli.ExitOK {
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
		r := runCLI(t, env, "report", "-o", "markdown")
		if r.code != cli.ExitOK || !strings.Contains(r.stdout, "| ami-0000000000000000c |") {
			t.Errorf("exit %d, want a markdown row for the deregistered AMI", r.code)
		}
	})

	t.Run("log groups named outright; none found", func(t *testing.T) {
		r := runCLI(t, env, "report", "--cleanup-log-group", cleanupGroup, "--sharing-log-group", sharingGroup, "--since", "1h")
		if r.code != cli.ExitOK || !strings.Contains(r.stdout, "no cleanup summary in the last 1h0m0s") {
			t.Errorf("--since 1h: exit %d", r.code)
		}
		r = runCLI(t, env, "report", "--stack", "Other")
		if r.code != cli.ExitError || !strings.Contains(r.stderr, `no log group starts with "Other-CleanupLogGroup"`) {
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
		r := runCounted(t, tc.args...)
		if r.code != cli.ExitUsage || !strings.Contains(r.err, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.err, tc.want)
		}
	}
}
