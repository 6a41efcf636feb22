package amievents

import (
	"github.com/aws/aws-lambda-go/events"
)

// Scheduled events come from an EventBridge schedule rule.
const (
	SourceEvents        = "aws.events"
	DetailTypeScheduled = "Scheduled Event"
	scheduledKind       = "Scheduled"
)

// Scheduled is an EventBridge "Scheduled Event": a sweep of the account and
// region it names.
type Scheduled struct {
	meta Meta
	// Rule is the ARN of the schedule rule that fired, if present.
	Rule string
}

// Meta implements Event.
func (e *Scheduled) Meta() Meta { return e.meta }

func parseScheduled(env *events.EventBridgeEvent, meta Meta) (Event, error) {
	meta.Kind = scheduledKind
	s := &Scheduled{meta: meta}
	if len(env.Resources) > 0 {
		s.Rule = env.Resources[0]
	}
	return s, nil
}
