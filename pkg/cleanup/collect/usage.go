package collect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/time/rate"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
)

// EC2's image usage reports (retention.shared_usage: check): which other
// accounts use the AMIs the account shares. ReadUsage lists the reports of
// the AMIs the planner asks about and reads the entries of the one report
// per AMI that counts (cleanup.ChooseUsageReport); RequestUsageReport asks
// EC2 for a new one, the collector's only write: it creates a report
// resource, and changes nothing about the AMI.

const (
	// UsageReportsBatch is the most ImageIds one DescribeImageUsageReports
	// call accepts (0-200).
	UsageReportsBatch = 200
	// DefaultCreateUsageRate and DefaultCreateUsageBurst pace
	// CreateImageUsageReport at half of the bucket EC2 gives its other
	// mutating calls (50 burst, 5 a second; its own bucket is UNVERIFIED).
	DefaultCreateUsageRate  = 2.5
	DefaultCreateUsageBurst = 10
)

// usageClientToken makes a request idempotent for one AMI and day: a retry
// of the same run (or a second run that day) gets the same report.
func usageClientToken(imageID string, at time.Time) string {
	return "ami-housekeeper-" + imageID + "-" + at.UTC().Format("20060102")
}

// ReadUsage reads, into inv.Usage, the usage reports of the AMIs queries
// name: every report of each (DescribeImageUsageReports, UsageReportsBatch
// AMIs a call, every page), and all the entries of the report that counts
// at at (DescribeImageUsageReportEntries), paced like the reference check.
// A read that fails sets that AMI's Error, and the planner keeps it.
func (c *Collector) ReadUsage(ctx context.Context, inv *cleanup.Inventory, at time.Time, queries []cleanup.UsageQuery) {
	if len(queries) == 0 {
		return
	}
	if inv.Usage == nil {
		inv.Usage = map[string]cleanup.ImageUsage{}
	}
	if c.Usage == nil {
		for _, q := range queries {
			inv.Usage[q.ImageID] = cleanup.ImageUsage{Error: errNoClient("EC2 image usage").Error()}
		}
		return
	}
	ids := make([]string, 0, len(queries))
	for _, q := range queries {
		ids = append(ids, q.ImageID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	reports := map[string][]cleanup.UsageReport{}
	failed := map[string]string{}
	for batch := range slices.Chunk(ids, UsageReportsBatch) {
		if err := c.usageReportsOf(ctx, batch, reports); err != nil {
			for _, id := range batch {
				failed[id] = err.Error()
			}
		}
	}
	results := make([]cleanup.ImageUsage, len(queries))
	// Each call writes only its own slot of results.
	idx := make([]int, len(queries))
	for k := range idx {
		idx[k] = k
	}
	parallel(c.shareConcurrency(), idx, func(k int) {
		q := queries[k]
		u := cleanup.ImageUsage{Reports: reports[q.ImageID], Error: failed[q.ImageID]}
		if u.Error == "" {
			if use, _, _ := cleanup.ChooseUsageReport(u.Reports, q.ImageID, q.NotBefore, at); use != nil {
				entries, err := c.usageEntries(ctx, use.ID)
				if err != nil {
					u.Error = err.Error()
				} else {
					u.Report, u.Entries = use.ID, entries
				}
			}
		}
		results[k] = u
	})
	for k, q := range queries {
		inv.Usage[q.ImageID] = results[k]
	}
}

// usageReportsOf reads every report of a batch of AMIs into out, by the
// AMI each names.
func (c *Collector) usageReportsOf(ctx context.Context, batch []string, out map[string][]cleanup.UsageReport) error {
	p := ec2.NewDescribeImageUsageReportsPaginator(c.Usage, &ec2.DescribeImageUsageReportsInput{ImageIds: batch})
	for p.HasMorePages() {
		if err := c.paceUsage(ctx); err != nil {
			return err
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("usage reports of %s: %w", idList(batch), err)
		}
		for _, r := range page.ImageUsageReports {
			ur := usageReportOf(r)
			out[ur.ImageID] = append(out[ur.ImageID], ur)
		}
	}
	return nil
}

// usageEntries reads every entry of one report.
func (c *Collector) usageEntries(ctx context.Context, reportID string) ([]cleanup.UsageEntry, error) {
	p := ec2.NewDescribeImageUsageReportEntriesPaginator(c.Usage, &ec2.DescribeImageUsageReportEntriesInput{ReportIds: []string{reportID}})
	var out []cleanup.UsageEntry
	for p.HasMorePages() {
		if err := c.paceUsage(ctx); err != nil {
			return nil, err
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("entries of usage report %s: %w", reportID, err)
		}
		for _, e := range page.ImageUsageReportEntries {
			// An entry without a count still names a user: it counts as one.
			n := int64(1)
			if e.UsageCount != nil {
				n = *e.UsageCount
			}
			out = append(out, cleanup.UsageEntry{ReportID: aws.ToString(e.ReportId), ImageID: aws.ToString(e.ImageId),
				AccountID: aws.ToString(e.AccountId), ResourceType: aws.ToString(e.ResourceType), Count: n})
		}
	}
	return out, nil
}

// usageReportOf converts EC2's description of a report. A launch template
// version-depth that is not one number is read as 0 (not stated): such a
// report does not count.
func usageReportOf(r types.ImageUsageReport) cleanup.UsageReport {
	out := cleanup.UsageReport{
		ID: aws.ToString(r.ReportId), ImageID: aws.ToString(r.ImageId),
		State: aws.ToString(r.State), StateReason: aws.ToString(r.StateReason),
		Created: aws.ToTime(r.CreationTime), Expires: aws.ToTime(r.ExpirationTime),
		AccountIDs: slices.Clone(r.AccountIds),
	}
	for _, rt := range r.ResourceTypes {
		name := aws.ToString(rt.ResourceType)
		out.ResourceTypes = append(out.ResourceTypes, name)
		if name != cleanup.UsageLaunchTemplate {
			continue
		}
		for _, o := range rt.ResourceTypeOptions {
			if aws.ToString(o.OptionName) != "version-depth" {
				continue
			}
			if n, err := strconv.Atoi(firstOrEmpty(o.OptionValues)); err == nil && len(o.OptionValues) == 1 {
				out.VersionDepth = n
			}
		}
	}
	return out
}

func firstOrEmpty(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// RequestUsageReport asks EC2 for a usage report of one AMI that counts:
// all accounts, instances and every launch template version
// (cleanup.UsageVersionDepth). It returns the report's ID. The request is
// idempotent per AMI and UTC day (its client token), and paced.
func (c *Collector) RequestUsageReport(ctx context.Context, imageID string, at time.Time) (string, error) {
	if c.Usage == nil {
		return "", errNoClient("EC2 image usage")
	}
	c.createUsageOnce.Do(func() { c.createUsageLimiter = rate.NewLimiter(DefaultCreateUsageRate, DefaultCreateUsageBurst) })
	if err := c.pace(ctx, c.createUsageLimiter); err != nil {
		return "", err
	}
	out, err := c.Usage.CreateImageUsageReport(ctx, &ec2.CreateImageUsageReportInput{
		ImageId: aws.String(imageID),
		ResourceTypes: []types.ImageUsageResourceTypeRequest{
			{ResourceType: aws.String(cleanup.UsageInstance)},
			{ResourceType: aws.String(cleanup.UsageLaunchTemplate), ResourceTypeOptions: []types.ImageUsageResourceTypeOptionRequest{
				{OptionName: aws.String("version-depth"), OptionValues: []string{strconv.Itoa(cleanup.UsageVersionDepth)}}}},
		},
		ClientToken: aws.String(usageClientToken(imageID, at)),
	})
	if err != nil {
		return "", fmt.Errorf("requesting a usage report of %s: %w", imageID, err)
	}
	id := aws.ToString(out.ReportId)
	if id == "" {
		return "", errors.New("requesting a usage report of " + imageID + ": EC2 returned no report ID")
	}
	return id, nil
}

// paceUsage waits for the next slot of the usage reads: half of EC2's
// non-mutating refill, like the reference check.
func (c *Collector) paceUsage(ctx context.Context) error {
	c.usageOnce.Do(func() { c.usageLimiter = rate.NewLimiter(DefaultReferencesRate, DefaultReferencesBurst) })
	return c.pace(ctx, c.usageLimiter)
}

// usageState holds the usage limiters (fields of Collector).
type usageState struct {
	usageOnce          sync.Once
	usageLimiter       *rate.Limiter
	createUsageOnce    sync.Once
	createUsageLimiter *rate.Limiter
}

func idList(ids []string) string {
	if len(ids) <= 3 {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%v and %d more", ids[:3], len(ids)-3)
}
