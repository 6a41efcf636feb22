package fanout_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// fakeAccounts hands out one Clients for every account but those in
// refuse, which get a *awsapi.RoleError; it counts the calls per account.
type fakeAccounts struct {
	mu      sync.Mutex
	clients *awsapi.Clients
	refuse  map[string]bool
	calls   map[string]int
}

func newFakeAccounts(refuse ...string) *fakeAccounts {
	f := &fakeAccounts{clients: awsapi.NewClients(aws.Config{}), refuse: map[string]bool{}, calls: map[string]int{}}
	for _, a := range refuse {
		f.refuse[a] = true
	}
	return f
}

func (f *fakeAccounts) For(_ context.Context, account string) (*awsapi.Clients, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[account]++
	if f.refuse[account] {
		roleARN := "arn:aws:iam::" + account + ":role/ami-housekeeper-member"
		return nil, &awsapi.RoleError{Account: account, RoleARN: roleARN, Err: errors.New("AccessDenied: not authorized to perform sts:AssumeRole")}
	}
	return f.clients, nil
}

func (f *fakeAccounts) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// fakeJob removes one 8 GiB AMI per unit; fail[unit id] errors make it fail.
type fakeJob struct {
	mu    sync.Mutex
	runs  map[string]int
	fail  map[string]error
	accts map[string]string // unit id → the org.Account the job got
}

func newFakeJob() *fakeJob {
	return &fakeJob{runs: map[string]int{}, fail: map[string]error{}, accts: map[string]string{}}
}

func (j *fakeJob) Run(_ context.Context, clients *awsapi.Clients, acct org.Account, u fanout.Unit) (fanout.UnitResult, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.runs[u.ID()]++
	j.accts[u.ID()] = acct.ID
	if clients == nil {
		return fanout.UnitResult{}, errors.New("job got no clients")
	}
	if err := j.fail[u.ID()]; err != nil {
		return fanout.UnitResult{AMIsSeen: 2}, err
	}
	return fanout.UnitResult{AMIsSeen: 2, Deregistered: 1, SnapshotsDeleted: 1, GiBFreed: 8, USDPerMonthSaved: 0.4}, nil
}

func (j *fakeJob) count(id string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.runs[id]
}

func (w *world) worker(dir *org.Directory, accts fanout.AccountClients, pub *publisher) *fanout.Worker {
	return &fanout.Worker{Directory: staticDirectory(dir), Accounts: accts, Ledger: w.ledger, Publish: pub.Publish, Log: w.log}
}

// dispatched dispatches the sweep over dir and returns its units as the
// queue delivers them.
func (w *world) dispatched(t *testing.T, dir *org.Directory) []fanout.Unit {
	t.Helper()
	d, _ := w.dispatcher(dir, &publisher{})
	if _, err := d.Dispatch(context.Background(), cleanupRequest); err != nil {
		t.Fatal(err)
	}
	var units []fanout.Unit
	for _, m := range w.receiveAll(t, true) {
		u, err := fanout.ParseUnit([]byte(aws.ToString(m.Body)))
		if err != nil {
			t.Fatal(err)
		}
		units = append(units, u)
	}
	return units
}

func TestWorkerSweepReportsAnUnreachableAccountWhileOthersComplete(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	dir := directory(5)
	units := w.dispatched(t, dir)
	if len(units) != 10 {
		t.Fatalf("%d units dispatched, want 10", len(units))
	}
	const missing = "100000000002"
	accts, job, pub := newFakeAccounts(missing), newFakeJob(), &publisher{}
	wk := w.worker(dir, accts, pub)
	// Every unit at once, as the event source mapping's concurrent
	// instances run them: one of them completes the sweep and publishes.
	var wg sync.WaitGroup
	results := make([]fanout.UnitResult, len(units))
	for i, u := range units {
		wg.Go(func() {
			var err error
			if results[i], err = wk.Run(ctx, u, false, job.Run); err != nil {
				t.Errorf("Run(%s) = %v", u.ID(), err)
			}
		})
	}
	wg.Wait()
	for _, r := range results {
		want := fanout.StatusDone
		if r.Unit.Account == missing {
			want = fanout.StatusUnreachable
		}
		if r.Status != want {
			t.Errorf("unit %s: status %q (%s), want %q", r.Unit.ID(), r.Status, r.Reason, want)
		}
		if r.Unit.Account == missing && job.count(r.Unit.ID()) != 0 {
			t.Errorf("the job ran in unreachable account %s", missing)
		}
	}
	if pub.count() != 1 {
		m, _, _ := w.ledger.Meta(ctx, testSweep)
		t.Fatalf("%d summaries published, want exactly 1 (meta %+v)", pub.count(), m)
	}
	s := pub.sent[0]
	if !s.Complete || s.Totals.Units != 10 || s.Totals.Done != 8 || s.Totals.Unreachable != 2 || s.Totals.Deregistered != 8 || s.Totals.GiBFreed != 64 {
		t.Fatalf("summary totals = %+v (complete %v)", s.Totals, s.Complete)
	}
	if len(s.Accounts) != 4 || len(s.Unreachable) != 2 {
		t.Fatalf("summary covers %v, unreachable %+v", s.Accounts, s.Unreachable)
	}
	for _, p := range s.Unreachable {
		if p.Account != missing || !strings.Contains(p.Reason, "role/ami-housekeeper-member") || !strings.Contains(p.Reason, "AccessDenied") {
			t.Fatalf("unreachable entry %+v; want %s with the role and STS's answer", p, missing)
		}
	}
	if len(s.Skipped) != 1 || len(s.ByOU) != 2 {
		t.Fatalf("skipped %+v, by OU %+v", s.Skipped, s.ByOU)
	}
	logs := w.logs.String()
	for _, want := range []string{`"msg":"unit"`, `"status":"unreachable"`, `"msg":"sweep summary"`, `"unreachable":2`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
}

func TestWorkerSkipsADuplicateDelivery(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	dir := directory(1)
	units := w.dispatched(t, dir)
	job, pub := newFakeJob(), &publisher{}
	wk := w.worker(dir, newFakeAccounts(), pub)
	u := units[0]
	if r, err := wk.Run(ctx, u, false, job.Run); err != nil || r.Status != fanout.StatusDone {
		t.Fatalf("first Run = %+v, %v", r, err)
	}
	if r, err := wk.Run(ctx, u, false, job.Run); err != nil || r.Status != fanout.StatusDuplicate {
		t.Fatalf("second Run = %+v, %v; want a duplicate", r, err)
	}
	if n := job.count(u.ID()); n != 1 {
		t.Fatalf("the job ran %d times, want 1", n)
	}
	if _, err := wk.Run(ctx, units[1], false, job.Run); err != nil {
		t.Fatal(err)
	}
	if _, err := wk.Run(ctx, units[1], false, job.Run); err != nil {
		t.Fatal(err)
	}
	if pub.count() != 1 {
		t.Fatalf("%d summaries, want 1", pub.count())
	}
}

// Units of the sweep whose account or region left the scope between the
// dispatch and the work are recorded out-of-scope, without any call.
func TestWorkerRefusesUnitsOutOfScopeWithoutACall(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	then := directory(3) // at dispatch: three accounts, three regions
	then.Regions = append(then.Regions, "ap-south-1")
	w.dispatched(t, then)
	now := directory(1) // at work: 100000000001 suspended, 100000000002 gone, ap-south-1 dropped
	now.Skipped["100000000001"] = "status SUSPENDED"
	accts, job := newFakeAccounts(), newFakeJob()
	wk := w.worker(now, accts, &publisher{})
	tests := []struct {
		name, account, region, reason string
	}{
		{"suspended since", "100000000001", "eu-west-1", "account 100000000001 is not in the deployment's scope: status SUSPENDED"},
		{"left the organization since", "100000000002", "eu-west-1", "account 100000000002 is not in the deployment's scope"},
		{"region dropped since", "100000000000", "ap-south-1", "region ap-south-1 is not in the deployment's scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := wk.Run(ctx, unitOf(testSweep, tt.account, tt.region), false, job.Run)
			if err != nil || r.Status != fanout.StatusOutOfScope || r.Reason != tt.reason {
				t.Fatalf("Run = %q %q, %v; want out-of-scope %q", r.Status, r.Reason, err, tt.reason)
			}
		})
	}
	if accts.total() != 0 || len(job.runs) != 0 {
		t.Fatalf("out-of-scope units made %d role calls and %d job runs", accts.total(), len(job.runs))
	}
	results, _ := w.ledger.Results(ctx, testSweep)
	if len(results) != 3 {
		t.Fatalf("%d results recorded, want the 3 out-of-scope units", len(results))
	}
}

func TestWorkerRetriesThenRecordsFailedOnTheLastAttempt(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	dir := directory(1)
	units := w.dispatched(t, dir)
	job, pub := newFakeJob(), &publisher{}
	wk := w.worker(dir, newFakeAccounts(), pub)
	u := units[0]
	job.fail[u.ID()] = &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "slow down"}
	if _, err := wk.Run(ctx, u, false, job.Run); err == nil || !strings.Contains(err.Error(), "RequestLimitExceeded") {
		t.Fatalf("Run with a throttled job = %v; want the error back for a retry", err)
	}
	if done, _ := w.ledger.Done(ctx, testSweep, u.ID()); done {
		t.Fatal("a unit to be retried was recorded")
	}
	if _, err := wk.Run(ctx, units[1], false, job.Run); err != nil {
		t.Fatal(err)
	}
	if pub.count() != 0 {
		t.Fatal("a summary was published with a unit outstanding")
	}
	r, err := wk.Run(ctx, u, true, job.Run)
	if err != nil || r.Status != fanout.StatusFailed || !strings.Contains(r.Reason, "RequestLimitExceeded") {
		t.Fatalf("last attempt = %q %q, %v; want recorded failed with the error", r.Status, r.Reason, err)
	}
	if pub.count() != 1 || len(pub.sent[0].Failed) != 1 || pub.sent[0].Totals.Done != 1 {
		t.Fatalf("%d summaries; want one listing the failed unit", pub.count())
	}
}

func TestWorkerRecordsAccessRefusedByTheJobUnreachable(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	dir := directory(1)
	units := w.dispatched(t, dir)
	job := newFakeJob()
	wk := w.worker(dir, newFakeAccounts(), &publisher{})
	job.fail[units[0].ID()] = &smithy.GenericAPIError{Code: "OptInRequired", Message: "region not enabled"}
	r, err := wk.Run(ctx, units[0], false, job.Run)
	if err != nil || r.Status != fanout.StatusUnreachable || !strings.Contains(r.Reason, "OptInRequired") {
		t.Fatalf("Run = %q %q, %v; want unreachable, not retried", r.Status, r.Reason, err)
	}
}

func TestWorkerRejectsAUnitOfAnUnknownSweep(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	dir := directory(1)
	accts, job := newFakeAccounts(), newFakeJob()
	wk := w.worker(dir, accts, &publisher{})
	r, err := wk.Run(ctx, unitOf(testSweep, "100000000000", "eu-west-1"), false, job.Run)
	if err != nil || r.Status != fanout.StatusRejected {
		t.Fatalf("Run = %+v, %v; want rejected", r, err)
	}
	if accts.total() != 0 || len(job.runs) != 0 {
		t.Fatal("a unit of an unknown sweep made calls")
	}
}

func TestWorkerRetriesAFailedSummary(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	dir := directory(1)
	units := w.dispatched(t, dir)
	job, pub := newFakeJob(), &publisher{fail: errors.New("SNS: throttled")}
	wk := w.worker(dir, newFakeAccounts(), pub)
	if _, err := wk.Run(ctx, units[0], false, job.Run); err != nil {
		t.Fatal(err)
	}
	_, err := wk.Run(ctx, units[1], false, job.Run)
	if _, ok := errors.AsType[*fanout.SummaryError](err); !ok {
		t.Fatalf("last unit with the publication failing = %v; want *SummaryError", err)
	}
	// The redelivered unit is not run again, and the summary goes out.
	pub.fail = nil
	r, err := wk.Run(ctx, units[1], false, job.Run)
	if err != nil || r.Status != fanout.StatusDuplicate {
		t.Fatalf("redelivery = %+v, %v", r, err)
	}
	if pub.count() != 1 || job.count(units[1].ID()) != 1 {
		t.Fatalf("%d summaries, job ran %d times; want 1 and 1", pub.count(), job.count(units[1].ID()))
	}
	if _, err := wk.Run(ctx, units[0], false, job.Run); err != nil || pub.count() != 1 {
		t.Fatalf("another redelivery: %v, %d summaries; want still 1", err, pub.count())
	}
}
