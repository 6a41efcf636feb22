package main_test

// apply makes only the changes the operator confirmed (moto; in process,
// since a confirmation needs a terminal, which a pipe to the binary is not).

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cli"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// While the prompt waits, someone takes the protect tag off an AMI the
// preview showed as kept. The operator answers y to the plan they saw: the
// newly unprotected AMI is not removed, and the output says why.
func TestApplyMakesOnlyTheConfirmedChanges(t *testing.T) {
	f := newCleanupFleet(t)
	pol := writePolicy(t, emulator.FleetPolicy("enforce"))
	in := &answerAfter{answer: "y\n", meanwhile: func() {
		if _, err := f.ec2.DeleteTags(context.Background(), &ec2.DeleteTagsInput{Resources: []string{emulator.FleetAMIProtected},
			Tags: []types.Tag{{Key: aws.String("ami-housekeeper:keep")}}}); err != nil {
			t.Error(err)
		}
	}}
	r := runOnTerminal(t, f.env(), in, "apply", "--policy", pol)
	code, out, errOut := r.code, r.stdout, r.stderr
	preview, after, _ := strings.Cut(out, "[y/N]")
	if code != cli.ExitOK || strings.Contains(preview, emulator.FleetAMIProtected) {
		t.Fatalf("exit %d; preview lists %s: %v\n%s\n%s", code, emulator.FleetAMIProtected, strings.Contains(preview, emulator.FleetAMIProtected), out, errOut)
	}
	images := f.images(t)
	if !slices.Contains(images, emulator.FleetAMIProtected) {
		t.Errorf("apply deregistered %s, which was not in the plan the operator confirmed", emulator.FleetAMIProtected)
	}
	// What was confirmed went.
	if slices.Contains(images, emulator.FleetAMIStale1) || slices.Contains(images, emulator.FleetAMIStale2) {
		t.Errorf("the confirmed removals did not happen: %v\n%s", images, after)
	}
}
