package tagger

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func tagging(mut func(*policy.Tagging)) policy.Tagging {
	t := policy.Default().Tagging
	if mut != nil {
		mut(&t)
	}
	return t
}

// Shorthands for desired provenance tags.
func fact(k, v string) DesiredTag { return DesiredTag{Key: k, Value: v, Origin: OriginHousekeeper} }
func none(k string) DesiredTag    { return DesiredTag{Key: k, Origin: OriginHousekeeper, Fact: FactNone} }
func unknown(k string) DesiredTag {
	return DesiredTag{Key: k, Origin: OriginHousekeeper, Fact: FactUnknown}
}

const hk = "ami-housekeeper:"

func TestDesired(t *testing.T) {
	// What a state-change event alone knows: the creation date.
	stateChange := []DesiredTag{
		unknown(hk + "created-by"), unknown(hk + "created-by-issuer"), fact(hk+"created-at", "d"),
		unknown(hk + "created-via"), unknown(hk + "source-instance"), unknown(hk + "source-image"), unknown(hk + "source-region"),
	}
	tests := []struct {
		name   string
		policy policy.Tagging
		facts  Facts
		want   []DesiredTag
	}{
		{
			name:   "create image by an assumed role: the record proves the source image and region do not apply",
			policy: tagging(nil),
			facts: Facts{CreationDate: "2026-11-28T10:00:00.000Z", Operation: "CreateImage",
				Principal: "arn:aws:sts::1:assumed-role/r/s", Issuer: "arn:aws:iam::1:role/r", SourceInstanceID: "i-1"},
			want: []DesiredTag{
				fact(hk+"created-by", "arn:aws:sts::1:assumed-role/r/s"),
				fact(hk+"created-by-issuer", "arn:aws:iam::1:role/r"),
				fact(hk+"created-at", "2026-11-28T10:00:00.000Z"),
				fact(hk+"created-via", "CreateImage"),
				fact(hk+"source-instance", "i-1"),
				none(hk + "source-image"),
				none(hk + "source-region"),
			},
		},
		{
			name:   "an IAM user has no issuer: known absent",
			policy: tagging(nil),
			facts:  Facts{CreationDate: "d", Operation: "RegisterImage", Principal: "arn:aws:iam::1:user/alice"},
			want: []DesiredTag{
				fact(hk+"created-by", "arn:aws:iam::1:user/alice"), none(hk + "created-by-issuer"), fact(hk+"created-at", "d"),
				fact(hk+"created-via", "RegisterImage"), none(hk + "source-instance"), none(hk + "source-image"), none(hk + "source-region"),
			},
		},
		{
			name:   "no caller identity: unknown facts are unknown, not absent",
			policy: tagging(nil),
			facts:  Facts{CreationDate: "d"},
			want:   stateChange,
		},
		{
			name: "static tags win over copied ones, empty values included; aws: and provenance keys are never copied; unlisted keys are not copied",
			policy: tagging(func(p *policy.Tagging) {
				p.StaticTags = map[string]string{"team": "platform", "cost-center": "42", "reviewed": ""}
				p.CopyFromSource = []string{"team", "env", "aws:cloudformation:stack-name", "ami-housekeeper:created-by", "note"}
			}),
			facts: Facts{CreationDate: "d", SourceTags: map[string]string{"team": "web", "env": "prod", "owner": "x",
				"aws:cloudformation:stack-name": "s", "ami-housekeeper:created-by": "forged", "note": ""}},
			want: append(append([]DesiredTag{}, stateChange...),
				DesiredTag{Key: "cost-center", Value: "42", Origin: OriginStatic},
				DesiredTag{Key: "reviewed", Value: "", Origin: OriginStatic},
				DesiredTag{Key: "team", Value: "platform", Origin: OriginStatic},
				DesiredTag{Key: "env", Value: "prod", Origin: OriginCopied},
				DesiredTag{Key: "note", Value: "", Origin: OriginCopied},
			),
		},
		{
			name:   "custom prefix and key names",
			policy: tagging(func(p *policy.Tagging) { p.Prefix = "acme/"; p.Keys.CreatedAt = "born" }),
			facts:  Facts{CreationDate: "d"},
			want: []DesiredTag{
				unknown("acme/created-by"), unknown("acme/created-by-issuer"), fact("acme/born", "d"), unknown("acme/created-via"),
				unknown("acme/source-instance"), unknown("acme/source-image"), unknown("acme/source-region"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Desired(tt.policy, tt.facts); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestDesiredTruncatesByCharacter: EC2 counts tag lengths in Unicode
// characters, and a value cut inside a UTF-8 sequence is rejected with the
// whole CreateTags call.
func TestDesiredTruncatesByCharacter(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"3-byte characters within the limit are kept whole", strings.Repeat("€", 100), strings.Repeat("€", 100)},
		{"over the limit: 256 characters", strings.Repeat("€", 300), strings.Repeat("€", 256)},
		{"a 4-byte character at the boundary", strings.Repeat("a", 255) + "😀😀", strings.Repeat("a", 255) + "😀"},
		{"ASCII at the limit", strings.Repeat("a", 256), strings.Repeat("a", 256)},
		{"invalid bytes become U+FFFD", "team\xff", "team\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tagging(func(p *policy.Tagging) { p.StaticTags = map[string]string{"k": tt.value} })
			var got string
			for _, d := range Desired(p, Facts{}) {
				if d.Key == "k" {
					got = d.Value
				}
			}
			if !utf8.ValidString(got) || got != tt.want {
				t.Errorf("value = %q (%d characters, valid UTF-8: %v), want %d characters",
					got, utf8.RuneCountInString(got), utf8.ValidString(got), utf8.RuneCountInString(tt.want))
			}
		})
	}
	key := strings.Repeat("ключ", 40) // 160 characters, 320 bytes
	p := tagging(func(p *policy.Tagging) { p.StaticTags = map[string]string{key: "v"} })
	for _, d := range Desired(p, Facts{}) {
		if d.Origin == OriginStatic && (!utf8.ValidString(d.Key) || utf8.RuneCountInString(d.Key) != MaxKeyLen) {
			t.Errorf("key = %q, want the first %d characters", d.Key, MaxKeyLen)
		}
	}
}

func TestPlanWrites(t *testing.T) {
	want2 := []DesiredTag{fact("k1", "v1"), {Key: "k2", Value: "v2", Origin: OriginStatic}}
	many := map[string]string{}
	for i := 0; i < 49; i++ {
		many[string(rune('a'+i%26))+string(rune('A'+i/26))] = "x"
	}
	// 49 counted tags plus five aws: tags, which EC2 does not count.
	manyAWS := map[string]string{"aws:backup:source-resource": "x", "aws:cloudformation:stack-name": "x",
		"aws:cloudformation:stack-id": "x", "aws:cloudformation:logical-id": "x", "aws:recycle-bin:resource-in-bin": "true"}
	for k, v := range many {
		manyAWS[k] = v
	}
	tests := []struct {
		name           string
		policy         policy.Tagging
		desired        []DesiredTag
		resources      []Resource
		want           []Write
		wantSkips      int
		wantReplaced   []Replacement
		wantUnverified int
	}{
		{
			name:      "same tags on AMI and snapshots: one call",
			policy:    tagging(nil),
			desired:   want2,
			resources: []Resource{{ID: "ami-1"}, {ID: "snap-1"}, {ID: "snap-2"}},
			want:      []Write{{ResourceIDs: []string{"ami-1", "snap-1", "snap-2"}, Tags: map[string]string{"k1": "v1", "k2": "v2"}}},
		},
		{
			name:      "replay: nothing to write",
			policy:    tagging(nil),
			desired:   want2,
			resources: []Resource{{ID: "ami-1", Tags: map[string]string{"k1": "v1", "k2": "v2"}}},
			want:      []Write{},
		},
		{
			name:    "a tag someone set is not overwritten; resources split by tag set",
			policy:  tagging(nil),
			desired: want2,
			resources: []Resource{
				{ID: "ami-1", Tags: map[string]string{"k2": "theirs"}},
				{ID: "snap-1"},
				{ID: "snap-2", Tags: map[string]string{"k2": "theirs"}},
			},
			want: []Write{
				{ResourceIDs: []string{"ami-1", "snap-2"}, Tags: map[string]string{"k1": "v1"}},
				{ResourceIDs: []string{"snap-1"}, Tags: map[string]string{"k1": "v1", "k2": "v2"}},
			},
			wantSkips: 2,
		},
		{
			name:         "the policy may allow overwriting a key",
			policy:       tagging(func(p *policy.Tagging) { p.Overwrite = []string{"k2"} }),
			desired:      want2,
			resources:    []Resource{{ID: "ami-1", Tags: map[string]string{"k2": "theirs"}}},
			want:         []Write{{ResourceIDs: []string{"ami-1"}, Tags: map[string]string{"k1": "v1", "k2": "v2"}}},
			wantReplaced: []Replacement{{"ami-1", "k2", "theirs", "v2", "listed in tagging.overwrite"}},
		},
		{
			name:      "50-tag limit keeps the higher-priority tag",
			policy:    tagging(nil),
			desired:   want2,
			resources: []Resource{{ID: "ami-1", Tags: many}},
			want:      []Write{{ResourceIDs: []string{"ami-1"}, Tags: map[string]string{"k1": "v1"}}},
			wantSkips: 1,
		},
		{
			name:      "aws: tags do not count toward the 50-tag limit",
			policy:    tagging(nil),
			desired:   want2,
			resources: []Resource{{ID: "ami-1", Tags: manyAWS}},
			want:      []Write{{ResourceIDs: []string{"ami-1"}, Tags: map[string]string{"k1": "v1"}}},
			wantSkips: 1,
		},
		{
			name:      "an empty static value is written, and a replay writes nothing",
			policy:    tagging(nil),
			desired:   []DesiredTag{{Key: "reviewed", Value: "", Origin: OriginStatic}},
			resources: []Resource{{ID: "ami-1"}, {ID: "snap-1", Tags: map[string]string{"reviewed": ""}}},
			want:      []Write{{ResourceIDs: []string{"ami-1"}, Tags: map[string]string{"reviewed": ""}}},
		},
		{
			name:    "provenance replaces a forged value, set by the creating call or by hand",
			policy:  tagging(nil),
			desired: []DesiredTag{fact(hk+"created-by", "arn:aws:iam::1:user/mallory")},
			resources: []Resource{
				{ID: "ami-1", Tags: map[string]string{hk + "created-by": "arn:aws:iam::1:user/ceo"},
					CallerTags: map[string]string{hk + "created-by": "arn:aws:iam::1:user/ceo"}},
				{ID: "snap-1", Tags: map[string]string{hk + "created-by": "by-hand"}},
			},
			want: []Write{{ResourceIDs: []string{"ami-1", "snap-1"}, Tags: map[string]string{hk + "created-by": "arn:aws:iam::1:user/mallory"}}},
			wantReplaced: []Replacement{
				{"ami-1", hk + "created-by", "arn:aws:iam::1:user/ceo", "arn:aws:iam::1:user/mallory",
					"set by the creating call itself (TagSpecifications); provenance comes from CloudTrail and EC2, never from a tag someone set"},
				{"snap-1", hk + "created-by", "by-hand", "arn:aws:iam::1:user/mallory",
					"provenance comes from CloudTrail and EC2, never from a tag someone set"},
			},
		},
		{
			name:    "provenance that does not apply is emptied where someone set it, and not added elsewhere",
			policy:  tagging(nil),
			desired: []DesiredTag{none(hk + "created-by-issuer")},
			resources: []Resource{
				{ID: "ami-1", Tags: map[string]string{hk + "created-by-issuer": "arn:aws:iam::1:role/admin"}},
				{ID: "snap-1"},
				{ID: "snap-2", Tags: map[string]string{hk + "created-by-issuer": ""}},
			},
			want: []Write{{ResourceIDs: []string{"ami-1"}, Tags: map[string]string{hk + "created-by-issuer": ""}}},
			wantReplaced: []Replacement{{"ami-1", hk + "created-by-issuer", "arn:aws:iam::1:role/admin", "",
				"does not apply to this AMI according to the call's CloudTrail record; provenance comes from CloudTrail and EC2, never from a tag someone set"}},
		},
		{
			name:           "unknown provenance is left as it is and reported unverified",
			policy:         tagging(func(p *policy.Tagging) { p.Overwrite = []string{hk + "created-by"} }),
			desired:        []DesiredTag{unknown(hk + "created-by"), fact(hk+"created-at", "d")},
			resources:      []Resource{{ID: "ami-1", Tags: map[string]string{hk + "created-by": "arn:aws:iam::1:user/ceo"}}, {ID: "snap-1"}},
			want:           []Write{{ResourceIDs: []string{"ami-1", "snap-1"}, Tags: map[string]string{hk + "created-at": "d"}}},
			wantUnverified: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := PlanWrites(tt.policy, tt.desired, tt.resources)
			if !reflect.DeepEqual(plan.Writes, tt.want) {
				t.Errorf("writes\ngot  %v\nwant %v", plan.Writes, tt.want)
			}
			if len(plan.Skips) != tt.wantSkips {
				t.Errorf("skips = %v, want %d", plan.Skips, tt.wantSkips)
			}
			if !reflect.DeepEqual(plan.Replaced, tt.wantReplaced) {
				t.Errorf("replaced\ngot  %v\nwant %v", plan.Replaced, tt.wantReplaced)
			}
			if len(plan.Unverified) != tt.wantUnverified {
				t.Errorf("unverified = %v, want %d", plan.Unverified, tt.wantUnverified)
			}
			for _, s := range append(plan.Skips, plan.Unverified...) {
				if s.Reason == "" {
					t.Errorf("skip without a reason: %+v", s)
				}
			}
		})
	}
}
