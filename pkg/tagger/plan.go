// Package tagger decides and applies the tags a new AMI and its EBS
// snapshots receive. plan.go is pure: it turns what is known about an image
// into desired tags, and desired plus existing tags into CreateTags calls.
package tagger

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// EC2 tag limits (CreateTags API). Lengths are in Unicode characters, not
// bytes; tags with the aws: prefix do not count toward the 50.
const (
	MaxTagsPerResource = 50
	MaxKeyLen          = 128
	MaxValueLen        = 256
)

// Origin says why a tag is desired; it also orders tags when a resource's
// 50-tag limit forces a choice: the housekeeper's own tags first.
type Origin int

const (
	OriginHousekeeper Origin = iota // who/when/how/source: provenance, the tagger's own keys
	OriginStatic                    // policy static_tags
	OriginCopied                    // copied from the source instance or AMI
)

func (o Origin) String() string {
	return [...]string{"housekeeper", "static", "copied"}[o]
}

// Facts is what is known about a new AMI, from the event and from EC2.
type Facts struct {
	// CreationDate is the AMI's CreationDate from EC2: the same value whichever
	// event arrives first, so replays and reorderings converge.
	CreationDate string
	// Operation is CreateImage, CopyImage or RegisterImage; empty if unknown.
	Operation string
	// Principal and Issuer come from CloudTrail's userIdentity; empty if
	// unknown. A Principal means the facts are the creating call's CloudTrail
	// record: a provenance fact left empty then does not apply to this AMI
	// (an IAM user has no issuer, a CreateImage no source image).
	Principal string
	Issuer    string
	// Source of the AMI; empty if unknown or not applicable.
	SourceInstanceID string
	SourceImageID    string
	SourceRegion     string
	// SourceTags are the tags of the source instance or AMI, when read.
	SourceTags map[string]string
}

// Fact says what the facts tell about a provenance key.
type Fact int

const (
	// FactValue: Value is the fact; it replaces any other value.
	FactValue Fact = iota
	// FactNone: the call's record proves the key does not apply; a value
	// someone else set is replaced by an empty one (no DeleteTags call).
	FactNone
	// FactUnknown: these facts cannot tell (no caller identity); a value
	// present is left as it is and reported unverified, never vouched for.
	FactUnknown
)

// DesiredTag is one tag the policy wants on the AMI and its snapshots.
type DesiredTag struct {
	Key, Value string
	Origin     Origin
	// Fact qualifies provenance tags (OriginHousekeeper); FactValue otherwise.
	Fact Fact
}

// Desired returns the tags the policy wants for an AMI with these facts, in
// priority order. Provenance is only ever taken from the facts (CloudTrail
// and EC2), never from a policy or a source's tags: every provenance key is
// listed, with FactNone or FactUnknown when it has no value. Static and
// copied tags are written as they are, empty values included (EC2 allows
// them, and whoever wrote one meant it).
func Desired(p policy.Tagging, f Facts) []DesiredTag {
	var out []DesiredTag
	seen := map[string]bool{}
	add := func(d DesiredTag) {
		d.Key, d.Value = truncate(d.Key, MaxKeyLen), truncate(d.Value, MaxValueLen)
		if d.Key == "" || seen[d.Key] || isReserved(d.Key) {
			return
		}
		seen[d.Key] = true
		out = append(out, d)
	}
	record := f.Principal != "" // the facts are the call's CloudTrail record
	provenance := func(name, value string, knownAbsent bool) {
		d := DesiredTag{Key: p.Key(name), Value: value, Origin: OriginHousekeeper}
		switch {
		case value != "":
		case knownAbsent:
			d.Fact = FactNone
		default:
			d.Fact = FactUnknown
		}
		add(d)
	}
	provenance(p.Keys.CreatedBy, f.Principal, false)
	provenance(p.Keys.CreatedByIssuer, f.Issuer, record)
	provenance(p.Keys.CreatedAt, f.CreationDate, false)
	provenance(p.Keys.CreatedVia, f.Operation, record)
	provenance(p.Keys.SourceInstance, f.SourceInstanceID, record)
	provenance(p.Keys.SourceImage, f.SourceImageID, record)
	provenance(p.Keys.SourceRegion, f.SourceRegion, record)
	// Static tags win over copied ones: they are the policy's explicit word.
	for _, k := range slices.Sorted(maps.Keys(p.StaticTags)) {
		add(DesiredTag{Key: k, Value: p.StaticTags[k], Origin: OriginStatic})
	}
	for _, k := range p.CopyFromSource {
		if v, ok := f.SourceTags[k]; ok {
			add(DesiredTag{Key: k, Value: v, Origin: OriginCopied})
		}
	}
	return out
}

// Resource is an AMI or snapshot with the tags it has now.
type Resource struct {
	ID   string
	Tags map[string]string
	// CallerTags are the tags the creating call asked for on this resource
	// (TagSpecifications), when known: they name who set a replaced value.
	CallerTags map[string]string
}

// Write is one CreateTags call: the same tags on every listed resource.
type Write struct {
	ResourceIDs []string          `json:"resource_ids"`
	Tags        map[string]string `json:"tags"`
}

// Skip is a desired tag that was not written to a resource, and why.
type Skip struct {
	ResourceID string `json:"resource_id"`
	Key        string `json:"key"`
	Reason     string `json:"reason"`
}

// Replacement is a value a write replaces, and why.
type Replacement struct {
	ResourceID string `json:"resource_id"`
	Key        string `json:"key"`
	Was        string `json:"was"`
	Now        string `json:"now"`
	Reason     string `json:"reason"`
}

// Plan is what PlanWrites decided.
type Plan struct {
	Writes []Write
	// Skips are desired tags not written.
	Skips []Skip
	// Replaced lists the existing values the writes replace.
	Replaced []Replacement
	// Unverified lists provenance tags a resource carries that the facts
	// cannot confirm (FactUnknown): left alone, and not the tagger's word.
	Unverified []Skip
}

// PlanWrites compares desired tags with each resource's existing tags and
// returns the CreateTags calls to make. Provenance tags are the tagger's:
// a known fact replaces whatever value a resource carries (set at creation
// through TagSpecifications, or by hand), since a tag anyone may set is no
// evidence of who created the AMI. Any other tag already set is never
// overwritten unless the policy lists its key. Resources needing the same
// tags share one call. The order is deterministic (resources in input order).
func PlanWrites(p policy.Tagging, desired []DesiredTag, resources []Resource) Plan {
	var plan Plan
	type group struct {
		sig  string
		tags map[string]string
		ids  []string
	}
	var groups []*group
	bySig := map[string]*group{}
	for _, r := range resources {
		want := map[string]string{}
		room := MaxTagsPerResource - countedTags(r.Tags)
		for _, d := range desired {
			cur, has := r.Tags[d.Key]
			provenance := d.Origin == OriginHousekeeper
			switch {
			case d.Fact == FactUnknown:
				if has {
					plan.Unverified = append(plan.Unverified, Skip{r.ID, d.Key, fmt.Sprintf(
						"present as %q; this event carries no caller identity, so the tagger cannot confirm it and leaves it as it is (the CloudTrail record of the call decides)", cur)})
				}
				continue
			case d.Fact == FactNone && (!has || cur == ""):
				continue // nothing claims what does not apply
			case has && cur == d.Value:
				continue
			case has && !provenance && !p.MayOverwrite(d.Key):
				plan.Skips = append(plan.Skips, Skip{r.ID, d.Key, fmt.Sprintf("already set to %q by someone else; not overwritten", cur)})
				continue
			case !has && room <= 0:
				plan.Skips = append(plan.Skips, Skip{r.ID, d.Key, fmt.Sprintf("resource already has %d tags that count toward EC2's limit", MaxTagsPerResource)})
				continue
			}
			if has {
				plan.Replaced = append(plan.Replaced, Replacement{r.ID, d.Key, cur, d.Value, replaceReason(d, r, cur)})
			} else {
				room--
			}
			want[d.Key] = d.Value
		}
		if len(want) == 0 {
			continue
		}
		sig := signature(want)
		g, ok := bySig[sig]
		if !ok {
			g = &group{sig: sig, tags: want}
			bySig[sig] = g
			groups = append(groups, g)
		}
		g.ids = append(g.ids, r.ID)
	}
	plan.Writes = make([]Write, 0, len(groups))
	for _, g := range groups {
		plan.Writes = append(plan.Writes, Write{ResourceIDs: g.ids, Tags: g.tags})
	}
	return plan
}

func replaceReason(d DesiredTag, r Resource, cur string) string {
	if d.Origin != OriginHousekeeper {
		return "listed in tagging.overwrite"
	}
	why := "provenance comes from CloudTrail and EC2, never from a tag someone set"
	if v, ok := r.CallerTags[d.Key]; ok && v == cur {
		why = "set by the creating call itself (TagSpecifications); " + why
	}
	if d.Fact == FactNone {
		why = "does not apply to this AMI according to the call's CloudTrail record; " + why
	}
	return why
}

// isReserved reports keys EC2 refuses: the aws: prefix belongs to AWS.
func isReserved(key string) bool { return strings.HasPrefix(strings.ToLower(key), "aws:") }

// countedTags counts the tags that count toward EC2's per-resource limit:
// aws: tags (AWS Backup, CloudFormation, Recycle Bin ...) do not.
func countedTags(tags map[string]string) int {
	n := 0
	for k := range tags {
		if !isReserved(k) {
			n++
		}
	}
	return n
}

// truncate cuts s to at most n Unicode characters, EC2's unit for tag
// lengths, never inside a character: a cut UTF-8 sequence would make EC2
// reject the whole CreateTags call. Invalid bytes become U+FFFD.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	i := 0
	for at := range s {
		if i == n {
			return s[:at]
		}
		i++
	}
	return s
}

func signature(tags map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(tags[k])
		b.WriteByte(0)
	}
	return b.String()
}
