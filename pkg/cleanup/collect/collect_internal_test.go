package collect

// Unit tests for the pure helpers, and for what moto cannot produce: EC2's
// newer image fields and Recycle Bin rules.

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/rbin"
	rbtypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func TestAMIIDs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"ami-0123456789abcdef0", []string{"ami-0123456789abcdef0"}},
		{"ami-12345678", []string{"ami-12345678"}},
		{"ami-0123456789abcdef0,ami-12345678,ami-0123456789abcdef0", []string{"ami-0123456789abcdef0", "ami-12345678"}},
		{`{"x86":"ami-0123456789abcdef0"}`, []string{"ami-0123456789abcdef0"}},
		{"ami-1234567", nil},             // too short
		{"ami-0123456789abcdef01", nil},  // too long
		{"ami-0123456789ABCDEF0", nil},   // AMI IDs are lower case
		{"myami-12345678", nil},          // part of a word
		{"resolve:ssm:/golden/web", nil}, // an alias, not an ID
		{"no AMI in here", nil},
	}
	for _, tt := range tests {
		if got := amiIDs(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("amiIDs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitSelectorAndMatch(t *testing.T) {
	arn := "arn:aws:ssm:us-east-1:111122223333:parameter/golden/web"
	for in, want := range map[string][2]string{
		"/golden/web":   {"/golden/web", ""},
		"/golden/web:3": {"/golden/web", ":3"},
		"golden:prod":   {"golden", ":prod"},
		arn:             {arn, ""},
		arn + ":3":      {arn, ":3"},
	} {
		if b, s := splitSelector(in); b != want[0] || s != want[1] {
			t.Errorf("splitSelector(%q) = %q %q, want %q %q", in, b, s, want[0], want[1])
		}
	}
	ps := []ssmtypes.Parameter{
		{Name: aws.String("/golden/web"), ARN: aws.String(arn), Value: aws.String("latest")},
		{Name: aws.String("/golden/web"), ARN: aws.String(arn), Selector: aws.String(":3"), Value: aws.String("v3")},
	}
	for req, want := range map[string]string{"/golden/web": "latest", "/golden/web:3": "v3", arn: "latest", arn + ":3": "v3", "/golden/web:7": "latest"} {
		p, ok := match(req, ps)
		if !ok || aws.ToString(p.Value) != want {
			t.Errorf("match(%q) = %q %v, want %q", req, aws.ToString(p.Value), ok, want)
		}
	}
	if _, ok := match("/other", ps); ok {
		t.Error("match(/other) found a parameter")
	}
}

func TestToImage(t *testing.T) {
	img := types.Image{
		ImageId: aws.String("ami-0123456789abcdef0"), Name: aws.String("web-42"), OwnerId: aws.String("123456789012"),
		State: types.ImageStateDisabled, Public: aws.Bool(true),
		CreationDate:             aws.String("2024-03-01T10:20:30.000Z"),
		LastLaunchedTime:         aws.String("2025-01-02T03:04:05Z"),
		DeprecationTime:          aws.String("2026-01-01T00:00:00.000Z"),
		DeregistrationProtection: aws.String("disabled after 2025-06-01T00:00:00.000Z"),
		Tags:                     []types.Tag{{Key: aws.String("team"), Value: aws.String("web")}},
		BlockDeviceMappings: []types.BlockDeviceMapping{
			{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-1"), VolumeSize: aws.Int32(8)}},
			{DeviceName: aws.String("/dev/xvdb"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-2"), VolumeSize: aws.Int32(100)}},
			{DeviceName: aws.String("/dev/xvdc"), VirtualName: aws.String("ephemeral0")},                 // no Ebs: no panic
			{DeviceName: aws.String("/dev/xvdd"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(20)}}, // empty volume
		},
	}
	got, err := toImage(img)
	if err != nil {
		t.Fatal(err)
	}
	want := cleanup.Image{
		ID: "ami-0123456789abcdef0", Name: "web-42", OwnerID: "123456789012", State: "disabled",
		CreationDate:             time.Date(2024, 3, 1, 10, 20, 30, 0, time.UTC),
		LastLaunched:             time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		DeprecationTime:          time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		DeregistrationProtection: "disabled after 2025-06-01T00:00:00.000Z",
		Public:                   true,
		Tags:                     map[string]string{"team": "web"},
		SnapshotIDs:              []string{"snap-1", "snap-2"},
		SizeGiB:                  128,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("toImage:\n got  %+v\n want %+v", got, want)
	}

	img.LastLaunchedTime = aws.String("yesterday")
	if _, err := toImage(img); err == nil || !strings.Contains(err.Error(), "LastLaunchedTime") {
		t.Errorf("unreadable date: err = %v, want one naming LastLaunchedTime", err)
	}
}

// TestUnreadableDateFailsClosed: an image whose dates cannot be read makes the
// inventory incomplete (it could look old, or never launched).
func TestUnreadableDateFailsClosed(t *testing.T) {
	s := &sweep{c: &Collector{EC2: imagesOnly{types.Image{ImageId: aws.String("ami-12345678"), CreationDate: aws.String("03/01/2024")}}},
		inv: &cleanup.Inventory{References: map[string][]cleanup.Reference{}}}
	s.readImages(context.Background())
	if len(s.inv.Incomplete) != 1 || !strings.HasPrefix(s.inv.Incomplete[0], "images: ami-12345678 CreationDate") {
		t.Errorf("Incomplete = %q", s.inv.Incomplete)
	}
}

// rulesFake is a paging Recycle Bin.
type rulesFake struct {
	pages map[rbtypes.ResourceType][][]rbtypes.RuleSummary
	rules map[string]*rbin.GetRuleOutput
	err   map[rbtypes.ResourceType]error
	calls int
}

func (f *rulesFake) ListRules(_ context.Context, in *rbin.ListRulesInput, _ ...func(*rbin.Options)) (*rbin.ListRulesOutput, error) {
	f.calls++
	if err := f.err[in.ResourceType]; err != nil {
		return nil, err
	}
	if aws.ToInt32(in.MaxResults) < 1 || aws.ToInt32(in.MaxResults) > 100 {
		panic("ListRules MaxResults out of range")
	}
	i, _ := strconv.Atoi(aws.ToString(in.NextToken))
	pages := f.pages[in.ResourceType]
	if i >= len(pages) {
		return &rbin.ListRulesOutput{}, nil
	}
	out := &rbin.ListRulesOutput{Rules: pages[i]}
	if i+1 < len(pages) {
		out.NextToken = aws.String(strconv.Itoa(i + 1))
	}
	return out, nil
}

// GetRule answers from rules, by identifier: a rule not listed there is a
// plain region-level rule, available.
func (f *rulesFake) GetRule(_ context.Context, in *rbin.GetRuleInput, _ ...func(*rbin.Options)) (*rbin.GetRuleOutput, error) {
	f.calls++
	if r, ok := f.rules[aws.ToString(in.Identifier)]; ok {
		return r, nil
	}
	return &rbin.GetRuleOutput{Identifier: in.Identifier, Status: rbtypes.RuleStatusAvailable}, nil
}

func rule(days int32, unit rbtypes.RetentionPeriodUnit) rbtypes.RuleSummary {
	ruleN++
	return rbtypes.RuleSummary{Identifier: aws.String(fmt.Sprintf("rule-%d", ruleN)),
		RetentionPeriod: &rbtypes.RetentionPeriod{RetentionPeriodValue: aws.Int32(days), RetentionPeriodUnit: unit}}
}

var ruleN int

func TestRecycleBin(t *testing.T) {
	f := &rulesFake{pages: map[rbtypes.ResourceType][][]rbtypes.RuleSummary{
		rbtypes.ResourceTypeEc2Image:    {{rule(7, rbtypes.RetentionPeriodUnitDays)}, {rule(30, rbtypes.RetentionPeriodUnitDays), {}}},
		rbtypes.ResourceTypeEbsSnapshot: {{rule(14, rbtypes.RetentionPeriodUnitDays), rule(99, "WEEKS")}},
	}}
	s := &sweep{c: &Collector{RecycleBin: f}, inv: &cleanup.Inventory{}}
	s.readRecycleBin(context.Background())
	if want := (cleanup.RecycleBin{ImageRetentionDays: 30, SnapshotRetentionDays: 14}); s.inv.RecycleBin != want {
		t.Errorf("RecycleBin = %+v, want %+v", s.inv.RecycleBin, want)
	}
	if f.calls != 3+3 {
		t.Errorf("%d calls, want 6 (two pages of image rules, one of snapshot rules, and GetRule for each of the 3 rules in days)", f.calls)
	}

	// A tag-level rule, or one with exclusions, keeps only some AMIs: it
	// promises nothing for the report ("recoverable until").
	tagged, excluding := rule(60, rbtypes.RetentionPeriodUnitDays), rule(90, rbtypes.RetentionPeriodUnitDays)
	f = &rulesFake{
		pages: map[rbtypes.ResourceType][][]rbtypes.RuleSummary{
			rbtypes.ResourceTypeEc2Image:    {{tagged, excluding, rule(7, rbtypes.RetentionPeriodUnitDays)}},
			rbtypes.ResourceTypeEbsSnapshot: {{tagged}},
		},
		rules: map[string]*rbin.GetRuleOutput{
			aws.ToString(tagged.Identifier):    {Status: rbtypes.RuleStatusAvailable, ResourceTags: []rbtypes.ResourceTag{{ResourceTagKey: aws.String("keep")}}},
			aws.ToString(excluding.Identifier): {Status: rbtypes.RuleStatusAvailable, ExcludeResourceTags: []rbtypes.ResourceTag{{ResourceTagKey: aws.String("scratch")}}},
		},
	}
	s = &sweep{c: &Collector{RecycleBin: f}, inv: &cleanup.Inventory{}}
	s.readRecycleBin(context.Background())
	if want := (cleanup.RecycleBin{ImageRetentionDays: 7}); s.inv.RecycleBin != want {
		t.Errorf("with tag-level rules: RecycleBin = %+v, want %+v", s.inv.RecycleBin, want)
	}

	f = &rulesFake{err: map[rbtypes.ResourceType]error{rbtypes.ResourceTypeEc2Image: &smithy.GenericAPIError{Code: "AccessDeniedException"}}}
	s = &sweep{c: &Collector{RecycleBin: f}, inv: &cleanup.Inventory{}}
	s.readRecycleBin(context.Background())
	if len(s.inv.Problems) != 1 || len(s.inv.Incomplete) != 0 || !strings.Contains(s.inv.Problems[0], "AccessDeniedException") {
		t.Errorf("Problems %q, Incomplete %q; want one problem and a complete inventory", s.inv.Problems, s.inv.Incomplete)
	}
}

// TestNoClients: a Collector missing a client cannot prove anything unused.
func TestNoClients(t *testing.T) {
	inv := (&Collector{}).Collect(context.Background(), "123456789012", "us-east-1", policy.InUse{})
	want := []string{
		"auto scaling groups: no Auto Scaling client configured",
		"ec2 fleets: no EC2 client configured",
		"images: no EC2 client configured",
		"instances: no EC2 client configured",
		"launch configurations: no Auto Scaling client configured",
		"launch templates: no EC2 client configured",
		"snapshots: no EC2 client configured",
		"spot fleet requests: no EC2 client configured",
		"spot instance requests: no EC2 client configured",
		"ssm parameters: no SSM client configured",
	}
	if !reflect.DeepEqual(inv.Incomplete, want) {
		t.Errorf("Incomplete:\n got  %q\n want %q", inv.Incomplete, want)
	}
}

// imagesOnly answers DescribeImages with fixed images; other calls panic.
type imagesOnly []types.Image

func (f imagesOnly) DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	return &ec2.DescribeImagesOutput{Images: f}, nil
}
func (imagesOnly) DescribeSnapshots(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	panic("not modelled")
}
func (imagesOnly) DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	panic("not modelled")
}
func (imagesOnly) DescribeLaunchTemplates(context.Context, *ec2.DescribeLaunchTemplatesInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error) {
	panic("not modelled")
}
func (imagesOnly) DescribeLaunchTemplateVersions(context.Context, *ec2.DescribeLaunchTemplateVersionsInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error) {
	panic("not modelled")
}
func (imagesOnly) DescribeImageAttribute(context.Context, *ec2.DescribeImageAttributeInput, ...func(*ec2.Options)) (*ec2.DescribeImageAttributeOutput, error) {
	panic("not modelled")
}
func (imagesOnly) DescribeFleets(context.Context, *ec2.DescribeFleetsInput, ...func(*ec2.Options)) (*ec2.DescribeFleetsOutput, error) {
	panic("not modelled")
}
func (imagesOnly) DescribeSpotFleetRequests(context.Context, *ec2.DescribeSpotFleetRequestsInput, ...func(*ec2.Options)) (*ec2.DescribeSpotFleetRequestsOutput, error) {
	panic("not modelled")
}
func (imagesOnly) DescribeSpotInstanceRequests(context.Context, *ec2.DescribeSpotInstanceRequestsInput, ...func(*ec2.Options)) (*ec2.DescribeSpotInstanceRequestsOutput, error) {
	panic("not modelled")
}
