package fanout_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// TestMain stops the moto server the tests share, so none outlives them.
func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}

const (
	testRegion = "eu-west-1"
	testTable  = "housekeeper-ledger"
	testQueue  = "housekeeper-cleanup-units.fifo"
)

// world is one test's moto: the ledger table and a FIFO units queue.
type world struct {
	db       *dynamodb.Client
	sqs      *sqs.Client
	queueURL string
	ledger   *fanout.Ledger
	logs     *syncBuffer
	log      *slog.Logger
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	m := emulator.SharedMoto(t)
	cfg, err := m.Config(ctx, testRegion)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{db: dynamodb.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg), logs: &syncBuffer{}}
	if _, err := w.db.CreateTable(ctx, fanout.LedgerTableInput(testTable)); err != nil {
		t.Fatalf("creating the ledger table: %v", err)
	}
	out, err := w.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(testQueue), Attributes: map[string]string{
		string(sqstypes.QueueAttributeNameFifoQueue):                 "true",
		string(sqstypes.QueueAttributeNameContentBasedDeduplication): "false",
		string(sqstypes.QueueAttributeNameVisibilityTimeout):         "60",
	}})
	if err != nil {
		t.Fatalf("creating the units queue: %v", err)
	}
	w.queueURL = aws.ToString(out.QueueUrl)
	w.ledger = &fanout.Ledger{DB: &atomicDB{db: w.db}, Table: testTable}
	w.log = logging.New(w.logs, "debug")
	return w
}

// atomicDB makes each DynamoDB request atomic, as DynamoDB is: moto serves
// requests on threads and evaluates a condition and applies its write
// without a lock, so two concurrent conditional updates can both pass
// (and an increment be lost) there, never in DynamoDB. The workers still
// interleave between requests, which is the concurrency the ledger must
// handle.
type atomicDB struct {
	mu sync.Mutex
	db *dynamodb.Client
}

func (a *atomicDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.db.GetItem(ctx, in, optFns...)
}

func (a *atomicDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.db.PutItem(ctx, in, optFns...)
}

func (a *atomicDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.db.UpdateItem(ctx, in, optFns...)
}

func (a *atomicDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.db.TransactWriteItems(ctx, in, optFns...)
}

func (a *atomicDB) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.db.Query(ctx, in, optFns...)
}

// receiveAll drains the queue's visible messages (deleting them when del).
func (w *world) receiveAll(t *testing.T, del bool) []sqstypes.Message {
	t.Helper()
	ctx := context.Background()
	var out []sqstypes.Message
	for {
		got, err := w.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(w.queueURL), MaxNumberOfMessages: 10,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatalf("ReceiveMessage: %v", err)
		}
		if len(got.Messages) == 0 {
			return out
		}
		out = append(out, got.Messages...)
		if del {
			for _, m := range got.Messages {
				if _, err := w.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(w.queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
					t.Fatalf("DeleteMessage: %v", err)
				}
			}
		}
	}
}

// depth is how many messages the queue holds, visible or not.
func (w *world) depth(t *testing.T) int {
	t.Helper()
	d, err := emulator.QueueDepthOf(context.Background(), w.sqs, w.queueURL)
	if err != nil {
		t.Fatal(err)
	}
	return d.Total()
}

// directory is an organization of n accounts under two OUs, in two
// regions, with one suspended account skipped.
func directory(n int) *org.Directory {
	d := &org.Directory{OrgID: "o-abcdefghij", Management: "000000000001", Accounts: map[string]org.Account{},
		Skipped: map[string]string{"999999999999": "status SUSPENDED"}, Regions: []string{"eu-west-1", "us-east-1"}}
	for i := range n {
		id := fmt.Sprintf("1000000000%02d", i)
		ou := "ou-ab12-aaaaaaaa"
		if i%2 == 1 {
			ou = "ou-ab12-bbbbbbbb"
		}
		d.Accounts[id] = org.Account{ID: id, Status: "ACTIVE", Path: []string{"r-ab12", ou}}
	}
	return d
}

func staticDirectory(d *org.Directory) func(context.Context) (*org.Directory, error) {
	return func(context.Context) (*org.Directory, error) { return d, nil }
}

// publisher records the summaries it is asked to publish.
type publisher struct {
	mu   sync.Mutex
	sent []fanout.Summary
	fail error
}

func (p *publisher) Publish(_ context.Context, s fanout.Summary) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.sent = append(p.sent, s)
	return nil
}

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var sweepTime = time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)

func unitOf(sweep, account, region string) fanout.Unit {
	return fanout.Unit{Sweep: sweep, Job: fanout.JobCleanup, Account: account, Region: region, OU: "ou-ab12-aaaaaaaa", Dispatched: sweepTime}
}
