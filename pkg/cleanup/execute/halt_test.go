package execute_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
)

// engageAfterRecheck is a Rechecker that keeps nothing and engages the
// switch once it has answered `after` batches: the kill switch turned on
// while the run is under way.
type engageAfterRecheck struct {
	mu      sync.Mutex
	after   int
	batches int
	asked   int // Halt calls
}

func (e *engageAfterRecheck) Recheck(context.Context, []cleanup.Decision) (map[string]execute.Kept, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.batches++
	return nil, nil
}

func (e *engageAfterRecheck) Halt(context.Context) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked++
	if e.batches >= e.after {
		return "kill switch /AmiHousekeeper/kill-switch: incident 42", true
	}
	return "", false
}

// Engaged mid-run, the switch stops the cleanup before its next batch: the
// batch already rechecked completes, nothing after it is removed, and the
// results say why.
func TestHaltStopsBeforeTheNextBatch(t *testing.T) {
	w := newWorld()
	plan := removals(w, 25)
	w.f.Snapshots["snap-orphan"] = snapshot("snap-orphan")
	plan.Orphans = []cleanup.SnapshotDecision{{SnapshotID: "snap-orphan", Action: cleanup.ActionDeregister, SizeGiB: 8}}
	sw := &engageAfterRecheck{after: 1}
	w.ex.Recheck, w.ex.Halt = sw, sw.Halt
	res := w.apply(t, context.Background(), plan)

	if res.Deregistered != execute.RecheckBatch || res.SnapshotsDeleted != execute.RecheckBatch || res.Failed != 0 ||
		res.NotStarted != 25-execute.RecheckBatch+1 || res.Halted != "kill switch /AmiHousekeeper/kill-switch: incident 42" {
		t.Fatalf("deregistered %d, snapshots %d, failed %d, not started %d, halted %q", res.Deregistered, res.SnapshotsDeleted, res.Failed, res.NotStarted, res.Halted)
	}
	if sw.batches != 1 {
		t.Errorf("%d batches rechecked after the halt; want only the first", sw.batches)
	}
	for i, r := range res.Images {
		switch {
		case i < execute.RecheckBatch && !r.Done:
			t.Errorf("%s of the batch before the halt: %+v", r.ImageID, r)
		case i >= execute.RecheckBatch && (r.Done || r.Error != execute.Halted):
			t.Errorf("%s after the halt: %+v", r.ImageID, r)
		case i >= execute.RecheckBatch && (w.f.Images[r.ImageID] == nil || w.f.Snapshots["snap-"+r.ImageID] == nil || len(w.f.Tags("snap-"+r.ImageID)) != 0):
			t.Errorf("%s or its snapshot was touched after the halt", r.ImageID)
		}
	}
	if w.f.Snapshots["snap-orphan"] == nil {
		t.Error("the orphan was deleted after the halt")
	}
	if s := res.Snapshots[len(res.Snapshots)-1]; s.SnapshotID != "snap-orphan" || s.Deleted || s.Error != execute.Halted {
		t.Errorf("orphan result %+v", s)
	}
	if n := strings.Count(w.log.String(), `"action":"halt"`); n != 1 || !strings.Contains(w.log.String(), "incident 42") {
		t.Errorf("%d halt lines, want 1:\n%s", n, w.log)
	}
}

// Engaged (or unreadable) when the run starts its changes: no mark, unmark,
// clean-up of a stale record, deregistration or orphan deletion is made.
func TestHaltedFromTheStartChangesNothing(t *testing.T) {
	w := newWorld()
	w.addImage("ami-mark", "snap-mark")
	w.addImage("ami-unmark", "snap-unmark")
	w.setTags("ami-unmark", cleanup.TagDeleteAfter, "2026-11-20")
	w.addImage("ami-keep", "snap-keep")
	w.setTags("snap-keep", cleanup.TagDeleteWith, "ami-keep")
	w.addImage("ami-go", "snap-go")
	w.f.Snapshots["snap-orphan"] = snapshot("snap-orphan")
	tags := map[string]map[string]string{"ami-unmark": w.f.Tags("ami-unmark")}
	w.ex.ImageTags = func(id string) map[string]string { return tags[id] }
	calls := 0
	w.ex.Halt = func(context.Context) (string, bool) {
		calls++
		return "kill switch /p could not be read", true
	}
	plan := enforce([]cleanup.Decision{
		{ImageID: "ami-mark", Action: cleanup.ActionMark, DeleteAfter: "2026-12-08"},
		{ImageID: "ami-unmark", Action: cleanup.ActionUnmark},
		{ImageID: "ami-keep", Action: cleanup.ActionKeep, ClearDeleteWith: []string{"snap-keep"}},
		{ImageID: "ami-go", Action: cleanup.ActionDeregister, DeleteSnapshots: []string{"snap-go"}},
	}, cleanup.SnapshotDecision{SnapshotID: "snap-orphan", Action: cleanup.ActionDeregister})
	res := w.apply(t, context.Background(), plan)
	for _, op := range []string{"CreateTags", "DeleteTags", "DeregisterImage", "DeleteSnapshot", "DisableImage", "EnableImage", "EnableImageDeprecation"} {
		if n := w.spy.seen(op); n != 0 {
			t.Errorf("%d %s calls after the halt", n, op)
		}
	}
	if res.NotStarted != 4 || res.Halted != "kill switch /p could not be read" || res.Failed != 0 || calls == 0 {
		t.Fatalf("results %+v (halt asked %d times)", res, calls)
	}
	for _, r := range res.Images {
		if r.Error != execute.Halted {
			t.Errorf("%+v", r)
		}
	}
}
