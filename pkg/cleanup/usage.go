package cleanup

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// retention.shared_usage: check. An AMI shared with other accounts
// (accounts, organizations, OUs) is kept only while another account uses
// it, as EC2's image usage reports tell: asynchronous, so a report is
// requested in one run and read in a later one. A report counts only if it
// is EC2's complete answer for this AMI:
//   - available, for this AMI, not expired;
//   - for all accounts (a report can be narrowed to some accounts by
//     whoever may create one: it proves nothing about the others);
//   - for instances and launch templates, every launch template version
//     (UsageVersionDepth);
//   - for a marked AMI whose date has passed (about to go), created after
//     that date: EC2 reports the last 24 h of instance activity and the
//     last few days of launch template activity late, and a report made
//     at least the grace period after the mark sees every use up to it.
//
// Any doubt (no such report yet, pending, unreadable, inconsistent) keeps
// the AMI, and a marked one keeps its mark: incomplete evidence never
// deletes, nor does it undo a mark.

// Resource types of an image usage report (EC2's names).
const (
	UsageInstance       = "ec2:Instance"
	UsageLaunchTemplate = "ec2:LaunchTemplate"
)

// UsageVersionDepth is how many of each launch template's most recent
// versions a report must look at: the most EC2 accepts (its default is
// 20), since any version can be launched by number. The cleanup requests
// its reports with it.
const UsageVersionDepth = 10000

// UsagePendingFor is how long a pending report is waited for; an older one
// is given up and another requested (generation time is UNVERIFIED).
const UsagePendingFor = 48 * time.Hour

// UsageReport is one image usage report as EC2 describes it.
type UsageReport struct {
	ID          string    `json:"id"`
	ImageID     string    `json:"image_id"`
	State       string    `json:"state"` // pending, available, error
	StateReason string    `json:"state_reason,omitempty"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	// AccountIDs are the accounts it was limited to; none means all.
	AccountIDs    []string `json:"account_ids,omitempty"`
	ResourceTypes []string `json:"resource_types"`
	// VersionDepth is its launch template version-depth option; 0 when it
	// states none (EC2's default, 20 versions).
	VersionDepth int `json:"version_depth,omitempty"`
}

// UsageEntry is one line of a report: an account's resources of one type
// that use the AMI.
type UsageEntry struct {
	ReportID     string `json:"report_id"`
	ImageID      string `json:"image_id"`
	AccountID    string `json:"account_id"`
	ResourceType string `json:"resource_type"`
	Count        int64  `json:"count"`
}

// ImageUsage is what the collector read about one AMI's usage reports.
type ImageUsage struct {
	// Reports are the AMI's reports, in any state.
	Reports []UsageReport `json:"reports,omitempty"`
	// Report is the report whose entries were read (ChooseUsageReport's
	// choice), "" when none qualified; Entries are all its entries.
	Report  string       `json:"report,omitempty"`
	Entries []UsageEntry `json:"entries,omitempty"`
	// Error says why the reports could not be read; then nothing else is
	// trusted and the AMI is kept.
	Error string `json:"error,omitempty"`
}

// UsageQuery asks for one AMI's usage: the newest valid report created at
// or after NotBefore (zero: any).
type UsageQuery struct {
	ImageID   string
	NotBefore time.Time
}

// usageProblem says why a report cannot tell who uses imageID, judged at
// now for a report created at or after notBefore; "" when it can (its
// state aside).
func usageProblem(r *UsageReport, imageID string, notBefore, now time.Time) string {
	switch {
	case r.ImageID != imageID:
		return "it is for " + r.ImageID
	case len(r.AccountIDs) > 0:
		return "it covers only account " + list(r.AccountIDs, 3) + " (a report must cover all accounts)"
	case !slices.Contains(r.ResourceTypes, UsageInstance) || !slices.Contains(r.ResourceTypes, UsageLaunchTemplate):
		return "it covers " + strings.Join(r.ResourceTypes, ", ") + " (a report must cover " + UsageInstance + " and " + UsageLaunchTemplate + ")"
	case r.VersionDepth < UsageVersionDepth:
		depth := "EC2's default of 20"
		if r.VersionDepth > 0 {
			depth = strconv.Itoa(r.VersionDepth)
		}
		return fmt.Sprintf("it looks at %s launch template versions (a report must look at %d)", depth, UsageVersionDepth)
	case r.Created.IsZero() || r.Created.After(now):
		return "its creation time is unknown or in the future"
	case !r.Expires.IsZero() && !now.Before(r.Expires):
		return "it has expired"
	case r.Created.Before(notBefore):
		return "it was created before " + notBefore.UTC().Format(time.RFC3339) + ", so uses up to the mark may be missing from it"
	}
	return ""
}

// ChooseUsageReport picks, among an AMI's reports, the newest available one
// that can tell who uses it (use), else the newest pending one that will
// (pending, if less than UsagePendingFor old), and says why each other
// report does not count (ignored; errored and superseded reports are not
// mentioned). It is pure; the collector and the planner both call it, so
// they agree on the report whose entries count.
func ChooseUsageReport(reports []UsageReport, imageID string, notBefore, now time.Time) (use, pending *UsageReport, ignored []string) {
	sorted := slices.Clone(reports)
	slices.SortFunc(sorted, func(a, b UsageReport) int { return cmp.Or(b.Created.Compare(a.Created), cmp.Compare(a.ID, b.ID)) })
	for k := range sorted {
		r := &sorted[k]
		if r.State == "error" {
			continue
		}
		if why := usageProblem(r, imageID, notBefore, now); why != "" {
			ignored = append(ignored, fmt.Sprintf("usage report %s (created %s) does not count: %s", r.ID, stamp(r.Created), why))
			continue
		}
		switch {
		case r.State == "available" && use == nil:
			use = r
		case r.State == "pending" && use == nil && pending == nil && now.Sub(r.Created) < UsagePendingFor:
			pending = r
		}
	}
	return use, pending, ignored
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "at an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}

// usageRequestNow ends the reason of a decision that asks for a usage
// report in enforce mode, until UsageRequested says what became of it.
const usageRequestNow = "; one is requested now, read in a later run"

// UsageRequested records on a decision that asked for a usage report
// (RequestUsageReport) what became of the request: the report's ID, or
// why none was made. The AMI stays kept either way.
func (d *Decision) UsageRequested(id string, err error) {
	for k, r := range d.Reasons {
		base, ok := strings.CutSuffix(r, usageRequestNow)
		if !ok {
			continue
		}
		switch {
		case err != nil:
			d.Reasons[k] = base + "; requesting one failed (" + err.Error() + "): the next run tries again"
		default:
			d.Reasons[k] = base + "; usage report " + id + " requested, read in a later run"
			d.UsageReport = id
		}
		return
	}
}

// usageState is what the usage reports say about a shared AMI.
type usageState byte

const (
	usageNA      usageState = iota // shared_usage keep, or not shared
	usageKeep                      // a valid report names users (or the check cannot apply): kept
	usageUnused                    // a valid report names none: the shared-keep is lifted
	usageUnknown                   // no valid report (yet): kept, a valid mark and all
)

// usageVerdict is the shared_usage check's answer for one AMI.
type usageVerdict struct {
	state   usageState
	reasons []string
	// report is the report the answer rests on, or the pending one.
	report string
	// request: no report can answer; enforce mode requests one.
	request bool
}

// checksUsage reports whether rule r keeps shared AMIs only while they are
// used.
func (pl *planner) checksUsage(r *compiledRule) bool {
	return r.keepShared && pl.p.SharedUsage == policy.SharedUsageCheck
}

// sharedCheck reports whether image i is decided by the shared_usage
// check: its rule keeps shared AMIs only while used, and it is shared with
// accounts, organizations or OUs (a public AMI stays kept: anyone may
// launch it at any time).
func (pl *planner) sharedCheck(i int) bool {
	img, f := &pl.inv.Images[i], &pl.facts[i]
	return f.rule >= 0 && pl.checksUsage(&pl.rules[f.rule]) && img.SharesKnown && len(img.SharedWith) > 0 && !img.Public
}

// usageNotBefore is the earliest creation time of a report that may let
// image i go: for a mark whose date has passed, the end of that date
// (at least the grace period after the mark); otherwise any valid report
// may say whether it is used (marking removes nothing).
func (pl *planner) usageNotBefore(m mark) time.Time {
	if pl.due(m) {
		return m.date.Add(day)
	}
	return time.Time{}
}

// usageOf answers the shared_usage check for image i (sharedCheck), which
// nothing else keeps, with its mark m.
func (pl *planner) usageOf(i int, m mark) usageVerdict {
	img := &pl.inv.Images[i]
	shared := "shared with " + list(img.SharedWith, 10)
	waiting := m.valid && !pl.today.After(m.date)
	unknown := func(why string, more ...string) usageVerdict {
		return usageVerdict{state: usageUnknown, reasons: append([]string{shared + ": " + why}, more...)}
	}
	if pl.p.GraceDays <= 0 {
		return usageVerdict{state: usageKeep, reasons: []string{shared + ": retention.shared_usage check needs grace_days > 0 (a usage report may let an AMI go only if made at least the grace period after its mark): kept"}}
	}
	u, ok := pl.inv.Usage[img.ID]
	switch {
	case !ok:
		return unknown("its usage reports were not read: kept")
	case u.Error != "":
		return unknown("its usage reports could not be read (" + u.Error + "): kept")
	}
	notBefore := pl.usageNotBefore(m)
	use, pending, ignored := ChooseUsageReport(u.Reports, img.ID, notBefore, pl.now)
	if use == nil {
		if pending != nil {
			v := unknown(fmt.Sprintf("usage report %s (created %s) is pending: read in a later run", pending.ID, stamp(pending.Created)))
			v.report = pending.ID
			return v
		}
		why := "no usage report that counts"
		if !notBefore.IsZero() {
			why += " created after its mark's date " + m.date.Format(DateLayout)
		}
		v := unknown(why, ignored...)
		switch {
		case waiting:
			v.reasons[0] += "; one is requested once the mark's date has passed"
		case pl.p.Mode == policy.ModeEnforce:
			v.request = true
			v.reasons[0] += usageRequestNow
		default:
			v.request = true
			v.reasons[0] += "; audit mode requests none (enforce mode requests one and reads it in a later run)"
		}
		return v
	}
	if u.Report != use.ID {
		v := unknown(fmt.Sprintf("the entries of usage report %s were not read (read: %q): kept", use.ID, u.Report))
		v.report = use.ID
		return v
	}
	type counts struct{ instances, templates, other int64 }
	users := map[string]*counts{}
	for _, e := range u.Entries {
		if e.ReportID != use.ID || e.ImageID != img.ID {
			v := unknown(fmt.Sprintf("usage report %s has an entry of report %s, AMI %s: kept", use.ID, e.ReportID, e.ImageID))
			v.report = use.ID
			return v
		}
		if e.Count <= 0 {
			continue
		}
		c := users[e.AccountID]
		if c == nil {
			c = &counts{}
			users[e.AccountID] = c
		}
		switch e.ResourceType {
		case UsageInstance:
			c.instances += e.Count
		case UsageLaunchTemplate:
			c.templates += e.Count
		default:
			c.other += e.Count
		}
	}
	from := fmt.Sprintf("usage report %s (created %s)", use.ID, stamp(use.Created))
	if len(users) == 0 {
		return usageVerdict{state: usageUnused, report: use.ID,
			reasons: []string{shared + ", but " + from + " finds no account using it (all accounts, instances and launch templates)"}}
	}
	var parts []string
	for _, a := range slices.Sorted(maps.Keys(users)) {
		c := users[a]
		var n []string
		if c.instances > 0 {
			n = append(n, plural(c.instances, "instance"))
		}
		if c.templates > 0 {
			n = append(n, plural(c.templates, "launch template"))
		}
		if c.other > 0 {
			n = append(n, plural(c.other, "other resource"))
		}
		parts = append(parts, "account "+a+" ("+strings.Join(n, ", ")+")")
	}
	return usageVerdict{state: usageKeep, report: use.ID,
		reasons: []string{shared + ": used by " + list(parts, 10) + " per " + from}}
}

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.FormatInt(n, 10) + " " + what + "s"
}

// UsageToCheck returns, sorted by image ID, the AMIs whose usage reports
// must be read before MakePlan can decide them (shared_usage: check): AMIs
// shared with accounts, organizations or OUs that nothing else keeps, whose
// launch permissions are known (SharesToCheck first), each with the
// earliest creation time of a report that counts for it.
func UsageToCheck(now time.Time, inv *Inventory, p policy.Retention) []UsageQuery {
	if inv == nil || p.SharedUsage != policy.SharedUsageCheck || p.GraceDays <= 0 {
		return nil
	}
	pl := newPlanner(now, inv, p, false)
	var out []UsageQuery
	for i := range inv.Images {
		img := &inv.Images[i]
		if !pl.sharedCheck(i) || len(skipReasons(img, p)) > 0 || len(pl.keepReasons(i, true, false)) > 0 {
			continue
		}
		out = append(out, UsageQuery{ImageID: img.ID, NotBefore: pl.usageNotBefore(readMark(img, inv.Records))})
	}
	slices.SortFunc(out, func(a, b UsageQuery) int { return strings.Compare(a.ImageID, b.ImageID) })
	return slices.CompactFunc(out, func(a, b UsageQuery) bool { return a.ImageID == b.ImageID })
}
