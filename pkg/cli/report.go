package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
)

func init() { commands = append(commands, (*app).reportCmd) }

// The functions' log lines the report reads (pkg/cleanup/sweep/report.go,
// pkg/handlers/sharing.go): their msg, and the sharing audit's event kind.
const (
	msgCleanupSummary  = "cleanup summary"
	msgCleanupDecision = "cleanup decision"
	msgSharing         = "sharing invocation"
	sharingAuditEvent  = "Scheduled"
	// defaultStack is the stack name infra/main.go deploys.
	defaultStack = "AmiHousekeeper"
	// lambdaMaxRun bounds one invocation: a summary's decisions are logged
	// in its stream at most this long before it.
	lambdaMaxRun = 15 * time.Minute
)

type reportFlags struct {
	stack, cleanupGroup, sharingGroup string
	since                             time.Duration
	last                              int
	all                               bool
}

func (a *app) reportCmd() *cobra.Command {
	var f reportFlags
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Show the last cleanup and sharing-audit reports of a deployment, read from the functions' CloudWatch Logs",
		Long: `report reads what the deployed functions logged, from CloudWatch Logs
(FilterLogEvents on the functions' log groups, in the deployment's region):

  - the cleanup's "cleanup summary" lines (totals, GiB freed, pending work,
    problems, recoverable-until), newest first, each with the "cleanup
    decision" lines of the same run that change something (mark, unmark,
    deregister, ...; --all-decisions for every one);
  - the sharing guard's scheduled audit ("sharing invocation" with event
    Scheduled): AMIs and snapshots checked, violations, revoked, and its
    findings.

The stack does not name its log groups: CloudFormation names them
<stack>-<logical ID>-<suffix>, so by default the groups are found by the
prefixes <stack>-CleanupLogGroup and <stack>-SharingLogGroup (--stack,
default AmiHousekeeper). --cleanup-log-group and --sharing-log-group name
them outright. --output json prints the log lines as the functions emitted
them, in one document.`,
		Example: `  ami-housekeeper report --region eu-west-1
  ami-housekeeper report --region eu-west-1 --last 3 --since 720h
  ami-housekeeper report --region eu-west-1 --cleanup-log-group /custom/cleanup --output markdown`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.report(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.stack, "stack", defaultStack, "the deployment's CloudFormation stack name (finds its log groups)")
	fl.StringVar(&f.cleanupGroup, "cleanup-log-group", "", "the cleanup function's log group (default: found by the prefix <stack>-CleanupLogGroup)")
	fl.StringVar(&f.sharingGroup, "sharing-log-group", "", "the sharing function's log group (default: found by the prefix <stack>-SharingLogGroup)")
	fl.DurationVar(&f.since, "since", 30*24*time.Hour, "how far back to look")
	fl.IntVar(&f.last, "last", 1, "how many reports of each function to show, newest first")
	fl.BoolVar(&f.all, "all-decisions", false, "list every cleanup decision, not only those that change something")
	return cmd
}

// reportDocument is the report's JSON output: the log lines as the
// functions emitted them.
type reportDocument struct {
	Region  string          `json:"region"`
	Cleanup []cleanupReport `json:"cleanup"`
	Sharing []sharingReport `json:"sharing"`
	// Sources name the log groups read.
	Sources map[string]string `json:"sources"`
}

type cleanupReport struct {
	Time      time.Time        `json:"time"`
	LogStream string           `json:"log_stream"`
	Summary   map[string]any   `json:"summary"`
	Decisions []map[string]any `json:"decisions"`
}

type sharingReport struct {
	Time      time.Time      `json:"time"`
	LogStream string         `json:"log_stream"`
	Audit     map[string]any `json:"audit"`
}

// logLine is one parsed event.
type logLine struct {
	time   time.Time
	stream string
	fields map[string]any
}

func (a *app) report(ctx context.Context, f reportFlags) error {
	if f.last < 1 {
		return usageError("--last %d: want 1 or more", f.last)
	}
	if f.since <= 0 {
		return usageError("--since %s: want a positive duration", f.since)
	}
	if f.stack == "" && (f.cleanupGroup == "" || f.sharingGroup == "") {
		return usageError("--stack is empty: name the log groups with --cleanup-log-group and --sharing-log-group")
	}
	if len(a.regions) > 1 || slices.Contains(a.regions, "all") {
		return usageError("report reads one deployment: give one --region (the stack's)")
	}
	cfg, err := a.awsConfig(ctx)
	if err != nil {
		return err
	}
	if len(a.regions) == 1 {
		cfg.Region = a.regions[0]
	}
	if cfg.Region == "" {
		return usageError("no region: give --region (the stack's), or set AWS_REGION")
	}
	logs := cloudwatchlogs.NewFromConfig(cfg)
	doc := reportDocument{Region: cfg.Region, Sources: map[string]string{}, Cleanup: []cleanupReport{}, Sharing: []sharingReport{}}
	now := time.Now()
	from := now.Add(-f.since)

	cleanupGroup, err := findLogGroup(ctx, logs, f.cleanupGroup, f.stack+"-CleanupLogGroup")
	if err != nil {
		return err
	}
	doc.Sources["cleanup"] = cleanupGroup
	summaries, err := readLines(ctx, logs, cleanupGroup, nil, msgCleanupSummary, from, now)
	if err != nil {
		return err
	}
	for _, s := range newest(summaries, f.last) {
		// The run's decisions: same stream, since the stream's previous
		// summary, at most one Lambda run before.
		start := s.time.Add(-lambdaMaxRun)
		for _, o := range summaries {
			if o.stream == s.stream && o.time.Before(s.time) && o.time.After(start) {
				start = o.time
			}
		}
		ds, err := readLines(ctx, logs, cleanupGroup, []string{s.stream}, msgCleanupDecision, start, s.time)
		if err != nil {
			return err
		}
		rep := cleanupReport{Time: s.time, LogStream: s.stream, Summary: s.fields, Decisions: []map[string]any{}}
		for _, d := range ds {
			if f.all || d.fields["outcome"] != "no-change" {
				rep.Decisions = append(rep.Decisions, d.fields)
			}
		}
		doc.Cleanup = append(doc.Cleanup, rep)
	}

	sharingGroup, err := findLogGroup(ctx, logs, f.sharingGroup, f.stack+"-SharingLogGroup")
	if err != nil {
		return err
	}
	doc.Sources["sharing"] = sharingGroup
	lines, err := readLines(ctx, logs, sharingGroup, nil, msgSharing, from, now)
	if err != nil {
		return err
	}
	lines = slices.DeleteFunc(lines, func(l logLine) bool { return l.fields["event"] != sharingAuditEvent })
	for _, l := range newest(lines, f.last) {
		doc.Sharing = append(doc.Sharing, sharingReport{Time: l.time, LogStream: l.stream, Audit: l.fields})
	}
	return a.renderReportDoc(doc, f.since)
}

// findLogGroup returns name, or the one log group whose name starts with
// prefix.
func findLogGroup(ctx context.Context, logs awsapi.ReportLogs, name, prefix string) (string, error) {
	if name != "" {
		return name, nil
	}
	var found []string
	p := cloudwatchlogs.NewDescribeLogGroupsPaginator(logs, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("finding the log group %s* (DescribeLogGroups): %w", prefix, err)
		}
		for _, g := range page.LogGroups {
			found = append(found, aws.ToString(g.LogGroupName))
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no log group starts with %q in this region: is the stack deployed here under that name (--stack), or give the group (--cleanup-log-group / --sharing-log-group)", prefix)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("several log groups start with %q (%s): name one", prefix, strings.Join(found, ", "))
}

// readLines returns the JSON lines of group whose msg is msg, oldest
// first. The filter pattern is the quoted phrase (it narrows what
// CloudWatch sends); the msg itself is checked here.
func readLines(ctx context.Context, logs awsapi.ReportLogs, group string, streams []string, msg string, from, to time.Time) ([]logLine, error) {
	in := &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group), LogStreamNames: streams,
		FilterPattern: aws.String(`"` + msg + `"`), StartTime: aws.Int64(from.UnixMilli()), EndTime: aws.Int64(to.UnixMilli())}
	var out []logLine
	p := cloudwatchlogs.NewFilterLogEventsPaginator(logs, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading %s (FilterLogEvents): %w", group, err)
		}
		for _, e := range page.Events {
			m := aws.ToString(e.Message)
			// Lambda may prefix a line (text log format): the JSON starts
			// at the first brace.
			i := strings.IndexByte(m, '{')
			if i < 0 {
				continue
			}
			var fields map[string]any
			if json.Unmarshal([]byte(m[i:]), &fields) != nil || fields["msg"] != msg {
				continue
			}
			out = append(out, logLine{time: time.UnixMilli(aws.ToInt64(e.Timestamp)).UTC(), stream: aws.ToString(e.LogStreamName), fields: fields})
		}
	}
	slices.SortStableFunc(out, func(a, b logLine) int { return a.time.Compare(b.time) })
	return out, nil
}

// newest returns the n newest lines, newest first.
func newest(lines []logLine, n int) []logLine {
	out := slices.Clone(lines)
	slices.Reverse(out)
	return out[:min(n, len(out))]
}

func (a *app) renderReportDoc(doc reportDocument, since time.Duration) error {
	if a.output == OutputJSON {
		return writeJSON(a.io.Out, doc)
	}
	out := a.io.Out
	fmt.Fprintf(out, "Cleanup reports (%s, log group %s)\n", escapeText(doc.Region), escapeText(doc.Sources["cleanup"]))
	if len(doc.Cleanup) == 0 {
		fmt.Fprintf(out, "  no cleanup summary in the last %s\n", since)
	}
	for _, r := range doc.Cleanup {
		s := r.Summary
		fmt.Fprintf(out, "\n%s  account %s, region %s, mode %s\n", r.Time.Format(time.RFC3339), str(s["account"]), str(s["region"]), str(s["mode"]))
		t := a.newTable(table.Row{"Considered", "Keep", "Mark", "Unmark", "Wait", "Deregister", "Pending", "Snapshots", "GiB freed", "USD/month"})
		tot, _ := s["totals"].(map[string]any)
		t.AppendRow(table.Row{num(tot["considered"]), num(tot["keep"]), num(tot["mark"]), num(tot["unmark"]), num(tot["wait"]),
			num(tot["deregister"]), num(tot["pending"]), num(tot["snapshots_delete"]), num(tot["gib_freed"]), num(tot["monthly_saving_usd"])})
		a.renderTable(t)
		for _, k := range []string{"deregistered", "snapshots_deleted", "failed", "kept_on_recheck", "blocked", "recoverable_until", "problems"} {
			if v, ok := s[k]; ok {
				fmt.Fprintf(out, "  %s: %s\n", strings.ReplaceAll(k, "_", " "), str(v))
			}
		}
		if len(r.Decisions) == 0 {
			fmt.Fprintln(out, "  no decision changed anything")
			continue
		}
		dt := a.newTable(table.Row{"AMI", "Name", "Action", "Outcome", "Snapshots", "Reasons"}, "Reasons")
		for _, d := range r.Decisions {
			dt.AppendRow(table.Row{str(d["image_id"]), str(d["name"]), str(d["action"]), str(d["outcome"]), str(d["snapshot_ids"]), str(d["reasons"])})
		}
		a.renderTable(dt)
	}
	fmt.Fprintf(out, "\nSharing audits (%s, log group %s)\n", escapeText(doc.Region), escapeText(doc.Sources["sharing"]))
	if len(doc.Sharing) == 0 {
		fmt.Fprintf(out, "  no sharing audit in the last %s\n", since)
	}
	for _, r := range doc.Sharing {
		s := r.Audit
		fmt.Fprintf(out, "\n%s  mode %s, outcome %s\n", r.Time.Format(time.RFC3339), str(s["mode"]), str(s["outcome"]))
		t := a.newTable(table.Row{"AMIs checked", "Snapshots checked", "Violations", "Revoked", "Complete"})
		t.AppendRow(table.Row{num(s["images_checked"]), num(s["snapshots_checked"]), num(s["violations"]), num(s["revoked"]), str(s["complete"])})
		a.renderTable(t)
		if v, ok := s["errors"]; ok {
			fmt.Fprintf(out, "  errors: %s\n", str(v))
		}
		findings, _ := s["findings"].([]any)
		if len(findings) == 0 {
			continue
		}
		ft := a.newTable(table.Row{"Resource", "Type", "Action", "Removed", "Reasons"}, "Reasons")
		for _, x := range findings {
			fd, _ := x.(map[string]any)
			ft.AppendRow(table.Row{str(fd["resource_id"]), str(fd["resource_type"]), str(fd["action"]), str(fd["removed"]), str(fd["reasons"])})
		}
		a.renderTable(ft)
	}
	return nil
}

// str renders a JSON value for a table cell or a line. The functions log
// what the account's users wrote (names, tags, reasons quoting them): the
// text is escaped (escapeText), so it prints on one line and sends nothing
// to the terminal.
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return escapeText(x)
	case float64, bool:
		return fmt.Sprint(x)
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, str(e))
		}
		return strings.Join(parts, "; ")
	}
	b, _ := json.Marshal(v)
	return escapeText(string(b))
}

// num renders a JSON number (0 when absent).
func num(v any) string {
	if v == nil {
		return "0"
	}
	return str(v)
}
