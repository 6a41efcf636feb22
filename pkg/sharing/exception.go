package sharing

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Exception is a parsed exception tag: a ticket that keeps some principals
// shared, optionally until a date.
//
// The tag value has the form "<ticket>[;until=YYYY-MM-DD][;principals=a,b]",
// e.g. "CHG-1234;until=2026-12-31;principals=111122223333,public".
type Exception struct {
	// Ticket is the change or ticket reference that justifies the exception.
	Ticket string
	// Until is the last day (UTC) the exception holds, at 00:00 UTC; the
	// exception covers that whole day and has expired from 00:00 UTC the day
	// after. The zero time means no expiry.
	Until time.Time
	// Principals are the principals the exception keeps. An exception without
	// principals keeps nothing.
	Principals []Principal
}

// dateLayout is the format of until=.
const dateLayout = "2006-01-02"

var (
	reAccount = regexp.MustCompile(`^[0-9]{12}$`)
	// The same shapes the policy accepts for allowed organizations and OUs.
	reOrgARN = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}$`)
	reOUARN  = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$`)
)

// ParseException parses an exception tag value
// "<ticket>[;until=YYYY-MM-DD][;principals=a,b]"; principals are account IDs,
// organization ARNs, OU ARNs or "public". Spaces around fields are ignored, and
// so are empty fields (a trailing ";"). Each field may appear once.
func ParseException(value string) (Exception, error) {
	fields := strings.Split(value, ";")
	ticket := strings.TrimSpace(fields[0])
	if ticket == "" {
		return Exception{}, errors.New(`missing ticket: the value must start with it, e.g. "CHG-1234;until=2026-12-31;principals=111122223333"`)
	}
	if strings.Contains(ticket, "=") {
		return Exception{}, fmt.Errorf(`missing ticket: the value starts with %q; it must start with the ticket, e.g. "CHG-1234;%s"`, ticket, ticket)
	}
	ex := Exception{Ticket: ticket}
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		key, val, ok := strings.Cut(f, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok {
			return Exception{}, fmt.Errorf("field %q is not key=value (known keys: until, principals)", f)
		}
		if seen[key] {
			return Exception{}, fmt.Errorf("field %q appears twice", key)
		}
		seen[key] = true
		switch key {
		case "until":
			t, err := time.Parse(dateLayout, val)
			if err != nil {
				return Exception{}, fmt.Errorf("until %q is not a date YYYY-MM-DD", val)
			}
			ex.Until = t
		case "principals":
			ps, err := parsePrincipals(val)
			if err != nil {
				return Exception{}, err
			}
			ex.Principals = ps
		default:
			return Exception{}, fmt.Errorf("unknown field %q (known keys: until, principals)", key)
		}
	}
	return ex, nil
}

func parsePrincipals(list string) ([]Principal, error) {
	if list == "" {
		return nil, errors.New("principals is empty: list account IDs, organization or OU ARNs, or public, separated by commas")
	}
	var out []Principal
	seen := map[Principal]bool{}
	for _, raw := range strings.Split(list, ",") {
		s := strings.TrimSpace(raw)
		p, err := parsePrincipal(s)
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

func parsePrincipal(s string) (Principal, error) {
	switch {
	case s == "":
		return Principal{}, errors.New("principals has an empty entry")
	case s == "public":
		return Principal{Kind: KindPublic}, nil
	case strings.EqualFold(s, "all") || strings.EqualFold(s, "public"):
		return Principal{}, fmt.Errorf("principal %q: write public", s)
	case reAccount.MatchString(s):
		return Principal{Kind: KindAccount, Value: s}, nil
	case reOrgARN.MatchString(s):
		return Principal{Kind: KindOrganization, Value: s}, nil
	case reOUARN.MatchString(s):
		return Principal{Kind: KindOU, Value: s}, nil
	}
	return Principal{}, fmt.Errorf("principal %q is not an account ID (12 digits), an organization ARN, an OU ARN or public", s)
}

// expired reports whether the exception no longer holds at now: from 00:00 UTC
// the day after Until.
func (x Exception) expired(now time.Time) bool {
	return !x.Until.IsZero() && !now.Before(x.Until.AddDate(0, 0, 1))
}

// Exception states (ExceptionStatus.State).
const (
	// ExceptionActive: the exception keeps its principals now.
	ExceptionActive = "active"
	// ExceptionExpired: its until day is past; it keeps nothing.
	ExceptionExpired = "expired"
	// ExceptionIgnored: unreadable, or it breaks a bound of the policy
	// (/sharing/exceptions); it keeps nothing.
	ExceptionIgnored = "ignored"
)

// ExceptionStatus is what the guard made of one resource's exception tag:
// the audit lists one per tagged AMI or snapshot.
type ExceptionStatus struct {
	// ResourceID is the AMI or snapshot that carries the tag.
	ResourceID string      `json:"resource_id"`
	Ticket     string      `json:"ticket,omitempty"`
	Principals []Principal `json:"principals,omitempty"`
	// Until is the last day the exception holds (YYYY-MM-DD, UTC); "" when
	// the tag has none.
	Until string `json:"until,omitempty"`
	State string `json:"state"`
	// Reason says why an exception is expired or ignored.
	Reason string `json:"reason,omitempty"`
}

// AssessException reads the exception tag (p.ExceptionTag) among tags and
// checks it against the policy's bounds at now. It returns nil when there
// is no such tag.
func AssessException(now time.Time, p policy.Sharing, resourceID string, tags map[string]string) *ExceptionStatus {
	_, st := assessException(now, p, tags)
	if st != nil {
		st.ResourceID = resourceID
	}
	return st
}

// assessException returns the parsed exception and its status (nil: no
// tag). Only an "active" status keeps anything.
//
// A bound that is broken ignores the whole exception rather than the
// offending part: an exception is one approval, and a tag that overreaches
// (public, a principal outside the list, no or a far expiry) is not one the
// policy would have approved in part.
func assessException(now time.Time, p policy.Sharing, tags map[string]string) (Exception, *ExceptionStatus) {
	if p.ExceptionTag == "" {
		return Exception{}, nil
	}
	value, ok := tags[p.ExceptionTag]
	if !ok {
		return Exception{}, nil
	}
	ex, err := ParseException(value)
	if err != nil {
		return Exception{}, &ExceptionStatus{State: ExceptionIgnored, Reason: "exception tag unreadable: " + err.Error()}
	}
	st := &ExceptionStatus{Ticket: ex.Ticket, Principals: sortPrincipals(ex.Principals), State: ExceptionIgnored}
	if !ex.Until.IsZero() {
		st.Until = ex.Until.Format(dateLayout)
	}
	bounds := p.Exceptions
	ignored := func(format string, args ...any) (Exception, *ExceptionStatus) {
		st.Reason = fmt.Sprintf("exception %s ignored: ", ex.Ticket) + fmt.Sprintf(format, args...)
		return ex, st
	}
	today := now.UTC().Truncate(24 * time.Hour)
	latest := today.AddDate(0, 0, bounds.MaxDays)
	switch {
	case ex.expired(now):
		st.State = ExceptionExpired
		st.Reason = fmt.Sprintf("exception %s expired on %s: enforced", ex.Ticket, st.Until)
		return ex, st
	case len(ex.Principals) == 0:
		st.Reason = fmt.Sprintf("exception %s lists no principals: it exempts nothing", ex.Ticket)
		return ex, st
	case bounds.MaxDays <= 0:
		return ignored("the policy turns exceptions off (/sharing/exceptions/max_days is 0)")
	case ex.Until.IsZero():
		return ignored("it has no until date; the policy requires one at most %d days ahead (/sharing/exceptions/max_days)", bounds.MaxDays)
	case ex.Until.After(latest):
		return ignored("until %s is more than %d days ahead; the latest the policy allows today is %s (/sharing/exceptions/max_days)",
			st.Until, bounds.MaxDays, latest.Format(dateLayout))
	}
	for _, pr := range st.Principals {
		if pr.Kind == KindPublic {
			if !bounds.AllowPublic {
				return ignored("it names public, which the policy does not let exceptions keep (/sharing/exceptions/allow_public)")
			}
			continue
		}
		// Anyone who can tag can write an exception: it keeps only
		// principals the policy names as exceptable, none by default.
		if len(bounds.AllowedPrincipals) == 0 {
			return ignored("/sharing/exceptions/allowed_principals is empty, so exceptions keep no principal; list the ones an exception may keep")
		}
		if !exceptionMayName(bounds.AllowedPrincipals, pr) {
			return ignored("%s is not in /sharing/exceptions/allowed_principals", pr)
		}
	}
	st.State, st.Reason = ExceptionActive, ""
	return ex, st
}

// exceptionMayName reports whether the allow-list names pr, directly or, for
// an OU, through its organization.
func exceptionMayName(allowed []string, pr Principal) bool {
	if slices.Contains(allowed, pr.Value) {
		return true
	}
	if pr.Kind == KindOU {
		return slices.ContainsFunc(allowed, func(org string) bool { return ouInOrganization(pr.Value, org) })
	}
	return false
}
