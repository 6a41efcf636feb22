// Package notify publishes what the functions found or did: an EventBridge
// event for machines and an SNS message for people, each optional.
package notify

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
)

// Source is the EventBridge source of every event the project publishes.
const Source = "ami-housekeeper"

// snsSubjectMax is SNS's limit on subjects.
const snsSubjectMax = 100

// Notifier sends to EventBridge and/or SNS, as configured.
type Notifier struct {
	Events   awsapi.EventBridgeAPI // nil: no event
	EventBus string                // name or ARN; "" means the default bus
	SNS      awsapi.SNSAPI         // nil or no TopicARN: no message
	TopicARN string
}

// Message is one notification: an event detail and a human text.
type Message struct {
	DetailType string
	Detail     any
	// Resources are ARNs the event is about (may be empty).
	Resources []string
	Subject   string
	Text      string
}

// Send publishes m on every configured channel; each is attempted, and the
// first error is returned.
func (n Notifier) Send(ctx context.Context, m Message) error {
	var firstErr error
	if n.Events != nil {
		if err := n.putEvent(ctx, m); err != nil {
			firstErr = fmt.Errorf("publishing %q to EventBridge: %w", m.DetailType, err)
		}
	}
	if n.SNS != nil && n.TopicARN != "" {
		subject := m.Subject
		if len(subject) > snsSubjectMax {
			subject = subject[:snsSubjectMax]
		}
		if _, err := n.SNS.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(n.TopicARN), Subject: aws.String(subject), Message: aws.String(m.Text)}); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("publishing %q to SNS: %w", m.DetailType, err)
		}
	}
	return firstErr
}

func (n Notifier) putEvent(ctx context.Context, m Message) error {
	detail, err := json.Marshal(m.Detail)
	if err != nil {
		return err
	}
	resources := m.Resources
	if resources == nil {
		resources = []string{}
	}
	entry := ebtypes.PutEventsRequestEntry{Source: aws.String(Source), DetailType: aws.String(m.DetailType),
		Detail: aws.String(string(detail)), Resources: resources}
	if n.EventBus != "" {
		entry.EventBusName = aws.String(n.EventBus)
	}
	out, err := n.Events.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{entry}})
	if err != nil {
		return err
	}
	if out.FailedEntryCount > 0 && len(out.Entries) > 0 {
		return fmt.Errorf("%s: %s", aws.ToString(out.Entries[0].ErrorCode), aws.ToString(out.Entries[0].ErrorMessage))
	}
	return nil
}

// For builds the notifier of a region: an event on bus when bus is set, a
// message to topicARN when it is set.
func For(clients *awsapi.Clients, region, bus, topicARN string) Notifier {
	n := Notifier{EventBus: bus, TopicARN: topicARN}
	if bus != "" {
		n.Events = clients.EventBridge(region)
	}
	if topicARN != "" {
		n.SNS = clients.SNS(region)
	}
	return n
}
