package housekeeper

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/infra/config"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emf"
)

// maxAlarmRange is CloudWatch's limit on an alarm's period times its
// evaluation periods (PutMetricAlarm: seven days; one day when the period is
// under an hour).
const maxAlarmRange = 7 * 24 * time.Hour

// MonitoringProps are the functions and schedules to watch.
type MonitoringProps struct {
	Topic           awssns.ITopic
	Tagger          *Tagger
	Cleanup         *Cleanup
	Sharing         *Sharing
	CleanupSchedule config.Schedule
	SharingSchedule config.Schedule
	// Org, in organization mode, is where the sweeps run as units: the
	// silence alarms read the sweeps' summaries, the summaries' unreachable
	// and failed units are alarmed, and the dashboard shows both with the
	// units queues.
	Org *OrgDeployment
	// Extra alarms to show with the others (organization mode's).
	Extra []awscloudwatch.Alarm
}

// Monitoring is the stack's alarms beyond each function's errors and DLQ
// alarms, its dashboard and its saved Logs Insights queries.
type Monitoring struct {
	constructs.Construct
	// Alarms by construct ID, for tests and for composing them.
	Alarms    map[string]awscloudwatch.Alarm
	Dashboard awscloudwatch.Dashboard
}

// NewMonitoring creates the alarms that catch silence (a sweep or audit
// that stopped completing: a disabled rule, a broken schedule, a function
// that fails before it reports), throttling, failed actions and blocked
// inventories, and the dashboard and queries operators read.
func NewMonitoring(scope constructs.Construct, id string, p *MonitoringProps) *Monitoring {
	c := constructs.NewConstruct(scope, jsii.String(id))
	m := &Monitoring{Construct: c, Alarms: map[string]awscloudwatch.Alarm{}}
	action := awscloudwatchactions.NewSnsAction(p.Topic)
	add := func(id string, props *awscloudwatch.AlarmProps) {
		a := awscloudwatch.NewAlarm(c, jsii.String(id), props)
		a.AddAlarmAction(action)
		m.Alarms[id] = a
	}

	// In organization mode every unit of a sweep emits the single-account
	// metrics (RunsCompleted, AuditsCompleted), so one finished unit would
	// keep the alarm quiet while the sweep never completes: the summary's
	// SweepsSummarized counts whole sweeps instead.
	completed := map[string]string{CleanupFunctionName: emf.RunsCompleted, SharingFunctionName: emf.AuditsCompleted}
	silent := "the rule may be disabled, the function failing before it reports, or its inventory incomplete"
	if p.Org != nil {
		completed = map[string]string{CleanupFunctionName: emf.SweepsSummarized, SharingFunctionName: emf.SweepsSummarized}
		silent = "no sweep summary was published: a unit is still queued, retrying or in the units DLQ, or the dispatcher's schedule is disabled or failing"
	}
	for _, s := range []struct {
		id, function, what string
		schedule           config.Schedule
	}{
		{"CleanupSilentAlarm", CleanupFunctionName, "the cleanup sweep", p.CleanupSchedule},
		{"SharingAuditSilentAlarm", SharingFunctionName, "the sharing audit", p.SharingSchedule},
	} {
		window := config.SilenceWindow(s.schedule)
		if window == 0 || window > maxAlarmRange {
			awscdk.Annotations_Of(c).AddWarningV2(jsii.String("ami-housekeeper:silence-alarm"), jsii.String(fmt.Sprintf(
				"%s runs on %s, less often than every 3.5 days: no alarm can wait two intervals (CloudWatch looks back 7 days at most), so a missed run is not alarmed",
				s.what, s.schedule.Expression)), nil)
			continue
		}
		period, periods := silencePeriods(window)
		add(s.id, &awscloudwatch.AlarmProps{
			AlarmDescription: jsii.String(fmt.Sprintf(
				"ami-housekeeper: %s did not complete in %s (two runs of %s): %s (see the runbook)",
				s.what, window, s.schedule.Expression, silent)),
			Metric: housekeeperMetric(s.function, completed[s.function], "Sum", period),
			// Every period of the window without a completed run: missing
			// data is the signal, so it counts as breaching.
			Threshold:          jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(periods),
			DatapointsToAlarm:  jsii.Number(periods),
			TreatMissingData:   awscloudwatch.TreatMissingData_BREACHING,
		})
	}
	if p.Org != nil {
		m.addSweepAlarms(add, p)
	}

	hour := awscdk.Duration_Hours(jsii.Number(1))
	atLeastOne := func(id, description string, metric awscloudwatch.IMetric) {
		add(id, &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String("ami-housekeeper: " + description),
			Metric:             metric,
			Threshold:          jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			EvaluationPeriods:  jsii.Number(1),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
	}
	atLeastOne("CleanupActionsFailedAlarm", "cleanup actions failed (the summary line lists them; they are retried on the next run)",
		housekeeperMetric(CleanupFunctionName, emf.ActionsFailed, "Sum", hour))
	atLeastOne("CleanupInventoryBlockedAlarm", "the cleanup could not read its whole inventory, so it removed nothing (the summary line's 'blocked' says why)",
		housekeeperMetric(CleanupFunctionName, emf.InventoryBlocked, "Sum", hour))
	// One write to an SSM parameter turns every function into audit mode,
	// the sharing guard included: say so whoever did it.
	five := awscdk.Duration_Minutes(jsii.Number(5))
	engaged := map[string]awscloudwatch.IMetric{}
	for id, fn := range map[string]string{"tagger": TaggerFunctionName, "cleanup": CleanupFunctionName, "sharing": SharingFunctionName} {
		engaged[id] = housekeeperMetric(fn, emf.KillSwitchEngaged, "Maximum", five)
	}
	atLeastOne("KillSwitchEngagedAlarm", "the kill switch is engaged: every function runs in audit mode, nothing is tagged, revoked or removed (the log lines' mode_reason say who and why; see the runbook)",
		awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression:   jsii.String("MAX([FILL(tagger, 0), FILL(cleanup, 0), FILL(sharing, 0)])"),
			UsingMetrics: &engaged,
			Label:        jsii.String("KillSwitchEngaged"),
			Period:       five,
		}))
	// The tagger is event-driven: a disabled rule or a trail that stopped
	// delivering fails nothing. The sweep counts the recent AMIs it missed.
	atLeastOne("TaggerMissedAMIsAlarm", "AMIs made 2 to 26 hours ago carry no tagger tags: its rules are disabled or it is failing (the cleanup summary's 'tagger' lists examples)",
		housekeeperMetric(CleanupFunctionName, emf.AMIsUntagged, "Maximum", hour))
	atLeastOne("TaggerWithoutCloudTrailAlarm", "AMIs made 2 to 26 hours ago were tagged without their creator: CloudTrail events are not arriving (no trail with management events, or the CloudTrail rule is disabled)",
		housekeeperMetric(CleanupFunctionName, emf.AMIsWithoutCreator, "Maximum", hour))
	for _, f := range []struct {
		id   string
		name string
		fn   interface {
			MetricThrottles(*awscloudwatch.MetricOptions) awscloudwatch.Metric
		}
	}{
		{"TaggerThrottlesAlarm", TaggerFunctionName, p.Tagger.Function},
		{"CleanupThrottlesAlarm", CleanupFunctionName, p.Cleanup.Function},
		{"SharingThrottlesAlarm", SharingFunctionName, p.Sharing.Function},
	} {
		atLeastOne(f.id, fmt.Sprintf("Lambda throttled the %s function (account concurrency exhausted, or two sweeps overlapping)", f.name),
			f.fn.MetricThrottles(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}))
	}

	m.Dashboard = newDashboard(c, p, m.Alarms)
	newQueries(c, p)
	return m
}

// addSweepAlarms alarms on the units of an organization sweep that did not
// run, as its published summary counts them, so that an account whose
// member role vanished is noticed by someone, not only listed in a
// summary. Each alarm looks at one schedule interval: it stays in alarm
// while the last sweep had such units, and a summary without them (a zero
// datapoint, or none) lets it return to OK.
func (m *Monitoring) addSweepAlarms(add func(string, *awscloudwatch.AlarmProps), p *MonitoringProps) {
	for _, j := range []struct {
		id, function, what string
		schedule           config.Schedule
	}{
		{"Cleanup", CleanupFunctionName, "cleanup sweep", p.CleanupSchedule},
		{"SharingAudit", SharingFunctionName, "sharing audit", p.SharingSchedule},
	} {
		period, periods := silencePeriods(sweepAlarmWindow(j.schedule))
		for _, a := range []struct{ id, metric, description string }{
			{"UnreachableAlarm", emf.SweepUnitsUnreachable, fmt.Sprintf(
				"ami-housekeeper: accounts unreachable in the last %s: the sweep could not assume their member role (missing, no longer trusting this deployment, external id differing) or their region is not enabled. The summary lists them with the reason: check the StackSet instance of each (see the runbook)", j.what)},
			{"FailedAlarm", emf.SweepUnitsFailed, fmt.Sprintf(
				"ami-housekeeper: units failed in the last %s: a unit's work failed on each of its %d receives and was recorded failed. The summary lists them with the error; the next sweep tries them again (see the runbook)", j.what, unitsMaxReceives)},
		} {
			add(j.id+"Sweep"+a.id, &awscloudwatch.AlarmProps{
				AlarmDescription:   jsii.String(a.description),
				Metric:             housekeeperMetric(j.function, a.metric, "Maximum", period),
				Threshold:          jsii.Number(1),
				ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
				EvaluationPeriods:  jsii.Number(periods),
				DatapointsToAlarm:  jsii.Number(1),
				TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
			})
		}
	}
}

// sweepAlarmWindow is the window of the alarms on a sweep's summary: one
// schedule interval, at most what CloudWatch looks back.
func sweepAlarmWindow(s config.Schedule) time.Duration {
	if s.MaxInterval == 0 || s.MaxInterval > maxAlarmRange {
		return maxAlarmRange
	}
	return s.MaxInterval
}

// silencePeriods splits a silence window into the alarm's period and
// evaluation periods: hours (five minutes for windows under three hours,
// as CloudWatch limits sub-hour periods to a day in all).
func silencePeriods(window time.Duration) (awscdk.Duration, int) {
	step := time.Hour
	if window < 3*time.Hour {
		step = 5 * time.Minute
	}
	periods := int(math.Ceil(float64(window) / float64(step)))
	return awscdk.Duration_Seconds(jsii.Number(step.Seconds())), periods
}

// housekeeperMetric is one of the functions' EMF metrics.
func housekeeperMetric(function, name, statistic string, period awscdk.Duration) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(emf.Namespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{emf.DimensionFunction: jsii.String(function)},
		Statistic:     jsii.String(statistic),
		Period:        period,
	})
}

// newDashboard shows what the housekeeper did and whether it is healthy.
func newDashboard(scope constructs.Construct, p *MonitoringProps, alarms map[string]awscloudwatch.Alarm) awscloudwatch.Dashboard {
	day := awscdk.Duration_Days(jsii.Number(1))
	graph := func(title string, metrics ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Left: &metrics, Width: jsii.Number(8), Height: jsii.Number(6),
		})
	}
	daily := func(function, name string) awscloudwatch.IMetric {
		return housekeeperMetric(function, name, "Sum", day)
	}
	var alarmList []interfacesawscloudwatch.IAlarmRef
	for _, id := range sortedKeys(alarms) {
		alarmList = append(alarmList, alarms[id])
	}
	for _, f := range []FunctionResources{p.Tagger.FunctionResources, p.Cleanup.FunctionResources, p.Sharing.FunctionResources} {
		for _, a := range f.Alarms {
			alarmList = append(alarmList, a)
		}
	}
	for _, a := range p.Extra {
		alarmList = append(alarmList, a)
	}
	lambdaHealth := func(f interface {
		MetricErrors(*awscloudwatch.MetricOptions) awscloudwatch.Metric
		MetricThrottles(*awscloudwatch.MetricOptions) awscloudwatch.Metric
		MetricInvocations(*awscloudwatch.MetricOptions) awscloudwatch.Metric
	}, name string) awscloudwatch.IWidget {
		opts := &awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: awscdk.Duration_Hours(jsii.Number(1))}
		return graph(name+": invocations, errors, throttles", f.MetricInvocations(opts), f.MetricErrors(opts), f.MetricThrottles(opts))
	}
	// Dashboards are global to the account: the region keeps the stacks of
	// a multi-region deployment from colliding.
	stack := awscdk.Stack_Of(scope)
	d := awscloudwatch.NewDashboard(scope, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName:   awscdk.Fn_Join(jsii.String("-"), jsii.Strings(*stack.StackName(), *stack.Region())),
		DefaultInterval: awscdk.Duration_Days(jsii.Number(14)),
	})
	d.AddWidgets(awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
		Title: jsii.String("ami-housekeeper alarms"), Alarms: &alarmList, Width: jsii.Number(24),
	}))
	d.AddWidgets(
		graph("Cleanup: AMIs deregistered, snapshots deleted (per day)",
			daily(CleanupFunctionName, emf.AMIsDeregistered), daily(CleanupFunctionName, emf.SnapshotsDeleted)),
		graph("Cleanup: GiB of snapshots freed (per day)", daily(CleanupFunctionName, emf.GiBFreed)),
		graph("Cleanup: AMIs marked, kept on recheck, actions failed",
			daily(CleanupFunctionName, emf.AMIsMarked), daily(CleanupFunctionName, emf.AMIsKeptOnRecheck), daily(CleanupFunctionName, emf.ActionsFailed)),
	)
	d.AddWidgets(
		graph("Sharing: violations found, principals revoked (per day)",
			daily(SharingFunctionName, emf.Violations), daily(SharingFunctionName, emf.PrincipalsRevoked)),
		graph("Tagger: recent AMIs missed, tagged without creator (per sweep)",
			housekeeperMetric(CleanupFunctionName, emf.AMIsUntagged, "Maximum", day), housekeeperMetric(CleanupFunctionName, emf.AMIsWithoutCreator, "Maximum", day)),
		graph("Completed runs (per day)", daily(CleanupFunctionName, emf.RunsCompleted), daily(SharingFunctionName, emf.AuditsCompleted)),
		graph("Dead-letter queues: events given up on",
			p.Tagger.DeadLetterQueue.MetricApproximateNumberOfMessagesVisible(nil),
			p.Cleanup.DeadLetterQueue.MetricApproximateNumberOfMessagesVisible(nil),
			p.Sharing.DeadLetterQueue.MetricApproximateNumberOfMessagesVisible(nil)),
	)
	d.AddWidgets(
		lambdaHealth(p.Tagger.Function, "Tagger"),
		lambdaHealth(p.Cleanup.Function, "Cleanup"),
		lambdaHealth(p.Sharing.Function, "Sharing guard"),
	)
	if o := p.Org; o != nil {
		perSweep := func(function, name string) awscloudwatch.IMetric {
			return housekeeperMetric(function, name, "Maximum", day)
		}
		five := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum")}
		d.AddWidgets(
			graph("Organization sweeps summarized (per day)",
				daily(CleanupFunctionName, emf.SweepsSummarized), daily(SharingFunctionName, emf.SweepsSummarized)),
			graph("Organization sweeps: units unreachable, failed (per sweep)",
				perSweep(CleanupFunctionName, emf.SweepUnitsUnreachable), perSweep(CleanupFunctionName, emf.SweepUnitsFailed),
				perSweep(SharingFunctionName, emf.SweepUnitsUnreachable), perSweep(SharingFunctionName, emf.SweepUnitsFailed)),
			// Seconds and counts: the DLQs on the right axis.
			awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
				Title: jsii.String("Units queues: oldest unit (s, left), units in the DLQs (right)"),
				Left: &[]awscloudwatch.IMetric{
					o.CleanupUnits.Queue.MetricApproximateAgeOfOldestMessage(five), o.AuditUnits.Queue.MetricApproximateAgeOfOldestMessage(five)},
				Right: &[]awscloudwatch.IMetric{
					o.CleanupUnits.DeadLetterQueue.MetricApproximateNumberOfMessagesVisible(five), o.AuditUnits.DeadLetterQueue.MetricApproximateNumberOfMessagesVisible(five)},
				Width: jsii.Number(8), Height: jsii.Number(6),
			}),
		)
	}
	return d
}

// newQueries saves the Logs Insights queries the runbook uses, under
// "ami-housekeeper/<stack>/" in the console's query list.
func newQueries(scope constructs.Construct, p *MonitoringProps) {
	stack := awscdk.Stack_Of(scope)
	cleanupLogs := []awslogs.ILogGroup{p.Cleanup.LogGroup}
	for _, q := range []struct {
		id, name, query string
		groups          []awslogs.ILogGroup
	}{
		{"CleanupDecisionsQuery", "cleanup decisions (why each AMI was kept, marked or removed)",
			"fields @timestamp, image_id, name, action, outcome, reasons.0, delete_after, mode, mode_reason\n" +
				"| filter msg = \"cleanup decision\"\n| sort @timestamp desc", cleanupLogs},
		{"CleanupRemovalsQuery", "cleanup removals (AMIs deregistered, snapshots deleted, GiB)",
			"fields @timestamp, image_id, name, outcome, snapshot_ids.0, size_gib\n" +
				"| filter msg = \"cleanup decision\" and action = \"deregister\"\n| sort @timestamp desc", cleanupLogs},
		{"CleanupSummariesQuery", "cleanup summaries (one line per run; a blocked run says why)",
			"fields @timestamp, region, mode, mode_reason, blocked, totals.considered, duration_ms\n" +
				"| filter msg = \"cleanup summary\"\n| sort @timestamp desc", cleanupLogs},
		{"SharingViolationsQuery", "sharing violations (found, revoked, held, audits that did not finish)",
			"fields @timestamp, event, image_id, outcome, reason, mode, mode_reason\n" +
				"| filter msg = \"sharing invocation\" and outcome in [\"revoked\", \"would-revoke\", \"partial\", \"held\", \"audit-incomplete\", \"audit-failed\"]\n" +
				"| sort @timestamp desc", []awslogs.ILogGroup{p.Sharing.LogGroup}},
		{"NeedsAHumanQuery", "needs a human (errors, warnings, rejected events, the kill switch)",
			"fields @timestamp, function, msg, outcome, reason, error, error_kind, mode_reason\n" +
				"| filter level in [\"ERROR\", \"WARN\"] or outcome in [\"rejected\", \"error\", \"tagged-partial\"] or mode_reason like /kill switch/\n" +
				"| sort @timestamp desc", []awslogs.ILogGroup{p.Tagger.LogGroup, p.Cleanup.LogGroup, p.Sharing.LogGroup}},
	} {
		names := make([]any, len(q.groups))
		for i, g := range q.groups {
			names[i] = g.LogGroupName()
		}
		awslogs.NewCfnQueryDefinition(scope, jsii.String(q.id), &awslogs.CfnQueryDefinitionProps{
			Name:          jsii.String("ami-housekeeper/" + *stack.StackName() + "/" + q.name),
			QueryString:   jsii.String(q.query),
			LogGroupNames: &names,
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
