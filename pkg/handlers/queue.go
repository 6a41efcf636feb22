package handlers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
)

// Backoff of a failed record in its queue: BackoffBase doubled per receive,
// at most BackoffMax, plus up to BackoffJitter of that, so records
// throttled together do not all come back together.
const (
	BackoffBase   = 15 * time.Second
	BackoffMax    = 300 * time.Second
	BackoffJitter = 0.2

	maxVisibility = 12 * time.Hour
)

// Backoff is the visibility timeout of a record that failed on its
// receiveCount-th receive, before jitter: min(15 s × 2^(n−1), 300 s).
// With the queue's maxReceiveCount of 10 a record waits about 28 minutes in
// all before the DLQ, far longer than any burst drains.
func Backoff(receiveCount int) time.Duration {
	if receiveCount < 1 {
		receiveCount = 1
	}
	d := BackoffBase
	for i := 1; i < receiveCount && d < BackoffMax; i++ {
		d *= 2
	}
	return min(d, BackoffMax)
}

// Queues puts failed records back in their queue for later. It is built
// once per instance: the queue URLs it looks up are cached.
type Queues struct {
	client func(region string) awsapi.QueueSQS
	// jitter returns a duration in [0, max); injectable for the tests.
	jitter func(max time.Duration) time.Duration

	mu   sync.Mutex
	urls map[string]string // queue ARN → URL
}

// NewQueues returns Queues over the SQS clients of each region.
func NewQueues(client func(region string) awsapi.QueueSQS) *Queues {
	return &Queues{client: client, urls: map[string]string{}, jitter: func(max time.Duration) time.Duration {
		if max <= 0 {
			return 0
		}
		return rand.N(max) //nolint:gosec // jitter, not a secret
	}}
}

// WithJitter replaces the random jitter (tests).
func (q *Queues) WithJitter(jitter func(max time.Duration) time.Duration) *Queues {
	q.jitter = jitter
	return q
}

// VisibilityTimeout is the timeout a record failed on its receiveCount-th
// receive gets: Backoff plus jitter.
func (q *Queues) VisibilityTimeout(receiveCount int) time.Duration {
	b := Backoff(receiveCount)
	return b + q.jitter(time.Duration(float64(b)*BackoffJitter))
}

// Delay sets rec's visibility timeout to d, so the record waits in the
// queue rather than in Lambda.
func (q *Queues) Delay(ctx context.Context, rec amievents.SQSRecord, d time.Duration) error {
	if rec.QueueName == "" {
		return fmt.Errorf("message %s: eventSourceARN %q is not an SQS queue ARN", rec.MessageID, rec.QueueARN)
	}
	client := q.client(rec.QueueRegion)
	url, err := q.url(ctx, client, rec)
	if err != nil {
		return err
	}
	// SQS takes 0..43200 s (12 hours).
	secs := int32(min(max(d, 0), maxVisibility) / time.Second)
	_, err = client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: aws.String(rec.ReceiptHandle), VisibilityTimeout: secs,
	})
	if err != nil {
		return fmt.Errorf("changing the visibility of message %s in %s to %s: %w", rec.MessageID, rec.QueueARN, d, err)
	}
	return nil
}

func (q *Queues) url(ctx context.Context, client awsapi.QueueSQS, rec amievents.SQSRecord) (string, error) {
	q.mu.Lock()
	url, ok := q.urls[rec.QueueARN]
	q.mu.Unlock()
	if ok {
		return url, nil
	}
	out, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(rec.QueueName), QueueOwnerAWSAccountId: aws.String(rec.QueueAccount)})
	if err != nil {
		return "", fmt.Errorf("looking up the URL of queue %s: %w", rec.QueueARN, err)
	}
	url = aws.ToString(out.QueueUrl)
	q.mu.Lock()
	q.urls[rec.QueueARN] = url
	q.mu.Unlock()
	return url, nil
}
