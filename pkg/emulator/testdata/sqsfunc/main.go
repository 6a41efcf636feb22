// Command sqsfunc is a stand-in Lambda function for the event source
// mapping's tests (built by them; testdata keeps it out of ./...). It takes
// an SQS batch and answers with ReportBatchItemFailures. Each record's body
// says what to do with it:
//
//	{"fail_until": n}   report the record as failed while its
//	                    ApproximateReceiveCount is below n (0: never)
//	{"crash_until": n}  fail the whole invocation (a function error) while
//	                    the record's receive count is below n
//	{"sleep_ms": n}     hold the invocation n ms (the longest record wins)
//
// It prints one JSON line per invocation, with when it started and ended
// (Unix nanoseconds), the records it saw (message ID, body and receive count)
// and the payload's eventSource/ARN/region, so a test can check from the
// function's side what the mapping delivered and how many ran at once.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

type instruction struct {
	FailUntil  int `json:"fail_until"`
	CrashUntil int `json:"crash_until"`
	SleepMS    int `json:"sleep_ms"`
}

type seen struct {
	MessageID string            `json:"message_id"`
	Body      string            `json:"body"`
	Receives  int               `json:"receives"`
	Record    events.SQSMessage `json:"record"`
}

func handle(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	start := time.Now()
	var resp events.SQSEventResponse
	var recs []seen
	sleep, crash := 0, false
	for _, r := range ev.Records {
		var in instruction
		_ = json.Unmarshal([]byte(r.Body), &in)
		n, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"])
		recs = append(recs, seen{MessageID: r.MessageId, Body: r.Body, Receives: n, Record: r})
		sleep = max(sleep, in.SleepMS)
		if n < in.CrashUntil {
			crash = true
		}
		if n < in.FailUntil {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		}
	}
	time.Sleep(time.Duration(sleep) * time.Millisecond)
	line, _ := json.Marshal(map[string]any{"msg": "sqsfunc batch", "start_ns": start.UnixNano(), "end_ns": time.Now().UnixNano(),
		"records": recs, "crash": crash, "failures": len(resp.BatchItemFailures)})
	fmt.Fprintln(os.Stdout, string(line))
	if crash {
		return resp, errors.New("sqsfunc: crash requested")
	}
	return resp, nil
}

func main() { lambda.Start(handle) }
