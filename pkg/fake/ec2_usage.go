package fake

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// ImageUsage answers EC2's image usage report calls (CreateImageUsageReport,
// DescribeImageUsageReports, DescribeImageUsageReportEntries) from its own
// state; moto does not implement them (HTTP 500). It follows the EC2 API
// reference and user guide:
//   - a report is created "pending" for one AMI, the accounts asked for
//     (none: all accounts; at most 200) and the resource types asked for
//     (ec2:Instance, ec2:LaunchTemplate with an optional version-depth
//     1-10000, imagebuilder recipes); it becomes "available" ReadyAfter
//     later (or "error" for an AMI in Broken), and EC2 deletes it 30 days
//     after its creation;
//   - its entries count, per account and resource type, the uses known at
//     its creation except the most recent ones: instance uses from the 24 h
//     before it, launch template uses from the 3 days before it ("the past
//     few days" in the guide; the exact lag is UNVERIFIED) are missing;
//   - the describe calls page (PageSize items a page, NextToken).
//
// What AWS does not document is this fake's choice (UNVERIFIED): report IDs
// ("amiur-…"), error codes, and the entries of a report that is not
// available (none, not an error): callers must not read them.
type ImageUsage struct {
	mu sync.Mutex
	// Clock is "now" (required): creation, readiness, lag and expiry.
	Clock *Clock
	// Images are the AMIs a report may be made for; any other ID is
	// InvalidAMIID.NotFound.
	Images map[string]bool
	// Uses are the resources of other accounts that use an AMI.
	Uses []ImageUse
	// ReadyAfter is how long a new report stays pending (default 1 h).
	ReadyAfter time.Duration
	// Broken AMIs get reports that end in state "error".
	Broken map[string]bool
	// PageSize is the page length of the describe calls (default 2).
	PageSize int
	// Calls counts calls per operation name.
	Calls map[string]int
	// Errors, if set for an operation, is returned (once per entry, in
	// order) instead of its answer.
	Errors map[string][]error
	// Created records every CreateImageUsageReport request (a copy), in order.
	Created []ec2.CreateImageUsageReportInput

	reports []*usageReport
	tokens  map[string]string // client token -> report ID
	nextID  int
}

// ImageUse is one account's use of an AMI by resources of one type, since
// a time (a launch, a template version naming it).
type ImageUse struct {
	Account, ImageID string
	// ResourceType is ec2:Instance, ec2:LaunchTemplate, ….
	ResourceType string
	Count        int64
	Since        time.Time
}

type usageReport struct {
	r       types.ImageUsageReport
	ready   time.Time
	entries []types.ImageUsageReportEntry
}

// Lags of a report (see ImageUsage).
const (
	usageInstanceLag       = 24 * time.Hour
	usageLaunchTemplateLag = 72 * time.Hour
	usageRetention         = 30 * 24 * time.Hour
)

var (
	usageTypes   = []string{"ec2:Instance", "ec2:LaunchTemplate", "imagebuilder:ImageRecipe", "imagebuilder:ContainerRecipe"}
	usageAccount = regexp.MustCompile(`^\d{12}$`)
)

func (f *ImageUsage) enter(op string) error {
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

func (f *ImageUsage) now() time.Time {
	if f.Clock == nil {
		panic("fake.ImageUsage: Clock is required")
	}
	return f.Clock.Now().UTC()
}

// CreateImageUsageReport creates a pending report; the same ClientToken
// gives the same report.
func (f *ImageUsage) CreateImageUsageReport(_ context.Context, in *ec2.CreateImageUsageReportInput, _ ...func(*ec2.Options)) (*ec2.CreateImageUsageReportOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if aws.ToBool(in.DryRun) || len(in.TagSpecifications) > 0 {
		panic(fmt.Sprintf("fake.ImageUsage.CreateImageUsageReport: DryRun and TagSpecifications are not modelled, got %+v", in))
	}
	if err := f.enter("CreateImageUsageReport"); err != nil {
		return nil, err
	}
	f.Created = append(f.Created, *in)
	if tok := aws.ToString(in.ClientToken); tok != "" {
		if id, ok := f.tokens[tok]; ok {
			return &ec2.CreateImageUsageReportOutput{ReportId: aws.String(id)}, nil
		}
	}
	image := aws.ToString(in.ImageId)
	if !f.Images[image] {
		return nil, APIError("InvalidAMIID.NotFound")
	}
	if len(in.ResourceTypes) == 0 || len(in.AccountIds) > 200 {
		return nil, APIError("InvalidParameterValue")
	}
	for _, a := range in.AccountIds {
		if !usageAccount.MatchString(a) {
			return nil, APIError("InvalidParameterValue")
		}
	}
	var rts []types.ImageUsageResourceType
	for _, rt := range in.ResourceTypes {
		name := aws.ToString(rt.ResourceType)
		if !slices.Contains(usageTypes, name) {
			return nil, APIError("InvalidParameterValue")
		}
		out := types.ImageUsageResourceType{ResourceType: aws.String(name)}
		for _, o := range rt.ResourceTypeOptions {
			if name != "ec2:LaunchTemplate" || aws.ToString(o.OptionName) != "version-depth" || len(o.OptionValues) != 1 {
				return nil, APIError("InvalidParameterValue")
			}
			if n, err := strconv.Atoi(o.OptionValues[0]); err != nil || n < 1 || n > 10000 {
				return nil, APIError("InvalidParameterValue")
			}
			out.ResourceTypeOptions = append(out.ResourceTypeOptions, types.ImageUsageResourceTypeOption{
				OptionName: o.OptionName, OptionValues: slices.Clone(o.OptionValues)})
		}
		rts = append(rts, out)
	}
	now := f.now()
	f.nextID++
	id := fmt.Sprintf("amiur-%017x", f.nextID)
	ready := f.ReadyAfter
	if ready <= 0 {
		ready = time.Hour
	}
	rep := &usageReport{ready: now.Add(ready), r: types.ImageUsageReport{
		ReportId: aws.String(id), ImageId: aws.String(image), State: aws.String("pending"),
		AccountIds: slices.Clone(in.AccountIds), ResourceTypes: rts,
		CreationTime: aws.Time(now), ExpirationTime: aws.Time(now.Add(usageRetention)),
	}}
	rep.entries = f.entriesFor(rep.r, now)
	f.reports = append(f.reports, rep)
	if tok := aws.ToString(in.ClientToken); tok != "" {
		if f.tokens == nil {
			f.tokens = map[string]string{}
		}
		f.tokens[tok] = id
	}
	return &ec2.CreateImageUsageReportOutput{ReportId: aws.String(id)}, nil
}

// entriesFor counts the uses a report created at now sees.
func (f *ImageUsage) entriesFor(r types.ImageUsageReport, now time.Time) []types.ImageUsageReportEntry {
	type key struct{ account, rt string }
	counts := map[key]int64{}
	for _, u := range f.Uses {
		if u.ImageID != aws.ToString(r.ImageId) || (len(r.AccountIds) > 0 && !slices.Contains(r.AccountIds, u.Account)) ||
			!slices.ContainsFunc(r.ResourceTypes, func(t types.ImageUsageResourceType) bool { return aws.ToString(t.ResourceType) == u.ResourceType }) {
			continue
		}
		lag := usageInstanceLag
		if u.ResourceType != "ec2:Instance" {
			lag = usageLaunchTemplateLag
		}
		if u.Since.After(now.Add(-lag)) {
			continue // too recent to be in the report
		}
		counts[key{u.Account, u.ResourceType}] += u.Count
	}
	var out []types.ImageUsageReportEntry
	for k, n := range counts {
		out = append(out, types.ImageUsageReportEntry{AccountId: aws.String(k.account), ResourceType: aws.String(k.rt),
			UsageCount: aws.Int64(n), ImageId: r.ImageId, ReportId: r.ReportId, ReportCreationTime: r.CreationTime})
	}
	slices.SortFunc(out, func(a, b types.ImageUsageReportEntry) int {
		return cmp.Or(cmp.Compare(aws.ToString(a.AccountId), aws.ToString(b.AccountId)), cmp.Compare(aws.ToString(a.ResourceType), aws.ToString(b.ResourceType)))
	})
	return out
}

// live advances the reports' states to now and drops the expired ones.
func (f *ImageUsage) live() []*usageReport {
	now := f.now()
	f.reports = slices.DeleteFunc(f.reports, func(r *usageReport) bool { return !now.Before(aws.ToTime(r.r.ExpirationTime)) })
	for _, r := range f.reports {
		if aws.ToString(r.r.State) == "pending" && !now.Before(r.ready) {
			if f.Broken[aws.ToString(r.r.ImageId)] {
				r.r.State, r.r.StateReason = aws.String("error"), aws.String("fake: report generation failed")
			} else {
				r.r.State = aws.String("available")
			}
		}
	}
	return f.reports
}

func (f *ImageUsage) pageSize(maxResults *int32) int { return pageSize(f.PageSize, maxResults) }

// DescribeImageUsageReports lists the reports of ImageIds and/or
// ReportIds (all when neither is set), oldest first; Filters are not
// modelled.
func (f *ImageUsage) DescribeImageUsageReports(_ context.Context, in *ec2.DescribeImageUsageReportsInput, _ ...func(*ec2.Options)) (*ec2.DescribeImageUsageReportsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.Filters) > 0 || aws.ToBool(in.DryRun) {
		panic(fmt.Sprintf("fake.ImageUsage.DescribeImageUsageReports: Filters and DryRun are not modelled, got %+v", in))
	}
	if err := f.enter("DescribeImageUsageReports"); err != nil {
		return nil, err
	}
	if len(in.ImageIds) > 200 || len(in.ReportIds) > 200 {
		return nil, APIError("InvalidParameterValue")
	}
	var all []types.ImageUsageReport
	for _, r := range f.live() {
		if (len(in.ImageIds) == 0 || slices.Contains(in.ImageIds, aws.ToString(r.r.ImageId))) &&
			(len(in.ReportIds) == 0 || slices.Contains(in.ReportIds, aws.ToString(r.r.ReportId))) {
			all = append(all, r.r)
		}
	}
	items, next, err := page(all, in.NextToken, f.pageSize(in.MaxResults))
	if err != nil {
		return nil, err
	}
	return &ec2.DescribeImageUsageReportsOutput{ImageUsageReports: items, NextToken: next}, nil
}

// DescribeImageUsageReportEntries lists the entries of the available
// reports among ReportIds and/or ImageIds; Filters are not modelled.
func (f *ImageUsage) DescribeImageUsageReportEntries(_ context.Context, in *ec2.DescribeImageUsageReportEntriesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImageUsageReportEntriesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.Filters) > 0 || aws.ToBool(in.DryRun) || (len(in.ReportIds) == 0 && len(in.ImageIds) == 0) {
		panic(fmt.Sprintf("fake.ImageUsage.DescribeImageUsageReportEntries: only ReportIds and ImageIds are modelled, got %+v", in))
	}
	if err := f.enter("DescribeImageUsageReportEntries"); err != nil {
		return nil, err
	}
	var all []types.ImageUsageReportEntry
	for _, r := range f.live() {
		if aws.ToString(r.r.State) == "available" &&
			(len(in.ImageIds) == 0 || slices.Contains(in.ImageIds, aws.ToString(r.r.ImageId))) &&
			(len(in.ReportIds) == 0 || slices.Contains(in.ReportIds, aws.ToString(r.r.ReportId))) {
			all = append(all, r.entries...)
		}
	}
	items, next, err := page(all, in.NextToken, f.pageSize(in.MaxResults))
	if err != nil {
		return nil, err
	}
	return &ec2.DescribeImageUsageReportEntriesOutput{ImageUsageReportEntries: items, NextToken: next}, nil
}

// Reports returns the live reports (states advanced to now), oldest first.
func (f *ImageUsage) Reports() []types.ImageUsageReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []types.ImageUsageReport
	for _, r := range f.live() {
		out = append(out, r.r)
	}
	return out
}
