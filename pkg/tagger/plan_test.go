package tagger

import (
	"reflect"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func tagging(mut func(*policy.Tagging)) policy.Tagging {
	t := policy.Default().Tagging
	if mut != nil {
		mut(&t)
	}
	return t
}

func TestDesired(t *testing.T) {
	tests := []struct {
		name   string
		policy policy.Tagging
		facts  Facts
		want   []DesiredTag
	}{
		{
			name:   "create image by an assumed role",
			policy: tagging(nil),
			facts: Facts{CreationDate: "2026-11-28T10:00:00.000Z", Operation: "CreateImage",
				Principal: "arn:aws:sts::1:assumed-role/r/s", Issuer: "arn:aws:iam::1:role/r", SourceInstanceID: "i-1"},
			want: []DesiredTag{
				{"ami-housekeeper:created-by", "arn:aws:sts::1:assumed-role/r/s", OriginHousekeeper},
				{"ami-housekeeper:created-by-issuer", "arn:aws:iam::1:role/r", OriginHousekeeper},
				{"ami-housekeeper:created-at", "2026-11-28T10:00:00.000Z", OriginHousekeeper},
				{"ami-housekeeper:created-via", "CreateImage", OriginHousekeeper},
				{"ami-housekeeper:source-instance", "i-1", OriginHousekeeper},
			},
		},
		{
			name:   "unknown facts give no empty tags",
			policy: tagging(nil),
			facts:  Facts{CreationDate: "2026-11-28T10:00:00.000Z"},
			want:   []DesiredTag{{"ami-housekeeper:created-at", "2026-11-28T10:00:00.000Z", OriginHousekeeper}},
		},
		{
			name: "static tags win over copied ones; aws: keys are never copied; unlisted keys are not copied",
			policy: tagging(func(p *policy.Tagging) {
				p.StaticTags = map[string]string{"team": "platform", "cost-center": "42"}
				p.CopyFromSource = []string{"team", "env", "aws:cloudformation:stack-name"}
			}),
			facts: Facts{CreationDate: "d", SourceTags: map[string]string{"team": "web", "env": "prod", "owner": "x", "aws:cloudformation:stack-name": "s"}},
			want: []DesiredTag{
				{"ami-housekeeper:created-at", "d", OriginHousekeeper},
				{"cost-center", "42", OriginStatic},
				{"team", "platform", OriginStatic},
				{"env", "prod", OriginCopied},
			},
		},
		{
			name:   "custom prefix and key names",
			policy: tagging(func(p *policy.Tagging) { p.Prefix = "acme/"; p.Keys.CreatedAt = "born" }),
			facts:  Facts{CreationDate: "d"},
			want:   []DesiredTag{{"acme/born", "d", OriginHousekeeper}},
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

func TestPlanWrites(t *testing.T) {
	want2 := []DesiredTag{{"k1", "v1", OriginHousekeeper}, {"k2", "v2", OriginStatic}}
	many := map[string]string{}
	for i := 0; i < 49; i++ {
		many[string(rune('a'+i%26))+string(rune('A'+i/26))] = "x"
	}
	tests := []struct {
		name      string
		policy    policy.Tagging
		desired   []DesiredTag
		resources []Resource
		want      []Write
		wantSkips int
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
			name:      "the policy may allow overwriting a key",
			policy:    tagging(func(p *policy.Tagging) { p.Overwrite = []string{"k2"} }),
			desired:   want2,
			resources: []Resource{{ID: "ami-1", Tags: map[string]string{"k2": "theirs"}}},
			want:      []Write{{ResourceIDs: []string{"ami-1"}, Tags: map[string]string{"k1": "v1", "k2": "v2"}}},
		},
		{
			name:      "50-tag limit keeps the higher-priority tag",
			policy:    tagging(nil),
			desired:   want2,
			resources: []Resource{{ID: "ami-1", Tags: many}},
			want:      []Write{{ResourceIDs: []string{"ami-1"}, Tags: map[string]string{"k1": "v1"}}},
			wantSkips: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skips := PlanWrites(tt.policy, tt.desired, tt.resources)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("writes\ngot  %v\nwant %v", got, tt.want)
			}
			if len(skips) != tt.wantSkips {
				t.Errorf("skips = %v, want %d", skips, tt.wantSkips)
			}
			for _, s := range skips {
				if s.Reason == "" {
					t.Errorf("skip without a reason: %+v", s)
				}
			}
		})
	}
}
