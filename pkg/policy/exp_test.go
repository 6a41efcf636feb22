package policy

import "testing"

func TestExp(t *testing.T) {
	docs := []string{
		"version: 1\ntagging:\n  prefixx: x\n  mode: enforced\n",
		"version: 1\nbogus: 1\nretention:\n  grace_days: \"7\"\n  max_gib_per_run: 0\n",
		"version: 2\n",
		"tagging: {}\n",
		"version: 1\nsharing:\n  allowed_accounts: ['123', '123456789012', '123456789012']\n  allowed_organizations: [arn:aws:organizations::123:organization/o-x]\n",
		"version: 1\ntagging:\n  snapshot_wait: 10 seconds\n  static_tags: {'': x, y: 1}\n  keys: {created_by: ''}\n",
		"version: 1\nretention:\n  rules:\n  - name: a\n    family: {tag: x, name_pattern: y}\n  - name: a\n    match: {name: '[a'}\n    keep_newest: 1001\n  - {}\n",
		"version: 1\nretention:\n  rules:\n  - name: a\n    family: {name_pattern: '('}\n  - name: b\n    family: {name_pattern: 'abc'}\n",
		"version: 1\ntagging:\n  static_tags: {aws:x: y}\n  overwrite: [created-by]\n  snapshot_wait: 90s\n",
		"version: 1\ntagging:\n  mode: a\n   b: c\n",
		"version: 1\nversion: 1\n",
		"{\n\t\"version\": 1,\n\t\"tagging\": {\"mode\": \"audit\"}\n}\n",
		"",
		"# just a comment\n",
		"hello",
	}
	for _, d := range docs {
		_, err := Parse([]byte(d), "x.yaml")
		t.Logf("%q\n=> %v", d, err)
		if ve, ok := err.(*ValidationError); ok {
			for _, p := range ve.Problems {
				t.Logf("   %#v", p)
			}
		}
	}
}
