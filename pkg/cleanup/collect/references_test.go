package collect_test

// The second opinion, Collector.ImageReferences. moto does not implement
// DescribeImageReferences (it answers HTTP 500), so the behaviour is tested
// against the stateful fake.ImageReferences, and moto only shows that the
// 500 fails the call closed (TestImageReferencesOnMotoFailsClosed).

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/time/rate"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
)

// The real client satisfies the narrow interfaces the second opinion needs.
var (
	_ awsapi.ImageReferencesEC2 = (*ec2.Client)(nil)
	_ awsapi.RecheckEC2         = (*ec2.Client)(nil)
)

func ami(i int) string { return fmt.Sprintf("ami-%017x", i) }

// refCollector is a Collector asking f, unpaced (simulated clock).
func refCollector(f awsapi.ImageReferencesEC2) *collect.Collector {
	return &collect.Collector{References: f, Clock: fake.NewClock(time.Unix(0, 0))}
}

func TestImageReferences(t *testing.T) {
	ltVersions := func(n int, image string, at int) []string {
		vs := make([]string, n)
		for i := range vs {
			vs[i] = ami(999)
		}
		vs[at] = image
		return vs
	}
	tests := []struct {
		name  string
		f     *fake.ImageReferences
		ids   []string
		want  map[string][]cleanup.Reference
		calls int // DescribeImageReferences calls
	}{
		{
			name:  "nothing uses them",
			f:     &fake.ImageReferences{Instances: map[string]fake.RefInstance{"i-1": {ImageID: ami(9), State: "running"}}},
			ids:   []string{ami(1), ami(2)},
			want:  map[string][]cleanup.Reference{},
			calls: 1,
		},
		{
			name: "every resource type, mapped from its ARN",
			f: &fake.ImageReferences{
				Instances:        map[string]fake.RefInstance{"i-0abc": {ImageID: ami(1), State: "stopped"}},
				LaunchTemplates:  map[string][]string{"lt-0abc": {ami(1)}},
				Parameters:       map[string]string{"/golden/web": ami(1), "flat-name": ami(1)},
				ImageRecipes:     map[string]string{"web/1.2.3": ami(1)},
				ContainerRecipes: map[string]string{"svc/2.0.0": ami(1)},
				PageSize:         100,
			},
			ids: []string{ami(1)},
			want: map[string][]cleanup.Reference{ami(1): {
				{Kind: cleanup.RefContainerRecipe, ID: "svc", Detail: "version 2.0.0"},
				{Kind: cleanup.RefImageRecipe, ID: "web", Detail: "version 1.2.3"},
				{Kind: cleanup.RefInstance, ID: "i-0abc"},
				{Kind: cleanup.RefLaunchTemplate, ID: "lt-0abc"},
				{Kind: cleanup.RefSSMParameter, ID: "/golden/web"},
				{Kind: cleanup.RefSSMParameter, ID: "flat-name"},
			}},
			calls: 1,
		},
		{
			// EC2's default is every state, terminated included.
			name: "terminated instances are not references",
			f: &fake.ImageReferences{Instances: map[string]fake.RefInstance{
				"i-pending": {ImageID: ami(1), State: "pending"}, "i-running": {ImageID: ami(1), State: "running"},
				"i-shutting": {ImageID: ami(1), State: "shutting-down"}, "i-stopping": {ImageID: ami(1), State: "stopping"},
				"i-stopped": {ImageID: ami(1), State: "stopped"}, "i-gone": {ImageID: ami(1), State: "terminated"},
			}, PageSize: 100},
			ids: []string{ami(1)},
			want: map[string][]cleanup.Reference{ami(1): {
				{Kind: cleanup.RefInstance, ID: "i-pending"},
				{Kind: cleanup.RefInstance, ID: "i-running"},
				{Kind: cleanup.RefInstance, ID: "i-shutting"},
				{Kind: cleanup.RefInstance, ID: "i-stopped"},
				{Kind: cleanup.RefInstance, ID: "i-stopping"},
			}},
			calls: 1,
		},
		{
			// EC2's default depth is 10: version 1 of 12 would be missed.
			name:  "old launch template versions are checked",
			f:     &fake.ImageReferences{LaunchTemplates: map[string][]string{"lt-old": ltVersions(12, ami(1), 0)}},
			ids:   []string{ami(1)},
			want:  map[string][]cleanup.Reference{ami(1): {{Kind: cleanup.RefLaunchTemplate, ID: "lt-old"}}},
			calls: 1,
		},
		{
			name: "every page is read",
			f: &fake.ImageReferences{PageSize: 2, Instances: map[string]fake.RefInstance{
				"i-1": {ImageID: ami(1), State: "running"}, "i-2": {ImageID: ami(1), State: "running"},
				"i-3": {ImageID: ami(2), State: "running"}, "i-4": {ImageID: ami(2), State: "running"},
				"i-5": {ImageID: ami(2), State: "running"},
			}},
			ids: []string{ami(2), ami(1)},
			want: map[string][]cleanup.Reference{
				ami(1): {{Kind: cleanup.RefInstance, ID: "i-1"}, {Kind: cleanup.RefInstance, ID: "i-2"}},
				ami(2): {{Kind: cleanup.RefInstance, ID: "i-3"}, {Kind: cleanup.RefInstance, ID: "i-4"}, {Kind: cleanup.RefInstance, ID: "i-5"}},
			},
			calls: 3, // 5 references, 2 a page
		},
		{
			name: "batches of ten, each AMI asked once",
			f: &fake.ImageReferences{Instances: map[string]fake.RefInstance{
				"i-a": {ImageID: ami(0), State: "running"}, "i-b": {ImageID: ami(22), State: "running"},
			}},
			ids: func() []string {
				var ids []string
				for i := range 23 {
					ids = append(ids, ami(i))
				}
				return append(ids, ami(5), ami(22), "") // repeats and an empty ID
			}(),
			want: map[string][]cleanup.Reference{
				ami(0):  {{Kind: cleanup.RefInstance, ID: "i-a"}},
				ami(22): {{Kind: cleanup.RefInstance, ID: "i-b"}},
			},
			calls: 3, // 10 + 10 + 3
		},
		{
			name:  "no AMIs, no call",
			f:     &fake.ImageReferences{},
			ids:   nil,
			want:  map[string][]cleanup.Reference{},
			calls: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := refCollector(tc.f).ImageReferences(context.Background(), tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("references:\n got  %v\n want %v", got, tc.want)
			}
			if len(tc.f.Requests) != tc.calls {
				t.Errorf("%d calls, want %d", len(tc.f.Requests), tc.calls)
			}
			var asked []string
			for _, r := range tc.f.Requests {
				if len(r.ImageIds) > collect.ReferencesBatch {
					t.Errorf("%d ImageIds in one call", len(r.ImageIds))
				}
				if r.NextToken == nil {
					asked = append(asked, r.ImageIds...)
				}
			}
			want := slices.DeleteFunc(slices.Clone(tc.ids), func(s string) bool { return s == "" })
			slices.Sort(want)
			if want = slices.Compact(want); !slices.Equal(asked, want) {
				t.Errorf("AMIs asked %v, want each of %v once", asked, want)
			}
		})
	}
}

// TestImageReferencesRequest pins what is asked: the five resource types,
// the live instance states, the deepest launch template check.
func TestImageReferencesRequest(t *testing.T) {
	f := &fake.ImageReferences{}
	if _, err := refCollector(f).ImageReferences(context.Background(), []string{ami(1)}); err != nil {
		t.Fatal(err)
	}
	in := f.Requests[0]
	if aws.ToBool(in.IncludeAllResourceTypes) {
		t.Error("IncludeAllResourceTypes set: types the IAM policy does not cover would fail every check")
	}
	want := []types.ResourceTypeRequest{
		{ResourceType: "ec2:Instance", ResourceTypeOptions: []types.ResourceTypeOption{{OptionName: "state-name", OptionValues: []string{"pending", "running", "shutting-down", "stopping", "stopped"}}}},
		{ResourceType: "ec2:LaunchTemplate", ResourceTypeOptions: []types.ResourceTypeOption{{OptionName: "version-depth", OptionValues: []string{"10000"}}}},
		{ResourceType: "ssm:Parameter"},
		{ResourceType: "imagebuilder:ImageRecipe"},
		{ResourceType: "imagebuilder:ContainerRecipe"},
	}
	if !reflect.DeepEqual(in.ResourceTypes, want) {
		t.Errorf("ResourceTypes:\n got  %+v\n want %+v", in.ResourceTypes, want)
	}
}

// TestImageReferencesFailsClosed: any error, on any page of any batch, is
// returned with no references at all.
func TestImageReferencesFailsClosed(t *testing.T) {
	throttled := fake.APIError("RequestLimitExceeded")
	many := func(n int) []string {
		var ids []string
		for i := range n {
			ids = append(ids, ami(i))
		}
		return ids
	}
	tests := []struct {
		name string
		f    *fake.ImageReferences
		ids  []string
		code string
	}{
		{"first call", &fake.ImageReferences{Errors: []error{throttled}}, many(1), "RequestLimitExceeded"},
		{"second page", &fake.ImageReferences{PageSize: 1, Errors: []error{nil, throttled}, Instances: map[string]fake.RefInstance{
			"i-1": {ImageID: ami(0), State: "running"}, "i-2": {ImageID: ami(0), State: "running"},
		}}, many(1), "RequestLimitExceeded"},
		{"second batch", &fake.ImageReferences{Errors: []error{nil, fake.APIError("UnauthorizedOperation")}}, many(11), "UnauthorizedOperation"},
		{"malformed AMI ID", &fake.ImageReferences{}, []string{"snap-0123"}, "InvalidAMIID.Malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := refCollector(tc.f).ImageReferences(context.Background(), tc.ids)
			if err == nil || awserr.Code(err) != tc.code {
				t.Fatalf("err = %v; want code %s", err, tc.code)
			}
			if got != nil {
				t.Errorf("references %v returned with the error; want none", got)
			}
		})
	}

	if _, err := (&collect.Collector{}).ImageReferences(context.Background(), many(1)); err == nil {
		t.Error("no References client: want an error, not an empty answer")
	}
}

// unattributed answers with a reference to an AMI it was not asked about.
type unattributed struct{}

func (unattributed) DescribeImageReferences(context.Context, *ec2.DescribeImageReferencesInput, ...func(*ec2.Options)) (*ec2.DescribeImageReferencesOutput, error) {
	return &ec2.DescribeImageReferencesOutput{ImageReferences: []types.ImageReference{
		{ImageId: aws.String(ami(77)), ResourceType: types.ImageReferenceResourceTypeEc2Instance, Arn: aws.String("arn:aws:ec2:us-east-1:123456789012:instance/i-1")},
	}}, nil
}

// TestImageReferencesUnattributed: a reference naming another AMI cannot be
// placed, so the whole answer is refused.
func TestImageReferencesUnattributed(t *testing.T) {
	if got, err := refCollector(unattributed{}).ImageReferences(context.Background(), []string{ami(1)}); err == nil {
		t.Fatalf("got %v; want an error", got)
	}
}

// odd answers with ARNs the mapping does not know.
type odd struct{}

func (odd) DescribeImageReferences(_ context.Context, in *ec2.DescribeImageReferencesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImageReferencesOutput, error) {
	img := aws.String(in.ImageIds[0])
	return &ec2.DescribeImageReferencesOutput{ImageReferences: []types.ImageReference{
		{ImageId: img, ResourceType: "ecs:TaskDefinition", Arn: aws.String("arn:aws:ecs:us-east-1:123456789012:task-definition/web:3")},
		{ImageId: img, ResourceType: types.ImageReferenceResourceTypeEc2Instance, Arn: aws.String("not an arn")},
		{ImageId: img, ResourceType: types.ImageReferenceResourceTypeEc2LaunchTemplate},
	}}, nil
}

// TestImageReferencesUnknownShapes: a reference of a type or ARN shape the
// mapping does not know still keeps its AMI, named as EC2 gave it.
func TestImageReferencesUnknownShapes(t *testing.T) {
	got, err := refCollector(odd{}).ImageReferences(context.Background(), []string{ami(1)})
	if err != nil {
		t.Fatal(err)
	}
	want := []cleanup.Reference{
		{Kind: "ec2:Instance", ID: "not an arn"},
		{Kind: "ec2:LaunchTemplate", ID: "(no ARN)"},
		{Kind: "ecs:TaskDefinition", ID: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3"},
	}
	if !reflect.DeepEqual(got[ami(1)], want) {
		t.Errorf("got  %v\nwant %v", got[ami(1)], want)
	}
}

// TestImageReferencesPaced: calls wait for the injected limiter on the
// injected clock, and concurrent callers share it.
func TestImageReferencesPaced(t *testing.T) {
	clk := fake.NewClock(time.Unix(0, 0))
	f := &fake.ImageReferences{}
	c := &collect.Collector{References: f, Clock: clk, ReferencesLimiter: rate.NewLimiter(2, 1)}
	var ids []string
	for i := range 50 {
		ids = append(ids, ami(i))
	}
	if _, err := c.ImageReferences(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	// 5 calls at 2 a second, burst 1: the first at once, then 0.5 s apart.
	if got, want := clk.Now().Sub(time.Unix(0, 0)), 2*time.Second; got != want {
		t.Errorf("5 calls took %v of simulated time, want %v", got, want)
	}

	// A context that ends while waiting: the error, and no answer.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := c.ImageReferences(ctx, ids[:1]); !errors.Is(err, context.Canceled) || got != nil {
		t.Errorf("cancelled: got %v, %v; want context.Canceled and nothing", got, err)
	}
}

// TestImageReferencesOnMotoFailsClosed (moto): moto has no
// DescribeImageReferences and answers HTTP 500; the check fails, so nothing
// would be deregistered behind moto. This is why the tests above use a fake.
func TestImageReferencesOnMotoFailsClosed(t *testing.T) {
	w := newWorld(t)
	c := &collect.Collector{References: w.ec2}
	got, err := c.ImageReferences(w.ctx, []string{ami(1)})
	if err == nil || got != nil {
		t.Fatalf("got %v, %v; want an error from moto and no references", got, err)
	}
	if !strings.Contains(err.Error(), "DescribeImageReferences") {
		t.Errorf("error %q does not name the call", err)
	}
}
