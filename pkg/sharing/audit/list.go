package audit

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// list returns every item to check, sorted by ID, and fills Report.Public.
// listed is false when the list is not whole: then err says why, and items
// are only the AMIs (the snapshot listing failed) or nothing (the AMI
// listing failed: a partial AMI list would let the cursor pass AMIs it never
// saw).
func (r *run) list(ctx context.Context) (items []item, listed bool, err error) {
	images, err := r.listImages(ctx)
	if err != nil {
		return nil, false, err
	}
	behindAMI := map[string]bool{}
	for i := range images {
		img := &images[i]
		it := item{id: aws.ToString(img.ImageId), image: img}
		for _, m := range img.BlockDeviceMappings {
			if m.Ebs != nil && aws.ToString(m.Ebs.SnapshotId) != "" {
				it.snapshots = append(it.snapshots, aws.ToString(m.Ebs.SnapshotId))
				behindAMI[aws.ToString(m.Ebs.SnapshotId)] = true
			}
		}
		if aws.ToBool(img.Public) {
			r.rep.Public = append(r.rep.Public, it.id)
		}
		items = append(items, it)
	}
	sort.Strings(r.rep.Public)
	if r.a.Policy.CheckAllSnapshots {
		snaps, err := r.listSnapshots(ctx)
		if err != nil {
			sortItems(items)
			return items, false, err
		}
		for _, id := range snaps {
			if !behindAMI[id] {
				items = append(items, item{id: id, snapshot: true})
			}
		}
	}
	sortItems(items)
	return items, true, nil
}

func sortItems(items []item) {
	sort.Slice(items, func(i, j int) bool { return items[i].id < items[j].id })
}

// listImages is the one DescribeImages pass over the owned AMIs, each page
// paced like a check's read.
func (r *run) listImages(ctx context.Context) ([]types.Image, error) {
	p := ec2.NewDescribeImagesPaginator(r.a.EC2, &ec2.DescribeImagesInput{
		Owners:            []string{"self"},
		IncludeDisabled:   aws.Bool(true),
		IncludeDeprecated: aws.Bool(true),
		MaxResults:        aws.Int32(pageSize),
	})
	var out []types.Image
	seen := map[string]bool{}
	for p.HasMorePages() {
		if err := r.paceListing(ctx); err != nil {
			return nil, fmt.Errorf("listing images: %w", err)
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing images: %w", err)
		}
		for _, img := range page.Images {
			// A page boundary can repeat an image; check it once.
			if id := aws.ToString(img.ImageId); id != "" && !seen[id] {
				seen[id] = true
				out = append(out, img)
			}
		}
	}
	return out, nil
}

// listSnapshots lists the IDs of the owned snapshots. The owner-id filter
// (rather than OwnerIds) keeps the call out of EC2's stricter bucket for
// unfiltered calls, and works on emulators that ignore OwnerIds.
func (r *run) listSnapshots(ctx context.Context) ([]string, error) {
	in := &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(pageSize)}
	if r.account != "" {
		in.Filters = []types.Filter{{Name: aws.String("owner-id"), Values: []string{r.account}}}
	} else {
		in.OwnerIds = []string{"self"}
	}
	p := ec2.NewDescribeSnapshotsPaginator(r.a.EC2, in)
	var out []string
	seen := map[string]bool{}
	for p.HasMorePages() {
		if err := r.paceListing(ctx); err != nil {
			return nil, fmt.Errorf("listing snapshots: %w", err)
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing snapshots: %w", err)
		}
		for _, s := range page.Snapshots {
			if id := aws.ToString(s.SnapshotId); id != "" && !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// paceListing waits for one read's slot. Listing is not cut short by the
// margin (without the whole list the cursor cannot move), only by ctx.
func (r *run) paceListing(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := r.clock.Now()
	return r.clock.Sleep(ctx, r.lim.ReserveN(now, 1).DelayFrom(now))
}
