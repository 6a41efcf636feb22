package collect

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
)

// ReadShares reads launch permissions (DescribeImageAttribute
// launchPermission) for the given images only (the candidates), with bounded
// concurrency; sets SharesKnown and SharedWith (account IDs, organization
// ARNs, OU ARNs; group "all" sets Public). A failure leaves SharesKnown false
// and adds a Problem. IDs not in inv.Images are ignored.
func (c *Collector) ReadShares(ctx context.Context, inv *cleanup.Inventory, imageIDs []string) {
	index := make(map[string]int, len(inv.Images))
	for i, im := range inv.Images {
		index[im.ID] = i
	}
	var todo []int
	for _, id := range imageIDs {
		if i, ok := index[id]; ok && !slices.Contains(todo, i) {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return
	}
	if c.EC2 == nil {
		for _, i := range todo {
			inv.Problems = append(inv.Problems, fmt.Sprintf("image %s: launch permissions: %v", inv.Images[i].ID, errNoClient("EC2")))
		}
		return
	}
	problems := make([]string, len(inv.Images))
	// Each call writes only its own image and its own problem slot.
	parallel(c.shareConcurrency(), todo, func(i int) {
		if err := c.readShares(ctx, &inv.Images[i]); err != nil {
			problems[i] = err.Error()
		}
	})
	for _, i := range todo {
		if problems[i] != "" {
			inv.Problems = append(inv.Problems, problems[i])
		}
	}
}

// ReadSharesNow reads the launch permissions of images (the AMIs about to be
// deregistered, as the recheck re-read them), one paced call each, and
// fails on the first error: a removal must not go ahead on permissions it
// could not read.
func (c *Collector) ReadSharesNow(ctx context.Context, images []*cleanup.Image) error {
	if c.EC2 == nil {
		return errNoClient("EC2")
	}
	for _, im := range images {
		if err := c.paceShares(ctx); err != nil {
			return err
		}
		if err := c.readShares(ctx, im); err != nil {
			return err
		}
	}
	return nil
}

// readShares reads one image's launch permissions into it: SharesKnown and
// SharedWith (account IDs, organization ARNs, OU ARNs; group "all" sets
// Public). On error SharesKnown is false.
func (c *Collector) readShares(ctx context.Context, im *cleanup.Image) error {
	out, err := c.EC2.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{
		ImageId:   aws.String(im.ID),
		Attribute: types.ImageAttributeNameLaunchPermission,
	})
	if err != nil {
		im.SharesKnown, im.SharedWith = false, nil
		return fmt.Errorf("image %s: launch permissions: %w", im.ID, err)
	}
	var with []string
	for _, p := range out.LaunchPermissions {
		if p.Group == types.PermissionGroupAll {
			im.Public = true
		}
		for _, principal := range []*string{p.UserId, p.OrganizationArn, p.OrganizationalUnitArn} {
			if v := aws.ToString(principal); v != "" && !slices.Contains(with, v) {
				with = append(with, v)
			}
		}
	}
	slices.Sort(with)
	im.SharesKnown, im.SharedWith = true, with
	return nil
}
