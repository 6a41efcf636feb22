package fanout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Shapes of what a unit or a dispatch request names. Region names by shape
// (us-east-1, us-gov-west-1, eusc-de-east-1), like org.Scope's; OU and root
// ids as the Organizations API reference documents them.
var (
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
	regionPattern  = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+){1,2}-[1-9][0-9]?$`)
	parentPattern  = regexp.MustCompile(`^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$`)
)

// InvalidInputError is a unit or dispatch request that cannot be vouched
// for: dropped, never retried. Field names the JSON field at fault.
type InvalidInputError struct {
	What    string // "unit" or "dispatch request"
	Field   string
	Problem string
}

func (e *InvalidInputError) Error() string {
	if e.Field == "" {
		return "invalid " + e.What + ": " + e.Problem
	}
	return "invalid " + e.What + ": " + e.Field + ": " + e.Problem
}

// KnownJob says whether job is one a sweep can run.
func KnownJob(job string) bool { return job == JobCleanup || job == JobSharingAudit }

// SweepID names the sweep of job started at the scheduled time t: the job,
// a slash, and t in UTC as RFC 3339 (whole seconds), so every retry of one
// schedule's dispatch names the same sweep.
func SweepID(job string, t time.Time) string {
	return job + "/" + t.UTC().Format(time.RFC3339)
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and
// anything after the object.
func decodeStrict(raw []byte, what string, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &InvalidInputError{What: what, Problem: "not a JSON object of the expected fields: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &InvalidInputError{What: what, Problem: "trailing data after the JSON object"}
	}
	return nil
}

// ParseUnit reads a unit (an SQS message body the dispatcher wrote)
// strictly: unknown fields, trailing data, an unknown job, an account that
// is not 12 digits, a region or OU of the wrong shape, a sweep that is not
// the unit's job and an RFC 3339 time, or a missing dispatch time are
// refused, naming the field.
func ParseUnit(body []byte) (Unit, error) {
	var u Unit
	if err := decodeStrict(body, "unit", &u); err != nil {
		return Unit{}, err
	}
	bad := func(field, format string, args ...any) (Unit, error) {
		return Unit{}, &InvalidInputError{What: "unit", Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	switch {
	case !KnownJob(u.Job):
		return bad("job", "%q is not a known job (%s, %s)", u.Job, JobCleanup, JobSharingAudit)
	case !accountPattern.MatchString(u.Account):
		return bad("account", "%q is not a 12-digit account ID", u.Account)
	case !regionPattern.MatchString(u.Region):
		return bad("region", "%q is not a region name", u.Region)
	case u.OU != "" && !parentPattern.MatchString(u.OU):
		return bad("ou", "%q is not an OU or root id", u.OU)
	case u.Dispatched.IsZero():
		return bad("dispatched", "missing")
	case u.Sweep == "":
		return bad("sweep", "missing")
	}
	rest, ok := strings.CutPrefix(u.Sweep, u.Job+"/")
	if !ok {
		return bad("sweep", "%q is not a sweep of job %q", u.Sweep, u.Job)
	}
	if t, err := time.Parse(time.RFC3339, rest); err != nil || SweepID(u.Job, t) != u.Sweep {
		return bad("sweep", "%q does not end in a UTC RFC 3339 time", u.Sweep)
	}
	return u, nil
}

// DispatchRequest is what the schedule hands the dispatcher: the job and
// the scheduled time (EventBridge's input transformer turns the scheduled
// event into {"job": "cleanup", "time": "<event time>"}).
type DispatchRequest struct {
	Job  string    `json:"job"`
	Time time.Time `json:"time"`
}

// Sweep is the id of the sweep this request starts (SweepID).
func (r DispatchRequest) Sweep() string { return SweepID(r.Job, r.Time) }

// dispatchWire keeps the time a string, so that a missing or malformed time
// is told apart and named.
type dispatchWire struct {
	Job  string `json:"job"`
	Time string `json:"time"`
}

// ParseDispatch reads a dispatch request strictly: unknown fields, trailing
// data, an unknown job or a time that is not RFC 3339 are refused, naming
// the field.
func ParseDispatch(raw []byte) (DispatchRequest, error) {
	var w dispatchWire
	if err := decodeStrict(raw, "dispatch request", &w); err != nil {
		return DispatchRequest{}, err
	}
	if !KnownJob(w.Job) {
		return DispatchRequest{}, &InvalidInputError{What: "dispatch request", Field: "job",
			Problem: fmt.Sprintf("%q is not a known job (%s, %s)", w.Job, JobCleanup, JobSharingAudit)}
	}
	t, err := time.Parse(time.RFC3339, w.Time)
	if err != nil {
		return DispatchRequest{}, &InvalidInputError{What: "dispatch request", Field: "time",
			Problem: fmt.Sprintf("%q is not an RFC 3339 time", w.Time)}
	}
	return DispatchRequest{Job: w.Job, Time: t}, nil
}
