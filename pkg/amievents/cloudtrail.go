package amievents

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// CloudTrail operations that create an AMI.
const (
	OpCreateImage   = "CreateImage"
	OpCopyImage     = "CopyImage"
	OpRegisterImage = "RegisterImage"
)

// Principal is who made the call, from CloudTrail's userIdentity.
type Principal struct {
	Type string
	// ARN of the caller: an IAM user, the root user, or an STS assumed-role session.
	ARN string
	// IssuerARN is the role (or user) that issued an assumed-role session.
	IssuerARN string
	// InvokedBy names the AWS service that made the call on the caller's behalf.
	InvokedBy string
}

// Who returns the best identification of the caller: the ARN, or the
// invoking service when the record has no ARN (AWSService identities).
func (p Principal) Who() string {
	if p.ARN != "" {
		return p.ARN
	}
	return p.InvokedBy
}

// ImageCreated is a successful CreateImage, CopyImage or RegisterImage call
// delivered by CloudTrail.
type ImageCreated struct {
	meta Meta
	// Operation is CreateImage, CopyImage or RegisterImage.
	Operation string
	// CallTime is the CloudTrail eventTime.
	CallTime  time.Time
	Principal Principal
	// SourceInstanceID is set for CreateImage.
	SourceInstanceID string
	// SourceImageID and SourceRegion are set for CopyImage.
	SourceImageID string
	SourceRegion  string
	// CallerTags are the tags the call itself asked for on the new resources
	// (requestParameters.tagSpecificationSet), by resource type ("image",
	// "snapshot"); nil when the record carries none or an unexpected shape.
	// They are the caller's claim, not a fact: the tagger uses them only to
	// say who set a provenance tag it replaces.
	CallerTags map[string]map[string]string
}

// Meta implements Event.
func (e *ImageCreated) Meta() Meta { return e.meta }

// cloudTrailDetail is the part of a CloudTrail record we read.
type cloudTrailDetail struct {
	EventSource        string          `json:"eventSource"`
	EventName          string          `json:"eventName"`
	EventTime          string          `json:"eventTime"`
	EventID            string          `json:"eventID"`
	AWSRegion          string          `json:"awsRegion"`
	ErrorCode          *string         `json:"errorCode"`
	ErrorMessage       string          `json:"errorMessage"`
	RecipientAccountID string          `json:"recipientAccountId"`
	UserIdentity       userIdentity    `json:"userIdentity"`
	RequestParameters  json.RawMessage `json:"requestParameters"`
	ResponseElements   json.RawMessage `json:"responseElements"`
}

type userIdentity struct {
	Type           string `json:"type"`
	ARN            string `json:"arn"`
	InvokedBy      string `json:"invokedBy"`
	SessionContext struct {
		SessionIssuer struct {
			ARN string `json:"arn"`
		} `json:"sessionIssuer"`
	} `json:"sessionContext"`
}

// cloudTrailParser turns one operation's record into an Event; call holds
// what every record shares (meta, caller, time), already validated.
type cloudTrailParser func(d *cloudTrailDetail, call Call) (Event, error)

// cloudTrailOps is the registry of CloudTrail operations, keyed by eventName.
var cloudTrailOps = map[string]cloudTrailParser{
	OpCreateImage:             imageCreation(parseCreateImage),
	OpCopyImage:               imageCreation(parseCopyImage),
	OpRegisterImage:           imageCreation(func(*cloudTrailDetail, *ImageCreated) error { return nil }),
	OpModifyImageAttribute:    parseModifyImageAttribute,
	OpModifySnapshotAttribute: parseModifySnapshotAttribute,
	// A restore can bring sharing back: the sharing guard re-checks.
	OpRestoreImageFromRecycleBin:    parseRestore(false),
	OpEnableImage:                   parseRestore(false),
	OpRestoreSnapshotFromRecycleBin: parseRestore(true),
}

// Call is what every CloudTrail record says about the call itself.
type Call struct {
	Meta      Meta
	Time      time.Time
	Principal Principal
}

// imageCreation adapts a create-style operation: the new AMI's ID is in
// responseElements.imageId.
func imageCreation(read func(d *cloudTrailDetail, ev *ImageCreated) error) cloudTrailParser {
	return func(d *cloudTrailDetail, call Call) (Event, error) {
		var resp struct {
			ImageID string `json:"imageId"`
		}
		if len(d.ResponseElements) == 0 || string(d.ResponseElements) == "null" {
			return nil, invalid("detail.responseElements", "missing; a successful %s records the new imageId there", d.EventName)
		}
		if err := json.Unmarshal(d.ResponseElements, &resp); err != nil {
			return nil, invalid("detail.responseElements", "not an object: %v", err)
		}
		if err := checkImageID("detail.responseElements.imageId", resp.ImageID); err != nil {
			return nil, err
		}
		call.Meta.ImageID = resp.ImageID
		ev := &ImageCreated{meta: call.Meta, Operation: d.EventName, CallTime: call.Time, Principal: call.Principal}
		if err := read(d, ev); err != nil {
			return nil, err
		}
		ev.CallerTags = tagSpecifications(d.RequestParameters)
		return ev, nil
	}
}

// tagSpecifications reads the tags a create call asked for. It is lenient on
// purpose: the tags only explain a replacement, so a shape it does not know
// yields nil and never rejects the event.
func tagSpecifications(params json.RawMessage) map[string]map[string]string {
	type tag struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	var p struct {
		TagSpecificationSet struct {
			Items []struct {
				ResourceType string `json:"resourceType"`
				Tags         []tag  `json:"tags"`
				TagSet       struct {
					Items []tag `json:"items"`
				} `json:"tagSet"`
			} `json:"items"`
		} `json:"tagSpecificationSet"`
	}
	if len(params) == 0 || json.Unmarshal(params, &p) != nil {
		return nil
	}
	var out map[string]map[string]string
	for _, item := range p.TagSpecificationSet.Items {
		for _, t := range append(item.Tags, item.TagSet.Items...) {
			if t.Key == "" || item.ResourceType == "" {
				continue
			}
			if out == nil {
				out = map[string]map[string]string{}
			}
			if out[item.ResourceType] == nil {
				out[item.ResourceType] = map[string]string{}
			}
			out[item.ResourceType][t.Key] = t.Value
		}
	}
	return out
}

func supportedOps() string {
	ops := make([]string, 0, len(cloudTrailOps))
	for op := range cloudTrailOps {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return strings.Join(ops, ", ")
}

func parseCloudTrail(env *events.EventBridgeEvent, meta Meta) (Event, error) {
	var d cloudTrailDetail
	if err := json.Unmarshal(env.Detail, &d); err != nil {
		return nil, invalid("detail", "malformed CloudTrail record: %v", err)
	}
	if d.EventSource != EventSourceEC2 {
		return nil, invalid("detail.eventSource", "%q; expected %q", d.EventSource, EventSourceEC2)
	}
	opParser, ok := cloudTrailOps[d.EventName]
	if !ok {
		return nil, invalid("detail.eventName", "%q is not handled; expected one of %s", d.EventName, supportedOps())
	}
	if d.ErrorCode != nil {
		return nil, invalid("detail.errorCode", "the %s call failed (%s: %s), so it changed nothing", d.EventName, *d.ErrorCode, d.ErrorMessage)
	}
	if d.RecipientAccountID != "" && d.RecipientAccountID != meta.Account {
		return nil, invalid("detail.recipientAccountId", "%q differs from the event account %q", d.RecipientAccountID, meta.Account)
	}
	if d.AWSRegion != "" && d.AWSRegion != meta.Region {
		return nil, invalid("detail.awsRegion", "%q differs from the event region %q", d.AWSRegion, meta.Region)
	}
	callTime := meta.Time
	if d.EventTime != "" {
		t, err := time.Parse(time.RFC3339, d.EventTime)
		if err != nil {
			return nil, invalid("detail.eventTime", "%q is not an RFC 3339 time", d.EventTime)
		}
		callTime = t
	}
	meta.Kind = d.EventName
	if d.EventID != "" {
		meta.ID = d.EventID
	}
	return opParser(&d, Call{
		Meta: meta,
		Time: callTime.UTC(),
		Principal: Principal{
			Type:      d.UserIdentity.Type,
			ARN:       d.UserIdentity.ARN,
			IssuerARN: d.UserIdentity.SessionContext.SessionIssuer.ARN,
			InvokedBy: d.UserIdentity.InvokedBy,
		},
	})
}

func requestParams(d *cloudTrailDetail, into any) error {
	if len(d.RequestParameters) == 0 || string(d.RequestParameters) == "null" {
		return invalid("detail.requestParameters", "missing for %s", d.EventName)
	}
	if err := json.Unmarshal(d.RequestParameters, into); err != nil {
		return invalid("detail.requestParameters", "malformed: %v", err)
	}
	return nil
}

func parseCreateImage(d *cloudTrailDetail, ev *ImageCreated) error {
	var p struct {
		InstanceID string `json:"instanceId"`
	}
	if err := requestParams(d, &p); err != nil {
		return err
	}
	if !reInstanceID.MatchString(p.InstanceID) {
		return invalid("detail.requestParameters.instanceId", "%q is not an instance ID", p.InstanceID)
	}
	ev.SourceInstanceID = p.InstanceID
	return nil
}

func parseCopyImage(d *cloudTrailDetail, ev *ImageCreated) error {
	var p struct {
		SourceImageID string `json:"sourceImageId"`
		SourceRegion  string `json:"sourceRegion"`
	}
	if err := requestParams(d, &p); err != nil {
		return err
	}
	if err := checkImageID("detail.requestParameters.sourceImageId", p.SourceImageID); err != nil {
		return err
	}
	if !reRegion.MatchString(p.SourceRegion) {
		return invalid("detail.requestParameters.sourceRegion", "%q is not an AWS region name", p.SourceRegion)
	}
	ev.SourceImageID = p.SourceImageID
	ev.SourceRegion = p.SourceRegion
	return nil
}
