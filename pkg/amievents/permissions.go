package amievents

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"
)

// CloudTrail operations that change who may use an AMI or snapshot.
const (
	OpModifyImageAttribute    = "ModifyImageAttribute"
	OpModifySnapshotAttribute = "ModifySnapshotAttribute"
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
// ModifySnapshotAttribute call.
type PermissionChanged struct {
	meta Meta
	// ResourceID is the AMI or snapshot whose attribute changed.
	ResourceID string
	// Attribute is AttrLaunchPermission, AttrCreateVolumePermission, or the
	// other attribute the call changed (e.g. "description"), which the guard
	// ignores.
	Attribute string
	Added     []Grant
	Removed   []Grant
	CallTime  time.Time
	Principal Principal
}

// Meta implements Event.
func (e *PermissionChanged) Meta() Meta { return e.meta }

// IsSnapshot reports whether the change is on a snapshot.
func (e *PermissionChanged) IsSnapshot() bool { return strings.HasPrefix(e.ResourceID, "snap-") }

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

func parseModifyImageAttribute(d *cloudTrailDetail, call Call) (Event, error) {
	var p permissionRequest
	if err := requestParams(d, &p); err != nil {
		return nil, err
	}
	if err := checkImageID("detail.requestParameters.imageId", p.ImageID); err != nil {
		return nil, err
	}
	call.Meta.ImageID = p.ImageID
	return permissionChange(d, call, p, p.ImageID, p.LaunchPermission, AttrLaunchPermission)
}

func parseModifySnapshotAttribute(d *cloudTrailDetail, call Call) (Event, error) {
	var p permissionRequest
	if err := requestParams(d, &p); err != nil {
		return nil, err
	}
	if !reSnapshotID.MatchString(p.SnapshotID) {
		return nil, invalid("detail.requestParameters.snapshotId", "%q is not a snapshot ID (snap- followed by 8 to 17 hex digits)", p.SnapshotID)
	}
	return permissionChange(d, call, p, p.SnapshotID, p.CreateVolumePermission, AttrCreateVolumePermission)
}

func permissionChange(d *cloudTrailDetail, call Call, p permissionRequest, id string, mods *modifications, permission string) (Event, error) {
	attr := normaliseAttribute(firstOf(p.AttributeType, p.Attribute))
	if attr == "" {
		if mods == nil && p.OperationType == "" {
			return nil, invalid("detail.requestParameters.attributeType", "missing, and no %s changes in the request", permission)
		}
		attr = permission
	}
	ev := &PermissionChanged{meta: call.Meta, ResourceID: id, Attribute: attr, CallTime: call.Time, Principal: call.Principal}
	if attr != permission {
		return ev, nil // another attribute (description, ...): reported, not acted on
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
			return nil, invalid("detail.requestParameters.operationType", "missing, but the request lists principals")
		}
	default:
		return nil, invalid("detail.requestParameters.operationType", "%q; expected add or remove", p.OperationType)
	}
	return ev, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
