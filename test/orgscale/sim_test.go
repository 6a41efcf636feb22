package orgscale_test

// The simulation: one organization sweep of the cleanup, from the
// dispatcher's schedule to the last unit's summary, through the real
// fanout.Dispatcher, the real units handler (handlers.Units, the Lambda
// entry of a units batch, with fanout.Worker) and the real cleanup job
// (handlers.CleanupUnits over sweep.Sweeper), against fakes: Organizations,
// the ledger's DynamoDB, the units FIFO queue, and per account × region
// EC2 with its token buckets. W slots stand for the event source mapping's
// MaximumConcurrency: each takes the next unit the FIFO queue hands out
// (batch size 1) and runs it as one invocation with the function's
// timeout.
//
// It runs inside a synctest bubble (testing/synctest): time is simulated
// and moves only when every goroutine waits, so a unit's concurrent lanes
// (inventory readers, the executor's pipeline) overlap in simulated time
// as they would on a real clock, and an hour of sweeping takes seconds.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/coldstart"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// config is one simulated organization and how its sweep runs.
type config struct {
	// Accounts with fleets, Regions each, AMIs per account × region.
	Accounts int `json:"accounts"`
	Regions  int `json:"regions"`
	AMIs     int `json:"amis"`
	// Timeout is the cleanup function's timeout: each unit is one
	// invocation, with this deadline.
	Timeout Duration `json:"timeout_s"`
	// Latency is added to every EC2 call (0: calls take no simulated time,
	// so the clock moves only with the limiters and the buckets).
	Latency Duration `json:"latency_s,omitempty"`
	// MaxReceive is the units queue's maxReceiveCount.
	MaxReceive int `json:"max_receive"`
}

// The simulated organization's fixed parts.
const (
	orgID     = "o-orgscale01"
	rootID    = "r-0rg5"
	central   = "100000000000" // the deployment's (management) account
	ouWork    = "ou-0rg5-workload"
	queueName = "orgscale-cleanup-units.fifo"
	tableName = "orgscale-ledger"
	// unreachableAccount's member role is missing; suspendedAccount is
	// SUSPENDED: neither has a fleet.
	unreachableAccount = "300000000001"
	suspendedAccount   = "300000000002"
)

// ous are the workloads OU's children; accounts are spread over them.
var ous = []struct{ id, name string }{
	{"ou-0rg5-prod0001", "prod"}, {"ou-0rg5-stage001", "staging"}, {"ou-0rg5-dev00001", "dev"}, {"ou-0rg5-sbx00001", "sandbox"},
}

// sandboxOU's override adds the deprecate stage to every mark.
var sandboxOU = ous[3].id

var allRegions = []string{"eu-west-1", "us-east-1", "eu-central-1", "ap-southeast-2"}

func accountID(i int) string { return fmt.Sprintf("%012d", 200000000000+i) }

// ouOfAccount is the OU buildOrg put a fleet's account in.
func ouOfAccount(id string) string {
	var i int
	if _, err := fmt.Sscanf(id, "%d", &i); err != nil {
		return ""
	}
	return ous[(i-200000000000)%len(ous)].id
}

// policyDoc is the organization's policy: enforce, grace 7 days, one rule
// for the services' AMIs, the caps at their maxima (1,000 AMIs and
// 1,000,000 GiB a run, above what one unit removes: a backlog sweep, not a
// trickle), and an override for the sandbox OU.
func policyDoc() string {
	return fmt.Sprintf(`{
  "version": 1,
  "retention": {
    "mode": "enforce",
    "grace_days": 7,
    "max_deregistrations_per_run": %d,
    "max_gib_per_run": 1000000,
    "rules": [{"name": "services", "match": {"name": "svc-*"}, "keep_newest": %d, "min_age_days": 30, "keep_launched_within_days": 30}]
  },
  "overrides": [{"name": "sandbox-deprecates", "ous": [%q], "retention": {"stages": {"deprecate": true}}}]
}`, maxDeregistrations, keepNewest, sandboxOU)
}

// maxDeregistrations is the policy's cap (its maximum): the expectations
// assume it does not bind, so a unit may hold at most this many due AMIs
// (about 2,900 AMIs with the fleet's mix).
const maxDeregistrations = 1000

// recordsKey seals the fleets' marks and the cleanup's records.
var recordsKey = records.NewKey([]byte("orgscale records key"))

func buildOrg(cfg config) *fake.Organizations {
	o := fake.NewOrganizations(orgID, rootID, central)
	o.AddOU(ouWork, rootID, "workloads")
	for _, ou := range ous {
		o.AddOU(ou.id, ouWork, ou.name)
	}
	for i := range cfg.Accounts {
		ou := ous[i%len(ous)]
		o.AddAccount(accountID(i), ou.id, fmt.Sprintf("%s-%02d", ou.name, i), orgtypes.AccountStateActive, map[string]string{"env": ou.name})
	}
	o.AddAccount(unreachableAccount, ous[2].id, "dev-norole", orgtypes.AccountStateActive, nil)
	o.AddAccount(suspendedAccount, ous[3].id, "sandbox-suspended", orgtypes.AccountStateSuspended, nil)
	return o
}

// unitRun is one unit as the simulation saw it.
type unitRun struct {
	ID      string `json:"id"`
	Account string `json:"account"`
	Region  string `json:"region"`
	OU      string `json:"ou"`
	// Start and End are from the sweep's start, on the simulated clock.
	Start time.Duration `json:"start_ns"`
	End   time.Duration `json:"end_ns"`
	// Queued is the unit's place in the queue (dispatch order).
	Queued int    `json:"queued"`
	Status string `json:"status"`
	// Calls and Throttled per EC2 action; Spans when each action's calls
	// came (first, last), from the unit's start.
	Calls     map[string]int         `json:"calls"`
	Throttled map[string]int         `json:"throttled,omitempty"`
	Spans     map[string][2]Duration `json:"spans,omitempty"`
	Want      expectedJSON           `json:"want"`
	Got       fanout.UnitResult      `json:"got"`
}

// Duration is a time.Duration that marshals as seconds.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).Seconds()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s float64
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*d = Duration(s * float64(time.Second))
	return nil
}

type expectedJSON struct {
	AMIs, Deregistered, SnapshotsDeleted, Marked int
	GiBFreed                                     int64
	Classes                                      map[string]int
}

// run is one simulated sweep.
type run struct {
	W        int           `json:"w"`
	Makespan time.Duration `json:"makespan_ns"`
	Units    []unitRun     `json:"units"`
	Dispatch fanout.DispatchResult
	Summary  *fanout.Summary `json:"-"`
	// Published counts summaries published (one expected), Reports the
	// units' cleanup reports; the largest of each in bytes; Refused the
	// events and messages too large to send.
	Published        int             `json:"published"`
	Reports          int             `json:"reports"`
	LargestReport    int             `json:"largest_report"`
	LargestSummary   int             `json:"largest_summary"`
	Refused          []string        `json:"refused,omitempty"`
	PublishedSummary *fanout.Summary `json:"-"`
	// Invocations counts the units handler's invocations; Retried the
	// units it handed back.
	Invocations, Retried            int
	OrgCalls, LedgerCalls, SQSCalls map[string]int
	Problems                        []string
}

// sim holds what the slots share.
type sim struct {
	cfg     config
	pol     *policy.Policy
	orgs    *fake.Organizations
	scope   org.Scope
	db      *fake.DynamoDB
	sqs     *fake.SQS
	url     string
	ledger  *fanout.Ledger
	start   time.Time
	log     *slog.Logger
	queueAR string // the queue's ARN
	bus     *bus

	mu       sync.Mutex
	changed  *sync.Cond
	worlds   map[string]*world          // by account/region, while its unit runs
	clients  map[string]*awsapi.Clients // by account
	units    map[string]*unitRun        // by unit id
	problems []string
	out      run
}

func (s *sim) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.problems) < 50 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

// accounts hands each member account its own Clients (never used to call
// AWS: the job's sweeper is built over the unit's fakes, looked up by
// these Clients), and a RoleError for the account without a role.
type accounts struct{ s *sim }

func (a accounts) For(_ context.Context, account string) (*awsapi.Clients, error) {
	if account == unreachableAccount {
		return nil, &awsapi.RoleError{Account: account, RoleARN: "arn:aws:iam::" + account + ":role/ami-housekeeper-member",
			Err: fake.APIError("AccessDenied")}
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	cl, ok := a.s.clients[account]
	if !ok {
		cl = awsapi.NewClients(aws.Config{Region: "eu-west-1"})
		a.s.clients[account] = cl
	}
	return cl, nil
}

// simulate runs one sweep with w slots. It must run inside a synctest
// bubble: it reads and sleeps on the bubble's clock.
func simulate(ctx context.Context, cfg config, w int) (run, error) {
	pol, err := policy.Parse([]byte(policyDoc()), "orgscale")
	if err != nil {
		return run{}, err
	}
	s := &sim{cfg: cfg, pol: pol, orgs: buildOrg(cfg), start: time.Now(),
		scope:  org.Scope{OUs: []string{ouWork}, Regions: allRegions[:cfg.Regions]},
		db:     fake.NewDynamoDB(),
		sqs:    fake.NewSQS(central, "eu-west-1"),
		log:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
		bus:    newBus(),
		worlds: map[string]*world{}, clients: map[string]*awsapi.Clients{}, units: map[string]*unitRun{},
		out: run{W: w}}
	s.changed = sync.NewCond(&s.mu)
	s.db.CreateTable(fanout.LedgerTableInput(tableName))
	s.url = s.sqs.CreateQueue(queueName, false)
	s.queueAR = "arn:aws:sqs:eu-west-1:" + central + ":" + queueName
	s.ledger = &fanout.Ledger{DB: s.db, Table: tableName}
	// The summary goes to the central bus and topic, each unit's report to
	// the bus only, as functions/cleanup wires them.
	summaries := notify.Notifier{Events: s.bus, EventBus: "orgscale-bus", SNS: s.bus, TopicARN: "arn:aws:sns:eu-west-1:" + central + ":orgscale"}
	reports := notify.Notifier{Events: s.bus, EventBus: "orgscale-bus"}

	d := &fanout.Dispatcher{Directory: org.NewCache(s.orgs, s.scope, coldstart.DirectoryTTL, nil).Get,
		Queues: map[string]string{fanout.JobCleanup: queueName}, SQS: s.sqs, Ledger: s.ledger,
		Publish: fanout.Publisher(summaries, io.Discard), Log: s.log, Policy: pol}
	s.out.Dispatch, err = d.Dispatch(ctx, fanout.DispatchRequest{Job: fanout.JobCleanup, Time: s.start})
	if err != nil {
		return run{}, fmt.Errorf("dispatch: %w", err)
	}
	for i, m := range s.sqs.Sent(s.url) {
		u, err := fanout.ParseUnit([]byte(m.Body))
		if err != nil {
			return run{}, fmt.Errorf("dispatched body %s: %w", m.Body, err)
		}
		s.units[u.ID()] = &unitRun{ID: u.ID(), Account: u.Account, Region: u.Region, OU: u.OU, Queued: i}
	}

	var wg sync.WaitGroup
	for range w {
		wg.Go(func() { s.slot(ctx, &summaries, &reports) })
	}
	wg.Wait()
	s.out.Makespan = time.Since(s.start)

	// What the ledger says, against what each unit's fleet asked for.
	sum, err := s.ledger.Summary(ctx, s.out.Dispatch.Sweep)
	if err != nil {
		return run{}, err
	}
	s.out.Summary = &sum
	s.out.Published = s.bus.events[fanout.DetailTypeSummary]
	s.out.Reports = s.bus.events[sweep.EventDetailType]
	s.out.LargestReport = s.bus.largest[sweep.EventDetailType]
	s.out.LargestSummary = s.bus.largest[fanout.DetailTypeSummary]
	s.out.Refused = s.bus.refused
	if s.bus.summary != nil {
		var published fanout.Summary
		if err := json.Unmarshal(s.bus.summary, &published); err != nil {
			s.problem("the published summary does not parse: %v", err)
		}
		s.out.PublishedSummary = &published
	}
	results, err := s.ledger.Results(ctx, s.out.Dispatch.Sweep)
	if err != nil {
		return run{}, err
	}
	for _, r := range results {
		ur := s.units[r.Unit.ID()]
		if ur == nil {
			s.problem("the ledger has unit %s, which was never dispatched", r.Unit.ID())
			continue
		}
		ur.Got = r
	}
	s.out.OrgCalls = maps.Clone(s.orgs.Calls)
	s.out.LedgerCalls = maps.Clone(s.db.Calls)
	s.out.SQSCalls = maps.Clone(s.sqs.Calls)
	for _, id := range slices.Sorted(maps.Keys(s.units)) {
		s.out.Units = append(s.out.Units, *s.units[id])
	}
	sort.Slice(s.out.Units, func(i, j int) bool { return s.out.Units[i].Queued < s.out.Units[j].Queued })
	s.out.Problems = s.problems
	return s.out, nil
}

// slot is one concurrent invocation of the cleanup's units mapping: it
// takes the next unit the queue hands out, invokes the handler with it as
// an SQS batch of one, and deletes it or, reported failed, hands it back.
func (s *sim) slot(ctx context.Context, summaries, reports *notify.Notifier) {
	// Each Lambda instance has its own directory cache and handler, built
	// as functions/cleanup builds them (serveUnits).
	deps := &handlers.UnitsDeps{Queue: handlers.UnitsQueue{Name: queueName, MaxReceive: s.cfg.MaxReceive, Ledger: tableName},
		Home: central, Directory: org.NewCache(s.orgs, s.scope, coldstart.DirectoryTTL, nil).Get, Accounts: accounts{s},
		LedgerDB: s.db, Summary: summaries}
	job := &handlers.CleanupUnits{
		Sweeper:  s.sweeper,
		Policy:   func(acct org.Account) (*policy.Policy, error) { return s.pol.For(acct.ID, acct.Path) },
		Notifier: reports,
		Log:      s.log,
		Metrics:  io.Discard,
	}
	h := handlers.NewUnits("cleanup", fanout.JobCleanup, deps, s.measured(job.Run), s.log)
	for {
		m, ok := s.next()
		if !ok {
			return
		}
		payload, err := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{{
			MessageId: m.MessageID, ReceiptHandle: "rh-" + m.MessageID, Body: m.Body, EventSource: "aws:sqs",
			EventSourceARN: s.queueAR, AWSRegion: "eu-west-1",
			Attributes: map[string]string{"ApproximateReceiveCount": fmt.Sprint(m.Receives),
				"SentTimestamp": fmt.Sprint(m.Sent.UnixMilli()), "MessageGroupId": m.GroupID},
		}}})
		if err != nil {
			panic(err)
		}
		ictx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.Timeout))
		raw, err := h.Invoke(ictx, payload)
		cancel()
		var resp events.SQSEventResponse
		if err == nil {
			err = json.Unmarshal(raw, &resp)
		}
		s.mu.Lock()
		s.out.Invocations++
		switch {
		case err != nil:
			s.problems = append(s.problems, fmt.Sprintf("invocation with %s failed: %v", m.MessageID, err))
			s.sqs.Return(s.url, m.MessageID)
			s.out.Retried++
		case len(resp.BatchItemFailures) > 0:
			s.sqs.Return(s.url, m.MessageID)
			s.out.Retried++
		default:
			s.sqs.Delete(s.url, m.MessageID)
		}
		s.changed.Broadcast()
		s.mu.Unlock()
	}
}

// next waits for a unit the queue hands out; false when none is left.
func (s *sim) next() (fake.QueueMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if m, ok := s.sqs.Receive(s.url); ok {
			return m, true
		}
		if s.sqs.Waiting(s.url) == 0 {
			return fake.QueueMessage{}, false
		}
		s.changed.Wait()
	}
}

// sweeper builds the cleanup's engine over the unit's fakes, as
// functions/cleanup builds it over an account's clients: the unit's world
// is built here, when its unit starts.
func (s *sim) sweeper(clients *awsapi.Clients, region string, pol *policy.Policy) *sweep.Sweeper {
	account := ""
	s.mu.Lock()
	for a, cl := range s.clients {
		if cl == clients {
			account = a
		}
	}
	s.mu.Unlock()
	w := buildWorld(account, region, s.cfg.AMIs, s.start, recordsKey, time.Duration(s.cfg.Latency))
	// The sandbox override, and only it, adds the deprecate stage: known
	// from where the account was put, not from the policy the job got.
	w.deprecates = ouOfAccount(account) == sandboxOU
	s.mu.Lock()
	s.worlds[account+"/"+region] = w
	s.mu.Unlock()
	return &sweep.Sweeper{
		Collector: &collect.Collector{EC2: w.ec2, AutoScaling: w.asg, SSM: w.ssm, RecycleBin: w.rbin, References: w.ec2},
		Executor:  &execute.Executor{EC2: w.ec2, Clock: clock.Real(), Log: s.log},
		Records:   recordsKey,
		Tagging:   sweep.WatchTagger(pol.Tagging),
	}
}

// measured wraps the job: the unit's times, its calls, the check of its
// fleet afterwards; then the fleet is dropped.
func (s *sim) measured(job fanout.Job) fanout.Job {
	return func(ctx context.Context, clients *awsapi.Clients, acct org.Account, u fanout.Unit) (fanout.UnitResult, error) {
		began := time.Now()
		res, err := job(ctx, clients, acct, u)
		ended := time.Now()
		s.mu.Lock()
		w := s.worlds[u.Account+"/"+u.Region]
		delete(s.worlds, u.Account+"/"+u.Region)
		ur := s.units[u.ID()]
		s.mu.Unlock()
		if w == nil || ur == nil {
			s.problem("unit %s ran without a world (%v) or was not dispatched (%v)", u.ID(), w == nil, ur == nil)
			return res, err
		}
		for _, p := range w.check(recordsKey) {
			s.problem("%s", p)
		}
		calls, throttled, spans := w.ec2.usage(began)
		s.mu.Lock()
		ur.Start, ur.End = began.Sub(s.start), ended.Sub(s.start)
		ur.Status = res.Status
		ur.Calls, ur.Throttled, ur.Spans = calls, throttled, spans
		ur.Want = expectedJSON{AMIs: w.want.AMIs, Deregistered: w.want.Deregistered, SnapshotsDeleted: w.want.SnapshotsDeleted,
			Marked: w.want.Marked, GiBFreed: w.want.GiBFreed, Classes: map[string]int{}}
		for c, n := range w.want.classes {
			ur.Want.Classes[classNames[c]] = n
		}
		s.mu.Unlock()
		return res, err
	}
}

// verify checks a run's invariants: every dispatched unit recorded once,
// each fleet's unit done with exactly what its classes ask for, the
// unreachable account's units recorded unreachable, the suspended account
// skipped, one summary published and complete (the published event's
// totals the ledger's), one report per unit, nothing too large to publish,
// the queue drained without
// a retry, no mutation throttled.
func verify(r run, cfg config) []string {
	problems := slices.Clone(r.Problems)
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	wantUnits := (cfg.Accounts + 1) * cfg.Regions
	if r.Dispatch.Units != wantUnits || len(r.Units) != wantUnits {
		bad("dispatched %d units (%d seen), want %d", r.Dispatch.Units, len(r.Units), wantUnits)
	}
	for _, u := range r.Units {
		g := u.Got
		switch {
		case u.Want.Deregistered > maxDeregistrations:
			bad("unit %s: its fleet has %d due AMIs, more than the policy's cap of %d a run, which the expectations do not model: use fewer AMIs a unit",
				u.ID, u.Want.Deregistered, maxDeregistrations)
		case u.Account == unreachableAccount:
			if g.Status != fanout.StatusUnreachable {
				bad("unit %s of the account without a role: status %q, want unreachable", u.ID, g.Status)
			}
		case g.Status != fanout.StatusDone:
			bad("unit %s: status %q (%s)", u.ID, g.Status, g.Reason)
		case g.AMIsSeen != u.Want.AMIs || g.Deregistered != u.Want.Deregistered || g.SnapshotsDeleted != u.Want.SnapshotsDeleted || g.GiBFreed != u.Want.GiBFreed:
			bad("unit %s: seen %d, deregistered %d, snapshots %d, GiB %d; its fleet asks for %d, %d, %d, %d",
				u.ID, g.AMIsSeen, g.Deregistered, g.SnapshotsDeleted, g.GiBFreed, u.Want.AMIs, u.Want.Deregistered, u.Want.SnapshotsDeleted, u.Want.GiBFreed)
		}
		// The executor paces every mutation to its bucket's refill: none
		// may be throttled. (Reads are only counted: the SDK retries them.)
		for op, n := range u.Throttled {
			if !emulator.IsNonMutating(op) {
				bad("unit %s: %d %s calls throttled", u.ID, n, op)
			}
		}
	}
	sum := r.Summary
	switch {
	case sum == nil:
		bad("no summary")
	case !sum.Complete || sum.Totals.Units != wantUnits || sum.Totals.Done != cfg.Accounts*cfg.Regions || sum.Totals.Unreachable != cfg.Regions:
		bad("summary: complete %v, units %d, done %d, unreachable %d; want %d units, %d done, %d unreachable",
			sum.Complete, sum.Totals.Units, sum.Totals.Done, sum.Totals.Unreachable, wantUnits, cfg.Accounts*cfg.Regions, cfg.Regions)
	case len(sum.Accounts) != cfg.Accounts || len(sum.Unreachable) != cfg.Regions:
		bad("summary: %d accounts covered, %d unreachable listed", len(sum.Accounts), len(sum.Unreachable))
	case len(sum.Skipped) != 1 || sum.Skipped[0].Account != suspendedAccount || !strings.Contains(sum.Skipped[0].Reason, "SUSPENDED"):
		bad("summary: skipped %+v, want %s (SUSPENDED)", sum.Skipped, suspendedAccount)
	}
	if r.Published != 1 || r.PublishedSummary == nil {
		bad("%d summaries published, want 1", r.Published)
	} else if p := r.PublishedSummary; !p.Complete || p.Totals != sum.Totals || len(p.Unreachable) != cfg.Regions {
		bad("the published summary differs from the ledger's: complete %v, totals %+v, %d unreachable", p.Complete, p.Totals, len(p.Unreachable))
	}
	if r.Reports != cfg.Accounts*cfg.Regions {
		bad("%d cleanup reports published, want one per unit that ran (%d)", r.Reports, cfg.Accounts*cfg.Regions)
	}
	for _, e := range r.Refused {
		bad("refused as too large: %s", e)
	}
	if r.Retried != 0 || r.Invocations != wantUnits {
		bad("%d invocations, %d units handed back; want %d and 0", r.Invocations, r.Retried, wantUnits)
	}
	return problems
}

// listSchedule is the makespan of units run in queue order on w slots,
// each taking the next unit when it frees (what the FIFO queue and the
// mapping do: every unit is its own message group).
func listSchedule(durations []time.Duration, w int) time.Duration {
	free := make([]time.Duration, w)
	var end time.Duration
	for _, d := range durations {
		i := 0
		for k := range free {
			if free[k] < free[i] {
				i = k
			}
		}
		free[i] += d
		end = max(end, free[i])
	}
	return end
}

// durations are the units' times in queue order.
func (r run) durations() []time.Duration {
	out := make([]time.Duration, len(r.Units))
	for i, u := range r.Units {
		out[i] = u.End - u.Start
	}
	return out
}
