package fake_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
)

// The fake's report lifecycle: pending, then available (or error), entries
// without the most recent uses, narrowed to the accounts asked for, gone
// after 30 days.
func TestImageUsageLifecycle(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clk := fake.NewClock(start)
	f := &fake.ImageUsage{Clock: clk, Images: map[string]bool{"ami-1": true, "ami-2": true}, Broken: map[string]bool{"ami-2": true},
		Uses: []fake.ImageUse{
			{Account: "111111111111", ImageID: "ami-1", ResourceType: "ec2:Instance", Count: 1, Since: start.Add(-48 * time.Hour)},
			{Account: "111111111111", ImageID: "ami-1", ResourceType: "ec2:Instance", Count: 5, Since: start.Add(-time.Hour)},            // too recent
			{Account: "222222222222", ImageID: "ami-1", ResourceType: "ec2:LaunchTemplate", Count: 1, Since: start.Add(-48 * time.Hour)}, // too recent for a template
			{Account: "222222222222", ImageID: "ami-1", ResourceType: "ec2:Instance", Count: 3, Since: start.AddDate(0, -1, 0)},
		}}
	both := []types.ImageUsageResourceTypeRequest{{ResourceType: aws.String("ec2:Instance")}, {ResourceType: aws.String("ec2:LaunchTemplate")}}
	create := func(image string, accounts ...string) string {
		t.Helper()
		out, err := f.CreateImageUsageReport(ctx, &ec2.CreateImageUsageReportInput{ImageId: aws.String(image), AccountIds: accounts, ResourceTypes: both})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.ReportId)
	}
	all, narrow, broken := create("ami-1"), create("ami-1", "111111111111"), create("ami-2")
	if _, err := f.CreateImageUsageReport(ctx, &ec2.CreateImageUsageReportInput{ImageId: aws.String("ami-9"), ResourceTypes: both}); err == nil {
		t.Error("a report of an unknown AMI")
	}
	entries := func(report string) map[string]int64 {
		t.Helper()
		out, err := f.DescribeImageUsageReportEntries(ctx, &ec2.DescribeImageUsageReportEntriesInput{ReportIds: []string{report}, MaxResults: aws.Int32(100)})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int64{}
		for _, e := range out.ImageUsageReportEntries {
			m[aws.ToString(e.AccountId)+" "+aws.ToString(e.ResourceType)] = aws.ToInt64(e.UsageCount)
		}
		return m
	}
	if n := len(entries(all)); n != 0 {
		t.Errorf("a pending report has %d entries", n)
	}
	clk.Advance(time.Hour)
	states := map[string]string{}
	for _, r := range f.Reports() {
		states[aws.ToString(r.ReportId)] = aws.ToString(r.State)
	}
	if states[all] != "available" || states[narrow] != "available" || states[broken] != "error" {
		t.Errorf("states %v", states)
	}
	if got := entries(all); len(got) != 2 || got["111111111111 ec2:Instance"] != 1 || got["222222222222 ec2:Instance"] != 3 {
		t.Errorf("all accounts: %v", got)
	}
	if got := entries(narrow); len(got) != 1 || got["111111111111 ec2:Instance"] != 1 {
		t.Errorf("narrowed: %v", got)
	}
	clk.Advance(30 * 24 * time.Hour)
	if n := len(f.Reports()); n != 0 {
		t.Errorf("%d reports after 30 days", n)
	}
}
