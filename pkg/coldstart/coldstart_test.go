package coldstart_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/coldstart"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emf"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/killswitch"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

const param = "/AmiHousekeeper/kill-switch"

// switchSSM serves the kill switch parameter: absent when value is nil.
type switchSSM struct {
	value *string
	err   error
}

func (s *switchSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	switch {
	case s.err != nil:
		return nil, s.err
	case s.value == nil:
		return nil, &ssmtypes.ParameterNotFound{Message: aws.String("not found")}
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Name: in.Name, Value: s.value}}, nil
}

// echo is a handler that logs one line and returns the mode of the
// retention section it was built with.
type echo struct {
	pol *policy.Policy
	log *slog.Logger
}

func (e echo) Invoke(ctx context.Context, _ []byte) ([]byte, error) {
	e.log.InfoContext(ctx, "handler line", slog.String("k", "v"))
	return []byte(e.pol.Retention.Mode), nil
}

func enforcing() *policy.Policy {
	p := policy.Default()
	p.Tagging.Mode, p.Sharing.Mode, p.Retention.Mode = policy.ModeEnforce, policy.ModeEnforce, policy.ModeEnforce
	return p
}

func TestEveryInvocationRunsWithItsModeAndWhy(t *testing.T) {
	tests := []struct {
		name       string
		dryRun     bool
		noSwitch   bool
		value      *string
		wantMode   string
		wantReason string
	}{
		{name: "no kill switch configured", noSwitch: true, wantMode: "enforce", wantReason: "policy"},
		{name: "switch absent", wantMode: "enforce", wantReason: "policy"},
		{name: "switch off", value: aws.String(" OFF "), wantMode: "enforce", wantReason: "policy"},
		{name: "switch engaged", value: aws.String("incident 42\n(ops)"), wantMode: "audit", wantReason: `kill switch ` + param + `: incident 42\n(ops)`},
		{name: "switch mistyped engages", value: aws.String("of"), wantMode: "audit", wantReason: "kill switch " + param + ": of"},
		{name: "dry run", dryRun: true, wantMode: "enforce", wantReason: "dry-run env HOUSEKEEPER_DRY_RUN"},
		{name: "dry run and switch engaged", dryRun: true, value: aws.String("stop"), wantMode: "audit", wantReason: "kill switch " + param + ": stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs, metrics bytes.Buffer
			cold := enforcing()
			rt := &coldstart.Runtime{Function: "cleanup", Log: logging.New(&logs, "info"), Policy: cold, DryRun: tt.dryRun,
				Mode: func(p *policy.Policy) policy.Mode { return p.Retention.Mode }, Metrics: &metrics}
			if !tt.noSwitch {
				rt.KillSwitch = killswitch.New(&switchSSM{value: tt.value}, param, nil)
			}
			var built *policy.Policy
			h := rt.Handler(func(pol *policy.Policy, log *slog.Logger) lambda.Handler {
				built = pol
				log.Info("built")
				return echo{pol: pol, log: log}
			})
			out, err := h.Invoke(context.Background(), []byte(`{}`))
			if err != nil || string(out) != tt.wantMode {
				t.Fatalf("Invoke: %s %v; want the handler to run with retention mode %s", out, err, tt.wantMode)
			}
			if cold.Retention.Mode != policy.ModeEnforce || cold.Sharing.Mode != policy.ModeEnforce || cold.Tagging.Mode != policy.ModeEnforce {
				t.Errorf("the cold-start policy was modified: %+v", cold)
			}
			if tt.wantMode == "audit" && (built == cold || built.Sharing.Mode != policy.ModeAudit || built.Tagging.Mode != policy.ModeAudit) {
				t.Errorf("engaged: every section must be audit, on a copy: %+v", built)
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("log lines:\n%s", logs.String())
			}
			for _, line := range lines {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatal(err)
				}
				if m[logging.KeyMode] != tt.wantMode || m[logging.KeyModeReason] != tt.wantReason {
					t.Errorf("line %s\nwant mode %q, mode_reason %q", line, tt.wantMode, tt.wantReason)
				}
				if strings.Count(line, `"mode":`) != 1 {
					t.Errorf("mode logged twice: %s", line)
				}
			}
			checkEngagedMetric(t, metrics.String(), tt.wantMode == "audit", "cleanup")
		})
	}
}

// checkEngagedMetric asserts out is one KillSwitchEngaged=1 EMF line of
// function when engaged, else nothing.
func checkEngagedMetric(t *testing.T, out string, engaged bool, function string) {
	t.Helper()
	if !engaged {
		if out != "" {
			t.Errorf("metrics written with the switch not engaged: %s", out)
		}
		return
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one KillSwitchEngaged line, got:\n%s", out)
	}
	var m struct {
		Function          string
		KillSwitchEngaged float64
		Param             string `json:"kill_switch_parameter"`
		AWS               struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	cw := m.AWS.CloudWatchMetrics
	if m.Function != function || m.KillSwitchEngaged != 1 || m.Param != param || len(cw) != 1 || cw[0].Namespace != emf.Namespace ||
		len(cw[0].Metrics) != 1 || cw[0].Metrics[0].Name != emf.KillSwitchEngaged || len(cw[0].Dimensions) != 1 || cw[0].Dimensions[0][0] != emf.DimensionFunction {
		t.Errorf("KillSwitchEngaged line: %s", lines[0])
	}
}

// Every invocation run engaged writes the metric, not only the first: the
// alarm sees the switch stay engaged. An unreadable switch writes none (the
// invocation fails; the errors alarm covers it).
func TestKillSwitchEngagedOnEveryInvocation(t *testing.T) {
	var metrics bytes.Buffer
	s := &switchSSM{value: aws.String("incident 42")}
	rt := &coldstart.Runtime{Function: "sharing", Log: logging.New(io.Discard, "info"), Policy: enforcing(), Metrics: &metrics,
		Mode:       func(p *policy.Policy) policy.Mode { return p.Sharing.Mode },
		KillSwitch: killswitch.New(s, param, nil)}
	h := rt.Handler(func(pol *policy.Policy, log *slog.Logger) lambda.Handler { return echo{pol: pol, log: log} })
	for range 3 {
		if _, err := h.Invoke(context.Background(), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(metrics.String(), `"KillSwitchEngaged":1`); n != 3 {
		t.Errorf("%d KillSwitchEngaged lines for 3 engaged invocations:\n%s", n, metrics.String())
	}
	metrics.Reset()
	s.err = errors.New("AccessDeniedException: denied")
	rt.KillSwitch = killswitch.New(s, param, nil)
	if _, err := h.Invoke(context.Background(), []byte(`{}`)); err == nil {
		t.Fatal("an unreadable switch did not fail the invocation")
	}
	checkEngagedMetric(t, metrics.String(), false, "sharing")
}

// An unreadable switch leaves the mode unknown: the invocation fails
// before any handler is built, and says why.
func TestUnreadableKillSwitchFailsTheInvocation(t *testing.T) {
	var logs bytes.Buffer
	rt := &coldstart.Runtime{Function: "sharing", Log: logging.New(&logs, "info"), Policy: enforcing(),
		Mode:       func(p *policy.Policy) policy.Mode { return p.Sharing.Mode },
		KillSwitch: killswitch.New(&switchSSM{err: errors.New("AccessDeniedException: denied")}, param, nil)}
	h := rt.Handler(func(*policy.Policy, *slog.Logger) lambda.Handler {
		t.Fatal("a handler was built while the mode is unknown")
		return nil
	})
	_, err := h.Invoke(context.Background(), []byte(`{}`))
	var ue *killswitch.UnreadableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "nothing is changed") {
		t.Fatalf("Invoke: %v", err)
	}
	line := logs.String()
	for _, want := range []string{`"level":"ERROR"`, `"function":"sharing"`, `"mode":"unknown"`, `"mode_reason":"kill switch ` + param + ` unreadable"`, "AccessDeniedException"} {
		if !strings.Contains(line, want) {
			t.Errorf("log lacks %s: %s", want, line)
		}
	}
}

// The cleanup's Halt follows the switch, not the invocation's 30 s cache:
// engaged while a run is under way, it halts the run at the next check at
// least HaltTTL later, though the invocation read "absent" just before.
func TestHaltFollowsTheSwitch(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &switchSSM{}
	rt := &coldstart.Runtime{Log: logging.New(io.Discard, "info"), Policy: enforcing(), Mode: func(p *policy.Policy) policy.Mode { return p.Retention.Mode },
		KillSwitch: killswitch.New(s, param, func() time.Time { return now })}
	if _, _, err := rt.Invocation(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, halted := rt.Halt(context.Background()); halted {
		t.Fatal("halted with the switch absent")
	}
	s.value = aws.String("incident 42")
	now = now.Add(killswitch.HaltTTL)
	if reason, halted := rt.Halt(context.Background()); !halted || reason != "kill switch "+param+": incident 42" {
		t.Errorf("Halt = %q, %v", reason, halted)
	}
	if _, halted := (&coldstart.Runtime{}).Halt(context.Background()); halted {
		t.Error("a runtime without a switch halted")
	}
}
