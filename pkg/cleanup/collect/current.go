package collect

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
)

// CurrentImages re-reads the given AMIs as EC2 describes them now (tags,
// state, deregistration protection), for the recheck right before their
// deregistration. An AMI that is gone is absent from the map. The image-id
// filter (not ImageIds) is used so that an AMI deregistered meanwhile is
// simply not listed instead of failing the whole call.
func (c *Collector) CurrentImages(ctx context.Context, ids []string) (map[string]*cleanup.Image, error) {
	out := make(map[string]*cleanup.Image, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	if c.EC2 == nil {
		return nil, errNoClient("EC2")
	}
	p := ec2.NewDescribeImagesPaginator(c.EC2, &ec2.DescribeImagesInput{
		Owners:            []string{"self"},
		Filters:           []types.Filter{{Name: aws.String("image-id"), Values: ids}},
		IncludeDisabled:   aws.Bool(true),
		IncludeDeprecated: aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("re-reading %d AMIs: %w", len(ids), err)
		}
		for _, img := range page.Images {
			im, err := toImage(img)
			if err != nil {
				return nil, fmt.Errorf("re-reading %s: %w", aws.ToString(img.ImageId), err)
			}
			out[im.ID] = &im
		}
	}
	return out, nil
}
