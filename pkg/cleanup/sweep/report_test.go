package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// The report's renderings are pure: tested here on a built plan.

func report(n int) *Report {
	var ds []cleanup.Decision
	for i := 0; i < n; i++ {
		ds = append(ds, cleanup.Decision{ImageID: fmt.Sprintf("ami-%08d", i), Action: cleanup.ActionDeregister, Reasons: []string{"not in use"}})
	}
	ds = append(ds, cleanup.Decision{ImageID: "ami-keep", Action: cleanup.ActionKeep, Reasons: []string{"in use by instance i-1 (running)"}})
	return &Report{Account: "123456789012", Region: "us-east-1", Mode: policy.ModeEnforce,
		Plan:    cleanup.Plan{Decisions: ds, Totals: cleanup.Totals{Considered: n + 1, Deregister: n, GiBFreed: 15 * int64(n), MonthlySavingUSD: 0.75 * float64(n)}},
		Results: &execute.Results{Deregistered: n, SnapshotsDeleted: n, GiBFreed: 15 * int64(n)}}
}

func TestDetailListsOnlyChangesAndIsBounded(t *testing.T) {
	d := report(250).Detail()
	if len(d.Decisions) != maxEventDecisions || d.MoreDecisions != 50 {
		t.Errorf("decisions %d, more %d; want %d and 50", len(d.Decisions), d.MoreDecisions, maxEventDecisions)
	}
	for _, dec := range d.Decisions {
		if dec.Action == cleanup.ActionKeep {
			t.Fatalf("a keep decision is in the event: %+v", dec)
		}
	}
	b, _ := json.Marshal(d)
	if len(b) > 256*1024 {
		t.Errorf("event detail is %d bytes, over EventBridge's 256 KB", len(b))
	}
}

func TestEMFAndSummary(t *testing.T) {
	r := report(2)
	var buf bytes.Buffer
	if err := r.WriteEMF(&buf, time.Unix(1_800_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["AMIsDeregistered"] != 2.0 || doc["GiBFreed"] != 30.0 {
		t.Errorf("metrics %v", doc)
	}
	aws := doc["_aws"].(map[string]any)
	if aws["Timestamp"] != 1.8e12 || !strings.Contains(buf.String(), `"Namespace":"AmiHousekeeper"`) {
		t.Errorf("EMF envelope %v", aws)
	}
	s := r.Summary()
	for _, want := range []string{"mode enforce", "deregister 2", "30 GiB", "Done: 2 AMIs deregistered"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	r.Results, r.Plan.Blocked = nil, "inventory incomplete: instances: boom; nothing is changed this run"
	if !strings.Contains(r.Summary(), "NOTHING WAS CHANGED") {
		t.Errorf("a blocked summary must say so:\n%s", r.Summary())
	}
}

func TestKeptOnRecheckIsReported(t *testing.T) {
	r := report(2)
	why := "in use by launch template lt-0abc (version 7) (found by EC2 DescribeImageReferences; the inventory missed it)"
	r.Results.Deregistered, r.Results.KeptOnRecheck = 1, 1
	r.Results.Images = []execute.ImageResult{
		{ImageID: "ami-00000000", Action: cleanup.ActionDeregister, Done: true},
		{ImageID: "ami-00000001", Action: cleanup.ActionDeregister, KeptBecause: []string{why}},
	}
	var buf bytes.Buffer
	r.Log(context.Background(), slog.New(slog.NewJSONHandler(&buf, nil)))
	var kept, summary map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		switch {
		case m["image_id"] == "ami-00000001":
			kept = m
		case m["msg"] == "cleanup summary":
			summary = m
		}
	}
	if kept["outcome"] != "kept-on-recheck" || kept["kept_because"] != why || kept["error"] != nil {
		t.Errorf("decision line %v", kept)
	}
	if summary["kept_on_recheck"] != 1.0 || summary["level"] != "WARN" {
		t.Errorf("summary line %v", summary)
	}
	if r.Metrics()["AMIsKeptOnRecheck"] != 1 || !strings.Contains(r.Summary(), "Kept on the recheck right before removal: 1 AMIs") {
		t.Errorf("metrics %v, summary %s", r.Metrics(), r.Summary())
	}
}
