package org_test

import (
	"strings"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

func TestParseOrgPrincipalARN(t *testing.T) {
	tests := []struct {
		arn        string
		org, ou    string
		errorNames string // "" = valid
	}{
		{arn: "arn:aws:organizations::123456789012:organization/o-abcdefghij", org: "o-abcdefghij"},
		{arn: "arn:aws:organizations::123456789012:ou/o-abcdefghij/ou-ab12-abcdefgh", org: "o-abcdefghij", ou: "ou-ab12-abcdefgh"},
		{arn: "arn:aws-us-gov:organizations::123456789012:organization/o-abcdefghij", org: "o-abcdefghij"},
		{arn: "o-abcdefghij", errorNames: "o-abcdefghij"},
		{arn: "arn:aws:iam::123456789012:organization/o-abcdefghij", errorNames: "organizations"},
		{arn: "arn:aws:organizations:us-east-1:123456789012:organization/o-abcdefghij", errorNames: "organizations::"},
		{arn: "arn:aws:organizations::1234:organization/o-abcdefghij", errorNames: "organizations::"},
		{arn: "arn:aws:organizations::123456789012:organization/o-short", errorNames: "organization/o-short"},
		{arn: "arn:aws:organizations::123456789012:organization/o-abcdefghij/extra", errorNames: "o-abcdefghij/extra"},
		{arn: "arn:aws:organizations::123456789012:ou/o-abcdefghij", errorNames: "ou/o-abcdefghij"},
		{arn: "arn:aws:organizations::123456789012:ou/o-abcdefghij/r-ab12", errorNames: "r-ab12"},
		{arn: "arn:aws:organizations::123456789012:account/o-abcdefghij/222222222222", errorNames: "account/"},
		{arn: "arn:aws:organizations::123456789012:root/o-abcdefghij/r-ab12", errorNames: "root/"},
	}
	for _, tt := range tests {
		t.Run(tt.arn, func(t *testing.T) {
			orgID, ouID, err := org.ParseOrgPrincipalARN(tt.arn)
			if tt.errorNames != "" {
				if err == nil {
					t.Fatalf("accepted as %q, %q", orgID, ouID)
				}
				if !strings.Contains(err.Error(), tt.errorNames) {
					t.Errorf("error %q lacks %q", err, tt.errorNames)
				}
				return
			}
			if err != nil || orgID != tt.org || ouID != tt.ou {
				t.Errorf("got %q, %q, %v; want %q, %q", orgID, ouID, err, tt.org, tt.ou)
			}
		})
	}
}

func TestMembership(t *testing.T) {
	d := &org.Directory{Members: map[string]org.Account{
		"222222222222": {ID: "222222222222", Path: []string{"r-ab12", "ou-ab12-aaaaaaaa", "ou-ab12-bbbbbbbb"}},
		"333333333333": {ID: "333333333333", Path: []string{"r-ab12"}},
	}}
	if a, ok := d.Member("222222222222"); !ok || a.Parent() != "ou-ab12-bbbbbbbb" {
		t.Errorf("Member(222222222222) = %+v, %v", a, ok)
	}
	if _, ok := d.Member("444444444444"); ok {
		t.Error("Member says an account the organization lacks is a member")
	}
	tests := []struct {
		account, ou string
		want        bool
	}{
		{"222222222222", "ou-ab12-bbbbbbbb", true}, // parent
		{"222222222222", "ou-ab12-aaaaaaaa", true}, // ancestor
		{"222222222222", "r-ab12", true},           // root
		{"333333333333", "ou-ab12-aaaaaaaa", false},
		{"333333333333", "r-ab12", true},
		{"444444444444", "r-ab12", false}, // not a member
		{"222222222222", "", false},
	}
	for _, tt := range tests {
		if got := d.InOU(tt.account, tt.ou); got != tt.want {
			t.Errorf("InOU(%s, %q) = %v, want %v", tt.account, tt.ou, got, tt.want)
		}
	}
}
