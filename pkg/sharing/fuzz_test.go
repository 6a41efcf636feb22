package sharing_test

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
)

// Principal shapes written out here, not borrowed from the package, so a
// loosened pattern there fails here.
var (
	fuzzAccount = regexp.MustCompile(`^[0-9]{12}$`)
	fuzzOrg     = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}$`)
	fuzzOU      = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$`)
)

const (
	fuzzOrgARN = "arn:aws:organizations::111122223333:organization/o-a1b2c3d4e5"
	fuzzOUARN  = "arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-ab12-cdefgh34"
)

// FuzzParseException feeds arbitrary tag values to ParseException, and to
// AssessException under strict bounds. The exception tag is written by
// whoever can tag an AMI, so it is hostile input.
//
// Properties: no panic; the same value gives the same answer; an error names
// the part at fault; a parsed exception has a clean ticket, a whole-day UTC
// until, and principals of valid shapes without duplicates, and writing it
// back out parses to the same exception; AssessException only calls active
// an exception within the policy's bounds.
func FuzzParseException(f *testing.F) {
	for _, s := range []string{
		"CHG-1",
		"CHG-1;until=2026-12-31",
		"CHG-2;until=2026-12-20;principals=111122223333," + fuzzOUARN, // active under the bounds below
		"CHG-1;until=2026-12-31;principals=111122223333,public," + fuzzOrgARN + "," + fuzzOUARN,
		" JIRA OPS-7 ; until = 2026-10-01 ; principals = 111122223333 , 111122223333 ;",
		"x;principals=public,999988887777",
		"until=2026-01-01",
		"CHG-1;until=2026-02-30",
		"CHG-1;until=2026-1-1",
		"CHG-1;principals=",
		"CHG-1;principals=,",
		"CHG-1;principals=ALL",
		"CHG-1;principals=11112222333a",
		"CHG-1;until=2026-01-01;until=2026-01-02",
		"CHG-1;approver=alice",
		"CHG-1;principals",
		";;",
		"",
		"\u00a0CHG\u00a0;until=2026-12-01",
		"CHG-1;principals=١١١١٢٢٢٢٣٣٣٣", // Arabic-Indic digits are not an account
	} {
		f.Add(s)
	}

	// Strict bounds: 30 days, no public, two principals (the OU counts
	// through its organization).
	now := time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC)
	bounds := policy.Sharing{
		ExceptionTag: "ex",
		Exceptions: policy.SharingExceptions{
			MaxDays:           30,
			AllowedPrincipals: []string{"111122223333", fuzzOrgARN},
		},
	}

	f.Fuzz(func(t *testing.T, value string) {
		ex, err := sharing.ParseException(value)
		ex2, err2 := sharing.ParseException(value)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !reflect.DeepEqual(ex, ex2) {
			t.Fatalf("not deterministic:\n first: %#v, %v\nsecond: %#v, %v", ex, err, ex2, err2)
		}
		st := sharing.AssessException(now, bounds, "ami-0123456789abcdef0", map[string]string{"ex": value})
		if st == nil {
			t.Fatal("no status for a tag that is present")
		}
		if err != nil {
			checkExceptionError(t, err)
			if !reflect.DeepEqual(ex, sharing.Exception{}) {
				t.Fatalf("error %v returned with %#v", err, ex)
			}
			if st.State != sharing.ExceptionIgnored {
				t.Fatalf("unreadable exception %q has state %q", value, st.State)
			}
			return
		}
		checkException(t, ex)

		// Written back out, it parses to the same exception.
		out := ex.Ticket
		if !ex.Until.IsZero() {
			out += ";until=" + ex.Until.Format("2006-01-02")
		}
		if len(ex.Principals) > 0 {
			var ps []string
			for _, p := range ex.Principals {
				ps = append(ps, map[bool]string{true: "public", false: p.Value}[p.Kind == sharing.KindPublic])
			}
			out += ";principals=" + strings.Join(ps, ",")
		}
		back, err := sharing.ParseException(out)
		if err != nil || !reflect.DeepEqual(back, ex) {
			t.Fatalf("%q parsed to %#v; written back as %q it parses to %#v, %v", value, ex, out, back, err)
		}

		checkAssessed(t, now, bounds.Exceptions, ex, st)
	})
}

func checkExceptionError(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	for _, part := range []string{"ticket", "until", "principal", "field"} {
		if strings.Contains(msg, part) {
			return
		}
	}
	t.Fatalf("error names no part of the value: %v", err)
}

func checkException(t *testing.T, ex sharing.Exception) {
	t.Helper()
	if ex.Ticket == "" || ex.Ticket != strings.TrimSpace(ex.Ticket) || strings.ContainsAny(ex.Ticket, ";=") {
		t.Errorf("ticket %q: empty, untrimmed, or holds a separator", ex.Ticket)
	}
	if !ex.Until.IsZero() && (ex.Until.Location() != time.UTC || !ex.Until.Equal(ex.Until.Truncate(24*time.Hour))) {
		t.Errorf("until %v is not a whole UTC day", ex.Until)
	}
	seen := map[sharing.Principal]bool{}
	for _, p := range ex.Principals {
		if seen[p] {
			t.Errorf("principal %v listed twice", p)
		}
		seen[p] = true
		var ok bool
		switch p.Kind {
		case sharing.KindPublic:
			ok = p.Value == ""
		case sharing.KindAccount:
			ok = fuzzAccount.MatchString(p.Value)
		case sharing.KindOrganization:
			ok = fuzzOrg.MatchString(p.Value)
		case sharing.KindOU:
			ok = fuzzOU.MatchString(p.Value)
		}
		if !ok {
			t.Errorf("principal %#v has no valid shape", p)
		}
	}
}

// checkAssessed: an active exception is within every bound.
func checkAssessed(t *testing.T, now time.Time, b policy.SharingExceptions, ex sharing.Exception, st *sharing.ExceptionStatus) {
	t.Helper()
	switch st.State {
	case sharing.ExceptionActive, sharing.ExceptionExpired, sharing.ExceptionIgnored:
	default:
		t.Fatalf("state %q", st.State)
	}
	if st.State != sharing.ExceptionActive {
		if st.Reason == "" {
			t.Errorf("%s exception without a reason: %#v", st.State, st)
		}
		return
	}
	today := now.Truncate(24 * time.Hour)
	if ex.Until.IsZero() || ex.Until.Before(today) || ex.Until.After(today.AddDate(0, 0, b.MaxDays)) {
		t.Errorf("active with until %v (today %v, max %d days)", ex.Until, today, b.MaxDays)
	}
	if len(ex.Principals) == 0 {
		t.Error("active with no principals")
	}
	for _, p := range ex.Principals {
		switch {
		case p.Kind == sharing.KindPublic:
			t.Error("active naming public, which the bounds forbid")
		case p.Value == "111122223333", p.Value == fuzzOrgARN:
		case p.Kind == sharing.KindOU && strings.HasPrefix(p.Value, "arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/"):
		default:
			t.Errorf("active naming %v, not in the allowed principals", p)
		}
	}
}
