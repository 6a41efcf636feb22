package main_test

// apply makes only the changes the operator confirmed (moto; in process,
// since a confirmation needs a terminal, which a pipe to the binary is not).

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cli"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// onFirstRead runs fn when the operator starts answering (the preview is
// on the screen), then answers.
type onFirstRead struct {
	once   sync.Once
	fn     func()
	answer *strings.Reader
}

func (r *onFirstRead) Read(p []byte) (int, error) {
	r.once.Do(r.fn)
	return r.answer.Read(p)
}

// While the prompt waits, someone takes the protect tag off an AMI the
// preview showed as kept. The operator answers y to the plan they saw: the
// newly unprotected AMI is not removed, and the output says why.
func TestApplyMakesOnlyTheConfirmedChanges(t *testing.T) {
	f := newCleanupFleet(t)
	pol := writePolicy(t, emulator.FleetPolicy("enforce"))
	for _, kv := range append(f.env(), "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+filepath.Join(t.TempDir(), "none"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(t.TempDir(), "none")) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	in := &onFirstRead{answer: strings.NewReader("y\n"), fn: func() {
		if _, err := f.ec2.DeleteTags(context.Background(), &ec2.DeleteTagsInput{Resources: []string{emulator.FleetAMIProtected},
			Tags: []types.Tag{{Key: aws.String("ami-housekeeper:keep")}}}); err != nil {
			t.Error(err)
		}
	}}
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), []string{"apply", "--policy", pol}, cli.IO{In: in, Out: &out, Err: &errOut, Terminal: true, Getenv: os.Getenv})
	preview, after, _ := strings.Cut(out.String(), "[y/N]")
	if code != cli.ExitOK || strings.Contains(preview, emulator.FleetAMIProtected) {
		t.Fatalf("exit %d; preview lists %s: %v\n%s\n%s", code, emulator.FleetAMIProtected, strings.Contains(preview, emulator.FleetAMIProtected), out.String(), errOut.String())
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
