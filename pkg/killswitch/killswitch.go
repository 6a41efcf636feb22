// Package killswitch reads the operator's emergency stop: an SSM parameter
// that, while engaged, makes every invocation run in audit mode.
//
// The stack names the parameter in the environment but does not create it,
// so no deploy ever resets it. Absent, or "off" (any case, surrounding space
// ignored), it is not engaged; any other value engages it and is the
// operator's reason, so a typo stops changes rather than allowing them.
// "Absent" is exactly SSM's ParameterNotFound: any other error, another
// service's not-found included (KMS.NotFoundException on a SecureString
// whose key is gone), leaves the mode unknown, and the caller must change
// nothing.
//
// Two freshness bounds: the mode of an invocation (Read) is at most TTL
// old, so a busy function asks SSM twice a minute; the check a long run
// makes before its next batch of changes (Halt) is at most HaltTTL old, so
// an engaged switch stops a running sweep or audit within about a second.
package killswitch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
)

const (
	// EnvParameter names the kill switch parameter; unset, there is no
	// kill switch.
	EnvParameter = "HOUSEKEEPER_KILL_SWITCH_PARAMETER"
	// TTL is how long a read is trusted: an operator's change takes effect
	// within it, and a busy function reads the parameter at most once per
	// TTL per instance.
	TTL = 30 * time.Second
	// HaltTTL is how old the answer Halt acts on may be. Not zero: the
	// cleanup asks before every mark and unmark too (CreateTags pace, up
	// to ~10/s), and concurrent lanes ask at once; one read a second per
	// instance stays far below SSM's GetParameter throughput, whose
	// throttling would halt the run.
	HaltTTL = time.Second
	// Off is the value that disengages the switch (as deleting it does).
	Off = "off"
	// maxReason bounds the operator's text repeated on every log line.
	maxReason = 200
)

// State is what the switch said.
type State struct {
	Parameter string `json:"parameter"`
	Engaged   bool   `json:"engaged"`
	// Value is the parameter's value when engaged: the operator's reason,
	// as written (not escaped: see Reason).
	Value string `json:"value,omitempty"`
}

// Interpret is the switch's meaning of a parameter value: found is false
// when the parameter does not exist.
func Interpret(parameter, value string, found bool) State {
	if !found || strings.EqualFold(strings.TrimSpace(value), Off) {
		return State{Parameter: parameter}
	}
	return State{Parameter: parameter, Engaged: true, Value: value}
}

// Reason is the mode reason of an engaged switch, for logs: "kill switch
// <parameter>: <value>", the value cut to 200 characters and escaped so it
// cannot forge or garble a line.
func (s State) Reason() string {
	return "kill switch " + s.Parameter + ": " + Escape(s.Value, maxReason)
}

// Escape cuts s to max characters (runes), marking a cut with "…", and
// escapes what is not graphic (control, format and bidi characters, line
// separators, invalid UTF-8) Go-style, e.g. \n, \u202e, \xff.
func Escape(s string, maxRunes int) string {
	cut := false
	if n := 0; len(s) > maxRunes {
		for i := range s {
			if n == maxRunes {
				s, cut = s[:i], true
				break
			}
			n++
		}
	}
	q := strconv.QuoteToGraphic(s)
	q = strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`)
	if cut {
		q += "…"
	}
	return q
}

// UnreadableError is returned when the switch could not be read: the mode
// is unknown, so the invocation changes nothing and fails (the function's
// errors alarm fires). Its type name is Lambda's errorType.
type UnreadableError struct {
	Parameter string
	Err       error
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("kill switch parameter %q could not be read, so the mode is unknown and nothing is changed: %v", e.Parameter, e.Err)
}

func (e *UnreadableError) Unwrap() error { return e.Err }

// Switch reads one kill switch parameter, caching each answer for TTL. A
// nil *Switch is a switch that is never engaged (no parameter configured).
// It is safe for concurrent use.
type Switch struct {
	ssm  awsapi.KillSwitchSSM
	name string
	now  func() time.Time

	mu sync.Mutex // one read at a time; guards cache and fresh
	// cache serves Read (TTL), fresh serves Halt (HaltTTL); every read of
	// SSM fills both.
	cache, fresh Cache
}

// New returns the switch of parameter name, read through client, on the
// clock now (time.Now when nil).
func New(client awsapi.KillSwitchSSM, name string, now func() time.Time) *Switch {
	if now == nil {
		now = time.Now
	}
	return &Switch{ssm: client, name: name, now: now, cache: Cache{TTL: TTL}, fresh: Cache{TTL: HaltTTL}}
}

// FromEnv returns the switch EnvParameter names, or nil when it is unset.
func FromEnv(getenv func(string) string, client awsapi.KillSwitchSSM) *Switch {
	name := strings.TrimSpace(getenv(EnvParameter))
	if name == "" {
		return nil
	}
	return New(client, name, nil)
}

// Parameter is the parameter's name ("" for a nil switch).
func (s *Switch) Parameter() string {
	if s == nil {
		return ""
	}
	return s.name
}

// Read returns the switch's state, from the cache when it is at most TTL
// old. An error (*UnreadableError) is not cached: the next call reads
// again.
func (s *Switch) Read(ctx context.Context) (State, error) {
	if s == nil {
		return State{}, nil
	}
	return s.read(ctx, &s.cache)
}

// read answers from c when it is fresh, else asks SSM and fills both
// caches.
func (s *Switch) read(ctx context.Context, c *Cache) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.now()
	if st, ok := c.Get(at); ok {
		return st, nil
	}
	if s.ssm == nil {
		return State{}, &UnreadableError{Parameter: s.name, Err: fmt.Errorf("no SSM client")}
	}
	out, err := s.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(s.name), WithDecryption: aws.Bool(true)})
	var st State
	switch {
	case IsParameterNotFound(err):
		st = Interpret(s.name, "", false)
	case err != nil:
		return State{}, &UnreadableError{Parameter: s.name, Err: err}
	case out == nil || out.Parameter == nil || out.Parameter.Value == nil:
		return State{}, &UnreadableError{Parameter: s.name, Err: fmt.Errorf("SSM returned no value")}
	default:
		st = Interpret(s.name, *out.Parameter.Value, true)
	}
	// Timed from before the call, so an answer is never trusted longer
	// than its TTL after it was asked for.
	s.cache.Put(at, st)
	s.fresh.Put(at, st)
	return st, nil
}

// IsParameterNotFound reports whether err is SSM's answer that the
// parameter does not exist, and nothing else: the only error that means
// "not engaged". awserr.IsNotFound is too broad here (any "*.NotFound"
// code, KMS's included).
func IsParameterNotFound(err error) bool {
	if err == nil {
		return false
	}
	var nf *ssmtypes.ParameterNotFound
	if errors.As(err, &nf) {
		return true
	}
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "ParameterNotFound"
}

// Halt is the check a long run makes before its next batch of changes: it
// stops (halted true, with why) when the switch is engaged or cannot be
// read ("kill switch unreadable: ..."), judged on an answer at most
// HaltTTL old, not on Read's TTL cache. A nil switch never halts.
func (s *Switch) Halt(ctx context.Context) (reason string, halted bool) {
	if s == nil {
		return "", false
	}
	st, err := s.read(ctx, &s.fresh)
	switch {
	case err != nil:
		return "kill switch unreadable: " + s.unreadable(err), true
	case st.Engaged:
		return st.Reason(), true
	}
	return "", false
}

// unreadable says why a read failed, without UnreadableError's advice
// (which is about invocations, not a halted run).
func (s *Switch) unreadable(err error) string {
	var ue *UnreadableError
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Sprintf("parameter %q: %v", s.name, err)
}

// Cache holds one State for TTL. It is pure: the caller passes the time.
type Cache struct {
	TTL   time.Duration
	at    time.Time
	state State
	ok    bool
}

// Get returns the state put at most TTL before now. A clock that went
// backwards expires it.
func (c *Cache) Get(now time.Time) (State, bool) {
	if !c.ok || now.Before(c.at) || now.Sub(c.at) >= c.TTL {
		return State{}, false
	}
	return c.state, true
}

// Put stores st as read at at.
func (c *Cache) Put(at time.Time, st State) { c.at, c.state, c.ok = at, st, true }
