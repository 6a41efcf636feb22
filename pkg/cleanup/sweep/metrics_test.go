package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// RunsCompleted is 1 exactly when the sweep read everything and did all it
// planned: the stack alarms when it stays missing (or 0) for two periods.
func TestRunsCompleted(t *testing.T) {
	tests := []struct {
		name    string
		blocked string
		results *execute.Results // nil: audit
		want    float64
	}{
		{name: "audit", want: 1},
		{name: "audit, blocked", blocked: "inventory incomplete: instances: boom", want: 0},
		{name: "enforce, all done", results: &execute.Results{Deregistered: 2}, want: 1},
		{name: "enforce, nothing to do", results: &execute.Results{}, want: 1},
		{name: "enforce, kept on recheck", results: &execute.Results{Deregistered: 1, KeptOnRecheck: 1}, want: 1},
		{name: "enforce, an action failed", results: &execute.Results{Deregistered: 1, Failed: 1}, want: 0},
		{name: "enforce, out of time", results: &execute.Results{Deregistered: 1, NotStarted: 1}, want: 0},
		{name: "enforce, halted by the kill switch", results: &execute.Results{Deregistered: 1, NotStarted: 1, Halted: "kill switch /p: x"}, want: 0},
		{name: "enforce, refused", results: &execute.Results{Refused: "execute: no records key"}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := report(2)
			r.Plan.Blocked, r.Results = tt.blocked, tt.results
			if r.Results == nil {
				r.Mode = policy.ModeAudit
			}
			var buf bytes.Buffer
			if err := r.WriteEMF(&buf, time.Unix(1_800_000_000, 0)); err != nil {
				t.Fatal(err)
			}
			doc := emfLine(t, buf.Bytes())
			if doc["RunsCompleted"] != tt.want || r.Completed() != (tt.want == 1) {
				t.Errorf("RunsCompleted %v, Completed %v; want %v", doc["RunsCompleted"], r.Completed(), tt.want)
			}
		})
	}
}

// emfLine decodes one EMF line and checks its envelope: namespace
// AmiHousekeeper, the one dimension Function=cleanup, every metric declared
// and present.
func emfLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(line, &doc); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	var env struct {
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	}
	raw, _ := json.Marshal(doc["_aws"])
	if err := json.Unmarshal(raw, &env); err != nil || len(env.CloudWatchMetrics) != 1 {
		t.Fatalf("envelope %s (%v)", raw, err)
	}
	cw := env.CloudWatchMetrics[0]
	if cw.Namespace != "AmiHousekeeper" || len(cw.Dimensions) != 1 || strings.Join(cw.Dimensions[0], ",") != "Function" || doc["Function"] != "cleanup" {
		t.Errorf("namespace %q, dimensions %v, Function %v", cw.Namespace, cw.Dimensions, doc["Function"])
	}
	var names []string
	for _, m := range cw.Metrics {
		names = append(names, m.Name)
		if _, ok := doc[m.Name].(float64); !ok {
			t.Errorf("metric %s declared without a value", m.Name)
		}
	}
	want := "AMIsConsidered,AMIsDeregistered,AMIsKeptOnRecheck,AMIsMarked,AMIsPending,AMIsUnmarked,ActionsFailed,GiBFreed,InventoryBlocked,RunsCompleted,SnapshotsDeleted"
	if strings.Join(names, ",") != want {
		t.Errorf("metrics %v\nwant %s", names, want)
	}
	return doc
}

// A halted run says so on every decision it did not start, in its summary
// line and text, and in the report event.
func TestHaltedIsReported(t *testing.T) {
	const why = "kill switch /AmiHousekeeper/kill-switch: incident 42"
	r := report(2)
	r.Results = &execute.Results{Deregistered: 1, NotStarted: 1, Halted: why, Images: []execute.ImageResult{
		{ImageID: "ami-00000000", Action: cleanup.ActionDeregister, Done: true},
		{ImageID: "ami-00000001", Action: cleanup.ActionDeregister, Error: execute.Halted},
	}}
	var buf bytes.Buffer
	r.Log(context.Background(), slog.New(slog.NewJSONHandler(&buf, nil)))
	var halted, summary map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if _, dup := m["mode"]; dup {
			t.Errorf("the report logs mode itself; the invocation's logger carries it: %s", line)
		}
		switch {
		case m["image_id"] == "ami-00000001":
			halted = m
		case m["msg"] == "cleanup summary":
			summary = m
		}
	}
	if halted["outcome"] != "halted" || halted["halted"] != why || halted["error"] != nil {
		t.Errorf("decision line %v", halted)
	}
	if summary["halted"] != why || summary["completed"] != false || summary["level"] != "WARN" {
		t.Errorf("summary line %v", summary)
	}
	if !strings.Contains(r.Summary(), "HALTED before finishing, nothing more was started: "+why) || r.Detail().Halted != why {
		t.Errorf("summary %s\ndetail halted %q", r.Summary(), r.Detail().Halted)
	}
}
