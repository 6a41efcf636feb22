package amievents

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// EventSourceSQS is the eventSource of every record Lambda's SQS event
// source mapping delivers.
const EventSourceSQS = "aws:sqs"

// SQSRecord is one message of an SQS batch. Its body is the EventBridge
// event, unchanged (EventBridge's SQS target); Parse reads it.
type SQSRecord struct {
	MessageID     string
	ReceiptHandle string
	Body          []byte
	// ReceiveCount is ApproximateReceiveCount: 1 on the first delivery.
	ReceiveCount int
	// SentAt is when the message entered the queue (SentTimestamp); zero
	// when absent.
	SentAt time.Time
	// QueueARN is the queue's ARN (eventSourceARN).
	QueueARN string
	// QueueRegion, QueueAccount and QueueName come from QueueARN; empty
	// when it is not an SQS ARN.
	QueueRegion, QueueAccount, QueueName string
}

// probe reads only whether the payload has a Records member.
type probe struct {
	Records json.RawMessage `json:"Records"`
}

// ParseSQS tells an SQS batch from a plain EventBridge event. It returns
// (nil, nil) when raw is not an object with a "Records" member: a plain
// event (or bad input), for Parse. An object with "Records" is a batch, and
// every record must be an SQS message (eventSource "aws:sqs") with a
// messageId: S3 and SNS notifications also carry "Records" and are refused
// whole, with an *InvalidEventError naming the record. A record's body is
// not parsed here: a bad body is one bad record, not a bad batch.
func ParseSQS(raw []byte) ([]SQSRecord, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil
	}
	var p probe
	if err := json.Unmarshal(trimmed, &p); err != nil || p.Records == nil {
		return nil, nil //nolint:nilerr // not a batch: Parse says what is wrong with it
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(trimmed, &ev); err != nil {
		return nil, invalid("Records", "not a list of SQS messages: %v", err)
	}
	if len(ev.Records) == 0 {
		return nil, invalid("Records", "empty; expected at least one SQS message")
	}
	out := make([]SQSRecord, 0, len(ev.Records))
	for i, r := range ev.Records {
		field := "Records[" + strconv.Itoa(i) + "]"
		if r.EventSource != EventSourceSQS {
			return nil, invalid(field+".eventSource", "%q is not an SQS message (%q); S3, SNS and other notifications are not delivered to this function",
				r.EventSource, EventSourceSQS)
		}
		if r.MessageId == "" {
			return nil, invalid(field+".messageId", "missing")
		}
		rec := SQSRecord{MessageID: r.MessageId, ReceiptHandle: r.ReceiptHandle, Body: []byte(r.Body), ReceiveCount: 1, QueueARN: r.EventSourceARN}
		// The attributes are Lambda's, not the sender's; an odd one only
		// costs the backoff or the queue age, never the record.
		if n, err := strconv.Atoi(r.Attributes["ApproximateReceiveCount"]); err == nil && n > 0 {
			rec.ReceiveCount = n
		}
		if ms, err := strconv.ParseInt(r.Attributes["SentTimestamp"], 10, 64); err == nil && ms > 0 {
			rec.SentAt = time.UnixMilli(ms)
		}
		if a, err := arn.Parse(r.EventSourceARN); err == nil && a.Service == "sqs" {
			rec.QueueRegion, rec.QueueAccount, rec.QueueName = a.Region, a.AccountID, a.Resource
		}
		out = append(out, rec)
	}
	return out, nil
}
