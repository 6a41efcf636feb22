package emulator

// An organization sweep's world in moto, as the central stack sets it up:
// the organization with AMIs of known ages in its accounts, the ledger
// table, the job's FIFO units queue and its DLQ, queues that receive the
// sweep's summary and the units' reports from the central account's
// default bus, and the fault proxy the functions call through, refusing
// the member role of some accounts (moto's STS assumes any role). The
// organization-mode tests (test/org) and the demo (cmd/demo) share it.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// EnvUnitsMaxReceive is handlers.EnvUnitsMaxReceive, which this package
// cannot import (the handlers package's own tests import this one);
// test/org checks that the two agree.
const EnvUnitsMaxReceive = "HOUSEKEEPER_UNITS_MAX_RECEIVE"

// OrgSweepOptions configures StartOrgSweep.
type OrgSweepOptions struct {
	// Region is the central stack's region.
	Region string
	Spec   OrgSpec
	// AMIs returns the AMIs to seed once moto has named the accounts. Every
	// account and region gets each of them; an account owns those whose
	// Owner it is.
	AMIs func(*OrgSeed) []SeedAMI
	// RoleName is the member role's name. The proxy refuses AssumeRole of
	// that role in the accounts Refused names (by their spec names).
	RoleName string
	Refused  []string
	// LedgerTable and UnitsQueue (a .fifo name) are created in the central
	// account; the queue's redrive policy moves a unit to its DLQ after
	// MaxReceive receives.
	LedgerTable, UnitsQueue string
	Visibility              time.Duration
	MaxReceive              int
}

// OrgSweep is a running sweep world.
type OrgSweep struct {
	Opts  OrgSweepOptions
	Moto  *Moto
	Seed  *OrgSeed
	Proxy *FaultProxy
	// SQS, Ledger and EventBridge act as the central account, straight to
	// moto (not through the proxy: they are the operator's reads).
	SQS    *sqs.Client
	Ledger *fanout.Ledger
	Units  Queue
	// Summaries and Reports are the URLs of the queues the sweep summary
	// event and the units' "AMI Cleanup Report" events land in.
	Summaries, Reports string

	dir string
	mu  sync.Mutex
	ec2 map[string]*ec2.Client
}

// StartOrgSweep starts moto and the proxy and builds the world. Stop ends
// them; on error, nothing is left running.
func StartOrgSweep(ctx context.Context, opts OrgSweepOptions) (_ *OrgSweep, err error) {
	if opts.Region == "" || opts.RoleName == "" || opts.LedgerTable == "" || !strings.HasSuffix(opts.UnitsQueue, ".fifo") || opts.MaxReceive < 1 {
		return nil, fmt.Errorf("org sweep options %+v: region, role name, ledger table, a .fifo units queue and max receive are required", opts)
	}
	o := &OrgSweep{Opts: opts, ec2: map[string]*ec2.Client{}}
	defer func() {
		if err != nil {
			o.Stop()
		}
	}()
	if o.dir, err = os.MkdirTemp("", "ami-housekeeper-org"); err != nil {
		return nil, err
	}
	// moto reads the AMIs file on its EC2 backend's first use: it is
	// written below, once Organizations has named the accounts.
	amisPath := filepath.Join(o.dir, "amis.json")
	if o.Moto, err = StartMoto(ctx, MotoOptions{Env: []string{"MOTO_AMIS_PATH=" + amisPath}}); err != nil {
		return nil, err
	}
	cfg, err := o.Moto.Config(ctx, opts.Region)
	if err != nil {
		return nil, err
	}
	if o.Seed, err = SeedOrganization(ctx, cfg, opts.Spec); err != nil {
		return nil, err
	}
	var amis []SeedAMI
	if opts.AMIs != nil {
		amis = opts.AMIs(o.Seed)
	}
	if err := WriteAMIs(amisPath, amis); err != nil {
		return nil, err
	}
	if _, err := dynamodb.NewFromConfig(cfg).CreateTable(ctx, fanout.LedgerTableInput(opts.LedgerTable)); err != nil {
		return nil, fmt.Errorf("creating the ledger table %s: %w", opts.LedgerTable, err)
	}
	o.Ledger = &fanout.Ledger{DB: dynamodb.NewFromConfig(cfg), Table: opts.LedgerTable}
	o.SQS = sqs.NewFromConfig(cfg)
	if o.Units, err = CreateFIFOQueueWithDLQ(ctx, o.SQS, opts.UnitsQueue, opts.Visibility, opts.MaxReceive); err != nil {
		return nil, err
	}
	if o.Summaries, err = RouteToQueue(ctx, cfg, "summaries", fanout.DetailTypeSummary); err != nil {
		return nil, err
	}
	if o.Reports, err = RouteToQueue(ctx, cfg, "reports", sweep.EventDetailType); err != nil {
		return nil, err
	}
	var deny []string
	for _, name := range opts.Refused {
		id, ok := o.Seed.Accounts[name]
		if !ok {
			return nil, fmt.Errorf("refused account %q is not in the organization's spec", name)
		}
		deny = append(deny, o.RoleARN(id))
	}
	if o.Proxy, err = StartFaultProxy(o.Moto.URL, FaultConfig{NoThrottle: true, DenyAssumeRole: deny}); err != nil {
		return nil, err
	}
	return o, nil
}

// Stop ends the proxy and moto and removes the AMIs file.
func (o *OrgSweep) Stop() {
	if o.Proxy != nil {
		_ = o.Proxy.Close()
	}
	if o.Moto != nil {
		o.Moto.Stop()
	}
	if o.dir != "" {
		_ = os.RemoveAll(o.dir)
	}
}

// ID is the account ID moto gave the spec's account name.
func (o *OrgSweep) ID(name string) string { return o.Seed.Accounts[name] }

// RoleARN is the member role of account.
func (o *OrgSweep) RoleARN(account string) string {
	return "arn:aws:iam::" + account + ":role/" + o.Opts.RoleName
}

// Env is the central functions' environment in organization mode, as the
// stack sets it, reaching moto through the proxy: home account, policy,
// scope, member role, ledger, cleanup units queue and its max receive,
// records key, reports on the default bus; extra is added last.
func (o *OrgSweep) Env(ctx context.Context, scope org.Scope, policy string, extra ...string) ([]string, error) {
	raw, err := json.Marshal(scope)
	if err != nil {
		return nil, err
	}
	key, err := o.Moto.RecordsKeyEnv(ctx, o.Opts.Region)
	if err != nil {
		return nil, err
	}
	env := append(o.Proxy.Env(o.Moto.Env(o.Opts.Region)), key, "HOUSEKEEPER_ACCOUNT_ID="+o.Seed.Management, "HOUSEKEEPER_POLICY="+policy,
		org.EnvScope+"="+string(raw), "HOUSEKEEPER_ORG_ROLE_NAME="+o.Opts.RoleName, fanout.EnvLedgerTable+"="+o.Opts.LedgerTable,
		fanout.EnvUnitsQueueCleanup+"="+o.Opts.UnitsQueue, EnvUnitsMaxReceive+"="+strconv.Itoa(o.Opts.MaxReceive),
		"HOUSEKEEPER_REPORT_EVENT_BUS=default")
	return append(env, extra...), nil
}

// Start runs a function's binary (make build-host) under the runtime
// emulator with env.
func (o *OrgSweep) Start(ctx context.Context, function string, env []string) (*RIE, error) {
	bin, err := FunctionBinary(function)
	if err != nil {
		return nil, err
	}
	return StartRIE(ctx, RIEOptions{Bootstrap: bin, Env: env})
}

// Dispatch invokes the dispatcher with a schedule's input
// ({"job":...,"time":...}) and returns its response, which must say
// "dispatched".
func Dispatch(ctx context.Context, dispatcher Invoker, schedule string) (map[string]any, error) {
	body, err := dispatcher.Invoke(ctx, []byte(schedule))
	if err != nil {
		return nil, err
	}
	var r map[string]any
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("dispatch response %s: %w", body, err)
	}
	if r["errorType"] != nil || r["outcome"] != "dispatched" {
		return r, fmt.Errorf("dispatch of %s: %s", schedule, body)
	}
	return r, nil
}

// Drain runs an event source mapping (batch size 1, one invocation per
// worker at a time) over the queue at url until it is empty, within limit.
func (o *OrgSweep) Drain(ctx context.Context, url string, workers []*RIE, limit time.Duration) (*ESM, error) {
	cfg := ESMConfig{SQS: o.SQS, QueueURL: url, BatchSize: 1}
	for _, w := range workers {
		cfg.Instances = append(cfg.Instances, w)
	}
	e, err := NewESM(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := e.RunUntilEmpty(ctx); err != nil {
		last := "none"
		if perr := e.LastPollError(); perr != nil {
			last = perr.Error()
		}
		return e, fmt.Errorf("draining %s: %w; totals %+v, last poll error: %s", url, err, e.Totals(), last)
	}
	return e, nil
}

// EC2 is EC2 acting as account in region, straight to moto (not counted
// by the proxy), cached.
func (o *OrgSweep) EC2(ctx context.Context, account, region string) (*ec2.Client, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c, ok := o.ec2[account+"/"+region]; ok {
		return c, nil
	}
	cfg, err := o.Moto.AccountConfig(ctx, region, account)
	if err != nil {
		return nil, err
	}
	c := ec2.NewFromConfig(cfg)
	o.ec2[account+"/"+region] = c
	return c, nil
}

// RouteToQueue creates a queue named name and a rule on the default bus of
// cfg's account and region sending it the ami-housekeeper events of
// detailType; it returns the queue's URL.
func RouteToQueue(ctx context.Context, cfg aws.Config, name, detailType string) (string, error) {
	q, err := sqs.NewFromConfig(cfg).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("creating queue %s: %w", name, err)
	}
	pattern, err := json.Marshal(map[string][]string{"source": {"ami-housekeeper"}, "detail-type": {detailType}})
	if err != nil {
		return "", err
	}
	eb := eventbridge.NewFromConfig(cfg)
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(name), EventPattern: aws.String(string(pattern))}); err != nil {
		return "", fmt.Errorf("rule %s: %w", name, err)
	}
	// The queue is in moto's default account, the one Config acts as.
	arn := "arn:aws:sqs:" + cfg.Region + ":" + MotoAccount + ":" + name
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(name),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String(arn)}}}); err != nil {
		return "", fmt.Errorf("rule %s's target: %w", name, err)
	}
	return aws.ToString(q.QueueUrl), nil
}

// ReceiveAll receives (and leaves in flight) every message the queue at
// url holds now, and returns their bodies.
func ReceiveAll(ctx context.Context, c *sqs.Client, url string) ([]string, error) {
	var bodies []string
	for {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
		if err != nil {
			return bodies, fmt.Errorf("receiving from %s: %w", url, err)
		}
		if len(out.Messages) == 0 {
			return bodies, nil
		}
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
		}
	}
}

// LogLines returns the functions' log lines whose msg is msg, once each
// function's output has settled.
func LogLines(msg string, ries ...*RIE) ([]map[string]any, error) {
	var out []map[string]any
	for _, r := range ries {
		logs, _, err := SplitLines(r.SettledLogs())
		if err != nil {
			return nil, err
		}
		for _, l := range logs {
			if l["msg"] == msg {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// FromAccount is an event fixture (written as the central account
// MotoAccount sends it from us-east-1) as account sends it from region:
// the envelope's account and region, CloudTrail's identity and recipient
// all moved there.
func FromAccount(fixture []byte, account, region string) []byte {
	s := strings.ReplaceAll(string(fixture), MotoAccount, account)
	return []byte(strings.ReplaceAll(s, "us-east-1", region))
}

// OrgSweepPolicy is the policy of the organization sweep's world (the demo
// and test/org): enforce, keep the newest "app-*" AMI and any younger than
// 7 days, and the override "sandbox-audits" putting sandboxOU in audit.
func OrgSweepPolicy(sandboxOU string) string {
	return `version: 1
tagging:
  copy_from_source: [team]
  static_tags: {managed-by: ami-housekeeper}
retention:
  mode: enforce
  grace_days: 0
  second_opinion: disabled # moto lacks DescribeImageReferences (see FleetPolicy)
  delete_unproven_snapshots: true # moto's own snapshot descriptions (see FleetPolicy)
  rules:
    - name: app
      match: {name: "app-*"}
      keep_newest: 1
      min_age_days: 7
overrides:
  - name: sandbox-audits
    ous: [` + sandboxOU + `]
    retention: {mode: audit}
`
}
