package fanout_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// A job that runs until its deadline is still recorded: it gets the
// invocation's time minus RecordReserve, and the record runs on its own
// time (review finding: a job using the whole invocation could never be
// recorded, and its redelivery would act again with a fresh per-run cap).
func TestWorkerRecordsAJobThatRanToItsDeadline(t *testing.T) {
	w := newWorld(t)
	dir := directory(1)
	units := w.dispatched(t, dir)
	pub := &publisher{}
	wk := w.worker(dir, newFakeAccounts(), pub)

	invocation := fanout.RecordReserve + 300*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), invocation)
	defer cancel()
	invDeadline, _ := ctx.Deadline()
	var jobDeadline time.Time
	job := func(jctx context.Context, _ *awsapi.Clients, _ org.Account, _ fanout.Unit) (fanout.UnitResult, error) {
		jobDeadline, _ = jctx.Deadline()
		<-jctx.Done() // works until it must stop, like a long sweep
		return fanout.UnitResult{Status: fanout.StatusPartial, Reason: "deadline: 12 AMIs left for the next sweep"}, nil
	}
	res, err := wk.Run(ctx, units[0], false, job)
	if err != nil {
		t.Fatalf("Run = %v, want the unit recorded", err)
	}
	if res.Status != fanout.StatusPartial {
		t.Errorf("status %q, want partial", res.Status)
	}
	if got := invDeadline.Sub(jobDeadline); got < fanout.RecordReserve-time.Millisecond {
		t.Errorf("the job's deadline is %v before the invocation's, want at least %v", got, fanout.RecordReserve)
	}
	if done, err := w.ledger.Done(context.Background(), units[0].Sweep, units[0].ID()); err != nil || !done {
		t.Errorf("ledger Done = %v, %v; want the unit recorded", done, err)
	}
}

// A job that panics is an error like any other: retried, then recorded
// "failed" on the unit's last receive, so the sweep still completes
// (review finding: it died into the DLQ on every receive and held back
// the organization's summary).
func TestWorkerRecordsAPanickingJobFailedOnTheLastAttempt(t *testing.T) {
	w := newWorld(t)
	dir := directory(1)
	units := w.dispatched(t, dir)
	wk := w.worker(dir, newFakeAccounts(), &publisher{})
	boom := func(context.Context, *awsapi.Clients, org.Account, fanout.Unit) (fanout.UnitResult, error) {
		var units []fanout.Unit
		return fanout.UnitResult{Unit: units[3]}, nil // an index out of range: a bug in a job
	}
	if _, err := wk.Run(context.Background(), units[0], false, boom); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("Run = %v, want the panic as an error (retried)", err)
	}
	res, err := wk.Run(context.Background(), units[0], true, boom)
	if err != nil || res.Status != fanout.StatusFailed || !strings.Contains(res.Reason, "panicked") {
		t.Fatalf("last attempt: %+v, %v; want recorded failed", res, err)
	}
}

// A unit that is not one of its sweep's (a direct invocation naming a
// known sweep) is rejected and does not count toward the sweep.
func TestWorkerRejectsAUnitNotOfItsSweep(t *testing.T) {
	w := newWorld(t)
	dir := directory(2)
	small := directory(1)
	units := w.dispatched(t, small) // the sweep's units: one account's
	var extra fanout.Unit
	for _, tg := range dir.Targets() {
		if tg.Account != units[0].Account {
			extra = fanout.Unit{Sweep: units[0].Sweep, Job: units[0].Job, Account: tg.Account, Region: tg.Region, Dispatched: units[0].Dispatched}
			break
		}
	}
	job := newFakeJob()
	res, err := w.worker(dir, newFakeAccounts(), &publisher{}).Run(context.Background(), extra, false, job.Run)
	if err != nil || res.Status != fanout.StatusRejected || job.count(extra.ID()) != 0 {
		t.Fatalf("extra unit: %+v, %v, ran %d times; want rejected, not run", res, err, job.count(extra.ID()))
	}
}
