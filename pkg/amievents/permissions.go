package amievents

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// CloudTrail operations that change who may use an AMI or snapshot.
const (
	OpModifyImageAttribute    = "ModifyImageAttribute"
	OpModifySnapshotAttribute = "ModifySnapshotAttribute"
)

// CloudTrail operations that bring an AMI or snapshot back, possibly with
// the sharing it had: the guard re-reads its permissions after each.
const (
	OpRestoreImageFromRecycleBin    = "RestoreImageFromRecycleBin"
	OpRestoreSnapshotFromRecycleBin = "RestoreSnapshotFromRecycleBin"
	OpEnableImage                   = "EnableImage"
)

// SharingTrigger is an event after which the sharing guard re-reads one
// AMI's or snapshot's permissions and enforces the policy: a permission
// change (*PermissionChanged) or a restore (*ResourceRestored). The event
// only names the resource; what the guard does depends on what it reads.
type SharingTrigger interface {
	Event
	// Resource is the AMI or snapshot ID, validated.
	Resource() string
	IsSnapshot() bool
	// Caller is who made the call.
	Caller() Principal
}

var (
	_ SharingTrigger = (*PermissionChanged)(nil)
	_ SharingTrigger = (*ResourceRestored)(nil)
)

// Attributes, normalised (CloudTrail records both "launchPermission" and
// "LAUNCH_PERMISSION" styles).
const (
	AttrLaunchPermission       = "launchPermission"
	AttrCreateVolumePermission = "createVolumePermission"
)

var reSnapshotID = regexp.MustCompile(`^snap-[0-9a-f]{8,17}$`)

// Grant is one principal named in a permission change, as the event
// recorded it. The sharing guard never trusts these: it re-reads the
// permissions. They are reported as what the caller asked for.
type Grant struct {
	// Kind is "account", "group" (value "all"), "organization" or "ou".
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// PermissionChanged is a successful ModifyImageAttribute or
// ModifySnapshotAttribute call. Only ResourceID is validated: the rest
// is what the caller asked for, for the report. A request of a shape this
// parser does not know is still a PermissionChanged (ShapeProblem says what
// was odd), since the guard re-reads the permissions whatever the request.
type PermissionChanged struct {
	meta Meta
	// ResourceID is the AMI or snapshot whose attribute changed.
	ResourceID string
	// Attribute is AttrLaunchPermission, AttrCreateVolumePermission, the
	// other attribute the call named (e.g. "description"), or "" when the
	// request does not say.
	Attribute string
	Added     []Grant
	Removed   []Grant
	// ShapeProblem, when set, says what in the request parameters this
	// parser did not understand; Added and Removed may then be incomplete.
	ShapeProblem string
	CallTime     time.Time
	Principal    Principal
}

// Meta implements Event.
func (e *PermissionChanged) Meta() Meta { return e.meta }

// IsSnapshot reports whether the change is on a snapshot.
func (e *PermissionChanged) IsSnapshot() bool { return strings.HasPrefix(e.ResourceID, "snap-") }

// Resource implements SharingTrigger.
func (e *PermissionChanged) Resource() string { return e.ResourceID }

// Caller implements SharingTrigger.
func (e *PermissionChanged) Caller() Principal { return e.Principal }

// ResourceRestored is a successful RestoreImageFromRecycleBin, EnableImage
// or RestoreSnapshotFromRecycleBin call.
type ResourceRestored struct {
	meta Meta
	// Operation is the eventName.
	Operation  string
	ResourceID string
	CallTime   time.Time
	Principal  Principal
}

// Meta implements Event.
func (e *ResourceRestored) Meta() Meta { return e.meta }

// IsSnapshot reports whether a snapshot was restored.
func (e *ResourceRestored) IsSnapshot() bool { return strings.HasPrefix(e.ResourceID, "snap-") }

// Resource implements SharingTrigger.
func (e *ResourceRestored) Resource() string { return e.ResourceID }

// Caller implements SharingTrigger.
func (e *ResourceRestored) Caller() Principal { return e.Principal }

// permissionRequest covers both request shapes CloudTrail records: the
// structured add/remove lists, and the legacy operationType form with flat
// user/group/organization lists.
type permissionRequest struct {
	ImageID                string          `json:"imageId"`
	SnapshotID             string          `json:"snapshotId"`
	AttributeType          string          `json:"attributeType"`
	Attribute              string          `json:"attribute"`
	LaunchPermission       *modifications  `json:"launchPermission"`
	CreateVolumePermission *modifications  `json:"createVolumePermission"`
	OperationType          string          `json:"operationType"`
	UserIDs                json.RawMessage `json:"userId"`
	UserGroups             json.RawMessage `json:"userGroup"`
	GroupNames             json.RawMessage `json:"groupName"`
	OrganizationARNs       json.RawMessage `json:"organizationArn"`
	OUARNs                 json.RawMessage `json:"organizationalUnitArn"`
}

type modifications struct {
	Add    *grantItems `json:"add"`
	Remove *grantItems `json:"remove"`
}

type grantItems struct {
	Items []grantItem `json:"items"`
}

type grantItem struct {
	UserID                string `json:"userId"`
	Group                 string `json:"group"`
	OrganizationARN       string `json:"organizationArn"`
	OrganizationalUnitARN string `json:"organizationalUnitArn"`
}

func (g grantItems) grants() []Grant {
	var out []Grant
	for _, it := range g.Items {
		switch {
		case it.UserID != "":
			out = append(out, Grant{"account", it.UserID})
		case it.Group != "":
			out = append(out, Grant{"group", it.Group})
		case it.OrganizationARN != "":
			out = append(out, Grant{"organization", it.OrganizationARN})
		case it.OrganizationalUnitARN != "":
			out = append(out, Grant{"ou", it.OrganizationalUnitARN})
		}
	}
	return out
}

// legacyValues reads a legacy list: {"items":[{"userId":"1"}]}, ["1"], or "1".
func legacyValues(raw json.RawMessage, key string) []string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return many
	}
	var items struct {
		Items []map[string]string `json:"items"`
	}
	if json.Unmarshal(raw, &items) == nil {
		var out []string
		for _, it := range items.Items {
			if v := it[key]; v != "" {
				out = append(out, v)
			}
		}
		return out
	}
	return nil
}

func normaliseAttribute(a string) string {
	switch strings.ToLower(strings.ReplaceAll(a, "_", "")) {
	case "launchpermission":
		return AttrLaunchPermission
	case "createvolumepermission":
		return AttrCreateVolumePermission
	}
	return a
}

// resourceID reads the one ID the guard needs from requestParameters, in
// either form CloudTrail records EC2 calls: lowerCamel fields
// ({"imageId": "ami-…"}, the older APIs), or the request wrapped under its
// name with the API's own field names ({"EnableImageRequest": {"ImageId":
// "ami-…"}}, newer APIs; UNVERIFIED for the restore and enable calls, so
// both are accepted). field is the lowerCamel name ("imageId"); the error
// names the path where the ID was expected.
func resourceID(d *cloudTrailDetail, field string, valid func(at, id string) error) (string, error) {
	var params map[string]json.RawMessage
	if err := requestParams(d, &params); err != nil {
		return "", err
	}
	at, raw := "detail.requestParameters."+field, params[field]
	if raw == nil {
		wrapper := d.EventName + "Request"
		var inner map[string]json.RawMessage
		if w, ok := params[wrapper]; ok && json.Unmarshal(w, &inner) == nil {
			upper := strings.ToUpper(field[:1]) + field[1:]
			at, raw = "detail.requestParameters."+wrapper+"."+upper, inner[upper]
		}
	}
	var id string
	if raw != nil && json.Unmarshal(raw, &id) != nil {
		return "", invalid(at, "not a string: %s", truncate(string(raw), 80))
	}
	return id, valid(at, id)
}

func validSnapshotID(at, id string) error {
	if !reSnapshotID.MatchString(id) {
		return invalid(at, "%q is not a snapshot ID (snap- followed by 8 to 17 hex digits)", id)
	}
	return nil
}

// truncate shortens s to n characters (never inside one: a message must
// stay valid UTF-8).
func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func parseModifyImageAttribute(d *cloudTrailDetail, call Call) (Event, error) {
	id, err := resourceID(d, "imageId", checkImageID)
	if err != nil {
		return nil, err
	}
	call.Meta.ImageID = id
	return permissionChange(d, call, id, AttrLaunchPermission), nil
}

func parseModifySnapshotAttribute(d *cloudTrailDetail, call Call) (Event, error) {
	id, err := resourceID(d, "snapshotId", validSnapshotID)
	if err != nil {
		return nil, err
	}
	return permissionChange(d, call, id, AttrCreateVolumePermission), nil
}

// parseRestore reads the AMI or snapshot a restore or EnableImage brought
// back.
func parseRestore(snapshot bool) cloudTrailParser {
	return func(d *cloudTrailDetail, call Call) (Event, error) {
		field, valid := "imageId", checkImageID
		if snapshot {
			field, valid = "snapshotId", validSnapshotID
		}
		id, err := resourceID(d, field, valid)
		if err != nil {
			return nil, err
		}
		if !snapshot {
			call.Meta.ImageID = id
		}
		return &ResourceRestored{meta: call.Meta, Operation: d.EventName, ResourceID: id, CallTime: call.Time, Principal: call.Principal}, nil
	}
}

// permissionChange reads what the caller asked for, for the report. It never
// fails: what it cannot read is noted in ShapeProblem.
func permissionChange(d *cloudTrailDetail, call Call, id, permission string) *PermissionChanged {
	ev := &PermissionChanged{meta: call.Meta, ResourceID: id, CallTime: call.Time, Principal: call.Principal}
	var p permissionRequest
	if err := json.Unmarshal(d.RequestParameters, &p); err != nil {
		ev.ShapeProblem = "detail.requestParameters: unexpected shape: " + err.Error()
		return ev
	}
	mods := p.LaunchPermission
	if permission == AttrCreateVolumePermission {
		mods = p.CreateVolumePermission
	}
	ev.Attribute = normaliseAttribute(firstOf(p.AttributeType, p.Attribute))
	if ev.Attribute == "" && (mods != nil || p.OperationType != "") {
		ev.Attribute = permission
	}
	if ev.Attribute != "" && ev.Attribute != permission {
		return ev // another attribute (description, ...): no grants to read
	}
	if mods != nil {
		if mods.Add != nil {
			ev.Added = mods.Add.grants()
		}
		if mods.Remove != nil {
			ev.Removed = mods.Remove.grants()
		}
	}
	var legacy []Grant
	for _, v := range legacyValues(p.UserIDs, "userId") {
		legacy = append(legacy, Grant{"account", v})
	}
	for _, raw := range []json.RawMessage{p.UserGroups, p.GroupNames} {
		for _, v := range legacyValues(raw, "userGroup") {
			legacy = append(legacy, Grant{"group", v})
		}
		for _, v := range legacyValues(raw, "groupName") {
			legacy = append(legacy, Grant{"group", v})
		}
	}
	for _, v := range legacyValues(p.OrganizationARNs, "organizationArn") {
		legacy = append(legacy, Grant{"organization", v})
	}
	for _, v := range legacyValues(p.OUARNs, "organizationalUnitArn") {
		legacy = append(legacy, Grant{"ou", v})
	}
	switch strings.ToLower(p.OperationType) {
	case "add":
		ev.Added = append(ev.Added, legacy...)
	case "remove":
		ev.Removed = append(ev.Removed, legacy...)
	case "":
		if len(legacy) > 0 {
			ev.ShapeProblem = "detail.requestParameters.operationType: missing, but the request lists principals"
		}
	default:
		ev.ShapeProblem = fmt.Sprintf("detail.requestParameters.operationType: %q; expected add or remove", p.OperationType)
	}
	return ev
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
