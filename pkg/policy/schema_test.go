package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// schemaNodeT is a decoded schema object.
type schemaNodeT = map[string]any

func decodedSchema(t *testing.T) schemaNodeT {
	t.Helper()
	var s schemaNodeT
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatalf("Schema() is not JSON: %v", err)
	}
	return s
}

// resolve follows a local "$ref" ("#/$defs/x") and merges the referring
// node's own keywords (description, default) over the target's.
func resolve(t *testing.T, root, n schemaNodeT) schemaNodeT {
	t.Helper()
	ref, ok := n["$ref"].(string)
	if !ok {
		return n
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	if !ok {
		t.Fatalf("unexpected $ref %q", ref)
	}
	target, ok := root["$defs"].(schemaNodeT)[name].(schemaNodeT)
	if !ok {
		t.Fatalf("$ref %q does not resolve", ref)
	}
	merged := schemaNodeT{}
	for k, v := range resolve(t, root, target) {
		merged[k] = v
	}
	for k, v := range n {
		if k != "$ref" {
			merged[k] = v
		}
	}
	return merged
}

// noDefault lists the fields that have no default on purpose: required, or
// optional with "absent" meaning something no value can say.
var noDefault = map[string]bool{
	"/overrides/*/name":                      true,
	"/overrides/*/tagging":                   true, // absent: the base's, whatever it is
	"/overrides/*/sharing":                   true,
	"/overrides/*/retention":                 true,
	"/retention/rules/*/name":                true,
	"/retention/rules/*/match/name":          true,
	"/retention/rules/*/family":              true,
	"/retention/rules/*/family/tag":          true,
	"/retention/rules/*/family/name_pattern": true,
	"/retention/rules/*/keep_shared":         true,
}

// walkSchema visits every property below n, with its path ("*" for items).
func walkSchema(t *testing.T, root, n schemaNodeT, at string, visit func(at string, prop schemaNodeT)) {
	t.Helper()
	n = resolve(t, root, n)
	if items, ok := n["items"].(schemaNodeT); ok {
		walkSchema(t, root, items, at+"/*", visit)
	}
	props, _ := n["properties"].(schemaNodeT)
	for name, p := range props {
		prop := resolve(t, root, p.(schemaNodeT))
		visit(at+"/"+name, prop)
		walkSchema(t, root, prop, at+"/"+name, visit)
	}
}

// overrideSections prefixes the paths of an override's partial sections.
const overrideSections = "/overrides/*"

func TestSchemaEveryFieldDocumented(t *testing.T) {
	root := decodedSchema(t)
	if got := root["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v, want draft 2020-12", got)
	}
	if root["additionalProperties"] != false {
		t.Errorf("root object allows additional properties")
	}
	count := 0
	walkSchema(t, root, root, "", func(at string, prop schemaNodeT) {
		count++
		if d, _ := prop["description"].(string); d == "" {
			t.Errorf("%s has no description", at)
		}
		// An override's sections are the top-level sections' schemas:
		// their fields are held to the same rules at their own paths.
		if _, ok := prop["default"]; !ok && !noDefault[at] && !noDefault[strings.TrimPrefix(at, overrideSections)] {
			t.Errorf("%s has no default", at)
		}
		if prop["type"] == "object" {
			// Maps (static_tags, match tags) constrain their values with a
			// schema; every other object must reject unknown keys.
			if ap, ok := prop["additionalProperties"]; !ok || (ap != false && !strings.HasSuffix(at, "tags")) {
				t.Errorf("%s: additionalProperties = %v, want false", at, ap)
			}
		}
	})
	if count < 50 {
		t.Errorf("walked only %d properties; is the walk broken?", count)
	}
}

// TestSchemaDefaultsMatchGo keeps the schema's documented defaults and
// Default() from drifting apart.
func TestSchemaDefaultsMatchGo(t *testing.T) {
	root := decodedSchema(t)
	var goDefaults, ruleDefaults any
	for dst, v := range map[*any]any{&goDefaults: Default(), &ruleDefaults: defaultRule()} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	checked := 0
	walkSchema(t, root, root, "", func(at string, prop schemaNodeT) {
		def, ok := prop["default"]
		if !ok || strings.HasPrefix(at, overrideSections+"/") {
			// In an override a field left out keeps the base's value; the
			// default shown is the section's, checked at its own path.
			return
		}
		if m, isMap := def.(map[string]any); isMap && len(m) == 0 && prop["properties"] != nil {
			return // "{}" on a section: its fields carry the real defaults
		}
		doc, rel := goDefaults, at
		if r, ok := strings.CutPrefix(at, "/retention/rules/*"); ok {
			doc, rel = ruleDefaults, r
		}
		got := lookup(doc, strings.Split(rel, "/")[1:])
		if got == nil {
			// omitempty drops empty lists and maps from the encoding.
			switch def.(type) {
			case []any:
				got = []any{}
			case map[string]any:
				got = map[string]any{}
			}
		}
		checked++
		if !reflect.DeepEqual(got, def) {
			t.Errorf("%s: schema default %#v, Default() has %#v", at, def, got)
		}
	})
	if checked < 40 {
		t.Errorf("compared only %d defaults; is the walk broken?", checked)
	}
}

func TestSchemaCompiles(t *testing.T) {
	if _, _, err := compiledSchema(); err != nil {
		t.Fatal(err)
	}
	// Schema hands out copies: a caller scribbling on it must not change
	// what Parse validates against.
	s := Schema()
	s[0] = 'X'
	if Schema()[0] != '{' {
		t.Fatal("Schema() returned the embedded slice itself")
	}
}
