package fanout_test

import (
	"context"
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
