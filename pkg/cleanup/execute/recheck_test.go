package execute_test

// The recheck runs against a scripted Rechecker (its AWS side, EC2's
// DescribeImageReferences, is tested in pkg/cleanup/collect against a
// stateful fake: moto lacks the call).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
)

// scripted keeps the AMIs in keep and fails when err is set; it records
// the batches it was asked about.
type scripted struct {
	mu      sync.Mutex
	keep    map[string]execute.Kept
	err     error
	batches [][]string
}

func (s *scripted) Recheck(_ context.Context, batch []cleanup.Decision) (map[string]execute.Kept, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, d := range batch {
		ids = append(ids, d.ImageID)
	}
	s.batches = append(s.batches, ids)
	return s.keep, s.err
}

func removals(w *world, n int) *cleanup.Plan {
	var ds []cleanup.Decision
	for i := range n {
		id := fmt.Sprintf("ami-%02d", i)
		w.addImage(id, "snap-"+id)
		ds = append(ds, cleanup.Decision{ImageID: id, Action: cleanup.ActionDeregister, DeleteSnapshots: []string{"snap-" + id}, SizeGiB: 8})
	}
	return enforce(ds)
}

func TestRecheckKeepsWhatEC2StillSees(t *testing.T) {
	w := newWorld()
	plan := removals(w, 25)
	rc := &scripted{keep: map[string]execute.Kept{
		"ami-03": {Reasons: []string{"in use by launch template lt-0abc (version 7) (found by EC2 DescribeImageReferences; the inventory missed it)"}},
		"ami-17": {Reasons: []string{"protected by tag ami-housekeeper:keep (set since the plan)"}},
	}}
	w.ex.Recheck = rc
	res := w.apply(t, context.Background(), plan)
	if res.KeptOnRecheck != 2 || res.Deregistered != 23 || res.Failed != 0 {
		t.Fatalf("kept %d, deregistered %d, failed %d", res.KeptOnRecheck, res.Deregistered, res.Failed)
	}
	for _, id := range []string{"ami-03", "ami-17"} {
		if w.f.Images[id] == nil || w.f.Snapshots["snap-"+id] == nil {
			t.Errorf("%s or its snapshot was removed although the recheck kept it", id)
		}
		if tags := w.f.Tags("snap-" + id); tags[cleanup.TagDeleteWith] != "" {
			t.Errorf("%s: its snapshot was tagged delete-with although the AMI stays: %v", id, tags)
		}
	}
	r := res.Images[3]
	if r.ImageID != "ami-03" || r.Done || r.Error != "" || !slices.Equal(r.KeptBecause, rc.keep["ami-03"].Reasons) {
		t.Errorf("result %+v", r)
	}
	// Batches of at most 10, in plan order, covering every deregistration once.
	var all []string
	for _, b := range rc.batches {
		if len(b) > 10 {
			t.Errorf("batch of %d", len(b))
		}
		all = append(all, b...)
	}
	if len(rc.batches) != 3 || len(all) != 25 || all[0] != "ami-00" || all[24] != "ami-24" {
		t.Errorf("batches %v", rc.batches)
	}
}

func TestRecheckFailureKeepsTheBatch(t *testing.T) {
	w := newWorld()
	plan := removals(w, 3)
	w.ex.Recheck = &scripted{err: errors.New("DescribeImageReferences: api error InternalError")}
	res := w.apply(t, context.Background(), plan)
	if res.Deregistered != 0 || res.Failed != 3 || len(w.f.Images) != 3 || w.f.Calls["DeregisterImage"]+w.f.Calls["CreateTags"] != 0 {
		t.Fatalf("deregistered %d, failed %d, calls %v", res.Deregistered, res.Failed, w.f.Calls)
	}
	for _, r := range res.Images {
		if r.Done || r.Error == "" {
			t.Errorf("%+v", r)
		}
	}
}

// A marked AMI the recheck finds no longer a candidate (shared since it was
// marked, a user only EC2 sees) is unmarked there and then: the next plan
// could not see why, and would plan its removal again every run.
func TestRecheckUnmarks(t *testing.T) {
	w := newWorld()
	w.addImage("ami-1", "snap-1")
	w.f.Images["ami-1"].State = types.ImageStateDisabled
	w.setTags("ami-1", cleanup.TagDeleteAfter, "2026-11-20", cleanup.TagDisabledByUs, "2026-11-20")
	inv := w.f.Tags("ami-1")
	w.ex.ImageTags = func(string) map[string]string { return inv }
	w.ex.Recheck = &scripted{keep: map[string]execute.Kept{"ami-1": {Reasons: []string{"shared with 222233334444 (keep_shared)"}, Unmark: true}}}
	res := w.apply(t, context.Background(), enforce([]cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionDeregister, DeleteAfter: "2026-11-20", DeleteSnapshots: []string{"snap-1"}, CheckShares: true}}))
	if w.f.Images["ami-1"] == nil || w.f.Images["ami-1"].State != types.ImageStateAvailable || len(w.tags("ami-1")) != 0 {
		t.Fatalf("image %+v, tags %v", w.f.Images["ami-1"], w.tags("ami-1"))
	}
	if r := res.Images[0]; r.Done || !hasNote(r.Notes, "unmarked") || res.KeptOnRecheck != 1 {
		t.Fatalf("result %+v", res)
	}
}

// Launch permissions left to the recheck are never skipped: without one,
// such a decision is kept.
func TestCheckSharesWithoutRecheckIsKept(t *testing.T) {
	w := newWorld()
	w.addImage("ami-1", "snap-1")
	res := w.apply(t, context.Background(), enforce([]cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionDeregister, DeleteSnapshots: []string{"snap-1"}, CheckShares: true}}))
	if w.f.Images["ami-1"] == nil || w.f.Calls["DeregisterImage"] != 0 || len(res.Images[0].KeptBecause) == 0 {
		t.Fatalf("result %+v, calls %v", res.Images[0], w.f.Calls)
	}
}
