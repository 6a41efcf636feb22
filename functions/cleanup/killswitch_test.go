package main_test

// End-to-end, issue 9: the kill switch and the success metric of the real
// cleanup binary under the runtime emulator, on moto's fleet.

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// invokeWith runs one scheduled event through a fresh instance of the
// binary with the enforce-mode fleet policy and env added; it must answer.
func (f *fleet) invokeWith(t *testing.T, env ...string) (response, string) {
	t.Helper()
	r, logs := f.runPolicy(t, policyYAML("enforce"), env...)
	if r.ErrorType != "" {
		t.Fatalf("response %+v\n%s", r, logs)
	}
	return r, logs
}

// linesOf splits the function's output (emulator.SplitLines).
func linesOf(t *testing.T, out string) (logs, metrics []map[string]any) {
	t.Helper()
	logs, metrics, err := emulator.SplitLines(out)
	if err != nil {
		t.Fatal(err)
	}
	return logs, metrics
}

// The kill switch, engaged in SSM, runs an enforce-mode cleanup as an
// audit: every decision planned and logged, nothing removed, every line
// saying why; the run completed (an audit is a complete run). Once the
// parameter is deleted, the next instance removes.
func TestE2EKillSwitch(t *testing.T) {
	f := newFleet(t)
	cfg, err := f.moto.Config(f.ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	client := ssm.NewFromConfig(cfg)
	const param = "/AmiHousekeeper/kill-switch"
	if _, err := client.PutParameter(f.ctx, &ssm.PutParameterInput{Name: aws.String(param), Value: aws.String("retention rule web is wrong (INC-42)"),
		Type: ssmtypes.ParameterTypeString}); err != nil {
		t.Fatal(err)
	}
	env := "HOUSEKEEPER_KILL_SWITCH_PARAMETER=" + param
	before := f.images(t)

	r, out := f.invokeWith(t, env)
	if r.Outcome != "audit" || r.Totals.Deregister != 2 || r.Deregistered != 0 {
		t.Fatalf("engaged: %+v\n%s", r, out)
	}
	if after := f.images(t); !slices.Equal(before, after) {
		t.Fatalf("the cleanup changed AMIs with the kill switch engaged: %v -> %v", before, after)
	}
	for _, snap := range f.snaps {
		if !f.snapshotExists(t, snap) {
			t.Errorf("snapshot %s deleted with the kill switch engaged", snap)
		}
	}
	checkEveryLine(t, out, "audit", "kill switch "+param+": retention rule web is wrong (INC-42)", 1)

	if _, err := client.DeleteParameter(f.ctx, &ssm.DeleteParameterInput{Name: aws.String(param)}); err != nil {
		t.Fatal(err)
	}
	r, out = f.invokeWith(t, env)
	if r.Outcome != "enforced" || r.Deregistered != 2 || r.Failed != 0 {
		t.Fatalf("disengaged: %+v\n%s", r, out)
	}
	checkEveryLine(t, out, "enforce", "policy", 1)
}

// checkEveryLine fails unless every line of the invocation carries mode and
// mode_reason as given, the decisions included, and the sweep's one EMF
// line has RunsCompleted as given (namespace AmiHousekeeper, dimension
// Function).
func checkEveryLine(t *testing.T, out, mode, reason string, runsCompleted float64) {
	t.Helper()
	logs, metrics := linesOf(t, out)
	decisions := 0
	for _, l := range logs {
		if l["msg"] == "cold start" {
			continue
		}
		if l["msg"] == "cleanup decision" {
			decisions++
		}
		if l["mode"] != mode || l["mode_reason"] != reason {
			t.Errorf("line %v\nwant mode %q, mode_reason %q", l, mode, reason)
		}
	}
	if decisions == 0 {
		t.Errorf("no decision lines:\n%s", out)
	}
	// An invocation run with the kill switch engaged writes KillSwitchEngaged
	// first (the stack alarms on it), then the sweep's line.
	if engaged := strings.HasPrefix(reason, "kill switch "); engaged {
		if len(metrics) != 2 || metrics[0]["KillSwitchEngaged"] != 1.0 || metrics[0]["Function"] != "cleanup" {
			t.Fatalf("EMF lines %v, want KillSwitchEngaged first", metrics)
		}
		metrics = metrics[1:]
	}
	if len(metrics) != 1 {
		t.Fatalf("EMF lines %v", metrics)
	}
	m := metrics[0]
	aws, _ := json.Marshal(m["_aws"])
	if m["RunsCompleted"] != runsCompleted || m["Function"] != "cleanup" ||
		!strings.Contains(string(aws), `"Dimensions":[["Function"]]`) || !strings.Contains(string(aws), `"Namespace":"AmiHousekeeper"`) ||
		!strings.Contains(string(aws), `{"Name":"RunsCompleted","Unit":"Count"}`) {
		t.Errorf("EMF line %v", m)
	}
}

// A sweep that could not do its work emits RunsCompleted 0: moto lacks
// DescribeImageReferences, so a required second opinion fails every removal.
func TestE2ERunsCompletedZeroWhenActionsFail(t *testing.T) {
	f := newFleet(t)
	r, out := f.runPolicy(t, emulator.FleetPolicyWith("enforce", "required"))
	if r.ErrorType != "SweepIncompleteError" {
		t.Fatalf("response %+v\n%s", r, out)
	}
	_, metrics := linesOf(t, out)
	if len(metrics) != 1 || metrics[0]["RunsCompleted"] != 0.0 || metrics[0]["ActionsFailed"] != 2.0 {
		t.Errorf("EMF lines %v", metrics)
	}
}
