package sweep_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Against moto (real collector, real paginated DescribeImages): three AMIs
// made "three hours ago" — one the tagger reached through CloudTrail, one
// only through the state change, one not at all — are counted as such;
// the fleet's old AMIs are outside the window.
func TestSweepCountsAMIsTheTaggerMissedMoto(t *testing.T) {
	ctx := context.Background()
	m := fleetMoto(t)
	if err := m.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := m.Config(ctx, crashRegion)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emulator.UseFleet(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	s := emulator.NewFleetSeeder(cfg)
	base, err := s.Instance(ctx, emulator.FleetAMINewest)
	if err != nil {
		t.Fatal(err)
	}
	tagging := policy.Default().Tagging
	tagging.Mode = policy.ModeEnforce
	createdAt, createdBy, createdVia := tagging.Key(tagging.Keys.CreatedAt), tagging.Key(tagging.Keys.CreatedBy), tagging.Key(tagging.Keys.CreatedVia)
	cl := ec2.NewFromConfig(cfg)
	ids := map[string]string{}
	for name, tags := range map[string][]string{
		"both-paths":        {createdAt, createdBy, createdVia},
		"state-change-only": {createdAt, createdVia},
		"never-tagged":      nil,
	} {
		id, err := s.CreateImage(ctx, base, name)
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = id
		for _, k := range tags {
			if _, err := cl.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id},
				Tags: []types.Tag{{Key: aws.String(k), Value: aws.String("CreateImage")}}}); err != nil {
				t.Fatal(err)
			}
		}
	}

	run := func(watch *policy.Tagging) *sweep.Report {
		sw := &sweep.Sweeper{
			Collector: &collect.Collector{EC2: cl, AutoScaling: autoscaling.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), References: cl},
			Executor:  &execute.Executor{EC2: cl},
			Now:       func() time.Time { return time.Now().UTC().Add(3 * time.Hour) },
			Tagging:   watch,
		}
		rep := sw.Run(ctx, crashAccount, crashRegion, policy.Default().Retention)
		if rep.Plan.Blocked != "" {
			t.Fatalf("blocked: %s", rep.Plan.Blocked)
		}
		return rep
	}
	c := run(sweep.WatchTagger(tagging)).Tagger
	if c == nil {
		t.Fatal("no tagger coverage in the report")
	}
	wantExamples := []string{ids["never-tagged"], ids["state-change-only"]}
	if c.Recent != 3 || c.Untagged != 1 || c.WithoutCreator != 1 || !slices.Equal(c.Examples, wantExamples) {
		t.Errorf("coverage %+v, want 3 recent, 1 untagged, 1 without creator, examples %v", *c, wantExamples)
	}
	if rep := run(nil); rep.Tagger != nil {
		t.Errorf("not watched, yet coverage %+v", *rep.Tagger)
	}
}
