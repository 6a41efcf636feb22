package sharing

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
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
