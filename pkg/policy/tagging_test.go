package policy_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// TestTaggingStaticAndCopiedKeys pins what the tagger can write: an empty
// static value is a tag like any other (EC2 allows it, and the tagger writes
// it), lengths count characters, and the tagger's own provenance keys can
// be neither static nor copied.
func TestTaggingStaticAndCopiedKeys(t *testing.T) {
	tests := []struct {
		name, doc string
		path      string // "" when the document is valid
		message   string
	}{
		{"empty static value", "version: 1\ntagging:\n  static_tags: {reviewed: ''}\n", "", ""},
		{"256 three-byte characters", "version: 1\ntagging:\n  static_tags: {k: '" + strings.Repeat("€", 256) + "'}\n", "", ""},
		{"257 characters", "version: 1\ntagging:\n  static_tags: {k: '" + strings.Repeat("€", 257) + "'}\n", "/tagging/static_tags/k", "257"},
		{"128-character key of two-byte characters", "version: 1\ntagging:\n  static_tags: {" + strings.Repeat("é", 128) + ": v}\n", "", ""},
		{"static aws: key", "version: 1\ntagging:\n  static_tags: {'aws:team': v}\n", "/tagging/static_tags/aws:team", `starts with "aws:"`},
		{"static provenance key", "version: 1\ntagging:\n  static_tags: {'ami-housekeeper:created-at': now}\n", "/tagging/static_tags/ami-housekeeper:created-at", "also written by /tagging/keys/created_at"},
		{"copied provenance key", "version: 1\ntagging:\n  copy_from_source: [team, 'ami-housekeeper:created-by']\n", "/tagging/copy_from_source/1", "written by /tagging/keys/created_by from CloudTrail and EC2, never copied"},
		{"copied provenance key, custom prefix", "version: 1\ntagging:\n  prefix: 'acme:'\n  copy_from_source: ['acme:source-image']\n", "/tagging/copy_from_source/0", "never copied"},
		{"copying the default-prefixed key under a custom prefix is fine", "version: 1\ntagging:\n  prefix: 'acme:'\n  copy_from_source: ['ami-housekeeper:created-by']\n", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.Parse([]byte(tt.doc), "test")
			if tt.path == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if tt.name == "empty static value" {
					if v, ok := p.Tagging.StaticTags["reviewed"]; !ok || v != "" {
						t.Errorf("static_tags = %v", p.Tagging.StaticTags)
					}
				}
				return
			}
			var ve *policy.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			for _, pr := range ve.Problems {
				if pr.Path == tt.path && strings.Contains(pr.Message, tt.message) {
					if !utf8.ValidString(pr.Message) {
						t.Errorf("message is not valid UTF-8: %q", pr.Message)
					}
					return
				}
			}
			t.Errorf("no problem at %s containing %q: %v", tt.path, tt.message, err)
		})
	}
}
