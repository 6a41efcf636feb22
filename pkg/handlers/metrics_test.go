package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

// emfMetrics decodes the EMF lines written to buf: per line, the metrics it
// declares with their values. Each must be in namespace AmiHousekeeper with
// the one dimension Function=function.
func emfMetrics(t *testing.T, buf *bytes.Buffer, function string) []map[string]float64 {
	t.Helper()
	var out []map[string]float64
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var doc struct {
			Function string
			AWS      struct {
				CloudWatchMetrics []struct {
					Namespace  string
					Dimensions [][]string
					Metrics    []struct{ Name string }
				}
			} `json:"_aws"`
		}
		var values map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		_ = json.Unmarshal([]byte(line), &values)
		cw := doc.AWS.CloudWatchMetrics
		if doc.Function != function || len(cw) != 1 || cw[0].Namespace != "AmiHousekeeper" || len(cw[0].Dimensions) != 1 ||
			strings.Join(cw[0].Dimensions[0], ",") != "Function" {
			t.Fatalf("EMF envelope of %s", line)
		}
		m := map[string]float64{}
		for _, d := range cw[0].Metrics {
			v, ok := values[d.Name].(float64)
			if !ok {
				t.Fatalf("metric %s declared without a value: %s", d.Name, line)
			}
			m[d.Name] = v
		}
		out = append(out, m)
	}
	return out
}

func sameMetrics(got, want map[string]float64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

// The guard's metrics, on the fake: one public AMI shared with a stranger
// too, whose snapshot is public (two findings; three principals). The fake
// does not list AMIs, so a completed audit is checked on a built report
// (TestAuditMetrics) and end to end on moto (functions/sharing).
func TestSharingMetrics(t *testing.T) {
	tests := []struct {
		name      string
		event     string
		mode      policy.Mode
		listFails bool
		want      []map[string]float64 // nil: no line
	}{
		{name: "event, enforce", event: "valid/cloudtrail-modifyimageattribute.json", mode: policy.ModeEnforce,
			want: []map[string]float64{{"Violations": 2, "PrincipalsRevoked": 3}}},
		{name: "event, audit", event: "valid/cloudtrail-modifyimageattribute.json", mode: policy.ModeAudit,
			want: []map[string]float64{{"Violations": 2, "PrincipalsRevoked": 0}}},
		{name: "scheduled audit that fails", event: "valid/scheduled.json", mode: policy.ModeEnforce, listFails: true,
			want: []map[string]float64{{"AuditsCompleted": 0, "AMIsAudited": 0, "Violations": 0, "PrincipalsRevoked": 0}}},
		{name: "rejected event", event: "invalid/other-account.json", mode: policy.ModeEnforce},
		{name: "ignored event", event: "valid/cloudtrail-createimage.json", mode: policy.ModeEnforce},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, f, logs := sharingHandler(t)
			p := policy.Default().Sharing
			p.Mode = tt.mode
			h.Enforcer = func(string) *sharing.Enforcer { return &sharing.Enforcer{EC2: f, Policy: p} }
			h.Auditor = func(string) *audit.Auditor {
				return &audit.Auditor{EC2: f, Checker: h.Enforcer("us-east-1"), Policy: p, Clock: clock.Real()}
			}
			if tt.listFails {
				f.Errors["DescribeImages"] = []error{fake.APIError("UnauthorizedOperation")}
			}
			var metrics bytes.Buffer
			h.Metrics = &metrics
			_, _ = h.Handle(context.Background(), sharingEvent(t, tt.event))
			got := emfMetrics(t, &metrics, "sharing")
			if len(got) != len(tt.want) {
				t.Fatalf("%d EMF lines, want %d: %s\n%s", len(got), len(tt.want), metrics.String(), logs)
			}
			for i := range got {
				if !sameMetrics(got[i], tt.want[i]) {
					t.Errorf("line %d: %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// An audit halted by the kill switch (on the fake EC2; the switch is a
// stub Halt) is incomplete, not an error: the outcome's reason says halted
// and why, the log line carries it, and AuditsCompleted is 0.
func TestScheduledAuditHalted(t *testing.T) {
	h, f, logs := sharingHandler(t)
	p := policy.Default().Sharing
	p.Mode = policy.ModeEnforce
	const why = "kill switch /x/kill-switch: incident 42"
	h.Auditor = func(string) *audit.Auditor {
		return &audit.Auditor{EC2: f, Checker: h.Enforcer("us-east-1"), Policy: p, Clock: clock.Real(),
			Halt: func(context.Context) (string, bool) { return why, true }}
	}
	var metrics bytes.Buffer
	h.Metrics = &metrics
	resp, err := h.Handle(context.Background(), sharingEvent(t, "valid/scheduled.json"))
	if err != nil || resp.Outcome != handlers.OutcomeAuditIncomplete || !strings.HasPrefix(resp.Reason, "halted ("+why+"): resumes from ") ||
		resp.Audit == nil || resp.Audit.Halted != why {
		t.Fatalf("%+v %v", resp, err)
	}
	if !strings.Contains(logs.String(), `"halted":"`+why+`"`) {
		t.Errorf("log line lacks the halt: %s", logs)
	}
	got := emfMetrics(t, &metrics, "sharing")
	if len(got) != 1 || got[0]["AuditsCompleted"] != 0 {
		t.Errorf("metrics %v", got)
	}
	if f.Calls["DescribeImages"] != 0 || f.Calls["ModifyImageAttribute"] != 0 {
		t.Errorf("calls while halted: %v", f.Calls)
	}
}
