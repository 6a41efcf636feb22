// Package amievents parses the EventBridge events the functions receive into
// typed, validated values. The envelope is parsed once, then dispatched on
// (source, detail-type) and, for CloudTrail, on eventName, through an
// explicit registry. Anything it cannot vouch for is an *InvalidEventError:
// the caller drops the event (no AWS mutation, no retry).
package amievents

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Event sources and detail types this package understands.
const (
	SourceEC2                = "aws.ec2"
	DetailTypeCloudTrail     = "AWS API Call via CloudTrail"
	DetailTypeAMIStateChange = "EC2 AMI State Change"
	EventSourceEC2           = "ec2.amazonaws.com"
)

// Event is one parsed, validated event. Its concrete types are
// *ImageCreated and *ImageStateChanged.
type Event interface {
	// Meta returns the envelope fields every event shares.
	Meta() Meta
}

// Meta is what every event carries, whatever its kind.
type Meta struct {
	// Kind names the event for logs: "CreateImage", "CopyImage",
	// "RegisterImage" or "StateChange".
	Kind    string
	ID      string
	Account string
	Region  string
	Time    time.Time
	ImageID string
}

// InvalidEventError means the event is malformed or not one the function
// handles. It is permanent: retrying the same event cannot help.
type InvalidEventError struct {
	// Field is the JSON path of the offending field, e.g. "detail.responseElements.imageId".
	Field string
	// Problem says what is wrong and, where useful, what was expected.
	Problem string
}

func (e *InvalidEventError) Error() string {
	return fmt.Sprintf("invalid event: %s: %s", e.Field, e.Problem)
}

// IsInvalid reports whether err is (or wraps) an *InvalidEventError.
func IsInvalid(err error) bool {
	var ie *InvalidEventError
	return errors.As(err, &ie)
}

func invalid(field, format string, args ...any) error {
	return &InvalidEventError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

var (
	reImageID    = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	reInstanceID = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)
	reAccountID  = regexp.MustCompile(`^\d{12}$`)
	// reRegion takes every AWS region name shape: a 2..4-letter partition or
	// geography (us, cn, ap, eusc), one to three words (gov, isob, de, east,
	// southeast) and a number: us-east-1, us-gov-west-1, us-isob-east-1,
	// eusc-de-east-1. It rejects anything else, availability zones included.
	reRegion = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]{2,10}){1,3}-[1-9][0-9]?$`)
)

// detailParser turns the detail of an envelope it was registered for into an Event.
type detailParser func(env *events.EventBridgeEvent, meta Meta) (Event, error)

type routeKey struct{ source, detailType string }

// routes is the explicit registry of envelope kinds; CloudTrail records are
// dispatched further on eventName (see cloudtrail.go).
var routes = map[routeKey]detailParser{
	{SourceEC2, DetailTypeCloudTrail}:     parseCloudTrail,
	{SourceEC2, DetailTypeAMIStateChange}: parseStateChange,
	{SourceEvents, DetailTypeScheduled}:   parseScheduled,
}

func supportedEvents() string {
	kinds := make([]string, 0, len(routes))
	for k := range routes {
		kinds = append(kinds, fmt.Sprintf("%q / %q", k.source, k.detailType))
	}
	sort.Strings(kinds)
	return strings.Join(kinds, ", ")
}

// Parse validates raw as an EventBridge event and returns the typed event.
func Parse(raw []byte) (Event, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return nil, invalid("(body)", "empty payload; expected an EventBridge event object")
	}
	if trimmed[0] != '{' {
		return nil, invalid("(body)", "payload is not a JSON object; expected an EventBridge event object")
	}
	var env events.EventBridgeEvent
	if err := json.Unmarshal(trimmed, &env); err != nil {
		return nil, invalid("(body)", "malformed JSON: %v", err)
	}
	if env.Source == "" {
		return nil, invalid("source", "missing; expected %q", SourceEC2)
	}
	if env.DetailType == "" {
		return nil, invalid("detail-type", "missing")
	}
	parse, ok := routes[routeKey{env.Source, env.DetailType}]
	if !ok {
		return nil, invalid("source/detail-type", "unsupported event %q / %q; expected %s",
			env.Source, env.DetailType, supportedEvents())
	}
	if !reAccountID.MatchString(env.AccountID) {
		return nil, invalid("account", "%q is not a 12-digit AWS account ID", env.AccountID)
	}
	if !reRegion.MatchString(env.Region) {
		return nil, invalid("region", "%q is not an AWS region name", env.Region)
	}
	// Scheduled events carry an empty object ({}); a missing detail is bad everywhere.
	d := bytes.TrimSpace(env.Detail)
	if len(d) == 0 || d[0] != '{' {
		return nil, invalid("detail", "missing or not a JSON object")
	}
	meta := Meta{ID: env.ID, Account: env.AccountID, Region: env.Region, Time: env.Time}
	return parse(&env, meta)
}

func checkImageID(field, id string) error {
	if id == "" {
		return invalid(field, "missing image ID")
	}
	if !reImageID.MatchString(id) {
		return invalid(field, "%q is not an AMI ID (ami- followed by 8 to 17 hex digits)", id)
	}
	return nil
}

// IsRegion reports whether s has the shape of an AWS region name.
func IsRegion(s string) bool { return reRegion.MatchString(s) }
