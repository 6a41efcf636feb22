package execute_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
)

// deadlines wraps the executor's EC2 client and records, per call, how
// long the context it was given had left.
type deadlines struct {
	awsapi.CleanupEC2
	mu   sync.Mutex
	left map[string][]time.Duration // op -> time left; -1 when no deadline
}

func (d *deadlines) note(ctx context.Context, op string) {
	left := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.left[op] = append(d.left[op], left)
}

func (d *deadlines) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, o ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	d.note(ctx, "CreateTags")
	return d.CleanupEC2.CreateTags(ctx, in, o...)
}

func (d *deadlines) DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, o ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error) {
	d.note(ctx, "DeleteTags")
	return d.CleanupEC2.DeleteTags(ctx, in, o...)
}

func (d *deadlines) EnableImageDeprecation(ctx context.Context, in *ec2.EnableImageDeprecationInput, o ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error) {
	d.note(ctx, "EnableImageDeprecation")
	return d.CleanupEC2.EnableImageDeprecation(ctx, in, o...)
}

func (d *deadlines) DisableImageDeprecation(ctx context.Context, in *ec2.DisableImageDeprecationInput, o ...func(*ec2.Options)) (*ec2.DisableImageDeprecationOutput, error) {
	d.note(ctx, "DisableImageDeprecation")
	return d.CleanupEC2.DisableImageDeprecation(ctx, in, o...)
}

func (d *deadlines) DisableImage(ctx context.Context, in *ec2.DisableImageInput, o ...func(*ec2.Options)) (*ec2.DisableImageOutput, error) {
	d.note(ctx, "DisableImage")
	return d.CleanupEC2.DisableImage(ctx, in, o...)
}

func (d *deadlines) EnableImage(ctx context.Context, in *ec2.EnableImageInput, o ...func(*ec2.Options)) (*ec2.EnableImageOutput, error) {
	d.note(ctx, "EnableImage")
	return d.CleanupEC2.EnableImage(ctx, in, o...)
}

func (d *deadlines) DeregisterImage(ctx context.Context, in *ec2.DeregisterImageInput, o ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	d.note(ctx, "DeregisterImage")
	return d.CleanupEC2.DeregisterImage(ctx, in, o...)
}

func (d *deadlines) DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, o ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	d.note(ctx, "DeleteSnapshot")
	return d.CleanupEC2.DeleteSnapshot(ctx, in, o...)
}

// recheckDeadline is a Rechecker that keeps nothing and records the time
// its context had left.
type recheckDeadline struct {
	d *deadlines
}

func (r recheckDeadline) Recheck(ctx context.Context, _ []cleanup.Decision) (map[string]execute.Kept, error) {
	r.d.note(ctx, "Recheck")
	return nil, nil
}

// TestEveryCallIsBoundedByCallTimeout: however far away the caller's
// deadline is, every EC2 call and the recheck get a context that ends within
// execute.CallTimeout, so the sweep's report reserve (which must exceed
// CallTimeout; sweep checks that at compile time) outlasts any call in
// flight when the deadline strikes.
func TestEveryCallIsBoundedByCallTimeout(t *testing.T) {
	w := newWorld()
	w.f.IgnoreDeleteAssociatedSnapshots = true // so DeleteSnapshot is called too
	w.addImage("ami-1", "snap-1")
	w.addImage("ami-2")
	w.addImage("ami-3")
	w.setTags("ami-3", cleanup.TagDeleteAfter, "2026-12-31", cleanup.TagDeprecatedByUs, "2026-12-31", cleanup.TagDisabledByUs, "2026-12-31")
	tags := w.f.Tags("ami-3")
	w.f.Snapshots["snap-o"] = snapshot("snap-o")
	rec := &deadlines{CleanupEC2: w.f, left: map[string][]time.Duration{}}
	w.ex.EC2 = rec
	w.ex.Recheck = recheckDeadline{rec}
	w.ex.ImageTags = func(id string) map[string]string {
		if id == "ami-3" {
			return tags
		}
		return nil
	}
	plan := enforce([]cleanup.Decision{
		{ImageID: "ami-1", Action: cleanup.ActionDeregister, DeleteSnapshots: []string{"snap-1"}, SizeGiB: 8},
		{ImageID: "ami-2", Action: cleanup.ActionMark, DeleteAfter: "2026-12-31", Deprecate: true, Disable: true},
		{ImageID: "ami-3", Action: cleanup.ActionUnmark},
	}, cleanup.SnapshotDecision{SnapshotID: "snap-o", Action: cleanup.ActionDeregister, SizeGiB: 8})

	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	res := w.apply(t, ctx, plan)
	if res.Failed != 0 || res.Deregistered != 1 || res.SnapshotsDeleted != 2 {
		t.Fatalf("results %+v", res)
	}
	want := []string{"CreateTags", "DeleteSnapshot", "DeleteTags", "DeregisterImage", "DisableImage",
		"DisableImageDeprecation", "EnableImage", "EnableImageDeprecation", "Recheck"}
	var got []string
	for op, lefts := range rec.left {
		got = append(got, op)
		for _, left := range lefts {
			if left <= 0 || left > execute.CallTimeout {
				t.Errorf("%s ran with %v left (-1: no deadline); want at most CallTimeout (%v)", op, left, execute.CallTimeout)
			}
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("calls seen %v, want %v", got, want)
	}
}
