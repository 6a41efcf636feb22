package amievents

import (
	"encoding/json"

	"github.com/aws/aws-lambda-go/events"
)

// ImageStateChanged is EC2's native "EC2 AMI State Change" event. It carries
// no caller identity and no source: only the image and its new state.
type ImageStateChanged struct {
	meta  Meta
	State string
	// ErrorMessage is set for the failed state.
	ErrorMessage string
}

// Meta implements Event.
func (e *ImageStateChanged) Meta() Meta { return e.meta }

// Image states reported by the event.
const (
	StateAvailable    = "available"
	StateFailed       = "failed"
	StateDeregistered = "deregistered"
	StateDisabled     = "disabled"
)

var knownStates = map[string]bool{StateAvailable: true, StateFailed: true, StateDeregistered: true, StateDisabled: true}

type stateChangeDetail struct {
	RequestID    string `json:"RequestId"`
	ImageID      string `json:"ImageId"`
	State        string `json:"State"`
	ErrorMessage string `json:"ErrorMessage"`
}

func parseStateChange(env *events.EventBridgeEvent, meta Meta) (Event, error) {
	var d stateChangeDetail
	if err := json.Unmarshal(env.Detail, &d); err != nil {
		return nil, invalid("detail", "malformed AMI state change detail: %v", err)
	}
	if err := checkImageID("detail.ImageId", d.ImageID); err != nil {
		return nil, err
	}
	if !knownStates[d.State] {
		return nil, invalid("detail.State", "%q is not an AMI state change (expected available, failed, deregistered or disabled)", d.State)
	}
	meta.Kind = "StateChange"
	meta.ImageID = d.ImageID
	return &ImageStateChanged{meta: meta, State: d.State, ErrorMessage: d.ErrorMessage}, nil
}
