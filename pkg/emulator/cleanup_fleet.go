package emulator

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// The cleanup fleet: owned AMIs of known ages seeded into moto from
// testdata/moto/cleanup-fleet.json, and the things that use some of them.
// The cleanup end-to-end test and the demo share it.
const (
	FleetAMIInLaunchTemplate = "ami-0c1ea000000000001" // web-base-2026-06-01, launch template "web" $Default
	FleetAMIInUseByInstance  = "ami-0c1ea000000000002" // web-base-2026-07-01, a stopped instance
	FleetAMIStale1           = "ami-0c1ea000000000003" // web-base-2026-08-01, unused: goes
	FleetAMIProtected        = "ami-0c1ea000000000004" // web-base-2026-09-01, tag ami-housekeeper:keep
	FleetAMIStale2           = "ami-0c1ea000000000005" // web-base-2026-10-01, unused: goes
	FleetAMINewest           = "ami-0c1ea000000000006" // web-base-2026-11-01, newest of its family
	FleetAMIInSSMParameter   = "ami-0c1ea000000000007" // ci-runner-2026-05-01, SSM parameter /ci/runner-ami
	FleetAMINoRule           = "ami-0c1ea000000000008" // scratch-2026-01-01, no retention rule
)

// FleetAMIs lists the seeded owned AMIs.
var FleetAMIs = []string{FleetAMIInLaunchTemplate, FleetAMIInUseByInstance, FleetAMIStale1, FleetAMIProtected,
	FleetAMIStale2, FleetAMINewest, FleetAMIInSSMParameter, FleetAMINoRule}

// FleetPolicy is the retention policy the fleet is built for, in the given
// mode, with grace 0 (mark and act in the same run). moto does not
// implement DescribeImageReferences (HTTP 500), so the second opinion is
// disabled here; with it required, moto runs deregister nothing (a test pins
// that), and the second opinion itself is tested on a stateful fake.
func FleetPolicy(mode string) string {
	return FleetPolicyWith(mode, "disabled")
}

// FleetPolicyWith is FleetPolicy with retention.second_opinion set.
func FleetPolicyWith(mode, secondOpinion string) string {
	return `version: 1
retention:
  mode: ` + mode + `
  grace_days: 0
  second_opinion: ` + secondOpinion + `
  # moto describes the snapshots of the AMIs it loads at start as
  # "Auto-created snapshot for AMI ...", which EC2 never writes, so they
  # are not proven an AMI's: the fleet opts in to deleting them.
  delete_unproven_snapshots: true
  rules:
    - name: web
      match: {name: "web-base-*"}
      keep_newest: 1
      min_age_days: 7
    - name: ci
      match: {name: "ci-runner-*"}
      keep_newest: 0
      min_age_days: 7
`
}

// StartFleetMoto starts a moto server seeded with the cleanup fleet's AMIs.
func StartFleetMoto(ctx context.Context) (*Moto, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	return StartMoto(ctx, MotoOptions{Env: []string{"MOTO_AMIS_PATH=" + filepath.Join(root, "testdata", "moto", "cleanup-fleet.json")}})
}

// UseFleet creates what uses the fleet's AMIs: a stopped instance, a launch
// template and an SSM parameter of data type aws:ec2:image. It returns each
// AMI's snapshot.
func UseFleet(ctx context.Context, cfg aws.Config) (map[string]string, error) {
	s := NewFleetSeeder(cfg)
	inst, err := s.Instance(ctx, FleetAMIInUseByInstance)
	if err != nil {
		return nil, err
	}
	if err := s.StopInstance(ctx, inst); err != nil {
		return nil, err
	}
	if _, err := s.LaunchTemplate(ctx, "web", FleetAMIInLaunchTemplate); err != nil {
		return nil, err
	}
	if err := s.Parameter(ctx, "/ci/runner-ami", FleetAMIInSSMParameter, "aws:ec2:image"); err != nil {
		return nil, err
	}
	snaps := map[string]string{}
	for _, id := range FleetAMIs {
		ids, err := s.Snapshots(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("snapshots of %s: %w", id, err)
		}
		if len(ids) != 1 {
			return nil, fmt.Errorf("snapshots of %s: want 1, got %v", id, ids)
		}
		snaps[id] = ids[0]
	}
	return snaps, nil
}
