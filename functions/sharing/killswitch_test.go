package main_test

// End-to-end, issue 9: the kill switch, the policy digest and the success
// metrics of the real sharing binary under the runtime emulator, on moto.

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func (w *world) ssm(t *testing.T) *ssm.Client {
	t.Helper()
	cfg, err := w.moto.Config(w.ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	return ssm.NewFromConfig(cfg)
}

func (w *world) putParameter(t *testing.T, name, value string) {
	t.Helper()
	if _, err := w.ssm(t).PutParameter(w.ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value),
		Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
}

// logLines splits the function's output (emulator.SplitLines).
func logLines(t *testing.T, out string) (logs, metrics []map[string]any) {
	t.Helper()
	logs, metrics, err := emulator.SplitLines(out)
	if err != nil {
		t.Fatal(err)
	}
	return logs, metrics
}

// settledLines is logLines of rie's output once it holds at least n EMF
// lines (complete lines only), or after 5 s: the emulator copies the
// function's output asynchronously, so a line can land just after the
// invocation returns.
func settledLines(t *testing.T, rie *emulator.RIE, n int) (logs, metrics []map[string]any) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := rie.Logs()
		out = out[:strings.LastIndex(out, "\n")+1]
		logs, metrics = logLines(t, out)
		if len(metrics) >= n || time.Now().After(deadline) {
			return logs, metrics
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkModes fails unless every invocation line carries mode and
// mode_reason as given (the cold-start line carries the cold start's).
func checkModes(t *testing.T, lines []map[string]any, mode, reason string) {
	t.Helper()
	n := 0
	for _, l := range lines {
		if l["msg"] == "cold start" {
			continue
		}
		n++
		if l["mode"] != mode || l["mode_reason"] != reason {
			t.Errorf("line %v\nwant mode %q, mode_reason %q", l, mode, reason)
		}
	}
	if n == 0 {
		t.Error("no invocation log line")
	}
}

// The kill switch, engaged in SSM, turns an enforcing guard into an
// auditing one: a public AMI stays public, and every line says why. Once
// the parameter is deleted, the next instance revokes.
func TestE2EKillSwitch(t *testing.T) {
	w := newWorld(t)
	const param = "/e2e-sharing/kill-switch"
	w.putParameter(t, param, "incident 42: partner onboarding")
	env := "HOUSEKEEPER_KILL_SWITCH_PARAMETER=" + param
	ami, snap := w.sharedImage(t)
	before, beforeSnap := w.launchPermissions(t, ami), w.volumePermissions(t, snap)

	rie := w.start(t, "enforce", env)
	r := w.send(t, rie, "valid/cloudtrail-modifyimageattribute.json", map[string]string{"IMAGE_ID": ami, "STRANGER": stranger})
	if r.Outcome != "would-revoke" || len(r.Findings) != 2 {
		t.Fatalf("engaged: %+v\n%s", r, rie.Logs())
	}
	if !slices.Equal(before, w.launchPermissions(t, ami)) || !slices.Equal(beforeSnap, w.volumePermissions(t, snap)) {
		t.Fatal("the guard changed permissions with the kill switch engaged")
	}
	logs, metrics := settledLines(t, rie, 2)
	checkModes(t, logs, "audit", "kill switch "+param+": incident 42: partner onboarding")
	// First the invocation's KillSwitchEngaged (the stack alarms on it),
	// then the check's counts.
	if len(metrics) != 2 || metrics[0]["KillSwitchEngaged"] != 1.0 || metrics[0]["kill_switch_parameter"] != param || metrics[0]["Function"] != "sharing" ||
		metrics[1]["Violations"] != 2.0 || metrics[1]["PrincipalsRevoked"] != 0.0 || metrics[1]["Function"] != "sharing" {
		t.Errorf("EMF lines %v", metrics)
	}
	rie.Stop()

	if _, err := w.ssm(t).DeleteParameter(w.ctx, &ssm.DeleteParameterInput{Name: aws.String(param)}); err != nil {
		t.Fatal(err)
	}
	rie = w.start(t, "enforce", env)
	r = w.send(t, rie, "valid/cloudtrail-modifyimageattribute.json", map[string]string{"IMAGE_ID": ami, "STRANGER": stranger})
	if r.Outcome != "revoked" {
		t.Fatalf("disengaged: %+v\n%s", r, rie.Logs())
	}
	if got := w.launchPermissions(t, ami); !slices.Equal(got, []string{allowed}) {
		t.Errorf("launch permissions after the guard: %v, want only %s", got, allowed)
	}
	logs, metrics = settledLines(t, rie, 1)
	checkModes(t, logs, "enforce", "policy")
	// Public, the stranger and the organization on the AMI; public and the
	// stranger on its snapshot.
	if len(metrics) != 1 || metrics[0]["Violations"] != 2.0 || metrics[0]["PrincipalsRevoked"] != 5.0 {
		t.Errorf("EMF lines %v", metrics)
	}
}

// The scheduled audit's success metric and counts, as its report has them.
func TestE2EAuditMetrics(t *testing.T) {
	w := newWorld(t)
	w.sharedImage(t)
	rie := w.start(t, "enforce")
	raw, err := emulator.Fixture("events/valid/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	body, err := rie.Invoke(w.ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Outcome string `json:"outcome"`
		Audit   struct {
			ImagesChecked int `json:"images_checked"`
			Violations    int `json:"violations"`
			Findings      []struct {
				Action  string `json:"action"`
				Removed []any  `json:"removed"`
			} `json:"findings"`
		} `json:"audit"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Outcome != "audited" || r.Audit.ImagesChecked == 0 || r.Audit.Violations == 0 {
		t.Fatalf("%s %v", body, err)
	}
	revoked := 0
	for _, f := range r.Audit.Findings {
		if f.Action == "revoked" {
			revoked += len(f.Removed)
		}
	}
	_, metrics := settledLines(t, rie, 1)
	if len(metrics) != 1 {
		t.Fatalf("EMF lines %v", metrics)
	}
	m := metrics[0]
	if m["AuditsCompleted"] != 1.0 || m["AMIsAudited"] != float64(r.Audit.ImagesChecked) || m["Violations"] != float64(r.Audit.Violations) ||
		m["PrincipalsRevoked"] != float64(revoked) || revoked == 0 {
		t.Errorf("EMF %v; report: %d checked, %d violations, %d principals revoked", m, r.Audit.ImagesChecked, r.Audit.Violations, revoked)
	}
}

// A policy parameter changed outside a deployment stops the function at
// cold start, saying so; the deployed bytes start it.
func TestE2EPolicyDigest(t *testing.T) {
	w := newWorld(t)
	const param = "/e2e-sharing/policy"
	deployed := policyYAML("audit")
	w.putParameter(t, param, deployed)
	env := []string{"HOUSEKEEPER_POLICY=", "HOUSEKEEPER_POLICY_SSM_PARAMETER=" + param, "HOUSEKEEPER_POLICY_SHA256=" + policy.Digest([]byte(deployed))}
	raw, err := emulator.Fixture("events/valid/cloudtrail-createimage.json")
	if err != nil {
		t.Fatal(err)
	}
	raw = emulator.Fill(raw, map[string]string{"IMAGE_ID": "ami-0123456789abcdef0", "INSTANCE_ID": w.inst})

	rie := w.start(t, "enforce", env...)
	if body, err := rie.Invoke(w.ctx, raw); err != nil || !strings.Contains(string(body), `"outcome":"ignored"`) {
		t.Fatalf("deployed policy: %s %v\n%s", body, err, rie.Logs())
	}
	rie.Stop()

	w.putParameter(t, param, policyYAML("enforce")) // someone with ssm:PutParameter
	rie = w.start(t, "enforce", env...)
	body, err := rie.Invoke(w.ctx, raw)
	if err == nil && !strings.Contains(string(body), "errorType") {
		t.Fatalf("a tampered policy started the function: %s", body)
	}
	logs := rie.SettledLogs()
	for _, want := range []string{"cold start failed: policy invalid", "ssm:" + param, "the policy parameter was changed outside a deployment", "make deploy"} {
		if !strings.Contains(logs, want) {
			t.Errorf("cold start log lacks %q:\n%s", want, logs)
		}
	}
}
