package policy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Problem is one reason a policy is invalid.
type Problem struct {
	// Path is a JSON pointer to the offending value, e.g.
	// /tagging/keys/created_by or /retention/rules/0/name; "" is the root.
	// For unknown and missing keys it points at the enclosing object.
	Path string
	// Value is the offending value as decoded from the document (nil when
	// missing); for unknown keys, the key.
	Value any
	// Message describes the problem, including the value, and says what is
	// allowed.
	Message string
	// Override is the name of the override the problem is in, when Path
	// is under /overrides/<index>; String shows it after the index.
	Override string `json:",omitempty"`
}

// String renders the problem as "path: message", with the override's name
// after its index: "/overrides/1 (sandboxes)/retention/grace_days: ...".
func (p Problem) String() string {
	at := p.Path
	if at == "" {
		at = "/"
	}
	if p.Override != "" {
		if rest, ok := strings.CutPrefix(at, "/overrides/"); ok {
			index, below, _ := strings.Cut(rest, "/")
			at = "/overrides/" + index + " (" + p.Override + ")"
			if below != "" {
				at += "/" + below
			}
		}
	}
	return at + ": " + p.Message
}

// ValidationError lists every problem found in one document.
type ValidationError struct {
	// Origin names where the document came from.
	Origin   string
	Problems []Problem
}

// Error lists every problem, one per line, in path order.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy from %s is invalid: ", e.Origin)
	if len(e.Problems) == 1 {
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, "%d problems", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// newValidationError sorts problems so the same document always gives the
// same message (the schema library walks maps in random order).
func newValidationError(origin string, problems []Problem) *ValidationError {
	slices.SortStableFunc(problems, func(a, b Problem) int {
		if c := comparePointers(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	problems = slices.CompactFunc(problems, func(a, b Problem) bool {
		return a.Path == b.Path && a.Message == b.Message
	})
	return &ValidationError{Origin: origin, Problems: problems}
}

// comparePointers orders JSON pointers token by token, numbers numerically,
// so /rules/2 sorts before /rules/10.
func comparePointers(a, b string) int {
	ta, tb := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(ta) && i < len(tb); i++ {
		if ta[i] == tb[i] {
			continue
		}
		na, errA := strconv.Atoi(ta[i])
		nb, errB := strconv.Atoi(tb[i])
		if errA == nil && errB == nil {
			return cmp.Compare(na, nb)
		}
		return strings.Compare(ta[i], tb[i])
	}
	return cmp.Compare(len(ta), len(tb))
}

// pointer builds a JSON pointer (RFC 6901) from tokens.
func pointer(tokens ...string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}

// --- schema ---

var compiled struct {
	once   sync.Once
	schema *jsonschema.Schema
	doc    any // the schema itself, to look up bounds and property names
	err    error
}

// compiledSchema compiles the embedded schema once per process.
func compiledSchema() (*jsonschema.Schema, any, error) {
	compiled.once.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
		if err != nil {
			compiled.err = fmt.Errorf("policy: reading embedded schema: %w", err)
			return
		}
		const loc = "policy.schema.json"
		c := jsonschema.NewCompiler()
		if err := c.AddResource(loc, doc); err != nil {
			compiled.err = fmt.Errorf("policy: adding embedded schema: %w", err)
			return
		}
		sch, err := c.Compile(loc)
		if err != nil {
			compiled.err = fmt.Errorf("policy: compiling embedded schema: %w", err)
			return
		}
		compiled.schema, compiled.doc = sch, doc
	})
	return compiled.schema, compiled.doc, compiled.err
}

// validateSchema checks a JSON document against the embedded schema and
// returns a *ValidationError listing every violation.
func validateSchema(jsonDoc []byte, origin string) error {
	sch, schemaDoc, err := compiledSchema()
	if err != nil {
		return err
	}
	// The library's own decoder keeps numbers as json.Number, which its
	// integer and range checks expect.
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(jsonDoc))
	if err != nil {
		return fmt.Errorf("policy from %s: reading converted JSON: %w", origin, err)
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return fmt.Errorf("policy from %s: schema validation: %w", origin, err)
	}
	c := converter{inst: inst, schema: schemaDoc}
	c.walk(verr)
	if len(c.problems) == 0 {
		// Never return "invalid" without a reason.
		c.problems = append(c.problems, Problem{Message: verr.Error()})
	}
	labelOverrides(c.problems, inst)
	return newValidationError(origin, c.problems)
}

// overrideNameRE is the schema's pattern for override names: only a name
// that passes it labels a problem (a bad name is the problem itself).
var overrideNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// labelOverrides names, in each problem under /overrides/<index>, the
// override it is in, from the document inst.
func labelOverrides(problems []Problem, inst any) {
	for i, p := range problems {
		rest, ok := strings.CutPrefix(p.Path, "/overrides/")
		if !ok {
			continue
		}
		index, _, _ := strings.Cut(rest, "/")
		name, _ := lookup(inst, []string{"overrides", index, "name"}).(string)
		if overrideNameRE.MatchString(name) {
			problems[i].Override = name
		}
	}
}

// converter turns the library's error tree into Problems.
type converter struct {
	inst     any
	schema   any
	problems []Problem
}

var printer = message.NewPrinter(language.English)

func (c *converter) walk(e *jsonschema.ValidationError) {
	loc := e.InstanceLocation
	at := pointer(loc...)
	value := lookup(c.inst, loc)
	node := c.schemaNode(e.SchemaURL)

	if k, ok := e.ErrorKind.(*kind.AdditionalProperties); ok {
		// One problem per unknown key, at the object, listing the keys the
		// schema knows there.
		allowed := quoteAll(propertyNames(node))
		for _, name := range k.Properties {
			c.add(at, name, fmt.Sprintf("unknown key %q; allowed keys: %s", name, allowed))
		}
		return
	}
	if len(e.Causes) > 0 {
		for _, cause := range e.Causes {
			c.walk(cause)
		}
		return
	}

	shown := render(value)
	var msg string
	switch k := e.ErrorKind.(type) {
	case *kind.Type:
		msg = fmt.Sprintf("%s has type %s; allowed: %s", shown, k.Got, strings.Join(k.Want, " or "))
		if slices.Contains(k.Want, "string") {
			switch k.Got {
			case "boolean":
				msg += yamlBoolHint
			case "number", "integer":
				msg += yamlNumberHint
			}
		}
	case *kind.Enum:
		msg = fmt.Sprintf("%s is not allowed; allowed: %s", shown, renderAll(k.Want))
	case *kind.Const:
		msg = fmt.Sprintf("%s is not allowed; allowed: %s", shown, render(k.Want))
	case *kind.Minimum, *kind.Maximum, *kind.ExclusiveMinimum, *kind.ExclusiveMaximum:
		msg = fmt.Sprintf("%s is out of range; allowed: %s", shown, bounds(node, "minimum", "maximum"))
	case *kind.MinLength:
		msg = fmt.Sprintf("%s has %d characters; allowed: %s characters", shown, k.Got, bounds(node, "minLength", "maxLength"))
	case *kind.MaxLength:
		msg = fmt.Sprintf("%s has %d characters; allowed: %s characters", shown, k.Got, bounds(node, "minLength", "maxLength"))
	case *kind.Pattern:
		msg = fmt.Sprintf("%s does not match %s; allowed: %s", shown, k.Want, patternHint(k.Want))
	case *kind.MinItems:
		msg = fmt.Sprintf("%d items; allowed: %s items", k.Got, bounds(node, "minItems", "maxItems"))
	case *kind.MaxItems:
		msg = fmt.Sprintf("%d items; allowed: %s items", k.Got, bounds(node, "minItems", "maxItems"))
	case *kind.UniqueItems:
		dup := lookup(value, []string{strconv.Itoa(k.Duplicates[1])})
		msg = fmt.Sprintf("items %d and %d are both %s; allowed: each value once", k.Duplicates[0], k.Duplicates[1], render(dup))
		value = dup
	case *kind.MinProperties, *kind.MaxProperties:
		n := 0
		if m, ok := value.(map[string]any); ok {
			n = len(m)
		}
		msg = fmt.Sprintf("%d keys set; allowed: %s of %s", n, bounds(node, "minProperties", "maxProperties"), quoteAll(propertyNames(node)))
	case *kind.Required:
		msg = fmt.Sprintf("missing required key(s) %s; allowed: an object that sets %s", quoteAll(k.Missing), quoteAll(k.Missing))
		value = nil
	default:
		msg = fmt.Sprintf("%s: %s", shown, k.LocalizedString(printer))
	}
	c.add(at, value, msg)
}

func (c *converter) add(at string, value any, msg string) {
	c.problems = append(c.problems, Problem{Path: at, Value: plainValue(value), Message: msg})
}

// schemaNode returns the schema object a ValidationError's SchemaURL points
// at (its fragment is a JSON pointer into the embedded schema), or nil.
func (c *converter) schemaNode(schemaURL string) map[string]any {
	_, frag, ok := strings.Cut(schemaURL, "#")
	if !ok {
		m, _ := c.schema.(map[string]any)
		return m
	}
	frag, err := url.PathUnescape(frag)
	if err != nil || (frag != "" && !strings.HasPrefix(frag, "/")) {
		return nil
	}
	var tokens []string
	if frag != "" {
		for _, t := range strings.Split(frag[1:], "/") {
			t = strings.ReplaceAll(t, "~1", "/")
			tokens = append(tokens, strings.ReplaceAll(t, "~0", "~"))
		}
	}
	m, _ := lookup(c.schema, tokens).(map[string]any)
	return m
}

// lookup follows JSON pointer tokens through decoded JSON; nil if absent.
func lookup(v any, tokens []string) any {
	for _, t := range tokens {
		switch n := v.(type) {
		case map[string]any:
			v = n[t]
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(n) {
				return nil
			}
			v = n[i]
		default:
			return nil
		}
	}
	return v
}

// propertyNames returns the sorted keys of a schema's "properties".
func propertyNames(node map[string]any) []string {
	props, _ := node["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// bounds renders a schema's lower and upper limit as "1..64", ">= 0" or
// "<= 40".
func bounds(node map[string]any, minKey, maxKey string) string {
	lo, hasLo := node[minKey]
	hi, hasHi := node[maxKey]
	switch {
	case hasLo && hasHi && fmt.Sprint(lo) == fmt.Sprint(hi):
		return fmt.Sprintf("exactly %v", lo)
	case hasLo && hasHi:
		return fmt.Sprintf("%v..%v", lo, hi)
	case hasLo:
		return fmt.Sprintf(">= %v", lo)
	case hasHi:
		return fmt.Sprintf("<= %v", hi)
	}
	return "values within the schema's limits"
}

// patternHints say in words what the schema's patterns accept.
var patternHints = map[string]string{
	`^[0-9]{12}$`: "a 12-digit AWS account ID",
	`^arn:aws[a-z-]*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}$`:                        `an organization ARN such as "arn:aws:organizations::111122223333:organization/o-exampleorgid"`,
	`^arn:aws[a-z-]*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$`: `an OU ARN such as "arn:aws:organizations::111122223333:ou/o-exampleorgid/ou-ab12-cdefgh34"`,
	`^(0|([0-9]*\.?[0-9]+(ns|us|µs|ms|s|m|h))+)$`:                                                     `a Go duration such as "10s", "1m30s" or "0s"`,
	`^([A-Za-z0-9_.-]+|(/[A-Za-z0-9_.-]+)+|(/[A-Za-z0-9_.-]+)*/\*)$`:                                  `an SSM parameter name such as "/amis/web", or a path prefix ending in "/*" such as "/amis/*"`,
	`^[A-Za-z0-9_.-]{1,64}$`:                                "1..64 letters, digits, '_', '.' or '-'",
	`^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$`: `an OU id such as "ou-ab12-cdefgh34" or a root id such as "r-ab12"`,
	`^([0-9]{12}|arn:aws[a-z-]*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}|arn:aws[a-z-]*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32})$`: `a 12-digit account ID, an organization ARN or an OU ARN (public is governed by allow_public)`,
}

func patternHint(pattern string) string {
	if h, ok := patternHints[pattern]; ok {
		return h
	}
	return "strings matching " + pattern
}

// render shows a value as JSON, shortened so one problem stays one line.
func render(v any) string {
	if v == nil {
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	const max = 80 // characters: a cut inside one would garble the message
	if r := []rune(string(b)); len(r) > max {
		return string(r[:max]) + "..."
	}
	return string(b)
}

func renderAll(vs []any) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = render(v)
	}
	return strings.Join(parts, ", ")
}

func quoteAll(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = strconv.Quote(s)
	}
	return strings.Join(parts, ", ")
}

// plainValue turns the library's json.Number and big numbers into int64 or
// float64, so callers can compare Problem.Value without knowing the decoder.
func plainValue(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	case *big.Rat:
		f, _ := t.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = plainValue(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = plainValue(e)
		}
		return out
	}
	return v
}

// yamlBoolHint explains the commonest surprise: the YAML 1.1 reader turns
// unquoted yes/no/on/off/y/n into booleans.
const yamlBoolHint = ` (YAML reads unquoted yes, no, on, off, y and n as booleans: quote the value)`

// yamlNumberHint matters most for account IDs: unquoted, YAML reads them as
// numbers (and those with a leading 0 as octal).
const yamlNumberHint = ` (YAML reads unquoted digits as a number: quote the value, e.g. "012345678901")`

// --- semantic checks: what the schema cannot express ---

// maxSnapshotWait bounds Tagging.SnapshotWait: the wait holds a Lambda
// invocation open.
const maxSnapshotWait = 60 * time.Second

// reservedPrefix is the tag prefix AWS keeps for itself; CreateTags rejects it.
const reservedPrefix = "aws:"

func reserved(key string) bool {
	return len(key) >= len(reservedPrefix) && strings.EqualFold(key[:len(reservedPrefix)], reservedPrefix)
}

func reservedMsg(v string) string {
	return fmt.Sprintf(`%q starts with "aws:", which AWS reserves; allowed: any key not starting with "aws:" (case-insensitive)`, v)
}

// semanticProblems checks a decoded policy for what the schema cannot say:
// reserved tag prefixes, cross-field consistency, regex and glob syntax.
func semanticProblems(p *Policy) []Problem {
	var ps []Problem
	add := func(at string, v any, format string, args ...any) {
		ps = append(ps, Problem{Path: at, Value: v, Message: fmt.Sprintf(format, args...)})
	}

	// tagging
	t := p.Tagging
	if reserved(t.Prefix) {
		add("/tagging/prefix", t.Prefix, "%s", reservedMsg(t.Prefix))
	}
	written := map[string]string{} // full key -> pointer of the field that writes it
	for _, nk := range t.generatedKeys() {
		at := pointer("tagging", "keys", nk.field)
		if prev, dup := written[nk.key]; dup {
			add(at, nk.key[len(t.Prefix):], "%q gives tag %q, which %s also writes; allowed: a name no other key uses", nk.key[len(t.Prefix):], nk.key, prev)
			continue
		}
		written[nk.key] = at
	}
	for _, k := range slices.Sorted(maps.Keys(t.StaticTags)) {
		at := pointer("tagging", "static_tags", k)
		switch {
		case !checkMapKey(add, at, k):
		case reserved(k):
			add(at, k, "%s", reservedMsg(k))
		case written[k] != "":
			add(at, k, "%q is also written by %s; allowed: a key the tagger does not generate", k, written[k])
		}
	}
	for i, k := range t.CopyFromSource {
		at := pointer("tagging", "copy_from_source", strconv.Itoa(i))
		switch {
		case reserved(k):
			add(at, k, "%s", reservedMsg(k))
		case written[k] != "":
			// Provenance comes from CloudTrail and EC2 only: a source's tag
			// is anyone's claim.
			add(at, k, "%q is written by %s from CloudTrail and EC2, never copied; allowed: a key the tagger does not generate", k, written[k])
		}
	}
	mayWrite := map[string]bool{}
	for k := range written {
		mayWrite[k] = true
	}
	for k := range t.StaticTags {
		mayWrite[k] = true
	}
	for _, k := range t.CopyFromSource {
		mayWrite[k] = true
	}
	for i, k := range t.Overwrite {
		if !mayWrite[k] {
			add(pointer("tagging", "overwrite", strconv.Itoa(i)), k,
				"%q is not a tag the tagger writes; allowed: a full key (prefix included) such as %q, or a key from static_tags or copy_from_source",
				k, t.Key(t.Keys.CreatedBy))
		}
	}
	if d := t.SnapshotWait.Duration; d < 0 || d > maxSnapshotWait {
		add("/tagging/snapshot_wait", d.String(), "%q is out of range; allowed: \"0s\"..\"%ds\"", d.String(), int(maxSnapshotWait/time.Second))
	}

	// sharing
	checkTagKey := func(at, k string) {
		switch {
		case k == "":
			add(at, k, `"" is empty; allowed: a tag key of 1..128 characters`)
		case reserved(k):
			add(at, k, "%s", reservedMsg(k))
		}
	}
	checkTagKey("/sharing/exception_tag", p.Sharing.ExceptionTag)

	// retention
	r := p.Retention
	// An Auto Scaling group launches the version it names whenever it scales
	// out; leaving those versions out of the in-use check would let the
	// cleanup remove an AMI a scaled-to-zero group still needs.
	if vs := r.InUse.LaunchTemplateVersions; vs != nil && !slices.Contains(vs, LaunchTemplateASG) && !slices.Contains(vs, LaunchTemplateAll) {
		add("/retention/in_use/launch_template_versions", vs,
			"must include %q (or %q): versions Auto Scaling groups name are always in use; allowed: a list with asg, e.g. [default, latest, asg]", LaunchTemplateASG, LaunchTemplateAll)
	}
	checkTagKey("/retention/protect_tag", r.ProtectTag)
	checkTagKey("/retention/time_lock_tag", r.TimeLockTag)
	if r.ProtectTag != "" && r.ProtectTag == r.TimeLockTag {
		add("/retention/time_lock_tag", r.TimeLockTag, "%q is also protect_tag; allowed: a different key, since the two tags mean different things", r.TimeLockTag)
	}
	names := map[string]int{}
	for i, rule := range r.Rules {
		base := []string{"retention", "rules", strconv.Itoa(i)}
		at := func(tokens ...string) string { return pointer(append(slices.Clone(base), tokens...)...) }

		if rule.Name == "" {
			add(at("name"), rule.Name, `"" is empty; allowed: 1..64 letters, digits, '_', '.' or '-'`)
		} else if first, dup := names[rule.Name]; dup {
			add(at("name"), rule.Name, "%q is already the name of /retention/rules/%d; allowed: a unique name", rule.Name, first)
		} else {
			names[rule.Name] = i
		}
		if g := rule.Match.Name; g != "" {
			// path.Match reports a bad pattern even against the empty name.
			if _, err := path.Match(g, ""); err != nil {
				add(at("match", "name"), g, "%q is not a valid glob (%v); allowed: path.Match syntax: *, ?, [a-z], \\ escapes", g, err)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(rule.Match.Tags)) {
			checkMapKey(add, at("match", "tags", k), k)
		}
		f := rule.Family
		if f.Tag != "" && f.NamePattern != "" {
			add(at("family"), map[string]any{"tag": f.Tag, "name_pattern": f.NamePattern},
				"both tag and name_pattern are set; allowed: exactly one of them")
		}
		if f.NamePattern != "" {
			re, err := regexp.Compile(f.NamePattern)
			switch {
			case err != nil:
				add(at("family", "name_pattern"), f.NamePattern, "%q does not compile (%v); allowed: an RE2 regular expression with exactly one capture group", f.NamePattern, err)
			case re.NumSubexp() != 1:
				add(at("family", "name_pattern"), f.NamePattern, "%q has %d capture groups; allowed: exactly one capture group, the family name, e.g. ^(.*)-[0-9]+$", f.NamePattern, re.NumSubexp())
			}
		}
	}
	if len(p.Overrides) > 0 {
		ps = append(ps, overrideProblems(p, ps)...)
	}
	return ps
}

// checkMapKey checks a tag key used as a map key, which the schema cannot
// (see below), and reports whether it is acceptable.
//
// The schema library's propertyNames errors carry a wrong instance location,
// so key lengths are checked here instead. "true" and "false" are rejected
// because they are almost always an unquoted YAML key such as on: or yes:
// that the YAML 1.1 reader turned into a boolean.
func checkMapKey(add func(string, any, string, ...any), at, k string) bool {
	switch n := utf8.RuneCountInString(k); {
	case n < 1 || n > 128:
		add(at, k, "key %q has %d characters; allowed: 1..128 characters", k, n)
		return false
	case k == "true" || k == "false":
		add(at, k, "key %q is most likely an unquoted YAML key such as yes, no, on, off, y or n, read as a boolean; allowed: any other key (quote it in YAML)", k)
		return false
	}
	return true
}
