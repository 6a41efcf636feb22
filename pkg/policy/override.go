package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Override changes the policy for some OUs and accounts of an
// organization: "stricter retention in the sandboxes", "one more account
// the publishing account may share with".
//
// Its sections are partial: only the fields written are set, with the same
// names and types as the top-level sections. A field written replaces the
// base's value; lists (and so rules) replace the whole list, objects merge
// field by field.
type Override struct {
	// Name identifies the override in errors, logs and the CLI; unique.
	Name string `json:"name"`
	// OUs are OU ids (ou-…) or root ids (r-…): the override applies to
	// every account below them.
	OUs []string `json:"ous,omitempty"`
	// Accounts are account IDs the override applies to.
	Accounts []string `json:"accounts,omitempty"`
	// The partial sections, as decoded JSON objects: a Go struct could not
	// tell a field left out from a field set to its zero value.
	Tagging   map[string]any `json:"tagging,omitempty"`
	Sharing   map[string]any `json:"sharing,omitempty"`
	Retention map[string]any `json:"retention,omitempty"`
}

// sections returns the override's partial sections by JSON name, in
// document order; a section not written is nil.
func (o Override) sections() []namedSection {
	return []namedSection{{"tagging", o.Tagging}, {"sharing", o.Sharing}, {"retention", o.Retention}}
}

type namedSection struct {
	name   string
	fields map[string]any
}

var (
	accountIDRE = regexp.MustCompile(`^[0-9]{12}$`)
	// Organizations ids: a root r-…, an OU ou-<root part>-<random part>.
	ouIDRE = regexp.MustCompile(`^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$`)
)

// Applied names the overrides For merged into p, in the order they were
// applied; nil for a policy as its document says it.
func (p *Policy) Applied() []string { return slices.Clone(p.applied) }

// OverridesFor returns the overrides that apply to account, whose OU path
// is path (the root id first, down to the account's own parent OU), in the
// order For applies them: those of the OUs on the path from the root down,
// then those naming the account; in document order within each level. An
// override applies once, at its most specific match: the account if it
// names it, else the deepest of its OUs on the path.
func (p *Policy) OverridesFor(account string, path []string) []Override {
	type match struct {
		level, index int
	}
	var ms []match
	for i, o := range p.Overrides {
		level := -1
		if slices.Contains(o.Accounts, account) {
			level = len(path)
		} else {
			for j, id := range path {
				if slices.Contains(o.OUs, id) {
					level = j
				}
			}
		}
		if level >= 0 {
			ms = append(ms, match{level, i})
		}
	}
	slices.SortStableFunc(ms, func(a, b match) int { return a.level - b.level })
	out := make([]Override, len(ms))
	for i, m := range ms {
		out[i] = p.Overrides[m.index]
	}
	return out
}

// For returns the effective policy of account, whose OU path is path (root
// id first, down to the account's own parent OU; nil when unknown, and then
// only the overrides naming the account apply): p with every override
// OverridesFor lists merged in, in that order. The result has no overrides
// of its own; Applied names those merged. p is not changed.
//
// Parse and Validate have checked every override against p, and the
// fields an override may set are such that any sequence of valid overrides
// gives a valid policy; For checks the result again all the same, so a
// policy that skipped validation fails here rather than runs.
func (p *Policy) For(account string, path []string) (*Policy, error) {
	if !accountIDRE.MatchString(account) {
		return nil, fmt.Errorf("policy for account %q: not a 12-digit account ID", account)
	}
	for i, id := range path {
		if !ouIDRE.MatchString(id) {
			return nil, fmt.Errorf("policy for account %s: OU path entry %d %q is not a root (r-…) or OU (ou-…) id", account, i, id)
		}
	}
	os := p.OverridesFor(account, path)
	out, err := p.with(os)
	if err != nil {
		return nil, fmt.Errorf("policy for account %s: %w", account, err)
	}
	if problems := semanticProblems(out); len(problems) > 0 {
		return nil, newValidationError(fmt.Sprintf("account %s with overrides %s", account, strings.Join(out.applied, ", ")), problems)
	}
	return out, nil
}

// Variants returns p without its overrides, then p with each override
// applied alone. Each field of any policy For can return has the value it
// has in one of these: what a deployment's IAM permissions must cover for
// every account (a role's tag keys, the stages it may apply) is their
// union.
func (p *Policy) Variants() ([]*Policy, error) {
	base, err := p.with(nil)
	if err != nil {
		return nil, err
	}
	out := []*Policy{base}
	for _, o := range p.Overrides {
		v, err := p.with([]Override{o})
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// with returns a copy of p, without overrides, with os merged in order.
func (p *Policy) with(os []Override) (*Policy, error) {
	plain := *p
	plain.Overrides, plain.applied = nil, nil
	doc, err := json.Marshal(&plain)
	if err != nil {
		return nil, fmt.Errorf("encoding the policy: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, fmt.Errorf("re-reading the encoded policy: %w", err)
	}
	var names []string
	for _, o := range os {
		for _, s := range o.sections() {
			if s.fields != nil {
				m[s.name] = mergeJSON(m[s.name], s.fields)
			}
		}
		names = append(names, o.Name)
	}
	if doc, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("encoding the merged policy: %w", err)
	}
	out := Default()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return nil, fmt.Errorf("overrides %s: decoding the merged policy: %w", strings.Join(names, ", "), err)
	}
	out.applied = names
	if p.forcedAudit {
		out.ForceAudit()
	}
	return out, nil
}

// mergeJSON returns over merged onto base, both decoded JSON: objects merge
// key by key, recursively; anything else in over (lists included) replaces
// base. Neither argument is changed.
func mergeJSON(base, over any) any {
	om, ok := over.(map[string]any)
	if !ok {
		return over
	}
	out := map[string]any{}
	if bm, ok := base.(map[string]any); ok {
		maps.Copy(out, bm)
	}
	for k, v := range om {
		out[k] = mergeJSON(out[k], v)
	}
	return out
}

// Fields an override may not set, and why. Each is a condition of the IAM
// permissions the deployment writes once for every account, from the
// top-level policy: the tagger may write exactly the tagger's keys
// (aws:TagKeys), and the cleanup is denied removing what carries the
// protect tag. An override changing them would leave the permissions
// guarding other keys than the functions use.
var notOverridable = map[string]string{
	"/tagging/prefix":           tagKeysReason,
	"/tagging/keys":             tagKeysReason,
	"/tagging/copy_from_source": tagKeysReason,
	"/retention/protect_tag":    "the protect tag is the condition of the cleanup's IAM deny on removing protected AMIs and snapshots, written once at deployment for every account, and an AMI protected in one account stays protected in all",
}

const tagKeysReason = "the tag keys the tagger writes are the condition (aws:TagKeys) of its IAM permission to tag, written once at deployment for every account"

// overrideProblems checks the overrides of p, whose top level is already
// checked (baseProblems): names, targets, the fields an override may not
// set, and that p with each override merged in is valid. Problems inside
// override i are at /overrides/i and carry its name.
func overrideProblems(p *Policy, baseProblems []Problem) []Problem {
	var ps []Problem
	add := func(i int, at string, v any, format string, args ...any) {
		ps = append(ps, Problem{Path: pointer("overrides", strconv.Itoa(i)) + at, Value: v,
			Message: fmt.Sprintf(format, args...), Override: p.Overrides[i].Name})
	}
	inBase := map[string]bool{}
	for _, b := range baseProblems {
		inBase[b.Path+"\x00"+b.Message] = true
	}
	names := map[string]int{}
	for i, o := range p.Overrides {
		if first, dup := names[o.Name]; dup {
			add(i, "/name", o.Name, "%q is already the name of /overrides/%d; allowed: a unique name", o.Name, first)
		} else {
			names[o.Name] = i
		}
		if len(o.OUs) == 0 && len(o.Accounts) == 0 {
			add(i, "", nil, "names no OU and no account, so it applies nowhere; allowed: ous (OU or root ids) or accounts (account IDs), at least one entry")
		}
		set := false
		for _, s := range o.sections() {
			if len(s.fields) > 0 {
				set = true
			}
		}
		if !set {
			add(i, "", nil, "sets nothing; allowed: at least one field of tagging, sharing or retention")
		}
		for _, at := range slices.Sorted(maps.Keys(notOverridable)) {
			if v, ok := overrideField(o, at); ok {
				add(i, at, v, "cannot be set in an override: %s; allowed: set it at the top level (%s)", notOverridable[at], at)
			}
		}
		if st, ok := o.Tagging["static_tags"].(map[string]any); ok {
			for _, k := range slices.Sorted(maps.Keys(st)) {
				if _, known := p.Tagging.StaticTags[k]; !known {
					add(i, pointer("tagging", "static_tags", k), k,
						"%q is not a key of /tagging/static_tags: an override may give a static tag another value, not add one (%s); allowed: %s",
						k, tagKeysReason, keysOrNone(p.Tagging.StaticTags))
				}
			}
		}

		merged, err := p.with([]Override{o})
		if err != nil {
			add(i, "", nil, "%v; allowed: fields of the top-level sections, with their types", err)
			continue
		}
		for _, mp := range semanticProblems(merged) {
			if inBase[mp.Path+"\x00"+mp.Message] {
				continue // the top level's own problem, reported there
			}
			if _, ok := overrideField(o, mp.Path); ok {
				add(i, mp.Path, mp.Value, "%s", mp.Message)
			} else {
				add(i, "", mp.Value, "with this override merged in, %s: %s", mp.Path, mp.Message)
			}
		}
	}
	return ps
}

// keysOrNone lists a map's keys quoted, or says there are none.
func keysOrNone(m map[string]string) string {
	if len(m) == 0 {
		return "none (add the key at the top level first)"
	}
	return quoteAll(slices.Sorted(maps.Keys(m))) + " (add other keys at the top level)"
}

// overrideField reports whether o sets the field at, a JSON pointer into
// the policy (/retention/grace_days), or a field that contains it (a list
// it replaces), and returns the value o sets.
func overrideField(o Override, at string) (any, bool) {
	tokens := strings.Split(strings.TrimPrefix(at, "/"), "/")
	var v any
	for _, s := range o.sections() {
		if s.name == tokens[0] && s.fields != nil {
			v = s.fields
		}
	}
	if v == nil {
		return nil, false
	}
	for _, t := range tokens[1:] {
		m, ok := v.(map[string]any)
		if !ok {
			return v, true // a list or value replacing everything below it
		}
		t = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
		if v, ok = m[t]; !ok {
			return nil, false
		}
	}
	return v, true
}
