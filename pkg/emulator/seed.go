package emulator

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Seeder creates the resources tests and the demo need, through the real
// SDK against the emulator.
type Seeder struct{ EC2 *ec2.Client }

// Instance launches one instance with the given tags (key, value pairs).
func (s Seeder) Instance(ctx context.Context, imageID string, tags ...string) (string, error) {
	in := &ec2.RunInstancesInput{ImageId: aws.String(imageID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeT3Micro}
	if len(tags) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: pairs(tags)}}
	}
	out, err := s.EC2.RunInstances(ctx, in)
	if err != nil {
		return "", fmt.Errorf("RunInstances: %w", err)
	}
	return aws.ToString(out.Instances[0].InstanceId), nil
}

// CreateImage makes an AMI of the instance, with optional image tags.
func (s Seeder) CreateImage(ctx context.Context, instanceID, name string, tags ...string) (string, error) {
	in := &ec2.CreateImageInput{InstanceId: aws.String(instanceID), Name: aws.String(name)}
	if len(tags) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: pairs(tags)}}
	}
	out, err := s.EC2.CreateImage(ctx, in)
	if err != nil {
		return "", fmt.Errorf("CreateImage: %w", err)
	}
	return aws.ToString(out.ImageId), nil
}

// Snapshots returns the EBS snapshot IDs of an AMI's block device mappings.
func (s Seeder) Snapshots(ctx context.Context, imageID string) ([]string, error) {
	out, err := s.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, img := range out.Images {
		for _, m := range img.BlockDeviceMappings {
			if m.Ebs != nil && m.Ebs.SnapshotId != nil {
				ids = append(ids, *m.Ebs.SnapshotId)
			}
		}
	}
	return ids, nil
}

// Tags returns the tags of one resource (AMI, snapshot, instance) as a map.
func (s Seeder) Tags(ctx context.Context, resourceID string) (map[string]string, error) {
	out, err := s.EC2.DescribeTags(ctx, &ec2.DescribeTagsInput{
		Filters: []types.Filter{{Name: aws.String("resource-id"), Values: []string{resourceID}}},
	})
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, t := range out.Tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m, nil
}

// Snapshot creates a volume and a snapshot of it (to give an AMI more
// snapshots than moto's CreateImage makes).
func (s Seeder) Snapshot(ctx context.Context) (string, error) {
	vol, err := s.EC2.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(s.EC2.Options().Region + "a"), Size: aws.Int32(8)})
	if err != nil {
		return "", fmt.Errorf("CreateVolume: %w", err)
	}
	snap, err := s.EC2.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil {
		return "", fmt.Errorf("CreateSnapshot: %w", err)
	}
	return aws.ToString(snap.SnapshotId), nil
}

func pairs(kv []string) []types.Tag {
	var tags []types.Tag
	for i := 0; i+1 < len(kv); i += 2 {
		tags = append(tags, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return tags
}
