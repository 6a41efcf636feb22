package sharing_test

// Pure tests of Evaluate, ParseException and the EC2 conversions: no AWS, no
// fake, no moto.

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
)

const (
	acct     = "123456789012" // the account that owns the AMIs
	allowed  = "111122223333"
	allowed2 = "444455556666"
	stranger = "999988887777"
	orgOK    = "arn:aws:organizations::111122223333:organization/o-a1b2c3d4e5"
	orgBad   = "arn:aws:organizations::555566667777:organization/o-zzzzzzzzzz"
	ouOK     = "arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-ab12-cdefgh34"
	ouInOrg  = "arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-ab12-zzzzzzzz"
	ouBad    = "arn:aws:organizations::555566667777:ou/o-zzzzzzzzzz/ou-zz99-abcdefgh"
	exTag    = "ami-housekeeper:sharing-exception"
)

var (
	pPublic   = sharing.Principal{Kind: sharing.KindPublic}
	pAllowed  = sharing.Principal{Kind: sharing.KindAccount, Value: allowed}
	pAllowed2 = sharing.Principal{Kind: sharing.KindAccount, Value: allowed2}
	pStranger = sharing.Principal{Kind: sharing.KindAccount, Value: stranger}
	pOrgOK    = sharing.Principal{Kind: sharing.KindOrganization, Value: orgOK}
	pOrgBad   = sharing.Principal{Kind: sharing.KindOrganization, Value: orgBad}
	pOUOK     = sharing.Principal{Kind: sharing.KindOU, Value: ouOK}
	pOUInOrg  = sharing.Principal{Kind: sharing.KindOU, Value: ouInOrg}
	pOUBad    = sharing.Principal{Kind: sharing.KindOU, Value: ouBad}
)

// testPolicy allows one account, one organization and one OU of it; public
// is forbidden.
func testPolicy() policy.Sharing {
	p := policy.Default().Sharing
	p.AllowedAccounts = []string{allowed}
	p.AllowedOrganizations = []string{orgOK}
	p.AllowedOrganizationalUnits = []string{ouOK}
	// Principals an exception may keep (none by default).
	p.Exceptions.AllowedPrincipals = []string{allowed, allowed2, stranger}
	return p
}

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ps(p ...sharing.Principal) []sharing.Principal {
	if p == nil {
		return []sharing.Principal{}
	}
	return p
}

func TestEvaluate(t *testing.T) {
	now := day("2026-10-01T12:00:00Z")
	tests := []struct {
		name     string
		policy   func(*policy.Sharing)
		kind     sharing.ResourceKind
		tags     map[string]string
		now      time.Time
		current  []sharing.Principal
		keep     []sharing.Principal
		remove   []sharing.Principal
		reasons  []string
		shadowed []string
	}{
		{
			name: "nothing shared", current: nil, keep: ps(), remove: ps(), reasons: []string{},
		},
		{
			name: "allowed account kept", current: ps(pAllowed),
			keep: ps(pAllowed), remove: ps(),
			reasons: []string{"account 111122223333 allowed by the policy"},
		},
		{
			name: "unknown account removed", current: ps(pStranger, pAllowed),
			keep: ps(pAllowed), remove: ps(pStranger),
			reasons: []string{"account 111122223333 allowed by the policy", "account 999988887777 is not allowed"},
		},
		{
			name: "public forbidden", current: ps(pPublic),
			keep: ps(), remove: ps(pPublic), reasons: []string{"public sharing is forbidden"},
		},
		{
			name: "public allowed", policy: func(p *policy.Sharing) { p.AllowPublic = true }, current: ps(pPublic),
			keep: ps(pPublic), remove: ps(), reasons: []string{"public sharing allowed by the policy"},
		},
		{
			name: "organization allowed and not", current: ps(pOrgBad, pOrgOK),
			keep: ps(pOrgOK), remove: ps(pOrgBad),
			reasons: []string{"organization " + orgOK + " allowed by the policy", "organization " + orgBad + " is not allowed"},
		},
		{
			name: "OU allowed and not", current: ps(pOUBad, pOUOK),
			keep: ps(pOUOK), remove: ps(pOUBad),
			reasons: []string{"ou " + ouOK + " allowed by the policy", "ou " + ouBad + " is not allowed"},
		},
		{
			name: "OU of an allowed organization kept", current: ps(pOUInOrg),
			keep: ps(pOUInOrg), remove: ps(),
			reasons: []string{"ou " + ouInOrg + " allowed: it is in allowed organization " + orgOK},
		},
		{
			name:    "OU of an organization that is not allowed removed",
			policy:  func(p *policy.Sharing) { p.AllowedOrganizations = nil; p.AllowedOrganizationalUnits = nil },
			current: ps(pOUInOrg), keep: ps(), remove: ps(pOUInOrg),
			reasons: []string{"ou " + ouInOrg + " is not allowed"},
		},
		{
			name: "snapshot: public and a stranger removed, allowed account kept", kind: sharing.KindSnapshot,
			current: ps(pStranger, pPublic, pAllowed),
			keep:    ps(pAllowed), remove: ps(pPublic, pStranger),
			reasons: []string{"public sharing is forbidden", "account 111122223333 allowed by the policy", "account 999988887777 is not allowed"},
		},
		{
			name: "snapshot: public allowed", kind: sharing.KindSnapshot, policy: func(p *policy.Sharing) { p.AllowPublic = true },
			current: ps(pPublic), keep: ps(pPublic), remove: ps(), reasons: []string{"public sharing allowed by the policy"},
		},
		{
			name: "exception before expiry keeps its principals only",
			tags: map[string]string{exTag: "CHG-9;until=2026-10-01;principals=999988887777"},
			now:  day("2026-09-15T00:00:00Z"), current: ps(pStranger, pAllowed2, pPublic),
			keep: ps(pStranger), remove: ps(pPublic, pAllowed2),
			reasons: []string{"public sharing is forbidden", "account 444455556666 is not allowed",
				"account 999988887777 allowed until 2026-10-01 by exception CHG-9"},
		},
		{
			name:   "exception on its last day (until is inclusive, UTC)",
			policy: func(p *policy.Sharing) { p.Exceptions.AllowPublic = true },
			tags:   map[string]string{exTag: "CHG-9;until=2026-10-01;principals=999988887777,public"},
			now:    day("2026-10-01T23:59:59Z"), current: ps(pStranger, pPublic),
			keep: ps(pPublic, pStranger), remove: ps(),
			reasons: []string{"public allowed until 2026-10-01 by exception CHG-9", "account 999988887777 allowed until 2026-10-01 by exception CHG-9"},
		},
		{
			name: "exception still on in another time zone when it is the until day in UTC",
			tags: map[string]string{exTag: "CHG-9;until=2026-10-01;principals=999988887777"},
			now:  day("2026-10-02T01:00:00+02:00"), current: ps(pStranger),
			keep: ps(pStranger), remove: ps(),
			reasons: []string{"account 999988887777 allowed until 2026-10-01 by exception CHG-9"},
		},
		{
			name: "exception the day after until: expired, enforced",
			tags: map[string]string{exTag: "CHG-9;until=2026-10-01;principals=999988887777"},
			now:  day("2026-10-02T00:00:00Z"), current: ps(pStranger),
			keep: ps(), remove: ps(pStranger),
			reasons: []string{"exception CHG-9 expired on 2026-10-01: enforced", "account 999988887777 is not allowed"},
		},
		// Issue 7 item 4: whoever can tag an AMI could keep it shared
		// forever with an exception without expiry or approver.
		{
			name:    "exception without until is ignored, not honoured forever",
			tags:    map[string]string{exTag: "x;principals=public,999988887777"},
			current: ps(pPublic, pStranger), keep: ps(), remove: ps(pPublic, pStranger),
			reasons: []string{"exception x ignored: it has no until date; the policy requires one at most 90 days ahead (/sharing/exceptions/max_days)",
				"public sharing is forbidden", "account 999988887777 is not allowed"},
		},
		{
			name:    "exception without until is ignored even for a single account",
			tags:    map[string]string{exTag: "CHG-1;principals=" + orgBad},
			current: ps(pOrgBad), keep: ps(), remove: ps(pOrgBad),
			reasons: []string{"exception CHG-1 ignored: it has no until date; the policy requires one at most 90 days ahead (/sharing/exceptions/max_days)",
				"organization " + orgBad + " is not allowed"},
		},
		{
			name:    "exception until beyond max_days is ignored as a whole",
			tags:    map[string]string{exTag: "CHG-1;until=2099-12-31;principals=999988887777"},
			current: ps(pStranger), keep: ps(), remove: ps(pStranger),
			reasons: []string{"exception CHG-1 ignored: until 2099-12-31 is more than 90 days ahead; the latest the policy allows today is 2026-12-30 (/sharing/exceptions/max_days)",
				"account 999988887777 is not allowed"},
		},
		{
			name:    "exception until exactly max_days ahead is honoured",
			tags:    map[string]string{exTag: "CHG-1;until=2026-12-30;principals=999988887777"},
			current: ps(pStranger), keep: ps(pStranger), remove: ps(),
			reasons: []string{"account 999988887777 allowed until 2026-12-30 by exception CHG-1"},
		},
		{
			name:    "exception naming public is ignored by default, the account it names goes too",
			tags:    map[string]string{exTag: "CHG-1;until=2026-10-31;principals=public,999988887777"},
			current: ps(pPublic, pStranger), keep: ps(), remove: ps(pPublic, pStranger),
			reasons: []string{"exception CHG-1 ignored: it names public, which the policy does not let exceptions keep (/sharing/exceptions/allow_public)",
				"public sharing is forbidden", "account 999988887777 is not allowed"},
		},
		{
			name:    "exception naming public honoured when the policy allows it",
			policy:  func(p *policy.Sharing) { p.Exceptions.AllowPublic = true },
			tags:    map[string]string{exTag: "CHG-1;until=2026-10-31;principals=public"},
			current: ps(pPublic), keep: ps(pPublic), remove: ps(),
			reasons: []string{"public allowed until 2026-10-31 by exception CHG-1"},
		},
		{
			// The self-service exception, under the default policy:
			// anyone who can tag could otherwise keep any account shared.
			name:    "by default no principal may be kept by an exception",
			policy:  func(p *policy.Sharing) { p.Exceptions = policy.Default().Sharing.Exceptions },
			current: ps(pStranger),
			tags:    map[string]string{exTag: "x;until=2026-10-30;principals=999988887777"},
			keep:    ps(), remove: ps(pStranger),
			reasons: []string{"exception x ignored: /sharing/exceptions/allowed_principals is empty, so exceptions keep no principal; list the ones an exception may keep",
				"account 999988887777 is not allowed"},
		},
		{
			name:    "exception naming a principal outside allowed_principals is ignored",
			policy:  func(p *policy.Sharing) { p.Exceptions.AllowedPrincipals = []string{allowed2, orgBad} },
			tags:    map[string]string{exTag: "CHG-1;until=2026-10-31;principals=444455556666,999988887777"},
			current: ps(pAllowed2, pStranger), keep: ps(), remove: ps(pAllowed2, pStranger),
			reasons: []string{"exception CHG-1 ignored: account 999988887777 is not in /sharing/exceptions/allowed_principals",
				"account 444455556666 is not allowed", "account 999988887777 is not allowed"},
		},
		{
			name:    "allowed_principals: listed accounts and an OU of a listed organization",
			policy:  func(p *policy.Sharing) { p.Exceptions.AllowedPrincipals = []string{allowed2, orgBad} },
			tags:    map[string]string{exTag: "CHG-1;until=2026-10-31;principals=444455556666," + ouBad},
			current: ps(pAllowed2, pOUBad), keep: ps(pOUBad, pAllowed2), remove: ps(),
			reasons: []string{"ou " + ouBad + " allowed until 2026-10-31 by exception CHG-1", "account 444455556666 allowed until 2026-10-31 by exception CHG-1"},
		},
		{
			name:    "max_days 0 turns exceptions off",
			policy:  func(p *policy.Sharing) { p.Exceptions.MaxDays = 0 },
			tags:    map[string]string{exTag: "CHG-1;until=2026-10-01;principals=999988887777"},
			current: ps(pStranger), keep: ps(), remove: ps(pStranger),
			reasons: []string{"exception CHG-1 ignored: the policy turns exceptions off (/sharing/exceptions/max_days is 0)", "account 999988887777 is not allowed"},
		},
		{
			name:    "exception without principals exempts nothing",
			tags:    map[string]string{exTag: "CHG-1;until=2030-01-01"},
			current: ps(pStranger), keep: ps(), remove: ps(pStranger),
			reasons: []string{"exception CHG-1 lists no principals: it exempts nothing", "account 999988887777 is not allowed"},
		},
		{
			name:    "unreadable exception exempts nothing",
			tags:    map[string]string{exTag: "CHG-1;until=tomorrow;principals=999988887777"},
			current: ps(pStranger), keep: ps(), remove: ps(pStranger),
			reasons: []string{`exception tag unreadable: until "tomorrow" is not a date YYYY-MM-DD`, "account 999988887777 is not allowed"},
		},
		{
			name:    "exception under another key is ignored",
			tags:    map[string]string{"other": "CHG-1;principals=999988887777"},
			current: ps(pStranger), keep: ps(), remove: ps(pStranger),
			reasons: []string{"account 999988887777 is not allowed"},
		},
		{
			name:    "exception for an allowed principal: the policy reason wins",
			tags:    map[string]string{exTag: "CHG-1;until=2026-10-31;principals=111122223333"},
			current: ps(pAllowed), keep: ps(pAllowed), remove: ps(),
			reasons: []string{"account 111122223333 allowed by the policy"},
		},
		{
			name: "snapshot exception from the AMI's tags", kind: sharing.KindSnapshot,
			policy:  func(p *policy.Sharing) { p.Exceptions.AllowPublic = true },
			tags:    map[string]string{exTag: "CHG-2;until=2026-10-31;principals=public"},
			current: ps(pPublic), keep: ps(pPublic), remove: ps(),
			reasons: []string{"public allowed until 2026-10-31 by exception CHG-2"},
		},
		{
			name:    "shadowed: accounts removed while an organization and an OU stay",
			current: ps(pStranger, pOUOK, pAllowed2, pOrgOK),
			keep:    ps(pOrgOK, pOUOK), remove: ps(pAllowed2, pStranger),
			reasons: []string{"organization " + orgOK + " allowed by the policy", "ou " + ouOK + " allowed by the policy",
				"account 444455556666 is not allowed", "account 999988887777 is not allowed"},
			shadowed: []string{
				"account 444455556666 removed, but it keeps access if it is a member of organization " + orgOK + " or ou " + ouOK,
				"account 999988887777 removed, but it keeps access if it is a member of organization " + orgOK + " or ou " + ouOK,
			},
		},
		{
			name:    "shadowed: account removed while the image stays public",
			policy:  func(p *policy.Sharing) { p.AllowPublic = true },
			current: ps(pStranger, pPublic), keep: ps(pPublic), remove: ps(pStranger),
			reasons:  []string{"public sharing allowed by the policy", "account 999988887777 is not allowed"},
			shadowed: []string{"account 999988887777 removed, but it keeps access: the image stays public"},
		},
		{
			name:    "not shadowed when the organization goes too",
			current: ps(pStranger, pOrgBad), keep: ps(), remove: ps(pOrgBad, pStranger),
			reasons: []string{"organization " + orgBad + " is not allowed", "account 999988887777 is not allowed"},
		},
		{
			name:    "duplicates count once",
			current: ps(pStranger, pStranger, pPublic, pPublic), keep: ps(), remove: ps(pPublic, pStranger),
			reasons: []string{"public sharing is forbidden", "account 999988887777 is not allowed"},
		},
		{
			name:    "unknown group removed",
			current: ps(sharing.Principal{Kind: "group", Value: "friends"}), keep: ps(),
			remove:  ps(sharing.Principal{Kind: "group", Value: "friends"}),
			reasons: []string{"group friends is an unknown kind of principal: not allowed"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy()
			if tc.policy != nil {
				tc.policy(&p)
			}
			kind := tc.kind
			if kind == "" {
				kind = sharing.KindImage
			}
			at := tc.now
			if at.IsZero() {
				at = now
			}
			v := sharing.Evaluate(at, p, kind, "res-1", tc.tags, tc.current)
			want := sharing.Verdict{Kind: kind, ResourceID: "res-1", Keep: tc.keep, Remove: tc.remove, Reasons: tc.reasons, Shadowed: tc.shadowed}
			if !reflect.DeepEqual(v, want) {
				t.Errorf("got  %+v\nwant %+v", v, want)
			}
		})
	}
}

func TestEvaluateIsDeterministic(t *testing.T) {
	a := []sharing.Principal{pStranger, pOUBad, pPublic, pAllowed, pOrgBad, pOrgOK, pAllowed2}
	b := []sharing.Principal{pAllowed2, pOrgOK, pOrgBad, pAllowed, pPublic, pOUBad, pStranger}
	now := day("2026-10-01T00:00:00Z")
	va := sharing.Evaluate(now, testPolicy(), sharing.KindImage, "ami-1", nil, a)
	vb := sharing.Evaluate(now, testPolicy(), sharing.KindImage, "ami-1", nil, b)
	if !reflect.DeepEqual(va, vb) {
		t.Fatalf("order matters:\n%+v\n%+v", va, vb)
	}
	if want := ps(pPublic, pOrgBad, pOUBad, pAllowed2, pStranger); !reflect.DeepEqual(va.Remove, want) {
		t.Errorf("remove = %v, want %v", va.Remove, want)
	}
	if a[0] != pStranger {
		t.Error("Evaluate reordered its input")
	}
}

func TestEvaluateNeverRemovesAnAllowedPrincipal(t *testing.T) {
	// Whatever else is shared and whatever the exception says, the
	// principals the policy allows are kept.
	p := testPolicy()
	everyone := []sharing.Principal{pPublic, pAllowed, pAllowed2, pStranger, pOrgOK, pOrgBad, pOUOK, pOUInOrg, pOUBad}
	for _, tag := range []string{"", "garbage", "CHG-1", "CHG-1;until=2000-01-01;principals=111122223333", "CHG-1;principals=999988887777"} {
		tags := map[string]string{exTag: tag}
		for _, kind := range []sharing.ResourceKind{sharing.KindImage, sharing.KindSnapshot} {
			v := sharing.Evaluate(day("2026-10-01T00:00:00Z"), p, kind, "x", tags, everyone)
			for _, r := range v.Remove {
				if r == pAllowed || r == pOrgOK || r == pOUOK || r == pOUInOrg {
					t.Errorf("tag %q %s: removes allowed %s", tag, kind, r)
				}
			}
			if len(v.Keep)+len(v.Remove) != len(everyone) || len(v.Reasons) < len(everyone) {
				t.Errorf("tag %q %s: %d kept + %d removed, %d reasons", tag, kind, len(v.Keep), len(v.Remove), len(v.Reasons))
			}
		}
	}
}

// TestAssessException pins what the audit reports about one exception tag:
// its ticket, principals, expiry, state and, unless active, why.
func TestAssessException(t *testing.T) {
	now := day("2026-10-01T12:00:00Z")
	tests := []struct {
		value string
		want  *sharing.ExceptionStatus
	}{
		{"CHG-1;until=2026-10-31;principals=999988887777,111122223333", &sharing.ExceptionStatus{ResourceID: "ami-1", Ticket: "CHG-1",
			Principals: ps(pAllowed, pStranger), Until: "2026-10-31", State: sharing.ExceptionActive}},
		{"CHG-2;until=2026-09-30;principals=999988887777", &sharing.ExceptionStatus{ResourceID: "ami-1", Ticket: "CHG-2",
			Principals: ps(pStranger), Until: "2026-09-30", State: sharing.ExceptionExpired, Reason: "exception CHG-2 expired on 2026-09-30: enforced"}},
		{"x;principals=public,999988887777", &sharing.ExceptionStatus{ResourceID: "ami-1", Ticket: "x", Principals: ps(pPublic, pStranger),
			State: sharing.ExceptionIgnored, Reason: "exception x ignored: it has no until date; the policy requires one at most 90 days ahead (/sharing/exceptions/max_days)"}},
		{"until=2026-10-31", &sharing.ExceptionStatus{ResourceID: "ami-1", State: sharing.ExceptionIgnored,
			Reason: `exception tag unreadable: missing ticket: the value starts with "until=2026-10-31"; it must start with the ticket, e.g. "CHG-1234;until=2026-10-31"`}},
	}
	for _, tc := range tests {
		got := sharing.AssessException(now, testPolicy(), "ami-1", map[string]string{exTag: tc.value})
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\ngot  %+v\nwant %+v", tc.value, got, tc.want)
		}
	}
	if got := sharing.AssessException(now, testPolicy(), "ami-1", map[string]string{"other": "CHG-1"}); got != nil {
		t.Errorf("no tag: got %+v", got)
	}
}

func TestParseException(t *testing.T) {
	tests := []struct {
		value   string
		want    sharing.Exception
		wantErr string
	}{
		{value: "CHG-1", want: sharing.Exception{Ticket: "CHG-1"}},
		{value: "CHG-1;until=2026-10-01", want: sharing.Exception{Ticket: "CHG-1", Until: day("2026-10-01T00:00:00Z")}},
		{value: "CHG-1;principals=111122223333,public," + orgOK + "," + ouOK, want: sharing.Exception{Ticket: "CHG-1",
			Principals: []sharing.Principal{pAllowed, pPublic, pOrgOK, pOUOK}}},
		{value: "CHG-1;principals=111122223333;until=2026-10-01", want: sharing.Exception{Ticket: "CHG-1",
			Until: day("2026-10-01T00:00:00Z"), Principals: []sharing.Principal{pAllowed}}},
		{value: " JIRA OPS-7 ; until = 2026-10-01 ; principals = 111122223333 , 111122223333 ;", want: sharing.Exception{
			Ticket: "JIRA OPS-7", Until: day("2026-10-01T00:00:00Z"), Principals: []sharing.Principal{pAllowed}}},

		{value: "", wantErr: "missing ticket"},
		{value: "  ;until=2026-10-01", wantErr: "missing ticket"},
		{value: "until=2026-10-01;principals=111122223333", wantErr: `missing ticket: the value starts with "until=2026-10-01"`},
		{value: "CHG-1;until=2026-13-01", wantErr: `until "2026-13-01" is not a date YYYY-MM-DD`},
		{value: "CHG-1;until=01/10/2026", wantErr: `until "01/10/2026" is not a date YYYY-MM-DD`},
		{value: "CHG-1;until=", wantErr: `until "" is not a date YYYY-MM-DD`},
		{value: "CHG-1;until", wantErr: `field "until" is not key=value`},
		{value: "CHG-1;expires=2026-10-01", wantErr: `unknown field "expires" (known keys: until, principals)`},
		{value: "CHG-1;until=2026-10-01;until=2026-11-01", wantErr: `field "until" appears twice`},
		{value: "CHG-1;principals=", wantErr: "principals is empty"},
		{value: "CHG-1;principals=111122223333,,public", wantErr: "principals has an empty entry"},
		{value: "CHG-1;principals=12345", wantErr: `principal "12345" is not an account ID (12 digits), an organization ARN, an OU ARN or public`},
		{value: "CHG-1;principals=all", wantErr: `principal "all": write public`},
		{value: "CHG-1;principals=Public", wantErr: `principal "Public": write public`},
		{value: "CHG-1;principals=o-a1b2c3d4e5", wantErr: `principal "o-a1b2c3d4e5" is not an account ID`},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			got, err := sharing.ParseException(tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPrincipalsOf(t *testing.T) {
	img := sharing.PrincipalsOfImage([]types.LaunchPermission{
		{Group: types.PermissionGroupAll},
		{UserId: aws.String(stranger)},
		{OrganizationArn: aws.String(orgOK)},
		{OrganizationalUnitArn: aws.String(ouOK)},
		{}, // nothing: skipped
	})
	if want := []sharing.Principal{pPublic, pStranger, pOrgOK, pOUOK}; !reflect.DeepEqual(img, want) {
		t.Errorf("image: %v, want %v", img, want)
	}
	snap := sharing.PrincipalsOfSnapshot([]types.CreateVolumePermission{{Group: types.PermissionGroupAll}, {UserId: aws.String(allowed)}})
	if want := []sharing.Principal{pPublic, pAllowed}; !reflect.DeepEqual(snap, want) {
		t.Errorf("snapshot: %v, want %v", snap, want)
	}
	if got := sharing.PrincipalsOfImage(nil); len(got) != 0 {
		t.Errorf("nil: %v", got)
	}
}
