package amievents_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
)

// fixture loads testdata/events/<name> and fills the placeholders.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer(
		"${IMAGE_ID}", "ami-0123456789abcdef0",
		"${INSTANCE_ID}", "i-0123456789abcdef0",
		"${SOURCE_IMAGE_ID}", "ami-0fedcba9876543210",
		"${SOURCE_REGION}", "eu-west-1",
		"${SNAPSHOT_ID}", "snap-0123456789abcdef0",
		"${STRANGER}", "999988887777",
	)
	return []byte(r.Replace(string(raw)))
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, ev amievents.Event)
	}{
		{"valid/cloudtrail-createimage.json", func(t *testing.T, ev amievents.Event) {
			e := ev.(*amievents.ImageCreated)
			if e.Operation != "CreateImage" || e.SourceInstanceID != "i-0123456789abcdef0" {
				t.Errorf("got %+v", e)
			}
			if e.Principal.Who() != "arn:aws:sts::123456789012:assumed-role/image-builder/packer-build-42" {
				t.Errorf("principal = %q", e.Principal.Who())
			}
			if e.Principal.IssuerARN != "arn:aws:iam::123456789012:role/image-builder" {
				t.Errorf("issuer = %q", e.Principal.IssuerARN)
			}
			if !e.CallTime.Equal(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)) {
				t.Errorf("call time = %v", e.CallTime)
			}
			if want := map[string]map[string]string{"image": {"team": "web"}}; !reflect.DeepEqual(e.CallerTags, want) {
				t.Errorf("caller tags = %v, want %v", e.CallerTags, want)
			}
		}},
		{"valid/cloudtrail-copyimage.json", func(t *testing.T, ev amievents.Event) {
			e := ev.(*amievents.ImageCreated)
			if e.Operation != "CopyImage" || e.SourceImageID != "ami-0fedcba9876543210" || e.SourceRegion != "eu-west-1" {
				t.Errorf("got %+v", e)
			}
			if e.Principal.IssuerARN != "" || e.Principal.Who() != "arn:aws:iam::123456789012:user/alice" {
				t.Errorf("principal = %+v", e.Principal)
			}
		}},
		{"valid/cloudtrail-registerimage.json", func(t *testing.T, ev amievents.Event) {
			e := ev.(*amievents.ImageCreated)
			if e.Operation != "RegisterImage" || e.SourceInstanceID != "" || e.SourceImageID != "" {
				t.Errorf("got %+v", e)
			}
			if e.Principal.Who() != "arn:aws:iam::123456789012:root" {
				t.Errorf("principal = %q", e.Principal.Who())
			}
		}},
		{"valid/scheduled.json", func(t *testing.T, ev amievents.Event) {
			e := ev.(*amievents.Scheduled)
			if e.Meta().Kind != "Scheduled" || e.Rule != "arn:aws:events:us-east-1:123456789012:rule/AmiHousekeeper-CleanupSchedule" {
				t.Errorf("got %+v", e)
			}
		}},
		{"valid/statechange-available.json", func(t *testing.T, ev amievents.Event) {
			e := ev.(*amievents.ImageStateChanged)
			if e.State != amievents.StateAvailable || e.Meta().Kind != "StateChange" {
				t.Errorf("got %+v", e)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ev, err := amievents.Parse(fixture(t, tt.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			m := ev.Meta()
			if (m.ImageID != "ami-0123456789abcdef0" && m.Kind != "Scheduled") || m.Account != "123456789012" || m.Region != "us-east-1" {
				t.Errorf("meta = %+v", m)
			}
			tt.check(t, ev)
		})
	}
}

func TestParsePermissionChanges(t *testing.T) {
	public, stranger := amievents.Grant{Kind: "group", Value: "all"}, amievents.Grant{Kind: "account", Value: "999988887777"}
	tests := []struct {
		file      string
		resource  string
		attribute string
		added     []amievents.Grant
	}{
		{"valid/cloudtrail-modifyimageattribute.json", "ami-0123456789abcdef0", "launchPermission", []amievents.Grant{public, stranger}},
		{"valid/cloudtrail-modifyimageattribute-legacy.json", "ami-0123456789abcdef0", "launchPermission", []amievents.Grant{stranger, public}},
		{"valid/cloudtrail-modifyimageattribute-org.json", "ami-0123456789abcdef0", "launchPermission", []amievents.Grant{
			{Kind: "organization", Value: "arn:aws:organizations::123456789012:organization/o-exampleorgid"},
			{Kind: "ou", Value: "arn:aws:organizations::123456789012:ou/o-exampleorgid/ou-ab12-cd34ef56"}}},
		{"valid/cloudtrail-modifyimageattribute-description.json", "ami-0123456789abcdef0", "description", nil},
		{"valid/cloudtrail-modifysnapshotattribute.json", "snap-0123456789abcdef0", "createVolumePermission", []amievents.Grant{public, stranger}},
		{"valid/cloudtrail-modifysnapshotattribute-legacy.json", "snap-0123456789abcdef0", "createVolumePermission", []amievents.Grant{stranger, public}},
		// Unexpected request shapes are still permission changes on a valid
		// resource: the guard re-reads it (issue 7 item 6); the grants are
		// only what could be read, for the report.
		{"valid/cloudtrail-modifyimageattribute-unknown-operation-type.json", "ami-0123456789abcdef0", "launchPermission", nil},
		{"valid/cloudtrail-modifyimageattribute-unexpected-shape.json", "ami-0123456789abcdef0", "", nil},
		{"valid/cloudtrail-modifysnapshotattribute-unexpected-shape.json", "snap-0123456789abcdef0", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ev, err := amievents.Parse(fixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			e, ok := ev.(*amievents.PermissionChanged)
			if !ok {
				t.Fatalf("got %T", ev)
			}
			if e.ResourceID != tt.resource || e.Attribute != tt.attribute || !reflect.DeepEqual(e.Added, tt.added) || e.IsSnapshot() != strings.HasPrefix(tt.resource, "snap-") {
				t.Errorf("got %+v", e)
			}
			if e.Principal.Who() != "arn:aws:sts::123456789012:assumed-role/developer/mallory" {
				t.Errorf("actor = %q", e.Principal.Who())
			}
			if odd := strings.Contains(tt.file, "unexpected") || strings.Contains(tt.file, "unknown"); odd != (e.ShapeProblem != "") {
				t.Errorf("shape problem = %q", e.ShapeProblem)
			}
		})
	}
}

// TestParseRestores: a restore from the Recycle Bin or EnableImage can
// bring sharing back, so each is a sharing trigger naming its resource, in
// either request form CloudTrail uses (wrapped, lowerCamel).
func TestParseRestores(t *testing.T) {
	tests := []struct{ file, op, resource string }{
		{"valid/cloudtrail-restoreimagefromrecyclebin.json", amievents.OpRestoreImageFromRecycleBin, "ami-0123456789abcdef0"},
		{"valid/cloudtrail-enableimage.json", amievents.OpEnableImage, "ami-0123456789abcdef0"},
		{"valid/cloudtrail-restoresnapshotfromrecyclebin.json", amievents.OpRestoreSnapshotFromRecycleBin, "snap-0123456789abcdef0"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ev, err := amievents.Parse(fixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			e, ok := ev.(*amievents.ResourceRestored)
			if !ok {
				t.Fatalf("got %T", ev)
			}
			var trigger amievents.SharingTrigger = e
			if e.Operation != tt.op || trigger.Resource() != tt.resource || trigger.IsSnapshot() != strings.HasPrefix(tt.resource, "snap-") ||
				e.Meta().Kind != tt.op || trigger.Caller().Who() != "arn:aws:sts::123456789012:assumed-role/developer/mallory" {
				t.Errorf("got %+v", e)
			}
			if want := map[bool]string{true: "", false: tt.resource}[e.IsSnapshot()]; e.Meta().ImageID != want {
				t.Errorf("meta image ID = %q, want %q", e.Meta().ImageID, want)
			}
		})
	}
}

// TestParseInvalid pins, for every bad-event fixture, the field the error
// names: the error must say what is wrong and where.
func TestParseInvalid(t *testing.T) {
	tests := map[string]string{
		"malformed-json":                          "(body)",
		"not-an-object":                           "(body)",
		"empty-payload":                           "(body)",
		"wrong-source":                            "source/detail-type",
		"wrong-detail-type":                       "source/detail-type",
		"failed-call-errorcode":                   "detail.errorCode",
		"missing-response-elements":               "detail.responseElements",
		"missing-image-id":                        "detail.responseElements.imageId",
		"malformed-image-id":                      "detail.responseElements.imageId",
		"recipient-account-mismatch":              "detail.recipientAccountId",
		"unsupported-event-name":                  "detail.eventName",
		"wrong-event-source":                      "detail.eventSource",
		"missing-region":                          "region",
		"detail-not-object":                       "detail",
		"copyimage-missing-source-image":          "detail.requestParameters.sourceImageId",
		"createimage-bad-instance-id":             "detail.requestParameters.instanceId",
		"statechange-missing-image-id":            "detail.ImageId",
		"statechange-unknown-state":               "detail.State",
		"malformed-account":                       "account",
		"bad-event-time":                          "detail.eventTime",
		"modifyimageattribute-missing-image-id":   "detail.requestParameters.imageId",
		"modifysnapshotattribute-bad-snapshot-id": "detail.requestParameters.snapshotId",
		// The sharing guard's triggers: only a bad resource ID, a failed
		// call or another account's record is rejected.
		"modifyimageattribute-image-id-not-string":          "detail.requestParameters.imageId",
		"modifysnapshotattribute-failed-call":               "detail.errorCode",
		"restoreimagefromrecyclebin-bad-image-id":           "detail.requestParameters.RestoreImageFromRecycleBinRequest.ImageId",
		"restoreimagefromrecyclebin-recipient-mismatch":     "detail.recipientAccountId",
		"restoresnapshotfromrecyclebin-missing-snapshot-id": "detail.requestParameters.RestoreSnapshotFromRecycleBinRequest.SnapshotId",
		"enableimage-failed-call":                           "detail.errorCode",
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "events", "invalid", "*.json"))
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if _, ok := tests[name]; !ok && name != "other-account" {
			t.Errorf("fixture %s has no expectation here", name)
		}
	}
	for name, field := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := amievents.Parse(fixture(t, "invalid/"+name+".json"))
			var ie *amievents.InvalidEventError
			if !errors.As(err, &ie) {
				t.Fatalf("want *InvalidEventError, got %v", err)
			}
			if ie.Field != field {
				t.Errorf("field = %q, want %q (error: %v)", ie.Field, field, err)
			}
			if ie.Problem == "" || !amievents.IsInvalid(err) {
				t.Errorf("error must explain itself: %v", err)
			}
		})
	}
}

// The account check is the handler's (it knows the deployment's account);
// the parser accepts a well-formed event from any account.
func TestParseOtherAccountIsWellFormed(t *testing.T) {
	ev, err := amievents.Parse(fixture(t, "invalid/other-account.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Meta().Account != "999999999999" {
		t.Errorf("account = %q", ev.Meta().Account)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"valid/cloudtrail-createimage.json", "valid/statechange-available.json",
		"valid/cloudtrail-modifysnapshotattribute.json", "valid/cloudtrail-restoreimagefromrecyclebin.json"} {
		raw, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "events", name))
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := amievents.Parse(raw)
		if err != nil && !amievents.IsInvalid(err) {
			t.Fatalf("non-typed error: %v", err)
		}
		_, sched := ev.(*amievents.Scheduled)
		trigger, isTrigger := ev.(amievents.SharingTrigger)
		switch {
		case err != nil || sched:
		case isTrigger && trigger.Resource() == "":
			t.Fatal("accepted a sharing trigger without a resource ID")
		case !isTrigger && ev.Meta().ImageID == "":
			t.Fatal("accepted an event without an image ID")
		}
	})
}

// TestRegionNames checks the region check, in the envelope and in CopyImage's
// sourceRegion, against every shape of AWS region name and against garbage.
func TestRegionNames(t *testing.T) {
	tests := []struct {
		region string
		ok     bool
	}{
		{"us-east-1", true},
		{"eu-central-2", true},
		{"ap-southeast-5", true},
		{"ap-northeast-3", true},
		{"il-central-1", true},
		{"mx-central-1", true},
		{"ca-west-1", true},
		{"us-gov-west-1", true},
		{"cn-north-1", true},
		{"cn-northwest-1", true},
		{"eusc-de-east-1", true}, // AWS European Sovereign Cloud
		{"us-iso-east-1", true},
		{"us-isob-east-1", true},
		{"us-isof-south-1", true},
		{"eu-isoe-west-1", true},
		{"", false},
		{"us-east-1a", false}, // an availability zone
		{"US-EAST-1", false},
		{"useast1", false},
		{"us-east", false},
		{"us-east-", false},
		{"-us-east-1", false},
		{"us--east-1", false},
		{"us-east-0", false},
		{"us-east-100", false},
		{"u-east-1", false},
		{"europe-west-1", false},
		{"us-a-b-c-d-1", false},
		{"us-east-1/../x", false},
		{"us-east-1\n", false},
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "valid", "cloudtrail-copyimage.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.region, func(t *testing.T) {
			quoted, _ := json.Marshal(tt.region)
			r := string(quoted[1 : len(quoted)-1])
			base := strings.NewReplacer("${IMAGE_ID}", "ami-0123456789abcdef0", "${SOURCE_IMAGE_ID}", "ami-0fedcba9876543210")
			// The event comes from the region under test...
			envelope := strings.ReplaceAll(base.Replace(string(raw)), "us-east-1", r)
			envelope = strings.ReplaceAll(envelope, "${SOURCE_REGION}", "eu-west-1")
			ev, err := amievents.Parse([]byte(envelope))
			if got := err == nil; got != tt.ok {
				t.Fatalf("envelope region %q: accepted = %v, want %v (%v)", tt.region, got, tt.ok, err)
			}
			if tt.ok && ev.Meta().Region != tt.region {
				t.Errorf("region = %q", ev.Meta().Region)
			}
			var ie *amievents.InvalidEventError
			if !tt.ok && (!errors.As(err, &ie) || ie.Field != "region") {
				t.Errorf("want an invalid region, got %v", err)
			}
			// ...or the AMI is copied from it.
			copied := strings.ReplaceAll(base.Replace(string(raw)), "${SOURCE_REGION}", r)
			ev, err = amievents.Parse([]byte(copied))
			if got := err == nil; got != tt.ok {
				t.Fatalf("sourceRegion %q: accepted = %v, want %v (%v)", tt.region, got, tt.ok, err)
			}
			if tt.ok && ev.(*amievents.ImageCreated).SourceRegion != tt.region {
				t.Errorf("source region = %q", ev.(*amievents.ImageCreated).SourceRegion)
			}
			if !tt.ok && (!errors.As(err, &ie) || ie.Field != "detail.requestParameters.sourceRegion") {
				t.Errorf("want an invalid sourceRegion, got %v", err)
			}
		})
	}
}

// TestCallerTags reads the tags a create call asked for (TagSpecifications):
// both shapes CloudTrail uses, per resource type, and any other shape is
// ignored rather than rejected, since the tags only explain a replacement.
func TestCallerTags(t *testing.T) {
	tests := []struct {
		name string
		spec any
		want map[string]map[string]string
	}{
		{"tags list, image and snapshot", map[string]any{"items": []any{
			map[string]any{"resourceType": "image", "tags": []any{map[string]any{"key": "ami-housekeeper:created-by", "value": "arn:aws:iam::123456789012:user/ceo"}}},
			map[string]any{"resourceType": "snapshot", "tags": []any{map[string]any{"key": "team", "value": ""}}},
		}}, map[string]map[string]string{"image": {"ami-housekeeper:created-by": "arn:aws:iam::123456789012:user/ceo"}, "snapshot": {"team": ""}}},
		{"tagSet items", map[string]any{"items": []any{
			map[string]any{"resourceType": "image", "tagSet": map[string]any{"items": []any{map[string]any{"key": "k", "value": "v"}}}},
		}}, map[string]map[string]string{"image": {"k": "v"}}},
		{"none", nil, nil},
		{"unexpected shape", "image=team:web", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var env map[string]any
			if err := json.Unmarshal(fixture(t, "valid/cloudtrail-createimage.json"), &env); err != nil {
				t.Fatal(err)
			}
			params := env["detail"].(map[string]any)["requestParameters"].(map[string]any)
			params["tagSpecificationSet"] = tt.spec
			raw, _ := json.Marshal(env)
			ev, err := amievents.Parse(raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := ev.(*amievents.ImageCreated).CallerTags; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("caller tags = %v, want %v", got, tt.want)
			}
		})
	}
}
