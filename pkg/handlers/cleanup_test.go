package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/execute"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/sweep"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// These tests check the cleanup handler's contract without AWS: which events
// start a sweep, and what a sweep that cannot read its inventory returns.
// The sweep itself is tested against moto in functions/cleanup/e2e_test.go.

func cleanupHandler(t *testing.T, sweeps *int) (*handlers.Cleanup, *bytes.Buffer, *bytes.Buffer) {
	var logs, metrics bytes.Buffer
	p := policy.Default().Retention
	p.Mode = policy.ModeEnforce
	return &handlers.Cleanup{
		Sweeper: func(region string) *sweep.Sweeper {
			*sweeps++
			// No clients at all: every inventory source is unreadable.
			return &sweep.Sweeper{Collector: &collect.Collector{}, Executor: &execute.Executor{}}
		},
		Policy:  p,
		Account: "123456789012",
		Log:     logging.New(&logs, "info"),
		Metrics: &metrics,
	}, &logs, &metrics
}

func TestCleanupRejectsWhatIsNotItsSchedule(t *testing.T) {
	for _, name := range []string{"valid/cloudtrail-createimage.json", "valid/statechange-available.json", "invalid/malformed-json.json", "invalid/empty-payload.json"} {
		t.Run(name, func(t *testing.T) {
			sweeps := 0
			h, logs, _ := cleanupHandler(t, &sweeps)
			out, err := h.Invoke(context.Background(), event(t, name))
			if err != nil || !bytes.Contains(out, []byte(`"outcome":"rejected"`)) || sweeps != 0 {
				t.Fatalf("%s %v, sweeps %d", out, err, sweeps)
			}
			if !strings.Contains(logs.String(), `"level":"ERROR"`) {
				t.Errorf("no error log line: %s", logs)
			}
		})
	}
	sweeps := 0
	h, _, _ := cleanupHandler(t, &sweeps)
	other := bytes.ReplaceAll(event(t, "valid/scheduled.json"), []byte("123456789012"), []byte("999999999999"))
	if out, err := h.Invoke(context.Background(), other); err != nil || !bytes.Contains(out, []byte(`"outcome":"rejected"`)) || sweeps != 0 {
		t.Fatalf("other account: %s %v, sweeps %d", out, err, sweeps)
	}
}

func TestCleanupFailsClosedWhenTheInventoryIsUnreadable(t *testing.T) {
	sweeps := 0
	h, logs, metrics := cleanupHandler(t, &sweeps)
	resp, err := h.Handle(context.Background(), event(t, "valid/scheduled.json"))
	var inc *handlers.SweepIncompleteError
	if !errors.As(err, &inc) || resp.Outcome != handlers.OutcomeBlocked || sweeps != 1 {
		t.Fatalf("got %+v, %v; want blocked with a SweepIncompleteError", resp, err)
	}
	if resp.Deregistered != 0 || resp.Totals.Deregister != 0 {
		t.Errorf("a blocked sweep planned removals: %+v", resp)
	}
	var emf map[string]any
	if err := json.Unmarshal(metrics.Bytes(), &emf); err != nil || emf["InventoryBlocked"] != 1.0 || emf["RunsCompleted"] != 0.0 || emf["Function"] != "cleanup" || emf["_aws"] == nil {
		t.Errorf("EMF line %s (%v)", metrics, err)
	}
	if !strings.Contains(logs.String(), `"msg":"cleanup summary"`) || !strings.Contains(logs.String(), `"blocked":"inventory incomplete`) {
		t.Errorf("summary line missing or not blocked:\n%s", logs)
	}
}
