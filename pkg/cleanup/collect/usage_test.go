package collect_test

// EC2's image usage reports (Collector.ReadUsage, RequestUsageReport).
// moto does not implement the three calls (HTTP 500), so every test here
// runs against the stateful fake.ImageUsage.

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
)

var _ awsapi.ImageUsageEC2 = (*ec2.Client)(nil)

const consumer = "333333333333"

var usageStart = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// usageWorld is a fake with three AMIs; consumer runs two instances of
// the first, launched long ago.
func usageWorld() (*fake.ImageUsage, *fake.Clock) {
	clk := fake.NewClock(usageStart)
	f := &fake.ImageUsage{Clock: clk, Images: map[string]bool{ami(1): true, ami(2): true, ami(3): true}, PageSize: 1,
		Uses: []fake.ImageUse{{Account: consumer, ImageID: ami(1), ResourceType: "ec2:Instance", Count: 2, Since: usageStart.AddDate(0, -2, 0)}}}
	return f, clk
}

func usageCollector(f awsapi.ImageUsageEC2, clk *fake.Clock) *collect.Collector {
	return &collect.Collector{Usage: f, Clock: clk}
}

func TestRequestUsageReport(t *testing.T) {
	f, clk := usageWorld()
	c := usageCollector(f, clk)
	ctx := context.Background()
	id, err := c.RequestUsageReport(ctx, ami(1), clk.Now())
	if err != nil || id == "" {
		t.Fatalf("RequestUsageReport: %q %v", id, err)
	}
	again, err := c.RequestUsageReport(ctx, ami(1), clk.Now())
	if err != nil || again != id {
		t.Errorf("a second request the same day is not the same report: %q %v, want %q", again, err, id)
	}
	in := f.Created[0]
	want := []types.ImageUsageResourceTypeRequest{
		{ResourceType: aws.String("ec2:Instance")},
		{ResourceType: aws.String("ec2:LaunchTemplate"), ResourceTypeOptions: []types.ImageUsageResourceTypeOptionRequest{
			{OptionName: aws.String("version-depth"), OptionValues: []string{"10000"}}}},
	}
	if len(in.AccountIds) != 0 || !reflect.DeepEqual(in.ResourceTypes, want) || aws.ToString(in.ClientToken) != "ami-housekeeper-"+ami(1)+"-20261101" {
		t.Errorf("request %+v", in)
	}
	f.Errors = map[string][]error{"CreateImageUsageReport": {fake.APIError("UnauthorizedOperation")}}
	if _, err := c.RequestUsageReport(ctx, ami(2), clk.Now()); err == nil || !strings.Contains(err.Error(), "requesting a usage report of "+ami(2)) {
		t.Errorf("a refused request: %v", err)
	}
	if _, err := (&collect.Collector{}).RequestUsageReport(ctx, ami(2), clk.Now()); err == nil {
		t.Error("no client, no error")
	}
}

// The collector reads the entries of the report that counts, every page,
// and of no other; what it cannot read is an error the planner keeps on.
func TestReadUsage(t *testing.T) {
	ctx := context.Background()
	f, clk := usageWorld()
	c := usageCollector(f, clk)
	// ami(1): a narrow report (someone else's) made last, and one of ours.
	ours, err := c.RequestUsageReport(ctx, ami(1), clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	narrow, err := f.CreateImageUsageReport(ctx, &ec2.CreateImageUsageReportInput{ImageId: aws.String(ami(1)), AccountIds: []string{"444444444444"},
		ResourceTypes: []types.ImageUsageResourceTypeRequest{{ResourceType: aws.String("ec2:Instance")}, {ResourceType: aws.String("ec2:LaunchTemplate")}}})
	if err != nil {
		t.Fatal(err)
	}
	// ami(2): still pending; ami(3): no report.
	clk.Advance(2 * time.Hour)
	pending, err := c.RequestUsageReport(ctx, ami(2), clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	inv := &cleanup.Inventory{}
	at := clk.Now()
	queries := []cleanup.UsageQuery{{ImageID: ami(1)}, {ImageID: ami(2)}, {ImageID: ami(3)}}
	c.ReadUsage(ctx, inv, at, queries)

	u1 := inv.Usage[ami(1)]
	if u1.Error != "" || u1.Report != ours || len(u1.Reports) != 2 {
		t.Fatalf("ami 1: %+v (ours %s, narrow %s)", u1, ours, aws.ToString(narrow.ReportId))
	}
	if want := []cleanup.UsageEntry{{ReportID: ours, ImageID: ami(1), AccountID: consumer, ResourceType: "ec2:Instance", Count: 2}}; !reflect.DeepEqual(u1.Entries, want) {
		t.Errorf("ami 1 entries %+v, want %+v", u1.Entries, want)
	}
	if u2 := inv.Usage[ami(2)]; u2.Error != "" || u2.Report != "" || len(u2.Reports) != 1 || u2.Reports[0].ID != pending || u2.Reports[0].State != "pending" {
		t.Errorf("ami 2: %+v", u2)
	}
	if u3 := inv.Usage[ami(3)]; u3.Error != "" || u3.Report != "" || len(u3.Reports) != 0 {
		t.Errorf("ami 3: %+v", u3)
	}
	if n := f.Calls["DescribeImageUsageReportEntries"]; n != 1 {
		t.Errorf("%d entry reads, want 1 (ours only; one entry, one page)", n)
	}

	// A due mark asks for a report made after its date: ours is too old,
	// so no entries are read for it.
	inv = &cleanup.Inventory{}
	c.ReadUsage(ctx, inv, at, []cleanup.UsageQuery{{ImageID: ami(1), NotBefore: usageStart.Add(time.Hour)}})
	if u := inv.Usage[ami(1)]; u.Report != "" || u.Error != "" {
		t.Errorf("a report older than NotBefore was read: %+v", u)
	}

	// Errors: listing, then entries.
	for _, op := range []string{"DescribeImageUsageReports", "DescribeImageUsageReportEntries"} {
		f.Errors = map[string][]error{op: {fake.APIError("RequestLimitExceeded")}}
		inv = &cleanup.Inventory{}
		c.ReadUsage(ctx, inv, at, queries[:1])
		if u := inv.Usage[ami(1)]; !strings.Contains(u.Error, "RequestLimitExceeded") || u.Report != "" || len(u.Entries) != 0 {
			t.Errorf("%s failing: %+v", op, u)
		}
	}
	// No client: every AMI asked about carries the error.
	inv = &cleanup.Inventory{}
	(&collect.Collector{}).ReadUsage(ctx, inv, at, queries)
	for _, q := range queries {
		if u := inv.Usage[q.ImageID]; !strings.Contains(u.Error, "no EC2 image usage client") {
			t.Errorf("%s without a client: %+v", q.ImageID, u)
		}
	}
}

// A report's launch template depth and accounts come back as EC2 states
// them, so the planner can refuse a narrow or shallow one.
func TestReadUsageReportShape(t *testing.T) {
	ctx := context.Background()
	f, clk := usageWorld()
	if _, err := f.CreateImageUsageReport(ctx, &ec2.CreateImageUsageReportInput{ImageId: aws.String(ami(3)), AccountIds: []string{consumer},
		ResourceTypes: []types.ImageUsageResourceTypeRequest{{ResourceType: aws.String("ec2:LaunchTemplate"), ResourceTypeOptions: []types.ImageUsageResourceTypeOptionRequest{
			{OptionName: aws.String("version-depth"), OptionValues: []string{"20"}}}}}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	inv := &cleanup.Inventory{}
	usageCollector(f, clk).ReadUsage(ctx, inv, clk.Now(), []cleanup.UsageQuery{{ImageID: ami(3)}})
	u := inv.Usage[ami(3)]
	if len(u.Reports) != 1 {
		t.Fatalf("%+v", u)
	}
	r := u.Reports[0]
	if r.State != "available" || !reflect.DeepEqual(r.AccountIDs, []string{consumer}) || !reflect.DeepEqual(r.ResourceTypes, []string{"ec2:LaunchTemplate"}) ||
		r.VersionDepth != 20 || !r.Created.Equal(usageStart) || !r.Expires.Equal(usageStart.AddDate(0, 0, 30)) || u.Report != "" {
		t.Errorf("report %+v (read %q)", r, u.Report)
	}
}
