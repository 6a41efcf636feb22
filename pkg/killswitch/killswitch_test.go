package killswitch_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/killswitch"
)

const param = "/AmiHousekeeper/kill-switch"

func TestInterpret(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		found   bool
		engaged bool
	}{
		{name: "absent", found: false},
		{name: "off", value: "off", found: true},
		{name: "OFF", value: "OFF", found: true},
		{name: "Off with space", value: "  Off\n", found: true},
		{name: "a reason", value: "incident 42: bad retention rule", found: true, engaged: true},
		{name: "on", value: "on", found: true, engaged: true},
		{name: "typo of off", value: "of", found: true, engaged: true},
		{name: "off with words", value: "off please", found: true, engaged: true},
		{name: "false is not off", value: "false", found: true, engaged: true},
		{name: "blank", value: "   ", found: true, engaged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := killswitch.Interpret(param, tt.value, tt.found)
			if st.Engaged != tt.engaged || st.Parameter != param {
				t.Fatalf("Interpret(%q, %v) = %+v, want engaged %v", tt.value, tt.found, st, tt.engaged)
			}
			if st.Engaged && st.Value != tt.value {
				t.Errorf("value %q, want the operator's %q", st.Value, tt.value)
			}
		})
	}
}

func TestReasonEscapesAndCuts(t *testing.T) {
	tests := []struct{ value, want string }{
		{"incident 42", "kill switch " + param + ": incident 42"},
		{`say "stop"`, "kill switch " + param + `: say "stop"`},
		{"line\nforged\"}", "kill switch " + param + `: line\nforged"}`},
		{"bidi \u202egnp.exe", "kill switch " + param + `: bidi \u202egnp.exe`},
		{"bad \xff byte", "kill switch " + param + `: bad \xff byte`},
		{"Zürich ünïcödé", "kill switch " + param + ": Zürich ünïcödé"},
		{strings.Repeat("é", 250), "kill switch " + param + ": " + strings.Repeat("é", 200) + "…"},
		{strings.Repeat("a", 200), "kill switch " + param + ": " + strings.Repeat("a", 200)},
	}
	for _, tt := range tests {
		if got := killswitch.Interpret(param, tt.value, true).Reason(); got != tt.want {
			t.Errorf("Reason of %q\n got %q\nwant %q", tt.value, got, tt.want)
		}
	}
}

func TestCache(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	engaged := killswitch.State{Parameter: param, Engaged: true, Value: "x"}
	c := killswitch.Cache{TTL: 30 * time.Second}
	if _, ok := c.Get(t0); ok {
		t.Fatal("an empty cache answered")
	}
	c.Put(t0, engaged)
	for _, tt := range []struct {
		at time.Duration
		ok bool
	}{{0, true}, {29 * time.Second, true}, {30 * time.Second, false}, {time.Hour, false}, {-time.Second, false}} {
		st, ok := c.Get(t0.Add(tt.at))
		if ok != tt.ok || (ok && st != engaged) {
			t.Errorf("Get at +%v = %+v, %v; want cached %v", tt.at, st, ok, tt.ok)
		}
	}
}

// fakeSSM serves one parameter (absent when value is nil) and counts reads.
type fakeSSM struct {
	mu    sync.Mutex
	value *string
	err   error
	reads int
}

func (f *fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if aws.ToString(in.Name) != param {
		return nil, errors.New("unexpected parameter " + aws.ToString(in.Name))
	}
	switch {
	case f.err != nil:
		return nil, f.err
	case f.value == nil:
		return nil, &ssmtypes.ParameterNotFound{Message: aws.String("not found")}
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Name: in.Name, Value: f.value}}, nil
}

func (f *fakeSSM) set(v *string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value, f.err = v, err
}

// A change reaches the switch within TTL, not before: each read serves the
// instance for 30 seconds.
func TestSwitchReadsAtMostOncePerTTL(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &fakeSSM{}
	s := killswitch.New(f, param, func() time.Time { return now })
	ctx := context.Background()
	step := func(d time.Duration, wantEngaged bool, wantReads int) {
		t.Helper()
		now = now.Add(d)
		st, err := s.Read(ctx)
		if err != nil || st.Engaged != wantEngaged || f.reads != wantReads {
			t.Fatalf("at +%v: %+v %v, reads %d; want engaged %v after %d reads", d, st, err, f.reads, wantEngaged, wantReads)
		}
	}
	step(0, false, 1) // absent
	f.set(aws.String("incident 42"), nil)
	step(10*time.Second, false, 1) // cached: not yet
	step(19*time.Second, false, 1)
	step(time.Second, true, 2) // 30 s after the first read
	f.set(aws.String("off"), nil)
	step(29*time.Second, true, 2)
	step(time.Second, false, 3)
}

// A failed read is not cached, engages nothing by itself, and Halt treats
// it as "stop".
func TestSwitchUnreadable(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	denied := errors.New("AccessDeniedException: not authorized to perform ssm:GetParameter")
	f := &fakeSSM{err: denied}
	s := killswitch.New(f, param, func() time.Time { return now })
	_, err := s.Read(context.Background())
	var ue *killswitch.UnreadableError
	if !errors.As(err, &ue) || !errors.Is(err, denied) || !strings.Contains(err.Error(), `"`+param+`"`) || !strings.Contains(err.Error(), "nothing is changed") {
		t.Fatalf("Read: %v", err)
	}
	if reason, halted := s.Halt(context.Background()); !halted || !strings.Contains(reason, "could not be read") {
		t.Errorf("Halt on an unreadable switch = %q, %v; want halted", reason, halted)
	}
	f.set(nil, nil)
	if st, err := s.Read(context.Background()); err != nil || st.Engaged || f.reads != 3 {
		t.Errorf("after the error cleared: %+v %v, reads %d (the error must not be cached)", st, err, f.reads)
	}
	if reason, halted := s.Halt(context.Background()); halted {
		t.Errorf("Halt with the switch absent = %q, true", reason)
	}
	f.set(aws.String("stop\nnow"), nil)
	now = now.Add(killswitch.TTL)
	if reason, halted := s.Halt(context.Background()); !halted || reason != "kill switch "+param+`: stop\nnow` {
		t.Errorf("Halt engaged = %q, %v", reason, halted)
	}
}

func TestNilSwitchIsNeverEngaged(t *testing.T) {
	var s *killswitch.Switch
	if st, err := s.Read(context.Background()); err != nil || st.Engaged {
		t.Errorf("%+v %v", st, err)
	}
	if _, halted := s.Halt(context.Background()); halted {
		t.Error("a nil switch halted")
	}
	if killswitch.FromEnv(func(string) string { return " " }, &fakeSSM{}) != nil {
		t.Error("FromEnv with the variable blank returned a switch")
	}
	got := killswitch.FromEnv(func(k string) string {
		if k == killswitch.EnvParameter {
			return param
		}
		return ""
	}, &fakeSSM{})
	if got.Parameter() != param {
		t.Errorf("FromEnv: parameter %q", got.Parameter())
	}
}
