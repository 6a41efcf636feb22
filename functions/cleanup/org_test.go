package main_test

import (
	"strings"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// Organization mode end to end is test/org's (a sweep over accounts and
// regions); these pin what the binary does with its configuration.

const orgScope = org.EnvScope + `={"accounts":["` + account + `"],"regions":["us-east-1"]}`

// orgRole is the cleanup's own member role, as the stack sets it.
const orgRole = "HOUSEKEEPER_ORG_ROLE_NAME=ami-housekeeper-member-cleanup"

// Organization mode without its units queue cannot run a sweep's units: the
// cold start fails, naming what is missing, rather than fall back to
// sweeping the home account on its own.
func TestE2EOrgModeNeedsItsUnitsQueue(t *testing.T) {
	f := newFleet(t)
	bin, err := emulator.FunctionBinary("cleanup")
	if err != nil {
		t.Fatal(err)
	}
	env := append(f.moto.Env("us-east-1"), "HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+policyYAML("enforce"), f.recordsKey(t),
		orgScope, orgRole, fanout.EnvLedgerTable+"=ledger", handlers.EnvUnitsMaxReceive+"=3")
	rie, err := emulator.StartRIE(f.ctx, emulator.RIEOptions{Bootstrap: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer rie.Stop()
	raw, err := emulator.Fixture("events/valid/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	// The runtime emulator answers 502 for a function that exits in its
	// init phase, as Lambda reports Runtime.ExitError.
	body, err := rie.Invoke(f.ctx, raw)
	logs := rie.SettledLogs()
	if err == nil || !strings.Contains(logs, `"msg":"cold start failed: organization mode"`) || !strings.Contains(logs, fanout.EnvUnitsQueueCleanup+" is not set") {
		t.Fatalf("response %s %v\n%s", body, err, logs)
	}
}

// In organization mode the schedule goes to the dispatcher: a scheduled
// event invoked directly is rejected, and nothing is swept.
func TestE2EOrgModeRejectsTheSchedule(t *testing.T) {
	f := newFleet(t)
	before := f.images(t)
	r, logs := f.runPolicy(t, policyYAML("enforce"), orgScope, orgRole, fanout.EnvLedgerTable+"=ledger", handlers.EnvUnitsMaxReceive+"=3",
		fanout.EnvUnitsQueueCleanup+"=cleanup-units.fifo")
	if r.ErrorType != "" || r.Outcome != "rejected" || !strings.Contains(r.Reason, "units of the dispatcher's sweeps") {
		t.Fatalf("response %+v\n%s", r, logs)
	}
	if after := f.images(t); len(after) != len(before) || strings.Contains(logs, `"msg":"cleanup summary"`) {
		t.Errorf("a direct invocation swept in organization mode: %v -> %v\n%s", before, after, logs)
	}
}
