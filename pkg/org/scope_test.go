package org_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want org.Scope
		// err is a fragment the error must contain ("" = valid).
		err []string
	}{
		{name: "OUs and regions",
			raw:  `{"ous":["r-ab12","ou-ab12-abcdefgh"],"regions":["us-east-1","eu-west-1"]}`,
			want: org.Scope{OUs: []string{"r-ab12", "ou-ab12-abcdefgh"}, Regions: []string{"us-east-1", "eu-west-1"}}},
		{name: "every field",
			raw: `{"ous":["ou-ab12-abcdefgh"],"accounts":["222222222222"],"exclude_accounts":["333333333333"],
				"account_tag":"env=prod","regions":["us-gov-west-1","eusc-de-east-1","ap-southeast-5"]}`,
			want: org.Scope{OUs: []string{"ou-ab12-abcdefgh"}, Accounts: []string{"222222222222"},
				ExcludeAccounts: []string{"333333333333"}, AccountTag: "env=prod",
				Regions: []string{"us-gov-west-1", "eusc-de-east-1", "ap-southeast-5"}}},
		{name: "accounts only, tag with empty value (AWS allows it)",
			raw:  `{"accounts":["222222222222"],"account_tag":"team=","regions":["us-east-1"]}`,
			want: org.Scope{Accounts: []string{"222222222222"}, AccountTag: "team=", Regions: []string{"us-east-1"}}},
		{name: "unknown field named", raw: `{"ous":["r-ab12"],"regions":["us-east-1"],"region":"x"}`,
			err: []string{`unknown field "region"`}},
		{name: "trailing data", raw: `{"ous":["r-ab12"],"regions":["us-east-1"]} {}`, err: []string{"trailing data"}},
		{name: "not JSON", raw: `ous=r-ab12`, err: []string{"organization scope"}},
		{name: "empty", raw: ``, err: []string{"organization scope"}},
		{name: "wrong type", raw: `{"ous":"r-ab12","regions":["us-east-1"]}`, err: []string{"ous"}},
		{name: "no OUs nor accounts", raw: `{"regions":["us-east-1"]}`, err: []string{"at least one of ous or accounts"}},
		{name: "exclusions alone select nothing", raw: `{"exclude_accounts":["333333333333"],"regions":["us-east-1"]}`,
			err: []string{"at least one of ous or accounts"}},
		{name: "no region", raw: `{"ous":["r-ab12"]}`, err: []string{"regions", "at least one region"}},
		{name: "empty regions", raw: `{"ous":["r-ab12"],"regions":[]}`, err: []string{"regions", "at least one region"}},
		{name: "bad OU id", raw: `{"ous":["r-ab12","ou-ab12"],"regions":["us-east-1"]}`, err: []string{`ous[1] "ou-ab12"`, "OU id"}},
		{name: "OU id upper case", raw: `{"ous":["ou-AB12-abcdefgh"],"regions":["us-east-1"]}`, err: []string{`ous[0] "ou-AB12-abcdefgh"`}},
		{name: "root id too short", raw: `{"ous":["r-ab1"],"regions":["us-east-1"]}`, err: []string{`ous[0] "r-ab1"`}},
		{name: "org id is not an OU", raw: `{"ous":["o-abcdefghij"],"regions":["us-east-1"]}`, err: []string{`ous[0] "o-abcdefghij"`}},
		{name: "duplicate OU", raw: `{"ous":["r-ab12","r-ab12"],"regions":["us-east-1"]}`, err: []string{`ous[1] "r-ab12" is listed twice`}},
		{name: "11-digit account", raw: `{"accounts":["22222222222"],"regions":["us-east-1"]}`, err: []string{`accounts[0] "22222222222"`, "12-digit"}},
		{name: "account with letters", raw: `{"accounts":["22222222222a"],"regions":["us-east-1"]}`, err: []string{`accounts[0] "22222222222a"`}},
		{name: "bad excluded account", raw: `{"ous":["r-ab12"],"exclude_accounts":["x"],"regions":["us-east-1"]}`, err: []string{`exclude_accounts[0] "x"`}},
		{name: "listed and excluded", raw: `{"accounts":["222222222222"],"exclude_accounts":["222222222222"],"regions":["us-east-1"]}`,
			err: []string{"222222222222 is in both accounts and exclude_accounts"}},
		{name: "region typo", raw: `{"ous":["r-ab12"],"regions":["us-east-1","us-east1"]}`, err: []string{`regions[1] "us-east1"`, "region name"}},
		{name: "region upper case", raw: `{"ous":["r-ab12"],"regions":["US-EAST-1"]}`, err: []string{`regions[0] "US-EAST-1"`}},
		{name: "availability zone is not a region", raw: `{"ous":["r-ab12"],"regions":["us-east-1a"]}`, err: []string{`regions[0] "us-east-1a"`}},
		{name: "duplicate region", raw: `{"ous":["r-ab12"],"regions":["us-east-1","us-east-1"]}`, err: []string{`regions[1] "us-east-1" is listed twice`}},
		{name: "tag without =", raw: `{"ous":["r-ab12"],"account_tag":"env","regions":["us-east-1"]}`, err: []string{`account_tag "env"`, "key=value"}},
		{name: "tag without key", raw: `{"ous":["r-ab12"],"account_tag":"=prod","regions":["us-east-1"]}`, err: []string{`account_tag "=prod"`, "key"}},
		{name: "tag key with spaces", raw: `{"ous":["r-ab12"],"account_tag":"env =prod","regions":["us-east-1"]}`, err: []string{`account_tag "env =prod"`, "spaces"}},
		{name: "tag key too long", raw: `{"ous":["r-ab12"],"account_tag":"` + strings.Repeat("k", 129) + `=v","regions":["us-east-1"]}`,
			err: []string{"account_tag", "129 characters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := org.ParseScope([]byte(tt.raw))
			if len(tt.err) == 0 {
				if err != nil {
					t.Fatalf("ParseScope: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseScope accepted %s as %+v", tt.raw, got)
			}
			for _, frag := range tt.err {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q lacks %q", err, frag)
				}
			}
		})
	}
}

func TestScopeTag(t *testing.T) {
	k, v, ok := org.Scope{AccountTag: "env=prod=blue"}.Tag()
	if !ok || k != "env" || v != "prod=blue" {
		t.Errorf("Tag() = %q, %q, %v; want the key before the first =", k, v, ok)
	}
	if _, _, ok := (org.Scope{}).Tag(); ok {
		t.Error("Tag() of a scope without account_tag says a tag is required")
	}
}

func TestScopeFromEnv(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == org.EnvScope {
				return v
			}
			return ""
		}
	}
	if _, on, err := org.ScopeFromEnv(env("")); on || err != nil {
		t.Errorf("unset: organization mode %v, err %v; want off, no error", on, err)
	}
	s, on, err := org.ScopeFromEnv(env(`{"ous":["r-ab12"],"regions":["us-east-1"]}`))
	if !on || err != nil || s.OUs[0] != "r-ab12" {
		t.Errorf("valid: %+v, %v, %v", s, on, err)
	}
	// Set but broken is organization mode with an error: never a silent
	// fall back to single-account mode.
	_, on, err = org.ScopeFromEnv(env(`{"ous":["r-ab12"]}`))
	if !on || err == nil || !strings.Contains(err.Error(), org.EnvScope) {
		t.Errorf("invalid: organization mode %v, err %v; want on with an error naming %s", on, err, org.EnvScope)
	}
}
