package cleanup

import (
	"slices"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func TestRecheckReasons(t *testing.T) {
	planned := Decision{ImageID: "ami-1", Action: ActionDeregister, DeleteAfter: "2026-11-20"}
	p := pol() // grace 7 days: every deregistration rests on a mark
	unchanged := ami("ami-1", "web-1", 40, marked("2026-11-20"))
	tests := []struct {
		name    string
		current *Image
		refs    []Reference
		p       policy.Retention
		want    []string
	}{
		{"unchanged", &unchanged, nil, p, nil},
		{"not listed on the re-read", nil, nil, p, []string{"not listed when re-read right before removal: kept this run"}},
		{"a reference the inventory missed", &unchanged, []Reference{{Kind: RefLaunchTemplate, ID: "lt-0abc", Detail: "version 7"}}, p,
			[]string{"in use by launch template lt-0abc (version 7) (found by EC2 DescribeImageReferences; the inventory missed it)"}},
		{"protected since", ptr(ami("ami-1", "web-1", 40, marked("2026-11-20"), tag("ami-housekeeper:keep", "ops"))), nil, p,
			[]string{`protected by tag ami-housekeeper:keep ("ops") (since the plan)`}},
		{"time-locked since", ptr(ami("ami-1", "web-1", 40, marked("2026-11-20"), tag("ami-housekeeper:do-not-touch-before", "2027-01-01"))), nil, p,
			[]string{"time-locked until 2027-01-01 (tag ami-housekeeper:do-not-touch-before) (since the plan)"}},
		{"mark removed", ptr(ami("ami-1", "web-1", 40)), nil, p, []string{"mark ami-housekeeper:delete-after removed since the plan"}},
		{"mark moved", ptr(ami("ami-1", "web-1", 40, marked("2026-12-24"))), nil, p,
			[]string{"mark ami-housekeeper:delete-after changed since the plan (now 2026-12-24, planned 2026-11-20)"}},
		{"grace 0: no mark needed", ptr(ami("ami-1", "web-1", 40)), nil, deregisterAll(), nil},
		{"protection enabled since", ptr(ami("ami-1", "web-1", 40, marked("2026-11-20"), func(im *Image) { im.DeregistrationProtection = "enabled" })), nil, p,
			[]string{"deregistration protection: enabled (since the plan)"}},
		{"became public (keep_shared)", ptr(ami("ami-1", "web-1", 40, marked("2026-11-20"), func(im *Image) { im.Public = true })), nil, p,
			[]string{"public (keep_shared)"}},
		{"taken over by DLM", ptr(ami("ami-1", "web-1", 40, marked("2026-11-20"), tag("aws:dlm:lifecycle-policy-id", "p"))), nil, p,
			[]string{"managed by Data Lifecycle Manager (tag aws:dlm:lifecycle-policy-id) (since the plan)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := RecheckReasons(now, planned, tt.current, tt.refs, tt.p, testKey)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// Launch permissions left to the recheck (CheckShares) decide there.
func TestRecheckReasonsShares(t *testing.T) {
	planned := Decision{ImageID: "ami-1", Rule: "all", Action: ActionDeregister, DeleteAfter: "2026-11-20", CheckShares: true}
	base := func(opts ...func(*Image)) *Image {
		im := ami("ami-1", "web-1", 40, append([]func(*Image){marked("2026-11-20")}, opts...)...)
		return &im
	}
	shared := func(im *Image) { im.SharesKnown, im.SharedWith = true, []string{"222233334444"} }
	notShared := func(im *Image) { im.SharesKnown, im.SharedWith = true, nil }
	unread := func(im *Image) { im.SharesKnown = false }
	off := pol(func(r *policy.Retention) { r.KeepShared = false })
	ruleOff := pol(func(r *policy.Retention) { v := false; r.Rules[0].KeepShared = &v })
	tests := []struct {
		name    string
		current *Image
		p       policy.Retention
		want    []string
	}{
		{"shared", base(shared), pol(), []string{"shared with 222233334444 (keep_shared)"}},
		{"not shared", base(notShared), pol(), nil},
		{"not read", base(unread), pol(), []string{"launch permissions not read right before removal: kept"}},
		{"shared, keep_shared off", base(shared), off, nil},
		{"shared, the rule turns keep_shared off", base(shared), ruleOff, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := RecheckReasons(now, planned, tt.current, nil, tt.p, testKey); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// Which reasons mean the AMI is no longer a candidate (the executor then
// unmarks it), and which are changes the next plan sees itself.
func TestRecheckReasonsCandidate(t *testing.T) {
	planned := Decision{ImageID: "ami-1", Rule: "all", Action: ActionDeregister, DeleteAfter: "2026-11-20", CheckShares: true}
	im := func(opts ...func(*Image)) *Image {
		i := ami("ami-1", "web-1", 40, append([]func(*Image){marked("2026-11-20")}, opts...)...)
		return &i
	}
	tests := []struct {
		name    string
		current *Image
		refs    []Reference
		want    bool
	}{
		{"shared, read now", im(func(i *Image) { i.SharesKnown, i.SharedWith = true, []string{"222233334444"} }), nil, false},
		{"a user only EC2 sees", im(func(i *Image) { i.SharesKnown = true }), []Reference{{Kind: RefInstance, ID: "i-1"}}, false},
		{"protected since the plan", im(func(i *Image) { i.SharesKnown = true }, tag("ami-housekeeper:keep", "")), nil, true},
		{"nothing changed", im(func(i *Image) { i.SharesKnown = true }), nil, true},
	}
	for _, tt := range tests {
		if _, got := RecheckReasons(now, planned, tt.current, tt.refs, pol(), testKey); got != tt.want {
			t.Errorf("%s: candidate %v, want %v", tt.name, got, tt.want)
		}
	}
}
