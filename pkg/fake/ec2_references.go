package fake

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// ImageReferences answers DescribeImageReferences (moto does not implement
// it: HTTP 500) from its own state: instances, launch templates with their
// versions, SSM parameters, Image Builder image and container recipes. It
// follows the EC2 API reference and user guide: 1-10 ImageIds, either
// IncludeAllResourceTypes or ResourceTypes, options state-name (instances;
// default all states) and version-depth (launch templates, 1-10000, default
// 10, counted from the most recent version), MaxResults of at least 5, and a
// NextToken valid only for the request that produced it. Error codes are
// this fake's choice where AWS documents none (UNVERIFIED); callers must only
// rely on getting an error. An SSM parameter references an AMI when its value
// is the AMI ID (EC2's exact rule is not documented).
//
// To stand in for awsapi.RecheckEC2, combine it with EC2 in a struct that
// forwards DescribeImages and DescribeImageReferences.
type ImageReferences struct {
	mu sync.Mutex
	// Region and Account go into the ARNs (default us-east-1, 123456789012).
	Region, Account string
	// Instances by ID.
	Instances map[string]RefInstance
	// LaunchTemplates maps a template ID to the ImageId of each version,
	// version 1 first (the last is the most recent).
	LaunchTemplates map[string][]string
	// Parameters maps a parameter name (/a/b or x) to its value.
	Parameters map[string]string
	// ImageRecipes and ContainerRecipes map "name/version" to the parent image.
	ImageRecipes, ContainerRecipes map[string]string
	// PageSize is the number of references a page holds when MaxResults is
	// not set (default 5); MaxResults lowers it.
	PageSize int
	// Errors, if set, are returned by the next calls, one each, in order (a
	// nil entry lets its call through).
	Errors []error
	// Requests records every request (a copy), in order.
	Requests []ec2.DescribeImageReferencesInput

	tokens map[string]pageToken
	nextID int
}

// RefInstance is an instance as the reference check sees it.
type RefInstance struct {
	ImageID string
	State   types.InstanceStateName
}

type pageToken struct {
	request string // the request it belongs to (without NextToken, MaxResults)
	offset  int
}

var allReferenceTypes = []types.ImageReferenceResourceType{
	types.ImageReferenceResourceTypeEc2Instance,
	types.ImageReferenceResourceTypeEc2LaunchTemplate,
	types.ImageReferenceResourceTypeSsmParameter,
	types.ImageReferenceResourceTypeImageBuilderImageRecipe,
	types.ImageReferenceResourceTypeImageBuilderContainerRecipe,
}

// scope is what one request checks.
type scope struct {
	types  []types.ImageReferenceResourceType
	states []string // instance states; nil means all
	depth  int      // launch template versions, most recent first
}

func invalid(msg string) error { return apiErrorf("InvalidParameterValue", "%s", msg) }

// apiErrorf is APIError with a message, for readable test failures.
func apiErrorf(code, format string, args ...any) error {
	return &smithy.GenericAPIError{Code: code, Message: "fake: " + fmt.Sprintf(format, args...), Fault: smithy.FaultClient}
}

func scopeOf(in *ec2.DescribeImageReferencesInput) (scope, error) {
	sc := scope{depth: 10}
	if aws.ToBool(in.IncludeAllResourceTypes) {
		sc.types = slices.Clone(allReferenceTypes)
	}
	if len(in.ResourceTypes) == 0 && sc.types == nil {
		return sc, apiErrorf("MissingParameter", "IncludeAllResourceTypes or ResourceTypes is required")
	}
	validStates := []string{"pending", "running", "shutting-down", "terminated", "stopping", "stopped"}
	for _, rt := range in.ResourceTypes {
		if !slices.Contains(allReferenceTypes, rt.ResourceType) {
			return sc, invalid("unknown resource type " + string(rt.ResourceType))
		}
		if !slices.Contains(sc.types, rt.ResourceType) {
			sc.types = append(sc.types, rt.ResourceType)
		}
		for _, o := range rt.ResourceTypeOptions {
			switch {
			case o.OptionName == types.ImageReferenceOptionNameStateName && rt.ResourceType == types.ImageReferenceResourceTypeEc2Instance:
				for _, v := range o.OptionValues {
					if !slices.Contains(validStates, v) {
						return sc, invalid("state-name " + v)
					}
				}
				sc.states = o.OptionValues
			case o.OptionName == types.ImageReferenceOptionNameVersionDepth && rt.ResourceType == types.ImageReferenceResourceTypeEc2LaunchTemplate:
				if len(o.OptionValues) != 1 {
					return sc, invalid("version-depth takes one value")
				}
				n, err := strconv.Atoi(o.OptionValues[0])
				if err != nil || n < 1 || n > 10000 {
					return sc, invalid("version-depth " + o.OptionValues[0])
				}
				sc.depth = n
			default:
				return sc, invalid(fmt.Sprintf("option %s for %s", o.OptionName, rt.ResourceType))
			}
		}
	}
	return sc, nil
}

// DescribeImageReferences answers from the fake's state (see ImageReferences).
func (f *ImageReferences) DescribeImageReferences(_ context.Context, in *ec2.DescribeImageReferencesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImageReferencesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if aws.ToBool(in.DryRun) {
		panic("fake.ImageReferences: DryRun is not modelled")
	}
	rec := *in
	rec.ImageIds = slices.Clone(in.ImageIds)
	rec.ResourceTypes = slices.Clone(in.ResourceTypes)
	f.Requests = append(f.Requests, rec)
	if len(f.Errors) > 0 {
		err := f.Errors[0]
		f.Errors = f.Errors[1:]
		if err != nil {
			return nil, err
		}
	}
	switch n := len(in.ImageIds); {
	case n == 0:
		return nil, apiErrorf("MissingParameter", "ImageIds is required")
	case n > 10:
		return nil, invalid(fmt.Sprintf("%d ImageIds, at most 10", n))
	}
	for _, id := range in.ImageIds {
		if !strings.HasPrefix(id, "ami-") {
			return nil, apiErrorf("InvalidAMIID.Malformed", "%s", id)
		}
	}
	sc, err := scopeOf(in)
	if err != nil {
		return nil, err
	}
	size := f.PageSize
	if size <= 0 {
		size = 5
	}
	if in.MaxResults != nil {
		if *in.MaxResults < 5 {
			return nil, invalid("MaxResults below 5")
		}
		size = min(size, int(*in.MaxResults))
	}

	key := fmt.Sprint(in.ImageIds, in.IncludeAllResourceTypes != nil && *in.IncludeAllResourceTypes, in.ResourceTypes)
	start := 0
	if in.NextToken != nil {
		t, ok := f.tokens[*in.NextToken]
		if !ok || t.request != key {
			return nil, apiErrorf("InvalidNextToken", "%s", *in.NextToken)
		}
		start = t.offset
	}
	all := f.references(in.ImageIds, sc)
	start = min(start, len(all))
	end := min(start+size, len(all))
	out := &ec2.DescribeImageReferencesOutput{ImageReferences: all[start:end]}
	if end < len(all) {
		if f.tokens == nil {
			f.tokens = map[string]pageToken{}
		}
		f.nextID++
		tok := "tok-" + strconv.Itoa(f.nextID)
		f.tokens[tok] = pageToken{request: key, offset: end}
		out.NextToken = aws.String(tok)
	}
	return out, nil
}

// references lists, in a fixed order, every reference in scope.
func (f *ImageReferences) references(imageIDs []string, sc scope) []types.ImageReference {
	region, account := cmp.Or(f.Region, "us-east-1"), cmp.Or(f.Account, "123456789012")
	var out []types.ImageReference
	add := func(image string, rt types.ImageReferenceResourceType, arn string) {
		out = append(out, types.ImageReference{ImageId: aws.String(image), ResourceType: rt, Arn: aws.String(arn)})
	}
	for _, image := range imageIDs {
		for _, rt := range sc.types {
			switch rt {
			case types.ImageReferenceResourceTypeEc2Instance:
				for _, id := range sortedKeys(f.Instances) {
					in := f.Instances[id]
					if in.ImageID == image && (sc.states == nil || slices.Contains(sc.states, string(in.State))) {
						add(image, rt, fmt.Sprintf("arn:aws:ec2:%s:%s:instance/%s", region, account, id))
					}
				}
			case types.ImageReferenceResourceTypeEc2LaunchTemplate:
				for _, id := range sortedKeys(f.LaunchTemplates) {
					versions := f.LaunchTemplates[id]
					if slices.Contains(versions[max(0, len(versions)-sc.depth):], image) {
						add(image, rt, fmt.Sprintf("arn:aws:ec2:%s:%s:launch-template/%s", region, account, id))
					}
				}
			case types.ImageReferenceResourceTypeSsmParameter:
				for _, name := range sortedKeys(f.Parameters) {
					if f.Parameters[name] == image {
						add(image, rt, fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", region, account, strings.TrimPrefix(name, "/")))
					}
				}
			case types.ImageReferenceResourceTypeImageBuilderImageRecipe:
				for _, name := range sortedKeys(f.ImageRecipes) {
					if f.ImageRecipes[name] == image {
						add(image, rt, fmt.Sprintf("arn:aws:imagebuilder:%s:%s:image-recipe/%s", region, account, name))
					}
				}
			case types.ImageReferenceResourceTypeImageBuilderContainerRecipe:
				for _, name := range sortedKeys(f.ContainerRecipes) {
					if f.ContainerRecipes[name] == image {
						add(image, rt, fmt.Sprintf("arn:aws:imagebuilder:%s:%s:container-recipe/%s", region, account, name))
					}
				}
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
