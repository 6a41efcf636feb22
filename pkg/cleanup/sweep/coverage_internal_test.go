package sweep

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Pure logic: the window, the two signals and which policies are watched.
func TestTaggerCoverage(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tagging := policy.Default().Tagging
	createdAt, createdBy, createdVia := tagging.Key(tagging.Keys.CreatedAt), tagging.Key(tagging.Keys.CreatedBy), tagging.Key(tagging.Keys.CreatedVia)
	full := map[string]string{createdAt: "x", createdBy: "y"}
	image := func(id string, age time.Duration, state string, tags map[string]string) cleanup.Image {
		return cleanup.Image{ID: id, State: state, CreationDate: now.Add(-age), Tags: tags}
	}
	images := []cleanup.Image{
		image("ami-too-young", 2*time.Hour-time.Minute, "available", nil),
		image("ami-young-edge", 2*time.Hour, "available", nil),
		image("ami-old-edge", 26*time.Hour, "available", map[string]string{createdAt: "x", createdVia: "CreateImage"}),
		// Imported: the state change path knows no operation, CloudTrail
		// never had a CreateImage for it: not a CloudTrail outage.
		image("ami-imported", 5*time.Hour, "available", map[string]string{createdAt: "x"}),
		image("ami-too-old", 26*time.Hour+time.Minute, "available", nil),
		image("ami-pending", 3*time.Hour, "pending", nil),
		image("ami-tagged", 5*time.Hour, "available", full),
		image("ami-foreign-tag-only", 5*time.Hour, "available", map[string]string{"Name": "x"}),
	}
	got := taggerCoverage(now, images, tagging)
	want := TaggerCoverage{Recent: 5, Untagged: 2, WithoutCreator: 1,
		Examples: []string{"ami-foreign-tag-only", "ami-young-edge", "ami-old-edge"}}
	if got.Recent != want.Recent || got.Untagged != want.Untagged || got.WithoutCreator != want.WithoutCreator || !slices.Equal(got.Examples, want.Examples) {
		t.Errorf("got %+v\nwant %+v", *got, want)
	}

	// Without a created-by (or created-via) key, an AMI with created-at is
	// fully reached.
	noCreator := tagging
	noCreator.Keys.CreatedBy = ""
	if c := taggerCoverage(now, images, noCreator); c.WithoutCreator != 0 || c.Untagged != 2 {
		t.Errorf("no created_by key: %+v", *c)
	}
	// The examples are bounded.
	many := make([]cleanup.Image, 50)
	for i := range many {
		many[i] = image("ami-"+string(rune('a'+i%26))+string(rune('a'+i/26)), 3*time.Hour, "available", nil)
	}
	if c := taggerCoverage(now, many, tagging); c.Untagged != 50 || len(c.Examples) != coverageListMax {
		t.Errorf("50 untagged: %d, %d examples", c.Untagged, len(c.Examples))
	}
}

func TestWatchTagger(t *testing.T) {
	enforce := policy.Default().Tagging
	enforce.Mode = policy.ModeEnforce
	audit := enforce
	audit.Mode = policy.ModeAudit
	noKey := enforce
	noKey.Keys.CreatedAt = ""
	for _, tc := range []struct {
		name    string
		tagging policy.Tagging
		watched bool
	}{
		{"enforce", enforce, true},
		{"audit: the tagger writes nothing", audit, false},
		{"no created-at key: nothing to look for", noKey, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := WatchTagger(tc.tagging) != nil; got != tc.watched {
				t.Errorf("watched %v, want %v", got, tc.watched)
			}
		})
	}
}

// The coverage reaches the metrics, the summary line's level and the text.
func TestTaggerCoverageReported(t *testing.T) {
	r := report(1)
	r.Tagger = &TaggerCoverage{Recent: 3, Untagged: 1, WithoutCreator: 1, Examples: []string{"ami-1", "ami-2"}}
	m := r.Metrics()
	if m["AMIsUntagged"] != 1 || m["AMIsWithoutCreator"] != 1 {
		t.Errorf("metrics %v", m)
	}
	if s := r.Summary(); !containsAll(s, "3 AMIs created 2 to 26 hours ago", "1 have no tagger tags", "1 no creator", "ami-1, ami-2") {
		t.Errorf("summary:\n%s", s)
	}
	r.Tagger = nil
	if _, ok := r.Metrics()["AMIsUntagged"]; ok {
		t.Error("AMIsUntagged written while the tagger is not watched: a 0 would hide that nothing is measured")
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
