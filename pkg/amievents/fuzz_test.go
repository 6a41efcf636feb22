package amievents_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
)

// Shapes of what a parsed event may carry. They are AWS's, written out here
// rather than borrowed from the package, so a loosened pattern there shows up
// as a failure here. The region shape is deliberately looser than AWS's list
// (partitions such as eusc-de-east-1 have 4-letter prefixes).
var (
	fuzzImageID    = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	fuzzSnapshotID = regexp.MustCompile(`^snap-[0-9a-f]{8,17}$`)
	fuzzInstanceID = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)
	fuzzAccount    = regexp.MustCompile(`^[0-9]{12}$`)
	fuzzRegion     = regexp.MustCompile(`^[a-z]{2,}(-[a-z]+)+-[0-9]{1,2}$`)
)

// fuzzPlaceholders fills the fixtures' placeholders as fixture does (the
// fixtures are also seeded raw: placeholders are invalid IDs).
var fuzzPlaceholders = strings.NewReplacer(
	"${IMAGE_ID}", "ami-0123456789abcdef0",
	"${INSTANCE_ID}", "i-0123456789abcdef0",
	"${SOURCE_IMAGE_ID}", "ami-0fedcba9876543210",
	"${SOURCE_REGION}", "eu-west-1",
	"${SNAPSHOT_ID}", "snap-0123456789abcdef0",
	"${STRANGER}", "999988887777",
)

// FuzzParseEvent feeds arbitrary bytes to Parse, the one entry point every
// function uses (CloudTrail image creation, permission changes, AMI state
// changes, scheduled events all dispatch from it). Seeds: every event under
// testdata/events, with and without its placeholders filled in.
//
// Properties: no panic; an error is always an *InvalidEventError naming the
// field at fault; a parsed event satisfies the shapes its consumers rely on;
// parsing the same bytes twice gives the same answer.
func FuzzParseEvent(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", "events", dir, "*.json"))
		if err != nil {
			f.Fatal(err)
		}
		if len(paths) == 0 {
			f.Fatalf("no seed events under testdata/events/%s", dir)
		}
		for _, p := range paths {
			raw, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw)
			f.Add([]byte(fuzzPlaceholders.Replace(string(raw))))
		}
	}
	// Hand-made: the smallest envelopes of each route, and legacy/odd
	// permission shapes the fixtures do not cover.
	for _, s := range []string{
		`{"source":"aws.events","detail-type":"Scheduled Event","account":"123456789012","region":"eu-west-1","detail":{}}`,
		`{"source":"aws.ec2","detail-type":"EC2 AMI State Change","account":"123456789012","region":"us-east-1","detail":{"ImageId":"ami-01234567","State":"failed","ErrorMessage":"x"}}`,
		`{"source":"aws.ec2","detail-type":"AWS API Call via CloudTrail","account":"123456789012","region":"us-east-1","detail":{"eventSource":"ec2.amazonaws.com","eventName":"ModifyImageAttribute","requestParameters":{"imageId":"ami-01234567","operationType":"add","userId":["111122223333"],"userGroup":"all"}}}`,
		`{"source":"aws.ec2","detail-type":"AWS API Call via CloudTrail","account":"123456789012","region":"us-east-1","detail":{"eventSource":"ec2.amazonaws.com","eventName":"ModifySnapshotAttribute","requestParameters":{"snapshotId":"snap-01234567","attributeType":"CREATE_VOLUME_PERMISSION","operationType":"remove","userId":{"items":[{"userId":"111122223333"}]}}}}`,
		`{"source":"aws.ec2","detail-type":"AWS API Call via CloudTrail","account":"123456789012","region":"us-east-1","detail":{"eventSource":"ec2.amazonaws.com","eventName":"CopyImage","eventTime":"2026-11-28T10:00:00+02:00","requestParameters":{"sourceImageId":"ami-01234567","sourceRegion":"eu-west-1"},"responseElements":{"imageId":"ami-89abcdef"}}}`,
		`{"source":"aws.ec2","detail-type":"AWS API Call via CloudTrail","account":"123456789012","region":"us-east-1","detail":{"eventSource":"ec2.amazonaws.com","eventName":"CreateImage","errorCode":null,"requestParameters":{"instanceId":"i-01234567"},"responseElements":null}}`,
		`{"source":"aws.ec2","detail-type":"AWS API Call via CloudTrail","account":"123456789012","region":"us-east-1","detail":[]}`,
		`{"source":"aws.ec2","source":"aws.events"}`,
		" \n\t{}",
		"",
		// Found by fuzzing: an error message cut inside a two-byte character.
		`{"source":"aws.ec2","detail-type":"AWS API Call via CloudTrail","account":"123456789012","region":"us-east-1","detail":{"eventSource":"ec2.amazonaws.com","eventName":"ModifyImageAttribute","requestParameters":{"imageId":{"name":"` + strings.Repeat("é", 60) + `"}}}}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := amievents.Parse(raw)
		ev2, err2 := amievents.Parse(raw)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !reflect.DeepEqual(ev, ev2) {
			t.Fatalf("not deterministic:\n first: %#v, %v\nsecond: %#v, %v", ev, err, ev2, err2)
		}
		if err != nil {
			checkInvalid(t, err)
			// Messages go to logs and reports: valid input, valid text.
			if utf8.Valid(raw) && !utf8.ValidString(err.Error()) {
				t.Fatalf("valid UTF-8 input, invalid UTF-8 message: %q", err.Error())
			}
			if ev != nil {
				t.Fatalf("error %v returned with an event %#v", err, ev)
			}
			return
		}
		if ev == nil {
			t.Fatal("nil event and nil error")
		}
		checkEvent(t, ev)
	})
}

// checkInvalid holds every error to the package's contract: permanent,
// typed, and naming the field at fault.
func checkInvalid(t *testing.T, err error) {
	t.Helper()
	if !amievents.IsInvalid(err) {
		t.Fatalf("error is not an *InvalidEventError: %T %v", err, err)
	}
	var ie *amievents.InvalidEventError
	errors.As(err, &ie)
	if ie.Field == "" || ie.Problem == "" {
		t.Fatalf("error without field or problem: %#v", ie)
	}
	if !strings.Contains(err.Error(), ie.Field) {
		t.Fatalf("message %q does not name field %q", err, ie.Field)
	}
}

func checkEvent(t *testing.T, ev amievents.Event) {
	t.Helper()
	m := ev.Meta()
	if m.Kind == "" {
		t.Errorf("empty Kind: %#v", m)
	}
	if !fuzzAccount.MatchString(m.Account) {
		t.Errorf("account %q is not 12 digits", m.Account)
	}
	if !fuzzRegion.MatchString(m.Region) {
		t.Errorf("region %q is not a region name", m.Region)
	}
	if m.ImageID != "" && !fuzzImageID.MatchString(m.ImageID) {
		t.Errorf("image ID %q has the wrong shape", m.ImageID)
	}
	switch e := ev.(type) {
	case *amievents.Scheduled:
		if m.Kind != "Scheduled" || m.ImageID != "" {
			t.Errorf("scheduled event: %#v", m)
		}
	case *amievents.ImageStateChanged:
		if m.Kind != "StateChange" || m.ImageID == "" {
			t.Errorf("state change: %#v", m)
		}
		switch e.State {
		case amievents.StateAvailable, amievents.StateFailed, amievents.StateDeregistered, amievents.StateDisabled:
		default:
			t.Errorf("state %q is not an AMI state", e.State)
		}
	case *amievents.ImageCreated:
		if m.ImageID == "" || m.Kind != e.Operation {
			t.Errorf("image created: kind %q, operation %q, image %q", m.Kind, e.Operation, m.ImageID)
		}
		switch e.Operation {
		case amievents.OpCreateImage:
			if !fuzzInstanceID.MatchString(e.SourceInstanceID) || e.SourceImageID != "" {
				t.Errorf("CreateImage source: %#v", e)
			}
		case amievents.OpCopyImage:
			if !fuzzImageID.MatchString(e.SourceImageID) || !fuzzRegion.MatchString(e.SourceRegion) || e.SourceInstanceID != "" {
				t.Errorf("CopyImage source: %#v", e)
			}
		case amievents.OpRegisterImage:
			if e.SourceInstanceID != "" || e.SourceImageID != "" || e.SourceRegion != "" {
				t.Errorf("RegisterImage has a source: %#v", e)
			}
		default:
			t.Errorf("operation %q does not create an AMI", e.Operation)
		}
	case *amievents.PermissionChanged:
		if !e.IsSnapshot() && m.ImageID != e.ResourceID {
			t.Errorf("image permission change on %q, meta image %q", e.ResourceID, m.ImageID)
		}
		for _, g := range append(append([]amievents.Grant{}, e.Added...), e.Removed...) {
			switch g.Kind {
			case "account", "group", "organization", "ou":
			default:
				t.Errorf("grant kind %q in %#v", g.Kind, e)
			}
		}
	}
	// Fields shared by several kinds, including kinds added after this
	// target was written, checked by name.
	v := reflect.Indirect(reflect.ValueOf(ev))
	if f := v.FieldByName("ResourceID"); f.IsValid() {
		id := f.String()
		if !fuzzImageID.MatchString(id) && !fuzzSnapshotID.MatchString(id) {
			t.Errorf("resource ID %q is neither an AMI nor a snapshot ID", id)
		}
	}
	if f := v.FieldByName("CallTime"); f.IsValid() {
		checkUTC(t, f.Interface().(time.Time))
	}
}

func checkUTC(t *testing.T, tm time.Time) {
	t.Helper()
	if tm.Location() != time.UTC {
		t.Errorf("call time %v is not in UTC", tm)
	}
}
