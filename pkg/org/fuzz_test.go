package org_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// Shapes written out here, not borrowed from the package, so a loosened
// check there fails here.
var (
	fuzzAccount = regexp.MustCompile(`^[0-9]{12}$`)
	fuzzOU      = regexp.MustCompile(`^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$`)
	fuzzRegion  = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]+$`) // eusc-de-east-1: the European Sovereign Cloud
)

// FuzzParseScope feeds arbitrary documents to ParseScope: the scope decides
// which accounts the cleanup may work on, so a malformed one must be
// refused, never half-read.
//
// Properties: no panic; an error says "organization scope"; a parsed
// scope names at least one OU or account and one region, every id has its
// shape, no account is both listed and excluded, and encoding it back
// parses to the same scope.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		`{"ous":["ou-ab12-abcdefgh"],"regions":["us-east-1"]}`,
		`{"ous":["r-ab12"],"accounts":["222222222222"],"exclude_accounts":["333333333333"],"account_tag":"env=prod","regions":["us-east-1","eu-west-1"]}`,
		`{"accounts":["222222222222"],"exclude_accounts":["222222222222"],"regions":["us-east-1"]}`,
		`{"ous":["ou-ab12"],"regions":["us-east-1"]}`,
		`{"ous":["r-ab12"],"regions":[]}`,
		`{"ous":["r-ab12"],"regions":["us-east-1"],"account_tag":"=x"}`,
		`{"ous":["r-ab12"],"regions":["us-east-1"]} {}`,
		`{"ous":["r-ab12"],"regions":["us-east-1"],"accuonts":["222222222222"]}`,
		`null`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := org.ParseScope(raw)
		if err != nil {
			if !strings.Contains(err.Error(), "organization scope") {
				t.Fatalf("error %q does not say it is the scope's", err)
			}
			return
		}
		if len(s.OUs)+len(s.Accounts) == 0 || len(s.Regions) == 0 {
			t.Fatalf("accepted a scope with nothing to cover: %+v", s)
		}
		for _, ou := range s.OUs {
			if !fuzzOU.MatchString(ou) {
				t.Fatalf("accepted OU %q", ou)
			}
		}
		for _, a := range append(slices.Clone(s.Accounts), s.ExcludeAccounts...) {
			if !fuzzAccount.MatchString(a) {
				t.Fatalf("accepted account %q", a)
			}
		}
		for _, a := range s.Accounts {
			if slices.Contains(s.ExcludeAccounts, a) {
				t.Fatalf("accepted %s both listed and excluded", a)
			}
		}
		for _, r := range s.Regions {
			if !fuzzRegion.MatchString(r) {
				t.Fatalf("accepted region %q", r)
			}
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := org.ParseScope(again)
		if err != nil {
			t.Fatalf("round trip of %+v: %v", s, err)
		}
		if b1, b2 := mustJSON(t, s), mustJSON(t, back); b1 != b2 {
			t.Fatalf("round trip changed the scope: %s → %s", b1, b2)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
