package collect

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
)

// readImages lists the account's AMIs, disabled and deprecated ones included.
func (s *sweep) readImages(ctx context.Context) {
	if s.c.EC2 == nil {
		s.incomplete("images", errNoClient("EC2"))
		return
	}
	p := ec2.NewDescribeImagesPaginator(s.c.EC2, &ec2.DescribeImagesInput{
		Owners:            []string{"self"},
		IncludeDisabled:   aws.Bool(true),
		IncludeDeprecated: aws.Bool(true),
		MaxResults:        aws.Int32(ec2PageSize),
	})
	var images []cleanup.Image
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.incomplete("images", err)
			break
		}
		for _, img := range page.Images {
			im, err := toImage(img)
			if err != nil {
				// A date we cannot read could make an AMI look old or
				// never launched: fail closed.
				s.incomplete("images", err)
			}
			images = append(images, im)
		}
	}
	s.mu.Lock()
	s.inv.Images = images
	s.mu.Unlock()
}

func toImage(img types.Image) (cleanup.Image, error) {
	im := cleanup.Image{
		ID:                       aws.ToString(img.ImageId),
		Name:                     aws.ToString(img.Name),
		OwnerID:                  aws.ToString(img.OwnerId),
		State:                    string(img.State),
		DeregistrationProtection: aws.ToString(img.DeregistrationProtection),
		Public:                   aws.ToBool(img.Public),
		Tags:                     tagMap(img.Tags),
	}
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs == nil {
			continue
		}
		if m.Ebs.SnapshotId != nil {
			im.SnapshotIDs = append(im.SnapshotIDs, *m.Ebs.SnapshotId)
		}
		im.SizeGiB += int64(aws.ToInt32(m.Ebs.VolumeSize))
	}
	var errs []error
	for _, f := range []struct {
		name string
		in   *string
		out  *time.Time
	}{
		{"CreationDate", img.CreationDate, &im.CreationDate},
		{"LastLaunchedTime", img.LastLaunchedTime, &im.LastLaunched},
		{"DeprecationTime", img.DeprecationTime, &im.DeprecationTime},
	} {
		t, err := parseTime(f.in)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", im.ID, f.name, err))
		}
		*f.out = t
	}
	if len(errs) > 0 {
		return im, errs[0]
	}
	return im, nil
}

// parseTime reads an EC2 timestamp ("2006-01-02T15:04:05.000Z"; any RFC 3339
// form is accepted). Absent or empty is the zero time.
func parseTime(s *string) (time.Time, error) {
	if s == nil || *s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, *s)
}

func tagMap(tags []types.Tag) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// readSnapshots lists the account's snapshots. The owner-id filter, not
// OwnerIds, selects them: moto ignores OwnerIds.
func (s *sweep) readSnapshots(ctx context.Context) {
	if s.c.EC2 == nil {
		s.incomplete("snapshots", errNoClient("EC2"))
		return
	}
	in := &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(ec2PageSize)}
	if s.account != "" {
		in.Filters = []types.Filter{{Name: aws.String("owner-id"), Values: []string{s.account}}}
	} else {
		in.OwnerIds = []string{"self"}
	}
	p := ec2.NewDescribeSnapshotsPaginator(s.c.EC2, in)
	var snaps []cleanup.Snapshot
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.incomplete("snapshots", err)
			break
		}
		for _, sn := range page.Snapshots {
			snaps = append(snaps, cleanup.Snapshot{
				ID:          aws.ToString(sn.SnapshotId),
				SizeGiB:     int64(aws.ToInt32(sn.VolumeSize)),
				Description: aws.ToString(sn.Description),
				StartTime:   aws.ToTime(sn.StartTime),
				State:       string(sn.State),
				Tags:        tagMap(sn.Tags),
			})
		}
	}
	s.mu.Lock()
	s.inv.Snapshots = snaps
	s.mu.Unlock()
}

// liveInstanceStates is every instance state but terminated: a stopped
// instance starts again from its AMI.
var liveInstanceStates = []string{"pending", "running", "shutting-down", "stopping", "stopped"}

// readInstances references the AMI of every instance that is not terminated,
// managed ones (EKS Auto Mode and the like) included.
func (s *sweep) readInstances(ctx context.Context) {
	if s.c.EC2 == nil {
		s.incomplete("instances", errNoClient("EC2"))
		return
	}
	p := ec2.NewDescribeInstancesPaginator(s.c.EC2, &ec2.DescribeInstancesInput{
		Filters:                 []types.Filter{{Name: aws.String("instance-state-name"), Values: liveInstanceStates}},
		IncludeManagedResources: aws.Bool(true),
		MaxResults:              aws.Int32(ec2PageSize),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.incomplete("instances", err)
			return
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				state := ""
				if i.State != nil {
					state = string(i.State.Name)
				}
				s.ref(aws.ToString(i.ImageId), cleanup.Reference{Kind: cleanup.RefInstance, ID: aws.ToString(i.InstanceId), Detail: state})
			}
		}
	}
}
