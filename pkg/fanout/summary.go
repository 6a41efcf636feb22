package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emf"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
)

// DetailTypeSummary is the EventBridge detail-type of a sweep's summary.
const DetailTypeSummary = "AMI Housekeeper Organization Sweep Summary"

// Limits that keep a summary inside EventBridge's and SNS's 256 KiB.
const (
	maxDetailBytes = 200 << 10
	maxTextLines   = 400
)

// Totals add up units.
type Totals struct {
	Units       int `json:"units"`
	Done        int `json:"done"`
	Partial     int `json:"partial"`
	Unreachable int `json:"unreachable"`
	Failed      int `json:"failed"`
	OutOfScope  int `json:"out_of_scope"`

	AMIsSeen         int     `json:"amis_seen"`
	Deregistered     int     `json:"deregistered"`
	SnapshotsDeleted int     `json:"snapshots_deleted"`
	GiBFreed         int64   `json:"gib_freed"`
	USDPerMonthSaved float64 `json:"usd_per_month_saved"`
	Violations       int     `json:"violations"`
	Revoked          int     `json:"revoked"`
	// Blocked counts units whose cleanup changed nothing for want of a
	// complete inventory.
	Blocked int `json:"blocked"`
}

func (t *Totals) add(r UnitResult) {
	t.Units++
	switch r.Status {
	case StatusDone:
		t.Done++
	case StatusPartial:
		t.Partial++
	case StatusUnreachable:
		t.Unreachable++
	case StatusFailed:
		t.Failed++
	case StatusOutOfScope:
		t.OutOfScope++
	}
	t.AMIsSeen += r.AMIsSeen
	t.Deregistered += r.Deregistered
	t.SnapshotsDeleted += r.SnapshotsDeleted
	t.GiBFreed += r.GiBFreed
	t.USDPerMonthSaved += r.USDPerMonthSaved
	t.Violations += r.Violations
	t.Revoked += r.Revoked
	if r.Blocked != "" {
		t.Blocked++
	}
}

// AccountSummary is one account's part of a sweep.
type AccountSummary struct {
	Account string   `json:"account"`
	OU      string   `json:"ou,omitempty"`
	Regions []string `json:"regions"`
	Totals  Totals   `json:"totals"`
}

// OUSummary is one OU's (the accounts' parent) part of a sweep.
type OUSummary struct {
	OU       string `json:"ou"`
	Accounts int    `json:"accounts"`
	Totals   Totals `json:"totals"`
}

// Problem is a unit that did not run to its end, with why.
type Problem struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	OU      string `json:"ou,omitempty"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
}

// SkippedAccount is an account the scope matched but the sweep did not
// cover, with why.
type SkippedAccount struct {
	Account string `json:"account"`
	Reason  string `json:"reason"`
}

// Summary is one sweep across the organization, added up: what the
// summary event carries and the SNS text renders.
type Summary struct {
	Sweep    string    `json:"sweep"`
	Job      string    `json:"job"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Expected units were dispatched; Totals.Units are recorded. Complete
	// when every expected unit is.
	Expected int  `json:"expected"`
	Complete bool `json:"complete"`
	// Accounts and Regions are those a unit ran to its end or in part in.
	Accounts  []string         `json:"accounts_covered"`
	Regions   []string         `json:"regions_covered"`
	Totals    Totals           `json:"totals"`
	ByOU      []OUSummary      `json:"by_ou"`
	ByAccount []AccountSummary `json:"by_account,omitempty"`
	// ByAccountOmitted is set when the per-account list was left out of the
	// event to keep it under EventBridge's size limit.
	ByAccountOmitted bool `json:"by_account_omitted,omitempty"`
	// Unreachable, Failed, Partial and OutOfScope list the units that did
	// not run to their end: none is silently skipped.
	Unreachable []Problem        `json:"unreachable"`
	Failed      []Problem        `json:"failed"`
	Partial     []Problem        `json:"partial"`
	OutOfScope  []Problem        `json:"out_of_scope"`
	Skipped     []SkippedAccount `json:"skipped_accounts"`
}

// Summarize adds up a sweep's meta item and unit results, at now.
func Summarize(m Meta, results []UnitResult, now time.Time) Summary {
	sum := Summary{Sweep: m.Sweep, Job: m.Job, Started: m.Started, Finished: now.UTC(), Expected: m.Expected,
		Unreachable: []Problem{}, Failed: []Problem{}, Partial: []Problem{}, OutOfScope: []Problem{}, Skipped: []SkippedAccount{},
		ByOU: []OUSummary{}}
	accounts := map[string]*AccountSummary{}
	ous := map[string]*OUSummary{}
	ouAccounts := map[string]map[string]bool{}
	covered, regions := map[string]bool{}, map[string]bool{}
	for _, r := range results {
		u := r.Unit
		sum.Totals.add(r)
		a, ok := accounts[u.Account]
		if !ok {
			a = &AccountSummary{Account: u.Account, OU: u.OU}
			accounts[u.Account] = a
		}
		a.Regions = append(a.Regions, u.Region)
		a.Totals.add(r)
		ou := u.OU
		if ou == "" {
			ou = "(none)"
		}
		o, ok := ous[ou]
		if !ok {
			o = &OUSummary{OU: ou}
			ous[ou], ouAccounts[ou] = o, map[string]bool{}
		}
		o.Totals.add(r)
		ouAccounts[ou][u.Account] = true
		p := Problem{Account: u.Account, Region: u.Region, OU: u.OU, Status: r.Status, Reason: r.Reason}
		switch r.Status {
		case StatusDone:
			covered[u.Account], regions[u.Region] = true, true
		case StatusPartial:
			covered[u.Account], regions[u.Region] = true, true
			sum.Partial = append(sum.Partial, p)
		case StatusUnreachable:
			sum.Unreachable = append(sum.Unreachable, p)
		case StatusFailed:
			sum.Failed = append(sum.Failed, p)
		case StatusOutOfScope:
			sum.OutOfScope = append(sum.OutOfScope, p)
		}
	}
	sum.Complete = sum.Totals.Units >= m.Expected
	sum.Accounts, sum.Regions = sortedKeys(covered), sortedKeys(regions)
	for _, id := range sortedKeys(accounts) {
		a := accounts[id]
		sort.Strings(a.Regions)
		sum.ByAccount = append(sum.ByAccount, *a)
	}
	for _, id := range sortedKeys(ous) {
		o := ous[id]
		o.Accounts = len(ouAccounts[id])
		sum.ByOU = append(sum.ByOU, *o)
	}
	for _, id := range sortedKeys(m.Skipped) {
		sum.Skipped = append(sum.Skipped, SkippedAccount{Account: id, Reason: m.Skipped[id]})
	}
	return sum
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Subject is the summary's one-line title (the SNS subject).
func (s Summary) Subject() string {
	t := s.Totals
	subject := fmt.Sprintf("ami-housekeeper %s: %d/%d units done", s.Sweep, t.Done, s.Expected)
	if n := t.Unreachable + t.Failed; n > 0 {
		subject += fmt.Sprintf(", %d unreachable or failed", n)
	}
	return subject
}

// Text renders the summary for people (the SNS message).
func (s Summary) Text() string {
	t := s.Totals
	var b strings.Builder
	fmt.Fprintf(&b, "ami-housekeeper organization sweep %s (started %s, summarized %s)\n", s.Sweep,
		s.Started.UTC().Format(time.RFC3339), s.Finished.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Units %d of %d recorded: done %d, partial %d, unreachable %d, failed %d, out of scope %d\n",
		t.Units, s.Expected, t.Done, t.Partial, t.Unreachable, t.Failed, t.OutOfScope)
	fmt.Fprintf(&b, "Covered %s in %s (%s)\n", plural(len(s.Accounts), "account"), plural(len(s.Regions), "region"), strings.Join(s.Regions, ", "))
	b.WriteString(totalsLine(s.Job, t) + "\n")
	lines := 4
	section := func(title string, rows []string) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s (%d):\n", title, len(rows))
		for i, r := range rows {
			if lines >= maxTextLines {
				fmt.Fprintf(&b, "  … %d more (see the summary event or the ledger)\n", len(rows)-i)
				return
			}
			b.WriteString("  " + r + "\n")
			lines++
		}
	}
	problems := func(ps []Problem) []string {
		out := make([]string, 0, len(ps))
		for _, p := range ps {
			out = append(out, fmt.Sprintf("%s %s%s: %s", p.Account, p.Region, ouSuffix(p.OU), p.Reason))
		}
		return out
	}
	section("Unreachable", problems(s.Unreachable))
	section("Failed", problems(s.Failed))
	section("Partial, continued by the next sweep", problems(s.Partial))
	section("Out of scope, not run", problems(s.OutOfScope))
	skipped := make([]string, 0, len(s.Skipped))
	for _, sk := range s.Skipped {
		skipped = append(skipped, sk.Account+": "+sk.Reason)
	}
	section("Skipped accounts", skipped)
	byOU := make([]string, 0, len(s.ByOU))
	for _, o := range s.ByOU {
		byOU = append(byOU, fmt.Sprintf("%s: %s, %s%s", o.OU, plural(o.Accounts, "account"), statusPart(o.Totals), totalsLine(s.Job, o.Totals)))
	}
	section("By OU", byOU)
	byAccount := make([]string, 0, len(s.ByAccount))
	for _, a := range s.ByAccount {
		byAccount = append(byAccount, fmt.Sprintf("%s%s: %s%s", a.Account, ouSuffix(a.OU), statusPart(a.Totals), totalsLine(s.Job, a.Totals)))
	}
	section("By account", byAccount)
	return b.String()
}

func ouSuffix(ou string) string {
	if ou == "" {
		return ""
	}
	return " (" + ou + ")"
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// statusPart says how the units went when not all are done ("" then).
func statusPart(t Totals) string {
	if t.Done == t.Units {
		return ""
	}
	var parts []string
	for _, c := range []struct {
		n    int
		name string
	}{{t.Done, "done"}, {t.Partial, "partial"}, {t.Unreachable, "unreachable"}, {t.Failed, "failed"}, {t.OutOfScope, "out of scope"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.name))
		}
	}
	return "units " + strings.Join(parts, ", ") + "; "
}

// totalsLine is the job's figures in one line.
func totalsLine(job string, t Totals) string {
	if job == JobSharingAudit {
		return fmt.Sprintf("AMIs audited %d, sharing violations %d, revoked %d", t.AMIsSeen, t.Violations, t.Revoked)
	}
	line := fmt.Sprintf("AMIs seen %d, removed %d, snapshots deleted %d, %d GiB freed, about %.2f USD per month saved",
		t.AMIsSeen, t.Deregistered, t.SnapshotsDeleted, t.GiBFreed, t.USDPerMonthSaved)
	if t.Blocked > 0 {
		line += fmt.Sprintf(", %d blocked (inventory incomplete)", t.Blocked)
	}
	return line
}

// Message is the summary as a notification: the event detail (without the
// per-account list if it would not fit) and the text.
func (s Summary) Message() notify.Message {
	detail := s
	if b, err := json.Marshal(detail); err == nil && len(b) > maxDetailBytes {
		detail.ByAccount, detail.ByAccountOmitted = nil, true
	}
	return notify.Message{DetailType: DetailTypeSummary, Detail: detail, Subject: s.Subject(), Text: s.Text()}
}

// Publisher returns a Publish function that sends summaries through n.
func Publisher(n notify.Notifier, metrics io.Writer) func(context.Context, Summary) error {
	return func(ctx context.Context, s Summary) error {
		if err := n.Send(ctx, s.Message()); err != nil {
			return err
		}
		writeSummaryMetrics(metrics, s)
		return nil
	}
}

// writeSummaryMetrics writes the EMF line of a published summary, under
// the job's function (whichever function published it): SweepsSummarized
// (1), which the stack's silence alarm reads in organization mode (a sweep
// that never completes publishes none), and the units that did not run.
// A failure to write is not the summary's failure: it is out.
func writeSummaryMetrics(w io.Writer, s Summary) {
	if w == nil {
		return
	}
	function := "cleanup"
	if s.Job == JobSharingAudit {
		function = "sharing"
	}
	_ = emf.Write(w, time.Now(), function, map[string]string{logging.KeySweep: s.Sweep}, []emf.Metric{
		{Name: emf.SweepsSummarized, Value: 1},
		{Name: emf.SweepUnitsUnreachable, Value: float64(s.Totals.Unreachable)},
		{Name: emf.SweepUnitsFailed, Value: float64(s.Totals.Failed)},
	})
}
