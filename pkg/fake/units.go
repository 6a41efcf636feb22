package fake

import (
	"context"
	"crypto/md5" //nolint:gosec // SQS's own body checksum is MD5
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQS is an in-memory SQS for the organization sweep's units queues
// (awsapi.UnitsSQS): the dispatcher's GetQueueUrl and SendMessageBatch,
// with SQS's rules (1-10 entries with distinct ids of [A-Za-z0-9_-]{1,80},
// bodies and batches of at most 1 MiB, a FIFO queue's MessageGroupId and
// MessageDeduplicationId required unless the queue deduplicates by
// content, no per-message DelaySeconds on FIFO, a deduplication id seen in
// the last 5 minutes accepted but not enqueued again) and the consumer's
// side that Lambda's event source mapping plays (Receive, Delete, Return):
// on a FIFO queue a message is delivered only while no earlier message of
// its group is in flight, so one group's messages are worked on one at a
// time, in order.
type SQS struct {
	mu sync.Mutex
	// Account and Region go into the queue URLs.
	Account, Region string
	// Now is the clock of the deduplication window (time.Now when nil).
	Now func() time.Time
	// Calls counts calls per operation name.
	Calls map[string]int
	// Errors, if set for an operation, is returned (once per entry, in
	// order) instead of the call.
	Errors map[string][]error
	// FailEntries, if set, fails the next batch entries one each, in order,
	// with these codes (SQS's per-entry failures, e.g. "InternalError"); an
	// empty code lets its entry through.
	FailEntries []string

	queues map[string]*fakeQueue // by URL
	nextID int
}

// DedupWindow is SQS's deduplication interval on FIFO queues.
const DedupWindow = 5 * time.Minute

// maxMessageBytes is SQS's limit for one message and for one batch.
const maxMessageBytes = 1 << 20

type fakeQueue struct {
	name, url    string
	fifo         bool
	contentDedup bool
	messages     []*QueueMessage // not yet deleted, in send order
	sent         []QueueMessage  // every message enqueued, in send order
	dedup        map[string]dedupEntry
	inFlight     map[string]bool // FIFO groups with a message in flight
	seq          int
}

type dedupEntry struct {
	at        time.Time
	messageID string
}

// QueueMessage is one message as the fake holds it.
type QueueMessage struct {
	MessageID       string
	Body            string
	GroupID         string
	DeduplicationID string
	SequenceNumber  string
	Sent            time.Time
	// Receives counts deliveries (ApproximateReceiveCount).
	Receives int
	inFlight bool
}

var (
	batchIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
	// Group and deduplication ids: 1-128 of alphanumerics and punctuation.
	fifoIDPattern = regexp.MustCompile(`^[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@\[\\\]^_` + "`" + `{|}~]{1,128}$`)
)

// NewSQS returns an SQS without queues for account and region.
func NewSQS(account, region string) *SQS {
	return &SQS{Account: account, Region: region, Calls: map[string]int{}, Errors: map[string][]error{}, queues: map[string]*fakeQueue{}}
}

// CreateQueue creates a queue (FIFO when its name ends in .fifo) and
// returns its URL. It is set-up, not a modelled call.
func (f *SQS) CreateQueue(name string, contentBasedDeduplication bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	url := fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", f.Region, f.Account, name)
	if f.queues[url] != nil {
		panic("fake.SQS.CreateQueue: queue " + name + " exists")
	}
	fifo := strings.HasSuffix(name, ".fifo")
	if contentBasedDeduplication && !fifo {
		panic("fake.SQS.CreateQueue: content-based deduplication is for FIFO queues only")
	}
	f.queues[url] = &fakeQueue{name: name, url: url, fifo: fifo, contentDedup: contentBasedDeduplication,
		dedup: map[string]dedupEntry{}, inFlight: map[string]bool{}}
	return url
}

func (f *SQS) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *SQS) enter(op string) error {
	f.Calls[op]++
	if errs := f.Errors[op]; len(errs) > 0 {
		f.Errors[op] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *SQS) queue(url string) *fakeQueue {
	q := f.queues[url]
	if q == nil {
		panic("fake.SQS: no queue " + url)
	}
	return q
}

// GetQueueUrl returns a queue's URL by name (in the fake's own account).
func (f *SQS) GetQueueUrl(_ context.Context, in *sqs.GetQueueUrlInput, _ ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetQueueUrl"); err != nil {
		return nil, err
	}
	if o := aws.ToString(in.QueueOwnerAWSAccountId); o != "" && o != f.Account {
		panic("fake.SQS.GetQueueUrl: queues of another account are not modelled")
	}
	for _, q := range f.queues {
		if q.name == aws.ToString(in.QueueName) {
			return &sqs.GetQueueUrlOutput{QueueUrl: aws.String(q.url)}, nil
		}
	}
	return nil, &sqstypes.QueueDoesNotExist{Message: aws.String("fake: The specified queue does not exist.")}
}

func entryError(id, code, msg string) sqstypes.BatchResultErrorEntry {
	return sqstypes.BatchResultErrorEntry{Id: aws.String(id), Code: aws.String(code), Message: aws.String("fake: " + msg), SenderFault: code != "InternalError"}
}

// validBody says whether every character is one SQS accepts.
func validBody(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF) {
			continue
		}
		return false
	}
	return true
}

// SendMessageBatch enqueues up to 10 messages; each succeeds or fails on
// its own (Failed), except for what SQS refuses for the whole batch.
func (f *SQS) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("SendMessageBatch"); err != nil {
		return nil, err
	}
	q, ok := f.queues[aws.ToString(in.QueueUrl)]
	if !ok {
		return nil, &sqstypes.QueueDoesNotExist{Message: aws.String("fake: The specified queue does not exist.")}
	}
	switch n := len(in.Entries); {
	case n == 0:
		return nil, &sqstypes.EmptyBatchRequest{Message: aws.String("fake: There should be at least one SendMessageBatchRequestEntry in the request.")}
	case n > 10:
		return nil, &sqstypes.TooManyEntriesInBatchRequest{Message: aws.String(fmt.Sprintf("fake: Maximum number of entries per request are 10. You have sent %d.", n))}
	}
	ids := map[string]bool{}
	total := 0
	for _, e := range in.Entries {
		id := aws.ToString(e.Id)
		if !batchIDPattern.MatchString(id) {
			return nil, &sqstypes.InvalidBatchEntryId{Message: aws.String("fake: A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")}
		}
		if ids[id] {
			return nil, &sqstypes.BatchEntryIdsNotDistinct{Message: aws.String("fake: Id " + id + " repeated.")}
		}
		ids[id] = true
		if len(e.MessageAttributes) > 0 || len(e.MessageSystemAttributes) > 0 {
			panic("fake.SQS.SendMessageBatch: message attributes are not modelled")
		}
		total += len(aws.ToString(e.MessageBody))
	}
	if total > maxMessageBytes {
		return nil, &sqstypes.BatchRequestTooLong{Message: aws.String(fmt.Sprintf("fake: Batch requests cannot be longer than %d bytes. You have sent %d bytes.", maxMessageBytes, total))}
	}
	out := &sqs.SendMessageBatchOutput{}
	now := f.now()
	for _, e := range in.Entries {
		id, body := aws.ToString(e.Id), aws.ToString(e.MessageBody)
		if len(f.FailEntries) > 0 {
			code := f.FailEntries[0]
			f.FailEntries = f.FailEntries[1:]
			if code != "" {
				out.Failed = append(out.Failed, entryError(id, code, "injected failure"))
				continue
			}
		}
		group, dedup := aws.ToString(e.MessageGroupId), aws.ToString(e.MessageDeduplicationId)
		switch {
		case body == "":
			out.Failed = append(out.Failed, entryError(id, "MissingParameter", "The request must contain the parameter MessageBody."))
			continue
		case len(body) > maxMessageBytes || !validBody(body):
			out.Failed = append(out.Failed, entryError(id, "InvalidMessageContents", "message body too long or with characters SQS does not accept"))
			continue
		case q.fifo && group == "":
			out.Failed = append(out.Failed, entryError(id, "MissingParameter", "The request must contain the parameter MessageGroupId."))
			continue
		case q.fifo && (!fifoIDPattern.MatchString(group) || (dedup != "" && !fifoIDPattern.MatchString(dedup))):
			out.Failed = append(out.Failed, entryError(id, "InvalidParameterValue", "MessageGroupId or MessageDeduplicationId: 1-128 alphanumeric or punctuation characters"))
			continue
		case q.fifo && dedup == "" && !q.contentDedup:
			out.Failed = append(out.Failed, entryError(id, "InvalidParameterValue", "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly"))
			continue
		case q.fifo && e.DelaySeconds != 0:
			out.Failed = append(out.Failed, entryError(id, "InvalidParameterValue", "Value "+strconv.Itoa(int(e.DelaySeconds))+" for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type."))
			continue
		case !q.fifo && (group != "" || dedup != ""):
			panic("fake.SQS.SendMessageBatch: group and deduplication ids on a standard queue (fair queues) are not modelled")
		case !q.fifo && e.DelaySeconds != 0:
			panic("fake.SQS.SendMessageBatch: per-message DelaySeconds is not modelled")
		}
		sum := md5.Sum([]byte(body)) //nolint:gosec // SQS's own body checksum
		res := sqstypes.SendMessageBatchResultEntry{Id: aws.String(id), MD5OfMessageBody: aws.String(hex.EncodeToString(sum[:]))}
		if q.fifo {
			if dedup == "" {
				// Content-based deduplication: the SHA-256 of the body.
				h := sha256.Sum256([]byte(body))
				dedup = hex.EncodeToString(h[:])
			}
			if prev, ok := q.dedup[dedup]; ok && now.Sub(prev.at) < DedupWindow {
				// Accepted, not enqueued again.
				res.MessageId = aws.String(prev.messageID)
				out.Successful = append(out.Successful, res)
				continue
			}
		}
		f.nextID++
		m := &QueueMessage{MessageID: fmt.Sprintf("msg-%08d", f.nextID), Body: body, GroupID: group, DeduplicationID: dedup, Sent: now}
		if q.fifo {
			q.seq++
			m.SequenceNumber = fmt.Sprintf("%020d", q.seq)
			res.SequenceNumber = aws.String(m.SequenceNumber)
			q.dedup[dedup] = dedupEntry{at: now, messageID: m.MessageID}
		}
		res.MessageId = aws.String(m.MessageID)
		q.messages = append(q.messages, m)
		q.sent = append(q.sent, *m)
		out.Successful = append(out.Successful, res)
	}
	return out, nil
}

// Sent returns every message a queue accepted (duplicates within the
// deduplication window once), in send order, deleted ones included.
func (f *SQS) Sent(url string) []QueueMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]QueueMessage(nil), f.queue(url).sent...)
}

// Waiting is how many messages of a queue are not deleted yet (in flight
// or visible).
func (f *SQS) Waiting(url string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queue(url).messages)
}

// Receive delivers the oldest visible message a consumer may take now: on
// a FIFO queue, the first message of a group with nothing in flight. The
// message stays in flight until Delete or Return. False: nothing to take.
func (f *SQS) Receive(url string) (QueueMessage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queue(url)
	blocked := map[string]bool{}
	for _, m := range q.messages {
		if q.fifo {
			if blocked[m.GroupID] || q.inFlight[m.GroupID] {
				blocked[m.GroupID] = true
				continue
			}
			// Later messages of the group wait for this one.
			blocked[m.GroupID] = true
		}
		if m.inFlight {
			continue
		}
		m.inFlight = true
		m.Receives++
		if q.fifo {
			q.inFlight[m.GroupID] = true
		}
		return *m, true
	}
	return QueueMessage{}, false
}

func (q *fakeQueue) find(messageID string) (int, *QueueMessage) {
	for i, m := range q.messages {
		if m.MessageID == messageID {
			return i, m
		}
	}
	panic("fake.SQS: no message " + messageID + " in " + q.name)
}

// Delete removes a delivered message (the consumer is done with it).
func (f *SQS) Delete(url, messageID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queue(url)
	i, m := q.find(messageID)
	if !m.inFlight {
		panic("fake.SQS.Delete: message " + messageID + " is not in flight")
	}
	q.messages = append(q.messages[:i], q.messages[i+1:]...)
	delete(q.inFlight, m.GroupID)
}

// Return makes a delivered message visible again (a batch item failure, or
// its visibility timeout ran out); on a FIFO queue it is again the first
// of its group.
func (f *SQS) Return(url, messageID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queue(url)
	_, m := q.find(messageID)
	if !m.inFlight {
		panic("fake.SQS.Return: message " + messageID + " is not in flight")
	}
	m.inFlight = false
	delete(q.inFlight, m.GroupID)
}
