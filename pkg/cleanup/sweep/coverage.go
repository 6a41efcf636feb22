package sweep

import (
	"slices"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// The tagger is event-driven: when its rules are disabled, or CloudTrail
// stops delivering, nothing fails and nothing is logged. The sweep, which
// lists every AMI anyway, counts the recent ones the tagger did not reach.
// The window starts late enough for a pending AMI to become available and
// be tagged, and is a day long so that a daily sweep sees every AMI once.
const (
	coverageMinAge = 2 * time.Hour
	coverageMaxAge = 26 * time.Hour
	// coverageListMax bounds the IDs named in the report.
	coverageListMax = 20
)

// TaggerCoverage is what the sweep saw of the tagger's work on the AMIs
// created between 2 and 26 hours before it ran.
type TaggerCoverage struct {
	// Recent counts the available AMIs created in the window.
	Recent int `json:"recent"`
	// Untagged counts those without the tagger's created-at tag: the
	// tagger never ran for them (rules disabled, function failing).
	Untagged int `json:"untagged"`
	// WithoutCreator counts those made by CreateImage or CopyImage (their
	// created-via tag, which the state-change path infers) with created-at
	// but no created-by: only the state-change path reached them, so
	// CloudTrail events are not arriving (no trail, or its rule disabled).
	// AMIs from calls the tagger's CloudTrail rule does not cover
	// (ImportImage, CreateRestoreImageTask, ...) carry no created-via from
	// that path and are not counted.
	WithoutCreator int `json:"without_creator"`
	// Examples are up to 20 IDs of AMIs counted in Untagged, then in
	// WithoutCreator.
	Examples []string `json:"examples,omitempty"`
}

// WatchTagger returns the tagging section the sweep checks the tagger's
// coverage against, or nil when there is nothing to expect: the tagger
// writes nothing in audit mode, and nothing to look for without a
// created-at key.
func WatchTagger(t policy.Tagging) *policy.Tagging {
	if t.Mode != policy.ModeEnforce || t.Keys.CreatedAt == "" {
		return nil
	}
	return &t
}

// taggerCoverage counts, among images, the recent available AMIs the
// tagger's two paths did not reach. A tag anyone may write can hide an AMI
// from this count; that only weakens a monitoring signal, never unlocks an
// action.
func taggerCoverage(now time.Time, images []cleanup.Image, t policy.Tagging) *TaggerCoverage {
	c := &TaggerCoverage{}
	createdAt, createdBy, createdVia := t.Key(t.Keys.CreatedAt), "", ""
	if t.Keys.CreatedBy != "" && t.Keys.CreatedVia != "" {
		createdBy, createdVia = t.Key(t.Keys.CreatedBy), t.Key(t.Keys.CreatedVia)
	}
	var noCreator []string
	for _, img := range images {
		age := now.Sub(img.CreationDate)
		if img.State != "available" || age < coverageMinAge || age > coverageMaxAge {
			continue
		}
		c.Recent++
		if _, ok := img.Tags[createdAt]; !ok {
			c.Untagged++
			c.Examples = append(c.Examples, img.ID)
			continue
		}
		if createdBy == "" {
			continue
		}
		via := img.Tags[createdVia]
		if _, ok := img.Tags[createdBy]; !ok && (via == amievents.OpCreateImage || via == amievents.OpCopyImage) {
			c.WithoutCreator++
			noCreator = append(noCreator, img.ID)
		}
	}
	slices.Sort(c.Examples)
	slices.Sort(noCreator)
	c.Examples = append(c.Examples, noCreator...)
	if len(c.Examples) > coverageListMax {
		c.Examples = c.Examples[:coverageListMax]
	}
	return c
}
