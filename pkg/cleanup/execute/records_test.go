package execute_test

// Sealed records, against the stateful fake (moto has no lifecycle stages).

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
)

func TestRefusesWithoutRecordsKey(t *testing.T) {
	w := newWorld()
	w.addImage("ami-1", "snap-1")
	w.ex.Records = nil
	res := w.ex.Apply(context.Background(), enforce([]cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionDeregister, DeleteSnapshots: []string{"snap-1"}}}))
	if res.Err() == nil || !strings.Contains(res.Refused, "records key") || len(w.spy.ops) != 0 {
		t.Fatalf("results %+v, ops %v", res, w.spy.ops)
	}
}

// The owner disabled an AMI; someone with ec2:CreateTags adds the cleanup's
// record tags. Even asked to unmark it, the executor undoes only what its
// own sealed records say it did.
func TestUnmarkIgnoresForgedRecords(t *testing.T) {
	w := newWorld()
	w.addImage("ami-1")
	w.f.Images["ami-1"].State = types.ImageStateDisabled
	w.setTags("ami-1", cleanup.TagDeleteAfter, "2026-12-31") // a sealed mark
	forged := []types.Tag{tagKV(cleanup.TagDisabledByUs, "true"), tagKV(cleanup.TagDeprecatedByUs, "true")}
	w.f.Images["ami-1"].Tags = append(w.f.Images["ami-1"].Tags, forged...)
	inv := w.f.Tags("ami-1")
	w.ex.ImageTags = func(string) map[string]string { return inv }
	res := w.apply(t, context.Background(), enforce([]cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionUnmark}}))
	if w.f.Calls["EnableImage"]+w.f.Calls["DisableImageDeprecation"] != 0 || w.f.Images["ami-1"].State != types.ImageStateDisabled {
		t.Fatalf("the owner's disable was undone on a forged record: calls %v", w.f.Calls)
	}
	if !res.Images[0].Done || w.tags("ami-1")[cleanup.TagDeleteAfter] != "" {
		t.Fatalf("the sealed mark should be removed: %+v, tags %v", res.Images[0], w.tags("ami-1"))
	}
}

// A deregistration that was attempted, failed, and met the deadline before
// its retry may have happened: it is not reported as not started.
func TestDeregisterOutcomeUnknownAtDeadline(t *testing.T) {
	w := newWorld()
	w.addImage("ami-1", "snap-1")
	w.f.Errors["DeregisterImage"] = []error{motoNotImplemented("DeregisterImage")} // a 5xx: outcome unknown
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.spy.after = func(op string) {
		if op == "DeregisterImage" {
			cancel()
		}
	}
	res := w.apply(t, ctx, enforce([]cleanup.Decision{{ImageID: "ami-1", Action: cleanup.ActionDeregister, DeleteSnapshots: []string{"snap-1"}}}))
	r := res.Images[0]
	if r.Done || r.Error == execute.NotStarted || !strings.Contains(r.Error, "outcome unknown") || res.NotStarted != 0 || res.Failed != 1 {
		t.Fatalf("result %+v, not started %d, failed %d", r, res.NotStarted, res.Failed)
	}
	if w.f.Snapshots["snap-1"] == nil || w.f.Calls["DeleteSnapshot"] != 0 {
		t.Fatal("a snapshot was deleted although its AMI's deregistration is not confirmed")
	}
}

func tagKV(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
