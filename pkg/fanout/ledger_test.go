package fanout_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
)

const testSweep = "cleanup/2026-11-29T03:00:00Z"

func begin(t *testing.T, l *fanout.Ledger, expected int) {
	t.Helper()
	_, created, err := l.Begin(context.Background(), fanout.Meta{Sweep: testSweep, Job: fanout.JobCleanup, Expected: expected,
		Skipped: map[string]string{"999999999999": "status SUSPENDED"}})
	if err != nil || !created {
		t.Fatalf("Begin = created %v, %v; want a new sweep", created, err)
	}
}

func TestLedgerBeginKeepsTheFirstMeta(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	begin(t, w.ledger, 3)
	if _, err := w.ledger.Record(ctx, fanout.UnitResult{Unit: unitOf(testSweep, "100000000000", "eu-west-1"), Status: fanout.StatusDone}); err != nil {
		t.Fatal(err)
	}
	// A retried dispatch, after the organization grew: the sweep keeps its
	// count, its start and the unit already done.
	m, created, err := w.ledger.Begin(ctx, fanout.Meta{Sweep: testSweep, Job: fanout.JobCleanup, Expected: 5, Started: sweepTime.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Fatal("Begin created the meta item again")
	}
	if m.Expected != 3 || m.Done != 1 || m.Started.Equal(sweepTime.Add(time.Hour)) || m.Skipped["999999999999"] != "status SUSPENDED" {
		t.Fatalf("meta after a retried Begin = %+v; want expected 3, done 1, the first start and skipped kept", m)
	}
}

func TestLedgerRecordCountsOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	begin(t, w.ledger, 2)
	u := unitOf(testSweep, "100000000000", "eu-west-1")
	if done, err := w.ledger.Done(ctx, testSweep, u.ID()); err != nil || done {
		t.Fatalf("Done before Record = %v, %v", done, err)
	}
	first, err := w.ledger.Record(ctx, fanout.UnitResult{Unit: u, Status: fanout.StatusDone, Deregistered: 4})
	if err != nil || first.Duplicate || first.Complete {
		t.Fatalf("first Record = %+v, %v; want recorded, sweep incomplete", first, err)
	}
	second, err := w.ledger.Record(ctx, fanout.UnitResult{Unit: u, Status: fanout.StatusDone, Deregistered: 9})
	if err != nil || !second.Duplicate || second.Complete {
		t.Fatalf("second Record = %+v, %v; want a duplicate, sweep still incomplete", second, err)
	}
	if done, err := w.ledger.Done(ctx, testSweep, u.ID()); err != nil || !done {
		t.Fatalf("Done after Record = %v, %v", done, err)
	}
	m, _, err := w.ledger.Meta(ctx, testSweep)
	if err != nil || m.Done != 1 {
		t.Fatalf("meta done = %d (%v), want 1", m.Done, err)
	}
	results, err := w.ledger.Results(ctx, testSweep)
	if err != nil || len(results) != 1 || results[0].Deregistered != 4 {
		t.Fatalf("Results = %+v, %v; want the first record only", results, err)
	}
	last, err := w.ledger.Record(ctx, fanout.UnitResult{Unit: unitOf(testSweep, "100000000000", "us-east-1"), Status: fanout.StatusDone})
	if err != nil || !last.Complete {
		t.Fatalf("last Record = %+v, %v; want the sweep complete", last, err)
	}
}

func TestLedgerRecordRefusals(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	_, err := w.ledger.Record(ctx, fanout.UnitResult{Unit: unitOf(testSweep, "100000000000", "eu-west-1"), Status: fanout.StatusDone})
	if _, ok := errors.AsType[*fanout.MissingSweepError](err); !ok {
		t.Fatalf("Record without a meta item = %v, want *MissingSweepError", err)
	}
	begin(t, w.ledger, 1)
	if _, err := w.ledger.Record(ctx, fanout.UnitResult{Unit: unitOf(testSweep, "100000000000", "eu-west-1"), Status: fanout.StatusDuplicate}); err == nil {
		t.Fatal("Record accepted a status the ledger must not hold")
	}
	if results, _ := w.ledger.Results(ctx, testSweep); len(results) != 0 {
		t.Fatalf("refused records wrote %d results", len(results))
	}
}

func TestLedgerClaimIsGrantedOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	now := sweepTime
	w.ledger.Now = func() time.Time { return now }
	begin(t, w.ledger, 1)
	if _, ok, err := w.ledger.Claim(ctx, testSweep); err != nil || ok {
		t.Fatalf("Claim on an incomplete sweep = %v, %v; want refused", ok, err)
	}
	if _, err := w.ledger.Record(ctx, fanout.UnitResult{Unit: unitOf(testSweep, "100000000000", "eu-west-1"), Status: fanout.StatusDone}); err != nil {
		t.Fatal(err)
	}
	// Ten callers at once: one claim.
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 10 {
		wg.Go(func() {
			_, ok, err := w.ledger.Claim(ctx, testSweep)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if granted != 1 {
		t.Fatalf("%d claims granted, want 1", granted)
	}
	// A claim whose holder died is granted again after its lease.
	now = now.Add(fanout.ClaimLease + time.Second)
	claimed, ok, err := w.ledger.Claim(ctx, testSweep)
	if err != nil || !ok {
		t.Fatalf("Claim after the lease = %v, %v; want granted", ok, err)
	}
	// Given back, it is granted at once; once published, never again.
	if err := w.ledger.Release(ctx, testSweep, claimed); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := w.ledger.Claim(ctx, testSweep); err != nil || !ok {
		t.Fatalf("Claim after Release = %v, %v; want granted", ok, err)
	}
	if err := w.ledger.Published(ctx, testSweep); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if _, ok, err := w.ledger.Claim(ctx, testSweep); err != nil || ok {
		t.Fatalf("Claim after Published = %v, %v; want refused", ok, err)
	}
}

func TestLedgerSummary(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	begin(t, w.ledger, 5)
	rec := func(r fanout.UnitResult) {
		t.Helper()
		if _, err := w.ledger.Record(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	a, b := unitOf(testSweep, "100000000000", "eu-west-1"), unitOf(testSweep, "100000000000", "us-east-1")
	c := unitOf(testSweep, "100000000001", "eu-west-1")
	c.OU = "ou-ab12-bbbbbbbb"
	d := unitOf(testSweep, "100000000002", "eu-west-1")
	rec(fanout.UnitResult{Unit: a, Status: fanout.StatusDone, AMIsSeen: 10, Deregistered: 3, SnapshotsDeleted: 3, GiBFreed: 24, USDPerMonthSaved: 1.2})
	rec(fanout.UnitResult{Unit: b, Status: fanout.StatusPartial, Reason: "deadline: 2 AMIs left for the next sweep", AMIsSeen: 5, Deregistered: 1, SnapshotsDeleted: 2, GiBFreed: 8, USDPerMonthSaved: 0.4})
	rec(fanout.UnitResult{Unit: c, Status: fanout.StatusUnreachable, Reason: "account 100000000001 unreachable: AccessDenied"})
	rec(fanout.UnitResult{Unit: d, Status: fanout.StatusFailed, Reason: "last attempt: throttled"})

	sum, err := w.ledger.Summary(ctx, testSweep)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Complete || sum.Expected != 5 || sum.Totals.Units != 4 {
		t.Fatalf("summary of 4 of 5 units: complete %v, expected %d, units %d", sum.Complete, sum.Expected, sum.Totals.Units)
	}
	tot := sum.Totals
	if tot.Done != 1 || tot.Partial != 1 || tot.Unreachable != 1 || tot.Failed != 1 || tot.Deregistered != 4 || tot.SnapshotsDeleted != 5 ||
		tot.GiBFreed != 32 || tot.AMIsSeen != 15 || tot.USDPerMonthSaved < 1.59 || tot.USDPerMonthSaved > 1.61 {
		t.Fatalf("totals = %+v", tot)
	}
	if len(sum.Accounts) != 1 || sum.Accounts[0] != "100000000000" || strings.Join(sum.Regions, ",") != "eu-west-1,us-east-1" {
		t.Fatalf("covered accounts %v, regions %v", sum.Accounts, sum.Regions)
	}
	if len(sum.Unreachable) != 1 || sum.Unreachable[0].Account != "100000000001" || !strings.Contains(sum.Unreachable[0].Reason, "AccessDenied") {
		t.Fatalf("unreachable = %+v", sum.Unreachable)
	}
	if len(sum.Failed) != 1 || len(sum.Partial) != 1 || len(sum.Skipped) != 1 || sum.Skipped[0].Reason != "status SUSPENDED" {
		t.Fatalf("failed %+v, partial %+v, skipped %+v", sum.Failed, sum.Partial, sum.Skipped)
	}
	if len(sum.ByOU) != 2 || sum.ByOU[0].OU != "ou-ab12-aaaaaaaa" || sum.ByOU[0].Accounts != 2 || sum.ByOU[0].Totals.Deregistered != 4 ||
		sum.ByOU[1].Accounts != 1 || sum.ByOU[1].Totals.Unreachable != 1 {
		t.Fatalf("by OU = %+v", sum.ByOU)
	}
	if len(sum.ByAccount) != 3 || sum.ByAccount[0].Totals.GiBFreed != 32 || strings.Join(sum.ByAccount[0].Regions, ",") != "eu-west-1,us-east-1" {
		t.Fatalf("by account = %+v", sum.ByAccount)
	}
	text := sum.Text()
	for _, want := range []string{"Units 4 of 5", "Unreachable (1)", "100000000001 eu-west-1 (ou-ab12-bbbbbbbb): account 100000000001 unreachable",
		"Skipped accounts (1)", "999999999999: status SUSPENDED", "removed 4", "32 GiB freed", "By OU (2)",
		"ou-ab12-aaaaaaaa: 2 accounts, units 1 done, 1 partial, 1 failed; ", "100000000001 (ou-ab12-bbbbbbbb): units 1 unreachable; AMIs seen 0"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary text lacks %q:\n%s", want, text)
		}
	}
	msg := sum.Message()
	if msg.DetailType != fanout.DetailTypeSummary || !strings.Contains(msg.Subject, "1/5 units done, 2 unreachable or failed") {
		t.Fatalf("message detail-type %q, subject %q", msg.DetailType, msg.Subject)
	}
}
