package handlers

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

// actsOn is the batch's copy of which events each function works on: it
// must agree with the handlers' own switch (an event it calls acted on but
// the handler ignores would stand for a group and leave its work undone).
// Checked over every valid fixture and each state.
func TestActsOnAgreesWithHandlers(t *testing.T) {
	const ami, snap = "ami-0123456789abcdef0", "snap-0123456789abcdef0"
	f := fake.NewEC2()
	f.Images[ami] = &types.Image{ImageId: aws.String(ami), OwnerId: aws.String("123456789012"), State: types.ImageStateAvailable,
		BlockDeviceMappings: []types.BlockDeviceMapping{{Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(snap)}}}}
	f.Snapshots[snap] = &types.Snapshot{SnapshotId: aws.String(snap), OwnerId: aws.String("123456789012"),
		Description: aws.String("Created by CreateImage(i-0123456789abcdef0) for " + ami)}
	var logs bytes.Buffer // the handlers' lines; not read
	tg := NewTagger(tagger.New(func(string) awsapi.TaggerEC2 { return f }, policy.Default().Tagging), logging.New(&logs, "info"), "123456789012")
	sh := &Sharing{Enforcer: func(string) *sharing.Enforcer { return &sharing.Enforcer{EC2: f, Policy: policy.Default().Sharing} },
		Account: "123456789012", Log: logging.New(&logs, "info")}

	paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", "events", "valid", "*.json"))
	if err != nil || len(paths) < 10 {
		t.Fatalf("fixtures %v: %v", paths, err)
	}
	var bodies [][]byte
	for _, p := range paths {
		if strings.HasSuffix(p, "scheduled.json") { // refused in a queue (vet)
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		raw = emulator.Fill(raw, map[string]string{"IMAGE_ID": ami, "SNAPSHOT_ID": snap, "STRANGER": "999988887777",
			"INSTANCE_ID": "i-0123456789abcdef0", "SOURCE_IMAGE_ID": "ami-0fedcba9876543210", "SOURCE_REGION": "eu-west-1"})
		bodies = append(bodies, raw)
		if strings.HasSuffix(p, "statechange-available.json") {
			for _, st := range []string{amievents.StateFailed, amievents.StateDeregistered, amievents.StateDisabled} {
				other := strings.Replace(string(raw), `"State": "available"`, `"State": "`+st+`"`, 1)
				if other == string(raw) {
					t.Fatalf("no state to replace in %s", p)
				}
				bodies = append(bodies, []byte(other))
			}
		}
	}
	for _, raw := range bodies {
		ev, err := amievents.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		tr, _ := tg.handleEvent(context.Background(), ev)
		sr, _ := sh.handleEvent(context.Background(), ev)
		for _, c := range []struct {
			function, outcome string
		}{{"tagger", tr.Outcome}, {"sharing", sr.Outcome}} {
			if acts := c.outcome != OutcomeIgnored; actsOn(c.function, ev) != acts {
				t.Errorf("%s, %s: actsOn %v, the handler's outcome %q", ev.Meta().Kind, c.function, !acts, c.outcome)
			}
		}
	}
}
