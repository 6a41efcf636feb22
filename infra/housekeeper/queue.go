package housekeeper

import (
	"fmt"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
)

// Event queue settings. A release burst (1,000 AMIs, two events each) waits
// in the queue instead of in Lambda: the event source mapping runs at most
// ratelimit.MaxConcurrency instances, each pacing its EC2 calls to its part
// of the account's buckets (pkg/ratelimit), and a record that is still
// throttled goes back to the queue with a delay that grows with its
// receive count, set by the function.
const (
	// eventBatchSize records per invocation, Lambda's largest without a
	// batching window beyond 1 s: at the tagger's per-instance share
	// (CreateTags 1.5/s, DescribeImages 1.92/s, pkg/ratelimit) a batch
	// takes a few seconds, well inside its 30 s timeout.
	eventBatchSize = 10
	// eventBatchingWindow fills batches during a burst without holding a
	// lone event back more than a second. Duplicate deliveries, and an
	// AMI's two events when they arrive together, share a batch and cost
	// one piece of work.
	eventBatchingWindowSeconds = 1
	// eventMaxReceives before a record moves to the queue's DLQ: the
	// function's backoff (15 s doubling, capped at 5 min) makes ten
	// receives about half an hour, far beyond any burst's drain time.
	eventMaxReceives = 10
	// eventQueueAgeAlarm is how long the oldest record may wait before
	// someone is told: a burst of 1,000 AMIs drains in minutes.
	eventQueueAgeAlarm = 15 * 60
)

// bufferEvents puts an SQS queue between the function's event rules and the
// function, consumed through an event source mapping. Rules made after it
// (cloudTrailRule, imageAvailableRule) deliver to the queue; schedules
// still invoke the function.
func (f *goFunction) bufferEvents(scope constructs.Construct, name string, timeout awscdk.Duration, topic awssns.ITopic) {
	maxConcurrency, ok := ratelimit.MaxConcurrency[name]
	if !ok {
		panic(fmt.Sprintf("function %s: no maximum concurrency in ratelimit.MaxConcurrency", name))
	}
	dlq := awssqs.NewQueue(scope, jsii.String("EventDeadLetterQueue"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	suppressDeadLetterQueue(dlq)
	queue := awssqs.NewQueue(scope, jsii.String("EventQueue"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL: jsii.Bool(true),
		// Lambda requires at least the function's timeout; a batch whose
		// invocation failed outright comes back a minute after it.
		// Throttled records get their own, growing delay from the function.
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(*timeout.ToSeconds(nil) + 60)),
		RetentionPeriod:   awscdk.Duration_Days(jsii.Number(4)),
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: dlq, MaxReceiveCount: jsii.Number(eventMaxReceives)},
	})
	f.Function.AddEventSource(awslambdaeventsources.NewSqsEventSource(queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(eventBatchSize),
		MaxBatchingWindow:       awscdk.Duration_Seconds(jsii.Number(eventBatchingWindowSeconds)),
		MaxConcurrency:          jsii.Number(float64(maxConcurrency)),
		ReportBatchItemFailures: jsii.Bool(true),
	}))
	cdknag.NagSuppressions_AddResourceSuppressions(f.Function, &[]*cdknag.NagPackSuppression{
		{Id: jsii.String("Serverless-LambdaEventSourceMappingDestination"), Reason: jsii.String(
			"The event source mapping reads an SQS queue, for which Lambda supports no on-failure destination: a record failing ten receives moves to the queue's own dead-letter queue (redrive policy), alarmed on its depth.")},
	}, jsii.Bool(true))
	// Each instance paces itself to its part of the function's share:
	// the mapping's instances and any scheduled one count.
	f.Function.AddEnvironment(jsii.String(ratelimit.EnvMaxConcurrency), jsii.String(strconv.Itoa(ratelimit.Instances(name))), nil)
	f.EventQueue, f.EventDeadLetterQueue = queue, dlq

	if topic == nil {
		return
	}
	action := awscloudwatchactions.NewSnsAction(topic)
	five := awscdk.Duration_Minutes(jsii.Number(5))
	for _, a := range []struct {
		id, description string
		metric          awscloudwatch.IMetric
		threshold       float64
	}{
		{"EventQueueAgeAlarm", fmt.Sprintf("events waited more than %d minutes in the queue: the function is not keeping up or not consuming (see the runbook, Queues and bursts)", eventQueueAgeAlarm/60),
			queue.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}), eventQueueAgeAlarm},
		{"EventDeadLetterAlarm", fmt.Sprintf("events failed %d receives and moved to the event queue's DLQ (redrive them, see the runbook)", eventMaxReceives),
			dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}), 1},
	} {
		alarm := awscloudwatch.NewAlarm(scope, jsii.String(a.id), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(fmt.Sprintf("ami-housekeeper %s: %s", name, a.description)),
			Metric:             a.metric,
			Threshold:          jsii.Number(a.threshold),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		alarm.AddAlarmAction(action)
		f.Alarms = append(f.Alarms, alarm)
	}
}

// eventTarget is where the function's event rules deliver: its queue when
// it has one, else the function itself. Events EventBridge cannot deliver
// go to the function's DLQ either way.
func (f *goFunction) eventTarget() awsevents.IRuleTarget {
	if f.EventQueue == nil {
		return f.target()
	}
	return awseventstargets.NewSqsQueue(f.EventQueue, &awseventstargets.SqsQueueProps{
		DeadLetterQueue: f.DeadLetterQueue,
		RetryAttempts:   jsii.Number(asyncRetryAttempts),
		MaxEventAge:     awscdk.Duration_Hours(jsii.Number(asyncMaxEventAge)),
	})
}
