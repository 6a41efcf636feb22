package emulator

// A stale fleet: n owned AMIs, each with one snapshot, all older than any
// rule's min_age_days and used by nothing, so every one of them is a cleanup
// candidate. The cleanup benchmark removes them through the fault proxy.
//
// They are loaded by moto itself from a MOTO_AMIS_PATH file when the EC2
// backend starts: the only way to give AMIs an old CreationDate (CreateImage
// stamps "now"), and much faster than n CreateImage calls. moto creates each
// AMI's root snapshot (15 GiB, described "Auto-created snapshot for AMI
// <ami>") as it loads it.

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// StaleNamePrefix starts the name of every stale fleet AMI.
const StaleNamePrefix = "stale-"

// StaleAMIID returns the ID of the i-th stale AMI (0-based): a valid
// ami-<17 hex> ID, distinct from the other fixtures' IDs.
func StaleAMIID(i int) string { return fmt.Sprintf("ami-05a1e%012x", i) }

// WriteStaleAMIs writes a MOTO_AMIS_PATH file under dir with n AMIs owned by
// account, created a minute apart from 2025-01-01 on (older than any
// min_age_days up to a year), and returns its path and the AMI IDs in
// creation order.
func WriteStaleAMIs(dir, account string, n int) (string, []string, error) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	amis := make([]SeedAMI, n)
	ids := make([]string, n)
	for i := range amis {
		ids[i] = StaleAMIID(i)
		amis[i] = SeedAMI{ID: ids[i], Name: StaleNamePrefix + fmt.Sprintf("%05d", i), Description: "seeded stale AMI",
			Owner: account, Created: start.Add(time.Duration(i) * time.Minute)}
	}
	path := filepath.Join(dir, "stale-amis-"+strconv.Itoa(n)+".json")
	if err := WriteAMIs(path, amis); err != nil {
		return "", nil, err
	}
	return path, ids, nil
}

// StartStaleMoto starts a moto server holding n stale AMIs of account in
// region (one snapshot each; the file goes in dir, which must outlive the
// server), loads them (moto builds its EC2 backend on first use, which for
// 1,000 AMIs takes a moment that should not count in a measurement), checks
// that all n are there, and returns the server and their IDs.
func StartStaleMoto(ctx context.Context, dir, account, region string, n int) (*Moto, []string, error) {
	path, ids, err := WriteStaleAMIs(dir, account, n)
	if err != nil {
		return nil, nil, err
	}
	m, err := StartMoto(ctx, MotoOptions{Env: []string{"MOTO_AMIS_PATH=" + path}})
	if err != nil {
		return nil, nil, err
	}
	cfg, err := m.Config(ctx, region)
	if err != nil {
		m.Stop()
		return nil, nil, err
	}
	c := ec2.NewFromConfig(cfg)
	imgs, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err == nil && len(imgs.Images) != n {
		err = fmt.Errorf("moto loaded %d of the %d stale AMIs", len(imgs.Images), n)
	}
	if err == nil {
		var got int
		got, err = SnapshotCount(ctx, c, account)
		if err == nil && got != n {
			err = fmt.Errorf("moto made %d snapshots for the %d stale AMIs, want one each", got, n)
		}
	}
	if err != nil {
		m.Stop()
		return nil, nil, fmt.Errorf("seeding %d stale AMIs: %w", n, err)
	}
	return m, ids, nil
}

// StaleFleetPolicy makes every stale AMI a deregistration in one run: one
// rule for the fleet's names keeping none, the caps at their schema maxima
// (1,000 deregistrations, 1,000,000 GiB), and the second opinion disabled
// because moto lacks DescribeImageReferences (see FleetPolicy). With
// graceDays > 0 only AMIs marked by an earlier run whose date passed go
// (MarkStale marks them).
func StaleFleetPolicy(mode string, graceDays int) string {
	return `version: 1
retention:
  mode: ` + mode + `
  grace_days: ` + strconv.Itoa(graceDays) + `
  second_opinion: disabled
  delete_unproven_snapshots: true # moto's seeded snapshots carry moto's own description (see FleetPolicy)
  max_deregistrations_per_run: 1000
  max_gib_per_run: 1000000
  rules:
    - name: stale
      match: {name: "` + StaleNamePrefix + `*"}
      keep_newest: 0
      min_age_days: 7
`
}

// MarkStale marks the given AMIs as an earlier run of the cleanup would
// have (sealed with the key derived from this server's records key), with a
// date already passed, so a sweep under a grace period removes them.
func (m *Moto) MarkStale(ctx context.Context, region string, ids []string, date string) error {
	if _, err := m.RecordsKeyEnv(ctx, region); err != nil {
		return err
	}
	cfg, err := m.Config(ctx, region)
	if err != nil {
		return err
	}
	key, err := records.Derive(ctx, kms.NewFromConfig(cfg), RecordsKeyAlias)
	if err != nil {
		return err
	}
	c := ec2.NewFromConfig(cfg)
	for _, id := range ids {
		if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{
			{Key: aws.String(cleanup.TagDeleteAfter), Value: aws.String(key.Seal(cleanup.TagDeleteAfter, id, date))}}}); err != nil {
			return fmt.Errorf("marking %s: %w", id, err)
		}
	}
	return nil
}

// SnapshotCount returns how many snapshots account owns now. It filters on
// owner-id because moto ignores OwnerIds.
func SnapshotCount(ctx context.Context, c *ec2.Client, account string) (int, error) {
	out, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{
		Filters: []types.Filter{{Name: aws.String("owner-id"), Values: []string{account}}}})
	if err != nil {
		return 0, err
	}
	return len(out.Snapshots), nil
}

// OwnedImageCount returns how many AMIs the caller owns now.
func OwnedImageCount(ctx context.Context, c *ec2.Client) (int, error) {
	ids, err := OwnedImages(ctx, c)
	return len(ids), err
}

// OwnedImages returns the IDs of the AMIs the caller owns now, sorted.
func OwnedImages(ctx context.Context, c *ec2.Client) ([]string, error) {
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(out.Images))
	for _, img := range out.Images {
		ids = append(ids, aws.ToString(img.ImageId))
	}
	slices.Sort(ids)
	return ids, nil
}
