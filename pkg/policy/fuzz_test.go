package policy_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

const fuzzOrigin = "fuzz.yaml"

// FuzzParse feeds arbitrary YAML or JSON to Parse. Seeds: every document
// under testdata/policies (valid and invalid), plus a few hand-made edges.
//
// Properties: no panic; the same bytes give the same answer; an invalid
// document is a *ValidationError whose problems each point at a place in the
// document and say something, or a YAML syntax error (both name the origin);
// a valid document gives a policy that passes Validate and round-trips: its
// JSON encoding parses back to the same Go value (up to empty maps and
// lists, which the package reads as not set).
func FuzzParse(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", "policies", "*"))
	if err != nil {
		f.Fatal(err)
	}
	if len(paths) == 0 {
		f.Fatal("no seed policies under testdata/policies")
	}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, s := range []string{
		"",
		"version: 1",
		`{"version": 1}`,
		"version: 1\ntagging: {static_tags: {}}\nretention: {rules: [{name: a, match: {tags: {}}}]}",
		"version: 1\nretention: {max_gib_per_run: 1e30}",
		"version: 1\ntagging: {snapshot_wait: 1m1.5s}",
		"version: 1\ntagging: {snapshot_wait: 1.5s}",
		"version: 1\nretention: {rules: [{name: a, family: {name_pattern: '(x)'}, keep_shared: false}]}",
		"version: 1\nsharing: {allowed_accounts: ['111122223333', '111122223333']}",
		"a: &a [*a]",
		"version: 1\nversion: 1",
		"- 1",
		"~",
		"version: 1\ntagging: {prefix: " + strings.Repeat("é", 70) + "}",
		"version: 1\nretention: {rules: [{name: " + strings.Repeat("日本", 80) + "}]}",
		"version: 1\noverrides: [{name: a, ous: [ou-ab12-cdefgh34], retention: {grace_days: 1, rules: [{name: r}]}}]",
		"version: 1\ntagging: {static_tags: {t: v}}\noverrides: [{name: a, accounts: ['111122223333'], tagging: {static_tags: {t: w}, mode: audit}, sharing: {exceptions: {max_days: 1}}}]",
		"version: 1\noverrides: [{name: a, accounts: ['111122223333'], retention: {protect_tag: x}}, {name: a, ous: [r-ab12]}]",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := policy.Parse(doc, fuzzOrigin)
		p2, err2 := policy.Parse(doc, fuzzOrigin)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !reflect.DeepEqual(p, p2) {
			t.Fatalf("not deterministic:\n first: %v\nsecond: %v", err, err2)
		}
		if err != nil {
			checkParseError(t, err)
			// Messages go to logs and to cdk synth: valid input, valid text.
			if utf8.Valid(doc) && !utf8.ValidString(err.Error()) {
				t.Fatalf("valid UTF-8 document, invalid UTF-8 message: %q", err.Error())
			}
			if p != nil {
				t.Fatalf("error %v returned with a policy", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse accepted a policy Validate rejects: %v", err)
		}
		enc, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("encoding a parsed policy: %v", err)
		}
		back, err := policy.Parse(enc, fuzzOrigin)
		if err != nil {
			t.Fatalf("the encoding of a parsed policy does not parse: %v\n%s", err, enc)
		}
		nilEmpty(reflect.ValueOf(p))
		nilEmpty(reflect.ValueOf(back))
		if !reflect.DeepEqual(p, back) {
			t.Fatalf("round trip changed the policy:\n before: %+v\n  after: %+v\n   JSON: %s", p, back, enc)
		}
	})
}

// nilEmpty sets every empty map and slice reachable from v to nil: the
// package reads an empty map or list as not set (see Validate) and encodes
// the two alike (omitempty, omitzero).
func nilEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			nilEmpty(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				nilEmpty(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 && v.CanSet() {
			v.SetZero()
			return
		}
		if v.Kind() == reflect.Slice {
			for i := range v.Len() {
				nilEmpty(v.Index(i))
			}
		}
	}
}

// checkParseError holds errors to Parse's contract: a *ValidationError
// locating each problem, or a YAML syntax error; both name the origin.
func checkParseError(t *testing.T, err error) {
	t.Helper()
	if !strings.Contains(err.Error(), fuzzOrigin) {
		t.Fatalf("error does not name the origin: %v", err)
	}
	var ve *policy.ValidationError
	if !errors.As(err, &ve) {
		if !strings.Contains(err.Error(), "parsing YAML") {
			// The schema is meant to reject everything the Go types
			// cannot hold; anything else is the two drifting apart.
			t.Fatalf("neither a validation nor a YAML syntax error: %v", err)
		}
		return
	}
	if ve.Origin != fuzzOrigin || len(ve.Problems) == 0 {
		t.Fatalf("validation error without origin or problems: %#v", ve)
	}
	for _, pr := range ve.Problems {
		if (pr.Path != "" && !strings.HasPrefix(pr.Path, "/")) || pr.Message == "" {
			t.Fatalf("problem without a JSON pointer or a message: %#v", pr)
		}
	}
}
