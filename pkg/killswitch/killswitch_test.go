package killswitch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

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
	if reason, halted := s.Halt(context.Background()); !halted || reason != `kill switch unreadable: parameter "`+param+`": `+denied.Error() {
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

// Only SSM's ParameterNotFound means "absent, not engaged". Another
// not-found (KMS's, for a SecureString whose key is gone) used to match the
// generic not-found test and disengaged the switch; it, like every other
// error, leaves the mode unknown.
func TestOnlyParameterNotFoundIsAbsent(t *testing.T) {
	apiErr := func(code string) error {
		return &smithy.OperationError{ServiceID: "SSM", OperationName: "GetParameter",
			Err: &smithy.GenericAPIError{Code: code, Message: "test"}}
	}
	tests := []struct {
		name   string
		err    error
		absent bool
	}{
		{name: "typed ParameterNotFound", err: &ssmtypes.ParameterNotFound{Message: aws.String("x")}, absent: true},
		{name: "wrapped typed ParameterNotFound", err: fmt.Errorf("get: %w", &ssmtypes.ParameterNotFound{}), absent: true},
		{name: "ParameterNotFound code", err: apiErr("ParameterNotFound"), absent: true},
		{name: "KMS.NotFound", err: apiErr("KMS.NotFound")},
		{name: "KMS.NotFoundException", err: apiErr("KMS.NotFoundException")},
		{name: "bare NotFound", err: apiErr("NotFound")},
		{name: "ResourceNotFoundException", err: apiErr("ResourceNotFoundException")},
		{name: "ParameterVersionNotFound", err: apiErr("ParameterVersionNotFound")},
		{name: "AccessDenied", err: apiErr("AccessDeniedException")},
		{name: "throttling", err: apiErr("ThrottlingException")},
		{name: "no API code", err: errors.New("ParameterNotFound")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := killswitch.IsParameterNotFound(tt.err); got != tt.absent {
				t.Errorf("IsParameterNotFound(%v) = %v", tt.err, got)
			}
			s := killswitch.New(&fakeSSM{err: tt.err}, param, nil)
			st, err := s.Read(context.Background())
			reason, halted := s.Halt(context.Background())
			if tt.absent {
				if err != nil || st.Engaged || halted {
					t.Errorf("absent: Read %+v %v, Halt %q %v; want not engaged", st, err, reason, halted)
				}
				return
			}
			var ue *killswitch.UnreadableError
			if !errors.As(err, &ue) || !errors.Is(err, tt.err) {
				t.Errorf("Read = %+v, %v; want an UnreadableError (mode unknown)", st, err)
			}
			if !halted || !strings.HasPrefix(reason, "kill switch unreadable: ") {
				t.Errorf("Halt = %q, %v; want halted as unreadable", reason, halted)
			}
		})
	}
}

// Halt does not act on Read's 30 s cache: engaged at t, the next Halt sees
// it though Read still serves its cached "off"; and every Halt read
// refreshes Read too. Halt's own answer lives HaltTTL.
func TestHaltReadsFresh(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	f := &fakeSSM{value: aws.String("off")}
	s := killswitch.New(f, param, func() time.Time { return now })
	ctx := context.Background()
	if st, err := s.Read(ctx); err != nil || st.Engaged {
		t.Fatalf("Read: %+v %v", st, err)
	}
	now = t0.Add(5 * time.Second)
	f.set(aws.String("incident 42"), nil) // engaged at t0+5s
	// The first Halt ever: Read's cached "off" is not used.
	if reason, halted := s.Halt(ctx); !halted || reason != "kill switch "+param+": incident 42" || f.reads != 2 {
		t.Fatalf("Halt 5 s after a cached off = %q, %v (reads %d); want halted", reason, halted, f.reads)
	}
	// The read refreshed Read's cache too: the next invocation is audit.
	if st, _ := s.Read(ctx); !st.Engaged || f.reads != 2 {
		t.Errorf("Read after Halt saw it engaged: %+v, reads %d", st, f.reads)
	}
	// Turned off, then engaged again, all within Read's TTL.
	f.set(aws.String("off"), nil)
	now = now.Add(killswitch.HaltTTL)
	if _, halted := s.Halt(ctx); halted || f.reads != 3 {
		t.Fatalf("Halt after off: halted %v, reads %d", halted, f.reads)
	}
	f.set(aws.String("again"), nil)
	now = now.Add(killswitch.HaltTTL / 2)
	if _, halted := s.Halt(ctx); halted || f.reads != 3 {
		t.Errorf("within HaltTTL: halted %v, reads %d; want the answer of %v ago", halted, f.reads, killswitch.HaltTTL/2)
	}
	now = now.Add(killswitch.HaltTTL / 2)
	if reason, halted := s.Halt(ctx); !halted || reason != "kill switch "+param+": again" || f.reads != 4 {
		t.Errorf("HaltTTL after the last read = %q, %v (reads %d); want halted", reason, halted, f.reads)
	}
	if now.Sub(t0) >= killswitch.TTL {
		t.Fatalf("the test must stay within Read's TTL: %v", now.Sub(t0))
	}
}
