// Package tagger decides and applies the tags a new AMI and its EBS
// snapshots receive. plan.go is pure: it turns what is known about an image
// into desired tags, and desired plus existing tags into CreateTags calls.
package tagger

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// EC2 tag limits (CreateTags API).
const (
	MaxTagsPerResource = 50
	MaxKeyLen          = 128
	MaxValueLen        = 256
)

// Origin says why a tag is desired; it also orders tags when a resource's
// 50-tag limit forces a choice: the housekeeper's own tags first.
type Origin int

const (
	OriginHousekeeper Origin = iota // who/when/how/source
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
	// Principal and Issuer come from CloudTrail's userIdentity; empty if unknown.
	Principal string
	Issuer    string
	// Source of the AMI; empty if unknown or not applicable.
	SourceInstanceID string
	SourceImageID    string
	SourceRegion     string
	// SourceTags are the tags of the source instance or AMI, when read.
	SourceTags map[string]string
}

// DesiredTag is one tag the policy wants on the AMI and its snapshots.
type DesiredTag struct {
	Key, Value string
	Origin     Origin
}

// Desired returns the tags the policy wants for an AMI with these facts, in
// priority order. Unknown facts produce no tag rather than an empty one.
func Desired(p policy.Tagging, f Facts) []DesiredTag {
	var out []DesiredTag
	seen := map[string]bool{}
	add := func(key, value string, o Origin) {
		if key == "" || value == "" || seen[key] || isReserved(key) {
			return
		}
		seen[key] = true
		out = append(out, DesiredTag{Key: truncate(key, MaxKeyLen), Value: truncate(value, MaxValueLen), Origin: o})
	}
	add(p.Key(p.Keys.CreatedBy), f.Principal, OriginHousekeeper)
	add(p.Key(p.Keys.CreatedByIssuer), f.Issuer, OriginHousekeeper)
	add(p.Key(p.Keys.CreatedAt), f.CreationDate, OriginHousekeeper)
	add(p.Key(p.Keys.CreatedVia), f.Operation, OriginHousekeeper)
	add(p.Key(p.Keys.SourceInstance), f.SourceInstanceID, OriginHousekeeper)
	add(p.Key(p.Keys.SourceImage), f.SourceImageID, OriginHousekeeper)
	add(p.Key(p.Keys.SourceRegion), f.SourceRegion, OriginHousekeeper)
	// Static tags win over copied ones: they are the policy's explicit word.
	for _, k := range slices.Sorted(maps.Keys(p.StaticTags)) {
		add(k, p.StaticTags[k], OriginStatic)
	}
	for _, k := range p.CopyFromSource {
		if v, ok := f.SourceTags[k]; ok {
			add(k, v, OriginCopied)
		}
	}
	return out
}

// Resource is an AMI or snapshot with the tags it has now.
type Resource struct {
	ID   string
	Tags map[string]string
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

// PlanWrites compares desired tags with each resource's existing tags and
// returns the CreateTags calls to make: a tag already set is never
// overwritten unless the policy lists its key, and resources needing the same
// tags share one call. The order is deterministic (resources in input order).
func PlanWrites(p policy.Tagging, desired []DesiredTag, resources []Resource) ([]Write, []Skip) {
	var skips []Skip
	type group struct {
		sig  string
		tags map[string]string
		ids  []string
	}
	var groups []*group
	bySig := map[string]*group{}
	for _, r := range resources {
		want := map[string]string{}
		room := MaxTagsPerResource - len(r.Tags)
		for _, d := range desired {
			cur, has := r.Tags[d.Key]
			switch {
			case has && cur == d.Value:
				continue
			case has && !p.MayOverwrite(d.Key):
				skips = append(skips, Skip{r.ID, d.Key, fmt.Sprintf("already set to %q by someone else; not overwritten", cur)})
				continue
			case !has && room <= 0:
				skips = append(skips, Skip{r.ID, d.Key, fmt.Sprintf("resource already has %d tags (EC2 limit)", MaxTagsPerResource)})
				continue
			}
			if !has {
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
	writes := make([]Write, 0, len(groups))
	for _, g := range groups {
		writes = append(writes, Write{ResourceIDs: g.ids, Tags: g.tags})
	}
	return writes, skips
}

// isReserved reports keys EC2 refuses: the aws: prefix belongs to AWS.
func isReserved(key string) bool { return strings.HasPrefix(strings.ToLower(key), "aws:") }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
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
