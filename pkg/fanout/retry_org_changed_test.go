package fanout_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// A dispatch retried after the organization changed sends the first
// attempt's units, not today's: the summary waits for every unit sent, so
// an account of the first attempt (here unreachable) cannot be left out of
// a summary that says complete, and an account that left the scope cannot
// leave the sweep without a summary. (Found by review: the retry used to
// send today's targets against the first attempt's count.)
func TestRetriedDispatchKeepsTheFirstUnits(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	small := directory(2) // 2 accounts × 2 regions
	d, q := w.dispatcher(small, &publisher{})
	for _, tg := range small.Targets() {
		q.fail[fanout.JobCleanup+"/"+tg.Account+"/"+tg.Region] = 100 // the first attempt sends nothing
	}
	if _, err := d.Dispatch(ctx, cleanupRequest); err == nil {
		t.Fatal("the first dispatch sent nothing and must fail")
	}
	big := directory(3) // an account joined before the retry
	d2, _ := w.dispatcher(big, &publisher{})
	res, err := d2.Dispatch(ctx, cleanupRequest)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 4 || res.Expected != 4 {
		t.Fatalf("retry sent %d of expected %d, want the first attempt's 4", res.Sent, res.Expected)
	}
	var units []fanout.Unit
	for _, m := range w.receiveAll(t, true) {
		u, err := fanout.ParseUnit([]byte(aws.ToString(m.Body)))
		if err != nil {
			t.Fatal(err)
		}
		units = append(units, u)
	}
	want := map[string]bool{}
	for _, tg := range small.Targets() {
		want[tg.Account+"/"+tg.Region] = true
	}
	if len(units) != 4 {
		t.Fatalf("%d units in the queue, want 4", len(units))
	}
	for _, u := range units {
		if !want[u.Account+"/"+u.Region] {
			t.Errorf("unit %s was not in the first attempt", u.ID())
		}
	}

	const late = "100000000000" // an account of the first attempt whose role is refused
	pub := &publisher{}
	wk := w.worker(big, newFakeAccounts(late), pub)
	job := newFakeJob()
	var lateUnits []fanout.Unit
	for _, u := range units {
		if u.Account == late {
			lateUnits = append(lateUnits, u)
			continue
		}
		if _, err := wk.Run(ctx, u, false, job.Run); err != nil {
			t.Fatal(err)
		}
	}
	if pub.count() != 0 {
		t.Fatalf("a summary went out before %s's units were recorded", late)
	}
	for _, u := range lateUnits {
		if _, err := wk.Run(ctx, u, false, job.Run); err != nil {
			t.Fatal(err)
		}
	}
	if pub.count() != 1 {
		t.Fatalf("%d summaries, want 1", pub.count())
	}
	if s := pub.sent[0]; !s.Complete || s.Totals.Units != 4 || len(s.Unreachable) != 2 {
		t.Errorf("summary complete=%v units=%d unreachable=%d, want complete, 4 units, %s unreachable in both regions",
			s.Complete, s.Totals.Units, len(s.Unreachable), late)
	}
}

// A sweep whose units and skipped accounts would not fit one DynamoDB item
// is refused at Begin with the reason, not with DynamoDB's size error on
// every retry (review finding: 1,500 accounts × 4 regions plus 3,500
// accounts skipped by their tag made a 413 KB item).
func TestBeginRefusesAMetaItemTooLarge(t *testing.T) {
	w := newWorld(t)
	m := fanout.Meta{Sweep: "cleanup/2026-11-29T03:00:00Z", Job: fanout.JobCleanup, Skipped: map[string]string{}}
	for i := range 1500 {
		for _, r := range []string{"us-east-1", "eu-west-1", "ap-southeast-2", "eu-central-1"} {
			m.Targets = append(m.Targets, org.Target{Account: fmt.Sprintf("%012d", 100000000000+i), Region: r, OU: "ou-ab12-workload1"})
		}
	}
	for i := range 3500 {
		m.Skipped[fmt.Sprintf("%012d", 200000000000+i)] = `tag housekeeper is not on (it is "off")`
	}
	m.Expected = len(m.Targets)
	_, _, err := w.ledger.Begin(context.Background(), m)
	if err == nil || !strings.Contains(err.Error(), "narrow organizationScope") {
		t.Fatalf("Begin = %v, want the meta item refused as too large", err)
	}
	m.Skipped = nil // the units alone fit
	if _, created, err := w.ledger.Begin(context.Background(), m); err != nil || !created {
		t.Fatalf("Begin of 6,000 units = %v (created %v), want it written", err, created)
	}
}
