package fake_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
)

// Four tag calls through a Crash at 2: which landed, what the caller saw,
// and how often Kill ran.
func TestCrashModes(t *testing.T) {
	tests := []struct {
		mode   fake.CrashMode
		after  int
		landed []bool // per call: did it reach the fake
		failed []bool // per call: did the caller see an error
		kills  int
	}{
		{fake.CrashKill, 2, []bool{true, true, false, false}, []bool{false, false, true, true}, 1},
		{fake.CrashKill, 0, []bool{false, false, false, false}, []bool{true, true, true, true}, 1},
		{fake.CrashLanded, 2, []bool{true, true, false, false}, []bool{false, true, true, true}, 1},
		{fake.CrashLoseAnswer, 2, []bool{true, true, true, true}, []bool{false, true, false, false}, 0},
		{fake.CrashKill, -1, []bool{true, true, true, true}, []bool{false, false, false, false}, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s at %d", tt.mode, tt.after), func(t *testing.T) {
			f := fake.NewEC2()
			kills := 0
			c := &fake.Crash{EC2: f, After: tt.after, Mode: tt.mode, Kill: func() { kills++ }}
			for i := range 4 {
				id := fmt.Sprintf("snap-%d", i)
				f.Snapshots[id] = &types.Snapshot{SnapshotId: aws.String(id)}
				_, err := c.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{id},
					Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
				if (err != nil) != tt.failed[i] {
					t.Errorf("call %d: err = %v, want failed %v", i+1, err, tt.failed[i])
				}
				if err != nil && !awserr.IsRetryable(err) {
					t.Errorf("call %d: %v is not retryable: the caller must not learn the outcome", i+1, err)
				}
				if got := f.Tags(id)["k"] == "v"; got != tt.landed[i] {
					t.Errorf("call %d landed = %v, want %v", i+1, got, tt.landed[i])
				}
				if c.Calls()[i].Landed != tt.landed[i] {
					t.Errorf("call %d recorded as %+v", i+1, c.Calls()[i])
				}
			}
			if kills != tt.kills {
				t.Errorf("Kill ran %d times, want %d", kills, tt.kills)
			}
			if c.Count() != 4 || c.Killed() != (tt.kills > 0) {
				t.Errorf("Count %d Killed %v", c.Count(), c.Killed())
			}
		})
	}
}

// KillAfter picks the crash point by the call: the matching call lands and
// is answered, every later one is killed.
func TestCrashKillAfter(t *testing.T) {
	f := fake.NewEC2()
	kills := 0
	c := &fake.Crash{EC2: f, After: -1, Kill: func() { kills++ },
		KillAfter: func(op, target string) bool { return op == "DeleteSnapshot" && target == "snap-1" }}
	for i := range 3 {
		id := fmt.Sprintf("snap-%d", i)
		f.Snapshots[id] = &types.Snapshot{SnapshotId: aws.String(id)}
	}
	for i := range 3 {
		_, err := c.DeleteSnapshot(context.Background(), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(fmt.Sprintf("snap-%d", i))})
		if (err != nil) != (i == 2) {
			t.Errorf("call %d: err = %v", i+1, err)
		}
	}
	if _, ok := f.Snapshots["snap-2"]; !ok || len(f.Snapshots) != 1 || kills != 1 {
		t.Errorf("left %d snapshots, kills %d; want only snap-2 and one kill", len(f.Snapshots), kills)
	}
}
