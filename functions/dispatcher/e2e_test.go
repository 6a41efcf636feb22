package main_test

// End-to-end: the real dispatcher binary (built for this machine by `make
// build-host`) under the AWS Lambda Runtime Interface Emulator, and moto
// server holding an organization (Organizations), the ledger table
// (DynamoDB), the FIFO units queue (SQS) and a rule catching the summary
// event (EventBridge → SQS).

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// TestMain stops the moto server the tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}

const (
	region = "eu-west-1"
	table  = "hk-ledger"
	queue  = "hk-cleanup-units.fifo"
)

type world struct {
	ctx     context.Context
	moto    *emulator.Moto
	seed    *emulator.OrgSeed
	sqs     *sqs.Client
	units   string // the units queue's URL
	reports string // the queue the summary events land in
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{ctx: context.Background(), moto: emulator.SharedMoto(t)}
	cfg, err := w.moto.Config(w.ctx, region)
	if err != nil {
		t.Fatal(err)
	}
	spec := emulator.OrgSpec{OUs: []emulator.OUSpec{{Name: "prod"}, {Name: "empty"}}}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		spec.Accounts = append(spec.Accounts, emulator.AccountSpec{Name: name, OU: "prod"})
	}
	spec.Accounts = append(spec.Accounts, emulator.AccountSpec{Name: "outside"}) // under the root, out of scope
	if w.seed, err = emulator.SeedOrganization(w.ctx, cfg, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := dynamodb.NewFromConfig(cfg).CreateTable(w.ctx, fanout.LedgerTableInput(table)); err != nil {
		t.Fatal(err)
	}
	w.sqs = sqs.NewFromConfig(cfg)
	q, err := w.sqs.CreateQueue(w.ctx, &sqs.CreateQueueInput{QueueName: aws.String(queue),
		Attributes: map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "false"}})
	if err != nil {
		t.Fatal(err)
	}
	w.units = aws.ToString(q.QueueUrl)
	r, err := w.sqs.CreateQueue(w.ctx, &sqs.CreateQueueInput{QueueName: aws.String("reports")})
	if err != nil {
		t.Fatal(err)
	}
	w.reports = aws.ToString(r.QueueUrl)
	eb := eventbridge.NewFromConfig(cfg)
	if _, err := eb.PutRule(w.ctx, &eventbridge.PutRuleInput{Name: aws.String("summaries"),
		EventPattern: aws.String(`{"source":["ami-housekeeper"],"detail-type":["` + fanout.DetailTypeSummary + `"]}`)}); err != nil {
		t.Fatal(err)
	}
	arn := "arn:aws:sqs:" + region + ":" + emulator.MotoAccount + ":reports"
	if _, err := eb.PutTargets(w.ctx, &eventbridge.PutTargetsInput{Rule: aws.String("summaries"),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String(arn)}}}); err != nil {
		t.Fatal(err)
	}
	return w
}

// start runs the binary with the scope covering ous.
func (w *world) start(t *testing.T, ous ...string) *emulator.RIE {
	t.Helper()
	bin, err := emulator.FunctionBinary("dispatcher")
	if err != nil {
		t.Fatal(err)
	}
	scope, _ := json.Marshal(org.Scope{OUs: ous, Regions: []string{"eu-west-1", "us-east-1"}})
	env := append(w.moto.Env(region), "HOUSEKEEPER_ACCOUNT_ID="+emulator.MotoAccount, org.EnvScope+"="+string(scope),
		fanout.EnvLedgerTable+"="+table, fanout.EnvUnitsQueueCleanup+"="+queue, "HOUSEKEEPER_REPORT_EVENT_BUS=default")
	rie, err := emulator.StartRIE(w.ctx, emulator.RIEOptions{Bootstrap: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rie.Stop)
	return rie
}

type response struct {
	Outcome      string `json:"outcome"`
	Reason       string `json:"reason"`
	Sweep        string `json:"sweep"`
	Units        int    `json:"units"`
	Sent         int    `json:"sent"`
	Resumed      bool   `json:"resumed"`
	Summarized   bool   `json:"summarized"`
	ErrorType    string `json:"errorType"`
	ErrorMessage string `json:"errorMessage"`
}

func invoke(t *testing.T, rie *emulator.RIE, payload string) response {
	t.Helper()
	body, err := rie.Invoke(context.Background(), []byte(payload))
	if err != nil {
		t.Fatalf("%v\n%s", err, rie.Logs())
	}
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	return r
}

// drain receives every visible message of url.
func (w *world) drain(t *testing.T, url string) []string {
	t.Helper()
	var bodies []string
	for {
		out, err := w.sqs.ReceiveMessage(w.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return bodies
		}
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
		}
	}
}

const schedule = `{"job":"cleanup","time":"2026-11-29T03:00:00Z"}`

func TestE2EDispatchSendsTheOrganizationsUnitsOnce(t *testing.T) {
	w := newWorld(t)
	rie := w.start(t, w.seed.OUs["prod"])

	bad := invoke(t, rie, `{"job":"cleanup","time":"2026-11-29T03:00:00Z","accounts":["`+w.seed.Accounts["outside"]+`"]}`)
	if bad.Outcome != "rejected" || !strings.Contains(bad.Reason, "unknown field") {
		t.Fatalf("forged request: %+v", bad)
	}
	if d, _ := emulator.QueueDepthOf(w.ctx, w.sqs, w.units); d.Total() != 0 {
		t.Fatalf("a rejected request sent %d units", d.Total())
	}

	r := invoke(t, rie, schedule)
	if r.ErrorType != "" || r.Outcome != "dispatched" || r.Sweep != "cleanup/2026-11-29T03:00:00Z" || r.Units != 10 || r.Sent != 10 {
		t.Fatalf("dispatch: %+v\n%s", r, rie.Logs())
	}
	// The schedule's target retried: the sweep resumes, the queue drops
	// the copies.
	again := invoke(t, rie, schedule)
	if again.ErrorType != "" || !again.Resumed {
		t.Fatalf("retried dispatch: %+v", again)
	}
	bodies := w.drain(t, w.units)
	if len(bodies) != 10 {
		t.Fatalf("the queue holds %d units, want 10 (5 accounts × 2 regions)", len(bodies))
	}
	want := map[string]bool{}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		for _, reg := range []string{"eu-west-1", "us-east-1"} {
			want[w.seed.Accounts[name]+"/"+reg] = true
		}
	}
	for _, b := range bodies {
		u, err := fanout.ParseUnit([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		if !want[u.Account+"/"+u.Region] || u.OU != w.seed.OUs["prod"] {
			t.Fatalf("unexpected unit %+v", u)
		}
		delete(want, u.Account+"/"+u.Region)
	}
	if len(want) != 0 {
		t.Fatalf("units never sent: %v", want)
	}
	logs := rie.SettledLogs()
	if !strings.Contains(logs, `"msg":"dispatch"`) || !strings.Contains(logs, `"outcome":"dispatched"`) {
		t.Fatalf("no dispatch line:\n%s", logs)
	}
}

func TestE2EAnEmptySweepIsSummarizedAtOnce(t *testing.T) {
	w := newWorld(t)
	rie := w.start(t, w.seed.OUs["empty"])
	r := invoke(t, rie, schedule)
	if r.ErrorType != "" || r.Units != 0 || !r.Summarized {
		t.Fatalf("dispatch: %+v\n%s", r, rie.Logs())
	}
	events := w.drain(t, w.reports)
	if len(events) != 1 {
		t.Fatalf("%d summary events, want 1\n%s", len(events), rie.SettledLogs())
	}
	var ev struct {
		DetailType string         `json:"detail-type"`
		Detail     fanout.Summary `json:"detail"`
	}
	if err := json.Unmarshal([]byte(events[0]), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.DetailType != fanout.DetailTypeSummary || ev.Detail.Sweep != "cleanup/2026-11-29T03:00:00Z" || !ev.Detail.Complete || ev.Detail.Expected != 0 {
		t.Fatalf("summary event %s", events[0])
	}
	if again := invoke(t, rie, schedule); again.Summarized || len(w.drain(t, w.reports)) != 0 {
		t.Fatalf("a retried empty dispatch published again: %+v", again)
	}
}
