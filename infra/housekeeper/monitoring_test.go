package housekeeper

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emf"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// alarmByMetric returns the alarms on a metric of a namespace, by logical ID.
func alarmByMetric(tmpl assertions.Template, namespace, metric string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range resources(tmpl, "AWS::CloudWatch::Alarm") {
		p := properties(r)
		if p["Namespace"] == namespace && p["MetricName"] == metric {
			out[id] = p
		}
	}
	return out
}

// The silence alarms are the only ones that treat missing data as
// breaching: a run that never happened emits nothing. Their window is two
// schedule intervals, split into periods CloudWatch accepts.
func TestSilenceAlarms(t *testing.T) {
	for _, tc := range []struct {
		name     string
		schedule string
		period   int // seconds; 0 = no alarm
		periods  int
	}{
		{"daily", "cron(0 3 * * ? *)", 3600, 48},
		{"every six hours", "rate(6 hours)", 3600, 12},
		{"hourly: five-minute periods", "rate(1 hour)", 300, 24},
		{"weekdays: the weekend gap counts", "cron(0 3 ? * MON-FRI *)", 3600, 2 * (3*24 + 0)},
		{"weekly: longer than CloudWatch looks back", "cron(0 3 ? * MON *)", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stack := newTestStack(t, StackProps{CleanupSchedule: tc.schedule, SharingSchedule: tc.schedule})
			st := assertions.Template_FromStack(stack, nil)
			topic, _ := notificationTopic(t, st)
			// No organization sweeps, no alarms on their summaries.
			for _, metric := range []string{emf.SweepsSummarized, emf.SweepUnitsUnreachable, emf.SweepUnitsFailed} {
				if a := alarmByMetric(st, emf.Namespace, metric); len(a) != 0 {
					t.Errorf("single-account mode: alarms on %s: %v", metric, a)
				}
			}
			for _, w := range []struct{ function, metric string }{
				{CleanupFunctionName, emf.RunsCompleted},
				{SharingFunctionName, emf.AuditsCompleted},
			} {
				alarms := alarmByMetric(st, emf.Namespace, w.metric)
				if tc.period == 0 {
					if len(alarms) != 0 {
						t.Errorf("%s: want no silence alarm for %s, got %v", w.function, tc.schedule, alarms)
					}
					check(t, "warning names the schedule", func() {
						assertions.Annotations_FromStack(stack).HasWarning(jsii.String("*"),
							assertions.Match_StringLikeRegexp(jsii.String(`runs on cron\(0 3 \? \* MON \*\).*a missed run is not alarmed`)))
					})
					continue
				}
				if len(alarms) != 1 {
					t.Fatalf("%s: want 1 silence alarm on %s, got %d", w.function, w.metric, len(alarms))
				}
				for id := range alarms {
					checkResource(t, st, w.function+" silence alarm", "AWS::CloudWatch::Alarm", id, map[string]any{
						"Dimensions":         []any{map[string]any{"Name": "Function", "Value": w.function}},
						"Statistic":          "Sum",
						"Threshold":          1,
						"ComparisonOperator": "LessThanThreshold",
						"Period":             tc.period,
						"EvaluationPeriods":  tc.periods,
						"DatapointsToAlarm":  tc.periods,
						"TreatMissingData":   "breaching",
						"AlarmActions":       []any{ref(topic)},
						"AlarmDescription":   assertions.Match_StringLikeRegexp(jsii.String(`did not complete in .*` + regexpQuote(tc.schedule))),
					})
				}
			}
		})
	}
}

// In organization mode every unit emits RunsCompleted or AuditsCompleted,
// so the silence alarms read the sweeps' summaries instead, with the same
// window; the units a summary counts as unreachable or failed are alarmed
// over one schedule interval.
func TestOrgSweepAlarms(t *testing.T) {
	for _, tc := range []struct {
		name            string
		schedule        string
		period, periods int // silence alarm; 0 = none
		sweepPeriods    int // unreachable and failed alarms (period: period, or 3600)
	}{
		{"daily", "cron(0 3 * * ? *)", 3600, 48, 24},
		{"hourly: five-minute periods", "rate(1 hour)", 300, 24, 12},
		{"weekdays", "cron(0 3 ? * MON-FRI *)", 3600, 144, 72},
		{"weekly: no silence alarm, the sweep alarms look back 7 days", "cron(0 3 ? * MON *)", 0, 0, 168},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := synthOrg(t, testOrg(), StackProps{CleanupSchedule: tc.schedule, SharingSchedule: tc.schedule})
			topic := mustTopic(t, st)
			for _, metric := range []string{emf.RunsCompleted, emf.AuditsCompleted} {
				if a := alarmByMetric(st, emf.Namespace, metric); len(a) != 0 {
					t.Errorf("organization mode: an alarm reads %s, which any single unit emits: %v", metric, a)
				}
			}
			byFunction := func(metric string) map[string]string {
				out := map[string]string{}
				for id, p := range alarmByMetric(st, emf.Namespace, metric) {
					dims := list(p["Dimensions"])
					if len(dims) != 1 {
						t.Fatalf("%s: dimensions %v, want Function alone (the sweep is a property)", id, dims)
					}
					d, _ := dims[0].(map[string]any)
					if d["Name"] != emf.DimensionFunction {
						t.Fatalf("%s: dimension %v", id, d)
					}
					out[fmt.Sprint(d["Value"])] = id
				}
				return out
			}
			silent := byFunction(emf.SweepsSummarized)
			if tc.period == 0 {
				if len(silent) != 0 {
					t.Errorf("want no silence alarm for %s, got %v", tc.schedule, silent)
				}
			} else if len(silent) != 2 || silent[CleanupFunctionName] == "" || silent[SharingFunctionName] == "" {
				t.Errorf("silence alarms on %s: %v, want one per job's function", emf.SweepsSummarized, silent)
			}
			for fn, id := range silent {
				checkResource(t, st, fn+" silence alarm", "AWS::CloudWatch::Alarm", id, map[string]any{
					"Statistic":          "Sum",
					"Threshold":          1,
					"ComparisonOperator": "LessThanThreshold",
					"Period":             tc.period,
					"EvaluationPeriods":  tc.periods,
					"DatapointsToAlarm":  tc.periods,
					"TreatMissingData":   "breaching",
					"AlarmActions":       []any{ref(topic)},
					"AlarmDescription":   assertions.Match_StringLikeRegexp(jsii.String(`did not complete in .*no sweep summary was published`)),
				})
			}
			period := tc.period
			if period == 0 {
				period = 3600
			}
			for _, w := range []struct{ metric, description string }{
				{emf.SweepUnitsUnreachable, `accounts unreachable in the last (cleanup sweep|sharing audit)`},
				{emf.SweepUnitsFailed, `units failed in the last (cleanup sweep|sharing audit)`},
			} {
				alarms := byFunction(w.metric)
				if len(alarms) != 2 || alarms[CleanupFunctionName] == "" || alarms[SharingFunctionName] == "" {
					t.Fatalf("alarms on %s: %v, want one per job's function", w.metric, alarms)
				}
				for fn, id := range alarms {
					checkResource(t, st, fn+" "+w.metric+" alarm", "AWS::CloudWatch::Alarm", id, map[string]any{
						"Statistic":          "Maximum",
						"Threshold":          1,
						"ComparisonOperator": "GreaterThanOrEqualToThreshold",
						"Period":             period,
						"EvaluationPeriods":  tc.sweepPeriods,
						"DatapointsToAlarm":  1,
						"TreatMissingData":   "notBreaching",
						"AlarmActions":       []any{ref(topic)},
						"AlarmDescription":   assertions.Match_StringLikeRegexp(jsii.String(w.description)),
					})
				}
			}
		})
	}
	// The dashboard shows the sweeps and the units queues.
	st := synthOrg(t, testOrg(), StackProps{})
	_, dash := onlyResource(t, st, "AWS::CloudWatch::Dashboard")
	body := render(dash["DashboardBody"])
	for _, want := range []string{emf.SweepsSummarized, emf.SweepUnitsUnreachable, emf.SweepUnitsFailed, "ApproximateAgeOfOldestMessage"} {
		if !strings.Contains(body, want) {
			t.Errorf("organization dashboard lacks %q", want)
		}
	}
}

func regexpQuote(s string) string {
	r := strings.NewReplacer(`(`, `\(`, `)`, `\)`, `*`, `\*`, `?`, `\?`)
	return r.Replace(s)
}

// Every other alarm fires on something that happened, so silence is fine.
func TestFailureAlarms(t *testing.T) {
	st := synth(t, StackProps{})
	topic, _ := notificationTopic(t, st)
	for _, metric := range []string{emf.ActionsFailed, emf.InventoryBlocked, emf.AMIsUntagged, emf.AMIsWithoutCreator} {
		alarms := alarmByMetric(st, emf.Namespace, metric)
		if len(alarms) != 1 {
			t.Fatalf("want 1 alarm on %s, got %d", metric, len(alarms))
		}
		for id := range alarms {
			checkResource(t, st, metric+" alarm", "AWS::CloudWatch::Alarm", id, map[string]any{
				"Dimensions":         []any{map[string]any{"Name": "Function", "Value": CleanupFunctionName}},
				"Threshold":          1,
				"ComparisonOperator": "GreaterThanOrEqualToThreshold",
				"EvaluationPeriods":  1,
				"TreatMissingData":   "notBreaching",
				"AlarmActions":       []any{ref(topic)},
			})
		}
	}

	// The kill switch alarm reads every function's KillSwitchEngaged.
	var engaged []string
	for id, r := range resources(st, "AWS::CloudWatch::Alarm") {
		p := properties(r)
		for _, m := range list(p["Metrics"]) {
			mm, _ := m.(map[string]any)
			stat, _ := mm["MetricStat"].(map[string]any)
			metric, _ := stat["Metric"].(map[string]any)
			if metric["MetricName"] == emf.KillSwitchEngaged && metric["Namespace"] == emf.Namespace {
				dims := list(metric["Dimensions"])
				d, _ := dims[0].(map[string]any)
				engaged = append(engaged, fmt.Sprint(d["Value"]))
				checkResource(t, st, "kill switch alarm", "AWS::CloudWatch::Alarm", id, map[string]any{
					"Threshold":          1,
					"ComparisonOperator": "GreaterThanOrEqualToThreshold",
					"TreatMissingData":   "notBreaching",
					"AlarmActions":       []any{ref(topic)},
				})
			}
		}
	}
	slices.Sort(engaged)
	if !slices.Equal(engaged, []string{CleanupFunctionName, SharingFunctionName, TaggerFunctionName}) {
		t.Errorf("kill switch alarm reads %v, want every function", engaged)
	}

	throttles := alarmByMetric(st, "AWS/Lambda", "Throttles")
	if len(throttles) != 3 {
		t.Fatalf("want a throttles alarm per function, got %d", len(throttles))
	}
	watched := map[string]bool{}
	for id, p := range throttles {
		dims := list(p["Dimensions"])
		if len(dims) != 1 {
			t.Fatalf("%s: dimensions %v", id, dims)
		}
		d, _ := dims[0].(map[string]any)
		watched[refID(d["Value"])] = true
		checkResource(t, st, "throttles alarm", "AWS::CloudWatch::Alarm", id, map[string]any{
			"Period":             300,
			"Threshold":          1,
			"ComparisonOperator": "GreaterThanOrEqualToThreshold",
			"TreatMissingData":   "notBreaching",
			"AlarmActions":       []any{ref(topic)},
		})
	}
	for _, f := range allFunctions(t, st) {
		if !watched[f.id] {
			t.Errorf("no throttles alarm on the %s function", f.name)
		}
	}
	// No alarm anywhere is left on the default "missing" treatment, which
	// would leave it INSUFFICIENT_DATA instead of saying what silence means.
	for id, r := range resources(st, "AWS::CloudWatch::Alarm") {
		if tm := properties(r)["TreatMissingData"]; tm != "breaching" && tm != "notBreaching" {
			t.Errorf("alarm %s: TreatMissingData %v", id, tm)
		}
	}
}

func TestDashboard(t *testing.T) {
	st := synth(t, StackProps{})
	_, props := onlyResource(t, st, "AWS::CloudWatch::Dashboard")
	// Dashboards are global: one per stack and region.
	if name := render(props["DashboardName"]); name != "${AWS::StackName}-${AWS::Region}" && name != "Test-${AWS::Region}" {
		t.Errorf("dashboard name %q: want the stack name and the region", name)
	}
	body := render(props["DashboardBody"])
	for _, want := range []string{
		emf.Namespace, emf.AMIsDeregistered, emf.SnapshotsDeleted, emf.GiBFreed,
		emf.Violations, emf.PrincipalsRevoked, emf.ActionsFailed, emf.RunsCompleted, emf.AMIsUntagged,
		"ApproximateNumberOfMessagesVisible", // DLQ depth
		`"alarms":[`,                         // the alarm status widget
	} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard body lacks %q", want)
		}
	}
	for id := range resources(st, "AWS::CloudWatch::Alarm") {
		if !strings.Contains(body, "${"+id+".Arn}") {
			t.Errorf("alarm %s is not on the dashboard's status widget", id)
		}
	}
}

func TestLogsInsightsQueries(t *testing.T) {
	st := synth(t, StackProps{})
	queries := resources(st, "AWS::Logs::QueryDefinition")
	if len(queries) != 5 {
		t.Fatalf("want 5 saved queries, got %d", len(queries))
	}
	logGroups := map[string]bool{}
	for id := range resources(st, "AWS::Logs::LogGroup") {
		logGroups[id] = true
	}
	for id, r := range queries {
		p := properties(r)
		name, _ := p["Name"].(string)
		if !strings.HasPrefix(name, "ami-housekeeper/Test/") {
			t.Errorf("%s: name %q not under ami-housekeeper/Test/", id, name)
		}
		q, _ := p["QueryString"].(string)
		if !strings.Contains(q, "| filter ") || !strings.Contains(q, "| sort @timestamp desc") {
			t.Errorf("%s: query %q", id, q)
		}
		groups := list(p["LogGroupNames"])
		if len(groups) == 0 {
			t.Errorf("%s: no log groups", id)
		}
		for _, g := range groups {
			if !logGroups[refID(g)] {
				t.Errorf("%s: log group %v is not one of the stack's", id, g)
			}
		}
	}
}
