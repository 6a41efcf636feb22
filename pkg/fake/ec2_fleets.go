package fake

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Fleets answers the three fleet lists (DescribeFleets,
// DescribeSpotFleetRequests, DescribeSpotInstanceRequests) from fixed state,
// PageSize items a page with NextToken, as EC2 pages them. moto implements
// the three calls but never pages them, and answers a Spot Fleet request's
// launch template configs as resolved launch specifications; this fake has
// neither limit.
type Fleets struct {
	mu           sync.Mutex
	EC2Fleets    []types.FleetData
	SpotFleets   []types.SpotFleetRequestConfig
	SpotRequests []types.SpotInstanceRequest
	// PageSize is the page length (default 2, so a handful of items pages).
	PageSize int
	// Calls counts calls per operation name.
	Calls map[string]int
	// Errors, if set for an operation, is returned (once per entry, in
	// order) instead of that call's page.
	Errors map[string][]error
}

func (f *Fleets) enter(op string) error {
	if f.Calls == nil {
		f.Calls = map[string]int{}
	}
	f.Calls[op]++
	if errs := f.Errors[op]; len(errs) > 0 {
		f.Errors[op] = errs[1:]
		return errs[0]
	}
	return nil
}

// page returns the items of one page and the next token ("" at the end). A
// token this fake did not hand out is InvalidNextToken, as in EC2.
func page[T any](items []T, token *string, size int) ([]T, *string, error) {
	start := 0
	if token != nil {
		n, err := strconv.Atoi(*token)
		if err != nil || n <= 0 || n >= len(items) {
			return nil, nil, APIError("InvalidNextToken")
		}
		start = n
	}
	end := min(start+size, len(items))
	var next *string
	if end < len(items) {
		next = aws.String(strconv.Itoa(end))
	}
	return items[start:end], next, nil
}

func (f *Fleets) pageSize(maxResults *int32) int { return pageSize(f.PageSize, maxResults) }

// pageSize is a fake's page size: its own (2 when unset), or the caller's
// MaxResults when smaller.
func pageSize(own int, maxResults *int32) int {
	size := own
	if size <= 0 {
		size = 2
	}
	if m := int(aws.ToInt32(maxResults)); m > 0 {
		size = min(size, m)
	}
	return size
}

// DescribeFleets lists every fleet; FleetIds and Filters are not modelled.
func (f *Fleets) DescribeFleets(_ context.Context, in *ec2.DescribeFleetsInput, _ ...func(*ec2.Options)) (*ec2.DescribeFleetsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.FleetIds) > 0 || len(in.Filters) > 0 || aws.ToBool(in.DryRun) {
		panic(fmt.Sprintf("fake.Fleets.DescribeFleets: FleetIds, Filters and DryRun are not modelled, got %+v", in))
	}
	if err := f.enter("DescribeFleets"); err != nil {
		return nil, err
	}
	items, next, err := page(f.EC2Fleets, in.NextToken, f.pageSize(in.MaxResults))
	if err != nil {
		return nil, err
	}
	return &ec2.DescribeFleetsOutput{Fleets: items, NextToken: next}, nil
}

// DescribeSpotFleetRequests lists every Spot Fleet request;
// SpotFleetRequestIds is not modelled.
func (f *Fleets) DescribeSpotFleetRequests(_ context.Context, in *ec2.DescribeSpotFleetRequestsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSpotFleetRequestsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.SpotFleetRequestIds) > 0 || aws.ToBool(in.DryRun) {
		panic(fmt.Sprintf("fake.Fleets.DescribeSpotFleetRequests: SpotFleetRequestIds and DryRun are not modelled, got %+v", in))
	}
	if err := f.enter("DescribeSpotFleetRequests"); err != nil {
		return nil, err
	}
	items, next, err := page(f.SpotFleets, in.NextToken, f.pageSize(in.MaxResults))
	if err != nil {
		return nil, err
	}
	return &ec2.DescribeSpotFleetRequestsOutput{SpotFleetRequestConfigs: items, NextToken: next}, nil
}

// DescribeSpotInstanceRequests lists the Spot Instance requests, filtered on
// "state" (the only filter modelled), then paged.
func (f *Fleets) DescribeSpotInstanceRequests(_ context.Context, in *ec2.DescribeSpotInstanceRequestsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSpotInstanceRequestsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.SpotInstanceRequestIds) > 0 || aws.ToBool(in.DryRun) {
		panic(fmt.Sprintf("fake.Fleets.DescribeSpotInstanceRequests: SpotInstanceRequestIds and DryRun are not modelled, got %+v", in))
	}
	var states []string
	for _, flt := range in.Filters {
		if aws.ToString(flt.Name) != "state" {
			panic("fake.Fleets.DescribeSpotInstanceRequests: only the state filter is modelled, got " + aws.ToString(flt.Name))
		}
		states = append(states, flt.Values...)
	}
	if err := f.enter("DescribeSpotInstanceRequests"); err != nil {
		return nil, err
	}
	var matching []types.SpotInstanceRequest
	for _, r := range f.SpotRequests {
		if len(in.Filters) == 0 || slices.Contains(states, string(r.State)) {
			matching = append(matching, r)
		}
	}
	items, next, err := page(matching, in.NextToken, f.pageSize(in.MaxResults))
	if err != nil {
		return nil, err
	}
	return &ec2.DescribeSpotInstanceRequestsOutput{SpotInstanceRequests: items, NextToken: next}, nil
}
