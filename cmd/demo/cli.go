package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	rbtypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cli"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// operating runs the operator CLI, the binary make build-host built, on the
// cleanup fleet in the same moto: plan, explain, apply --yes, and restore.
func operating(ctx context.Context, moto *emulator.Moto) error {
	say("\n== Part 4: the operator CLI (ami-housekeeper) ==")
	bin, err := cliBinary()
	if err != nil {
		return err
	}
	// Part 2's enforce run already removed the fleet's stale AMIs; the
	// CLI gets the fleet as seeded, so it has the same work to do.
	say("Resetting moto to the cleanup fleet as seeded (part 2 removed its stale AMIs), with the same uses ...")
	if err := moto.Reset(ctx); err != nil {
		return err
	}
	cfg, err := moto.Config(ctx, region)
	if err != nil {
		return err
	}
	if _, err := emulator.UseFleet(ctx, cfg); err != nil {
		return err
	}
	keyEnv, err := moto.RecordsKeyEnv(ctx, region)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ami-housekeeper-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(emulator.FleetPolicy("enforce")), 0o600); err != nil {
		return err
	}
	say("The policy file is part 2's, in mode enforce (grace_days 0; second_opinion disabled, moto lacks")
	say("DescribeImageReferences; delete_unproven_snapshots, for moto's own snapshot descriptions).")
	say("The environment points the CLI at moto and names the records key: %s", keyEnv)
	say("moto has no Recycle Bin: each command below reports its rules unreadable as a Problem (they only")
	say("give the report's \"recoverable until\"; nothing else depends on them).")
	env := append(moto.Env(region), keyEnv, "NO_COLOR=1", "HOME="+dir, "PATH="+os.Getenv("PATH"))
	run := func(args ...string) error {
		say("\n$ ami-housekeeper %s", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir, cmd.Env = dir, env
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("ami-housekeeper %s: %w", args[0], err)
		}
		return nil
	}

	if err := run("plan", "--policy", "policy.yaml"); err != nil {
		return err
	}
	if err := run("explain", emulator.FleetAMIInUseByInstance, "--policy", "policy.yaml"); err != nil {
		return err
	}
	// The Recycle Bin part of restore needs the AMI as it was: moto keeps
	// no bin, so the fake below gets it.
	client := ec2.NewFromConfig(cfg)
	removed := emulator.FleetAMIStale1
	img, snaps, err := imageAndSnapshots(ctx, client, removed)
	if err != nil {
		return err
	}
	if err := run("apply", "--policy", "policy.yaml", "--yes"); err != nil {
		return err
	}
	left, err := emulator.OwnedImages(ctx, client)
	if err != nil {
		return err
	}
	say("\nAMIs still registered in moto (%d): %s", len(left), strings.Join(left, ", "))

	return restoring(ctx, cfg, filepath.Join(dir, "policy.yaml"), img, snaps)
}

// restoring runs `restore` of the AMI apply removed. moto has no Recycle
// Bin, so the command runs in this process with its AWS side on pkg/fake's
// stateful Recycle Bin (the hook its own tests use), which holds the AMI and
// its snapshot as moto held them, removed as apply removed them.
func restoring(ctx context.Context, cfg aws.Config, policyFile string, img types.Image, snaps []types.Snapshot) error {
	id := aws.ToString(img.ImageId)
	say("\nmoto has no Recycle Bin, so `restore` runs in this process against pkg/fake's stateful")
	say("Recycle Bin (rules keep AMIs and snapshots 7 days), holding %s and its snapshot as moto", id)
	say("held them before apply, then removed with its snapshot as apply removed them. The caller is moto's.")
	bin := fake.NewRecycleBin(
		fake.BinRule{ID: "amis-7d", ResourceType: rbtypes.ResourceTypeEc2Image, Days: 7},
		fake.BinRule{ID: "snapshots-7d", ResourceType: rbtypes.ResourceTypeEbsSnapshot, Days: 7})
	bin.Images[id] = &img
	for i := range snaps {
		bin.Snapshots[aws.ToString(snaps[i].SnapshotId)] = &snaps[i]
	}
	if _, err := bin.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: img.ImageId, DeleteAssociatedSnapshots: aws.Bool(true)}); err != nil {
		return err
	}
	caller, keys := sts.NewFromConfig(cfg), kms.NewFromConfig(cfg)
	cli.RestoreBackendForTests = func(string) cli.RestoreBackend {
		return cli.RestoreBackend{EC2: bin, RecycleBin: bin, Caller: func(ctx context.Context) (string, error) {
			out, err := caller.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if err != nil {
				return "", err
			}
			return aws.ToString(out.Arn), nil
		}, RecordsKey: func(ctx context.Context, keyID string) (*records.Key, error) {
			return records.Derive(ctx, keys, keyID) // moto's KMS holds the records key
		}}
	}
	defer func() { cli.RestoreBackendForTests = nil }()
	args := []string{"restore", id, "--policy", policyFile, "--records-key", emulator.RecordsKeyAlias, "--region", region,
		"--reason", "web 08-01 still serves the canary", "--yes"}
	// Echoed as the other commands are: the policy file by its name.
	say("\n$ ami-housekeeper %s", strings.ReplaceAll(strings.Join(quoted(args), " "), policyFile, filepath.Base(policyFile)))
	if code := cli.Main(ctx, args, cli.IO{In: strings.NewReader(""), Out: os.Stdout, Err: os.Stdout,
		Getenv: func(string) string { return "" }}); code != cli.ExitOK {
		return fmt.Errorf("restore exited %d", code)
	}
	if got := bin.Images[id]; got == nil || got.State != types.ImageStateAvailable {
		return fmt.Errorf("%s is not back in the fake", id)
	}
	for _, sn := range snaps {
		if bin.Snapshots[aws.ToString(sn.SnapshotId)] == nil {
			return fmt.Errorf("snapshot %s of %s is not back in the fake", aws.ToString(sn.SnapshotId), id)
		}
	}
	return nil
}

// cliBinary is the CLI make build-host builds next to the functions.
func cliBinary() (string, error) {
	dir := os.Getenv(emulator.EnvBinDir)
	if dir == "" {
		root, err := emulator.RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".build", "host")
	}
	p := filepath.Join(dir, "ami-housekeeper")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s: %w (run `make build-host`)", p, err)
	}
	return p, nil
}

// imageAndSnapshots reads an AMI and the snapshots its block device
// mappings name.
func imageAndSnapshots(ctx context.Context, client *ec2.Client, id string) (types.Image, []types.Snapshot, error) {
	out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil {
		return types.Image{}, nil, err
	}
	if len(out.Images) != 1 {
		return types.Image{}, nil, errors.New(id + " not found in moto")
	}
	img := out.Images[0]
	var ids []string
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs != nil && m.Ebs.SnapshotId != nil {
			ids = append(ids, aws.ToString(m.Ebs.SnapshotId))
		}
	}
	sout, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: ids})
	if err != nil {
		return types.Image{}, nil, err
	}
	return img, sout.Snapshots, nil
}

// quoted shell-quotes arguments with spaces, for the echoed command line.
func quoted(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " '") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}
