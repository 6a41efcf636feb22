package collect

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/time/rate"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
)

// The second opinion: right before a batch of AMIs is deregistered, EC2's
// own reference check (DescribeImageReferences) is asked what uses them. It
// sees instances, launch templates, SSM parameters and Image Builder recipes
// of this account and region; the inventory sees more kinds of user (groups,
// fleets, launch configurations), EC2 sees them as they are now.

const (
	// ReferencesBatch is the most ImageIds one DescribeImageReferences call
	// accepts (1-10).
	ReferencesBatch = 10
	// DefaultReferencesVersionDepth is the maximum EC2 accepts (1-10000;
	// its default is 10). Any version of a template can be launched by
	// number, so the check looks at all of them, not the recent ten.
	DefaultReferencesVersionDepth = 10000
	// DefaultReferencesRate and DefaultReferencesBurst pace the calls at
	// half of EC2's non-mutating bucket (100 burst, 20 a second), which
	// every other Describe call of the account shares. Ten calls a second
	// check 100 AMIs a second, twenty times DeregisterImage's 5.
	DefaultReferencesRate  = 10
	DefaultReferencesBurst = 10
)

// ImageReferences asks EC2 which resources use the given AMIs: instances
// that are not terminated, every version of every launch template, SSM
// parameters, Image Builder image and container recipes. It returns the
// references by AMI ID (AMIs nothing uses are absent), sorted, with no
// detail but a recipe's version (EC2 says which resource, not how).
//
// Any error is returned, with nothing else: the caller must not deregister
// without the answer. Calls go ReferencesBatch AMIs at a time, every page of
// each, paced by the Collector's limiter; it is safe for concurrent use.
func (c *Collector) ImageReferences(ctx context.Context, imageIDs []string) (map[string][]cleanup.Reference, error) {
	if c.References == nil {
		return nil, fmt.Errorf("image references: %w", errNoClient("EC2 image references"))
	}
	ids := slices.DeleteFunc(slices.Clone(imageIDs), func(id string) bool { return id == "" })
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := map[string][]cleanup.Reference{}
	for batch := range slices.Chunk(ids, ReferencesBatch) {
		if err := c.referencesOf(ctx, batch, out); err != nil {
			return nil, err
		}
	}
	for _, refs := range out {
		slices.SortFunc(refs, func(a, b cleanup.Reference) int {
			return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Detail, b.Detail))
		})
	}
	return out, nil
}

// referencesOf reads every page of one call's answer into out.
func (c *Collector) referencesOf(ctx context.Context, batch []string, out map[string][]cleanup.Reference) error {
	p := ec2.NewDescribeImageReferencesPaginator(c.References, &ec2.DescribeImageReferencesInput{
		ImageIds:      batch,
		ResourceTypes: c.referenceTypes(),
	})
	for p.HasMorePages() {
		if err := c.paceReferences(ctx); err != nil {
			return fmt.Errorf("DescribeImageReferences %s: %w", strings.Join(batch, ","), err)
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("DescribeImageReferences %s: %w", strings.Join(batch, ","), err)
		}
		for _, r := range page.ImageReferences {
			id := aws.ToString(r.ImageId)
			if !slices.Contains(batch, id) {
				// A reference that cannot be attributed could belong to
				// any AMI of the batch: fail closed.
				return fmt.Errorf("DescribeImageReferences %s: reference %s names image %q, not one asked for", strings.Join(batch, ","), aws.ToString(r.Arn), id)
			}
			ref := referenceOf(r)
			if !slices.Contains(out[id], ref) {
				out[id] = append(out[id], ref)
			}
		}
	}
	return nil
}

// referenceTypes asks for every resource type EC2 checks, named one by one so
// the IAM policy can match (IncludeAllResourceTypes would take in types added
// later, and with them permissions the role does not have).
func (c *Collector) referenceTypes() []types.ResourceTypeRequest {
	depth := c.ReferencesVersionDepth
	if depth <= 0 {
		depth = DefaultReferencesVersionDepth
	}
	return []types.ResourceTypeRequest{
		{
			ResourceType: types.ImageReferenceResourceTypeEc2Instance,
			ResourceTypeOptions: []types.ResourceTypeOption{{
				OptionName: types.ImageReferenceOptionNameStateName, OptionValues: slices.Clone(liveInstanceStates),
			}},
		},
		{
			ResourceType: types.ImageReferenceResourceTypeEc2LaunchTemplate,
			ResourceTypeOptions: []types.ResourceTypeOption{{
				OptionName: types.ImageReferenceOptionNameVersionDepth, OptionValues: []string{strconv.Itoa(depth)},
			}},
		},
		{ResourceType: types.ImageReferenceResourceTypeSsmParameter},
		{ResourceType: types.ImageReferenceResourceTypeImageBuilderImageRecipe},
		{ResourceType: types.ImageReferenceResourceTypeImageBuilderContainerRecipe},
	}
}

// paceReferences waits for the references limiter's next slot.
func (c *Collector) paceReferences(ctx context.Context) error {
	c.refsOnce.Do(func() {
		c.refsLimiter = c.ReferencesLimiter
		if c.refsLimiter == nil {
			c.refsLimiter = rate.NewLimiter(DefaultReferencesRate, DefaultReferencesBurst)
		}
	})
	return c.pace(ctx, c.refsLimiter)
}

// paceShares waits for the next slot of the launch-permission reads made
// right before removal (ReadSharesNow): half of EC2's non-mutating refill,
// like the reference check, so the recheck never starves the account.
func (c *Collector) paceShares(ctx context.Context) error {
	c.sharesOnce.Do(func() { c.sharesLimiter = rate.NewLimiter(DefaultReferencesRate, DefaultReferencesBurst) })
	return c.pace(ctx, c.sharesLimiter)
}

// pace waits for lim's next slot on the Collector's clock.
func (c *Collector) pace(ctx context.Context, lim *rate.Limiter) error {
	clk := c.Clock
	if clk == nil {
		clk = clock.Real()
	}
	now := clk.Now()
	res := lim.ReserveN(now, 1)
	if err := clk.Sleep(ctx, res.DelayFrom(now)); err != nil {
		res.CancelAt(now)
		return err
	}
	return nil
}

// referenceOf names the user in an EC2 reference: i-0abc, lt-0abc, a
// parameter name, a recipe name (its version in the detail). A reference
// whose ARN is not understood keeps its AMI all the same, named by the ARN.
func referenceOf(r types.ImageReference) cleanup.Reference {
	raw := aws.ToString(r.Arn)
	ref := cleanup.Reference{Kind: string(r.ResourceType), ID: raw}
	if ref.Kind == "" {
		ref.Kind = "resource"
	}
	if ref.ID == "" {
		ref.ID = "(no ARN)"
	}
	a, err := arn.Parse(raw)
	if err != nil {
		return ref
	}
	cut := func(prefix string) (string, bool) {
		rest, ok := strings.CutPrefix(a.Resource, prefix)
		return rest, ok && rest != ""
	}
	switch r.ResourceType {
	case types.ImageReferenceResourceTypeEc2Instance:
		if id, ok := cut("instance/"); ok {
			ref.Kind, ref.ID = cleanup.RefInstance, id
		}
	case types.ImageReferenceResourceTypeEc2LaunchTemplate:
		if id, ok := cut("launch-template/"); ok {
			ref.Kind, ref.ID = cleanup.RefLaunchTemplate, id
		}
	case types.ImageReferenceResourceTypeSsmParameter:
		// parameter/a/b is the name /a/b; parameter/x is x (or /x: the ARN
		// does not say).
		if name, ok := cut("parameter/"); ok {
			if strings.Contains(name, "/") {
				name = "/" + name
			}
			ref.Kind, ref.ID = cleanup.RefSSMParameter, name
		}
	case types.ImageReferenceResourceTypeImageBuilderImageRecipe:
		if rest, ok := cut("image-recipe/"); ok {
			ref.Kind = cleanup.RefImageRecipe
			ref.ID, ref.Detail = recipeDetail(rest)
		}
	case types.ImageReferenceResourceTypeImageBuilderContainerRecipe:
		if rest, ok := cut("container-recipe/"); ok {
			ref.Kind = cleanup.RefContainerRecipe
			ref.ID, ref.Detail = recipeDetail(rest)
		}
	}
	return ref
}

// recipeDetail splits "name/1.0.0" into the name and a detail with the version.
func recipeDetail(rest string) (id, detail string) {
	name, version, ok := strings.Cut(rest, "/")
	if !ok || version == "" {
		return rest, ""
	}
	return name, "version " + version
}
