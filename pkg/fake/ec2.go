// Package fake holds stateful test doubles for the narrow AWS interfaces in
// pkg/awsapi. They model a small world across many calls, for the pure logic
// and for the EC2 features the moto emulator lacks (pending AMIs, snapshots
// that appear late, several snapshots per AMI). They panic on inputs they do
// not model, so a test can never pass by accident on an ignored parameter.
package fake

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// EC2 is an in-memory EC2 for one account and region.
type EC2 struct {
	mu        sync.Mutex
	Images    map[string]*types.Image
	Snapshots map[string]*types.Snapshot
	Instances map[string]*types.Instance
	// Calls counts calls per operation name.
	Calls map[string]int
	// BeforeDescribeImages, if set, runs before each DescribeImages (lets a
	// test advance a pending AMI between polls).
	BeforeDescribeImages func(f *EC2)
	// Errors, if set for an operation, is returned (once per entry, in order).
	Errors map[string][]error
	// Buckets, if set for an operation, rate-limits it like EC2: a call that
	// finds its bucket empty fails with RequestLimitExceeded (see bucket.go).
	Buckets map[string]*Bucket
	// Clock, if set, is "now" for time-dependent checks (deprecation dates);
	// nil means the wall clock.
	Clock *Clock
	// IgnoreDeleteAssociatedSnapshots mimics moto: DeregisterImage accepts
	// DeleteAssociatedSnapshots, returns no results and deletes nothing.
	IgnoreDeleteAssociatedSnapshots bool
	// Deregistered holds the images DeregisterImage removed (a second call
	// says InvalidAMIID.Unavailable, as EC2 does shortly after).
	Deregistered map[string]bool
}

// NewEC2 returns an empty fake.
func NewEC2() *EC2 {
	return &EC2{
		Images:    map[string]*types.Image{},
		Snapshots: map[string]*types.Snapshot{},
		Instances: map[string]*types.Instance{},
		Calls:     map[string]int{},
		Errors:    map[string][]error{},
		Buckets:   map[string]*Bucket{},
	}
}

// APIError builds an error with an AWS error code, as the SDK returns them.
func APIError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "fake: " + code, Fault: smithy.FaultClient}
}

func (f *EC2) enter(op string) error {
	f.Calls[op]++
	if b := f.Buckets[op]; b != nil && !b.Take() {
		return APIError("RequestLimitExceeded")
	}
	if errs := f.Errors[op]; len(errs) > 0 {
		f.Errors[op] = errs[1:]
		return errs[0]
	}
	return nil
}

// DescribeImages supports ImageIds only.
func (f *EC2) DescribeImages(_ context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("DescribeImages"); err != nil {
		return nil, err
	}
	if len(in.Filters) > 0 || len(in.Owners) > 0 || len(in.ExecutableUsers) > 0 || len(in.ImageIds) == 0 {
		panic(fmt.Sprintf("fake.EC2.DescribeImages: only ImageIds is modelled, got %+v", in))
	}
	if f.BeforeDescribeImages != nil {
		f.BeforeDescribeImages(f)
	}
	out := &ec2.DescribeImagesOutput{}
	for _, id := range in.ImageIds {
		if img, ok := f.Images[id]; ok {
			out.Images = append(out.Images, *img)
		}
	}
	if len(out.Images) == 0 {
		// Like EC2 when none of the ids exist.
		return nil, APIError("InvalidAMIID.NotFound")
	}
	return out, nil
}

// DescribeSnapshots supports SnapshotIds only; like EC2, one missing id fails the call.
func (f *EC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("DescribeSnapshots"); err != nil {
		return nil, err
	}
	if len(in.Filters) > 0 || len(in.SnapshotIds) == 0 {
		panic(fmt.Sprintf("fake.EC2.DescribeSnapshots: only SnapshotIds is modelled, got %+v", in))
	}
	out := &ec2.DescribeSnapshotsOutput{}
	for _, id := range in.SnapshotIds {
		s, ok := f.Snapshots[id]
		if !ok {
			return nil, APIError("InvalidSnapshot.NotFound")
		}
		out.Snapshots = append(out.Snapshots, *s)
	}
	return out, nil
}

// DescribeInstances supports InstanceIds only.
func (f *EC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("DescribeInstances"); err != nil {
		return nil, err
	}
	if len(in.Filters) > 0 || len(in.InstanceIds) == 0 {
		panic(fmt.Sprintf("fake.EC2.DescribeInstances: only InstanceIds is modelled, got %+v", in))
	}
	var r types.Reservation
	for _, id := range in.InstanceIds {
		in, ok := f.Instances[id]
		if !ok {
			return nil, APIError("InvalidInstanceID.NotFound")
		}
		r.Instances = append(r.Instances, *in)
	}
	return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{r}}, nil
}

// DescribeTags supports one "resource-id" filter only, without paging (the
// fake's resources carry far fewer than a page of tags).
func (f *EC2) DescribeTags(_ context.Context, in *ec2.DescribeTagsInput, _ ...func(*ec2.Options)) (*ec2.DescribeTagsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("DescribeTags"); err != nil {
		return nil, err
	}
	if len(in.Filters) != 1 || aws.ToString(in.Filters[0].Name) != "resource-id" {
		panic(fmt.Sprintf("fake.EC2.DescribeTags: only one resource-id filter is modelled, got %+v", in.Filters))
	}
	out := &ec2.DescribeTagsOutput{}
	for _, id := range in.Filters[0].Values {
		var tags []types.Tag
		switch {
		case f.Images[id] != nil:
			tags = f.Images[id].Tags
		case f.Snapshots[id] != nil:
			tags = f.Snapshots[id].Tags
		case f.Instances[id] != nil:
			tags = f.Instances[id].Tags
		}
		for _, t := range tags {
			out.Tags = append(out.Tags, types.TagDescription{ResourceId: aws.String(id), Key: t.Key, Value: t.Value})
		}
	}
	return out, nil
}

// CreateTags adds or replaces tags on images and snapshots.
func (f *EC2) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("CreateTags"); err != nil {
		return nil, err
	}
	// Validate every resource first: EC2 applies all or nothing.
	for _, id := range in.Resources {
		_, img := f.Images[id]
		_, snap := f.Snapshots[id]
		if !img && !snap {
			return nil, APIError("InvalidID.NotFound")
		}
	}
	for _, id := range in.Resources {
		if img, ok := f.Images[id]; ok {
			img.Tags = mergeTags(img.Tags, in.Tags)
		} else {
			s := f.Snapshots[id]
			s.Tags = mergeTags(s.Tags, in.Tags)
		}
	}
	return &ec2.CreateTagsOutput{}, nil
}

// Tags returns the tags of an image or snapshot as a map.
func (f *EC2) Tags(id string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var tags []types.Tag
	if img, ok := f.Images[id]; ok {
		tags = img.Tags
	} else if s, ok := f.Snapshots[id]; ok {
		tags = s.Tags
	}
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func mergeTags(have, add []types.Tag) []types.Tag {
	for _, a := range add {
		replaced := false
		for i := range have {
			if aws.ToString(have[i].Key) == aws.ToString(a.Key) {
				have[i].Value = a.Value
				replaced = true
			}
		}
		if !replaced {
			have = append(have, a)
		}
	}
	return have
}

// TagList returns the raw tag list of an image or snapshot (to carry tags over
// when a test replaces an image).
func (f *EC2) TagList(id string) []types.Tag {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img, ok := f.Images[id]; ok {
		return img.Tags
	}
	if s, ok := f.Snapshots[id]; ok {
		return s.Tags
	}
	return nil
}
