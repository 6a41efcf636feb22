package housekeeper

import (
	"fmt"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
)

// The tagger's and the sharing guard's events wait in an encrypted queue
// read by an event source mapping with a maximum concurrency and partial
// batch responses; records failing ten receives move to a DLQ; alarms watch
// the queue's age and that DLQ, not throttling.
func TestEventQueues(t *testing.T) {
	st := synth(t, StackProps{})
	topic, _ := notificationTopic(t, st)
	mappings := resources(st, "AWS::Lambda::EventSourceMapping")
	if len(mappings) != 2 {
		t.Fatalf("want 2 event source mappings (tagger, sharing), got %d", len(mappings))
	}
	for _, tc := range []struct {
		f       function
		timeout int
	}{
		{taggerOf(t, st), taggerTimeoutSeconds},
		{sharingOf(t, st), 15 * 60},
	} {
		f := tc.f
		if f.queue == "" {
			t.Fatalf("%s: no event source mapping", f.name)
		}
		check(t, f.name+" mapping", func() {
			st.ResourcePropertiesCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), map[string]any{
				"FunctionName":                   ref(f.id),
				"EventSourceArn":                 getAttArn(f.queue),
				"BatchSize":                      eventBatchSize,
				"MaximumBatchingWindowInSeconds": eventBatchingWindowSeconds,
				"ScalingConfig":                  map[string]any{"MaximumConcurrency": ratelimit.MaxConcurrency[f.name]},
				"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
			}, jsii.Number(1))
		})
		if env := envOf(f); env[ratelimit.EnvMaxConcurrency] != fmt.Sprint(ratelimit.Instances(f.name)) {
			t.Errorf("%s: %s = %v, want %d (the limiters must divide the share by every instance)",
				f.name, ratelimit.EnvMaxConcurrency, env[ratelimit.EnvMaxConcurrency], ratelimit.Instances(f.name))
		}

		_, queue := resourceByID(t, st, "AWS::SQS::Queue", f.queue)
		redrive, _ := queue["RedrivePolicy"].(map[string]any)
		eventDLQ := getAttID(redrive["deadLetterTargetArn"], "Arn")
		if eventDLQ == "" || eventDLQ == f.dlq || redrive["maxReceiveCount"] != float64(eventMaxReceives) {
			t.Errorf("%s queue: redrive %v, want its own DLQ after %d receives", f.name, redrive, eventMaxReceives)
		}
		checkResource(t, st, f.name+" event queue", "AWS::SQS::Queue", f.queue, map[string]any{
			"SqsManagedSseEnabled": true,
			// At least the function's timeout, or Lambda refuses the mapping.
			"VisibilityTimeout": tc.timeout + 60,
		})
		checkResource(t, st, f.name+" event DLQ", "AWS::SQS::Queue", eventDLQ, map[string]any{
			"SqsManagedSseEnabled":   true,
			"MessageRetentionPeriod": 14 * 24 * 3600,
		})
		for _, q := range []string{f.queue, eventDLQ} {
			check(t, f.name+" TLS only", func() {
				st.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
					"Queues": []any{ref(q)},
					"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
						"Effect":    "Deny",
						"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
					})})},
				})
			})
		}
		// Only the function's event rules may send to the queue.
		wantSenders := map[string]bool{}
		for id, props := range rulesTargeting(st, f) {
			if _, ok := props["EventPattern"]; ok {
				wantSenders[id] = true
			}
		}
		gotSenders := map[string]bool{}
		for _, r := range resources(st, "AWS::SQS::QueuePolicy") {
			p := properties(r)
			if qs := list(p["Queues"]); len(qs) != 1 || refID(qs[0]) != f.queue {
				continue
			}
			doc, _ := p["PolicyDocument"].(map[string]any)
			for _, raw := range list(doc["Statement"]) {
				st, _ := raw.(map[string]any)
				if st["Effect"] != "Allow" {
					continue
				}
				principal, _ := st["Principal"].(map[string]any)
				cond, _ := st["Condition"].(map[string]any)
				arnEq, _ := cond["ArnEquals"].(map[string]any)
				rule := getAttID(arnEq["aws:SourceArn"], "Arn")
				if principal["Service"] != "events.amazonaws.com" || !wantSenders[rule] {
					t.Errorf("%s queue: an Allow for someone other than its event rules: %v", f.name, st)
				}
				gotSenders[rule] = true
			}
		}
		if len(gotSenders) != len(wantSenders) || len(wantSenders) == 0 {
			t.Errorf("%s queue: writable by rules %v, want its event rules %v", f.name, gotSenders, wantSenders)
		}

		for _, a := range []struct {
			what, queue, metric string
			threshold           int
		}{
			{"queue age", f.queue, "ApproximateAgeOfOldestMessage", eventQueueAgeAlarm},
			{"event DLQ depth", eventDLQ, "ApproximateNumberOfMessagesVisible", 1},
		} {
			check(t, f.name+" "+a.what+" alarm", func() {
				st.ResourcePropertiesCountIs(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
					"Namespace":          "AWS/SQS",
					"MetricName":         a.metric,
					"Dimensions":         []any{map[string]any{"Name": "QueueName", "Value": getAtt(a.queue, "QueueName")}},
					"Threshold":          a.threshold,
					"ComparisonOperator": "GreaterThanOrEqualToThreshold",
					"TreatMissingData":   "notBreaching",
					"AlarmActions":       []any{ref(topic)},
				}, jsii.Number(1))
			})
		}
	}
	// The cleanup is only scheduled: no queue.
	if c := cleanupOf(t, st); c.queue != "" {
		t.Errorf("cleanup reads a queue %s", c.queue)
	}
}

// getAtt is {"Fn::GetAtt": [id, attr]}.
func getAtt(id, attr string) map[string]any { return map[string]any{"Fn::GetAtt": []any{id, attr}} }

// resourceByID returns the properties of the resource id of type typ.
func resourceByID(t *testing.T, st stackTemplate, typ, id string) (string, map[string]any) {
	t.Helper()
	r, ok := resources(st, typ)[id]
	if !ok {
		t.Fatalf("no %s %s", typ, id)
	}
	return id, properties(r)
}
