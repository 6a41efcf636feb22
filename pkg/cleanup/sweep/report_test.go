package sweep

import (
	"bytes"
	"encoding/json"
	"fmt"
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
